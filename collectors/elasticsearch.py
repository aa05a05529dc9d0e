"""ElasticsearchLogSource: level counts, error types and message samples per window, and deploy events.

Counting is pushed into Elasticsearch (one aggregation request for every window asked); only a
bounded sample of error and warn messages is pulled, in one multi-search. Client-library errors are
translated here, and only here, into the project's exception tree.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import elasticsearch
import numpy as np
from elasticsearch import Elasticsearch

from releasehealth.errors import (
    InvalidResponse,
    PartialResponse,
    QueryRejected,
    SourceError,
    SourceUnavailable,
)
from releasehealth.format import UNPRINTABLE, redact_url
from releasehealth.model import Deploy, DeploySourceKind, LogFields, LogLine, LogSettings, LogWindowData, Query, Series
from releasehealth.queries import elasticsearch as dsl
from releasehealth.queries.elasticsearch import WindowKey
from releasehealth.verdicts import SourceHealth

MAX_MESSAGE = 2000  # characters kept of a message: a 1 MB stack dump must not stall template mining
MAX_ORIGIN_PART = 200  # characters kept of each part of a statement's origin (logger, function, file, line)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
T = TypeVar("T")


class ElasticsearchLogSource:
    """A LogSource over the Elasticsearch REST API (8.x)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: timedelta = timedelta(seconds=10),
        retries: int = 2,
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        verify_tls: bool = True,
        ca_file: str | None = None,
        deploy_index: str | None = None,
        deploy_fields: LogFields | None = None,
    ) -> None:
        self.name = redact_url(url)
        self.deploy_index = deploy_index
        self._deploy_fields = deploy_fields or LogFields()
        self.requests_made = 0  # counted for benchmarks: every HTTP request, retries excluded
        self._client = Elasticsearch(
            url,
            request_timeout=timeout.total_seconds(),
            max_retries=retries,
            retry_on_timeout=True,
            api_key=api_key,
            basic_auth=basic_auth,
            verify_certs=verify_tls,
            # None is what the client hands its NodeConfig by default (the system's CAs); its annotation omits it.
            ca_certs=ca_file if verify_tls else None,  # type: ignore[arg-type]
        )

    def fetch(
        self, keys: Sequence[WindowKey], settings: LogSettings, step: timedelta
    ) -> tuple[dict[str, LogWindowData], tuple[Query, ...]]:
        """Return each window's data and the query that ran: one multi-search for all the windows, with
        a counting aggregation per index and a bounded sample per window, each reading only its index.

        Raises SourceUnavailable, QueryRejected (a missing index is named) or InvalidResponse.
        """
        if not keys:
            return {}, ()
        searches = dsl.log_searches(settings.fields, keys, step, settings.sample_size, settings.info_sample_size)
        body = self._call(lambda: self._client.msearch(searches=_msearch_lines(searches)).body)
        responses = body.get("responses") if isinstance(body, dict) else None
        if not isinstance(responses, list) or len(responses) != len(searches):
            raise InvalidResponse(self.name, "malformed multi-search response")
        counted = [r for r, s in zip(responses, searches, strict=True) if s.kind == "counts"]
        sampled = [r for r, s in zip(responses, searches, strict=True) if s.kind == "sample"]
        informed = iter([r for r, s in zip(responses, searches, strict=True) if s.kind == "info_sample"])
        levels, error_types = _parse_counts(self.name, counted, keys, step)
        out = {}
        for key, response in zip(keys, sampled, strict=True):
            info = next(informed, None) if settings.info_sample_size > 0 and not key.sample_only else None
            sample, population, skipped, truncated = sample_from_response(self.name, response, settings.fields)
            info_sample, info_population, info_skipped, info_truncated = (
                sample_from_response(self.name, info, settings.fields) if info is not None else ((), 0, 0, 0)
            )
            out[key.name] = LogWindowData(
                levels.get(key.name, {}), error_types.get(key.name, {}), sample, population,
                skipped + info_skipped, truncated + info_truncated, info_sample=info_sample, info_sampled_from=info_population,
            )
        return out, (self._query("logs", dsl.show_searches(searches), keys),)

    def events(self, services: Sequence[str], start: datetime, end: datetime) -> tuple[list[Deploy], Query | None]:
        """Deploy events of `services` from the deploy index (none configured: nothing), oldest first."""
        if not self.deploy_index or not services:
            return [], None
        fields = self._deploy_fields
        body = dsl.deploy_events_body(fields, services, start, end, size=10_000)
        found = self._call(lambda: self._client.search(index=self.deploy_index, **body).body)
        _raise_if_partial(self.name, found)
        deploys = [d for hit in _hits(self.name, found) if (d := deploy_from_event(_source(hit), fields))]
        query = Query(
            template="deploy_events", text=dsl.show(self.deploy_index, body), services=tuple(services), source=self.name,
            start=start, end=end,
        )
        return sorted(deploys, key=lambda d: (d.service, d.started_at)), query

    def check(self) -> SourceHealth:
        started = time.monotonic()
        try:
            self._call(lambda: self._client.info().body)
        except SourceError as exc:
            return SourceHealth("elasticsearch", self.name, False, None, str(exc), datetime.now(UTC))
        return SourceHealth("elasticsearch", self.name, True, time.monotonic() - started, "", datetime.now(UTC))

    def _query(self, template: str, text: str, keys: Sequence[WindowKey]) -> Query:
        start = min(k.window.start for k in keys)
        end = max(k.window.end for k in keys)
        services = tuple(sorted({k.service for k in keys}))
        return Query(template=template, text=text, services=services, source=self.name, start=start, end=end)

    def _call(self, call: Callable[[], T]) -> T:
        self.requests_made += 1
        try:
            return call()
        except elasticsearch.ConnectionTimeout as exc:
            raise SourceUnavailable(self.name, "no answer within the timeout") from exc
        except elasticsearch.ConnectionError as exc:
            raise SourceUnavailable(self.name, f"unreachable ({_short(exc)})") from exc
        except elasticsearch.NotFoundError as exc:
            raise QueryRejected(self.name, _not_found(exc)) from exc
        except elasticsearch.AuthenticationException as exc:
            raise QueryRejected(self.name, "authentication failed (HTTP 401): check the API key or user variables") from exc
        except elasticsearch.AuthorizationException as exc:
            raise QueryRejected(self.name, "not allowed to read (HTTP 403): check the key's index privileges") from exc
        except elasticsearch.ApiError as exc:
            status = getattr(exc.meta, "status", 0) or 0
            error = SourceUnavailable if status == 429 or status >= 500 else QueryRejected
            raise error(self.name, f"HTTP {status}: {_reason(exc)}") from exc
        except (elasticsearch.SerializationError, ValueError, TypeError) as exc:
            raise InvalidResponse(self.name, f"malformed response ({exc.__class__.__name__})") from exc
        except elasticsearch.TransportError as exc:
            raise SourceUnavailable(self.name, f"request failed ({_short(exc)})") from exc


