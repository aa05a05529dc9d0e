"""Gauges (memory, CPU): Mann-Whitney U against the tolerance-shifted baseline, and a Theil-Sen leak test.

Each window gives one value per step: the mean across the series present at that step (the preset's
template already aggregates a version to one series; when a template keeps per-instance series, the mean
compares a typical instance, which stays comparable when the two versions run different numbers of
replicas, as in a canary). NaN and +-inf are dropped first (Kayenta's NaN strategy "remove": a ratio over
zero requests is no measurement). Optionally (REMOVE_OUTLIERS) Kayenta's outlier filter drops points
outside Tukey's fences Q1 - 3 IQR, Q3 + 3 IQR widened to the 1st and 99th percentiles.

Level, the Kayenta-compatible part (spinnaker/kayenta `MannWhitneyClassifier`): the rank-sum test of
Mann & Whitney (Ann. Math. Statist. 18, 1947), but of the hypothesis that matters, as in scoring.verdict:
H0 "the candidate is not stochastically above the baseline shifted by the tolerance margin
m = max(relative x |mean_b|, absolute)", i.e. U of candidate vs baseline + m, one-sided (normal
approximation with tie and continuity corrections; doubled when both directions hurt). The interval shown
is the Hodges-Lehmann shift, the median of the pairwise differences candidate_i - baseline_j, with its
distribution-free CI [D_(k), D_(nm+1-k)], k = floor(nm/2 - z_(1-a/2) sqrt(nm(n+m+1)/12)) (Hodges &
Lehmann, Ann. Math. Statist. 34, 1963; Lehmann, Nonparametrics, 1975, §2.6). Effect sizes: the mean ratio
candidate/baseline (Kayenta's default) and the common-language effect size CLES = P(c > b) + P(c = b)/2
(McGraw & Wong, Psychol. Bull. 111, 1992).

Trend, for leaks: the Theil-Sen slope of each window (Theil 1950; Sen, JASA 63, 1968), with Sen's
Kendall-based CI from scipy.stats.theilslopes. A leak is a candidate slope steeper than the baseline's
by more than the margin over the window: H0 (b_c - b_b) T <= m0, z = ((b_c - b_b) T - m0) / (T se),
se^2 = se_c^2 + se_b^2, each se the half-width of the slope's 95% CI over z_0.975, and m0 the margin
of the candidate's fitted level at its window's start (a baseline that leaked for hours has a mean far
above where a restarted candidate begins). Absolute slopes are compared, so a candidate that leaks
exactly as its baseline did passes: it is no worse.

The verdict's p-value is the Bonferroni union of the two tests, min(1, 2 min(p_level, p_trend)): it fails
when either test is credible at alpha. Both tests treat steps as independent (as Kayenta does), so
autocorrelated gauges are judged too confidently; the tolerance margin, not the p-value, keeps drift
from failing a release.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from scipy import stats

from releasehealth.format import format_value, p_text
from releasehealth.model import Classification, Direction, MetricSpec, Series
from releasehealth.scoring.verdict import (
    VerdictBuilder,
    beyond_margin_p_value,
    harmful_sign,
    relative_change,
    tolerance_margin,
)
from releasehealth.verdicts import MetricVerdict, Summary

TEST_NAME = "Mann-Whitney U against the tolerance-shifted baseline, and Theil-Sen trend"
MIN_POINTS = 3  # fewer steps than this in a window is NODATA whatever the spec says
REMOVE_OUTLIERS = False  # Kayenta's default; IQR fences are a choice for noisy, spiky gauges
OUTLIER_FACTOR = 3.0
SE_LEVEL = 0.95  # the slope CI whose half-width gives the slope's standard error


class Points(NamedTuple):
    """One window's per-step values of the gauge, finite only, in time order."""

    times: np.ndarray
    values: np.ndarray


class Level(NamedTuple):
    p_value: float
    shift: float  # Hodges-Lehmann estimate of candidate - baseline
    low: float
    high: float
    cles: float


class Trend(NamedTuple):
    p_value: float
    baseline: float  # Theil-Sen slopes, units per second
    candidate: float
    low: float  # CI of the candidate's slope
    high: float
    growth: float  # (candidate - baseline slope) x window length, relative to the candidate's starting level
    harmful: int  # harmful_sign of the slope difference


def classify_gauge(
    spec: MetricSpec,
    baseline: dict[str, list[Series]],
    candidate: dict[str, list[Series]],
    alpha: float,
    ci_alpha: float | None = None,
    *,
    remove_outliers: bool = REMOVE_OUTLIERS,
) -> MetricVerdict:
    """Return the verdict on a gauge; inputs map "value" to series. The change is credible when p < alpha;
    the confidence intervals shown are at 1 - ci_alpha (default alpha). Never raises on empty, NaN or inf."""
    (b, b_invalid), (c, c_invalid) = (
        in_range(per_step(side.get("value", []), remove_outliers), spec) for side in (baseline, candidate)
    )
    verdict = VerdictBuilder(spec, TEST_NAME, _summary(b, b_invalid), _summary(c, c_invalid), Series({}, *b), Series({}, *c))
    return _classify(verdict, spec, b, c, alpha, ci_alpha or alpha)


