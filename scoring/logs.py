"""The verdict on log signatures: a new or credibly increased error signature fails, naming its template."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from releasehealth.format import plural
from releasehealth.model import Classification, MetricSpec, Series, SignatureStatus
from releasehealth.scoring.series import sum_by_time
from releasehealth.scoring.signatures import compare, compare_callers
from releasehealth.scoring.verdict import VerdictBuilder
from releasehealth.verdicts import LogSamples, LogSignature, MetricVerdict, Summary

TEST_NAME = (
    "statements and drain templates: NEW (absent from the baseline), INCREASED or VANISHED "
    "(exact conditional tests of two Poisson rates)"
)
NAMED = 3  # signatures named in a reason
CALLERS_WEIGHT = 0.1


def compare_samples(spec: MetricSpec, samples: LogSamples | None, alpha: float) -> tuple[LogSignature, ...]:
    """Every signature of both windows' samples, compared at `alpha` (the metric's share of the release's),
    each marked failing or not by the judge's rule (`fails`)."""
    if samples is None:
        return ()
    # The callers' lines spend a tenth of the metric's alpha, the service's own the rest (weighted
    # Bonferroni): a caller's error that names the release is rare, and when it rises it rises far.
    own_alpha = alpha * (1 - CALLERS_WEIGHT) if samples.caller_totals is not None else alpha
    signatures = compare(
        samples.baseline, samples.candidate, samples.totals, tolerance=spec.tolerance.relative, alpha=own_alpha,
        not_a_risk=samples.not_a_risk, protected=samples.protected, history=samples.history,
    )
    if samples.caller_totals is not None:
        signatures += compare_callers(
            *samples.callers, samples.caller_totals, samples.callee, tolerance=spec.tolerance.relative,
            alpha=alpha * CALLERS_WEIGHT, not_a_risk=samples.not_a_risk, protected=samples.protected,
        )
    return tuple(dataclasses.replace(s, failing=fails(s, spec)) for s in signatures)


def classify_signatures(
    spec: MetricSpec, samples: LogSamples | None, baseline: dict[str, list[Series]], candidate: dict[str, list[Series]],
    alpha: float,
) -> MetricVerdict:
    """HIGH when a non-ignored error signature is NEW (at least `spec.min_count` lines) or INCREASED,
    credibly at `alpha`; the verdict carries every signature compared.

    `baseline`/`candidate` map "lines" to the log lines per step (all levels), to tell "no logs" (NODATA)
    from "no errors" (PASS).
    """
    signatures = compare_samples(spec, samples, alpha)
    return dataclasses.replace(_classify(spec, signatures, baseline, candidate), signatures=signatures)


def _classify(
    spec: MetricSpec, signatures: Sequence[LogSignature], baseline: dict[str, list[Series]], candidate: dict[str, list[Series]]
) -> MetricVerdict:
    b_lines, c_lines = (float(sum_by_time(side.get("lines", []))[1].sum()) for side in (baseline, candidate))
    verdict = VerdictBuilder(
        spec, TEST_NAME, _summary(signatures, "baseline", b_lines), _summary(signatures, "candidate", c_lines), None, None
    )
    if b_lines == 0 or c_lines == 0:
        return verdict.nodata(
            f"no log lines in the {'baseline' if b_lines == 0 else 'candidate'} window: are this version's logs shipped?"
        )
    failing = [s for s in signatures if s.failing]
    if failing:
        named = "; ".join(_describe(s) for s in failing[:NAMED])
        more = f"; and {len(failing) - NAMED} more" if len(failing) > NAMED else ""
        made = verdict.make(Classification.HIGH, named + more)
        # Statements that vanished, and callers' errors, hold a release unless the policy says roll back:
        # a release may remove log lines on purpose, a caller may fail for its own reasons, so they alone
        # never make the metric critical.
        if all(_holds_only(s, spec) for s in failing):
            return dataclasses.replace(made, critical=False, reason=made.reason.removesuffix("; critical") + "; holds, never rolls back")
        return made
    counts = {status: sum(s.status is status for s in signatures) for status in SignatureStatus}
    ignored = sum(s.ignored and s.status in (SignatureStatus.NEW, SignatureStatus.INCREASED) for s in signatures)
    why = (
        f"no new or increased error signature among {len(signatures)} "
        f"({counts[SignatureStatus.NEW]} new, {counts[SignatureStatus.INCREASED]} increased, "
        f"{counts[SignatureStatus.VANISHED]} vanished, {counts[SignatureStatus.KNOWN]} known, {counts[SignatureStatus.GONE]} gone"
        + (f"; {ignored} on the not-a-risk list" if ignored else "")
        + ")"
    )
    return verdict.make(Classification.PASS, why)


