"""Deploy detection from metrics: a version's deploy is the first time its label appears."""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, NamedTuple

from releasehealth.collectors.base import MetricSource
from releasehealth.model import Deploy, DeploySourceKind, Query, Series


class Detection(NamedTuple):
    deploys: list[Deploy]  # every (service, version) seen, oldest first per service
    # Services seen with series that carry no version (or the "no version" value), and since when.
    unversioned: dict[str, datetime]


class MetricDeploySource:
    """Detects deploys through a MetricSource, from the preset's `first_seen`/`last_seen` queries (or the
    kube-state-metrics ones of queries.kubernetes)."""

    def __init__(self, metrics: MetricSource) -> None:
        self.metrics = metrics
        # The last scan of each group of services (releasehealth.deploys keeps it): a front end that
        # evaluates again and again (the dashboard, watch mode, the API) reads only what is new since. A
        # front end that reopens its wiring (the dashboard, every minute) hands it the memory it keeps.
        self.memory = ScanMemory()

    def detect(self, first_seen: Query, last_seen: Query) -> list[Deploy]:
        """Return every (service, version) seen in the lookback, oldest first per service.

        Raises what the MetricSource raises. A version without a first-seen time is left out.
        """
        return self.scan(first_seen, last_seen).deploys

    def scan(
        self, first_seen: Query, last_seen: Query, no_version: str = "",
        kind: DeploySourceKind = DeploySourceKind.DETECTED,
    ) -> Detection:
        """The deploys, and the services whose series carry no version label (or `no_version` as its
        value, as Istio's "unknown"): their versions have to come from elsewhere."""
        unversioned: dict[str, datetime] = {}
        # Both at once: each is minutes of subquery steps for Prometheus and a few bytes of answer, so two
        # cores evaluate them in 0.7 of the time one after the other takes (200 services: 1.7 s, not 2.4).
        with ThreadPoolExecutor(max_workers=2) as pool:
            first_answer, last_answer = pool.map(self.metrics.fetch, (first_seen, last_seen))
        first = _times(first_answer, first_seen, no_version, unversioned)
        last = _times(last_answer, last_seen, no_version, {})
        deploys = [
            Deploy(service, version, started_at, kind, last.get((service, version)))
            for (service, version), started_at in first.items()
        ]
        return Detection(sorted(deploys, key=lambda d: (d.service, d.started_at, d.version)), unversioned)


class ScanMemory:
    """The last deploy scan of each group of services, by a key releasehealth.deploys makes."""

    def __init__(self) -> None:
        self._scans: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            return self._scans.get(key)

    def put(self, key: Hashable, scan: Any) -> None:
        with self._lock:
            self._scans[key] = scan


def _times(
    series: list[Series], query: Query, no_version: str, unversioned: dict[str, datetime]
) -> dict[tuple[str, str], datetime]:
    """When each (service, version) was first (or last) seen: the value of its series, a UNIX time. A
    value that is no time within the query's lookback (NaN, infinite, negative, in the future: a garbled
    answer) tells nothing and is left out, rather than turned into a deploy in 1969."""
    labels = query.labels
    earliest = query.start.timestamp() if query.start else -math.inf
    latest = query.end.timestamp() if query.end else math.inf
    out = {}
    for s in series:
        service = s.labels.get(labels.service)
        version = s.labels.get(labels.version) if labels.version else None
        if service is None or not s.values.size:
            continue
        seconds = float(s.values[-1])
        if not (math.isfinite(seconds) and earliest <= seconds <= latest and seconds > 0):
            continue
        at = datetime.fromtimestamp(seconds, UTC)
        if version is None or version == "" or (no_version and version == no_version):
            unversioned[service] = min(at, unversioned.get(service, at))
            continue
        out[(service, version)] = at
    return out
