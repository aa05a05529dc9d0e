"""Elasticsearch query DSL builders (pure dicts).

Untrusted values (service names, versions) only ever go into `term`, `terms` and `range` clauses,
which match them literally, and into `match` (callers' lines naming a service), whose query text is
analysed as words, never parsed; never into `query_string`, whose syntax they could change. Every query
sticks to what both real Elasticsearch and the test server answer alike: bool/term/terms/range, filters,
date_histogram, terms, sort on keyword fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from releasehealth.errors import TemplateError
from releasehealth.model import LogFields, Window

# Spellings of the two levels sampled for template mining, as loggers write them.
LEVEL_SPELLINGS = {
    "error": ("error", "ERROR", "Error", "err", "ERR", "fatal", "FATAL", "Fatal", "critical", "CRITICAL", "crit", "CRIT",
              "severe", "SEVERE", "alert", "ALERT", "emergency", "EMERGENCY"),
    "warn": ("warn", "WARN", "Warn", "warning", "WARNING", "Warning"),
    "info": ("info", "INFO", "Info", "information", "INFORMATION", "informational", "notice", "NOTICE"),
}
SAMPLED_LEVELS = ("error", "warn")  # the sample the error signatures are mined from
INFO_LEVELS = ("info",)  # sampled apart: far more numerous, they would crowd the errors out of one sample
_NORMAL = {spelling.lower(): level for level, spellings in LEVEL_SPELLINGS.items() for spelling in spellings}
_INDEX_FORBIDDEN = re.compile(r'[\\/?"<>| ,#:]')
MAX_LEVEL_BUCKETS = 20
MAX_ERROR_TYPES = 100


def normalise_level(raw: object) -> str:
    """error, warn, info, debug or trace from any common spelling; unknown levels keep their lowercase."""
    text = str(raw).strip().lower()
    if text in _NORMAL:
        return _NORMAL[text]
    return {"information": "info", "informational": "info", "notice": "info", "verbose": "debug"}.get(text, text)


def statement(logger: str, function: str, file: str, line: str) -> str:
    """A log statement's identity as shown: "logger#function (file:line)" with whichever parts are known."""
    where = f"{file}:{line}" if file and line else file or (f"line {line}" if line else "")
    head = f"{logger}#{function}" if logger and function else logger or function
    return f"{head} ({where})" if head and where else head or where


def index_for(pattern: str, service: str) -> str:
    """The index pattern with {service} filled in; raise TemplateError if the name cannot be an index."""
    if "{service}" not in pattern:
        return pattern
    if _INDEX_FORBIDDEN.search(service) or service != service.strip() or not service:
        raise TemplateError(f"service name {service!r} cannot be used in the index pattern {pattern!r}")
    return pattern.replace("{service}", service.lower())


@dataclass(frozen=True)
class WindowKey:
    """One version of one service in one window ("" for any version); `name` keys it inside a request."""

    name: str
    service: str  # the value of the service field
    version: str
    window: Window
    index: str = "logs-*"  # where this service's logs are (the pattern with {service} filled in)
    sample_only: bool = False  # only its error and warn sample is needed (a service's history): no counts
    # The key reads other services' error and warn lines naming `service` (its callers), from `index`
    # (the pattern read for every service); a callers key is sample_only.
    callers: bool = False


def callers_index(pattern: str) -> str:
    """Where every service's logs are: the index pattern with {service} as a wildcard."""
    return pattern.replace("{service}", "*")


def _millis(at: datetime) -> int:
    return int(round(at.timestamp() * 1000))


def window_filter(fields: LogFields, key: WindowKey) -> dict[str, Any]:
    """The documents of one version of one service with start <= @timestamp < end; without a version
    (a service whose metrics carry none, judged by time), every document of the service in the window."""
    version = [{"term": {fields.version: key.version}}] if key.version else []
    return {
        "bool": {
            "filter": [
                {"term": {fields.service: key.service}},
                *version,
                {"range": {fields.timestamp: {"gte": _millis(key.window.start), "lt": _millis(key.window.end)}}},
            ]
        }
    }


def counts_body(fields: LogFields, keys: Sequence[WindowKey], step: timedelta) -> dict[str, Any]:
    """One search counting, for every window at once, lines per level per step and lines per error type."""
    interval = f"{int(step.total_seconds())}s"
    per_window = {
        "per_step": {
            "date_histogram": {"field": fields.timestamp, "fixed_interval": interval, "min_doc_count": 1},
            "aggs": {"levels": {"terms": {"field": fields.level, "size": MAX_LEVEL_BUCKETS}}},
        },
        "error_types": {"terms": {"field": fields.error_type, "size": MAX_ERROR_TYPES}},
    }
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": [_any_service(fields, keys), _span(fields, keys)]}},
        "aggs": {"windows": {"filters": {"filters": {k.name: window_filter(fields, k) for k in keys}}, "aggs": per_window}},
    }


