"""Backtests on a simulated history with known truth (in-memory sources behind the one wiring): A/A pairs
where nothing changed, the false-alarm rate they measure, the tolerance a noisy metric needs, incidents
caught, resuming and the query budget, and what the history's flaws do to it."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from releasehealth import backtest
from releasehealth.backtest_report import render_html, render_markdown
from releasehealth.calibration import CONFIGURED, TOLERANCE_STEPS, Calibration, TrialKind, calibration_to_dict, rate
from releasehealth.cli import app
from releasehealth.model import Action, Deploy, MetricKind, Query, Series, Service, Tolerance
from releasehealth.simulator import demo, simulate
from releasehealth.simulator.fleet import Fleet
from testing.servers import PrometheusServer

END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PERIOD = timedelta(hours=70)
SETTINGS = backtest.BacktestSettings(since=END - PERIOD, until=END, pairs_per_day=6)


@pytest.fixture(scope="module")
def history() -> Fleet:
    return simulate(seed=5, end=END, services=6, hours=72, releases_per_service=4)


def _metrics_only(services: tuple[Service, ...], **tolerances: Tolerance) -> list[Service]:
    """The services judged on their metrics (the log mining is timed elsewhere), with some tolerances replaced."""
    return [
        dataclasses.replace(s, logs=None, metrics=tuple(
            dataclasses.replace(m, tolerance=tolerances.get(m.name, m.tolerance))
            for m in s.metrics if m.kind not in (MetricKind.LOG_RATE, MetricKind.LOG_SIGNATURES)
        ))
        for s in services
    ]


def _truth(history: Fleet) -> dict[tuple[str, str], bool]:
    """(service, version) of every deploy: whether it is a regression."""
    return {(s.name, r.version): r.label.is_regression for s in history.services for r in s.releases[1:]}


@pytest.fixture(scope="module")
def judged(history: Fleet) -> Calibration:
    wired = demo.of_fleet(history).wire()
    incidents = [(service, version, "incidents file") for (service, version), bad in _truth(history).items() if bad]
    calibration, _ = backtest.calibrate(
        wired.sources, _metrics_only(wired.catalogue.services), wired.catalogue.policy, SETTINGS, incidents=incidents,
    )
    return calibration


def test_every_a_a_pair_compares_one_version_with_itself_with_no_deploy_in_or_between(history: Fleet) -> None:
    wired = demo.of_fleet(history).wire()
    work = backtest.plan(wired.sources, _metrics_only(wired.catalogue.services), wired.catalogue.policy, SETTINGS)
    deploys = {s.name: [r.deployed_at for r in s.releases] for s in history.services}
    pairs = [(kind, t) for day in work.days for kind, t in day.targets if kind is not TrialKind.RELEASE]
    assert len(pairs) > 60
    hours = set()
    for _, target in pairs:
        b, c = target.plan.baseline_window, target.plan.candidate_window
        assert b is not None and c is not None and target.candidate is not None
        assert target.plan.baseline is target.candidate and b.duration == c.duration == wired.catalogue.policy.window
        assert SETTINGS.since <= b.start and c.end <= SETTINGS.until
        span = (b.start - wired.catalogue.policy.warmup, c.end)
        assert not any(span[0] < at <= span[1] for at in deploys[target.service.name])
        hours.add(c.start.hour)
    assert len(hours) >= 12  # spread over the times of day, not stuck at the same slots


def test_the_a_a_false_alarm_rate_is_within_the_budget_and_agrees_with_the_good_releases(history: Fleet, judged: Calibration) -> None:
    alarms = judged.false_alarms
    assert alarms.trials > 60 and judged.unjudged_pairs < alarms.trials / 10
    assert alarms.low <= judged.alpha + judged.hold_alpha  # within the configured budget, given its interval
    # The same configuration's false alarms on the good releases of the same history (what the accuracy
    # benchmark measures): the two rates' intervals overlap.
    truth = _truth(history)
    good = [t for t in judged.releases if not truth[(t.service, t.version)]]
    on_good = rate(sum(t.action in (Action.HOLD, Action.ROLLBACK) for t in good), len(good))
    assert len(good) >= 8 and on_good.low <= alarms.high and alarms.low <= on_good.high


def test_injected_incidents_are_reported_caught(history: Fleet, judged: Calibration) -> None:
    truth = _truth(history)
    assert len(judged.incidents) == sum(truth.values()) >= 6
    judged_here = {(t.service, t.version): t.action for t in judged.releases}
    for incident in judged.incidents:
        assert incident.action is judged_here.get((incident.service, incident.version))
    # Metrics only here: the regressions only logs show (a new exception type) are missed, the others caught.
    assert sum(i.caught for i in judged.incidents) >= len(judged.incidents) / 2


def test_a_tiny_tolerance_is_reported_noisy_and_the_suggested_one_quiets_it(history: Fleet) -> None:
    wired = demo.of_fleet(history).wire()
    services = _metrics_only(wired.catalogue.services, memory=Tolerance(relative=0.001))
    noisy, _ = backtest.calibrate(wired.sources, services, wired.catalogue.policy, SETTINGS)
    memory = next(m for m in noisy.metrics if m.metric == "memory")
    assert memory.noisy and memory.suggested is not None and memory.suggested > CONFIGURED
    assert memory.rates[memory.suggested].events <= memory.share * memory.rates[memory.suggested].trials
    # Configured as suggested, the memory is quiet: what the backtest predicted is what a run measures.
    tuned = _metrics_only(wired.catalogue.services, memory=memory.tolerance_at(memory.suggested))
    again, _ = backtest.calibrate(wired.sources, tuned, wired.catalogue.policy, SETTINGS)
    quiet = next(m for m in again.metrics if m.metric == "memory")
    assert not quiet.noisy and quiet.configured.events <= memory.rates[memory.suggested].events
    assert quiet.configured.trials == memory.configured.trials


def test_a_stopped_backtest_resumes_where_it_stopped_and_ends_as_one_run_would(history: Fleet, tmp_path: Path, judged: Calibration) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    wired = demo.of_fleet(history, store=url).wire(create_store=True)
    services = _metrics_only(wired.catalogue.services)
    budget = dataclasses.replace(SETTINGS, max_queries=1)
    first, run = backtest.calibrate(wired.sources, services, wired.catalogue.policy, budget)
    assert not first.complete and 0 < run.days_done < len(SETTINGS.days())
    assert wired.sources.store is not None and wired.sources.store.backtests()[0].finished_at is None
    days: list[str] = []
    second, rest = backtest.calibrate(wired.sources, services, wired.catalogue.policy, dataclasses.replace(budget, max_queries=None),
                                      progress=lambda day, done, total: days.append(day.isoformat()))
    assert second.complete and rest.backtest_id == run.backtest_id and len(days) == len(SETTINGS.days())
    assert second.false_alarms == judged.false_alarms and second.releases == judged.releases
    stored = wired.sources.store.backtests()[0]
    assert stored.finished_at is not None and stored.summary == calibration_to_dict(second)


def test_flaws_of_the_history_are_reported_with_what_was_skipped(history: Fleet) -> None:
    wired = demo.of_fleet(history).wire()
    services = _metrics_only(wired.catalogue.services)
    renamed = dataclasses.replace(services[0], name="renamed-service")
    latest = max(r.deployed_at for s in history.services for r in s.releases)
    # A period after the last deploy and reaching before the history began: gaps, no release.
    quiet = backtest.BacktestSettings(since=history.start - timedelta(hours=12), until=history.start + timedelta(hours=6), pairs_per_day=8)
    calibration, _ = backtest.calibrate(wired.sources, [*services, renamed], wired.catalogue.policy, quiet)
    assert calibration.skipped["no data in the period (a service renamed, or not deployed yet)"] == 1
    assert any("gap in the history" in why for why in calibration.skipped)
    after = backtest.BacktestSettings(since=latest + timedelta(hours=1), until=END, pairs_per_day=8)
    assert after.until - after.since > timedelta(hours=6)  # the history ends with hours without a deploy
    none, _ = backtest.calibrate(wired.sources, services, wired.catalogue.policy, after)
    assert not none.releases and any("no release was deployed in the period" in n for n in none.notes)
    assert none.false_alarms.trials > 10  # the A/A pairs still measure


class _CounterResets:
    """The in-memory metrics with, in every `requests` answer, one step a thousand times too large: what
    increase() makes of a counter reset it extrapolates across."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, inner.name

    def fetch(self, query: Query) -> list[Series]:
        answer = self.inner.fetch(query)
        if query.template != "requests":
            return answer
        spiked = []
        for series in answer:
            values = np.array(series.values, dtype=np.float64)
            values[values.size // 2:: 97] *= 1000
            spiked.append(Series(series.labels, series.timestamps, values))
        return spiked

    def check(self) -> Any:
        return self.inner.check()


def test_counter_resets_are_left_out_and_said(history: Fleet, judged: Calibration) -> None:
    wired = demo.of_fleet(history).wire()
    sources = dataclasses.replace(wired.sources, metrics=_CounterResets(wired.sources.metrics))
    reset, _ = backtest.calibrate(sources, _metrics_only(wired.catalogue.services), wired.catalogue.policy, SETTINGS)
    said = [n for n in reset.notes if "left out of the windows" in n]
    assert said and int(said[0].split()[0]) > 0 and not any("left out of the windows" in n for n in judged.notes)
    assert reset.false_alarms.events <= judged.false_alarms.events + 1  # judged on the rest: no alarms from the spikes


def test_a_version_serving_again_after_a_later_deploy_is_a_revert_and_lives_once() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    one = Deploy("svc", "1.0", at, last_seen=at + timedelta(hours=9))  # served again after 2.0: rolled back to
    two = Deploy("svc", "2.0", at + timedelta(hours=3), last_seen=at + timedelta(hours=5))
    lives, notes, reverted = backtest._lives([two, one], at + timedelta(hours=10))
    assert [(x.deploy.version, x.end - at) for x in lives] == [("1.0", timedelta(hours=3)), ("2.0", timedelta(hours=5))]
    assert reverted == [two] and "1.0 served again after 2.0" in notes[0]


def test_reports_render_every_section_and_escape_what_they_quote(judged: Calibration) -> None:
    summary = calibration_to_dict(judged)
    summary["releases"][0]["service"] = "<script>alert(1)</script>|x"
    markdown, html = render_markdown(summary), render_html(summary)
    for heading in ("# Backtest", "## Metrics", "A/A false-alarm rate per tolerance", "## Releases", "## Incidents", "## Skipped"):
        assert heading in markdown
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html and "plotly" in html
    assert "\\<script\\>alert(1)\\</script\\>\\|x" in markdown
    assert json.loads(json.dumps(summary)) == summary
    assert [r["multiple"] for r in summary["metrics"][0]["rates"]] == list(TOLERANCE_STEPS)


def test_the_cli_backtests_the_demo_and_says_what_is_wrong_with_its_input(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--demo", "--demo-end", "2026-12-01T12:00", "--store", f"sqlite:///{tmp_path / 'h.db'}", "backtest", "--since", "6h"]
    done = runner.invoke(app, [*base, "--pairs-per-day", "2", "--format", "json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["complete"] and summary["days"] >= 1 and summary["metrics"]
    written = tmp_path / "backtest.html"
    assert runner.invoke(app, [*base, "--pairs-per-day", "2", "--format", "html", "-o", str(written)]).exit_code == 0
    assert written.read_text().startswith("<!doctype html>")
    incidents = tmp_path / "incidents.csv"
    incidents.write_text("service,version\ncart-service\n,1.0\n")
    refused = runner.invoke(app, [*base, "--incidents", str(incidents)])
    assert refused.exit_code == 1 and "line 2" in refused.output and "line 3" in refused.output and str(incidents) in refused.output
    for option, problem in (("--step", "at most a quarter of the window"), ("--since", "neither a duration")):
        bad = runner.invoke(app, [*base[:-2], "--since", "yesterday" if option == "--since" else "6h", *([option, "20m"] if option == "--step" else [])])
        assert bad.exit_code == 1 and problem in bad.output, bad.output
    unknown = runner.invoke(app, [*base, "--service", "nope"])
    assert unknown.exit_code == 1 and "unknown service(s): nope" in unknown.output


def test_on_the_real_prometheus_each_release_gets_evaluates_verdict_in_few_queries_a_day(fleet: Fleet, prometheus: PrometheusServer) -> None:
    from releasehealth import config, wiring
    from releasehealth.evaluate import evaluate_release
    from testing.configs import example_config
    from testing.servers import prometheus_load

    wired = wiring.connect(config.parse(example_config(prometheus.url), "release-health.yaml"))
    services = wired.catalogue.services
    settings = backtest.BacktestSettings(since=fleet.end - timedelta(hours=20), until=fleet.end, pairs_per_day=6)
    before = prometheus_load(prometheus)
    calibration, _ = backtest.calibrate(wired.sources, services, wired.catalogue.policy, settings)
    ran = (prometheus_load(prometheus) - before).queries
    templates = {t for s in services for m in s.metrics for t in m.queries.values()}
    # The deploy scan (two templates in two stages), then per day each template over the day's span(s).
    assert ran <= 4 + 3 * len(templates) * len(settings.days())
    assert calibration.releases and calibration.false_alarms.trials > 20
    for trial in calibration.releases[::3]:  # what a pipeline calling evaluate would have been told
        service = wired.catalogue.service(trial.service)
        evaluation = evaluate_release(wired.sources, service, wired.catalogue.policy, trial.version, now=fleet.end)
        assert evaluation.recommendation.action is trial.action, (trial.service, trial.version)
        assert evaluation.candidate_window is not None and evaluation.candidate_window.start == trial.candidate_start


def test_another_configuration_is_compared_release_by_release(history: Fleet, tmp_path: Path) -> None:
    wired = demo.of_fleet(history, store=f"sqlite:///{tmp_path / 'history.db'}").wire(create_store=True)
    services = _metrics_only(wired.catalogue.services)
    lenient = _metrics_only(wired.catalogue.services, error_ratio=Tolerance(relative=50.0, absolute=0.5))
    releases_only = dataclasses.replace(SETTINGS, pairs_per_day=0)
    calibration, _ = backtest.calibrate(
        wired.sources, services, wired.catalogue.policy, releases_only, compare=(wired.sources, lenient, wired.catalogue.policy),
    )
    failed_on_errors = {(t.service, t.version) for t in calibration.releases if t.failing == ("error_ratio",)}
    assert failed_on_errors  # releases rolled back for their error ratio alone...
    changed = {(c.service, c.version): c for c in calibration.compared or ()}
    assert failed_on_errors <= set(changed) and all(changed[k].after is Action.PROMOTE for k in failed_on_errors)  # ...pass there
    assert all(c.before is not c.after for c in changed.values())
    assert [b.finished_at is not None for b in wired.sources.store.backtests()] == [True]  # the comparison stores no run


def test_the_cli_compares_two_configuration_files_on_the_real_prometheus(fleet: Fleet, prometheus: PrometheusServer, tmp_path: Path) -> None:
    import yaml

    from testing.configs import example_config

    main, other = tmp_path / "main.yaml", tmp_path / "strict.yaml"
    raw = example_config(prometheus.url)
    main.write_text(yaml.safe_dump(raw))
    raw["policy"]["muted"] = ["error_ratio", "p50_latency", "p95_latency", "tail_latency"]  # judged on the gauges alone
    other.write_text(yaml.safe_dump(raw))
    until = fleet.end.strftime("%Y-%m-%dT%H:%M:%S")
    done = CliRunner().invoke(app, [
        "--config", str(main), "--store", f"sqlite:///{tmp_path / 'h.db'}", "backtest", "--since", "12h", "--until", until,
        "--pairs-per-day", "0", "--compare", str(other), "--format", "json",
    ])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    muted = set(raw["policy"]["muted"])
    rolled_back = {(t["service"], t["version"]) for t in summary["releases"] if t["action"] == "ROLLBACK" and set(t["failing"]) <= muted}
    changed = {(c["service"], c["version"]): c["after"] for c in summary["compared"]}
    assert rolled_back and all(changed.get(release) == "PROMOTE" for release in rolled_back)


def test_a_coarser_step_is_said_in_the_report(history: Fleet) -> None:
    wired = demo.of_fleet(history).wire()
    coarse = dataclasses.replace(SETTINGS, step=timedelta(minutes=5))
    work = backtest.plan(wired.sources, _metrics_only(wired.catalogue.services), wired.catalogue.policy, coarse)
    assert work.policy.step == timedelta(minutes=5)
    assert any("a step of 5 min, coarser than the policy's 1 min" in note for note in work.notes)
    assert not any("coarser" in n for n in backtest.plan(wired.sources, _metrics_only(wired.catalogue.services), wired.catalogue.policy, SETTINGS).notes)
