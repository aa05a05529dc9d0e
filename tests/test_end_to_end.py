"""Every simulated release judged through the real Prometheus, and the CLI against it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from releasehealth import analysis
from releasehealth.cli import app
from releasehealth.config import Catalogue
from releasehealth.model import Action, Classification
from releasehealth.simulator import Fleet, ReleaseLabel

runner = CliRunner()


def test_every_regression_is_rolled_back_and_no_good_release_is(fleet: Fleet, catalogue: Catalogue, sources) -> None:
    outcomes = {}
    for service in fleet.services:
        judged = {e.candidate.version: e for e in analysis.evaluate_releases(catalogue, sources, service.name)}
        for release in service.releases[1:]:
            outcomes[(service.name, release.version)] = (release.label, judged[release.version])
    labels = {label for label, _ in outcomes.values()}
    assert {ReleaseLabel.GOOD, ReleaseLabel.ERROR_RATIO, ReleaseLabel.LATENCY} <= labels
    wrong = {
        key: (label.value, e.recommendation.action.value, e.recommendation.reason)
        for key, (label, e) in outcomes.items()
        if (e.recommendation.action is Action.ROLLBACK) != label.is_regression
    }
    assert wrong == {}
    for label, evaluation in outcomes.values():
        if label.is_regression:
            failed = {v.metric for v in evaluation.score.verdicts if v.classification is Classification.HIGH}
            assert failed == {"error_ratio" if label is ReleaseLabel.ERROR_RATIO else "p95_latency"}


def test_the_fleet_overview_uses_one_query_per_template(fleet: Fleet, catalogue: Catalogue) -> None:
    sources = analysis.connect(catalogue)
    evaluations = analysis.evaluate_fleet(catalogue, sources)
    assert [e.service for e in evaluations] == [s.name for s in fleet.services]
    assert [e.candidate.version for e in evaluations] == [s.releases[-1].version for s in fleet.services]
    # first_seen + last_seen + requests + errors + latency_buckets, whatever the number of services.
    assert sources.metrics.queries_run == 5


def test_evaluate_prints_the_verdict_with_reasons_and_queries(fleet: Fleet, config_file: Path) -> None:
    service, release = _a_release(fleet, ReleaseLabel.ERROR_RATIO)
    result = runner.invoke(app, ["-c", str(config_file), "evaluate", service, "--version", release])
    assert result.exit_code == 3, result.output
    assert "ROLLBACK" in result.output
    assert "error_ratio HIGH" in result.output
    assert f'increase(http_requests_total{{service="{service}",code=~"5.."}}[1m])' in result.output
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
    assert {q["template"] for q in document["queries"]} == {"first_seen", "last_seen", "requests", "errors", "latency_buckets"}


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
