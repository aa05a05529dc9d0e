"""CLI exit codes and error messages (on the embedded demo fleet or a Prometheus that is down)."""

from __future__ import annotations

import json
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from typer.testing import CliRunner

from releasehealth.cli import app
from releasehealth.simulator import ReleaseLabel
from releasehealth.simulator.fleet import FAULTS
from testing.configs import example_config
from testing.servers import free_port
from tests import helpers

runner = CliRunner()
# The demo ends at a fixed time of day, as the test fleet does: the same traffic, and verdicts, every run.
DEMO_END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DEMO = ["--demo", "--demo-end", DEMO_END.strftime("%Y-%m-%dT%H:%M:%S")]


def test_unknown_service_is_a_clear_error_exit_1() -> None:
    result = runner.invoke(app, ["--demo", "evaluate", "no-such-service"])
    assert result.exit_code == 1
    assert "unknown service 'no-such-service'" in result.output
    assert "user-service" in result.output  # the known ones are listed
    typo = runner.invoke(app, ["--demo", "evaluate", "serch-service"])
    assert "unknown service 'serch-service' in <demo> (did you mean 'search-service'?)" in typo.output


def test_unknown_version_is_a_clear_error_exit_1() -> None:
    result = runner.invoke(app, ["--demo", "evaluate", "user-service", "--version", "9.9.9"])
    assert result.exit_code == 1
    assert "user-service has no version '9.9.9' in the last 7 d (seen: " in result.output
    typo = runner.invoke(app, ["--demo", "evaluate", "user-service", "--version", "3.12.1.0"])
    assert "(did you mean '3.12.1'?)" in typo.output


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["--demo", "evaluate"]).exit_code == 2
    assert runner.invoke(app, ["--demo", "evaluate", "user-service", "--format", "xml"]).exit_code == 2


def test_exit_codes_follow_the_recommendation_on_the_demo_fleet() -> None:
    _, _, fleet = helpers.demo(end=DEMO_END)
    expected = {label: 3 for label in FAULTS} | {ReleaseLabel.GOOD: 0}  # the default scenario's labels
    # The first release of each kind (each command builds the demo afresh: a second apiece); that every
    # release of the fleet gets its right verdict is the end-to-end suite's to check.
    first = {}
    for service in fleet.services:
        for release in service.releases[1:]:
            first.setdefault(release.label, (service.name, release.version))
    assert set(first) == set(expected)
    for label, (service, version) in first.items():
        result = runner.invoke(app, [*DEMO, "evaluate", service, "--version", version, "-f", "json"])
        assert result.exit_code == expected[label], result.output
        assert json.loads(result.output)["candidate"]["version"] == version


def test_prometheus_down_exits_1_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(example_config(url, timeout="2s", retries=1)))
    started = time.monotonic()
    result = runner.invoke(app, ["-c", str(path), "evaluate", "user-service"])
    assert result.exit_code == 1
    assert url in result.output and "unreachable" in result.output
    assert time.monotonic() - started < 30  # a limit against a hang, not a speed


def test_an_invalid_config_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "sources:\n  prometheus: {url: 'localhost:9090', timeout: 5x}\n"
        "policy: {thresholds: {pass: 70, marginal: 80}}\n"
        "services:\n  - {name: a, preset: generik}\n  - {name: b, labels: {service: 'bad-label'}}\n"
    )
    result = runner.invoke(app, ["-c", str(path), "services"])
    assert result.exit_code == 1
    for expected in (
        f"{path}: sources.prometheus.url: must start with http:// or https://",
        f"{path}: sources.prometheus.timeout: invalid duration '5x'",
        f"{path}: policy.thresholds: marginal (80.0) must not exceed pass (70.0)",
        f"{path}: services[0].preset: unknown preset 'generik' (did you mean 'generic'?) (known: generic, istio, linkerd",
        f"{path}: services[1].labels.service: 'bad-label' is not a valid Prometheus label name",
    ):
        assert expected in result.output, result.output


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["-c", str(tmp_path / "absent.yaml"), "services"])
    assert result.exit_code == 1
    assert "absent.yaml" in result.output and "cannot read" in result.output


