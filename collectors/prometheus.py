"""PrometheusMetricSource: runs rendered PromQL on any Prometheus-compatible HTTP API.

It reads the API itself, with requests: prometheus-api-client, which we used before, returns only
`data.result` and drops the answer's `warnings`, the one sign that Thanos, Mimir or Prometheus answered
with part of the data. A partial answer must not be judged as if it were whole.

Errors are translated here, and only here, into the project's exception tree: unreachable, timed out,
429 and 5xx become SourceUnavailable (retried with bounded exponential backoff within the configured
timeout); 4xx becomes QueryRejected (not retried); an answer that is not the API's JSON, or larger than
the limits (max_answer_mb, read as it streams in; max_points, counted before the answer is decoded), becomes
InvalidResponse; an answer with warnings becomes PartialResponse. The message of a range query's error says
its span (the caller names the query).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

from releasehealth.errors import (
    InvalidResponse,
    PartialResponse,
    QueryRejected,
    SourceError,
    SourceUnavailable,
)
from releasehealth.format import redact_url
from releasehealth.model import Query, Series
from releasehealth.verdicts import SourceHealth

MAX_STEPS = 10_000  # Prometheus refuses range queries over 11,000 points per series
# A bigger answer is refused: memory stays bounded. The bytes as they stream in (64 MB of JSON decode to
# about 400 MB of Python objects), the points before decoding (a 200-service fleet's largest answer, its
# latency buckets over one span, holds about 600k). Both are settings of the Prometheus source.
MAX_ANSWER_MB = 64
MAX_ANSWER_POINTS = 2_000_000
CHUNK_BYTES = 2**16
ERROR_TEXT = 300  # characters of an error answer kept in a message
LONG_QUERY = 4096  # characters of PromQL sent in the URL; longer ones are POSTed as a form


class PrometheusMetricSource:
    """A MetricSource over the Prometheus HTTP API (also Thanos, Mimir, VictoriaMetrics)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: timedelta = timedelta(seconds=10),
        retries: int = 2,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        verify_tls: bool = True,
        ca_file: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_answer_mb: int = MAX_ANSWER_MB,
        max_points: int = MAX_ANSWER_POINTS,
    ) -> None:
        self.name = redact_url(url)  # the name is shown everywhere: never with a password in it
        self._url = url.rstrip("/")
        self._timeout = timeout.total_seconds()
        self._retries = retries
        self._sleep = sleep
        self._max_bytes, self._max_points = max_answer_mb * 2**20, max_points
        self.queries_run = 0  # counted for benchmarks: every HTTP query, retries included
        self._counting = threading.Lock()  # queries run from two threads at once (fetch.FETCH_THREADS)
        # Our own bounded retry loop, so that rejected queries are never retried (requests retries nothing).
        self._session = requests.Session()
        self._session.headers.update(headers or {})
        self._session.auth = auth
        # TLS: verify against the system's CAs, a CA bundle of your own (an internal CA), or not at all.
        self._session.verify = (ca_file or True) if verify_tls else False

    def fetch(self, query: Query) -> list[Series]:
        """Return the series of `query`; raise SourceUnavailable, QueryRejected, InvalidResponse or
        PartialResponse."""
        if query.step is None:
            return self._run("/api/v1/query", {"query": query.text, "time": _unix(query.end)})
        if query.start is None or query.end is None:  # a TypeError, as when _chunks compared None, but saying so
            raise TypeError(f"range query {query.template!r} needs a start and an end")
        merged: dict[tuple[tuple[str, str], ...], list[Series]] = {}
        step = int(query.step.total_seconds())
        for start, end in _chunks(query.start, query.end, query.step):
            params = {"query": query.text, "start": start.timestamp(), "end": end.timestamp(), "step": step}
            for series in self._run("/api/v1/query_range", params, f"range {_span(start, end)}"):
                merged.setdefault(tuple(sorted(series.labels.items())), []).append(series)
        return [_concatenate(parts) for parts in merged.values()]

    def check(self) -> SourceHealth:
        started = time.monotonic()
        try:
            self._run("/api/v1/query", {"query": "vector(1)"})
        except SourceError as exc:
            return SourceHealth("prometheus", self.name, False, None, str(exc), datetime.now(UTC))
        return SourceHealth("prometheus", self.name, True, time.monotonic() - started, "", datetime.now(UTC))

    def _run(self, path: str, params: Mapping[str, Any], span: str = "") -> list[Series]:
        """Ask with retries on SourceUnavailable, all within one timeout; convert the answer. Errors say
        the `span` of a range query (the caller names the query: fetch.run, deploy detection)."""
        try:
            return self._ask(path, params)
        except SourceError as exc:
            raise (exc.about(span) if span else exc) from exc

    def _ask(self, path: str, params: Mapping[str, Any]) -> list[Series]:
        deadline = time.monotonic() + self._timeout
        for attempt in range(self._retries + 1):
            try:
                with self._counting:
                    self.queries_run += 1
                result = self._answer(path, params, deadline)
                return [_to_series(item, self.name) for item in result]
            except SourceUnavailable:
                backoff = min(0.25 * 2**attempt, 2.0)
                if attempt == self._retries or time.monotonic() + backoff >= deadline:
                    raise
                self._sleep(backoff)
        raise AssertionError("unreachable")

    def _answer(self, path: str, params: Mapping[str, Any], deadline: float) -> list[Any]:
        """The `data.result` of one answer; raise what it means when it is not a whole, successful one."""
        status, body = self._get(path, params, deadline)
        if status != 200:
            raise _from_status(self.name, status, body)
        # Each point after a series' first is "],[" away from the one before: counted in the text, so that
        # an answer of millions of points is refused before it is decoded into tens of millions of objects.
        points = body.count("],[")
        if points > self._max_points:
            raise InvalidResponse(
                self.name, f"the answer holds more than {self._max_points:,} points (prometheus.max_points); "
                "narrow the query or raise the limit",
            )
        try:
            payload = json.loads(body)
        except ValueError as exc:  # a 200 whose body is not JSON: a proxy's page, a truncated answer
            raise InvalidResponse(self.name, f"malformed response (not JSON: {exc})") from exc
        if not isinstance(payload, dict) or payload.get("status") != "success":
            detail = payload.get("error") if isinstance(payload, dict) else None
            raise InvalidResponse(self.name, f"not a successful answer: {str(detail or body[:ERROR_TEXT])[:ERROR_TEXT]}")
        warnings = payload.get("warnings")
        if warnings:
            text = "; ".join(str(w) for w in warnings) if isinstance(warnings, list) else str(warnings)
            raise PartialResponse(self.name, f"the answer is partial, its warnings say: {text[:ERROR_TEXT]}")
        data = payload.get("data")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise InvalidResponse(self.name, "malformed response (no data.result list)")
        return result

    def _get(self, path: str, params: Mapping[str, Any], deadline: float) -> tuple[int, str]:
        """(HTTP status, body) of one GET, within the deadline, the body at most max_answer_mb."""
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            # A long query (a deploy scan's fine stage names many steps) goes in a form body, as Prometheus
            # allows: a URL of hundreds of kilobytes is refused by servers and proxies on the way.
            long = len(str(params.get("query", ""))) > LONG_QUERY
            with self._session.request(
                "POST" if long else "GET", self._url + path, params=None if long else params, data=params if long else None,
                timeout=remaining, stream=True,
            ) as response:
                chunks, size = [], 0
                for chunk in response.iter_content(CHUNK_BYTES):
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise InvalidResponse(
                            self.name, f"the answer is larger than {self._max_bytes // 2**20} MB "
                            "(prometheus.max_answer_mb); narrow the query or raise the limit",
                        )
                    if time.monotonic() > deadline:  # a trickle of bytes must not outlast the timeout
                        raise SourceUnavailable(self.name, f"no whole answer within {self._timeout:.1f}s")
                    chunks.append(chunk)
                return response.status_code, b"".join(chunks).decode("utf-8", errors="replace")
        except requests.Timeout as exc:
            raise SourceUnavailable(self.name, f"no answer within {remaining:.1f}s") from exc
        except requests.ConnectionError as exc:
            if _timed_out(exc):  # urllib3 reports some read timeouts as connection errors
                raise SourceUnavailable(self.name, f"no answer within {remaining:.1f}s") from exc
            raise SourceUnavailable(self.name, f"unreachable ({_root_cause(exc)})") from exc
        except requests.RequestException as exc:
            raise SourceUnavailable(self.name, f"request failed ({_root_cause(exc)})") from exc