def _holds_only(signature: LogSignature, spec: MetricSpec) -> bool:
    if signature.caller:
        return spec.callers == "hold"
    return signature.status is SignatureStatus.VANISHED and spec.vanished == "hold"


def fails(signature: LogSignature, spec: MetricSpec) -> bool:
    """Whether a signature fails the release: not on the not-a-risk list, and either VANISHED (a statement of
    any level, unless spec.vanished is "show") or an error-level one NEW (credibly absent from the baseline,
    with at least spec.min_count lines) or credibly INCREASED. NEW info lines are shown, never failing.
    A caller's line naming the service fails likewise unless spec.callers is "show"."""
    if signature.ignored or (signature.caller and spec.callers == "show"):
        return False
    if signature.status is SignatureStatus.VANISHED:
        return spec.vanished != "show"
    if signature.level != "error":
        return False
    if signature.status is SignatureStatus.NEW:
        return signature.credible and signature.candidate_count >= spec.min_count
    return signature.status is SignatureStatus.INCREASED


def _describe(s: LogSignature) -> str:
    kind = f" ({s.error_type})" if s.error_type else ""
    if s.caller:
        before = f"{plural(round(s.baseline_count), 'line')} in the baseline window" if s.baseline_count else "none in the baseline window"
        change = "NEW" if s.status is SignatureStatus.NEW else s.status.value
        p_value = f", p={s.p_value:.2g}" if s.p_value is not None else ""
        return f'{change} in caller {s.caller}: "{s.template}"{kind}: {plural(round(s.candidate_count), "line")} naming this service, {before}{p_value}'
    rate = f", {s.candidate_rate:.2f} per 1k" if s.candidate_rate is not None else ""
    p_value = f", p={s.p_value:.2g}" if s.p_value is not None else ""
    if s.status is SignatureStatus.NEW:
        return f'NEW error signature "{s.template}"{kind}: {plural(round(s.candidate_count), "line")}{rate}, absent from the baseline{p_value}'
    if s.status is SignatureStatus.VANISHED:
        was = f"{s.baseline_rate:.2f} per 1k" if s.baseline_rate is not None else plural(round(s.baseline_count), "line")
        return f'VANISHED {s.level} statement "{s.template}": {plural(round(s.baseline_count), "line")} ({was}) in the baseline, none since{p_value}'
    before = f"{s.baseline_rate:.2f} per 1k" if s.baseline_rate is not None else plural(round(s.baseline_count), "line")
    before += " (known from the service's history)" if s.in_history and not s.baseline_count else ""
    return f'INCREASED error signature "{s.template}"{kind}: {s.candidate_count:.0f} lines{rate}, was {before}{p_value}'


def _summary(signatures: Sequence[LogSignature], side: str, lines: float) -> Summary:
    present = [s for s in signatures if not s.caller and (s.candidate_count if side == "candidate" else s.baseline_count) > 0]
    errors = sum(s.level == "error" for s in present)
    return Summary(None, lines, f"{len(present)} signatures ({errors} error) in {lines:.0f} log lines")
