"""The verdict on log signatures: a new or credibly increased error signature fails, naming its template."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from releasehealth.model import Classification, MetricSpec, Series, SignatureStatus
from releasehealth.scoring.series import sum_by_time
from releasehealth.scoring.signatures import compare
from releasehealth.scoring.verdict import VerdictBuilder
from releasehealth.verdicts import LogSamples, LogSignature, MetricVerdict, Summary

TEST_NAME = "drain3 templates: NEW (absent from the baseline) or INCREASED (Wald test on the log rate ratio)"
NAMED = 3  # signatures named in a reason


def compare_samples(spec: MetricSpec, samples: LogSamples | None, alpha: float) -> tuple[LogSignature, ...]:
    """Every signature of both windows' samples, compared at `alpha` (the metric's share of the release's),
    each marked failing or not by the judge's rule (`fails`)."""
    if samples is None:
        return ()
    signatures = compare(
        samples.baseline, samples.candidate, samples.totals, tolerance=spec.tolerance.relative, alpha=alpha,
        not_a_risk=samples.not_a_risk,
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
        return verdict.make(Classification.HIGH, named + more)
    counts = {status: sum(s.status is status for s in signatures) for status in SignatureStatus}
    ignored = sum(s.ignored and s.status in (SignatureStatus.NEW, SignatureStatus.INCREASED) for s in signatures)
    why = (
        f"no new or increased error signature among {len(signatures)} "
        f"({counts[SignatureStatus.NEW]} new, {counts[SignatureStatus.INCREASED]} increased, "
        f"{counts[SignatureStatus.KNOWN]} known, {counts[SignatureStatus.GONE]} gone"
        + (f"; {ignored} on the not-a-risk list" if ignored else "")
        + ")"
    )
    return verdict.make(Classification.PASS, why)


def fails(signature: LogSignature, spec: MetricSpec) -> bool:
    """Whether a signature fails the release: error level, not on the not-a-risk list, and NEW (credibly
    absent from the baseline, with at least spec.min_count lines) or credibly INCREASED."""
    if signature.ignored or signature.level != "error":
        return False
    if signature.status is SignatureStatus.NEW:
        return signature.credible and signature.candidate_count >= spec.min_count
    return signature.status is SignatureStatus.INCREASED


def _describe(s: LogSignature) -> str:
    kind = f" ({s.error_type})" if s.error_type else ""
    rate = f", {s.candidate_rate:.2f} per 1k" if s.candidate_rate is not None else ""
    p_value = f", p={s.p_value:.2g}" if s.p_value is not None else ""
    if s.status is SignatureStatus.NEW:
        return f'NEW error signature "{s.template}"{kind}: {s.candidate_count:.0f} lines{rate}, absent from the baseline{p_value}'
    before = f"{s.baseline_rate:.2f} per 1k" if s.baseline_rate is not None else f"{s.baseline_count:.0f} lines"
    return f'INCREASED error signature "{s.template}"{kind}: {s.candidate_count:.0f} lines{rate}, was {before}{p_value}'


def _summary(signatures: Sequence[LogSignature], side: str, lines: float) -> Summary:
    present = [s for s in signatures if (s.candidate_count if side == "candidate" else s.baseline_count) > 0]
    errors = sum(s.level == "error" for s in present)
    return Summary(None, lines, f"{len(present)} signatures ({errors} error) in {lines:.0f} log lines")
