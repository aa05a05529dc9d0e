"""Ratios of counters (errors / requests): window totals compared with an overdispersion-aware test.

Per-step error counts are burstier than a binomial allows (the error probability itself wanders), so
a plain two-proportion z-test would call noise a regression. We inflate its variance by the Pearson
dispersion factor estimated from the steps of both windows (the quasi-binomial model: McCullagh &
Nelder, Generalized Linear Models, 2nd ed., §4.5):

    phi = max(1, (X2_baseline + X2_candidate) / (k_baseline - 1 + k_candidate - 1)),
    X2  = sum_i (x_i - n_i p)^2 / (n_i p (1 - p))  over the steps i of a window with ratio p,
    se  = sqrt(phi * (p_b (1 - p_b) / n_b + p_c (1 - p_c) / n_c)).

A change fails only when it is credible (one-sided Wald test of H0: no harmful change, p_c - p_b <= 0,
with the unpooled, dispersion-inflated variance) and beyond tolerance (the measured change exceeds
the margin m = max(relative x p_b, absolute)): the test says whether the rise is real, the tolerance
whether it matters. (Testing H0: change <= m instead would miss most changes just beyond the margin:
on the accuracy benchmark, error ratio x1.5 was caught 39% of the time that way, 83% this way, at no
more false rollbacks.) A zero-error baseline is handled (the variance then comes from the candidate).
Too little traffic is NODATA, never a pass.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from releasehealth.model import Classification, MetricSpec, Series
from releasehealth.scoring.series import on_steps, plausible_steps, sum_by_time, valid_steps
from releasehealth.scoring.verdict import (
    VerdictBuilder,
    harmful_change_p_value,
    harmful_sign,
)
from releasehealth.verdicts import MetricVerdict, Summary

TEST_NAME = "quasi-binomial two-proportion z-test on window totals"


def classify_ratio(
    spec: MetricSpec,
    baseline: dict[str, list[Series]],
    candidate: dict[str, list[Series]],
    alpha: float,
    ci_alpha: float | None = None,
) -> MetricVerdict:
    """Return the verdict on a ratio metric; inputs map "numerator"/"denominator" to series. The change
    is credible when p < alpha; the confidence interval shown is at 1 - ci_alpha (default alpha)."""
    b_steps, b_num, b_den, b_invalid = _counts(baseline)
    c_steps, c_num, c_den, c_invalid = _counts(candidate)
    b, c = _summary(b_num, b_den, b_invalid), _summary(c_num, c_den, c_invalid)
    verdict = VerdictBuilder(spec, TEST_NAME, b, c, _ratio_series(b_steps, b_num, b_den), _ratio_series(c_steps, c_num, c_den))
    if b.count < spec.min_count or c.count < spec.min_count:
        return verdict.nodata(
            f"too little traffic to judge: baseline {b.count:.0f} and candidate {c.count:.0f} requests, "
            f"at least {spec.min_count} needed in each window"
        )
    if b_num.sum() == 0 and c_num.sum() == 0:
        return verdict.make(Classification.PASS, "no errors in either window", change=0.0)
    p_b, p_c = b.value, c.value
    # Both windows passed min_count (>= 1, validated) of requests, so both totals are positive and both set.
    assert p_b is not None and p_c is not None
    phi = _dispersion([(b_num, b_den, p_b), (c_num, c_den, p_c)])
    se = math.sqrt(phi * (p_b * (1 - p_b) / b.count + p_c * (1 - p_c) / c.count))
    if se == 0:  # one window without errors and the other all errors: take the pooled variance
        pooled = (b_num.sum() + c_num.sum()) / (b.count + c.count)
        se = math.sqrt(phi * pooled * (1 - pooled) * (1 / b.count + 1 / c.count))
    sign = harmful_sign(spec.direction, p_c - p_b)
    p_value = harmful_change_p_value(sign * (p_c - p_b), se, spec.direction, stats.norm()) if sign else 1.0
    ci_alpha = ci_alpha or alpha
    half = stats.norm.ppf(1 - ci_alpha / 2) * se
    ci = f"{(1 - ci_alpha) * 100:g}% CI {(p_c - p_b - half) * 100:+.2f}..{(p_c - p_b + half) * 100:+.2f} pp"
    return verdict.decide(p_value, alpha, ci, f"dispersion {phi:.2f}")


def valid_ratio_steps(side: dict[str, list[Series]]) -> np.ndarray:
    """The steps of one window a ratio is computed on: the denominator's steps with valid counts."""
    return _counts(side)[0]


def _counts(side: dict[str, list[Series]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(steps, numerator, denominator, invalid steps) aligned on the denominator's steps; missing errors
    are zero; a step with a NaN, infinite or negative count, more errors than requests, or a count no
    traffic explains (series.SPIKE_FACTOR), is dropped."""
    steps, denominator = sum_by_time(side.get("denominator", []))
    numerator = on_steps(side.get("numerator", []), steps)
    keep = valid_steps(numerator, denominator)
    keep[keep] &= numerator[keep] <= denominator[keep]
    keep[keep] &= plausible_steps(denominator[keep])
    return steps[keep], numerator[keep], denominator[keep], int((~keep).sum())


def _summary(numerator: np.ndarray, denominator: np.ndarray, invalid: int) -> Summary:
    total = float(denominator.sum())
    value = float(numerator.sum()) / total if total > 0 else None
    dropped = f"; {invalid} invalid step(s) left out" if invalid else ""
    return Summary(value, total, f"{numerator.sum():.0f} of {total:.0f}{dropped}")


def ratio_per_step(numerator: list[Series], denominator: list[Series]) -> Series:
    """Numerator over denominator at each valid step of the denominator (NaN where it is zero)."""
    steps, num, den, _ = _counts({"numerator": numerator, "denominator": denominator})
    return _ratio_series(steps, num, den)


def _ratio_series(steps: np.ndarray, numerator: np.ndarray, denominator: np.ndarray) -> Series:
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(denominator > 0, numerator / denominator, np.nan)
    return Series({}, steps, ratio)


def _dispersion(windows: list[tuple[np.ndarray, np.ndarray, float]]) -> float:
    """Pearson chi-square over degrees of freedom, pooled over windows; at least 1 (binomial)."""
    chi2, dof = 0.0, 0
    for numerator, denominator, p in windows:
        used = denominator > 0
        if used.sum() < 2 or not 0 < p < 1:
            continue
        expected = denominator[used] * p
        chi2 += float((((numerator[used] - expected) ** 2) / (expected * (1 - p))).sum())
        dof += int(used.sum()) - 1
    return max(1.0, chi2 / dof) if dof > 0 else 1.0
