"""Deploy detection from metrics: a version's deploy is the first time its label appears."""

from __future__ import annotations

from datetime import UTC, datetime

from collectors.base import MetricSource
from releasehealth.model import Deploy, DeploySourceKind, LabelNames, Query, Series


class MetricDeploySource:
    """Detects deploys through a MetricSource, from the preset's `first_seen`/`last_seen` queries."""

    def __init__(self, metrics: MetricSource) -> None:
        self.metrics = metrics

    def detect(self, first_seen: Query, last_seen: Query) -> list[Deploy]:
        """Return every (service, version) seen in the lookback, oldest first per service.

        Raises what the MetricSource raises. A version without a first-seen time is left out.
        """
        last = _times(self.metrics.fetch(last_seen), last_seen.labels)
        deploys = [
            Deploy(service, version, started_at, DeploySourceKind.DETECTED, last.get((service, version)))
            for (service, version), started_at in _times(self.metrics.fetch(first_seen), first_seen.labels).items()
        ]
        return sorted(deploys, key=lambda d: (d.service, d.started_at, d.version))


def _times(series: list[Series], labels: LabelNames) -> dict[tuple[str, str], datetime]:
    out = {}
    for s in series:
        service, version = s.labels.get(labels.service), s.labels.get(labels.version)
        if service is None or version is None or not s.values.size:
            continue
        out[(service, version)] = datetime.fromtimestamp(float(s.values[-1]), UTC)
    return out
