"""Baseline and candidate windows for every baseline policy, on literal deploy histories."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from releasehealth.model import BaselinePolicy, Deploy, Policy
from releasehealth.windows import plan

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
MIN = timedelta(minutes=1)


def _deploys(*hours: float, last_seen: dict[int, float] | None = None) -> list[Deploy]:
    last_seen = last_seen or {}
    return [
        Deploy("svc", f"1.{i}", T0 + h * H, last_seen=T0 + last_seen[i] * H if i in last_seen else None)
        for i, h in enumerate(hours)
    ]


def _policy(baseline: BaselinePolicy, **changes: object) -> Policy:
    return dataclasses.replace(Policy(), baseline=baseline, **changes)


def test_previous_compares_the_window_before_the_deploy() -> None:
    deploys = _deploys(0, 10)
    result = plan(deploys, deploys[1], _policy(BaselinePolicy.PREVIOUS), T0 + 20 * H)
    assert result.baseline.version == "1.0"
    assert (result.baseline_window.start, result.baseline_window.end) == (T0 + 10 * H - 30 * MIN, T0 + 10 * H)
    assert (result.candidate_window.start, result.candidate_window.end) == (T0 + 10 * H + 5 * MIN, T0 + 10 * H + 35 * MIN)


def test_too_early_is_a_problem_not_a_window() -> None:
    deploys = _deploys(0, 10)
    result = plan(deploys, deploys[1], _policy(BaselinePolicy.PREVIOUS), T0 + 10 * H + 12 * MIN)
    assert result.candidate_window is None and result.problem.startswith("too early: 1.1 has 7 min of data")


def test_the_first_release_has_no_previous() -> None:
    deploys = _deploys(0, 10)
    assert "no earlier release" in plan(deploys, deploys[0], Policy(), T0 + 20 * H).problem


def test_time_shifted_takes_whatever_served_a_day_earlier() -> None:
    deploys = _deploys(0, 30, 34)
    result = plan(deploys, deploys[2], _policy(BaselinePolicy.TIME_SHIFTED), T0 + 40 * H)
    assert result.baseline.version == "1.0"
    assert result.baseline_window.start == result.candidate_window.start - 24 * H
    assert result.baseline_window.duration == result.candidate_window.duration == 30 * MIN
    assert "time-shifted by 1 d" in result.description


def test_time_shifted_refuses_a_window_spanning_a_deploy_or_the_candidate_itself() -> None:
    deploys = _deploys(0, 10.1, 34.0)
    assert "spans the deploy of 1.1" in plan(deploys, deploys[2], _policy(BaselinePolicy.TIME_SHIFTED), T0 + 40 * H).problem
    deploys = _deploys(0, 2)
    shifted = _policy(BaselinePolicy.TIME_SHIFTED, baseline_shift=MIN)  # shorter than the warm-up
    assert "1.1 itself was serving 1 min earlier" in plan(deploys, deploys[1], shifted, T0 + 4 * H).problem


def test_pinned_uses_the_end_of_the_pinned_versions_life() -> None:
    deploys = _deploys(0, 5, 10)
    result = plan(deploys, deploys[2], _policy(BaselinePolicy.PINNED, pinned_version="1.0"), T0 + 20 * H)
    assert result.baseline.version == "1.0" and result.baseline_window.end == T0 + 5 * H
    assert "pinned 1.0" in result.description
    missing = plan(deploys, deploys[2], _policy(BaselinePolicy.PINNED, pinned_version="9.9"), T0 + 20 * H)
    assert "pinned version 9.9 was not seen" in missing.problem


def test_concurrent_uses_the_same_window_while_both_serve() -> None:
    deploys = _deploys(0, 10, last_seen={0: 11})  # 1.0 kept serving an hour after 1.1 started
    result = plan(deploys, deploys[1], _policy(BaselinePolicy.CONCURRENT), T0 + 20 * H)
    assert result.baseline_window == result.candidate_window
    assert result.candidate_window.end == T0 + 10 * H + 35 * MIN


def test_concurrent_without_overlap_says_so() -> None:
    deploys = _deploys(0, 10, last_seen={0: 10})
    assert "stopped serving 0 s after" in plan(deploys, deploys[1], _policy(BaselinePolicy.CONCURRENT), T0 + 20 * H).problem


def test_last_good_without_a_promoted_release_says_so() -> None:
    deploys = _deploys(0, 10)
    problem = plan(deploys, deploys[1], _policy(BaselinePolicy.LAST_GOOD), T0 + 20 * H).problem
    assert "no earlier release of" in problem and "judged PROMOTE in the history store" in problem


def test_last_good_compares_with_the_promoted_release_not_the_one_replaced() -> None:
    deploys = _deploys(0, 10, 12)  # the release at 10 h (replaced by the candidate) was never promoted
    result = plan(deploys, deploys[2], _policy(BaselinePolicy.LAST_GOOD), T0 + 20 * H, last_good=deploys[0].version)
    assert result.baseline == deploys[0] and not result.problem
    assert result.description.startswith("last good (PROMOTE)")
    assert result.baseline_window.end <= deploys[1].started_at  # within the promoted release's own life
