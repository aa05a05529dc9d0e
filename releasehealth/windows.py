"""Baseline and candidate windows of a release (DESIGN §5), aligned to the evaluation step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from releasehealth.model import Deploy, Policy, Window


@dataclass(frozen=True)
class WindowPlan:
    """Either both windows and the baseline release, or the reason they cannot be had yet."""

    baseline: Deploy | None
    baseline_window: Window | None
    candidate_window: Window | None
    problem: str = ""


def floor_to(at: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)


def ceil_to(at: datetime, step: timedelta) -> datetime:
    floored = floor_to(at, step)
    return floored if floored == at else floored + step


def plan_previous(deploys: list[Deploy], candidate: Deploy, policy: Policy, now: datetime) -> WindowPlan:
    """Windows for the `previous` policy: the candidate from deploy + warm-up for `window`, clipped to
    now and to the next deploy; the baseline the same length, ending at the deploy, within the
    previous release's own life after its warm-up."""
    ordered = sorted(deploys, key=lambda d: d.started_at)
    index = ordered.index(candidate)
    if index == 0:
        return WindowPlan(None, None, None, f"no earlier release of {candidate.service} was seen to compare with")
    baseline, step = ordered[index - 1], policy.step
    later = [d.started_at for d in ordered[index + 1:]]
    c_start = ceil_to(candidate.started_at + policy.warmup, step)
    c_end = floor_to(min([c_start + policy.window, now, *later]), step)
    b_end = floor_to(candidate.started_at, step)
    b_start = max(b_end - (c_end - c_start), ceil_to(baseline.started_at + policy.warmup, step))
    length = min(c_end - c_start, b_end - b_start)
    needed = policy.window * policy.min_window_share
    if length < needed:
        if c_end - c_start < needed:
            problem = (
                f"too early: {candidate.version} has {_minutes(max(c_end - c_start, timedelta()))} of data after "
                f"its {_minutes(policy.warmup)} warm-up, {_minutes(needed)} needed"
            )
        else:
            problem = f"the baseline {baseline.version} ran only {_minutes(b_end - b_start)} after its warm-up, {_minutes(needed)} needed"
        return WindowPlan(baseline, None, None, problem)
    return WindowPlan(
        baseline,
        Window(b_end - length, b_end, step),
        Window(c_start, c_start + length, step),
    )


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"
