"""Where versions come from: a version label, Istio's "unknown", Kubernetes, and what is said when they disagree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from releasehealth.collectors.deploys import MetricDeploySource
from releasehealth.collectors.memory import MemoryMetricSource
from releasehealth.deploys import version_conflicts
from releasehealth.model import (
    Deploy,
    DeploySourceKind,
    KubernetesSettings,
    LabelNames,
    Query,
    Series,
    Service,
)
from releasehealth.wiring import Wiring
from tests import helpers

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)
LABELS = LabelNames("destination_workload", "destination_version")


def _seen(service: str, version: str | None, at: datetime) -> Series:
    labels = {"destination_workload": service} | ({"destination_version": version} if version is not None else {})
    return Series(labels, np.array([at.timestamp()]), np.array([at.timestamp()]))


def test_istio_unknown_and_a_missing_version_label_mean_no_version() -> None:
    query = Query(template="first_seen", text="q", services=("a", "b", "c"), labels=LABELS, source="memory")
    seen = [_seen("a", "unknown", T0), _seen("b", None, T0), _seen("c", "1.2.0", T0)]
    source = MemoryMetricSource({"first_seen": seen})
    found = MetricDeploySource(source).scan(query, query, no_version="unknown")
    assert [(d.service, d.version) for d in found.deploys] == [("c", "1.2.0")]
    assert found.unversioned == {"a": T0, "b": T0}


def _deploy(version: str, minutes: int, kind: DeploySourceKind = DeploySourceKind.DETECTED) -> Deploy:
    return Deploy("checkout", version, T0 + timedelta(minutes=minutes), kind)


SERVICE = Service(name="checkout", preset="istio", labels=LABELS, kubernetes=KubernetesSettings(deployment="checkout-deploy"))


def test_label_and_kubernetes_agreeing_within_two_steps_say_nothing() -> None:
    labelled = [_deploy("1.0", 0), _deploy("1.1", 120)]
    k8s = [_deploy("1.0", 30, DeploySourceKind.KUBERNETES), _deploy("1.1", 121, DeploySourceKind.KUBERNETES)]
    assert version_conflicts(labelled, k8s, STEP, SERVICE) == []  # kube-state-metrics' history began later


def test_every_disagreement_is_said_and_the_label_wins() -> None:
    labelled = [_deploy("1.0", 0), _deploy("1.1", 120), _deploy("1.2", 300)]
    k8s = [_deploy("1.0", 0), _deploy("1.1-rc", 121), _deploy("1.3", 400)]
    assert version_conflicts(labelled, k8s, STEP, SERVICE) == [
        "version conflict at 2026-11-26 10:00 UTC: the destination_version label says 1.1, "
        "Kubernetes (deployment checkout-deploy) says 1.1-rc; the label is used",
        "version conflict: the destination_version label turned 1.2 at 2026-11-26 13:00 UTC but Kubernetes saw "
        "no rollout of deployment checkout-deploy then; the label is used",
        "version conflict: Kubernetes rolled deployment checkout-deploy out to 1.3 at 2026-11-26 14:40 UTC but the "
        "destination_version label shows no new version then; the label is used",
    ]


def test_metrics_without_a_version_are_judged_by_time_between_deploy_events() -> None:
    """The demo fleet read as if its metrics had no version label: deploy events alone tell the versions
    (none for the initial release: what served before the first event is "(before <version>)"), and every
    release gets the verdict it gets with the label."""
    import dataclasses

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    catalogue, sources, fleet = helpers.demo(seed=7, end=end)
    unlabelled = dataclasses.replace(catalogue, services=tuple(
        dataclasses.replace(s, labels=LabelNames(s.labels.service, "")) for s in catalogue.services
    ))
    service = fleet.services[0].name
    want = helpers.releases(Wiring(catalogue, sources), service, now=fleet.end)
    got = helpers.releases(Wiring(unlabelled, sources), service, now=fleet.end)
    initial = want[-1].candidate.version
    assert [e.candidate.version for e in got] == [e.candidate.version for e in want[:-1]] + [f"(before {want[-2].candidate.version})"]
    assert initial not in {e.candidate.version for e in got}
    assert {e.candidate.source for e in got[:-1]} == {DeploySourceKind.EVENT}
    assert got[-2].baseline.version == f"(before {want[-2].candidate.version})"
    for have, expected in zip(got[:-1], want[:-1], strict=True):
        assert have.recommendation.action is expected.recommendation.action
        assert [v.classification for v in have.score.verdicts] == [v.classification for v in expected.score.verdicts]
