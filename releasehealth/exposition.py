"""Verdicts as Prometheus metrics: the latest evaluation of each service, through prometheus-client's
registry and text exposition (version 0.0.4), for alerts on what the pipeline and on-call see."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from releasehealth.model import Action
from releasehealth.store import StoredEvaluation

EXPOSITION = CONTENT_TYPE_PLAIN_0_0_4
HELP = {
    "release_health_score": "Score (0-100) of the latest evaluated release of each service.",
    "release_health_verdict": "1 for the recommended action of the latest evaluated release, 0 for the other actions.",
    "release_health_metric_classification": "1 for each metric's classification in the latest evaluation.",
    "release_health_evaluated_timestamp_seconds": "When the latest evaluation was made (Unix time).",
}
RELEASE_LABELS = ["service", "version"]


class VerdictCollector(Collector):
    """The latest evaluation of each service as gauges: its score, its action (1 for the current one, 0 for
    the others, so alerts can match either), each metric's classification, and when it was made."""

    def __init__(self, stored: Iterable[StoredEvaluation]) -> None:
        self.stored = list(stored)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        score, verdict, classification, evaluated = (
            GaugeMetricFamily(name, HELP[name], labels=RELEASE_LABELS + extra)
            for name, extra in (
                ("release_health_score", []), ("release_health_verdict", ["action"]),
                ("release_health_metric_classification", ["metric", "classification"]),
                ("release_health_evaluated_timestamp_seconds", []),
            )
        )
        for s in self.stored:
            release = [s.service, s.version]
            if s.score is not None and math.isfinite(s.score):
                score.add_metric(release, float(s.score))
            for action in Action:
                verdict.add_metric([*release, action.value], float(action is s.action))
            for v in s.document.get("verdicts", []):
                classification.add_metric([*release, str(v.get("metric", "")), str(v.get("classification", ""))], 1.0)
            evaluated.add_metric(release, s.evaluated_at.timestamp())
        yield from (score, verdict, classification, evaluated)


def exposition(stored: Iterable[StoredEvaluation]) -> str:
    """The latest evaluation of each service in the Prometheus text format (version 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VerdictCollector(stored))
    return generate_latest(registry).decode("utf-8")
