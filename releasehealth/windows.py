"""Baseline and candidate windows of a release for each baseline policy (DESIGN §5), aligned to the step.

The candidate window runs from deploy + warm-up for `window`, clipped to now and to the next deploy
(and, for `concurrent`, to when the previous version stopped serving). The baseline window has the same
length. Every plan either has both windows or says, in one sentence, why it cannot have them yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from releasehealth.format import duration_text
from releasehealth.model import BaselinePolicy, Deploy, Policy, Window


@dataclass(frozen=True)
class WindowPlan:
    """Either both windows and the baseline release, or the reason they cannot be had yet."""

    baseline: Deploy | None
    baseline_window: Window | None
    candidate_window: Window | None
    problem: str = ""
    description: str = ""  # how the baseline was chosen, for people: "previous release", "pinned 1.2.0"...


def floor_to(at: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)


def ceil_to(at: datetime, step: timedelta) -> datetime:
    floored = floor_to(at, step)
    return floored if floored == at else floored + step


def plan(
    deploys: list[Deploy], candidate: Deploy, policy: Policy, now: datetime, last_good: str | None = None
) -> WindowPlan:
    """The windows of `candidate` under `policy.baseline`; `last_good` is the newest earlier version the
    history store judged PROMOTE (None: no store, or none judged so)."""
    ordered = sorted(deploys, key=lambda d: d.started_at)
    if policy.baseline is BaselinePolicy.LAST_GOOD:
        return plan_last_good(ordered, candidate, policy, now, last_good)
    planners: dict[BaselinePolicy, Callable[[list[Deploy], Deploy, Policy, datetime], WindowPlan]] = {
        BaselinePolicy.PREVIOUS: plan_previous,
        BaselinePolicy.TIME_SHIFTED: plan_time_shifted,
        BaselinePolicy.PINNED: plan_pinned,
        BaselinePolicy.CONCURRENT: plan_concurrent,
    }
    return planners[policy.baseline](ordered, candidate, policy, now)


def plan_previous(deploys: list[Deploy], candidate: Deploy, policy: Policy, now: datetime) -> WindowPlan:
    """The baseline is the release replaced, over the same length just before the deploy, within that
    release's own life after its warm-up."""
    baseline = _previous(deploys, candidate)
    if baseline is None:
        return _no_earlier(candidate)
    c_start, c_end = _candidate_span(deploys, candidate, policy, now)
    b_end = floor_to(candidate.started_at, policy.step)
    b_start = max(b_end - (c_end - c_start), ceil_to(baseline.started_at + policy.warmup, policy.step))
    return _equal_length(baseline, (b_start, b_end), (c_start, c_end), candidate, policy, "the previous release")


def plan_time_shifted(deploys: list[Deploy], candidate: Deploy, policy: Policy, now: datetime) -> WindowPlan:
    """The baseline is whatever served the same clock window `baseline_shift` earlier: it cancels the
    time of day (or week) that a consecutive window cannot."""
    shift = policy.baseline_shift
    c_start, c_end = _candidate_span(deploys, candidate, policy, now)
    too_early = _too_early(candidate, c_end - c_start, policy)
    if too_early:
        return WindowPlan(None, None, None, too_early)
    b_start, b_end = c_start - shift, c_end - shift
    serving = [d for d in deploys if d.started_at <= b_start]
    label = f"time-shifted by {duration_text(shift)}"
    if not serving:
        return WindowPlan(None, None, None, f"no release of {candidate.service} was seen serving {duration_text(shift)} earlier")
    baseline = serving[-1]
    following = [d for d in deploys if b_start < d.started_at < b_end]
    if following:
        return WindowPlan(baseline, None, None, f"the window {duration_text(shift)} earlier spans the deploy of {following[0].version}")
    if baseline.version == candidate.version:
        return WindowPlan(baseline, None, None, f"{candidate.version} itself was serving {duration_text(shift)} earlier")
    step = policy.step
    return WindowPlan(
        baseline, Window(b_start, b_end, step), Window(c_start, c_end, step),
        description=f"{label}: {baseline.version} over the same clock window",
    )


def plan_pinned(deploys: list[Deploy], candidate: Deploy, policy: Policy, now: datetime) -> WindowPlan:
    """The baseline is a named version, over the last stretch of its life of the candidate's length."""
    pinned = next((d for d in deploys if d.version == policy.pinned_version), None)
    if pinned is None:
        return WindowPlan(None, None, None, f"the pinned version {policy.pinned_version} was not seen in the lookback")
    if pinned.version == candidate.version:
        return WindowPlan(pinned, None, None, f"{candidate.version} is the pinned version itself")
    c_start, c_end = _candidate_span(deploys, candidate, policy, now)
    later = [d.started_at for d in deploys if d.started_at > pinned.started_at]
    b_end = floor_to(min([now, *later, *([pinned.last_seen] if pinned.last_seen else [])]), policy.step)
    b_start = max(b_end - (c_end - c_start), ceil_to(pinned.started_at + policy.warmup, policy.step))
    return _equal_length(pinned, (b_start, b_end), (c_start, c_end), candidate, policy, f"pinned {pinned.version}")


