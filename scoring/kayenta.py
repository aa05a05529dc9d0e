"""Kayenta mode: the judge of Netflix/Spinnaker's automated canary analysis, reproduced for comparison.

Per metric Kayenta (spinnaker/kayenta, `NetflixACAJudge`, `MannWhitneyClassifier`, `WeightedSumScorer`)
compares two arrays of per-step values, candidate and baseline:

1. NaN strategy: "remove" (default) drops NaNs, "replace" sets them to 0 (we treat +/-inf like NaN).
2. Optional outlier removal (off by default): Tukey fences [Q1 - 3 IQR, Q3 + 3 IQR] widened to at least the
   1st and 99th percentiles ("reduced sensitivity"); percentiles as commons-math's default, p(n+1)/100.
3. A two-sided Wilcoxon rank-sum (Mann-Whitney) test with a confidence interval for the location shift
   candidate - baseline, as R's `wilcox.test(candidate, baseline, conf.int=TRUE, exact=FALSE,
   correct=TRUE, conf.level=0.98)`: for a shift d the rank sum W of candidate - d gives
       z(d) = (W - nx(nx+1)/2 - nx ny/2 - sign(.)/2) / sqrt(nx ny/12 ((n+1) - sum(t^3 - t)/(n(n-1)))),
   (continuity and tie corrected, t the sizes of tied groups), and the CI ends are the roots of
   z(d) = +/-qnorm(1 - alpha/2), found with Brent's method (R: uniroot). The estimate is the
   Hodges-Lehmann estimate, the median of all pairwise differences candidate_i - baseline_j (Hodges &
   Lehmann, Ann. Math. Statist. 34, 1963; R and Kayenta find it as the root of z(d) = 0).
4. HIGH when the direction allows an increase, the CI's lower end is above tolerance x |estimate|
   (tolerance 0.25) and the effect size (mean ratio candidate/baseline, or the common-language effect
   size) reaches allowedIncrease; LOW mirrors it; otherwise PASS. Guard clauses first, in Kayenta's
   order: no data, identical data, a single value throughout, then the comparison, then critical
   escalation.
5. Score: a group scores 100 x passes / (passes + highs + lows + required-but-missing); NODATA and errors
   are left out; a weighted sum over groups; any failing critical metric, or NODATA on half the metrics
   or more, scores 0. Pass 95 / marginal 75 map to PROMOTE / HOLD, below to ROLLBACK.

Kayenta's blind spots are reproduced on purpose (that is what this mode is for): zero-inflated error
counts pass, the CI must clear a quarter of its own estimate, every step is an independent sample.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from releasehealth.format import format_absolute, format_value
from releasehealth.model import Action, Classification, Direction, MetricKind, MetricSpec, Series, Thresholds
from releasehealth.scoring.latency import bucket_matrix, histogram_quantile
from releasehealth.scoring.logs import compare_samples
from releasehealth.scoring.series import on_steps, sum_by_time, valid_steps
from releasehealth.scoring.verdict import relative_change
from releasehealth.verdicts import GroupScore, MetricInput, MetricVerdict, Recommendation, ReleaseScore, Summary

CONFIDENCE = 0.98
TOLERANCE = 0.25
OUTLIER_FACTOR = 3.0
NODATA_SHARE = 0.5  # NODATA on this share of the metrics or more scores 0
EFFECT_DEFAULTS = {"meanRatio": 1.0, "cles": 0.5}  # allowedIncrease/allowedDecrease when not configured
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


def method_name(confidence: float = CONFIDENCE, tolerance: float = TOLERANCE) -> str:
    """The name of the test as shown with every verdict."""
    return f"Kayenta Mann-Whitney ({confidence * 100:g}% CI, tolerance {tolerance:g})"


# ---- preprocessing --------------------------------------------------------------------------------


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


def percentile(values: np.ndarray, p: float) -> float:
    """The p-th percentile as commons-math's default (legacy) estimator that Kayenta calls: position
    p(n+1)/100 in the sorted values, interpolated, clamped to the minimum and maximum (numpy "weibull")."""
    return float(np.percentile(values, p, method="weibull"))


def outlier_mask(values: np.ndarray, factor: float = OUTLIER_FACTOR, reduce_sensitivity: bool = True) -> np.ndarray:
    """True where a value lies outside Tukey's fences [Q1 - factor IQR, Q3 + factor IQR].

    With `reduce_sensitivity` (Kayenta's judge) the fences widen to at least the 1st and 99th
    percentiles. With commons-math's percentile those are the minimum and maximum for 99 values or
    fewer, so Kayenta's detector removes nothing from a window of under 100 steps.
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
    shift candidate - baseline, as R's wilcox.test(exact=FALSE, correct=TRUE, conf.int=TRUE).

    p-value: 2 (1 - Phi(|z(0)|)), z as in the module docstring. CI ends: roots of z(d) = +/-qnorm(1 -
    alpha/2) over [min(c) - max(b), max(c) - min(b)], an end of that range when z does not cross there
    (as R). z(d) is a step function that only jumps at pairwise differences, so each root found by
    Brent's method is snapped to the pairwise difference it converged on. Two constant samples: every
    estimate is their difference (Kayenta adds 1e-5 relative Gaussian noise instead, with that limit).

    Raises ValueError when a sample is empty or not finite, or all observations are tied (as R).
    """
    x, y = _sample(candidate, "candidate"), _sample(baseline, "baseline")
    if np.unique(np.concatenate([x, y])).size == 1:
        raise ValueError("cannot compare samples whose observations are all tied")
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    p_value = float(min(1.0, 2 * stats.norm.sf(abs(_z(x, y, 0.0)))))
    if diffs[0] == diffs[-1]:
        return MannWhitneyResult(p_value, float(diffs[0]), float(diffs[0]), float(diffs[0]))
    quantile = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    lower, upper = _shift_root(x, y, quantile, diffs), _shift_root(x, y, -quantile, diffs)
    return MannWhitneyResult(p_value, float(np.median(diffs)), lower, upper)


def _sample(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    sample = np.asarray(values, dtype=np.float64).ravel()
    if not sample.size or not np.isfinite(sample).all():
        raise ValueError(f"the {name} sample must be non-empty and finite")
    return sample


def _z(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """Continuity- and tie-corrected normal score of the rank sum of x - shift against y (R's `wdiff`)."""
    ranks = stats.rankdata(np.concatenate([x - shift, y]))
    nx, ny, n = x.size, y.size, x.size + y.size
    dz = ranks[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
    ties = np.unique(ranks, return_counts=True)[1].astype(np.float64)
    sigma = math.sqrt(nx * ny / 12 * ((n + 1) - (ties**3 - ties).sum() / (n * (n - 1))))
    # sigma is 0 only when every observation is tied at this shift: no evidence of a shift either way.
    return float((dz - np.sign(dz) * 0.5) / sigma) if sigma > 0 else 0.0


def _shift_root(x: np.ndarray, y: np.ndarray, quantile: float, diffs: np.ndarray) -> float:
    """The shift d where z(d) crosses `quantile`, as R's `root` in wilcox.test (z decreases with d)."""
    low, high = float(diffs[0]), float(diffs[-1])

    def excess(shift: float) -> float:
        return _z(x, y, shift) - quantile

    if excess(low) <= 0:
        return low
    if excess(high) >= 0:
        return high
    root = optimize.brentq(excess, low, high, xtol=(high - low) * 1e-12, maxiter=500)
    index = int(np.clip(np.searchsorted(diffs, root), 1, diffs.size - 1))
    below, above = float(diffs[index - 1]), float(diffs[index])
    return below if root - below <= above - root else above


# ---- effect sizes ---------------------------------------------------------------------------------


def mean_ratio(baseline: np.ndarray, candidate: np.ndarray) -> float:
    """mean(candidate) / mean(baseline), Kayenta's deviation: 1.0 when the baseline mean is 0 and NaN when
    the candidate's is (then neither HIGH nor LOW can pass the effect-size check)."""
    b, c = float(np.mean(baseline)), float(np.mean(candidate))
    if b == 0:
        return 1.0
    return math.nan if c == 0 else c / b


def cles(baseline: np.ndarray, candidate: np.ndarray) -> float:
    """Common-language effect size P(candidate > baseline) + P(tie)/2 over all pairs = U / (n m)
    (Vargha & Delaney, J. Educ. Behav. Stat. 25(2), 2000), from the ranks as Kayenta's EffectSizes.cles."""
    ranks = stats.rankdata(np.concatenate([candidate, baseline]))
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
    nan_strategy: str = "remove",
    outliers: bool = False,
    outlier_factor: float = OUTLIER_FACTOR,
    unit: str = "",
    group: str = "default",
) -> MetricVerdict:
    """Return Kayenta's verdict on one metric from its per-step values, with a reason carrying the numbers.

    `allowed_increase`/`allowed_decrease` default to Kayenta's for the effect size (1.0 for meanRatio,
    0.5 for cles). Never raises on data (empty, constant, NaN or infinite values); raises ValueError on
    an unknown NaN strategy or effect size.
    """
    default = EFFECT_DEFAULTS.get(effect)
    if default is None:
        raise ValueError(f"unknown effect size {effect!r}: expected one of {tuple(EFFECT_DEFAULTS)}")
    rules = _Rules(
        direction, critical, tolerance, confidence, effect,
        default if allowed_increase is None else allowed_increase,
        default if allowed_decrease is None else allowed_decrease, nan_strategy, unit, group,
    )
    b = preprocess(baseline, nan_strategy, outliers, outlier_factor)
    c = preprocess(candidate, nan_strategy, outliers, outlier_factor)
    return _classify(name, b, c, rules)


def _classify(name: str, b: np.ndarray, c: np.ndarray, rules: _Rules) -> MetricVerdict:
    """Kayenta's guard clauses, then the comparison; critical escalation happens in _verdict."""
    if not b.size or not c.size:
        return _missing(name, b, c, rules)
    if np.array_equal(np.sort(b), np.sort(c)):
        return _verdict(name, Classification.PASS, "the candidate and baseline data are identical", b, c, rules)
    if np.unique(np.concatenate([b, c])).size == 1:
        return _verdict(name, Classification.PASS, f"every value is {_value(float(b[0]), rules.unit)}", b, c, rules)
    result = mann_whitney(c, b, rules.confidence)
    label, why = _compare(result, *_effect(b, c, rules), rules)
    return _verdict(name, label, why, b, c, rules, result.p_value)


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
    allowed change (a NaN effect, from a zero candidate mean, never does)."""
    harmful = HARMFUL[label]
    if rules.direction not in (harmful, Direction.EITHER):
        return Classification.PASS, f"{where}, but only {ARTICLE[rules.direction]} fails this metric"
    high = label is Classification.HIGH
    allowed = rules.allowed_increase if high else rules.allowed_decrease
    if effect >= allowed if high else effect <= allowed:
        return label, f"{where}, {size} {'≥' if high else '≤'} {allowed:g}"
    short = "cannot reach" if math.isnan(effect) else ("<" if high else ">")
    return Classification.PASS, f"{where}, but {size} {short} the allowed {harmful.value} {allowed:g}"


def _effect(b: np.ndarray, c: np.ndarray, rules: _Rules) -> tuple[float, str]:
    """The effect size and its text; says when Kayenta's zero-mean rules decided the mean ratio."""
    value = effect_size(rules.effect, b, c)
    text = f"{EFFECT_NAMES[rules.effect]} {value:.3g}"
    if rules.effect == "meanRatio" and float(np.mean(b)) == 0:
        text += " (Kayenta's value for a zero baseline mean)"
    elif math.isnan(value):
        text = f"{EFFECT_NAMES[rules.effect]} undefined (a zero candidate mean)"
    return value, text


def _verdict(
    name: str, label: Classification, why: str, b: np.ndarray, c: np.ndarray, rules: _Rules,
    p_value: float | None = None,
) -> MetricVerdict:
    """The MetricVerdict; a critical metric that fails (or, as in Kayenta, has no data) is marked critical."""
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
    if not values.size:
        return Summary(None, 0.0, "no steps with data")
    mean = float(np.mean(values))
    return Summary(float(np.median(values)), float(values.size), f"median of {values.size} steps, mean {_value(mean, unit)}")


def _value(value: float | None, unit: str) -> str:
    return format_value(value, unit) if unit else ("no data" if value is None else f"{value:.4g}")


def _signed(value: float, unit: str) -> str:
    return ("-" if value < 0 else "+") + format_absolute(abs(value), unit)


# ---- scoring --------------------------------------------------------------------------------------


def score_kayenta(
    verdicts: Sequence[MetricVerdict], group_weights: Mapping[str, float] | None = None,
    must_have_data: Collection[str] = (),
) -> ReleaseScore:
    """Return Kayenta's summary score: the weighted sum of group scores (see kayenta_weights); 0 when a
    critical metric fails or half the metrics or more are NODATA; None when no metric was judged.

    A group scores 100 x passes / (passes + highs + lows + NODATA of the metrics in `must_have_data`,
    Kayenta's NodataFailMetric); a group with nothing judged counts 100 in the sum, as in Kayenta.
    Muted metrics, errors and metrics Kayenta cannot judge (log signatures) are left out.
    """
    counted = _counted(verdicts)
    members: dict[str, list[MetricVerdict]] = {}
    for verdict in counted:
        members.setdefault(verdict.group, []).append(verdict)
    groups = {name: _group_score(group, must_have_data) for name, group in members.items()}
    weights = kayenta_weights(list(groups), group_weights or {})
    group_scores = tuple(GroupScore(name, value, weights[name]) for name, value in groups.items())
    if _zero_rule(counted, must_have_data):
        return ReleaseScore(0.0, group_scores, tuple(verdicts))
    if all(value is None for value in groups.values()):
        return ReleaseScore(None, group_scores, tuple(verdicts))
    total = sum(weights[name] * (100.0 if value is None else value) for name, value in groups.items())
    return ReleaseScore(round(total, 2), group_scores, tuple(verdicts))


def kayenta_weights(groups: Sequence[str], configured: Mapping[str, float]) -> dict[str, float]:
    """Group weights summing to 1. Kayenta's weights are percentages: a named group takes its own, the
    others share what is left of 100 (after every configured weight) equally. We normalise the result,
    where Kayenta does not (its score then tops out at the weights' sum when they miss 100)."""
    rest = [g for g in groups if g not in configured]
    share = max(0.0, 100.0 - sum(configured.values())) / len(rest) if rest else 0.0
    raw = {g: float(configured.get(g, share)) for g in groups}
    total = sum(raw.values())
    return {g: w / total for g, w in raw.items()} if total > 0 else raw


def _counted(verdicts: Sequence[MetricVerdict]) -> list[MetricVerdict]:
    return [v for v in verdicts if not v.muted and v.test != UNJUDGEABLE]


def _group_score(members: Sequence[MetricVerdict], must_have_data: Collection[str]) -> float | None:
    passed = sum(v.classification is Classification.PASS for v in members)
    judged = sum(v.classification in JUDGED or _required_missing(v, must_have_data) for v in members)
    return 100.0 * passed / judged if judged else None


def _required_missing(verdict: MetricVerdict, must_have_data: Collection[str]) -> bool:
    return verdict.classification is Classification.NODATA and verdict.metric in must_have_data


def _critical_failures(counted: Sequence[MetricVerdict]) -> list[MetricVerdict]:
    # Kayenta fails the canary on any critical result but a pass; a fetch error is left out here.
    return [v for v in counted if v.critical and v.classification in (*FAILING, Classification.NODATA)]


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
    b_steps, b_values = per_step(spec, item.baseline)
    c_steps, c_values = per_step(spec, item.candidate)
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
    """(steps, values): one value per step as Kayenta would see the metric. A "value" role is taken as is;
    ratios are numerator / denominator per step (NaN over a zero denominator); histogram quantiles are
    Prometheus' histogram_quantile of each step's buckets. Raises ValueError for log signatures."""
    if "value" in side:
        steps, values = plain_steps(side["value"])
        outside = (spec.valid_min is not None and values < spec.valid_min) | (spec.valid_max is not None and values > spec.valid_max)
        return steps, np.where(outside, np.nan, values)  # garbage (a negative memory) is NaN: the NaN strategy decides
    if spec.kind in (MetricKind.RATIO, MetricKind.LOG_RATE):
        return ratio_steps(side)
    if spec.kind is MetricKind.HISTOGRAM_QUANTILE:
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
    values = [histogram_quantile(q, bounds, row) for row in counts] if counts.size else []
    return steps, np.array([math.nan if v is None else v for v in values], dtype=np.float64)
