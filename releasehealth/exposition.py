"""Verdicts as Prometheus metrics: the latest evaluation of each service, through prometheus-client's
registry and text exposition (version 0.0.4), for alerts on what the pipeline and on-call see."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from releasehealth.errors import ReleaseHealthError
from releasehealth.model import Action
from releasehealth.store import StoredEvaluation

if TYPE_CHECKING:
    from releasehealth.watch import WatchStats

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


WATCH_HELP = {
    "release_health_watch_scans_total": "Scans for new deploys the watcher made while it held the store's lease.",
    "release_health_watch_scan_errors_total": "Scans whose deploys could not be read (nothing was judged then).",
    "release_health_watch_source_up": "1 when the last scan read the deploys, 0 when the metrics source failed.",
    "release_health_watch_lease_held": "1 when this watcher holds the store's lease (it judges and notifies).",
    "release_health_watch_last_scan_timestamp_seconds": "When the watcher last scanned (Unix time).",
    "release_health_watch_releases_watched": "Releases still being watched (checkpoints to come).",
    "release_health_watch_evaluations_total": "Evaluations made at checkpoints.",
    "release_health_watch_evaluation_failures_total": "Checkpoints whose evaluation failed.",
    "release_health_watch_evaluation_seconds_total": "Time spent evaluating at checkpoints.",
    "release_health_watch_messages_pending": "Messages queued in the store and not delivered yet.",
    "release_health_watch_messages_sent_total": "Messages delivered, by channel.",
    "release_health_watch_messages_failed_total": "Deliveries that failed (each retried later), by channel.",
}


class WatchCollector(Collector):
    """The watcher's totals (a `releasehealth.watch.WatchStats`, read at each scrape) and the latest
    verdict of each service from the store, so that one alert rule can page on a ROLLBACK."""

    def __init__(self, stats: WatchStats, latest: Callable[[], Iterable[StoredEvaluation]]) -> None:
        self.stats, self.latest = stats, latest

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        for name, value, kind in (
            ("release_health_watch_scans_total", s.scans, CounterMetricFamily),
            ("release_health_watch_scan_errors_total", s.scan_errors, CounterMetricFamily),
            ("release_health_watch_source_up", float(s.source_up), GaugeMetricFamily),
            ("release_health_watch_lease_held", float(s.holder), GaugeMetricFamily),
            ("release_health_watch_last_scan_timestamp_seconds", s.last_scan, GaugeMetricFamily),
            ("release_health_watch_releases_watched", s.watching, GaugeMetricFamily),
            ("release_health_watch_evaluations_total", s.evaluations, CounterMetricFamily),
            ("release_health_watch_evaluation_failures_total", s.evaluation_failures, CounterMetricFamily),
            ("release_health_watch_evaluation_seconds_total", s.evaluation_seconds, CounterMetricFamily),
            ("release_health_watch_messages_pending", s.pending, GaugeMetricFamily),
        ):
            yield kind(name.removesuffix("_total") if kind is CounterMetricFamily else name, WATCH_HELP[name], value=value)
        for name, counts in (("release_health_watch_messages_sent_total", s.sent), ("release_health_watch_messages_failed_total", s.failed)):
            family = CounterMetricFamily(name.removesuffix("_total"), WATCH_HELP[name], labels=["channel"])
            for channel, count in sorted(counts.items()):
                family.add_metric([channel], count)
            yield family
        try:
            stored = list(self.latest())
        except ReleaseHealthError:  # the store unreadable: the watcher's own metrics still answer
            stored = []
        yield from VerdictCollector(stored).collect()


def watch_registry(stats: WatchStats, latest: Callable[[], Iterable[StoredEvaluation]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WatchCollector(stats, latest))
    return registry
