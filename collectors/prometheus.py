"""PrometheusMetricSource: runs rendered PromQL on any Prometheus-compatible HTTP API.

Client-library errors are translated here, and only here, into the project's exception tree:
unreachable, timed out, 429 and 5xx become SourceUnavailable (retried with bounded exponential backoff
within the configured timeout); 4xx becomes QueryRejected (not retried); an answer that is not the
Prometheus API's JSON becomes InvalidResponse.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException  # the package does not re-export it
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from releasehealth.collectors.base import without_credentials
from releasehealth.errors import (
    InvalidResponse,
    QueryRejected,
    SourceError,
    SourceUnavailable,
)
from releasehealth.model import Query, Series
from releasehealth.verdicts import SourceHealth

MAX_POINTS = 10_000  # Prometheus refuses range queries over 11,000 points per series
_STATUS = re.compile(r"HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)


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
    ) -> None:
        self.name = without_credentials(url)  # the name is shown everywhere: never with a password in it
        self._timeout = timeout.total_seconds()
        self._retries = retries
        self._sleep = sleep
        self.queries_run = 0  # counted for benchmarks: every HTTP query, retries included
        # Our own bounded retry loop replaces the library's, so that rejected queries are never retried.
        session = requests.Session()
        # TLS: verify against the system's CAs, a CA bundle of your own (an internal CA), or not at all.
        session.verify = (ca_file or True) if verify_tls else False
        self._client = PrometheusConnect(
            url=url,
            headers=headers or None,
            auth=auth,
            session=session,
            retry=Retry(total=0, raise_on_status=False),
            timeout=self._timeout,
        )

    def fetch(self, query: Query) -> list[Series]:
        """Return the series of `query`; raise SourceUnavailable, QueryRejected or InvalidResponse."""
        if query.step is None:
            return self._run(lambda timeout: self._client.custom_query(
                query.text, params={"time": _unix(query.end)}, timeout=timeout
            ))
        if query.start is None or query.end is None:  # a TypeError, as when _chunks compared None, but saying so
            raise TypeError(f"range query {query.template!r} needs a start and an end")
        merged: dict[tuple[tuple[str, str], ...], list[Series]] = {}
        for start, end in _chunks(query.start, query.end, query.step):
            for series in self._run(self._range_call(query.text, start, end, query.step)):
                merged.setdefault(tuple(sorted(series.labels.items())), []).append(series)
        return [_concatenate(parts) for parts in merged.values()]

    def _range_call(self, text: str, start: datetime, end: datetime, step: timedelta) -> Callable[[float], object]:
        """The range query over one chunk, as the call of a timeout that `_run` retries."""
        return lambda timeout: self._client.custom_query_range(
            text, start_time=start, end_time=end, step=str(int(step.total_seconds())), timeout=timeout
        )

    def check(self) -> SourceHealth:
        started = time.monotonic()
        try:
            self._run(lambda timeout: self._client.custom_query("vector(1)", timeout=timeout))
        except SourceError as exc:
            return SourceHealth("prometheus", self.name, False, None, str(exc), datetime.now(UTC))
        return SourceHealth("prometheus", self.name, True, time.monotonic() - started, "", datetime.now(UTC))

    def _run(self, call: Callable[[float], object]) -> list[Series]:
        """Call with retries on SourceUnavailable, all within one timeout; convert the result."""
        deadline = time.monotonic() + self._timeout
        for attempt in range(self._retries + 1):
            remaining = deadline - time.monotonic()
            try:
                self.queries_run += 1
                return [_to_series(item, self.name) for item in self._translate(call, max(remaining, 0.1))]
            except SourceUnavailable:
                backoff = min(0.25 * 2**attempt, 2.0)
                if attempt == self._retries or time.monotonic() + backoff >= deadline:
                    raise
                self._sleep(backoff)
        raise AssertionError("unreachable")

    def _translate(self, call: Callable[[float], object], timeout: float) -> list[Any]:
        try:
            result = call(timeout)
        except requests.Timeout as exc:
            raise SourceUnavailable(self.name, f"no answer within {timeout:.1f}s") from exc
        except requests.ConnectionError as exc:
            if _timed_out(exc):  # with retries off, urllib3 reports a read timeout as a connection error
                raise SourceUnavailable(self.name, f"no answer within {timeout:.1f}s") from exc
            raise SourceUnavailable(self.name, f"unreachable ({_root_cause(exc)})") from exc
        except PrometheusApiClientException as exc:
            raise _from_status(self.name, str(exc)) from exc
        except (ValueError, KeyError, TypeError) as exc:  # a 200 whose body is not the API's JSON
            raise InvalidResponse(self.name, f"malformed response ({exc.__class__.__name__}: {exc})") from exc
        except requests.RequestException as exc:
            raise SourceUnavailable(self.name, f"request failed ({exc})") from exc
        if not isinstance(result, list):
            raise InvalidResponse(self.name, f"expected a list of series, got {type(result).__name__}")
        return result


def _from_status(source: str, message: str) -> SourceError:
    match = _STATUS.match(message)
    if not match:
        return InvalidResponse(source, message)
    status, body = int(match.group(1)), match.group(2)
    detail = _error_detail(body)
    if status == 429 or status >= 500:
        return SourceUnavailable(source, f"HTTP {status}: {detail}")
    return QueryRejected(source, f"HTTP {status}: {detail}")


def _error_detail(body: str) -> str:
    """The `error` field of a Prometheus error body, else the body itself, shortened."""
    text = body
    if text.startswith(("b'", 'b"')):
        text = text[2:-1].encode().decode("unicode_escape", errors="replace")
    try:
        return str(json.loads(text).get("error", text))[:300]
    except (ValueError, AttributeError):
        return text[:300]


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
    """Split (start, end] so no chunk asks for more than MAX_POINTS steps per series."""
    span = step * (MAX_POINTS - 1)
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


def _unix(at: datetime | None) -> float:
    return (at or datetime.now(UTC)).timestamp()
