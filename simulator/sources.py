"""The embedded demo fleet behind the same protocols as the real collectors (metrics and logs).

It answers the generic preset's templates from the simulator's counters, with Prometheus' semantics
for aligned data: `increase(x[step])` at t is the counter growth over [t-step, t], present only when the
version has at least two samples there (`rate` divides it by the step; a ratio of rates over zero requests
is +Inf or NaN, as Prometheus gives); a gauge at t is its latest sample at or before t, no older than
Prometheus' 5-minute lookback; deploy times are the first and last sample of each version.
It reads the template's name and the query's services, not the PromQL text, so the text it reports is
the query that would run against a real Prometheus.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from releasehealth.errors import QueryRejected
from releasehealth.model import Deploy, DeploySourceKind, LogFields, LogLine, LogSettings, LogWindowData, Query, Series
from releasehealth.queries import elasticsearch as dsl
from releasehealth.queries.elasticsearch import WindowKey
from releasehealth.simulator.fleet import BUCKETS, Fleet, SimulatedService
from releasehealth.simulator.logs import LEVELS, TEMPLATES, FleetLogs, ServiceLogs, words
from releasehealth.verdicts import SourceHealth

SUPPORTED = (
    "requests", "errors", "latency_buckets", "first_seen", "last_seen", "memory", "cpu", "cpu_per_request", "connections",
)
LOOKBACK_SECONDS = 300.0  # Prometheus' default --query.lookback-delta: how long a gauge sample stays current


class SimulatedMetricSource:
    """A MetricSource over a simulated Fleet (the generic preset's templates, and the accuracy scenario's
    connections in use)."""

    name = "simulated"

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.queries_run = 0

    def fetch(self, query: Query) -> list[Series]:
        if query.template not in SUPPORTED:
            raise QueryRejected(self.name, f"the simulated fleet has no template {query.template!r}")
        self.queries_run += 1
        services = [s for s in self.fleet.services if s.name in query.services]
        out: list[Series] = []
        for service in services:
            for release in service.releases:
                out += self._series(query, service, release.version)
        return out

    def check(self) -> SourceHealth:
        started = time.monotonic()
        return SourceHealth("prometheus", self.name, True, time.monotonic() - started, "", datetime.now(UTC))

    def _series(self, query: Query, service: SimulatedService, version: str) -> list[Series]:
        labels = {query.labels.service: service.name, query.labels.version: version}
        if query.step is None:  # first_seen, last_seen: when the version's counters are exposed, no values
            times = service.times[service.scrapes_of(version)]
            return self._instant(query, labels, times[times <= _seconds(query.end, "end")])
        times, counters = service.cumulative(version)
        steps = _step_times(query)
        if query.template == "latency_buckets":
            cumulative = np.cumsum(counters["buckets"], axis=1)
            bounds = [repr(b) for b in BUCKETS] + ["+Inf"]
            return [
                s for column, le in enumerate(bounds)
                if (s := _increase({**labels, "le": le}, times, cumulative[:, column], steps, query)) is not None
            ]
        if query.template in ("memory", "connections"):
            series = _latest(labels, *service.gauge(version, query.template), steps)
        elif query.template in ("cpu", "cpu_per_request"):
            series = _cpu(query, labels, times, counters, steps)
        elif query.template == "requests":
            # By status code, as the generic preset asks: the errors are the 500s of this same answer.
            ok = counters["requests"] - counters["errors"] - counters["client_errors"]
            by_code = (("200", ok), ("404", counters["client_errors"]), ("500", counters["errors"]))
            return [s for code, values in by_code if (s := _increase({**labels, "code": code}, times, values, steps, query))]
        else:
            series = _increase(labels, times, counters["errors"], steps, query)
        return [] if series is None else [series]

    def _instant(self, query: Query, labels: dict[str, str], times: np.ndarray) -> list[Series]:
        since = query.start.timestamp() if query.start else -np.inf
        times = times[times >= since]
        if not times.size:
            return []
        value = times[0] if query.template == "first_seen" else times[-1]
        return [Series(labels, np.array([_seconds(query.end, "end")]), np.array([float(value)]))]


def _seconds(moment: datetime | None, what: str) -> float:
    """UNIX seconds of a query's start or end. Queries as QueryGroup builds them have both; one without
    fails with an AttributeError, as calling .timestamp() on None always did."""
    if moment is None:
        raise AttributeError(f"the query has no {what}")
    return moment.timestamp()


def _step_times(query: Query) -> np.ndarray:
    assert query.step is not None  # only range queries get here (see _series)
    step = query.step.total_seconds()
    first = np.ceil(_seconds(query.start, "start") / step) * step
    # Half a step past the end, not an epsilon: 1e-9 vanishes next to 1.8e9 s and the last step went missing.
    return np.arange(first, _seconds(query.end, "end") + step / 2, step)


def _increase(
    labels: dict[str, str], times: np.ndarray, values: np.ndarray, steps: np.ndarray, query: Query
) -> Series | None:
    """Counter growth over [t-step, t] at each step t where the series has two samples or more."""
    assert query.step is not None  # only range queries get here (see _series)
    step = query.step.total_seconds()
    first = np.searchsorted(times, steps - step, side="left")
    last = np.searchsorted(times, steps, side="right") - 1
    present = (last - first) >= 1
    if not present.any():
        return None
    growth = values[last[present]] - values[first[present]]
    return Series(labels, steps[present].astype(np.float64), growth.astype(np.float64))


def _latest(labels: dict[str, str], times: np.ndarray, values: np.ndarray, steps: np.ndarray) -> Series | None:
    """A gauge at each step t: its latest sample at or before t, if that is within the lookback."""
    last = np.searchsorted(times, steps, side="right") - 1
    present = (last >= 0) & (steps - times[np.maximum(last, 0)] < LOOKBACK_SECONDS)
    if not present.any():
        return None
    return Series(labels, steps[present].astype(np.float64), values[last[present]].astype(np.float64))


def _cpu(
    query: Query, labels: dict[str, str], times: np.ndarray, counters: dict[str, np.ndarray], steps: np.ndarray
) -> Series | None:
    """`rate` of the CPU counter (cores), or divided by the rate of requests (CPU seconds per request)."""
    assert query.step is not None  # only range queries get here (see _series)
    cpu = _increase(labels, times, counters["cpu_seconds"], steps, query)
    if cpu is None:
        return None
    if query.template == "cpu":
        return Series(labels, cpu.timestamps, cpu.values / query.step.total_seconds())
    requests = _increase(labels, times, counters["requests"], steps, query)
    # _increase is None only for lack of samples, which depends on times and steps alone: as for cpu, it is set.
    assert requests is not None
    with np.errstate(divide="ignore", invalid="ignore"):
        return Series(labels, cpu.timestamps, cpu.values / requests.values)


class SimulatedLogSource:
    """A LogSource over the simulated fleet's logs, answering what Elasticsearch would for the same DSL."""

    name = "simulated"

    def __init__(self, logs: FleetLogs) -> None:
        self.logs = logs
        self.requests_made = 0
        self.deploy_index = "deploys"

    def fetch(
        self, keys: Sequence[WindowKey], settings: LogSettings, step: timedelta
    ) -> tuple[dict[str, LogWindowData], tuple[Query, ...]]:
        if not keys:
            return {}, ()
        self.requests_made += 1
        out = {key.name: self._window(key, settings, step) for key in keys}
        services = tuple(sorted({k.service for k in keys}))
        start, end = min(k.window.start for k in keys), max(k.window.end for k in keys)
        text = dsl.show_searches(dsl.log_searches(settings.fields, keys, step, settings.sample_size, settings.info_sample_size))
        return out, (Query(template="logs", text=text, services=services, source=self.name, start=start, end=end),)

    def events(self, services: Sequence[str], start: datetime, end: datetime) -> tuple[list[Deploy], Query | None]:
        self.requests_made += 1
        deploys = [
            Deploy(s.name, r.version, r.deployed_at, DeploySourceKind.EVENT, commit=r.commit)
            for s in self.logs.fleet.services if s.name in services
            for r in s.releases[1:] if start <= r.deployed_at <= end
        ]
        body = dsl.deploy_events_body(LogFields(), services, start, end, size=10_000)
        query = Query(
            template="deploy_events", text=dsl.show(self.deploy_index, body), services=tuple(services), source=self.name,
            start=start, end=end,
        )
        return deploys, query

    def check(self) -> SourceHealth:
        return SourceHealth("elasticsearch", self.name, True, 0.0, "", datetime.now(UTC))

    def _window(self, key: WindowKey, settings: LogSettings, step: timedelta) -> LogWindowData:
        if key.callers:
            return self._callers(key, settings.sample_size)
        try:
            service = self.logs.service(key.service)
            versions = [r.version for r in self.logs.fleet.service(key.service).releases]
            release = versions.index(key.version) if key.version else None  # "": any version, as Elasticsearch
        except (StopIteration, KeyError, ValueError):
            return LogWindowData({}, {}, (), 0)
        start, end = key.window.start.timestamp(), key.window.end.timestamp()
        mine = (service.release == release) if release is not None else np.ones(service.times.size, dtype=bool)
        chosen = np.flatnonzero(mine & (service.times >= start) & (service.times < end))
        levels = service.levels[chosen]
        seconds = step.total_seconds()
        stamps = np.floor(service.times[chosen] / seconds) * seconds + seconds
        per_level = {}
        for code, level in enumerate(LEVELS):
            if (levels == code).any():
                at, counts = np.unique(stamps[levels == code], return_counts=True)
                per_level[level] = Series({"level": level}, at, counts.astype(np.float64))
        error_types: Counter[str] = Counter()
        for template, count in zip(*(a.tolist() for a in np.unique(service.template[chosen], return_counts=True)), strict=True):
            if TEMPLATES[template].error_type:
                error_types[TEMPLATES[template].error_type] += count
        flagged, info = chosen[levels <= LEVELS.index("warn")], chosen[levels == LEVELS.index("info")]
        return LogWindowData(
            per_level, dict(error_types), self._sample(service, flagged, settings.sample_size), flagged.size,
            info_sample=self._sample(service, info, settings.info_sample_size), info_sampled_from=info.size,
        )

    def _callers(self, key: WindowKey, size: int) -> LogWindowData:
        """Other services' error and warn lines in the window with every word of the key's service name,
        as the collector's `match` (operator and) finds them; each line names the service that logged it."""
        start, end = key.window.start.timestamp(), key.window.end.timestamp()
        wanted = frozenset(words(key.service))
        lines: list[LogLine] = []
        population = 0
        for service in self.logs.services:
            if service.service == key.service:
                continue
            flagged = np.flatnonzero((service.times >= start) & (service.times < end) & (service.levels <= LEVELS.index("warn")))
            rows = np.array([row for row in flagged.tolist() if wanted <= service.words_of(row)], dtype=np.intp)
            population += rows.size
            lines += [dataclasses.replace(line, service=service.service) for line in self._sample(service, rows, size)]
        lines.sort(key=lambda line: line.timestamp)
        return LogWindowData({}, {}, tuple(lines[:size]), population)

    @staticmethod
    def _sample(service: ServiceLogs, rows: np.ndarray, size: int) -> tuple[LogLine, ...]:
        """Up to `size` of the rows (ascending) as lines, in trace-id order (a uniform draw, as
        Elasticsearch's sort)."""
        picked = rows[np.argsort(service.trace_rank[rows], kind="stable")[:size]]
        return tuple(
            LogLine(float(service.times[i]), TEMPLATES[t].level, service.messages[i], TEMPLATES[t].error_type, TEMPLATES[t].origin)
            for i, t in zip(picked.tolist(), service.template[picked].tolist(), strict=True)
        )