def in_range(points: Points, spec: MetricSpec) -> tuple[Points, int]:
    """The steps inside the gauge's valid range (spec.valid_min..valid_max), and how many were not: a
    negative memory or CPU is garbage from the source, never a level to judge."""
    keep = np.ones(points.values.size, dtype=bool)
    if spec.valid_min is not None:
        keep &= points.values >= spec.valid_min
    if spec.valid_max is not None:
        keep &= points.values <= spec.valid_max
    return Points(points.times[keep], points.values[keep]), int((~keep).sum())


def _classify(verdict: VerdictBuilder, spec: MetricSpec, b: Points, c: Points, alpha: float, ci_alpha: float) -> MetricVerdict:
    """Guard clauses first (no data, too few points, identical, constant), then the two tests."""
    needed = max(spec.min_count, MIN_POINTS)
    if not b.values.size or not c.values.size:
        return verdict.nodata(f"no data: {b.values.size} baseline and {c.values.size} candidate steps with a finite value")
    if b.values.size < needed or c.values.size < needed:
        return verdict.nodata(
            f"too few points to judge: baseline {b.values.size} and candidate {c.values.size} steps, "
            f"at least {needed} needed in each window"
        )
    if np.array_equal(np.sort(b.values), np.sort(c.values)):
        return verdict.make(Classification.PASS, "identical values in both windows", change=0.0, p_value=1.0)
    if np.ptp(b.values) == 0 and np.ptp(c.values) == 0:
        return _constant(verdict, spec, b, c, alpha)
    return _compare(verdict, spec, b, c, alpha, ci_alpha)


def per_step(series: list[Series], remove_outliers: bool = False) -> Points:
    """The window's value per step: the mean over the series with a finite value at that step."""
    if not series:
        return Points(np.array([]), np.array([]))
    times = np.concatenate([np.asarray(s.timestamps, dtype=np.float64) for s in series])
    values = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in series])
    finite = np.isfinite(times) & np.isfinite(values)
    steps, index = np.unique(times[finite], return_inverse=True)
    means = np.bincount(index, weights=values[finite], minlength=steps.size) / np.bincount(index, minlength=steps.size)
    if remove_outliers and means.size:
        keep = ~outliers(means)
        steps, means = steps[keep], means[keep]
    return Points(steps, means)


def outliers(values: np.ndarray, factor: float = OUTLIER_FACTOR) -> np.ndarray:
    """Kayenta's outlier mask: outside Q1 - factor IQR .. Q3 + factor IQR, fences no tighter than P1..P99."""
    q1, q3, p1, p99 = np.percentile(values, [25, 75, 1, 99])
    low, high = min(q1 - factor * (q3 - q1), p1), max(q3 + factor * (q3 - q1), p99)
    outside: np.ndarray = (values < low) | (values > high)  # numpy's stubs type the percentiles as Any
    return outside


def level_test(baseline: np.ndarray, candidate: np.ndarray, spec: MetricSpec, ci_alpha: float) -> Level:
    """Mann-Whitney of the candidate against the baseline shifted by the margin in the harmful direction,
    and the Hodges-Lehmann shift with its (1 - ci_alpha) CI."""
    diffs = np.sort(np.subtract.outer(candidate, baseline).ravel())
    cles = float((np.count_nonzero(diffs > 0) + 0.5 * np.count_nonzero(diffs == 0)) / diffs.size)
    low, high = _shift_interval(diffs, candidate.size, baseline.size, ci_alpha)
    sign = harmful_sign(spec.direction, float(candidate.mean() - baseline.mean()))
    p_value = 1.0
    if sign:
        shifted = baseline + sign * tolerance_margin(spec, float(baseline.mean()))
        alternative: Literal["greater", "less"] = "greater" if sign > 0 else "less"
        p_value = float(stats.mannwhitneyu(candidate, shifted, alternative=alternative, method="asymptotic").pvalue)
        p_value = min(1.0, 2 * p_value) if spec.direction is Direction.EITHER else p_value
    return Level(p_value, float(np.median(diffs)), low, high, cles)


def _shift_interval(diffs: np.ndarray, n: int, m: int, ci_alpha: float) -> tuple[float, float]:
    """[D_(k), D_(nm+1-k)] of the sorted pairwise differences (1-based), the whole range when k < 1."""
    z = float(stats.norm.ppf(1 - ci_alpha / 2))
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    if k < 1:
        return float(diffs[0]), float(diffs[-1])
    return float(diffs[k - 1]), float(diffs[diffs.size - k])


