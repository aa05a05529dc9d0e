"""Every simulated release judged through the real Prometheus, and the CLI against it."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from releasehealth import config, wiring
from releasehealth.cli import app
from releasehealth.config import Catalogue
from releasehealth.model import Action, Classification, SignatureStatus
from releasehealth.simulator import FLEET_SIZE, Fleet, ReleaseLabel, service_name
from releasehealth.verdicts import Evaluation
from releasehealth.wiring import Wiring
from testing.configs import example_config
from testing.servers import free_port
from tests import helpers

runner = CliRunner()


FAILING_METRIC = {
    ReleaseLabel.ERROR_RATIO: "error_ratio",
    ReleaseLabel.LATENCY: "p95_latency",
    ReleaseLabel.NEW_EXCEPTION: "log_signatures",
    ReleaseLabel.ERROR_LOG_BURST: "log_signatures",
}


Judged = dict[tuple[str, str], tuple[ReleaseLabel, Evaluation]]


class Judgements:
    """Each service's releases judged once through the session's real servers, when a test first asks
    for them: judging reads the service's logs from noida-db (seconds per service), so three tests share
    the outcomes, and the per-service test pays for one service at a time."""

    def __init__(self, fleet: Fleet, wired: Wiring) -> None:
        self._fleet = fleet
        self._wired = wired
        self._by_service: dict[str, Judged] = {}

    def of(self, service: str) -> Judged:
        if service not in self._by_service:
            simulated = next(s for s in self._fleet.services if s.name == service)
            judged = {e.candidate.version: e for e in helpers.releases(self._wired, service)}
            self._by_service[service] = {
                (service, r.version): (r.label, judged[r.version]) for r in simulated.releases[1:]
            }
        return self._by_service[service]

    def every(self) -> Judged:
        """Every release of the fleet; the services not judged yet two at a time, as the API and the
        dashboard share one wiring between requests."""
        with ThreadPoolExecutor(2) as pool:
            judged = list(pool.map(self.of, (s.name for s in self._fleet.services)))
        return {key: outcome for service in judged for key, outcome in service.items()}


@pytest.fixture(scope="module")
def judgements(fleet: Fleet, catalogue: Catalogue, sources) -> Judgements:
    return Judgements(fleet, Wiring(catalogue, sources))


def test_the_fleet_has_every_fault_and_good_releases(fleet: Fleet) -> None:
    labels = {r.label for s in fleet.services for r in s.releases[1:]}
    assert labels == set(FAILING_METRIC) | {ReleaseLabel.GOOD}


@pytest.mark.parametrize("service", [service_name(i) for i in range(FLEET_SIZE)])
def test_every_regression_is_rolled_back_and_no_good_release_is_flagged(service: str, judgements: Judgements) -> None:
    outcomes = judgements.of(service)
    wrong = {
        key: (label.value, e.recommendation.action.value, e.recommendation.reason)
        for key, (label, e) in outcomes.items()
        if (e.recommendation.action is Action.ROLLBACK) != label.is_regression
    }
    assert wrong == {}
    for label, evaluation in outcomes.values():
        failed = {v.metric for v in evaluation.score.verdicts if v.classification is Classification.HIGH}
        if label is ReleaseLabel.GOOD:
            assert failed == set(), evaluation.recommendation.reason
        else:
            assert FAILING_METRIC[label] in failed, (label, evaluation.recommendation.reason)


def test_a_new_exception_is_named_in_the_reason(fleet_logs, judgements: Judgements) -> None:
    truth = fleet_logs.truth()
    named = 0
    for (service, version), (label, evaluation) in judgements.every().items():
        if label is ReleaseLabel.NEW_EXCEPTION:
            error_type = truth[f"{service}@{version}"]["error_type"]
            new = [s for s in evaluation.logs.signatures if s.status is SignatureStatus.NEW and s.credible]
            assert [s.error_type for s in new if s.level == "error"] == [error_type]
            assert f'NEW error signature "{new[0].template}" ({error_type})' in evaluation.recommendation.reason
            named += 1
    assert named >= 1


def test_evaluate_prints_the_verdict_with_reasons_and_queries(fleet: Fleet, config_file: Path) -> None:
    service, release = _a_release(fleet, ReleaseLabel.ERROR_RATIO)
    result = runner.invoke(app, ["-c", str(config_file), "evaluate", service, "--version", release])
    assert result.exit_code == 3, result.output
    assert "ROLLBACK" in result.output
    assert "error_ratio HIGH" in result.output
    assert f'sum by (service, version, code) (increase(http_requests_total{{service="{service}"}}[1m]))' in result.output
    assert f"kubectl rollout undo deployment/{service}" in result.output


def test_evaluate_json_carries_verdicts_reasons_baseline_and_queries(fleet: Fleet, config_file: Path) -> None:
    service, release = _a_release(fleet, ReleaseLabel.LATENCY)
    result = runner.invoke(app, ["-c", str(config_file), "evaluate", service, "--version", release, "--format", "json"])
    assert result.exit_code == 3, result.output
    document = json.loads(result.output)
    assert document["recommendation"]["action"] == "ROLLBACK"
    assert document["candidate"]["version"] == release
    assert document["baseline"]["version"] == fleet.service(service).releases[
        [r.version for r in fleet.service(service).releases].index(release) - 1
    ].version
    by_metric = {v["metric"]: v for v in document["verdicts"]}
    assert by_metric["p95_latency"]["classification"] == "HIGH"
    assert "p95_latency HIGH" in by_metric["p95_latency"]["reason"]
    assert by_metric["p95_latency"]["queries"] and by_metric["p95_latency"]["test"]
    assert {q["template"] for q in document["queries"]} == {
        "first_seen", "last_seen", "deploy_events", "requests", "latency_buckets", "memory", "cpu_per_request",
        "logs",
    }


def test_a_good_release_exits_0(fleet: Fleet, config_file: Path) -> None:
    service, release = _a_release(fleet, ReleaseLabel.GOOD)
    result = runner.invoke(app, ["-c", str(config_file), "evaluate", service, "--version", release])
    assert result.exit_code == 0, result.output
    assert "PROMOTE" in result.output


def test_the_installed_console_script_runs_against_prometheus(fleet: Fleet, config_file: Path) -> None:
    service, release = _a_release(fleet, ReleaseLabel.ERROR_RATIO)
    script = Path(sys.executable).parent / "release-health"
    done = subprocess.run(
        [str(script), "-c", str(config_file), "evaluate", service, "--version", release],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "ROLLBACK" in done.stdout


def test_deploys_lists_every_version(fleet: Fleet, config_file: Path) -> None:
    service = fleet.services[1]
    result = runner.invoke(app, ["-c", str(config_file), "deploys", service.name])
    assert result.exit_code == 0, result.output
    for release in service.releases:
        assert release.version in result.output


def _a_release(fleet: Fleet, label: ReleaseLabel) -> tuple[str, str]:
    for service in fleet.services:
        for release in service.releases:
            if release.label is label:
                return service.name, release.version
    raise AssertionError(f"the simulated fleet has no {label} release")


def test_the_fleet_overview_uses_at_most_two_queries_per_template(fleet: Fleet, catalogue: Catalogue) -> None:
    wired = wiring.connect(catalogue)
    sources = wired.sources
    evaluations = helpers.fleet(Wiring(catalogue, sources))
    assert [e.service for e in evaluations] == [s.name for s in fleet.services]
    assert [e.candidate.version for e in evaluations] == [s.releases[-1].version for s in fleet.services]
    # first_seen + last_seen in two stages each (a coarse scan, then the steps it found), then requests (the
    # errors are their 5xx part), latency_buckets, memory and cpu_per_request each in one query, or two when
    # the services' windows lie apart (fetch.split_span), whatever the number of services.
    ran: dict[str, set[tuple[object, ...]]] = {}
    for query in (q for e in evaluations for q in e.queries if q.source == sources.metrics.name):
        ran.setdefault(query.template, set()).add((query.text, query.start, query.end))
    assert set(ran) == {"first_seen", "last_seen", "requests", "latency_buckets", "memory", "cpu_per_request"}
    assert all(len(ran[name]) == 2 for name in ("first_seen", "last_seen"))
    assert all(len(texts) <= 2 for texts in ran.values())
    assert sources.metrics.queries_run == sum(len(texts) for texts in ran.values())
    # deploy events + one multi-search (counts and message samples), for the whole fleet.
    assert sources.logs.requests_made == 2


def test_one_release_reads_its_logs_in_at_most_four_requests(fleet: Fleet, catalogue: Catalogue) -> None:
    wired = wiring.connect(catalogue)
    sources = wired.sources
    evaluation = helpers.evaluate(Wiring(catalogue, sources), fleet.services[0].name)
    assert evaluation.logs is not None and not evaluation.logs.error
    assert evaluation.candidate.source.value == "event" and evaluation.candidate.commit
    assert sources.logs.requests_made <= 4


def test_elasticsearch_down_leaves_the_metrics_verdict_and_never_promotes(fleet: Fleet, prometheus) -> None:
    raw = example_config(prometheus.url, f"http://127.0.0.1:{free_port()}")
    raw["sources"]["elasticsearch"].update(retries=0, timeout="2s")
    catalogue = config.parse(raw)
    wired = wiring.connect(catalogue)
    sources = wired.sources
    good = next(s for s in fleet.services if s.releases[-1].label is ReleaseLabel.GOOD)
    evaluation = helpers.evaluate(Wiring(catalogue, sources), good.name)
    by_metric = {v.metric: v for v in evaluation.score.verdicts}
    assert by_metric["error_ratio"].classification is Classification.PASS
    assert by_metric["log_signatures"].classification is Classification.ERROR
    assert "logs could not be read" in by_metric["log_signatures"].reason
    assert evaluation.recommendation.action is not Action.PROMOTE
    assert any("deploy events could not be read" in note for note in evaluation.notes)


def test_a_missing_log_index_is_named_in_the_verdict(fleet: Fleet, prometheus, elasticsearch) -> None:
    raw = example_config(prometheus.url, elasticsearch.url)
    raw["sources"]["elasticsearch"]["index"] = "applogs-{service}"
    catalogue = config.parse(raw)
    evaluation = helpers.evaluate(wiring.connect(catalogue), fleet.services[0].name)
    errors = [v.reason for v in evaluation.score.verdicts if v.classification is Classification.ERROR]
    assert errors and all(f"index applogs-{fleet.services[0].name} does not exist" in r for r in errors)


def test_signatures_marked_failing_are_the_ones_the_verdict_names(judgements: Judgements) -> None:
    for _, evaluation in judgements.every().values():
        failing = [s for s in evaluation.logs.signatures if s.failing]
        verdict = next(v for v in evaluation.score.verdicts if v.metric == "log_signatures")
        assert bool(failing) == (verdict.classification is Classification.HIGH)
        for signature in failing[:3]:
            assert signature.template in verdict.reason


def test_a_signature_on_the_not_a_risk_list_no_longer_fails(fleet: Fleet, prometheus, elasticsearch) -> None:
    catalogue = config.parse(example_config(prometheus.url, elasticsearch.url))
    wired = wiring.connect(catalogue)
    sources = wired.sources
    service, release = next(
        (s.name, r.version) for s in fleet.services for r in s.releases if r.label is ReleaseLabel.NEW_EXCEPTION
    )
    before = helpers.evaluate(Wiring(catalogue, sources), service, release)
    failing = [s.template for s in before.logs.signatures if s.failing]
    assert failing
    raw = example_config(prometheus.url, elasticsearch.url)
    raw["logs"]["not_a_risk"] = failing
    catalogue = config.parse(raw)
    after = helpers.evaluate(wiring.connect(catalogue), service, release)
    verdict = next(v for v in after.score.verdicts if v.metric == "log_signatures")
    assert verdict.classification is Classification.PASS and "on the not-a-risk list" in verdict.reason
    assert all(s.ignored for s in after.logs.signatures if s.template in failing)


def test_a_time_shifted_baseline_reads_a_second_span_and_judges(fleet: Fleet, catalogue: Catalogue, sources) -> None:
    service = fleet.services[0]
    shifted = config.with_baseline(catalogue.policy, "time-shifted:12h")
    evaluation = helpers.evaluate(Wiring(catalogue, sources), service.name, policy=shifted)
    assert evaluation.policy.value == "time-shifted"
    assert evaluation.baseline_window.start == evaluation.candidate_window.start - timedelta(hours=12)
    serving = [r for r in service.releases if r.deployed_at <= evaluation.baseline_window.start][-1]
    assert evaluation.baseline.version == serving.version
    assert "time-shifted by 12 h" in evaluation.baseline_description
    requests_queries = [q for q in evaluation.queries if q.template == "requests"]
    assert len(requests_queries) == 2  # two spans, twelve hours apart, not one query over both
    assert evaluation.score is not None and evaluation.recommendation.action is not Action.INCONCLUSIVE


def test_a_pinned_baseline_compares_with_that_version(fleet: Fleet, config_file: Path) -> None:
    service = fleet.services[1]
    pinned = service.releases[1].version
    result = runner.invoke(app, ["-c", str(config_file), "evaluate", service.name, "--baseline", f"pinned:{pinned}", "-f", "json"])
    document = json.loads(result.output)
    assert document["baseline"]["version"] == pinned and document["baseline_policy"] == "pinned"
    assert document["baseline_description"] == f"pinned {pinned}"


def test_the_service_timeline_counts_what_each_version_served(fleet: Fleet, catalogue: Catalogue, sources) -> None:
    service = fleet.services[2]
    line = helpers.timeline(Wiring(catalogue, sources), service.name, now=fleet.end)

    assert line.step == timedelta(minutes=5) and not line.errors
    # One range query per quantity for this service, then the deploy scan's (first/last seen, events).
    assert [q.template for q in line.queries[:2]] == ["requests", "latency_buckets"]  # the errors: 5xx requests
    assert all(q.services == (service.name,) for q in line.queries[:2])
    assert [d.version for d in line.deploys] == [r.version for r in service.releases]
    seconds = line.step.total_seconds()
    for version, rate in line.request_rate.items():
        served = service.counts(version, line.start, line.end)["requests"]
        assert rate.values.sum() * seconds == pytest.approx(served, rel=0.005), version
        ratio = line.error_ratio[version].values
        assert np.nanmax(ratio) < 0.2 and np.nanmin(ratio) >= 0
        assert np.nanmedian(line.latency[version].values) == pytest.approx(service.release(version).p95_latency, rel=0.15)


def test_a_signature_marked_not_a_risk_in_the_store_no_longer_fails(
    fleet: Fleet, catalogue: Catalogue, sources, tmp_path: Path
) -> None:
    service, release = next(
        (s.name, r.version) for s in fleet.services for r in s.releases if r.label is ReleaseLabel.NEW_EXCEPTION
    )
    failing = [s.template for s in helpers.evaluate(Wiring(catalogue, sources), service, release).logs.signatures if s.failing]
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(example_config(catalogue.prometheus.url, catalogue.elasticsearch.url)))
    for template in failing:
        marked = runner.invoke(app, ["-c", str(path), "--store", store_url, "not-a-risk", template, "--note", "known"])
        assert marked.exit_code == 0, marked.output

    evaluated = runner.invoke(app, ["-c", str(path), "--store", store_url, "evaluate", service, "--version", release, "-f", "json"])

    verdict = next(v for v in json.loads(evaluated.output)["verdicts"] if v["metric"] == "log_signatures")
    assert verdict["classification"] == "PASS" and "on the not-a-risk list" in verdict["reason"]
