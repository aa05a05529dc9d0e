"""The gauge classifier on literal arrays: level shifts, leaks, tolerance, direction and degenerate data."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from releasehealth.model import Action, Classification, Direction, MetricKind, MetricSpec, Policy, Series, Tolerance
from releasehealth.scoring.gauge import classify_gauge, outliers, per_step
from releasehealth.scoring.judging import judge
from releasehealth.verdicts import MetricInput

ALPHA = 0.005
MIB = 2**20
CPU = MetricSpec(name="cpu", kind=MetricKind.GAUGE, queries={"value": "cpu"}, unit="cores", tolerance=Tolerance(0.2, 0.0), min_count=10)
MEMORY = MetricSpec(name="memory", kind=MetricKind.GAUGE, queries={"value": "memory"}, unit="bytes", tolerance=Tolerance(0.2, 0.0), min_count=10)
FREE = MetricSpec(name="free_memory", kind=MetricKind.GAUGE, queries={"value": "free"}, unit="cores", direction=Direction.DECREASE, tolerance=Tolerance(0.2, 0.0), min_count=10)
WIGGLE = [0.0, 1.5, -1.0, 0.5, -1.5, 1.0, -0.5, 0.8, -0.8, 0.2]  # noise, in percent of the level


def _steps(n: int) -> np.ndarray:
    return 1_800_000_000 + 60.0 * np.arange(1, n + 1)


def _side(values: list[float]) -> dict[str, list[Series]]:
    return {"value": [Series({}, _steps(len(values)), np.array(values, dtype=float))]}


def _level(level: float, n: int = 30) -> list[float]:
    """A flat gauge at `level` with ±1.5% of literal noise."""
    return [level * (1 + WIGGLE[i % len(WIGGLE)] / 100) for i in range(n)]


def _growing(level: float, per_step: float, n: int = 30) -> list[float]:
    return [v + per_step * i for i, v in enumerate(_level(level, n))]


# ---- level --------------------------------------------------------------------------------------------


def test_cpu_high_when_the_candidate_runs_half_again_as_hot() -> None:
    verdict = classify_gauge(CPU, _side(_level(2.0)), _side(_level(3.0)), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert verdict.reason.startswith("cpu HIGH: 3.003 cores vs 2.002 cores (+50.0%), 99.5% CI of the shift +0.98 cores..+1.02 cores")
    assert "beyond tolerance +20% and +0; credible (p=" in verdict.reason and "Hodges-Lehmann +1" in verdict.reason
    assert "mean ratio 1.5, CLES 1.00" in verdict.reason
    assert verdict.p_value < ALPHA and verdict.change == pytest.approx(0.5, abs=0.01)


def test_a_credible_rise_within_tolerance_passes() -> None:
    # +10% on ±1.5% noise is certain, but it is inside the +20% tolerance.
    verdict = classify_gauge(CPU, _side(_level(2.0)), _side(_level(2.2)), ALPHA)
    assert verdict.classification is Classification.PASS
    assert "within tolerance +20%" in verdict.reason


def test_a_rise_beyond_tolerance_on_wild_noise_is_not_credible() -> None:
    baseline = [1.0, 3.0, 0.5, 2.5, 1.5, 4.0, 0.2, 2.0, 3.5, 1.0, 0.8, 2.2]
    candidate = [v * 1.3 for v in reversed(baseline)]
    verdict = classify_gauge(CPU, _side(baseline), _side(candidate), ALPHA)
    assert verdict.classification is Classification.PASS
    assert "beyond tolerance +20% and +0 but not credible" in verdict.reason


def test_a_drop_is_harmless_for_an_increase_gauge() -> None:
    verdict = classify_gauge(CPU, _side(_level(2.0)), _side(_level(1.0)), ALPHA)
    assert verdict.classification is Classification.PASS and "harmless direction" in verdict.reason


def test_a_decrease_gauge_mirrors_to_low() -> None:
    verdict = classify_gauge(FREE, _side(_level(2.0)), _side(_level(1.0)), ALPHA)
    assert verdict.classification is Classification.LOW
    assert verdict.reason.startswith("free_memory LOW: 1.001 cores vs 2.002 cores (-50.0%)")
    assert classify_gauge(FREE, _side(_level(2.0)), _side(_level(3.0)), ALPHA).classification is Classification.PASS


def test_either_direction_fails_both_ways() -> None:
    either = MetricSpec(name="gc", kind=MetricKind.GAUGE, queries={}, unit="cores", direction=Direction.EITHER, tolerance=Tolerance(0.2, 0.0), min_count=10)
    assert classify_gauge(either, _side(_level(2.0)), _side(_level(3.0)), ALPHA).classification is Classification.HIGH
    assert classify_gauge(either, _side(_level(2.0)), _side(_level(1.0)), ALPHA).classification is Classification.LOW


# ---- trend ----------------------------------------------------------------------------------------------


def test_a_leak_is_high_naming_the_slope() -> None:
    # 500 MiB flat vs the same start growing 8 MiB a minute: +46% over the 29-minute window.
    verdict = classify_gauge(MEMORY, _side(_level(500 * MIB)), _side(_growing(500 * MIB, 8 * MIB)), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert "memory HIGH: 616 MiB vs 500 MiB (+23.0%), rising 8" in verdict.reason
    assert "MiB/min vs " in verdict.reason and "in the baseline (Theil-Sen 99.5% CI +" in verdict.reason
    assert "+46% over the window" in verdict.reason and verdict.reason.endswith("; a leak")


def test_a_slow_rise_within_tolerance_over_the_window_passes() -> None:
    # 1 MiB a minute on 500 MiB is +6% over the window: a trend, not beyond the +20% tolerance.
    verdict = classify_gauge(MEMORY, _side(_level(500 * MIB)), _side(_growing(500 * MIB, 1 * MIB)), ALPHA)
    assert verdict.classification is Classification.PASS
    assert "+6% over the window" in verdict.reason


def test_a_candidate_that_leaks_as_its_baseline_did_passes() -> None:
    # The baseline leaked for hours (it sits far higher); the restarted candidate leaks at the same rate.
    baseline, candidate = _growing(2000 * MIB, 8 * MIB), _growing(500 * MIB, 8 * MIB)
    verdict = classify_gauge(MEMORY, _side(baseline), _side(candidate), ALPHA)
    assert verdict.classification is Classification.PASS


def test_a_steady_fall_fails_a_decrease_gauge_as_low() -> None:
    verdict = classify_gauge(FREE, _side(_level(2.0)), _side(_growing(2.0, -0.03)), ALPHA)
    assert verdict.classification is Classification.LOW
    assert "falling" in verdict.reason and verdict.reason.endswith("; a steady decline")


# ---- guards and degenerate data ----------------------------------------------------------------------


def test_identical_windows_pass() -> None:
    side = _side(_level(2.0))
    verdict = classify_gauge(CPU, side, side, ALPHA)
    assert verdict.classification is Classification.PASS and "identical values in both windows" in verdict.reason


def test_constant_windows_compare_their_values_without_a_test() -> None:
    high = classify_gauge(CPU, _side([2.0] * 20), _side([3.0] * 20), ALPHA)
    assert high.classification is Classification.HIGH and "constant in both windows" in high.reason
    assert high.p_value == 0.0
    within = classify_gauge(CPU, _side([2.0] * 20), _side([2.2] * 20), ALPHA)
    assert within.classification is Classification.PASS and "within tolerance" in within.reason


def test_a_constant_baseline_against_a_noisy_candidate_is_judged() -> None:
    verdict = classify_gauge(CPU, _side([2.0] * 30), _side(_level(3.0)), ALPHA)
    assert verdict.classification is Classification.HIGH


@pytest.mark.parametrize(
    ("baseline", "candidate", "why"),
    [
        ([], [], "no data: 0 baseline and 0 candidate steps"),
        ([2.0] * 30, [], "no data: 30 baseline and 0 candidate steps"),
        ([2.0], [3.0], "too few points to judge: baseline 1 and candidate 1 steps, at least 10 needed"),
        ([math.nan] * 30, _level(2.0), "no data: 0 baseline and 30 candidate steps"),
        ([math.inf, -math.inf, math.nan] * 10, [math.inf] * 30, "no data: 0 baseline and 0 candidate steps"),
    ],
)
def test_missing_or_unusable_data_is_nodata_with_a_reason(baseline: list[float], candidate: list[float], why: str) -> None:
    verdict = classify_gauge(CPU, _side(baseline), _side(candidate), ALPHA)
    assert verdict.classification is Classification.NODATA
    assert verdict.reason == f"cpu NODATA: {why}" or why in verdict.reason


def test_a_spec_asking_for_one_point_still_needs_three() -> None:
    spec = MetricSpec(name="cpu", kind=MetricKind.GAUGE, queries={}, unit="cores", min_count=1)
    verdict = classify_gauge(spec, _side([1.0, 2.0]), _side([5.0, 6.0]), ALPHA)
    assert verdict.classification is Classification.NODATA and "at least 3 needed" in verdict.reason


def test_nan_and_inf_steps_are_dropped_not_counted() -> None:
    candidate = _level(3.0)
    candidate[3], candidate[7], candidate[11] = math.nan, math.inf, -math.inf
    verdict = classify_gauge(CPU, _side(_level(2.0)), _side(candidate), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert verdict.candidate.count == 27 and math.isfinite(verdict.candidate.value)


def test_a_zero_baseline_does_not_raise() -> None:
    verdict = classify_gauge(CPU, _side([0.0] * 20), _side(_level(1.0, 20)), ALPHA)
    assert verdict.classification is Classification.HIGH and "new, from zero" in verdict.reason


def test_missing_role_is_nodata() -> None:
    verdict = classify_gauge(CPU, {}, {"other": []}, ALPHA)
    assert verdict.classification is Classification.NODATA


# ---- per step, outliers, registration --------------------------------------------------------------


def test_several_series_are_averaged_per_step() -> None:
    t = _steps(3)
    steps = per_step([Series({}, t, np.array([1.0, 2.0, 3.0])), Series({}, t[1:], np.array([4.0, math.nan]))])
    np.testing.assert_allclose(steps.times, t)
    np.testing.assert_allclose(steps.values, [1.0, 3.0, 3.0])


def test_outlier_removal_drops_only_far_points() -> None:
    values = np.array(_level(2.0) + [50.0])
    assert outliers(values).tolist() == [False] * 30 + [True]
    spiky = _level(2.0)
    spiky[5] = 40.0
    kept = classify_gauge(CPU, _side(_level(2.0)), _side(spiky), ALPHA, remove_outliers=True)
    assert kept.candidate.count == 29


def test_the_judge_classifies_gauges() -> None:
    inputs = [MetricInput(spec=CPU, baseline=_side(_level(2.0)), candidate=_side(_level(3.0)))]
    release, recommendation = judge(inputs, Policy(), "1.0", "1.1")
    assert release.verdicts[0].classification is Classification.HIGH
    assert recommendation.action is Action.ROLLBACK  # the only metric, failing: score 0


def test_a_muted_gauge_says_so_in_its_reason() -> None:
    muted = dataclasses.replace(CPU, muted=True)
    verdict = classify_gauge(muted, _side(_level(2.0)), _side(_level(3.0)), ALPHA)
    assert verdict.classification is Classification.HIGH and verdict.reason.endswith("; muted: shown, not counted")


def test_theil_sen_is_scipys_on_a_short_window_and_on_block_medians_of_a_long_one() -> None:
    from scipy.stats import theilslopes

    from releasehealth.scoring.gauge import TREND_POINTS, Points, block_medians, theil_sen

    rng = np.random.default_rng(3)
    for steps in (30, TREND_POINTS, 200, 203):
        times = np.arange(steps, dtype=np.float64) * 60 + 1_700_000_000
        values = 500 + 0.02 * (times - times[0]) + rng.normal(0, 5, steps)
        values[rng.integers(0, steps, 3)] += 400  # outlier steps: Theil-Sen's robustness must survive the blocks
        fit = theil_sen(Points(times, values), 0.99)
        seen_times, seen_values = block_medians(times - times[0], TREND_POINTS), block_medians(values, TREND_POINTS)
        assert seen_times.size == steps if steps <= TREND_POINTS else seen_times.size <= TREND_POINTS
        for level, (low, high) in zip((0.95, 0.99), fit.intervals, strict=True):
            expected = theilslopes(seen_values, seen_times, alpha=level)
            assert fit.slope == pytest.approx(expected.slope)
            assert (low, high) == pytest.approx((expected.low_slope, expected.high_slope))
        assert low < 0.02 < high, (steps, fit)  # the trend the window was drawn with, outliers and all
