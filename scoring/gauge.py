"""Gauges (memory, CPU, connections): a rank test of the level, an excursion test of the upper tail and a
Theil-Sen leak test, each against the tolerance.

Each window gives one value per step: the mean across the series present at that step (the preset's
template already aggregates a version to one series; when a template keeps per-instance series, the mean
compares a typical instance, which stays comparable when the two versions run different numbers of
replicas, as in a canary). NaN and +-inf are dropped first (Kayenta's NaN strategy "remove": a ratio over
zero requests is no measurement), and so are steps outside the metric's valid range. Optionally
(REMOVE_OUTLIERS) Kayenta's outlier filter drops points outside Tukey's fences Q1 - 3 IQR, Q3 + 3 IQR
widened to the 1st and 99th percentiles.

A window's level is its median, and the tolerance margin m = max(relative x |median_b|, absolute) is taken
from the baseline's median: one spike in the baseline (a cron job, a GC storm) moves a mean and a margin
computed from it by as much as it likes (a 50x minute in 30 lifts the mean 2.6-fold, and a 3.5x rise then
passes), the median not at all (its breakdown point is 50%; Huber & Ronchetti, Robust Statistics, 2009).

Level, the Kayenta-compatible part (spinnaker/kayenta `MannWhitneyClassifier`): the rank-sum test of
Mann & Whitney (Ann. Math. Statist. 18, 1947), one-sided in the harmful direction (normal approximation
with tie and continuity corrections, so count-like gauges with many ties are tested correctly; doubled
when both directions hurt). As for ratios (scoring.ratio), a level fails when the rise is credible (H0:
the candidate is not stochastically above the baseline) and the measured median moved beyond the margin
m: testing H0 "not above the baseline shifted by m" instead asks for a rise well past the margin before
it is credible, and missed 39% of connection pools grown by half (Poisson counts of 4-12) where this
rule misses 4%, at 2.4% false holds on good releases instead of 1.2% (accuracy benchmark, 16 seeds). The interval shown is
the Hodges-Lehmann shift, the median of the pairwise differences candidate_i - baseline_j, with its
distribution-free CI [D_(k), D_(nm+1-k)], k = floor(nm/2 - z_(1-a/2) sqrt(nm(n+m+1)/12)) (Hodges &
Lehmann, Ann. Math. Statist. 34, 1963; Lehmann, Nonparametrics, 1975, §2.6). Effect sizes: the mean ratio
candidate/baseline (Kayenta's default) and the common-language effect size CLES = P(c > b) + P(c = b)/2
(McGraw & Wong, Psychol. Bull. 111, 1992).

Excursions, for regressions confined to short episodes (one minute in six at 3x CPU while the median
stays put, which a location test cannot see): k, the candidate steps beyond the baseline's most extreme
step by more than the margin m. Under H0 (both windows from one distribution, exchangeable) the chance
that the k most extreme of all n_b + n_c steps are all the candidate's is C(n_c, k) / C(n_b + n_c, k), the
precedence test's tail (Nelson, "Tests for early failures", Technometrics 5, 1963; Balakrishnan & Ng,
Precedence-Type Tests, 2006); demanding the margin on top only makes it conservative. It is exact
whatever the distribution, and one isolated spike (k = 1, p = n_c / (n_b + n_c)) never fails a release.
Its price: five of thirty steps are needed before p < 0.01, so episodes of two or three minutes in thirty
pass here. A control limit from a model of the step spread (as scoring.excursions sets for counts, from
the binomial) would see them, but a gauge has no such model: CPU per request at low traffic, pool connections
(Poisson, skewed) and memory on a daily ramp all cross a 3-sigma limit several times a window in good
releases (measured: 10% false holds on the accuracy benchmark), so the episodes are left to the counted
metrics, the latency tail and the error ratio, where a binomial model of each step is sound.

Trend, for leaks: the Theil-Sen slope of each window (Theil 1950; Sen, JASA 63, 1968), with Sen's
Kendall-based CI as scipy.stats.theilslopes computes it, fitted to at most TREND_POINTS points: a longer
window is cut into consecutive blocks of equal length, each taken as the median of its times and of its
values. The pairwise slopes grow as n^2 (20,000 for a 200-step window, most of the judge's time); the
block medians keep the estimator's robustness (an outlier step moves its block's median by at most one
rank) and lose little precision on a trend (a block median is a steadier point than one step), so
the CI is Sen's on the points the fit sees. A leak is growth the candidate adds beyond the tolerance:
with `trend_tolerance` (growth per hour relative to the level, e.g. 0.1), the candidate's slope must
exceed the tolerance both on its own and above the baseline's slope; without it, the slope times the
window must exceed the level margin m0 of the candidate's fitted starting level. The two conditions are an
intersection-union test (Berger, "Multiparameter hypothesis testing and acceptance sampling",
Technometrics 24, 1982): each one-sided z-test at alpha, the p-value their maximum, no correction needed.
Comparing with the baseline's slope cancels a daily cycle both windows ride on; demanding growth of the
candidate itself keeps a baseline falling on that cycle from making a flat candidate a "leak"; and a
candidate leaking exactly as its baseline did passes: it is no worse.

The verdict's p-value is the Bonferroni union of the three tests, min(1, 3 min(p_level, p_excursion,
p_trend)). The tests treat steps as independent (as Kayenta does), so autocorrelated gauges are judged
too confidently; the tolerance margins, not the p-values, keep drift and cycles from failing a release.
Gauges usually only hold a release (scoring.judging's hold-only family), which spends policy.hold_alpha.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import special

from releasehealth.format import confidence_text, format_value, p_text, plural, tolerance_text
from releasehealth.model import Classification, Direction, MetricSpec, Series
from releasehealth.scoring.distributions import NORMAL
from releasehealth.scoring.ranks import average_ranks, difference_order_statistics, median, row_medians, tie_term
from releasehealth.scoring.series import in_order
from releasehealth.scoring.verdict import (
    VerdictBuilder,
    beyond_margin_p_value,
    harmful_sign,
    relative_change,
    tolerance_margin,
)
from releasehealth.verdicts import MetricVerdict, Summary

TEST_NAME = "Mann-Whitney U against the tolerance-shifted baseline, precedence test of excursions, Theil-Sen trend"
TESTS = 3  # level, excursions, trend: the Bonferroni factor of the verdict's p-value
MIN_POINTS = 3  # fewer steps than this in a window is NODATA whatever the spec says
REMOVE_OUTLIERS = False  # Kayenta's default; IQR fences are a choice for noisy, spiky gauges
OUTLIER_FACTOR = 3.0
SE_LEVEL = 0.95  # the slope CI whose half-width gives the slope's standard error
SE_Z = NORMAL.ppf(0.5 + SE_LEVEL / 2)
TREND_POINTS = 50  # the most points a Theil-Sen fit takes: block medians of a longer window


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
    if _same_values(b.values, c.values):
        return verdict.make(Classification.PASS, "identical values in both windows", change=0.0, p_value=1.0)
    if np.ptp(b.values) == 0 and np.ptp(c.values) == 0:
        return _constant(verdict, spec, b, c, alpha)
    return _compare(verdict, spec, b, c, alpha, ci_alpha)


def _same_values(baseline: np.ndarray, candidate: np.ndarray) -> bool:
    """Whether the two windows hold the same values, in any order (the extremes tell most pairs apart
    without sorting them)."""
    if baseline.size != candidate.size or baseline.min() != candidate.min() or baseline.max() != candidate.max():
        return False
    return bool(np.array_equal(np.sort(baseline), np.sort(candidate)))


def per_step(series: list[Series], remove_outliers: bool = False) -> Points:
    """The window's value per step: the mean over the series with a finite value at that step."""
    steps, means = _step_means(series)
    if remove_outliers and means.size:
        keep = ~outliers(means)
        steps, means = steps[keep], means[keep]
    return Points(steps, means)


