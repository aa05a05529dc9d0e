"""The sources an evaluation reads, once opened (by releasehealth.wiring): the metrics, the deploys detected
in them, the logs, and the history store with its recorded deploys, verdicts and not-a-risk marks."""

from __future__ import annotations

from dataclasses import dataclass

from releasehealth.collectors.base import LogSource, MetricSource
from releasehealth.collectors.deploys import MetricDeploySource
from releasehealth.store import Store
from releasehealth.verdicts import SourceHealth


@dataclass(frozen=True, kw_only=True)
class Sources:
    metrics: MetricSource
    deploys: MetricDeploySource
    logs: LogSource | None = None
    store: Store | None = None  # the history store: recorded deploys, verdicts (last-good), not-a-risk marks
    not_a_risk: frozenset[str] = frozenset()  # the signatures the configuration marks not a risk
    service_names: frozenset[str] = frozenset()  # the catalogue's services (and their log service values)

    def marked_not_a_risk(self) -> frozenset[str]:
        """The signatures marked not a risk in the configuration and in the history store: both count."""
        return self.not_a_risk | (self.store.not_a_risk() if self.store is not None else frozenset())

    def health(self) -> list[SourceHealth]:
        """Whether each data source answers a trivial query, and how fast."""
        return [self.metrics.check()] + ([self.logs.check()] if self.logs is not None else [])
