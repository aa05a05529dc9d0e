"""Kayenta mode on literal data: the rank-sum test and its CI, classification, scoring, recommendation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from releasehealth.model import Action, Classification, Direction, MetricKind, MetricSpec, Series
from releasehealth.scoring.kayenta import (
    UNJUDGEABLE,
    classify_arrays,
    classify_input,
    cles,
    critical_failure,
    kayenta_judge,
    kayenta_weights,
    mann_whitney,
    mean_ratio,
    outlier_mask,
    per_step,
    percentile,
    recommend_kayenta,
    score_kayenta,
    zeroin,
)
from releasehealth.scoring.latency import histogram_quantile
from releasehealth.verdicts import MetricInput, MetricVerdict, Summary

NAN, INF = math.nan, math.inf
# Noisy latencies (seconds) and the same plus ten: a shift no one would miss.
NOISY = [10.7, 11.6, 10.7, 7.4, 11.8, 10.9, 8.9, 11.2, 10.7, 10.6, 10.1, 11.1, 8.5, 9.7, 9.0,
         11.2, 10.1, 9.4, 8.4, 9.5, 10.0, 9.4, 12.6, 12.0, 4.6, 6.2, 9.7, 9.2, 10.4, 10.4]
SHIFTED = [22.8, 20.5, 20.3, 19.4, 22.4, 21.6, 18.4, 19.6, 20.9, 20.7, 18.9, 20.4, 18.4, 18.8, 18.9,
           21.3, 20.1, 18.9, 19.0, 20.4, 20.3, 18.6, 23.3, 21.5, 15.5, 15.1, 20.6, 19.2, 19.2, 20.1]
TIES = [  # (candidate, baseline): some without ties, some full of them (error counts)
    ([21.2, 19.8, 20.5, 22.9, 18.7], [10.3, 9.1, 11.4, 10.8, 8.7, 9.9]),
    ([1.5, 2.25, 0.75, 3.0], [2.0, 1.0, 2.5, 0.5, 1.75]),
    ([0, 1, 2, 1, 0, 0], [0, 0, 0, 0, 0, 0]),
    ([3, 4, 4, 5, 6, 6, 7], [1, 2, 2, 3, 3, 4, 5, 5]),
    ([100] * 7 + [1] * 3, [1] * 10),
    ([0.003, 0.004, 0.003, 0.005], [0.003, 0.003, 0.002, 0.004, 0.003]),
]


def _kayenta(baseline: list[float], candidate: list[float], direction: Direction = Direction.INCREASE, **kw) -> MetricVerdict:
    return classify_arrays("m", baseline, candidate, direction=direction, **kw)


def _pairwise(candidate: list[float], baseline: list[float]) -> np.ndarray:
    return np.sort(np.subtract.outer(np.array(candidate, float), np.array(baseline, float)).ravel())


# ---- the rank-sum test ----------------------------------------------------------------------------


@pytest.mark.parametrize(("candidate", "baseline"), TIES)
def test_p_value_is_scipys_asymptotic_continuity_corrected_one(candidate: list[float], baseline: list[float]) -> None:
    expected = stats.mannwhitneyu(candidate, baseline, method="asymptotic", use_continuity=True).pvalue
    assert mann_whitney(np.array(candidate, float), np.array(baseline, float)).p_value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("candidate", "baseline"), TIES)
def test_estimate_is_where_the_rank_sum_crosses_its_null_mean(candidate: list[float], baseline: list[float]) -> None:
    # The estimate is the root of z(d) = 0 to uniroot's tolerance (1e-4), as R and Kayenta find it: just below
    # it the candidate's U statistic is at least its null mean nm/2, just above at most (within the continuity
    # correction of 1/2). The Hodges-Lehmann median lies in the same zero region, not necessarily on the root.
    c, b = np.array(candidate, float), np.array(baseline, float)
    result = mann_whitney(c, b)
    half = c.size * b.size / 2

    def u(shift: float) -> float:
        return float(stats.mannwhitneyu(c - shift, b).statistic)

    assert u(result.estimate - 1e-4) >= half - 0.5 and u(result.estimate + 1e-4) <= half + 0.5
    assert result.lower <= result.estimate <= result.upper


def test_p_value_and_interval_hold_on_many_seeded_samples() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        nx, ny = rng.integers(1, 25, 2)
        x, y = rng.integers(0, 6, nx).astype(float), rng.integers(0, 5, ny).astype(float)
        if np.unique(np.concatenate([x, y])).size == 1:
            continue
        result = mann_whitney(x, y)
        expected = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True).pvalue
        assert result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-15)
        assert result.lower <= result.estimate <= result.upper


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.98])
def test_interval_without_ties_is_the_order_statistic_the_normal_approximation_gives(confidence: float) -> None:
    # Between pairwise differences z(d) = (N/2 - k - 1/2) / sigma for k differences below d, so the lower
    # end is the m-th smallest difference, m = ceil(N/2 - 1/2 - z sigma), and the upper end the m-th largest,
    # each found to R's root tolerance of 1e-4.
    candidate = [12.1, 9.8, 11.4, 10.3, 13.0, 8.7, 10.9, 12.6, 9.3, 11.8, 10.1, 7.9]
    baseline = [9.4, 7.2, 8.8, 10.6, 6.5, 9.0, 8.1, 11.2, 7.7]
    nx, ny = len(candidate), len(baseline)
    diffs = _pairwise(candidate, baseline)
    assert np.unique(np.concatenate([candidate, baseline])).size == nx + ny
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    m = math.ceil(diffs.size / 2 - 0.5 - z * math.sqrt(nx * ny * (nx + ny + 1) / 12))
    assert 1 <= m < diffs.size / 2
    result = mann_whitney(np.array(candidate), np.array(baseline), confidence)
    assert result.lower == pytest.approx(diffs[m - 1], abs=1e-4)
    assert result.upper == pytest.approx(diffs[diffs.size - m], abs=1e-4)


def test_interval_narrows_as_confidence_drops() -> None:
    c, b = np.array(SHIFTED[:10]), np.array(NOISY[:10]) + 8
    wide, narrow = mann_whitney(c, b, 0.98), mann_whitney(c, b, 0.80)
    assert wide.lower < narrow.lower <= narrow.upper < wide.upper
    assert wide.estimate == narrow.estimate


# Golden values from R 4.2.2: wilcox.test(x, y, conf.int=TRUE, exact=FALSE, correct=TRUE, conf.level=0.98).
# R's uniroot stops within 1e-4 of the root; our zeroin takes the same steps, so its ends are R's to 1e-8.
R_GOLDEN = [
    ([10.7, 11.6, 10.7, 7.4, 11.8, 12.2, 11.9], [10.1, 9.4, 8.4, 9.5, 10.0, 9.4, 12.6], 0.1589452725, -1.999988548, 2.799985419),
    ([0, 1, 2, 1, 0, 0], [0] * 6, 0.07313979966, 0.0, 2.0),
    ([100] * 7 + [1] * 3, [1] * 10, 0.001616772831, 6.825022992e-05, 99.0),
    ([21.2, 19.8, 20.5, 22.9, 18.7, 20.1, 21.7, 19.4, 20.8, 23.1], [10.3, 9.1, 11.4, 10.8, 8.7, 9.9, 12.0, 10.5, 9.6, 11.1],
     0.0001826717911, 8.900042988, 12.09993979),
    ([3, 4, 4, 5, 6, 6, 7], [1, 2, 2, 3, 3, 4, 5, 5], 0.04026386606, -8.057097587e-05, 4.000009053),
]


@pytest.mark.parametrize(("x", "y", "p_value", "lower", "upper"), R_GOLDEN)
def test_matches_r_wilcox_test(x: list[float], y: list[float], p_value: float, lower: float, upper: float) -> None:
    result = mann_whitney(np.array(x, float), np.array(y, float))
    assert result.p_value == pytest.approx(p_value, rel=1e-8)
    assert result.lower == pytest.approx(lower, abs=1e-8) and result.upper == pytest.approx(upper, abs=1e-8)


def test_zeroin_finds_the_root_of_a_smooth_function_to_its_tolerance() -> None:
    root = zeroin(lambda x: x**3 - 2, 0.0, 2.0, -2.0, 6.0)
    assert root == pytest.approx(2 ** (1 / 3), abs=1e-4)
    assert zeroin(lambda x: x**3 - 2, 0.0, 2.0, -2.0, 6.0, tol=1e-12) == pytest.approx(2 ** (1 / 3), abs=1e-12)
    assert zeroin(lambda x: x, 0.0, 1.0, 0.0, 1.0) == 0.0  # a root at an end is returned as is


def test_two_constant_samples_shift_by_their_difference() -> None:
    result = mann_whitney(np.array([7.0, 7.0, 7.0]), np.array([2.0, 2.0]))
    assert (result.estimate, result.lower, result.upper) == (5.0, 5.0, 5.0)


@pytest.mark.parametrize(("candidate", "baseline"), [([], [1.0]), ([1.0, INF], [2.0]), ([3.0, 3.0], [3.0])])
def test_mann_whitney_refuses_what_r_refuses(candidate: list[float], baseline: list[float]) -> None:
    with pytest.raises(ValueError):
        mann_whitney(np.array(candidate), np.array(baseline))


def test_effect_sizes_follow_kayenta() -> None:
    assert cles(np.array([1.0, 2.0]), np.array([2.0, 3.0])) == 0.875  # 3 wins and a tie out of 4 pairs
    assert mean_ratio(np.array([2.0, 4.0]), np.array([6.0, 12.0])) == 3.0
    # Either mean 0: the ratio says nothing, and Kayenta's EffectSizes.meanRatio is NaN.
    assert math.isnan(mean_ratio(np.array([0.0, 0.0]), np.array([1.0, 2.0])))
    assert math.isnan(mean_ratio(np.array([1.0, 2.0]), np.array([0.0, 0.0])))


# ---- classification -------------------------------------------------------------------------------


def test_identical_data_passes() -> None:
    verdict = _kayenta(NOISY, list(reversed(NOISY)))
    assert verdict.classification is Classification.PASS and "identical" in verdict.reason
    assert verdict.test == "Kayenta Mann-Whitney (98% CI, tolerance 0.25)"


def test_zero_inflated_errors_pass_as_in_kayenta() -> None:
    # Kayenta's known blind spot, reproduced: the CI [0, 2] of the shift touches 0.
    verdict = _kayenta([0, 0, 0, 0, 0, 0], [0, 1, 2, 1, 0, 0])
    assert verdict.classification is Classification.PASS
    assert "98% CI of the shift +0..+2 around +0.8127 overlaps the band ±0.2032" in verdict.reason
    assert verdict.reason.endswith("mean ratio undefined (a zero baseline mean)")


def test_a_shift_whose_interval_must_clear_a_quarter_of_its_estimate_passes() -> None:
    verdict = _kayenta([1] * 10, [100] * 7 + [1] * 3)
    assert verdict.classification is Classification.PASS
    assert "CI of the shift +6.825e-05..+99 around +99 overlaps the band ±24.75" in verdict.reason


def test_a_clear_rise_is_high_with_the_numbers_in_the_reason() -> None:
    verdict = _kayenta(NOISY, SHIFTED, unit="seconds")
    assert verdict.classification is Classification.HIGH
    assert verdict.reason.startswith("m HIGH (Kayenta): candidate median 20.1 s vs 10.1 s, 98% CI of the shift +8900 ms..")
    assert verdict.reason.endswith("mean ratio 2.01 ≥ 1")
    assert verdict.p_value is not None and verdict.p_value < 1e-9
    assert verdict.candidate.count == 30 and verdict.baseline.value == pytest.approx(10.1)


def test_a_clear_fall_is_low_for_a_decrease_metric() -> None:
    verdict = _kayenta(SHIFTED, NOISY, Direction.DECREASE)
    assert verdict.classification is Classification.LOW and "mean ratio 0.497 ≤ 1" in verdict.reason


def test_the_summaries_carry_the_statistics_kayenta_reports() -> None:
    verdict = _kayenta([1.0, 1.0, 1.0, 10.0, 10.0, 10.0], [2.0, 4.0, 6.0])
    assert verdict.baseline.detail == "median of 6 steps; mean 5.5, std 4.93, range 1..10"
    assert verdict.candidate.detail == "median of 3 steps; mean 4, std 2, range 2..6"


def test_a_fall_is_harmless_for_an_increase_metric() -> None:
    verdict = _kayenta(SHIFTED, NOISY, Direction.INCREASE)
    assert verdict.classification is Classification.PASS and "only an increase fails this metric" in verdict.reason


def test_either_direction_fails_both_ways() -> None:
    assert _kayenta(NOISY, SHIFTED, Direction.EITHER).classification is Classification.HIGH
    assert _kayenta(SHIFTED, NOISY, Direction.EITHER).classification is Classification.LOW


def test_the_effect_size_must_reach_the_allowed_increase() -> None:
    verdict = _kayenta(NOISY, SHIFTED, allowed_increase=2.5)
    assert verdict.classification is Classification.PASS
    assert "but mean ratio 2.01 < the allowed increase 2.5" in verdict.reason


def test_cles_effect_size_defaults_to_one_half() -> None:
    verdict = _kayenta(NOISY, SHIFTED, effect="cles")
    assert verdict.classification is Classification.HIGH and "CLES 1 ≥ 0.5" in verdict.reason


def test_a_series_that_drops_to_zero_is_low_as_the_effect_size_check_is_skipped() -> None:
    verdict = _kayenta([1, 2, 1, 2, 1, 2], [0] * 6, Direction.DECREASE, allowed_decrease=0.5)
    assert verdict.classification is Classification.LOW
    assert verdict.reason.endswith("mean ratio undefined (a zero candidate mean): the effect-size check is skipped")
    assert _kayenta([1, 2, 1, 2, 1, 2], [0] * 6, Direction.DECREASE, effect="cles").classification is Classification.LOW


def test_a_critical_failure_short_of_the_critical_threshold_is_not_critical() -> None:
    verdict = _kayenta(NOISY, SHIFTED, critical=True, critical_increase=2.5)
    assert verdict.classification is Classification.HIGH and not critical_failure(verdict) and not verdict.critical
    assert verdict.reason.endswith(
        "mean ratio 2.01 ≥ 1; a critical metric, but mean ratio 2.01 < the critical increase 2.5: not a critical failure"
    )
    assert score_kayenta([verdict, _verdict("b", PASS)]).score == 50.0  # a plain failure, not a zero
    escalated = _kayenta(NOISY, SHIFTED, critical=True, critical_increase=2.0)
    assert critical_failure(escalated) and escalated.reason.endswith("; critical")
    assert score_kayenta([escalated, _verdict("b", PASS)]).score == 0.0


def test_a_critical_metric_that_passes_stays_marked_critical_but_is_no_critical_failure() -> None:
    verdict = _kayenta(NOISY, NOISY[::-1], critical=True)
    assert verdict.critical and not critical_failure(verdict)


def test_a_critical_failure_is_marked_critical() -> None:
    verdict = _kayenta(NOISY, SHIFTED, critical=True)
    assert verdict.critical and verdict.reason.endswith("; critical")
    assert not _kayenta(NOISY, NOISY, critical=True).reason.endswith("; critical")


def test_nan_removal_and_replacement_can_disagree() -> None:
    # Error counts reported only when there are errors: missing steps are zeros, which only "replace" sees.
    baseline, candidate = [NAN] * 12 + [4.0, 3.0, 5.0], [4.0, 3.0, 5.0] * 5
    assert _kayenta(baseline, candidate).classification is Classification.PASS
    replaced = _kayenta(baseline, candidate, nan_strategy="replace")
    assert replaced.classification is Classification.HIGH and "candidate median 4 vs 0" in replaced.reason


def test_kayentas_outlier_fences_use_r7_percentiles() -> None:
    # Fences widened to the 1st/99th percentiles, R-7 (position (n - 1) p / 100): the 99th percentile lies
    # below a lone maximum, so a spike beyond the Tukey fences goes even from a short window ...
    spike = np.array([10.0, 11.0, 12.0, 10.5, 11.5] * 3 + [1e5])
    assert outlier_mask(spike).tolist() == [False] * 15 + [True]
    assert percentile(spike, 99) == pytest.approx(12.0 + 0.85 * (1e5 - 12.0))  # position 15 x 0.99 = 14.85
    # ... while a tail of two at each end stays: there the 1st and 99th percentiles are the extremes.
    tail = np.array([9.0, 9.0] + [10.0] * 20 + [14.0, 14.0])
    assert not outlier_mask(tail).any()
    assert outlier_mask(tail, reduce_sensitivity=False).tolist() == [True] * 2 + [False] * 20 + [True] * 2


def test_outlier_removal_changes_a_verdict_driven_by_one_outlier() -> None:
    baseline = [10.0 + (k % 7) * 0.5 for k in range(199)] + [1e5]  # one spike inflates the baseline mean
    candidate = [10.0 + (k % 7) * 0.5 + 2.0 for k in range(200)]
    kept = _kayenta(baseline, candidate)
    assert kept.classification is Classification.PASS and "mean ratio 0.0264 < the allowed increase 1" in kept.reason
    removed = _kayenta(baseline, candidate, outliers=True)
    assert removed.classification is Classification.HIGH and "mean ratio 1.17 ≥ 1" in removed.reason


@pytest.mark.parametrize(
    ("baseline", "candidate", "expected"),
    [
        ([], [], Classification.NODATA),
        ([NAN, NAN, NAN], [1.0, 2.0, 3.0], Classification.NODATA),
        ([1.0], [2.0], Classification.HIGH),  # one point each: two constant samples, shift 1
        ([5.0], [5.0], Classification.PASS),
        ([3.0] * 5, [3.0] * 4, Classification.PASS),
        ([0.0] * 5, [7.0] * 5, Classification.HIGH),
        ([1.0, INF, 2.0], [1.0, 2.0, -INF], Classification.PASS),
        ([1.0, 2.0, 1.5], [INF, INF, INF], Classification.NODATA),
        ([0.0] * 5, [0.0] * 5, Classification.PASS),  # all zero: identical
        ([0.0] * 5, [0.0, 0.0, 0.0, 0.0, 3.0], Classification.PASS),  # one error in five steps: the CI touches 0
        ([1.0], [5.0, 6.0, 7.0], Classification.HIGH),  # one baseline point
        ([-3.0] * 4, [-1.0] * 4, Classification.PASS),  # a rise of negative values: the mean ratio 0.33 holds it back
        ([1e-300, 2e-300], [3e-300, 4e-300], Classification.HIGH),  # tiny values
        ([1.7e308] * 3, [-1.7e308] * 3, Classification.PASS),  # the shift overflows to -inf: no finite evidence
    ],
)
def test_edge_cases_never_raise(baseline: list[float], candidate: list[float], expected: Classification) -> None:
    assert _kayenta(baseline, candidate, Direction.EITHER).classification is expected


def test_missing_data_passes_when_nans_are_replaced_as_in_kayenta() -> None:
    assert _kayenta([], [], nan_strategy="replace").classification is Classification.PASS


@pytest.mark.parametrize("option", [{"nan_strategy": "drop"}, {"effect": "cohenD"}])
def test_unknown_options_are_refused(option: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        _kayenta([1.0], [2.0], **option)


# ---- scoring and recommendation -------------------------------------------------------------------


def _verdict(metric: str, label: Classification, group: str = "g", critical: bool = False) -> MetricVerdict:
    empty = Summary(None, 0.0)
    return MetricVerdict(metric=metric, classification=label, reason=f"{metric} {label.value}", baseline=empty, candidate=empty, critical=critical, group=group)


PASS, HIGH, LOW, NODATA, ERROR = (
    Classification.PASS, Classification.HIGH, Classification.LOW, Classification.NODATA, Classification.ERROR,
)


def test_all_pass_promotes() -> None:
    release = score_kayenta([_verdict("a", PASS), _verdict("b", PASS)])
    recommendation = recommend_kayenta(release, baseline="v1", candidate="v2")
    assert release.score == 100.0 and recommendation.action is Action.PROMOTE
    assert recommendation.reason == "Kayenta score 100 ≥ pass 95: all 2 judged metrics pass"
    assert (recommendation.baseline, recommendation.candidate) == ("v1", "v2")


def test_a_failing_critical_metric_scores_zero_and_rolls_back() -> None:
    verdicts = [_verdict("error_ratio", HIGH, critical=True)] + [_verdict(f"m{k}", PASS) for k in range(9)]
    release = score_kayenta(verdicts)
    recommendation = recommend_kayenta(release)
    assert release.score == 0.0 and recommendation.action is Action.ROLLBACK
    assert recommendation.reason.startswith("Kayenta score 0: critical metric error_ratio failed (HIGH)")


def test_a_critical_metric_without_data_fails_as_in_kayenta() -> None:
    release = score_kayenta([_verdict("error_ratio", NODATA, critical=True)] + [_verdict(f"m{k}", PASS) for k in range(3)])
    assert release.score == 0.0


def test_nodata_on_half_the_metrics_scores_zero() -> None:
    release = score_kayenta([_verdict("a", PASS), _verdict("b", NODATA)])
    recommendation = recommend_kayenta(release)
    assert release.score == 0.0 and recommendation.action is Action.ROLLBACK
    assert "1 of 2 metrics (50%) returned NODATA" in recommendation.reason


def test_nodata_below_half_is_left_out_of_the_group() -> None:
    assert score_kayenta([_verdict("a", PASS), _verdict("b", PASS), _verdict("c", NODATA)]).score == 100.0


def test_required_data_counts_as_a_failure() -> None:
    verdicts = [_verdict("a", PASS), _verdict("b", PASS), _verdict("c", PASS), _verdict("d", NODATA)]
    release = score_kayenta(verdicts, must_have_data={"d"})
    assert release.score == 75.0
    assert recommend_kayenta(release, must_have_data={"d"}).action is Action.HOLD


def test_score_between_thresholds_holds_and_below_rolls_back() -> None:
    hold = score_kayenta([_verdict("a", PASS), _verdict("b", PASS), _verdict("c", PASS), _verdict("d", LOW)])
    assert hold.score == 75.0 and recommend_kayenta(hold).action is Action.HOLD
    assert recommend_kayenta(hold).reason.startswith("Kayenta score 75 marginal (≥ 75, < pass 95): d LOW")
    fail = score_kayenta([_verdict("a", PASS), _verdict("b", HIGH)])
    assert fail.score == 50.0 and recommend_kayenta(fail).action is Action.ROLLBACK


def test_group_weights_are_percentages_the_unnamed_groups_share() -> None:
    verdicts = [_verdict("e", PASS, "errors"), _verdict("l", HIGH, "latency")]
    assert score_kayenta(verdicts).score == 50.0
    assert score_kayenta(verdicts, {"errors": 75}).score == 75.0  # latency gets the remaining 25
    assert score_kayenta(verdicts, {"errors": 3, "latency": 1}).score == 75.0  # normalised to sum 1
    weighted = score_kayenta(verdicts, {"errors": 90})
    assert {g.group: g.weight for g in weighted.groups} == pytest.approx({"errors": 0.9, "latency": 0.1})


def test_the_score_is_rounded_half_up_as_kayentas_math_utils() -> None:
    # 1.005 is stored just below the half (Python's round gives 1.0); Kayenta rounds its decimal form: 1.01.
    release = score_kayenta([_verdict("a", PASS, "a"), _verdict("b", HIGH, "b")], {"a": 1.005, "b": 98.995})
    assert release.score == 1.01


def test_weights_split_what_is_left_of_a_hundred() -> None:
    assert kayenta_weights(["a", "b", "c"], {"a": 50}) == {"a": 0.5, "b": 0.25, "c": 0.25}
    assert kayenta_weights(["a", "b"], {"a": 100, "x": 20}) == {"a": 1.0, "b": 0.0}


def test_a_group_with_nothing_judged_counts_full_marks_as_in_kayenta() -> None:
    verdicts = [_verdict("a", PASS, "errors"), _verdict("b", HIGH, "errors"), _verdict("c", NODATA, "latency")]
    release = score_kayenta(verdicts)
    assert release.score == 75.0
    assert {g.group: g.score for g in release.groups} == {"errors": 50.0, "latency": 0.0}  # reported as Kayenta does


def test_errors_and_muted_metrics_are_left_out() -> None:
    muted = dataclasses.replace(_verdict("m", HIGH, critical=True), muted=True)
    release = score_kayenta([_verdict("a", PASS), _verdict("b", ERROR), muted])
    assert release.score == 100.0 and len(release.verdicts) == 3


def test_nothing_judged_is_inconclusive() -> None:
    release = score_kayenta([_verdict("a", ERROR), _verdict("b", ERROR)])
    recommendation = recommend_kayenta(release)
    assert release.score is None and recommendation.action is Action.INCONCLUSIVE
    assert "a ERROR; b ERROR" in recommendation.reason


# ---- from metric inputs ---------------------------------------------------------------------------


ERROR_RATIO = MetricSpec(name="error_ratio", kind=MetricKind.RATIO, queries={"numerator": "errors", "denominator": "requests"}, unit="ratio", critical=True, group="errors")
P95 = MetricSpec(name="p95_latency", kind=MetricKind.HISTOGRAM_QUANTILE, queries={"buckets": "latency_buckets"}, unit="seconds", group="latency", quantile=0.95)
SIGNATURES = MetricSpec(name="log_signatures", kind=MetricKind.LOG_SIGNATURES, queries={}, unit="", critical=True, group="logs")
BOUNDS = ["0.1", "0.2", "0.4", "+Inf"]


def _steps(n: int) -> np.ndarray:
    return 1_800_000_000 + 60.0 * np.arange(1, n + 1)


def _ratio_side(errors: list[float], requests: list[float]) -> dict[str, list[Series]]:
    t = _steps(len(requests))
    return {
        "numerator": [Series({}, t, np.array(errors, dtype=float))],
        "denominator": [Series({}, t, np.array(requests, dtype=float))],
    }


def _bucket_side(rows: list[list[float]]) -> dict[str, list[Series]]:
    counts, t = np.array(rows, dtype=float), _steps(len(rows))
    return {"buckets": [Series({"le": le}, t, counts[:, k]) for k, le in enumerate(BOUNDS)]}


FAST = [[80, 95, 100, 100], [78, 94, 100, 100]] * 10  # p95 0.2 s and 0.233 s
SLOW = [[40, 70, 100, 100], [42, 72, 100, 100]] * 10  # p95 0.367 s and 0.386 s


def test_per_step_ratio_is_nan_over_a_zero_denominator_or_a_bad_count() -> None:
    steps, values = per_step(ERROR_RATIO, _ratio_side([1, 0, 3, -2], [100, 0, 300, 100]))
    assert steps.tolist() == _steps(4).tolist()
    assert values[0] == 0.01 and math.isnan(values[1]) and values[2] == 0.01
    assert math.isnan(values[3])  # a negative count is garbage, not a value


def test_per_step_quantile_is_prometheus_histogram_quantile_of_each_step() -> None:
    _, values = per_step(P95, _bucket_side(SLOW[:2]))
    bounds = np.array([0.1, 0.2, 0.4, math.inf])
    assert values.tolist() == [histogram_quantile(0.95, bounds, np.array(row, float)) for row in SLOW[:2]]
    assert values[0] == pytest.approx(0.2 + 0.2 * 25 / 30)


def test_a_value_role_is_taken_as_is_and_missing_steps_stay_nan() -> None:
    side = {"value": [Series({}, _steps(3), np.array([1.0, NAN, 3.0])), Series({}, _steps(2), np.array([1.0, NAN]))]}
    _, values = per_step(P95, side)
    assert values[0] == 2.0 and math.isnan(values[1]) and values[2] == 3.0


def test_a_gauge_without_series_is_no_data_not_an_exception() -> None:
    memory = MetricSpec(name="memory", kind=MetricKind.GAUGE, queries={"value": "memory"}, unit="bytes", group="saturation")
    verdict = classify_input(MetricInput(spec=memory, baseline={}, candidate={}))
    assert verdict.classification is Classification.NODATA
    assert verdict.reason == "memory NODATA (Kayenta): no data for either window once NaNs are removed"


def test_kayenta_judge_rolls_back_on_a_critical_error_ratio() -> None:
    inputs = [
        MetricInput(spec=ERROR_RATIO, baseline=_ratio_side([3, 2, 4, 3, 3] * 6, [1000] * 30), candidate=_ratio_side([9, 8, 10, 9, 9] * 6, [1000] * 30)),
        MetricInput(spec=P95, baseline=_bucket_side(FAST), candidate=_bucket_side(FAST)),
        MetricInput(spec=SIGNATURES, baseline={}, candidate={}),
    ]
    release, recommendation = kayenta_judge(inputs, "v1", "v2")
    error_ratio, latency, logs = release.verdicts
    assert error_ratio.classification is Classification.HIGH and error_ratio.critical
    assert error_ratio.reason.startswith("error_ratio HIGH (Kayenta): candidate median 0.90% vs 0.30%")
    assert error_ratio.candidate_series is not None and error_ratio.candidate_series.values.size == 30
    assert latency.classification is Classification.PASS
    assert logs.classification is Classification.NODATA and logs.test == UNJUDGEABLE
    assert release.score == 0.0 and recommendation.action is Action.ROLLBACK
    assert recommendation.reason.startswith("Kayenta score 0: critical metric error_ratio failed (HIGH)")


def test_kayenta_judge_leaves_unjudgeable_and_failed_metrics_out() -> None:
    inputs = [
        MetricInput(spec=ERROR_RATIO, baseline=_ratio_side([3, 2, 4] * 10, [1000] * 30), candidate=_ratio_side([2, 4, 3] * 10, [1000] * 30)),
        MetricInput(spec=P95, baseline={}, candidate={}, error="query 'latency_buckets' failed: http://p:9090: unreachable"),
        MetricInput(spec=SIGNATURES, baseline={}, candidate={}),
    ]
    release, recommendation = kayenta_judge(inputs, "v1", "v2")
    assert [v.classification for v in release.verdicts] == [Classification.PASS, Classification.ERROR, Classification.NODATA]
    assert "left out of the Kayenta score" in release.verdicts[1].reason
    # The critical log-signature metric neither counts as NODATA nor fails the run: Kayenta never sees it.
    assert release.score == 100.0 and recommendation.action is Action.PROMOTE


def test_kayenta_judge_holds_on_a_slower_p95_with_group_weights() -> None:
    inputs = [
        MetricInput(spec=ERROR_RATIO, baseline=_ratio_side([3, 2, 4] * 10, [1000] * 30), candidate=_ratio_side([3, 2, 4] * 10, [1000] * 30)),
        MetricInput(spec=P95, baseline=_bucket_side(FAST), candidate=_bucket_side(SLOW)),
    ]
    release, recommendation = kayenta_judge(inputs, "v1", "v2", group_weights={"errors": 80})
    assert release.verdicts[1].classification is Classification.HIGH
    assert release.score == 80.0 and recommendation.action is Action.HOLD
