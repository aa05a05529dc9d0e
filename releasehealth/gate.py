"""The pipeline gate: re-evaluate a release until its verdict is final, or time runs out.

PROMOTE is final once the candidate has been watched for the whole window (an early "all pass" on half
the data is not a promotion); ROLLBACK is final as soon as it is credible, which the judge already makes
hard early on by spending alpha across the checks (O'Brien-Fleming: policy.check_interval is set to the
gate's interval); HOLD and INCONCLUSIVE keep the gate waiting, and are the answer at the timeout.
Every check is saved to the history store when one is given, so `history` and the last-good baseline
see what the pipeline saw.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from releasehealth.evaluate import evaluate_release
from releasehealth.model import Action, Policy, Service
from releasehealth.sources import Sources
from releasehealth.verdicts import Evaluation

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class GateResult:
    """The final evaluation and why the gate stopped: "final" or "timeout"."""

    evaluation: Evaluation
    checks: int
    stopped: str


def gated_policy(policy: Policy, interval: timedelta) -> Policy:
    """The policy spending alpha across checks every `interval` (unless one is configured)."""
    if policy.check_interval:
        return policy
    return dataclasses.replace(policy, check_interval=interval)


def is_final(evaluation: Evaluation, window: timedelta) -> bool:
    """ROLLBACK at once; PROMOTE only once the candidate was watched for the whole `window`."""
    action = evaluation.recommendation.action
    if action is Action.ROLLBACK:
        return True
    if action is not Action.PROMOTE or evaluation.candidate_window is None:
        return False
    return evaluation.candidate_window.duration >= window


def _unfinished(evaluation: Evaluation, window: timedelta) -> Evaluation:
    """At the timeout, a PROMOTE on part of the window is a HOLD: it was never watched for long enough."""
    r = evaluation.recommendation
    if r.action is not Action.PROMOTE:
        return evaluation
    watched = evaluation.candidate_window.duration if evaluation.candidate_window else timedelta()
    reason = (
        f"the gate timed out after {watched.total_seconds() / 60:.0f} of the {window.total_seconds() / 60:.0f} minutes "
        f"the candidate must be watched before a promotion; so far: {r.reason}"
    )
    return dataclasses.replace(evaluation, recommendation=dataclasses.replace(r, action=Action.HOLD, reason=reason))


def run(
    sources: Sources,
    service: Service,
    policy: Policy,
    version: str,
    wait: timedelta,
    interval: timedelta,
    *,
    clock: Clock = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[int, Evaluation], None] = lambda n, e: None,
) -> GateResult:
    """Evaluate `service` `version` every `interval` until final or `wait` has passed."""
    gated = gated_policy(policy, interval)
    deadline = clock() + wait
    checks = 0
    while True:
        evaluation = evaluate_release(sources, service, gated, version, now=clock())
        checks += 1
        if sources.store is not None:
            sources.store.save_evaluation(evaluation)
        report(checks, evaluation)
        if is_final(evaluation, gated.window):
            return GateResult(evaluation, checks, "final")
        remaining = (deadline - clock()).total_seconds()
        if remaining <= 0:
            return GateResult(_unfinished(evaluation, gated.window), checks, "timeout")
        sleep(min(interval.total_seconds(), remaining))