def _from_status(source: str, status: int, body: str) -> SourceError:
    """An error answer: 429 and 5xx are worth retrying, other codes mean the query itself was refused."""
    detail = _error_detail(body)
    if status == 429 or status >= 500:
        return SourceUnavailable(source, f"HTTP {status}: {detail}")
    return QueryRejected(source, f"HTTP {status}: {detail}")


def _error_detail(body: str) -> str:
    """The `error` field of a Prometheus error body, else the start of the body itself."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body[:ERROR_TEXT].strip() or "(no body)"
    error = payload.get("error") if isinstance(payload, dict) else None
    return str(error if error is not None else body)[:ERROR_TEXT]


def _timed_out(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NewConnectionError):  # urllib3 derives it from ConnectTimeoutError, yet it is a refusal
            return False
        if isinstance(seen, (TimeoutError, ReadTimeoutError, ConnectTimeoutError)):
            return True
        reason = getattr(seen, "reason", None)  # urllib3's MaxRetryError keeps the failure in .reason
        if isinstance(reason, BaseException) and reason is not seen:
            seen = reason
            continue
        seen = seen.__cause__ or seen.__context__ or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
    return False


def _root_cause(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc).split(": ", 1)[-1][:200] if str(exc) else exc.__class__.__name__


def _to_series(item: dict[str, Any], source: str) -> Series:
    try:
        labels = {str(k): str(v) for k, v in item["metric"].items()}
        points = item["values"] if "values" in item else [item["value"]]
        timestamps = np.array([float(t) for t, _ in points], dtype=np.float64)
        values = np.array([float(v) for _, v in points], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidResponse(source, f"malformed series in response: {str(item)[:200]}") from exc
    return Series(labels, timestamps, values)


def _chunks(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """Split (start, end] so no chunk asks for more than MAX_STEPS steps per series."""
    span = step * (MAX_STEPS - 1)
    chunks: list[tuple[datetime, datetime]] = []
    at = start
    while at < end:
        chunk_end = min(at + span, end)
        chunks.append((at + step if chunks else at, chunk_end))
        at = chunk_end
    return chunks or [(start, end)]


def _concatenate(parts: list[Series]) -> Series:
    if len(parts) == 1:
        return parts[0]
    return Series(
        parts[0].labels,
        np.concatenate([p.timestamps for p in parts]),
        np.concatenate([p.values for p in parts]),
    )


def _span(start: datetime, end: datetime) -> str:
    return f"{start.astimezone(UTC):%Y-%m-%d %H:%M}..{end.astimezone(UTC):%H:%M} UTC"


def _unix(at: datetime | None) -> float:
    return (at or datetime.now(UTC)).timestamp()
