"""Kayenta mode: the judge of Netflix/Spinnaker's automated canary analysis, reproduced for comparison.

Per metric Kayenta (spinnaker/kayenta, `NetflixACAJudge`, `MannWhitneyClassifier`, `WeightedSumScorer`)
compares two arrays of per-step values, candidate and baseline. Its own test suites (ClassifierSuite,
MannWhitneySuite, StatisticSuite, DetectorSuite, TransformSuite, ScorerSuite) are ported, with their
literal data and tolerances, in tests/test_kayenta_suites.py.

1. NaN strategy: "remove" (default) drops NaNs, "replace" sets them to 0 (we treat +/-inf like NaN).
2. Optional outlier removal (off by default, as Kayenta's "keep"): Tukey fences [Q1 - 3 IQR, Q3 + 3 IQR]
   widened to at least the 1st and 99th percentiles ("reduced sensitivity"). Percentiles are R-7 (Hyndman
   & Fan type 7: position (n - 1) p / 100 in the sorted values, interpolated linearly; numpy's default
   "linear"), as Kayenta's DescriptiveStatistics.percentile. The 99th percentile then lies below a lone
   maximum, so a spike beyond the fences is removed even from a short window.
3. A two-sided Wilcoxon rank-sum (Mann-Whitney) test with a confidence interval for the location shift
   candidate - baseline, R's asymptotic `wilcox.test(candidate, baseline, conf.int=TRUE, correct=TRUE,
   conf.level=0.98)` as Kayenta's MannWhitney computes it: for a shift d the rank sum W of candidate - d gives
       z(d) = (W - nx(nx+1)/2 - nx ny/2 - sign(.)/2) / sqrt(nx ny/12 ((n+1) - sum(t^3 - t)/(n(n-1)))),
   (continuity and tie corrected, t the sizes of tied groups). The CI ends are the roots of
   z(d) = +/-qnorm(1 - alpha/2) over [min(c) - max(b), max(c) - min(b)] (an end of that range when z does
   not cross there), and the estimate the root of z(d) = 0 (Kayenta keeps the continuity correction
   there, where R drops it). Roots are found with Brent's zeroin at R's `uniroot` tolerance, 1e-4 (Brent,
   "Algorithms for Minimization without Derivatives", 1973, ch. 4): z is a step function, so an end lands
   within 1e-4 of the pairwise difference where z jumps, not on it. Two constant samples: every value is
   their difference (Kayenta adds Gaussian noise of 1e-5 of the values instead, with that limit).
4. Effect size: the mean ratio mean(candidate) / mean(baseline), NaN when either mean is 0 (Kayenta's
   EffectSizes.meanRatio), or the common-language effect size. HIGH when the direction allows an increase,
   the CI's lower end is above tolerance x |estimate| (tolerance 0.25) and the effect size reaches
   allowedIncrease; LOW mirrors it; otherwise PASS. An effect size that cannot be computed (NaN) skips
   the effect-size check, as Kayenta does: a series that drops to all zeros is LOW. Guard clauses first,
   in Kayenta's order: no data, identical data, a single value throughout, then the comparison.
5. Critical metrics (Kayenta's criticalThresholds): a HIGH (LOW) of a critical metric is a critical
   failure only when its effect size reaches criticalIncrease (is at most criticalDecrease), or is NaN;
   both default to the measure's no-change value (1.0 for the mean ratio, 0.5 for CLES), as the allowed
   changes do, so by default every failure of a critical metric is critical. NODATA of a critical metric
   is critical too. A failure short of its critical threshold is an ordinary failure (the verdict's
   `critical` is cleared and the reason says why); `critical_failure` says which verdicts fail the run.
6. Score: a group scores 100 x passes / (passes + highs + lows + required-but-missing); NODATA and errors
   are left out, and a group with nothing judged reports 0 but counts 100 in the weighted sum over groups
   (Kayenta's ScorerSuite); the sum is rounded half-up to 2 decimals. Any critical failure, or NODATA on
   half the metrics or more, scores 0. Pass 95 / marginal 75 map to PROMOTE / HOLD, below to ROLLBACK.

Kayenta's blind spots are reproduced on purpose (that is what this mode is for): zero-inflated error
counts pass, the CI must clear a quarter of its own estimate, every step is an independent sample.
Where we differ, on purpose: no fetch error fails the analysis (it is an ERROR verdict left out of the
score, and nothing judged is INCONCLUSIVE, never 100); the p-value shown is R's (continuity and tie
corrected), where Kayenta reports commons-math's uncorrected one (neither decides anything).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from releasehealth.format import format_absolute, format_value
from releasehealth.model import Action, Classification, Direction, MetricKind, MetricSpec, Series, Thresholds
from releasehealth.scoring.distributions import NORMAL
from releasehealth.scoring.latency import bucket_matrix, linear_quantiles
from releasehealth.scoring.logs import compare_samples
from releasehealth.scoring.ranks import average_ranks, tie_term
from releasehealth.scoring.series import on_steps, sum_by_time, valid_steps
from releasehealth.scoring.verdict import relative_change
from releasehealth.verdicts import GroupScore, MetricInput, MetricVerdict, Recommendation, ReleaseScore, Summary

CONFIDENCE = 0.98
TOLERANCE = 0.25
OUTLIER_FACTOR = 3.0
ROOT_TOLERANCE = 1e-4  # R's wilcox.test calls uniroot(tol = 1e-4); Kayenta's solver stops there too
ROOT_ITERATIONS = 1000  # uniroot's maxiter
EPSILON = sys.float_info.epsilon
NODATA_SHARE = 0.5  # NODATA on this share of the metrics or more scores 0
EFFECT_DEFAULTS = {"meanRatio": 1.0, "cles": 0.5}  # allowed and critical changes when not configured
EFFECT_NAMES = {"meanRatio": "mean ratio", "cles": "CLES"}
NAN_STRATEGIES = ("remove", "replace")
DEFAULT_THRESHOLDS = Thresholds(pass_score=95.0, marginal_score=75.0)  # Kayenta's documented starting point
FAILING = (Classification.HIGH, Classification.LOW)
JUDGED = (Classification.PASS, Classification.HIGH, Classification.LOW)
UNJUDGEABLE = "not judged in Kayenta mode"  # test name of metrics Kayenta has no series for: never scored


@dataclass(frozen=True)
class MannWhitneyResult:
    """Two-sided rank-sum test of candidate vs baseline and the CI of the shift candidate - baseline."""

    p_value: float
    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class KayentaStatistics:
    """The summary Kayenta reports with every metric (DescriptiveStatistics.summary)."""

    min: float
    max: float
    mean: float
    std: float  # the sample standard deviation (n - 1)
    count: int


def method_name(confidence: float = CONFIDENCE, tolerance: float = TOLERANCE) -> str:
    """The name of the test as shown with every verdict."""
    return f"Kayenta Mann-Whitney ({confidence * 100:g}% CI, tolerance {tolerance:g})"


# ---- preprocessing and descriptive statistics ----------------------------------------------------


def handle_nans(values: np.ndarray | Sequence[float], strategy: str = "remove") -> np.ndarray:
    """Return the values with NaN and +/-inf dropped ("remove") or set to 0 ("replace").

    Raises ValueError on another strategy. Kayenta only handles NaN; an infinite step value (a ratio
    over a zero denominator) is just as meaningless, so it is handled the same way.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(values)
    if strategy == "remove":
        return values[finite]
    if strategy == "replace":
        return np.where(finite, values, 0.0)
    raise ValueError(f"unknown NaN strategy {strategy!r}: expected one of {NAN_STRATEGIES}")