def trend_test(baseline: Points, candidate: Points, spec: MetricSpec, ci_alpha: float) -> Trend:
    """Theil-Sen slopes of both windows and the p-value of H0: the candidate's extra slope, projected over
    the candidate window, stays within the tolerance margin of the candidate's fitted starting level (not
    the baseline's mean: a leaking baseline has grown for hours, which would widen the margin)."""
    span = float(candidate.times[-1] - candidate.times[0])
    b_slope, b_se, _ = _slope(baseline)
    c_slope, c_se, start = _slope(candidate)
    shown = stats.theilslopes(candidate.values, candidate.times - candidate.times[0], alpha=1 - ci_alpha)
    rise = (c_slope - b_slope) * span
    sign = harmful_sign(spec.direction, rise)
    excess = sign * rise - tolerance_margin(spec, start)
    p_value = beyond_margin_p_value(excess, span * math.hypot(b_se, c_se), spec.direction, stats.norm()) if sign else 1.0
    growth = rise / abs(start) if start else math.inf
    return Trend(p_value, b_slope, c_slope, float(shown.low_slope), float(shown.high_slope), growth, sign)


def _slope(window: Points) -> tuple[float, float, float]:
    """(Theil-Sen slope, its standard error from the half-width of Sen's 95% CI, fitted value at the
    window's first step)."""
    fit = stats.theilslopes(window.values, window.times - window.times[0], alpha=SE_LEVEL)
    z = float(stats.norm.ppf(0.5 + SE_LEVEL / 2))
    return float(fit.slope), float(fit.high_slope - fit.low_slope) / (2 * z), float(fit.intercept)


def _compare(
    verdict: VerdictBuilder, spec: MetricSpec, b: Points, c: Points, alpha: float, ci_alpha: float
) -> MetricVerdict:
    level = level_test(b.values, c.values, spec, ci_alpha)
    trend = trend_test(b, c, spec, ci_alpha)
    p_value = min(1.0, 2 * min(level.p_value, trend.p_value))
    if trend.harmful and 2 * trend.p_value < alpha:
        return _leak(verdict, spec, trend, p_value, ci_alpha)
    unit, confidence = spec.unit, f"{(1 - ci_alpha) * 100:g}%"
    interval = (
        f"{confidence} CI of the shift {format_value(level.low, unit, True)}..{format_value(level.high, unit, True)} "
        f"(Hodges-Lehmann {format_value(level.shift, unit, True)})"
    )
    detail = (
        f"mean ratio {_ratio(float(c.values.mean()), float(b.values.mean()))}, CLES {level.cles:.2f}, "
        f"trend {_rate(trend.candidate, unit)} vs {_rate(trend.baseline, unit)} "
        f"({trend.growth * 100:+.0f}% over the window, {p_text(min(1.0, 2 * trend.p_value))})"
    )
    return verdict.decide(p_value, alpha, interval, detail)


def _leak(verdict: VerdictBuilder, spec: MetricSpec, trend: Trend, p_value: float, ci_alpha: float) -> MetricVerdict:
    unit = spec.unit
    label = Classification.HIGH if trend.harmful > 0 else Classification.LOW
    moving = "rising" if trend.candidate > trend.baseline else "falling"
    why = (
        f"{moving} {_rate(trend.candidate, unit)} vs {_rate(trend.baseline, unit)} in the baseline "
        f"(Theil-Sen {(1 - ci_alpha) * 100:g}% CI {_rate(trend.low, unit, sign=True)}..{_rate(trend.high, unit, sign=True)}), "
        f"{trend.growth * 100:+.0f}% over the window, credibly beyond tolerance +{spec.tolerance.relative * 100:g}% "
        f"({p_text(p_value)}, Theil-Sen trend test); {'a leak' if trend.harmful > 0 else 'a steady decline'}"
    )
    b, c = verdict.baseline.value, verdict.candidate.value
    # _classify returns NODATA for a window without finite steps before any test, so both means are set.
    assert b is not None and c is not None
    return verdict.make(label, why, relative_change(b, c), p_value)


def _constant(verdict: VerdictBuilder, spec: MetricSpec, b: Points, c: Points, alpha: float) -> MetricVerdict:
    """Both windows hold one value each: no noise to test against, so a change beyond the margin in
    the harmful direction is certain (p = 0) and anything else passes (p = 1)."""
    difference = float(c.values[0] - b.values[0])
    sign = harmful_sign(spec.direction, difference)
    beyond = bool(sign) and abs(difference) > tolerance_margin(spec, float(b.values[0]))
    return verdict.decide(0.0 if beyond else 1.0, alpha, "constant in both windows", "no spread to test against")


def _ratio(candidate: float, baseline: float) -> str:
    return f"{candidate / baseline:.3g}" if baseline else "undefined (zero baseline)"


def _summary(window: Points, invalid: int = 0) -> Summary:
    dropped = f"; {invalid} step(s) outside the valid range left out" if invalid else ""
    if not window.values.size:
        return Summary(None, 0.0, f"no finite values{dropped}")
    return Summary(float(window.values.mean()), float(window.values.size), f"mean of {window.values.size} steps{dropped}")


def _rate(per_second: float, unit: str, sign: bool = False) -> str:
    """A slope as the unit per minute: "38 MiB/min"."""
    return f"{format_value(per_second * 60, unit, sign)}/min"
