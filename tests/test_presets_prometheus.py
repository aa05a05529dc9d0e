"""Every preset against a real Prometheus holding the same simulated releases under each preset's names:
the verdicts are the generic preset's; versions from kube-state-metrics alone find every deploy; a
version label and Kubernetes that disagree are reported, the label winning."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from releasehealth import config, wiring
from releasehealth.config import CONCURRENT_NEEDS_A_VERSION, Catalogue
from releasehealth.model import Action, DeploySourceKind
from releasehealth.simulator import Fleet, simulate
from releasehealth.verdicts import Evaluation
from releasehealth.wiring import Wiring
from testing.configs import example_config
from testing.servers import PrometheusServer, backfill, start_prometheus
from tests import helpers

PRESETS = ("generic", "spring-boot", "istio", "linkerd", "opentelemetry", "nginx-ingress")
STEP = timedelta(minutes=1)
# A release whose image tag is not its version label: what a conflict between the two looks like.
HOTFIX = (1, 2)  # (service index, release index)


@pytest.fixture(scope="module")
def preset_fleet() -> Fleet:
    # The accuracy scenario: every kind of fault (errors, latency, memory, CPU, traffic) and the good-release
    # variants, on six services (every third on low traffic), ending at the last midnight as the session's.
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # Ten hours scraped every minute keep the TSDB small (six namings of every series): increase() over
    # one-minute steps is as exact with one scrape a step as with two.
    return simulate(seed=11, end=end, hours=10, services=6, scenario="accuracy", scrape_interval=timedelta(minutes=1))


def _image_tags(fleet: Fleet) -> dict[tuple[str, str], str]:
    service = fleet.services[HOTFIX[0]]
    version = service.releases[HOTFIX[1]].version
    return {(service.name, version): f"{version}-hotfix"}


@pytest.fixture(scope="module")
def preset_prometheus(preset_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    folder = tmp_path_factory.mktemp("presets")
    everywhere = {s.name: PRESETS for s in preset_fleet.services}
    tsdb = backfill(preset_fleet, folder, presets=everywhere, kubernetes=True, image_tags=_image_tags(preset_fleet))
    server = start_prometheus(tsdb, folder)
    yield server
    server.stop()


def _catalogue(url: str, fleet: Fleet, preset: str, **service: object) -> Catalogue:
    raw = example_config(url)
    raw["services"] = [{"name": s.name, "preset": preset, **service} for s in fleet.services]
    if preset == "nginx-ingress":  # no version label: versions from kube-state-metrics
        raw["services"] = [{"kubernetes": {"namespace": "shop"}, **s} for s in raw["services"]]
    return config.parse(raw, f"{preset}.yaml")


def _restricted(catalogue: Catalogue, names: set[str]) -> Catalogue:
    """The catalogue with only the metrics named: the generic preset cut to what another preset has."""
    services = tuple(dataclasses.replace(s, metrics=tuple(m for m in s.metrics if m.name in names)) for s in catalogue.services)
    return dataclasses.replace(catalogue, services=services)


def _releases(catalogue: Catalogue, fleet: Fleet) -> list[Evaluation]:
    wired = wiring.connect(catalogue)
    sources = wired.sources
    now = fleet.end
    return [e for s in fleet.services for e in helpers.releases(Wiring(catalogue, sources), s.name, now=now)]


@pytest.mark.parametrize("preset", PRESETS[1:])
def test_every_preset_gives_the_generic_verdicts(preset: str, preset_fleet: Fleet, preset_prometheus: PrometheusServer) -> None:
    mine = _catalogue(preset_prometheus.url, preset_fleet, preset)
    shared = {m.name for m in mine.services[0].metrics} & {m.name for m in config.load_preset("generic").metrics}
    generic = _restricted(_catalogue(preset_prometheus.url, preset_fleet, "generic"), shared)
    expected, got = _releases(generic, preset_fleet), _releases(_restricted(mine, shared), preset_fleet)
    judged = [e for e in expected if e.score is not None]
    assert len(judged) >= 12  # every release after each service's first is judged
    assert len(got) == len(expected)
    for want, have in zip(expected, got, strict=True):
        assert (have.service, have.candidate.started_at) == (want.service, want.candidate.started_at)
        assert have.recommendation.action is want.recommendation.action, (have.recommendation, want.recommendation)
        if want.score is None:
            continue
        for a, b in zip(want.score.verdicts, have.score.verdicts, strict=True):
            assert (b.metric, b.classification) == (a.metric, a.classification), (b.reason, a.reason)
            assert b.candidate.value == pytest.approx(a.candidate.value, rel=1e-6, nan_ok=True)  # CPU: counters written to 6 decimals
            assert b.baseline.value == pytest.approx(a.baseline.value, rel=1e-6, nan_ok=True)  # CPU: counters written to 6 decimals
    # The generic verdicts themselves are not all alike: parity over faults and good releases both.
    actions = {e.recommendation.action for e in judged}
    assert {Action.PROMOTE, Action.ROLLBACK} <= actions


def test_spring_boot_judges_its_circuit_breakers_where_resilience4j_is_there(
    preset_fleet: Fleet, preset_prometheus: PrometheusServer
) -> None:
    catalogue = _catalogue(preset_prometheus.url, preset_fleet, "spring-boot")
    evaluation = helpers.evaluate(wiring.connect(catalogue), preset_fleet.services[0].name, now=preset_fleet.end)
    breakers = next(v for v in evaluation.score.verdicts if v.metric == "open_circuit_breakers")
    assert breakers.classification.value == "PASS" and not breakers.muted
    assert breakers.candidate.value == 0  # every breaker closed in the simulation


def test_kubernetes_alone_finds_every_deploy_within_one_step(preset_fleet: Fleet, preset_prometheus: PrometheusServer) -> None:
    catalogue = _catalogue(preset_prometheus.url, preset_fleet, "nginx-ingress")
    wired = wiring.connect(catalogue)
    sources = wired.sources
    tags = _image_tags(preset_fleet)
    for service in preset_fleet.services:
        deploys = helpers.deploys(Wiring(catalogue, sources), service.name, now=preset_fleet.end)
        assert [d.version for d in deploys] == [tags.get((service.name, r.version), r.version) for r in service.releases]
        assert {d.source for d in deploys} == {DeploySourceKind.KUBERNETES}
        for deploy, release in zip(deploys[1:], service.releases[1:], strict=True):
            assert abs(deploy.started_at - release.deployed_at) <= STEP, (deploy, release)


def test_kubernetes_takes_over_when_the_configured_version_label_is_missing(
    preset_fleet: Fleet, preset_prometheus: PrometheusServer
) -> None:
    # Linkerd's metrics here carry `version`, not `app_version`: the label is missing, so Kubernetes tells.
    catalogue = _catalogue(
        preset_prometheus.url, preset_fleet, "linkerd", labels={"version": "app_version"}, kubernetes={"container": "app"}
    )
    linkerd = {m.name for m in catalogue.services[0].metrics}
    generic = _restricted(_catalogue(preset_prometheus.url, preset_fleet, "generic"), linkerd)
    service = preset_fleet.services[0]
    got = helpers.releases(wiring.connect(catalogue), service.name, now=preset_fleet.end)
    want = helpers.releases(wiring.connect(generic), service.name, now=preset_fleet.end)
    assert [e.candidate.version for e in got] == [e.candidate.version for e in want]
    assert [e.recommendation.action for e in got] == [e.recommendation.action for e in want]
    for have, expected in zip(got, want, strict=True):
        error = [v for v in (have.score.verdicts if have.score else ()) if v.metric == "error_ratio"]
        if error:
            reference = next(v for v in expected.score.verdicts if v.metric == "error_ratio")
            assert error[0].candidate.value == pytest.approx(reference.candidate.value, rel=1e-9)


def test_a_version_label_and_kubernetes_that_disagree_are_reported_and_the_label_wins(
    preset_fleet: Fleet, preset_prometheus: PrometheusServer
) -> None:
    catalogue = _catalogue(preset_prometheus.url, preset_fleet, "istio", kubernetes={"namespace": "shop"})
    service = preset_fleet.services[HOTFIX[0]]
    release = service.releases[HOTFIX[1]]
    wired = wiring.connect(catalogue)
    sources = wired.sources
    evaluation = helpers.evaluate(Wiring(catalogue, sources), service.name, release.version, now=preset_fleet.end)
    assert evaluation.candidate.version == release.version  # the label's, not the image tag's
    conflicts = [n for n in evaluation.notes if n.startswith("version conflict")]
    assert conflicts == [
        f"version conflict at {release.deployed_at:%Y-%m-%d %H:%M} UTC: the destination_version label says "
        f"{release.version}, Kubernetes (deployment {service.name}) says {release.version}-hotfix; the label is used"
    ]
    other = preset_fleet.services[0]
    quiet = helpers.evaluate(Wiring(catalogue, sources), other.name, now=preset_fleet.end)
    assert not [n for n in quiet.notes if n.startswith("version conflict")]


def test_the_service_page_splits_unversioned_traffic_by_the_kubernetes_deploys(
    preset_fleet: Fleet, preset_prometheus: PrometheusServer
) -> None:
    catalogue = _catalogue(preset_prometheus.url, preset_fleet, "nginx-ingress")
    service = preset_fleet.services[0]
    timeline = helpers.timeline(wiring.connect(catalogue), service.name, now=preset_fleet.end)
    assert not timeline.errors
    served = {version: float(np.nansum(s.values)) * timeline.step.total_seconds() for version, s in timeline.request_rate.items()}
    assert set(served) <= {r.version for r in service.releases} | {""}
    for release in service.releases[1:]:
        truth = service.counts(release.version, timeline.start, timeline.end)["requests"]
        # 5-minute steps: the step holding a deploy goes to the old version, a few minutes of hours of traffic.
        assert served.get(release.version, 0.0) == pytest.approx(truth, rel=0.05), release.version


def test_the_pod_template_hash_can_be_the_version(preset_fleet: Fleet, preset_prometheus: PrometheusServer) -> None:
    from releasehealth.simulator.kubernetes import replicaset_name

    catalogue = _catalogue(
        preset_prometheus.url, preset_fleet, "nginx-ingress", kubernetes={"namespace": "shop", "version_from": "replicaset"}
    )
    service = preset_fleet.services[2]
    deploys = helpers.deploys(wiring.connect(catalogue), service.name, now=preset_fleet.end)
    assert [d.version for d in deploys] == [replicaset_name(service.name, r.version).rsplit("-", 1)[1] for r in service.releases]
    for deploy, release in zip(deploys[1:], service.releases[1:], strict=True):
        assert abs(deploy.started_at - release.deployed_at) <= STEP


def test_a_fleet_mixing_presets_is_judged_in_one_batch_as_each_preset_alone(
    preset_fleet: Fleet, preset_prometheus: PrometheusServer
) -> None:
    raw = example_config(preset_prometheus.url)
    raw["services"] = [{"name": s.name, "preset": PRESETS[i % len(PRESETS)]} for i, s in enumerate(preset_fleet.services)]
    raw["services"] = [{**s, "kubernetes": {"namespace": "shop"}} if s["preset"] == "nginx-ingress" else s for s in raw["services"]]
    mixed = config.parse(raw, "mixed.yaml")
    wired = wiring.connect(mixed)
    sources = wired.sources
    together = helpers.fleet(Wiring(mixed, sources), now=preset_fleet.end)
    # One query per template per preset (every service here on a preset of its own), four per preset to
    # detect deploys (two templates in two stages), two for kube-state-metrics: never one per service.
    # One query per template a service's metrics read (a derived template reads its source's answer).
    read = [{s.derived[t].source if t in s.derived else t for m in s.metrics for t in m.queries.values()} for s in mixed.services]
    templates = sum(len(names) for names in read)
    assert sources.metrics.queries_run == templates + 4 * len(PRESETS) + 2
    for service, evaluation in zip(mixed.services, together, strict=True):
        alone = _catalogue(preset_prometheus.url, preset_fleet, service.preset)
        expected = helpers.evaluate(wiring.connect(alone), service.name, now=preset_fleet.end)
        assert (evaluation.service, evaluation.candidate.version) == (expected.service, expected.candidate.version)
        assert evaluation.recommendation == expected.recommendation


def test_a_concurrent_baseline_is_refused_when_the_version_label_turns_out_missing(
    preset_fleet: Fleet, preset_prometheus: PrometheusServer
) -> None:
    raw = example_config(preset_prometheus.url)
    raw["policy"]["baseline"] = "concurrent"
    service = preset_fleet.services[0]
    raw["services"] = [{"name": service.name, "preset": "linkerd", "labels": {"version": "app_version"}, "kubernetes": {}}]
    catalogue = config.parse(raw)  # the label is configured: only the data tells it is missing
    evaluation = helpers.evaluate(wiring.connect(catalogue), service.name, now=preset_fleet.end)
    assert evaluation.recommendation.action is Action.INCONCLUSIVE
    assert evaluation.recommendation.reason == (
        f"the metrics of {service.name} carry no version label, {CONCURRENT_NEEDS_A_VERSION}"
    )


def test_a_pod_join_gives_each_series_its_pods_version_and_the_generic_verdicts(
    preset_fleet: Fleet, preset_prometheus: PrometheusServer
) -> None:
    # Istio's metrics as scraped from the pods (namespace, pod labels), destination_version ignored: each
    # series takes the image tag of its pod from kube-state-metrics, inside the query.
    joined = {"join": "pod", "namespace": "shop", "container": "app"}
    catalogue = _catalogue(preset_prometheus.url, preset_fleet, "istio", kubernetes=joined)
    assert catalogue.services[0].labels.version == "version"
    shared = {m.name for m in catalogue.services[0].metrics}
    generic = _restricted(_catalogue(preset_prometheus.url, preset_fleet, "generic"), shared)
    got, want = _releases(catalogue, preset_fleet), _releases(generic, preset_fleet)
    tags = _image_tags(preset_fleet)
    assert [e.candidate.version for e in got] == [tags.get((e.service, e.candidate.version), e.candidate.version) for e in want]
    assert any(e.candidate.version.endswith("-hotfix") for e in got)
    for have, expected in zip(got, want, strict=True):
        assert have.candidate.started_at == expected.candidate.started_at
        assert have.recommendation.action is expected.recommendation.action, (have.recommendation, expected.recommendation)
        if expected.score is not None:
            assert [v.classification for v in have.score.verdicts] == [v.classification for v in expected.score.verdicts]
    assert any(" * on (namespace, pod) group_left (version) " in q.text for q in got[0].queries)


def test_a_pod_join_without_pod_labels_says_what_it_expected(preset_fleet: Fleet, preset_prometheus: PrometheusServer) -> None:
    # nginx's series are the controller's: no backend pod label, so the join finds nothing and says so.
    catalogue = _catalogue(preset_prometheus.url, preset_fleet, "nginx-ingress", kubernetes={"join": "pod"})
    service = preset_fleet.services[0]
    evaluation = helpers.evaluate(wiring.connect(catalogue), service.name, now=preset_fleet.end)
    assert evaluation.recommendation.action is Action.INCONCLUSIVE
    assert evaluation.recommendation.reason.startswith(
        "no data for preset nginx-ingress: expected metric nginx_ingress_controller_requests with "
        f'service="{service.name}", from pods kube-state-metrics knows (joined on namespace, pod)'
    )