def _step_means(series: list[Series]) -> tuple[np.ndarray, np.ndarray]:
    if not series:
        return np.array([]), np.array([])
    times = np.asarray(series[0].timestamps, dtype=np.float64)
    if len(series) == 1 and in_order(times):  # the usual answer: one series, each step once
        values = np.asarray(series[0].values, dtype=np.float64)
        finite = np.isfinite(times) & np.isfinite(values)
        return (times, values) if finite.all() else (times[finite], values[finite])
    times = np.concatenate([np.asarray(s.timestamps, dtype=np.float64) for s in series])
    values = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in series])
    finite = np.isfinite(times) & np.isfinite(values)
    steps, index = np.unique(times[finite], return_inverse=True)
    means = np.bincount(index, weights=values[finite], minlength=steps.size) / np.bincount(index, minlength=steps.size)
    return steps, means


def outliers(values: np.ndarray, factor: float = OUTLIER_FACTOR) -> np.ndarray:
    """Kayenta's outlier mask: outside Q1 - factor IQR .. Q3 + factor IQR, fences no tighter than P1..P99."""
    q1, q3, p1, p99 = np.percentile(values, [25, 75, 1, 99])
    low, high = min(q1 - factor * (q3 - q1), p1), max(q3 + factor * (q3 - q1), p99)
    outside: np.ndarray = (values < low) | (values > high)  # numpy's stubs type the percentiles as Any
    return outside