def test_services_lists_the_demo_fleet() -> None:
    result = runner.invoke(app, ["--demo", "services"])
    assert result.exit_code == 0
    assert "user-service" in result.output and "order-service" in result.output


def test_check_reports_a_down_source_and_exits_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(example_config(url, retries=0)))
    result = runner.invoke(app, ["-c", str(path), "check"])
    assert result.exit_code == 1
    assert "DOWN" in result.output and url in result.output


def test_simulate_writes_openmetrics_and_truth(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--hours", "25", "--services", "2"])
    assert (tmp_path / "logs.ndjson").stat().st_size > 0 and (tmp_path / "logs-template.json").exists()
    assert result.exit_code == 0, result.output
    text = (tmp_path / "fleet.om").read_text()
    assert text.startswith("# TYPE http_requests counter") and text.endswith("# EOF\n")
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert [s["name"] for s in truth["services"]] == ["user-service", "order-service"]


def test_evaluate_prints_and_exports_the_log_findings() -> None:
    _, _, fleet = helpers.demo(end=DEMO_END)
    service, release = next(
        (s.name, r.version) for s in fleet.services for r in s.releases if r.label is ReleaseLabel.NEW_EXCEPTION
    )
    table = runner.invoke(app, [*DEMO, "evaluate", service, "--version", release])
    assert table.exit_code == 3
    assert "log signatures (rates per 1k requests):" in table.output
    assert "NEW       error" in table.output and "e.g. " in table.output
    document = json.loads(runner.invoke(app, [*DEMO, "evaluate", service, "--version", release, "-f", "json"]).output)
    first = document["logs"]["signatures"][0]
    assert first["status"] == "NEW" and first["credible"] and first["examples"]
    assert document["logs"]["candidate"]["sampled_from"] >= document["logs"]["candidate"]["sampled"] > 0
    assert document["candidate"]["commit"]


def test_evaluate_shows_each_query_on_one_line_and_the_bodies_with_verbose() -> None:
    short = runner.invoke(app, [*DEMO, "evaluate", "search-service"])
    queries = short.output.split("queries (Elasticsearch bodies with --verbose):\n")[1].splitlines()
    logs = next(q for q in queries if q.lstrip().startswith("[logs]"))
    assert "GET _msearch (" in logs and "for search-service" in logs and '"query"' not in short.output
    assert len(short.output.splitlines()) <= 60  # issue 19: an evaluation fits a terminal's scrollback at a glance
    verbose = runner.invoke(app, [*DEMO, "evaluate", "search-service", "--verbose"])
    assert verbose.exit_code == short.exit_code
    assert '"query"' in verbose.output and "--verbose" not in verbose.output


def test_the_hint_of_a_report_never_evaluated_is_a_command_that_works_when_copied(tmp_path: Path) -> None:
    store = ["--store", f"sqlite:///{tmp_path / 'team store.db'}"]  # a space: the hint must quote it
    first = runner.invoke(app, [*DEMO, *store, "report", "search-service", "--format", "md"])
    assert first.exit_code == 1
    hint = first.output.split("run `")[1].split("`")[0]
    words = shlex.split(hint)
    assert words[0] == "release-health" and {"--demo", "--demo-end", "--store", "--save"} <= set(words)
    assert runner.invoke(app, words[1:]).exit_code in (0, 2, 3)  # evaluated and saved: promote, hold or rollback
    second = runner.invoke(app, [*DEMO, *store, "report", "search-service", "--format", "md"])
    assert second.exit_code == 0 and "search-service" in second.output


def test_a_pinned_demo_reads_as_of_its_end_not_the_wall_clock() -> None:
    """--demo-end stops the demo's clock: every query, the deploy scan's too, ends at the demo's end."""
    result = runner.invoke(app, [*DEMO, "evaluate", "search-service", "-f", "json"])
    evaluation = json.loads(result.stdout)
    ends = {datetime.fromisoformat(q["end"]) for q in evaluation["queries"]}
    assert {q["template"] for q in evaluation["queries"]} >= {"first_seen", "deploy_events"}
    assert max(ends) == DEMO_END and datetime.fromisoformat(evaluation["evaluated_at"]) == DEMO_END
    deploys = runner.invoke(app, [*DEMO, "deploys", "search-service"])
    assert deploys.exit_code == 0, deploys.output