def _msearch_lines(searches: Sequence[dsl.Search]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for search in searches:
        lines += [{"index": search.index}, search.body]
    return lines


def _parse_counts(
    source: str, responses: list[Any], keys: Sequence[WindowKey], step: timedelta
) -> tuple[dict[str, dict[str, Series]], dict[str, dict[str, int]]]:
    """Per window: lines per normalised level per step (stamped at the step's end), lines per error type."""
    buckets: dict[str, Any] = {}
    for response in responses:
        _raise_for_item(source, response)
        try:
            buckets.update(response["aggregations"]["windows"]["buckets"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidResponse(source, f"malformed aggregation response ({exc})") from exc
    levels, types = {}, {}
    try:
        for key in keys:
            window = buckets.get(key.name, {})
            levels[key.name] = _level_series(window.get("per_step", {}).get("buckets", []), step)
            types[key.name] = {
                str(b["key"]): int(b["doc_count"]) for b in window.get("error_types", {}).get("buckets", [])
            }
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InvalidResponse(source, f"malformed aggregation response ({exc})") from exc
    return levels, types


def _raise_for_item(source: str, response: Any) -> None:
    """A multi-search answers 200 even when one of its searches failed: translate that search's error; a
    search that timed out or lost shards answered with part of the data only."""
    _raise_if_partial(source, response)
    if not isinstance(response, dict) or "error" not in response:
        return
    error = response["error"] if isinstance(response["error"], dict) else {"reason": str(response["error"])}
    status = response.get("status")
    status = status if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599 else 400
    if error.get("type") == "index_not_found_exception":
        raise QueryRejected(source, f"index {error.get('index') or error.get('resource.id') or '?'} does not exist")
    reason = str(error.get("reason") or error.get("type") or error)[:300]
    raise (SourceUnavailable if status == 429 or status >= 500 else QueryRejected)(source, f"HTTP {status}: {reason}")


def _raise_if_partial(source: str, response: Any) -> None:
    if not isinstance(response, dict):
        return
    shards = response.get("_shards")
    failed = shards.get("failed") if isinstance(shards, dict) else 0
    if response.get("timed_out") is True or (isinstance(failed, int) and failed > 0):
        what = "timed out" if response.get("timed_out") is True else f"{failed} shard(s) failed"
        raise PartialResponse(source, f"the answer is partial: the search {what}")


def _level_series(steps: list[dict[str, Any]], step: timedelta) -> dict[str, Series]:
    """date_histogram buckets [k, k+step) become points at k+step: each step covers (t-step, t]."""
    per_level: dict[str, dict[float, float]] = {}
    for bucket in steps:
        at = float(bucket["key"]) / 1000 + step.total_seconds()
        for level in bucket.get("levels", {}).get("buckets", []):
            name = dsl.normalise_level(level["key"])
            per_level.setdefault(name, {})
            per_level[name][at] = per_level[name].get(at, 0.0) + float(level["doc_count"])
    return {
        name: Series({"level": name}, np.array(sorted(points)), np.array([points[t] for t in sorted(points)]))
        for name, points in per_level.items()
    }


def sample_from_response(source: str, response: Any, fields: LogFields) -> tuple[tuple[LogLine, ...], int, int, int]:
    """(lines, population, skipped, truncated) of one sample search; a document without a usable
    message is skipped and counted, an oversized one truncated and counted. Log documents are untrusted:
    any shape of document gives a line or a skip; only the response's own shape raises InvalidResponse."""
    _raise_for_item(source, response)
    hits = _hits(source, response)
    lines, skipped, truncated = [], 0, 0
    for hit in hits:
        doc = _source(hit)
        message = _field(doc, fields.message)
        if not isinstance(message, str) or not _CONTROL.sub(" ", message).strip():
            skipped += 1
            continue
        truncated += len(message) > MAX_MESSAGE
        lines.append(_line(doc, message, fields))
    return tuple(lines), _population(response, len(hits)), skipped, truncated


def _line(doc: dict[str, Any], message: str, fields: LogFields) -> LogLine:
    """The log line of a document: control characters become spaces, the message is cut at MAX_MESSAGE
    characters (a 1 MB stack dump must not stall template mining)."""
    message = _CONTROL.sub(" ", message)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "…"
    level, error_type = _field(doc, fields.level), _field(doc, fields.error_type)
    return LogLine(
        timestamp=_timestamp(_field(doc, fields.timestamp)),
        level=dsl.normalise_level(_CONTROL.sub(" ", _text(level))[:40]),
        message=message,
        error_type=_CONTROL.sub(" ", _text(error_type))[:200],
        origin=origin(doc, fields),
        service=_CONTROL.sub(" ", _text(_field(doc, fields.service))).strip()[:MAX_ORIGIN_PART],
    )


def origin(doc: dict[str, Any], fields: LogFields) -> str:
    """The statement that wrote a document, "logger#function (file:line)" with whichever parts it has
    ("" for none): text fields only, control characters removed, each part cut at MAX_ORIGIN_PART."""
    logger, function, file, line = (
        _CONTROL.sub(" ", _text(_field(doc, name))).strip()[:MAX_ORIGIN_PART]
        for name in (fields.logger, fields.origin_function, fields.origin_file, fields.origin_line)
    )
    return dsl.statement(logger, function, file, line)


def _population(response: dict[str, Any], sampled: int) -> int:
    """How many documents matched (hits.total as an object or a number); what was sampled when it says
    nothing usable (a negative or non-numeric total is garbage, not a count)."""
    total = response["hits"].get("total") if isinstance(response["hits"], dict) else None
    if isinstance(total, dict):
        total = total.get("value")
    if isinstance(total, bool) or not isinstance(total, (int, float)) or not math.isfinite(total) or total < 0:
        return sampled
    return max(int(total), sampled)


def _hits(source: str, body: Any) -> list[Any]:
    try:
        hits = body["hits"]["hits"]
    except (KeyError, TypeError, IndexError) as exc:
        raise InvalidResponse(source, "malformed search response (no hits)") from exc
    if not isinstance(hits, list):
        raise InvalidResponse(source, "malformed search response (hits is not a list)")
    return hits


def _source(hit: Any) -> dict[str, Any]:
    """A hit's document ({} for a hit that is not an object or whose _source is not one)."""
    doc = hit.get("_source") if isinstance(hit, dict) else None
    return doc if isinstance(doc, dict) else {}


def _field(doc: dict[str, Any], dotted: str) -> Any:
    """A field by its dotted name, as an object path (ECS documents) or a flat dotted key."""
    if dotted in doc:
        return doc[dotted]
    current: Any = doc
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _text(value: Any) -> str:
    """A scalar field as text ("" for none, an object or a list: no str() of a nested document)."""
    return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""


def _timestamp(value: Any) -> float:
    """A document's time in UNIX seconds (epoch milliseconds or ISO text), NaN when it is none."""
    if isinstance(value, bool):
        return float("nan")
    if isinstance(value, (int, float)):
        return float(value) / 1000
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return float("nan")
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    return float("nan")


def deploy_from_event(doc: dict[str, Any], fields: LogFields) -> Deploy | None:
    """The deploy an event document tells; None for an event that is not one (a name or version that is
    not a printable string, a time that is not one: 1e20 ms is no date)."""
    service, version = _field(doc, fields.service), _field(doc, fields.version)
    at = _timestamp(_field(doc, fields.timestamp))
    if not (isinstance(service, str) and isinstance(version, str)) or not service or not version:
        return None
    if UNPRINTABLE.search(service + version) or not math.isfinite(at):
        return None
    try:
        started = datetime.fromtimestamp(at, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    commit = _CONTROL.sub(" ", _text(doc.get("commit")))[:64]
    return Deploy(service, version, started, DeploySourceKind.EVENT, commit=commit)


def _not_found(exc: elasticsearch.NotFoundError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
    if error.get("type") == "index_not_found_exception":
        return f"index {error.get('index') or error.get('resource.id') or '?'} does not exist"
    return f"not found: {_reason(exc)}"


def _reason(exc: elasticsearch.ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("reason") or error.get("type") or error)[:300]
    return str(error or exc.message)[:300]


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