def sample_body(fields: LogFields, key: WindowKey, size: int, levels: Sequence[str] = SAMPLED_LEVELS) -> dict[str, Any]:
    """Up to `size` lines of `levels` (error and warn by default) of one window, spread over it.

    Sorting by trace id, a random identifier, draws a uniform sample of the window in one search (the
    first `size` lines by time would all come from its first minutes); the total is the population.
    """
    spellings = [s for level in levels for s in LEVEL_SPELLINGS[level]]
    query = callers_filter(fields, key) if key.callers else window_filter(fields, key)
    query["bool"]["filter"].append({"terms": {fields.level: spellings}})
    return {
        "size": size,
        "track_total_hits": True,
        "query": query,
        "sort": [{fields.trace_id: {"order": "asc", "unmapped_type": "keyword", "missing": "_last"}}],
        "_source": [
            fields.timestamp, fields.level, fields.message, fields.error_type, fields.error_message,
            fields.logger, fields.origin_function, fields.origin_file, fields.origin_line, fields.service,
        ],
    }


def callers_filter(fields: LogFields, key: WindowKey) -> dict[str, Any]:
    """Lines of every other service in the window whose message has every word of the service's name
    ("search-service": "search" and "service"); the collector's caller keeps those naming it exactly."""
    window = {"range": {fields.timestamp: {"gte": _millis(key.window.start), "lt": _millis(key.window.end)}}}
    return {
        "bool": {
            "filter": [window, {"match": {fields.message: {"query": key.service, "operator": "and"}}}],
            "must_not": [{"term": {fields.service: key.service}}],
        }
    }


def deploy_events_body(fields: LogFields, services: Sequence[str], start: datetime, end: datetime, size: int) -> dict[str, Any]:
    """Deploy events (service, version, @timestamp, commit) of `services` between start and end."""
    return {
        "size": size,
        "query": {
            "bool": {
                "filter": [
                    {"terms": {fields.service: sorted(set(services))}},
                    {"range": {fields.timestamp: {"gte": _millis(start), "lte": _millis(end)}}},
                ]
            }
        },
        "sort": [{fields.timestamp: {"order": "asc"}}],
        "_source": [fields.timestamp, fields.service, fields.version, "commit"],
    }


def _any_service(fields: LogFields, keys: Sequence[WindowKey]) -> dict[str, Any]:
    return {"terms": {fields.service: sorted({k.service for k in keys})}}


def _span(fields: LogFields, keys: Sequence[WindowKey]) -> dict[str, Any]:
    start = min(k.window.start for k in keys)
    end = max(k.window.end for k in keys)
    return {"range": {fields.timestamp: {"gte": _millis(start), "lt": _millis(end)}}}


@dataclass(frozen=True)
class Search:
    """One search of a multi-search: where it reads, what it asks, and what it is for."""

    index: str
    body: dict[str, Any]
    kind: str  # "counts" or "sample"


def log_searches(
    fields: LogFields, keys: Sequence[WindowKey], step: timedelta, sample_size: int, info_sample_size: int = 0
) -> list[Search]:
    """The multi-search reading every window's logs: a counting aggregation per index (over that index's
    windows), then one bounded sample of error and warn lines per window and, when info_sample_size > 0,
    one of info lines (none for a key that is `sample_only`), each search reading only its own index."""
    by_index: dict[str, list[WindowKey]] = {}
    for key in keys:
        if not key.sample_only:
            by_index.setdefault(key.index, []).append(key)
    counts = [Search(index, counts_body(fields, members, step), "counts") for index, members in by_index.items()]
    samples = [Search(key.index, sample_body(fields, key, sample_size), "sample") for key in keys]
    counted = [key for key in keys if not key.sample_only]
    infos = [Search(key.index, sample_body(fields, key, info_sample_size, INFO_LEVELS), "info_sample") for key in counted]
    return counts + samples + (infos if info_sample_size > 0 else [])


def show_searches(searches: Sequence[Search]) -> str:
    """A multi-search as Kibana's Dev Tools would take it: copyable."""
    lines = [json.dumps({"index": s.index}) + "\n" + json.dumps(s.body) for s in searches]
    return "GET _msearch\n" + "\n".join(lines)


def show(index: str, body: dict[str, Any]) -> str:
    """The request as Kibana's Dev Tools would show it: copyable."""
    return f"GET {index}/_search\n{json.dumps(body)}"
