"""SimulatedMetricSource: the embedded demo fleet behind the same protocol as the real collectors.

It answers the generic preset's templates from the simulator's counters, with Prometheus' semantics
for aligned data: `increase(x[step])` at t is the counter growth over [t-step, t], present only when the
version has at least two samples there; deploy times are the first and last sample of each version.
It reads the template's name and the query's services, not the PromQL text, so the text it reports is
the query that would run against a real Prometheus.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np

from releasehealth.errors import QueryRejected
from releasehealth.model import Query, Series, SourceHealth
from releasehealth.simulator.fleet import BUCKETS, Fleet, SimulatedService

SUPPORTED = ("requests", "errors", "latency_buckets", "first_seen", "last_seen")


class SimulatedMetricSource:
    """A MetricSource over a simulated Fleet (generic preset templates only)."""

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
        times, counters = service.cumulative(version)
        if query.step is None:
            return self._instant(query, labels, times[times <= query.end.timestamp()])
        steps = _step_times(query)
        if query.template == "latency_buckets":
            cumulative = np.cumsum(counters["buckets"], axis=1)
            bounds = [repr(b) for b in BUCKETS] + ["+Inf"]
            return [
                s for column, le in enumerate(bounds)
                if (s := _increase({**labels, "le": le}, times, cumulative[:, column], steps, query)) is not None
            ]
        values = counters["errors"] if query.template == "errors" else counters["requests"]
        series = _increase(labels, times, values, steps, query)
        return [] if series is None else [series]

    def _instant(self, query: Query, labels: dict[str, str], times: np.ndarray) -> list[Series]:
        since = query.start.timestamp() if query.start else -np.inf
        times = times[times >= since]
        if not times.size:
            return []
        value = times[0] if query.template == "first_seen" else times[-1]
        return [Series(labels, np.array([query.end.timestamp()]), np.array([float(value)]))]


def _step_times(query: Query) -> np.ndarray:
    step = query.step.total_seconds()
    first = np.ceil(query.start.timestamp() / step) * step
    return np.arange(first, query.end.timestamp() + 1e-9, step)


def _increase(
    labels: dict[str, str], times: np.ndarray, values: np.ndarray, steps: np.ndarray, query: Query
) -> Series | None:
    """Counter growth over [t-step, t] at each step t where the series has two samples or more."""
    step = query.step.total_seconds()
    first = np.searchsorted(times, steps - step, side="left")
    last = np.searchsorted(times, steps, side="right") - 1
    present = (last - first) >= 1
    if not present.any():
        return None
    growth = values[last[present]] - values[first[present]]
    return Series(labels, steps[present].astype(np.float64), growth.astype(np.float64))