def plan_concurrent(deploys: list[Deploy], candidate: Deploy, policy: Policy, now: datetime) -> WindowPlan:
    """The baseline is the previous version over the very same window, while both serve (a canary or a
    rolling deploy): no time-of-day or traffic difference between them."""
    baseline = _previous(deploys, candidate)
    if baseline is None:
        return _no_earlier(candidate)
    stopped = baseline.last_seen or now
    c_start, c_end = _candidate_span(deploys, candidate, policy, min(now, stopped))
    needed = policy.window * policy.min_window_share
    if c_end - c_start < needed and stopped < now:
        return WindowPlan(
            baseline, None, None,
            f"{baseline.version} stopped serving {duration_text(max(stopped - candidate.started_at, timedelta()))} after "
            f"{candidate.version} started: too short a concurrent window ({duration_text(needed)} needed after the warm-up)",
        )
    too_early = _too_early(candidate, c_end - c_start, policy)
    if too_early:
        return WindowPlan(baseline, None, None, too_early)
    window = Window(c_start, c_end, policy.step)
    return WindowPlan(baseline, window, window, description=f"concurrent: {baseline.version} over the same window")


def plan_last_good(
    deploys: list[Deploy], candidate: Deploy, policy: Policy, now: datetime, last_good: str | None
) -> WindowPlan:
    """The baseline is the newest earlier release the history store judged PROMOTE, over the last
    stretch of its life (as a pinned one): a bad release in between is never the yardstick."""
    if last_good is None:
        return WindowPlan(
            None, None, None,
            f"no earlier release of {candidate.service} was judged PROMOTE in the history store (evaluations are "
            "stored by `gate`, `evaluate --save` and the API): use previous, pinned, time-shifted or concurrent",
        )
    planned = plan_pinned(deploys, candidate, dataclasses.replace(policy, pinned_version=last_good), now)
    return dataclasses.replace(planned, description=planned.description.replace("pinned", "last good (PROMOTE)", 1))


def _previous(deploys: list[Deploy], candidate: Deploy) -> Deploy | None:
    index = deploys.index(candidate)
    return deploys[index - 1] if index > 0 else None


def _no_earlier(candidate: Deploy) -> WindowPlan:
    return WindowPlan(None, None, None, f"no earlier release of {candidate.service} was seen to compare with")


def _candidate_span(deploys: list[Deploy], candidate: Deploy, policy: Policy, until: datetime) -> tuple[datetime, datetime]:
    later = [d.started_at for d in deploys if d.started_at > candidate.started_at]
    c_start = ceil_to(candidate.started_at + policy.warmup, policy.step)
    c_end = floor_to(min([c_start + policy.window, until, *later]), policy.step)
    return c_start, max(c_end, c_start)


def _too_early(candidate: Deploy, observed: timedelta, policy: Policy) -> str:
    needed = policy.window * policy.min_window_share
    if observed >= needed:
        return ""
    return (
        f"too early: {candidate.version} has {duration_text(max(observed, timedelta()))} of data after its "
        f"{duration_text(policy.warmup)} warm-up, {duration_text(needed)} needed"
    )


def _equal_length(
    baseline: Deploy,
    baseline_span: tuple[datetime, datetime],
    candidate_span: tuple[datetime, datetime],
    candidate: Deploy,
    policy: Policy,
    description: str,
) -> WindowPlan:
    """Both windows cut to the shorter one, or the reason one of them is too short."""
    (b_start, b_end), (c_start, c_end) = baseline_span, candidate_span
    length = min(c_end - c_start, b_end - b_start)
    too_early = _too_early(candidate, c_end - c_start, policy)
    if too_early:
        return WindowPlan(baseline, None, None, too_early)
    needed = policy.window * policy.min_window_share
    if length < needed:
        ran = duration_text(max(b_end - b_start, timedelta()))
        return WindowPlan(baseline, None, None, f"the baseline {baseline.version} ran only {ran} after its warm-up, {duration_text(needed)} needed")
    step = policy.step
    return WindowPlan(
        baseline, Window(b_end - length, b_end, step), Window(c_start, c_start + length, step),
        description=f"{description}: {baseline.version}" if not description.endswith(baseline.version) else description,
    )