def percentile(values: np.ndarray | Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by R-7, as Kayenta's DescriptiveStatistics.percentile: position
    (n - 1) p / 100 in the sorted values, interpolated linearly (numpy's default). NaN for no values."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, p)) if values.size else math.nan


def describe(values: np.ndarray | Sequence[float]) -> KayentaStatistics:
    """min, max, mean, sample standard deviation and count, all 0 for no values (as Kayenta's summary)."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return KayentaStatistics(0.0, 0.0, 0.0, 0.0, 0)
    std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return KayentaStatistics(float(values.min()), float(values.max()), float(values.mean()), std, int(values.size))


def outlier_mask(values: np.ndarray, factor: float = OUTLIER_FACTOR, reduce_sensitivity: bool = True) -> np.ndarray:
    """True where a value lies outside Tukey's fences [Q1 - factor IQR, Q3 + factor IQR] (R-7 quartiles).

    With `reduce_sensitivity` (Kayenta's judge) the fences widen to at least the 1st and 99th
    percentiles, so a window with a tight core keeps its tail unless a value lies beyond both.
    """
    if values.size == 0:
        return np.zeros(0, dtype=bool)
    q1, q3 = percentile(values, 25), percentile(values, 75)
    low, high = q1 - factor * (q3 - q1), q3 + factor * (q3 - q1)
    if reduce_sensitivity:
        low, high = min(low, percentile(values, 1)), max(high, percentile(values, 99))
    return (values < low) | (values > high)


def preprocess(
    values: np.ndarray | Sequence[float], nan_strategy: str = "remove", outliers: bool = False,
    outlier_factor: float = OUTLIER_FACTOR,
) -> np.ndarray:
    """Kayenta's transform: the NaN strategy, then (optionally) outlier removal."""
    clean = handle_nans(values, nan_strategy)
    return clean[~outlier_mask(clean, outlier_factor)] if outliers else clean


# ---- the rank-sum test ----------------------------------------------------------------------------


def mann_whitney(candidate: np.ndarray, baseline: np.ndarray, confidence: float = CONFIDENCE) -> MannWhitneyResult:
    """Return the two-sided Wilcoxon rank-sum test of candidate vs baseline with the `confidence` CI of the
    shift candidate - baseline and its estimate, as Kayenta's MannWhitney (R's asymptotic wilcox.test).

    p-value: 2 (1 - Phi(|z(0)|)), z as in the module docstring. CI ends: roots of z(d) = +/-qnorm(1 -
    alpha/2), estimate: root of z(d) = 0, each by `zeroin` to R's tolerance of 1e-4. Two constant
    samples: every value is their difference (the limit of Kayenta's added noise).

    Raises ValueError when a sample is empty or not finite, or all observations are tied (as R).
    """
    x, y = _sample(candidate, "candidate"), _sample(baseline, "baseline")
    if np.unique(np.concatenate([x, y])).size == 1:
        raise ValueError("cannot compare samples whose observations are all tied")
    p_value = min(1.0, 2 * NORMAL.sf(abs(_z(x, y, 0.0))))
    low, high = float(x.min() - y.max()), float(x.max() - y.min())
    if low == high:
        return MannWhitneyResult(p_value, low, low, low)
    quantile = NORMAL.ppf(1 - (1 - confidence) / 2)
    lower, upper = _shift_root(x, y, quantile, low, high), _shift_root(x, y, -quantile, low, high)
    estimate = zeroin(lambda d: _z(x, y, d), low, high, _z(x, y, low), _z(x, y, high))
    return MannWhitneyResult(p_value, estimate, lower, upper)


def _sample(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    sample = np.asarray(values, dtype=np.float64).ravel()
    if not sample.size or not np.isfinite(sample).all():
        raise ValueError(f"the {name} sample must be non-empty and finite")
    return sample


def _z(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """Continuity- and tie-corrected normal score of the rank sum of x - shift against y (R's `wdiff`)."""
    ranks, sizes = average_ranks(np.concatenate([x - shift, y]))
    nx, ny, n = x.size, y.size, x.size + y.size
    dz = ranks[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
    sigma = math.sqrt(nx * ny / 12 * ((n + 1) - tie_term(sizes) / (n * (n - 1))))
    # sigma is 0 only when every observation is tied at this shift: no evidence of a shift either way.
    return float((dz - np.sign(dz) * 0.5) / sigma) if sigma > 0 else 0.0


def _shift_root(x: np.ndarray, y: np.ndarray, quantile: float, low: float, high: float) -> float:
    """The shift d in [low, high] where z(d) crosses `quantile`, as R's `root` in wilcox.test: an end of the
    range when z does not cross there (z decreases with d)."""
    f_low, f_high = _z(x, y, low) - quantile, _z(x, y, high) - quantile
    if f_low <= 0:
        return low
    if f_high >= 0:
        return high
    return zeroin(lambda d: _z(x, y, d) - quantile, low, high, f_low, f_high)


def zeroin(
    f: Callable[[float], float], a: float, b: float, fa: float, fb: float,
    tol: float = ROOT_TOLERANCE, iterations: int = ROOT_ITERATIONS,
) -> float:
    """A root of f in [a, b] by Brent's method (zeroin: bisection safeguarding secant and inverse quadratic
    interpolation; Brent 1973, ch. 4), given f(a) = fa and f(b) = fb of opposite signs, as R's uniroot:
    it stops once the bracket is within 2 eps |b| + tol / 2 of the best point b, or f(b) = 0, and returns
    the last b after `iterations` steps otherwise (R warns there).

    On a step function (the rank-sum z) where a root lands depends on the path taken, not only on the
    tolerance: this takes R's steps, so its results are R's and Kayenta's to rounding (the R golden values
    of tests/test_kayenta.py agree to 1e-8), not merely within tol of them.
    """
    if fa == 0:
        return a
    if fb == 0:
        return b
    c, fc = a, fa  # c: the point of the bracket [b, c] opposite b
    for _ in range(iterations + 1):
        previous = b - a
        if abs(fc) < abs(fb):  # make b the best point so far
            a, b, c, fa, fb, fc = b, c, b, fb, fc, fb
        tolerance = 2 * EPSILON * abs(b) + tol / 2
        step = (c - b) / 2  # bisection
        if abs(step) <= tolerance or fb == 0:
            return b
        if abs(previous) >= tolerance and abs(fa) > abs(fb):
            step = _interpolated_step(a, b, c, fa, fb, fc, step, previous, tolerance)
        if abs(step) < tolerance:  # move by at least the tolerance, towards c
            step = tolerance if step > 0 else -tolerance
        a, fa = b, fb
        b += step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def _interpolated_step(
    a: float, b: float, c: float, fa: float, fb: float, fc: float, bisection: float, previous: float, tolerance: float,
) -> float:
    """Brent's interpolation step from b (secant with two distinct points, inverse quadratic with three),
    kept only when it falls well inside [b, c] and shrinks faster than the step before; else bisection."""
    cb = c - b
    if a == c:
        t1 = fb / fa
        p, q = cb * t1, 1.0 - t1
    else:
        q, t1, t2 = fa / fc, fb / fc, fb / fa
        p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
        q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
    if p > 0:
        q = -q
    else:
        p = -p
    if p < 0.75 * cb * q - abs(tolerance * q) / 2 and p < abs(previous * q / 2):
        return p / q
    return bisection


# ---- effect sizes ---------------------------------------------------------------------------------


def mean_ratio(baseline: np.ndarray, candidate: np.ndarray) -> float:
    """mean(candidate) / mean(baseline), Kayenta's deviation; NaN when either mean is 0, where a ratio says
    nothing (EffectSizes.meanRatio), and the effect-size check is then skipped."""
    b, c = float(np.mean(baseline)), float(np.mean(candidate))
    return math.nan if b == 0 or c == 0 else c / b


def cles(baseline: np.ndarray, candidate: np.ndarray) -> float:
    """Common-language effect size P(candidate > baseline) + P(tie)/2 over all pairs = U / (n m)
    (Vargha & Delaney, J. Educ. Behav. Stat. 25(2), 2000), from the ranks as Kayenta's EffectSizes.cles."""
    ranks, _ = average_ranks(np.concatenate([candidate, baseline]))
    m, n = candidate.size, baseline.size
    return float((2 * ranks[:m].sum() - m * (m + 1)) / (2 * n * m))


def effect_size(measure: str, baseline: np.ndarray, candidate: np.ndarray) -> float:
    """The effect size named `measure` ("meanRatio" or "cles"); raises ValueError on another name."""
    if measure == "meanRatio":
        return mean_ratio(baseline, candidate)
    if measure == "cles":
        return cles(baseline, candidate)
    raise ValueError(f"unknown effect size {measure!r}: expected one of {tuple(EFFECT_DEFAULTS)}")


# ---- classification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    """One metric's Kayenta settings, as classify_arrays received them."""

    direction: Direction
    critical: bool
    tolerance: float
    confidence: float
    effect: str
    allowed_increase: float
    allowed_decrease: float
    critical_increase: float
    critical_decrease: float
    nan_strategy: str
    unit: str
    group: str


def classify_arrays(
    name: str,
    baseline: np.ndarray | Sequence[float],
    candidate: np.ndarray | Sequence[float],
    *,
    direction: Direction,
    critical: bool = False,
    tolerance: float = TOLERANCE,
    confidence: float = CONFIDENCE,
    effect: str = "meanRatio",
    allowed_increase: float | None = None,
    allowed_decrease: float | None = None,
    critical_increase: float | None = None,
    critical_decrease: float | None = None,
    nan_strategy: str = "remove",
    outliers: bool = False,
    outlier_factor: float = OUTLIER_FACTOR,
    unit: str = "",
    group: str = "default",
) -> MetricVerdict:
    """Return Kayenta's verdict on one metric from its per-step values, with a reason carrying the numbers.

    `allowed_*` and `critical_*` (Kayenta's effectSizeThresholds and criticalThresholds) default to the
    effect size's no-change value (1.0 for meanRatio, 0.5 for cles). Never raises on data (empty,
    constant, NaN or infinite values); raises ValueError on an unknown NaN strategy or effect size.
    """
    default = EFFECT_DEFAULTS.get(effect)
    if default is None:
        raise ValueError(f"unknown effect size {effect!r}: expected one of {tuple(EFFECT_DEFAULTS)}")

    def given(value: float | None) -> float:
        return default if value is None else value

    rules = _Rules(
        direction, critical, tolerance, confidence, effect, given(allowed_increase), given(allowed_decrease),
        given(critical_increase), given(critical_decrease), nan_strategy, unit, group,
    )
    b = preprocess(baseline, nan_strategy, outliers, outlier_factor)
    c = preprocess(candidate, nan_strategy, outliers, outlier_factor)
    # Values near the float limit overflow (a shift of 1e308 - -1e308): the interval then has infinite
    # ends, which no finite band excludes, and the reason shows them. That is the outcome, not a warning.
    with np.errstate(over="ignore", invalid="ignore"):
        return _classify(name, b, c, rules)


def critical_failure(verdict: MetricVerdict) -> bool:
    """Whether Kayenta fails the whole canary on this verdict: a critical metric's HIGH or LOW (that reached
    its critical threshold: classify_arrays clears `critical` otherwise) or NODATA."""
    return verdict.critical and verdict.classification in (*FAILING, Classification.NODATA)


def _classify(name: str, b: np.ndarray, c: np.ndarray, rules: _Rules) -> MetricVerdict:
    """Kayenta's guard clauses, then the comparison, then the critical check."""
    if not b.size or not c.size:
        return _missing(name, b, c, rules)
    if np.array_equal(np.sort(b), np.sort(c)):
        return _verdict(name, Classification.PASS, "the candidate and baseline data are identical", b, c, rules)
    if np.unique(np.concatenate([b, c])).size == 1:
        return _verdict(name, Classification.PASS, f"every value is {_value(float(b[0]), rules.unit)}", b, c, rules)
    result = mann_whitney(c, b, rules.confidence)
    effect, size = _effect(b, c, rules)
    label, why = _compare(result, effect, size, rules)
    critical, note = _critical(label, effect, size, rules)
    return _verdict(name, label, why + note, b, c, dataclasses.replace(rules, critical=critical), result.p_value)


def _missing(name: str, b: np.ndarray, c: np.ndarray, rules: _Rules) -> MetricVerdict:
    side = "either window" if not (b.size or c.size) else ("the baseline" if not b.size else "the candidate")
    if rules.nan_strategy == "replace":
        # Kayenta passes it: with NaNs replaced by zeros, an empty array means no events at all.
        return _verdict(name, Classification.PASS, f"no data for {side}; Kayenta passes it when NaNs are replaced", b, c, rules)
    return _verdict(name, Classification.NODATA, f"no data for {side} once NaNs are removed", b, c, rules)


def _compare(result: MannWhitneyResult, effect: float, size: str, rules: _Rules) -> tuple[Classification, str]:
    """HIGH/LOW when the CI lies beyond the band +/-tolerance x |estimate|, the direction allows it and the
    effect size (`size` describes it) reaches the allowed change; PASS otherwise, saying what held it back."""
    band = rules.tolerance * abs(result.estimate)
    unit = rules.unit
    ci = (
        f"{rules.confidence * 100:g}% CI of the shift {_signed(result.lower, unit)}..{_signed(result.upper, unit)} "
        f"around {_signed(result.estimate, unit)}"
    )
    band_text = f"the band ±{format_absolute(band, unit)} ({rules.tolerance:g} × |estimate|)"
    if result.lower > band:
        return _beyond(Classification.HIGH, f"{ci} above {band_text}", effect, size, rules)
    if result.upper < -band:
        return _beyond(Classification.LOW, f"{ci} below {band_text}", effect, size, rules)
    return Classification.PASS, f"{ci} overlaps {band_text}, {size}"


HARMFUL = {Classification.HIGH: Direction.INCREASE, Classification.LOW: Direction.DECREASE}
ARTICLE = {Direction.INCREASE: "an increase", Direction.DECREASE: "a decrease"}


def _beyond(label: Classification, where: str, effect: float, size: str, rules: _Rules) -> tuple[Classification, str]:
    """The CI lies beyond the band: HIGH/LOW if the direction allows it and the effect size reaches the
    allowed change; an effect size that cannot be computed (NaN) skips that check, as in Kayenta."""
    harmful = HARMFUL[label]
    if rules.direction not in (harmful, Direction.EITHER):
        return Classification.PASS, f"{where}, but only {ARTICLE[rules.direction]} fails this metric"
    if math.isnan(effect):
        return label, f"{where}, {size}: the effect-size check is skipped"
    high = label is Classification.HIGH
    allowed = rules.allowed_increase if high else rules.allowed_decrease
    if _reaches(effect, allowed, high):
        return label, f"{where}, {size} {'≥' if high else '≤'} {allowed:g}"
    return Classification.PASS, f"{where}, but {size} {'<' if high else '>'} the allowed {harmful.value} {allowed:g}"


def _critical(label: Classification, effect: float, size: str, rules: _Rules) -> tuple[bool, str]:
    """(whether the verdict stays critical, what the reason adds): a critical metric's HIGH/LOW is a critical
    failure only when its effect size reaches the critical change (or is NaN), as Kayenta's criticalThresholds."""
    if not rules.critical or label not in FAILING:
        return rules.critical, ""
    high = label is Classification.HIGH
    threshold = rules.critical_increase if high else rules.critical_decrease
    if math.isnan(effect) or _reaches(effect, threshold, high):
        return True, ""
    change = "increase" if high else "decrease"
    return False, f"; a critical metric, but {size} {'<' if high else '>'} the critical {change} {threshold:g}: not a critical failure"


def _reaches(effect: float, threshold: float, high: bool) -> bool:
    return effect >= threshold if high else effect <= threshold


def _effect(b: np.ndarray, c: np.ndarray, rules: _Rules) -> tuple[float, str]:
    """The effect size and its text; says which zero mean left the mean ratio undefined."""
    value = effect_size(rules.effect, b, c)
    if not math.isnan(value):
        return value, f"{EFFECT_NAMES[rules.effect]} {value:.3g}"
    zero = [side for side, values in (("baseline", b), ("candidate", c)) if float(np.mean(values)) == 0]
    why = f" (a zero {zero[0]} mean)" if zero else ""  # else the means overflowed
    return value, f"{EFFECT_NAMES[rules.effect]} undefined{why}"


def _verdict(
    name: str, label: Classification, why: str, b: np.ndarray, c: np.ndarray, rules: _Rules,
    p_value: float | None = None,
) -> MetricVerdict:
    """The MetricVerdict; a critical metric's failure (or, as in Kayenta, missing data) is marked critical."""
    b_sum, c_sum = _summary(b, rules.unit), _summary(c, rules.unit)
    values = f"candidate median {_value(c_sum.value, rules.unit)} vs {_value(b_sum.value, rules.unit)}, " if b.size and c.size else ""
    escalated = rules.critical and label in (*FAILING, Classification.NODATA)
    # _summary has a value exactly when its window has steps: the same test as `b.size and c.size`.
    change = relative_change(b_sum.value, c_sum.value) if b_sum.value is not None and c_sum.value is not None else None
    return MetricVerdict(
        metric=name, classification=label,
        reason=f"{name} {label.value} (Kayenta): {values}{why}" + ("; critical" if escalated else ""),
        baseline=b_sum, candidate=c_sum, unit=rules.unit, change=change, p_value=p_value,
        test=method_name(rules.confidence, rules.tolerance), critical=rules.critical, group=rules.group,
    )


def _summary(values: np.ndarray, unit: str) -> Summary:
    """The window's median (what the verdict shows) and, in the detail, the statistics Kayenta reports."""
    if not values.size:
        return Summary(None, 0.0, "no steps with data")
    s = describe(values)
    detail = (
        f"median of {s.count} steps; mean {_value(s.mean, unit)}, std {_value(s.std, unit)}, "
        f"range {_value(s.min, unit)}..{_value(s.max, unit)}"
    )
    return Summary(float(np.median(values)), float(s.count), detail)


def _value(value: float | None, unit: str) -> str:
    return format_value(value, unit) if unit else ("no data" if value is None else f"{value:.4g}")


def _signed(value: float, unit: str) -> str:
    return ("-" if value < 0 else "+") + format_absolute(abs(value), unit)


# ---- scoring --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    score: float  # Kayenta reports 0 for a group with nothing judged
    judged: int  # passes + highs + lows + required-but-missing


def score_kayenta(
    verdicts: Sequence[MetricVerdict], group_weights: Mapping[str, float] | None = None,
    must_have_data: Collection[str] = (),
) -> ReleaseScore:
    """Return Kayenta's summary score: the weighted sum of group scores (see kayenta_weights), rounded
    half-up to 2 decimals; 0 on a critical failure or when half the metrics or more are NODATA; None when
    no metric was judged (Kayenta would score that 100: we refuse to).

    A group scores 100 x passes / (passes + highs + lows + NODATA of the metrics in `must_have_data`,
    Kayenta's NodataFailMetric); a group with nothing judged reports 0 and counts 100 in the sum, as in
    Kayenta's ScorerSuite. Muted metrics, errors and metrics Kayenta cannot judge (log signatures) are
    left out.
    """
    counted = _counted(verdicts)
    members: dict[str, list[MetricVerdict]] = {}
    for verdict in counted:
        members.setdefault(verdict.group, []).append(verdict)
    groups = {name: _group_score(group, must_have_data) for name, group in members.items()}
    weights = kayenta_weights(list(groups), group_weights or {})
    group_scores = tuple(GroupScore(name, group.score, weights[name]) for name, group in groups.items())
    if _zero_rule(counted, must_have_data):
        return ReleaseScore(0.0, group_scores, tuple(verdicts))
    if not any(group.judged for group in groups.values()):
        return ReleaseScore(None, group_scores, tuple(verdicts))
    total = sum(weights[name] * (group.score if group.judged else 100.0) for name, group in groups.items())
    return ReleaseScore(_round_half_up(total), group_scores, tuple(verdicts))


def kayenta_weights(groups: Sequence[str], configured: Mapping[str, float]) -> dict[str, float]:
    """Group weights summing to 1. Kayenta's weights are percentages: a named group takes its own, the
    others share what is left of 100 (after every configured weight) equally. We normalise the result,
    where Kayenta does not (its score then tops out at the weights' sum when they miss 100)."""
    rest = [g for g in groups if g not in configured]
    share = max(0.0, 100.0 - sum(configured.values())) / len(rest) if rest else 0.0
    raw = {g: float(configured.get(g, share)) for g in groups}
    total = sum(raw.values())
    return {g: w / total for g, w in raw.items()} if total > 0 else raw


def _round_half_up(value: float, places: int = 2) -> float:
    """`value` rounded half away from zero on its shortest decimal form, as Kayenta's MathUtils.round (the
    binary value 33.335 is below the half, but rounds to 33.34 there, and must here)."""
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _counted(verdicts: Sequence[MetricVerdict]) -> list[MetricVerdict]:
    return [v for v in verdicts if not v.muted and v.test != UNJUDGEABLE]


def _group_score(members: Sequence[MetricVerdict], must_have_data: Collection[str]) -> _Group:
    passed = sum(v.classification is Classification.PASS for v in members)
    judged = sum(v.classification in JUDGED or _required_missing(v, must_have_data) for v in members)
    return _Group(100.0 * passed / judged if judged else 0.0, judged)


def _required_missing(verdict: MetricVerdict, must_have_data: Collection[str]) -> bool:
    return verdict.classification is Classification.NODATA and verdict.metric in must_have_data


def _critical_failures(counted: Sequence[MetricVerdict]) -> list[MetricVerdict]:
    # Kayenta fails the canary on any critical result but a pass; a fetch error is left out here.
    return [v for v in counted if critical_failure(v)]


def _nodata(counted: Sequence[MetricVerdict], must_have_data: Collection[str]) -> list[MetricVerdict]:
    return [v for v in counted if v.classification is Classification.NODATA and v.metric not in must_have_data]


def _zero_rule(counted: Sequence[MetricVerdict], must_have_data: Collection[str] = ()) -> str:
    """Why Kayenta scores the run 0, or "" when it does not."""
    critical = _critical_failures(counted)
    if critical:
        return f"critical metric {critical[0].metric} failed ({critical[0].classification.value})"
    nodata = _nodata(counted, must_have_data)
    if counted and len(nodata) >= NODATA_SHARE * len(counted):
        return (
            f"{len(nodata)} of {len(counted)} metrics ({len(nodata) / len(counted):.0%}) returned NODATA, "
            f"and {NODATA_SHARE:.0%} or more fails the canary"
        )
    return ""


# ---- recommendation -------------------------------------------------------------------------------


def recommend_kayenta(
    release_score: ReleaseScore, pass_score: float = 95.0, marginal_score: float = 75.0,
    baseline: str = "", candidate: str = "", must_have_data: Collection[str] = (),
) -> Recommendation:
    """Kayenta's pass / marginal / fail of the score mapped to PROMOTE / HOLD / ROLLBACK (thresholds
    inclusive); INCONCLUSIVE when no metric could be judged. The reason names the rule that decided."""
    counted = _counted(release_score.verdicts)
    value = release_score.score

    def decide(action: Action, reason: str) -> Recommendation:
        return Recommendation(action, reason, baseline, candidate)

    if value is None:
        unjudged = "; ".join(v.reason for v in counted) or "no metrics"
        return decide(Action.INCONCLUSIVE, f"Kayenta mode judged no metric: {unjudged}")
    action = Action.PROMOTE if value >= pass_score else Action.HOLD if value >= marginal_score else Action.ROLLBACK
    rule = _zero_rule(counted, must_have_data)
    if rule:
        return decide(action, f"Kayenta score 0: {rule}; " + "; ".join(v.reason for v in _explaining(counted)))
    failing = [v for v in counted if v.classification in FAILING or _required_missing(v, must_have_data)]
    band = {
        Action.PROMOTE: f"≥ pass {pass_score:g}",
        Action.HOLD: f"marginal (≥ {marginal_score:g}, < pass {pass_score:g})",
        Action.ROLLBACK: f"< marginal {marginal_score:g}",
    }[action]
    detail = "; ".join(v.reason for v in failing) or f"all {sum(v.classification in JUDGED for v in counted)} judged metrics pass"
    return decide(action, f"Kayenta score {value:g} {band}: {detail}")


def _explaining(counted: Sequence[MetricVerdict]) -> list[MetricVerdict]:
    return _critical_failures(counted) or [v for v in counted if v.classification is Classification.NODATA]


# ---- from metric inputs ---------------------------------------------------------------------------


def kayenta_judge(
    inputs: Sequence[MetricInput], baseline: str, candidate: str, *,
    group_weights: Mapping[str, float] | None = None, thresholds: Thresholds = DEFAULT_THRESHOLDS,
    signature_alpha: Mapping[str, float] | None = None,
) -> tuple[ReleaseScore, Recommendation]:
    """Return Kayenta's score and recommendation for a release from its metrics' inputs; log signatures,
    which Kayenta does not score, are compared at `signature_alpha` (per metric) to be shown."""
    verdicts = [classify_input(item, (signature_alpha or {}).get(item.spec.name, 0.0)) for item in inputs]
    release = score_kayenta(verdicts, group_weights)
    return release, recommend_kayenta(release, thresholds.pass_score, thresholds.marginal_score, baseline, candidate)


def classify_input(item: MetricInput, signature_alpha: float = 0.0) -> MetricVerdict:
    """Kayenta's verdict on one MetricInput, judged on the per-step series Kayenta would have charted.

    A fetch error becomes an ERROR verdict (Kayenta would fail the whole analysis; we leave the metric out
    of the score); log signatures are not a series, so they are NODATA and never scored.
    """
    spec = item.spec
    if item.error:
        return _unjudged(item, Classification.ERROR, f"{item.error}; left out of the Kayenta score", method_name())
    if item.absent:
        return _unjudged(item, Classification.NODATA, item.absent, method_name())
    if spec.kind is MetricKind.LOG_SIGNATURES:
        why = "log signatures are not a time series Kayenta can compare; left out of the Kayenta score"
        signatures = compare_samples(spec, item.samples, signature_alpha)
        return dataclasses.replace(_unjudged(item, Classification.NODATA, why, UNJUDGEABLE), signatures=signatures)
    try:
        b_steps, b_values = per_step(spec, item.baseline)
        c_steps, c_values = per_step(spec, item.candidate)
    except ValueError as error:  # a kind with no per-step series: shown as not judged, never an exception
        return _unjudged(item, Classification.NODATA, f"{error}; left out of the Kayenta score", UNJUDGEABLE)
    verdict = classify_arrays(
        spec.name, b_values, c_values, direction=spec.direction, critical=spec.critical, unit=spec.unit, group=spec.group,
    )
    return dataclasses.replace(
        verdict, queries=item.queries, muted=spec.muted,
        baseline_series=Series({}, b_steps, b_values), candidate_series=Series({}, c_steps, c_values),
    )


def _unjudged(item: MetricInput, label: Classification, why: str, test: str) -> MetricVerdict:
    spec, empty = item.spec, Summary(None, 0.0)
    return MetricVerdict(
        metric=spec.name, classification=label, reason=f"{spec.name} {label.value} (Kayenta): {why}", baseline=empty,
        candidate=empty, unit=spec.unit, test=test, critical=spec.critical, group=spec.group, muted=spec.muted,
        queries=item.queries,
    )


def per_step(spec: MetricSpec, side: Mapping[str, list[Series]]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values): one value per step as Kayenta would see the metric. A "value" role (a gauge's) is
    taken as is; ratios are numerator / denominator per step (NaN over a zero denominator); histogram
    quantiles are Prometheus' histogram_quantile of each step's buckets, and so is any other histogram
    ("buckets"): our tail share has no Kayenta counterpart, Kayenta charts the quantile per step. Raises
    ValueError for a metric with none of these (log signatures)."""
    if "value" in side or spec.kind is MetricKind.GAUGE:
        steps, values = plain_steps(side.get("value", []))
        outside = (spec.valid_min is not None and values < spec.valid_min) | (spec.valid_max is not None and values > spec.valid_max)
        return steps, np.where(outside, np.nan, values)  # garbage (a negative memory) is NaN: the NaN strategy decides
    if spec.kind in (MetricKind.RATIO, MetricKind.LOG_RATE):
        return ratio_steps(side)
    if "buckets" in side or spec.kind is MetricKind.HISTOGRAM_QUANTILE:
        return quantile_steps(side, spec.quantile or 0.95)
    raise ValueError(f"{spec.name}: Kayenta has no per-step series for a {spec.kind.value} metric")


def plain_steps(series: Sequence[Series]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, sum over the series per step); NaN where no series has a finite value, so that the NaN
    strategy, not a silent zero, decides what a missing step means."""
    if not series:
        return np.array([]), np.array([])
    steps = np.unique(np.concatenate([s.timestamps for s in series]))
    total, seen = np.zeros(steps.size), np.zeros(steps.size)
    for s in series:
        index, finite = np.searchsorted(steps, s.timestamps), np.isfinite(s.values)
        np.add.at(total, index[finite], s.values[finite])
        np.add.at(seen, index[finite], 1)
    return steps, np.where(seen > 0, total, np.nan)


def ratio_steps(side: Mapping[str, list[Series]]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, numerator / denominator) on the denominator's steps; a step without numerator counts 0. A
    step with a zero denominator, or a NaN, infinite or negative count, is NaN: the NaN strategy decides."""
    steps, denominator = sum_by_time(side.get("denominator", []))
    numerator = on_steps(side.get("numerator", []), steps)
    usable = valid_steps(numerator, denominator) & (denominator > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return steps, np.where(usable, numerator / denominator, np.nan)


def quantile_steps(side: Mapping[str, list[Series]], q: float) -> tuple[np.ndarray, np.ndarray]:
    """(steps, Prometheus' histogram_quantile(q) of each step's buckets); NaN for a step without requests."""
    steps, bounds, counts = bucket_matrix(side.get("buckets", []))
    return steps, linear_quantiles(q, bounds, counts) if counts.size else np.array([], dtype=np.float64)