def level_test(baseline: np.ndarray, candidate: np.ndarray, spec: MetricSpec, ci_alpha: float) -> Level:
    """Mann-Whitney of the candidate against the baseline, one-sided in the harmful direction (the margin
    is the decision's, on the medians: VerdictBuilder.decide), and the Hodges-Lehmann shift with its
    (1 - ci_alpha) CI."""
    u_statistic, ties = _rank_sum(candidate, baseline)
    n, m = candidate.size, baseline.size
    cles = u_statistic / (n * m)  # U counts the pairs with c > b, and half of those with c = b
    shift, low, high = _shift(candidate, baseline, ci_alpha)
    sign = harmful_sign(spec.direction, median(candidate) - median(baseline))
    p_value = 1.0
    if sign:
        p_value = _rank_sum_p_value(u_statistic if sign > 0 else n * m - u_statistic, n, m, ties)
        p_value = min(1.0, 2 * p_value) if spec.direction is Direction.EITHER else p_value
    return Level(p_value, shift, low, high, cles)


def _rank_sum(candidate: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """(Mann-Whitney's U of the candidate, the tie term sum(t^3 - t) over groups of tied values), from
    the average ranks of the pooled sample."""
    ranks, sizes = average_ranks(np.concatenate([candidate, baseline]))
    u_statistic = float(ranks[: candidate.size].sum()) - candidate.size * (candidate.size + 1) / 2
    return u_statistic, tie_term(sizes)


def _rank_sum_p_value(u_statistic: float, n: int, m: int, ties: float) -> float:
    """P(U >= u) under H0 by the normal approximation with the tie and continuity corrections, as
    scipy.stats.mannwhitneyu(method="asymptotic") computes it (without its per-call overhead)."""
    total = n + m
    spread = math.sqrt(n * m / 12 * ((total + 1) - ties / (total * (total - 1))))
    if spread == 0:
        return 1.0
    return NORMAL.sf((u_statistic - n * m / 2 - 0.5) / spread)


def _shift(candidate: np.ndarray, baseline: np.ndarray, ci_alpha: float) -> tuple[float, float, float]:
    """The Hodges-Lehmann shift, the median of the pairwise differences candidate_i - baseline_j, and its
    interval [D_(k), D_(nm+1-k)] (1-based order statistics; the whole range when k < 1)."""
    n, m = candidate.size, baseline.size
    size = n * m
    z = NORMAL.ppf(1 - ci_alpha / 2)
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    low_at, high_at = (k - 1, size - k) if k >= 1 else (0, size - 1)
    low, middle_low, middle_high, high = difference_order_statistics(candidate, baseline, [low_at, (size - 1) // 2, size // 2, high_at])
    return float((middle_low + middle_high) / 2), float(low), float(high)


def trend_test(baseline: Points, candidate: Points, spec: MetricSpec, ci_alpha: float) -> Trend:
    """Theil-Sen slopes of both windows and the p-value of the leak test (see the module docstring): the
    candidate's slope beyond the tolerated growth, on its own and above the baseline's slope. Levels are
    the candidate's fitted start (not the baseline's: a baseline that leaked for hours has grown)."""
    span = float(candidate.times[-1] - candidate.times[0])
    b_slope, b_se, _ = _slope(theil_sen(baseline))
    c_fit = theil_sen(candidate, 1 - ci_alpha)
    c_slope, c_se, start = _slope(c_fit)
    shown_low, shown_high = c_fit.intervals[1]
    extra = c_slope - b_slope
    sign = harmful_sign(spec.direction, extra) if harmful_sign(spec.direction, c_slope) else 0
    p_value = 1.0
    if sign and span > 0:
        allowed = spec.trend_tolerance * abs(start) / 3600 if spec.trend_tolerance is not None else tolerance_margin(spec, start) / span
        p_value = max(  # intersection-union: a leak on its own and beyond the baseline's trend
            beyond_margin_p_value(sign * c_slope - allowed, c_se, spec.direction, NORMAL),
            beyond_margin_p_value(sign * extra - allowed, math.hypot(b_se, c_se), spec.direction, NORMAL),
        )
    growth = extra * span / abs(start) if start else math.inf
    return Trend(p_value, b_slope, c_slope, shown_low, shown_high, growth, sign)


class Excursions(NamedTuple):
    p_value: float
    steps: int  # candidate steps beyond the threshold
    threshold: float  # the baseline's most extreme step plus the margin, in the harmful direction
    sign: int


def excursion_test(baseline: np.ndarray, candidate: np.ndarray, spec: MetricSpec) -> Excursions:
    """The candidate's steps beyond the baseline's most extreme one plus the margin, and the precedence
    test's p-value of that many (see the module docstring)."""
    margin = tolerance_margin(spec, median(baseline))
    best = Excursions(1.0, 0, math.nan, 0)
    for sign in (1, -1):
        if not harmful_sign(spec.direction, sign):
            continue
        threshold = float(baseline.max() + margin) if sign > 0 else float(baseline.min() - margin)
        count = int(np.count_nonzero(sign * (candidate - threshold) > 0))
        p_value = precedence_p_value(count, baseline.size, candidate.size) if count else 1.0
        if spec.direction is Direction.EITHER:
            p_value = min(1.0, 2 * p_value)
        if p_value < best.p_value or best.sign == 0:
            best = Excursions(p_value, count, threshold, sign)
    return best


def precedence_p_value(k: int, n_baseline: int, n_candidate: int) -> float:
    """P(the k most extreme of the pooled steps are all the candidate's) = C(n_c, k) / C(n_b + n_c, k)."""
    if k > n_candidate:
        return 0.0
    return float(math.exp(
        special.gammaln(n_candidate + 1) - special.gammaln(n_candidate - k + 1)
        - special.gammaln(n_baseline + n_candidate + 1) + special.gammaln(n_baseline + n_candidate - k + 1)
    ))


class TheilSen(NamedTuple):
    slope: float  # the median of the pairwise slopes
    intercept: float  # median(values) - slope x median(times from the first step)
    intervals: tuple[tuple[float, float], ...]  # Sen's CI of the slope at SE_LEVEL, then at each level asked


def theil_sen(window: Points, *levels: float) -> TheilSen:
    """The Theil-Sen fit of a window over the time since its first step, with Sen's (1968) Kendall-based
    CIs of the slope at SE_LEVEL and at each of `levels`, on the window's block medians when it has more
    than TREND_POINTS steps (see the module docstring): scipy.stats.theilslopes' estimates of those
    points (the same order statistics of the same slopes, its tie correction included), with the
    pairwise slopes computed once and sorted once for all the intervals. The intercept is the whole
    window's: median(values) - slope x median(times)."""
    whole_times, whole_values = window.times - window.times[0], window.values
    times, values = block_medians(whole_times, TREND_POINTS, ascending=True), block_medians(whole_values, TREND_POINTS)
    first, second = _pairs(times.size)
    dx = times[second] - times[first]
    rising = dx > 0
    slopes = (values[second] - values[first])[rising] / dx[rising]
    if not slopes.size:
        nan = (math.nan, math.nan)
        return TheilSen(math.nan, math.nan, tuple(nan for _ in (SE_LEVEL, *levels)))
    size = slopes.size
    middle = [(size - 1) // 2, size // 2]
    sigma = math.sqrt(_sen_variance(times, values))
    ranks = [_interval_ranks(size, sigma, level) for level in (SE_LEVEL, *levels)]
    ordered = np.sort(slopes)  # numpy's vectorised sort beats a partition at six ranks
    slope = float((ordered[middle[0]] + ordered[middle[1]]) / 2)
    middle_time = (whole_times[(whole_times.size - 1) // 2] + whole_times[whole_times.size // 2]) / 2  # in time order
    intercept = median(whole_values) - slope * float(middle_time)
    return TheilSen(slope, intercept, tuple((float(ordered[low]), float(ordered[high])) for low, high in ranks))


def block_medians(column: np.ndarray, most: int, *, ascending: bool = False) -> np.ndarray:
    """`column` itself when it has at most `most` entries; else the medians of its consecutive blocks of
    ceil(size / most) entries, the last block holding what is left (at most `most` medians in all). An
    `ascending` column's blocks are in order already: their medians are read off the middle."""
    size = column.size
    length = -(-size // most)
    if length <= 1:
        return column
    whole = size - size % length
    blocks = column[:whole].reshape(-1, length)
    if ascending:
        medians = (blocks[:, (length - 1) // 2] + blocks[:, length // 2]) / 2
        rest = column[whole:]
        return medians if whole == size else np.append(medians, (rest[(rest.size - 1) // 2] + rest[rest.size // 2]) / 2)
    medians = row_medians(blocks)
    return medians if whole == size else np.append(medians, median(column[whole:]))


_PAIRS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _pairs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The (i, j) index pairs with i < j of `size` points (kept: windows have a handful of sizes)."""
    found = _PAIRS.get(size)
    if found is None:
        found = np.triu_indices(size, k=1)
        if len(_PAIRS) < 64:
            _PAIRS[size] = found
    return found


def _sen_variance(times: np.ndarray, values: np.ndarray) -> float:
    """Equation 2.6 of Sen (1968): the variance of Kendall's statistic, corrected for tied times and values
    (the times are in ascending order)."""
    n = values.size
    return (n * (n - 1) * (2 * n + 5) - _tied(times) - _tied(np.sort(values))) / 18


def _tied(ordered: np.ndarray) -> float:
    """sum t (t - 1) (2t + 5) over the groups of t equal values of an ascending column (a group of one adds 0)."""
    changes = np.flatnonzero(ordered[1:] != ordered[:-1])
    if changes.size == ordered.size - 1:  # no two equal: the usual case for times, and for most gauges
        return 0.0
    sizes = np.diff(np.concatenate(([0], changes + 1, [ordered.size]))).astype(np.float64)
    return float((sizes * (sizes - 1) * (2 * sizes + 5)).sum())


def _interval_ranks(size: int, sigma: float, level: float) -> tuple[int, int]:
    """The 0-based ranks of the sorted slopes bounding Sen's CI at `level` (as scipy.stats.theilslopes;
    Python's round, as numpy's, rounds halves to even)."""
    z = _z(level)
    high = min(round((size - z * sigma) / 2), size - 1)
    low = max(round((size + z * sigma) / 2) - 1, 0)
    return low, high


@functools.lru_cache(maxsize=16)
def _z(level: float) -> float:
    """The normal quantile at the lower end of a two-sided interval at `level` (theilslopes' convention)."""
    return NORMAL.ppf((1 - level) / 2 if level > 0.5 else level / 2)


def _slope(fit: TheilSen) -> tuple[float, float, float]:
    """(Theil-Sen slope, its standard error from the half-width of Sen's SE_LEVEL CI, fitted value at the
    window's first step)."""
    low, high = fit.intervals[0]
    return fit.slope, (high - low) / (2 * SE_Z), fit.intercept


def _compare(
    verdict: VerdictBuilder, spec: MetricSpec, b: Points, c: Points, alpha: float, ci_alpha: float
) -> MetricVerdict:
    level = level_test(b.values, c.values, spec, ci_alpha)
    trend = trend_test(b, c, spec, ci_alpha)
    excursions = excursion_test(b.values, c.values, spec)
    p_value = min(1.0, TESTS * min(level.p_value, trend.p_value, excursions.p_value))
    if trend.harmful and TESTS * trend.p_value < alpha:
        return _leak(verdict, spec, trend, p_value, ci_alpha)
    unit, confidence = spec.unit, confidence_text(ci_alpha)
    interval = (
        f"{confidence} CI of the shift {format_value(level.low, unit, True)}..{format_value(level.high, unit, True)} "
        f"(Hodges-Lehmann {format_value(level.shift, unit, True)})"
    )
    detail = (
        f"mean ratio {_ratio(float(c.values.mean()), float(b.values.mean()))}, CLES {level.cles:.2f}, "
        f"{plural(excursions.steps, 'step')} beyond {format_value(excursions.threshold, unit)} ({p_text(min(1.0, TESTS * excursions.p_value))}), "
        f"trend {_rate(trend.candidate, unit)} vs {_rate(trend.baseline, unit)} "
        f"({trend.growth * 100:+.0f}% over the window, {p_text(min(1.0, TESTS * trend.p_value))})"
    )
    # The level decides on its own test's p-value: the excursions speak for themselves below, with a reason
    # of their own, and the verdict keeps the union's p-value.
    decided = verdict.decide(min(1.0, TESTS * level.p_value), alpha, interval, detail)
    if decided.classification is Classification.PASS and excursions.sign and TESTS * excursions.p_value < alpha:
        return _excursions(verdict, spec, excursions, c, p_value)  # the level holds, episodes do not
    return dataclasses.replace(decided, p_value=p_value)


def _excursions(verdict: VerdictBuilder, spec: MetricSpec, excursions: Excursions, c: Points, p_value: float) -> MetricVerdict:
    unit, beyond = spec.unit, "above" if excursions.sign > 0 else "below"
    worst = float(c.values.max() if excursions.sign > 0 else c.values.min())
    why = (
        f"{excursions.steps} of {c.values.size} steps {beyond} {format_value(excursions.threshold, unit)} (the baseline's "
        f"{'highest' if excursions.sign > 0 else 'lowest'} step and tolerance {tolerance_text(spec.tolerance, unit)}), "
        f"up to {format_value(worst, unit)}; credible ({p_text(p_value)}, precedence test of excursions); "
        f"episodes while the median holds"
    )
    b, c_level = verdict.baseline.value, verdict.candidate.value
    assert b is not None and c_level is not None  # _classify returned NODATA for an empty window
    label = Classification.HIGH if excursions.sign > 0 else Classification.LOW
    return verdict.make(label, why, relative_change(b, c_level), p_value)


def _leak(verdict: VerdictBuilder, spec: MetricSpec, trend: Trend, p_value: float, ci_alpha: float) -> MetricVerdict:
    unit = spec.unit
    label = Classification.HIGH if trend.harmful > 0 else Classification.LOW
    moving = "rising" if trend.candidate > trend.baseline else "falling"
    why = (
        f"{moving} {_rate(trend.candidate, unit)} vs {_rate(trend.baseline, unit)} in the baseline "
        f"(Theil-Sen {confidence_text(ci_alpha)} CI {_rate(trend.low, unit, sign=True)}..{_rate(trend.high, unit, sign=True)}), "
        f"{trend.growth * 100:+.0f}% over the window, credibly beyond tolerance {_trend_tolerance(spec)} "
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


def _trend_tolerance(spec: MetricSpec) -> str:
    if spec.trend_tolerance is not None:
        return f"{spec.trend_tolerance * 100:+g}%/h beyond the baseline's trend"
    return f"+{spec.tolerance.relative * 100:g}% over the window"


def _ratio(candidate: float, baseline: float) -> str:
    return f"{candidate / baseline:.3g}" if baseline else "undefined (zero baseline)"


def _summary(window: Points, invalid: int = 0) -> Summary:
    """The window's level: the median of its steps (one spike moves a mean, not a median)."""
    dropped = f"; {plural(invalid, 'step')} outside the valid range left out" if invalid else ""
    if not window.values.size:
        return Summary(None, 0.0, f"no finite values{dropped}", invalid)
    return Summary(median(window.values), float(window.values.size), f"median of {window.values.size} steps{dropped}", invalid)


def _rate(per_second: float, unit: str, sign: bool = False) -> str:
    """A slope as the unit per minute: "38 MiB/min"."""
    return f"{format_value(per_second * 60, unit, sign)}/min"
