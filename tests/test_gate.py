"""The pipeline gate: re-evaluates as time passes, stops at the first final verdict, and exits with it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from releasehealth import gate
from releasehealth.cli import app
from releasehealth.model import Action
from releasehealth.simulator import Fleet, ReleaseLabel, SimulatedRelease
from releasehealth.store import Store
from releasehealth.wiring import Wiring
from tests import helpers

runner = CliRunner()
DEMO_END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DEMO = ["--demo", "--demo-end", DEMO_END.strftime("%Y-%m-%dT%H:%M:%S")]
INTERVAL = timedelta(minutes=5)


class FakeTime:
    """A clock that only moves when the gate sleeps: a 45-minute rollout checked in milliseconds."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def demo() -> tuple[Wiring, Fleet]:
    catalogue, sources, fleet = helpers.demo(seed=7, end=DEMO_END)
    return Wiring(catalogue, sources), fleet


def _latest(fleet: Fleet, label: ReleaseLabel | None) -> tuple[str, SimulatedRelease]:
    for service in fleet.services:
        release = service.releases[-1]
        if (label is None and not release.label.is_regression) or release.label is label:
            return service.name, release
    raise LookupError(label)


def _gate(demo, service: str, release: SimulatedRelease, store: Store | None, wait: timedelta) -> tuple[gate.GateResult, list]:
    wired, _ = demo
    catalogue, sources = wired.catalogue, dataclasses.replace(wired.sources, store=store)
    time = FakeTime(release.deployed_at + timedelta(minutes=10))  # the pipeline starts gating 10 min in
    seen: list = []
    result = gate.run(
        sources, catalogue.service(service), catalogue.policy, release.version, wait, INTERVAL,
        clock=time.clock, sleep=time.sleep, report=lambda n, e: seen.append((time.now, e.recommendation.action)),
    )
    return result, seen


@pytest.mark.parametrize(
    "label", [ReleaseLabel.ERROR_RATIO, ReleaseLabel.LATENCY, ReleaseLabel.NEW_EXCEPTION, ReleaseLabel.ERROR_LOG_BURST]
)
def test_a_release_that_turns_bad_stops_the_gate_with_rollback(demo, tmp_path: Path, label: ReleaseLabel) -> None:
    _, fleet = demo
    service, release = _latest(fleet, label)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")

    result, seen = _gate(demo, service, release, store, timedelta(minutes=45))

    assert result.stopped == "final" and result.evaluation.recommendation.action is Action.ROLLBACK
    actions = [a for _, a in seen]
    assert actions[0] is Action.INCONCLUSIVE  # 5 minutes after the warm-up: too early to judge
    assert Action.PROMOTE not in actions and actions.count(Action.ROLLBACK) == 1
    # Stopped before the full window: a credible regression does not wait for the whole 30 minutes.
    assert seen[-1][0] < release.deployed_at + timedelta(minutes=35)
    assert [s.action for s in reversed(store.history(service))] == actions  # every check stored


def test_a_release_that_stays_good_is_promoted_only_after_the_full_window(demo) -> None:
    _, fleet = demo
    service, release = _latest(fleet, None)

    result, seen = _gate(demo, service, release, None, timedelta(minutes=45))

    assert result.stopped == "final" and result.evaluation.recommendation.action is Action.PROMOTE
    assert result.evaluation.candidate_window.duration == timedelta(minutes=30)
    assert seen[-1][0] >= release.deployed_at + timedelta(minutes=35)
    assert Action.ROLLBACK not in [a for _, a in seen]


def test_the_gate_times_out_with_the_last_verdict(demo) -> None:
    _, fleet = demo
    service, release = _latest(fleet, None)

    result, seen = _gate(demo, service, release, None, timedelta(minutes=10))  # ends before the window is full

    assert result.stopped == "timeout" and len(seen) == 3  # at 10, 15 and 20 minutes after the deploy
    # All passing on 15 of the 30 minutes is not a promotion: the gate holds, saying why.
    assert seen[-1][1] is Action.PROMOTE and result.evaluation.recommendation.action is Action.HOLD
    assert result.evaluation.recommendation.reason.startswith("the gate timed out after 15 of the 30 minutes")


@pytest.mark.parametrize(("label", "code"), [(ReleaseLabel.ERROR_RATIO, 3), (None, 0)])
def test_gate_command_exits_with_the_final_verdict(demo, tmp_path: Path, label: ReleaseLabel | None, code: int) -> None:
    _, fleet = demo
    service, release = _latest(fleet, label)
    store = f"sqlite:///{tmp_path / 'store.db'}"

    result = runner.invoke(
        app, [*DEMO, "--store", store, "gate", "--service", service, "--version", release.version, "--wait", "1s", "--interval", "1s"]
    )

    assert result.exit_code == code, result.output
    assert "gate: final after 1 check" in result.output
    history = runner.invoke(app, [*DEMO, "--store", store, "history", service])
    assert release.version in history.output and ("ROLLBACK" if code == 3 else "PROMOTE") in history.output


def test_gate_rejects_a_bad_duration_naming_the_option() -> None:
    result = runner.invoke(app, [*DEMO, "gate", "--service", "user-service", "--version", "1", "--wait", "soon"])
    assert result.exit_code == 1 and "--wait: invalid duration 'soon'" in result.output
