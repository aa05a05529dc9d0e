"""Edge cases and properties of the judge: defined outcomes for bad data, invariants under hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasehealth.model import Action, Classification, Direction, MetricKind, MetricSpec, Policy, Series, Tolerance
from releasehealth.scoring.gauge import classify_gauge
from releasehealth.scoring.judging import judge
from releasehealth.scoring.latency import classify_quantile, classify_tail
from releasehealth.scoring.ratio import classify_ratio
from releasehealth.verdicts import MetricInput

ALPHA = 0.005
EPISODES = "binomial test of episodes)"  # the reason of a verdict decided by excursions, not by the levels
RATIO = MetricSpec(name="error_ratio", kind=MetricKind.RATIO, queries={}, unit="ratio", tolerance=Tolerance(0.2, 0.001), min_count=100)
SYMMETRIC = MetricSpec(name="error_ratio", kind=MetricKind.RATIO, queries={}, unit="ratio", direction=Direction.EITHER, tolerance=Tolerance(0.0, 0.002), min_count=100)
P95 = MetricSpec(name="p95", kind=MetricKind.HISTOGRAM_QUANTILE, queries={}, unit="seconds", tolerance=Tolerance(0.2, 0.0), quantile=0.95, min_count=100)
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf]
VALID = {Classification.PASS, Classification.HIGH, Classification.LOW, Classification.NODATA}


def _steps(n: int) -> np.ndarray:
    return 1_800_000_000 + 60.0 * np.arange(1, n + 1)


def _ratio(errors: list[float], requests: list[float]) -> dict[str, list[Series]]:
    """Errors and requests per step; when one is shorter, its later steps are missing (a gap)."""
    return {
        "numerator": [Series({}, _steps(len(errors)), np.array(errors, dtype=float))],
        "denominator": [Series({}, _steps(len(requests)), np.array(requests, dtype=float))],
    }


def _buckets(rows: list[list[float]], scale: float = 1.0) -> dict[str, list[Series]]:
    """Per-step non-cumulative bucket counts, turned into cumulative `le` series."""
    counts = np.cumsum(np.array(rows, dtype=float), axis=1)
    t = _steps(len(rows))
    labels = [repr(b * scale) if math.isfinite(b) else "+Inf" for b in BOUNDS]
    return {"buckets": [Series({"le": le}, t, counts[:, i]) for i, le in enumerate(labels)]}


# ---- bad data: a defined outcome with a reason, never an exception ------------------------------------


@pytest.mark.parametrize(
    ("errors", "requests"),
    [
        ([], []),  # empty
        ([1], [1000]),  # one point
        ([math.nan] * 30, [1000] * 30),  # NaN errors
        ([5] * 30, [math.inf] * 30),  # infinite requests
        ([5] * 30, [-1000] * 30),  # a counter reset gone wrong
        ([2000] * 30, [1000] * 30),  # more errors than requests
        ([1e15] * 30, [1e18] * 30),  # huge values
        ([5] * 30, [1000] * 5),  # a gap: fewer request steps than error steps
    ],
)
def test_ratio_bad_data_has_a_defined_outcome(errors: list[float], requests: list[float]) -> None:
    good = _ratio([5] * 30, [1000] * 30)
    for baseline, candidate in ((good, _ratio(errors, requests)), (_ratio(errors, requests), good)):
        verdict = classify_ratio(RATIO, baseline, candidate, ALPHA)
        assert verdict.classification in VALID and verdict.reason


def test_invalid_steps_are_left_out_and_said() -> None:
    candidate = _ratio([5] * 28 + [math.nan, 5], [1000] * 28 + [1000, -3])
    verdict = classify_ratio(RATIO, _ratio([5] * 30, [1000] * 30), candidate, ALPHA)
    assert verdict.candidate.count == 28_000
    assert "2 invalid steps left out" in verdict.candidate.detail


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [[0] * 15],
        [[math.nan] * 15] * 20,
        [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, math.inf]] * 20,
        [[-5] * 15] * 20,
        [[0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 20,  # constant, all in one bucket
    ],
)
def test_latency_bad_data_has_a_defined_outcome(rows: list[list[float]]) -> None:
    good = _buckets([[0, 0, 10, 40, 30, 10, 6, 3, 1, 0, 0, 0, 0, 0, 0]] * 20)
    for baseline, candidate in ((good, _buckets(rows) if rows else {"buckets": []}), (_buckets(rows) if rows else {}, good)):
        verdict = classify_quantile(P95, baseline, candidate, ALPHA)
        assert verdict.classification in VALID and verdict.reason


def test_a_histogram_without_an_inf_bucket_is_nodata() -> None:
    t = _steps(20)
    partial = {"buckets": [Series({"le": "0.1"}, t, np.full(20, 100.0)), Series({"le": "NaN"}, t, np.full(20, 5.0))]}
    verdict = classify_quantile(P95, partial, partial, ALPHA)
    assert verdict.classification is Classification.NODATA and "+Inf" in verdict.baseline.detail


def test_a_fetch_error_and_empty_inputs_still_give_a_recommendation() -> None:
    inputs = [MetricInput(spec=RATIO, baseline={}, candidate={}), MetricInput(spec=P95, baseline={}, candidate={}, error="boom")]
    release, recommendation = judge(inputs, Policy(), "1.0", "1.1")
    assert recommendation.action is Action.INCONCLUSIVE and "2 of 2 metrics could not be judged" in recommendation.reason


# ---- properties --------------------------------------------------------------------------------------

counts = st.lists(st.integers(min_value=0, max_value=50), min_size=10, max_size=40)
traffic = st.integers(min_value=200, max_value=5000)
# Derandomised: the same 200 examples on every run, so that a run passes or fails on the code, never on
# the draw (a guard that named the episodes' test wrongly let a zero-baseline example fail the swapping
# property one run in many; with it named right, 3,000 random examples find no counterexample there).
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(errors=counts, per_step=traffic)
def test_identical_windows_never_roll_back(errors: list[int], per_step: int) -> None:
    side = _ratio(errors, [per_step] * len(errors))
    rows = [[0, 0, e % 7, 40, 30 + e, 10, 6, 3, 1, 0, 0, 0, 0, 0, 0] for e in errors]
    inputs = [
        MetricInput(spec=RATIO, baseline=side, candidate=side),
        MetricInput(spec=P95, baseline=_buckets(rows), candidate=_buckets(rows)),
    ]
    _, recommendation = judge(inputs, Policy(), "1.0", "1.1")
    assert recommendation.action is not Action.ROLLBACK


@PROPERTY
@given(baseline=counts, candidate=counts, per_step=traffic)
def test_swapping_the_windows_swaps_high_and_low(baseline: list[int], candidate: list[int], per_step: int) -> None:
    n = min(len(baseline), len(candidate))
    b, c = _ratio(baseline[:n], [per_step] * n), _ratio(candidate[:n], [per_step] * n)
    forward, backward = classify_ratio(SYMMETRIC, b, c, ALPHA), classify_ratio(SYMMETRIC, c, b, ALPHA)
    swap = {Classification.HIGH: Classification.LOW, Classification.LOW: Classification.HIGH}
    # Excursions are counted beyond a limit set from the baseline alone, which swapping does not mirror:
    # only the verdicts on the window totals must swap.
    if EPISODES not in forward.reason + backward.reason:
        assert backward.classification == swap.get(forward.classification, forward.classification)


@PROPERTY
@given(
    shift=st.integers(min_value=0, max_value=25),
    noise=st.lists(st.integers(min_value=0, max_value=8), min_size=12, max_size=30),
    scale=st.sampled_from([0.001, 0.5, 3.0, 1000.0]),
)
def test_scaling_the_latency_unit_leaves_the_verdict_unchanged(shift: int, noise: list[int], scale: float) -> None:
    base = [[0, 0, 5 + n, 40, 30, 10 + n, 6, 3, 1, 0, 0, 0, 0, 0, 0] for n in noise]
    moved = [[0, 0, 5, 40 - min(shift, 39), 30, 10 + n + shift, 6 + shift, 3, 1, 0, 0, 0, 0, 0, 0] for n in noise]
    original = classify_quantile(P95, _buckets(base), _buckets(moved), ALPHA)
    scaled = classify_quantile(P95, _buckets(base, scale), _buckets(moved, scale), ALPHA)
    assert scaled.classification == original.classification
    if original.change is not None:
        assert scaled.change == pytest.approx(original.change, rel=1e-6, abs=1e-9)


# ---- the gauge's three tests and the tail, under hypothesis --------------------------------------------

GAUGE = MetricSpec(name="g", kind=MetricKind.GAUGE, queries={"value": "g"}, unit="bytes", direction=Direction.EITHER,
                   tolerance=Tolerance(0.2, 0.0), min_count=5, trend_tolerance=0.1)
TAIL = MetricSpec(name="tail", kind=MetricKind.HISTOGRAM_TAIL, quantile=0.99, queries={"buckets": "b"}, unit="ratio",
                  tolerance=Tolerance(0.5, 0.002), min_count=50)
levels = st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=5, max_size=40)
odd_levels = st.lists(st.sampled_from([0.0, 1.0, 2.0, math.nan, math.inf, -math.inf]), min_size=0, max_size=30)


def _gauge(values: list[float]) -> dict[str, list[Series]]:
    return {"value": [Series({}, 1_800_000_000 + 60.0 * np.arange(1, len(values) + 1), np.array(values, dtype=float))]}


@PROPERTY
@given(values=levels)
def test_a_gauge_never_fails_against_itself(values: list[float]) -> None:
    assert classify_gauge(GAUGE, _gauge(values), _gauge(values), ALPHA).classification not in (Classification.HIGH, Classification.LOW)


@PROPERTY
@given(baseline=levels, candidate=levels)
def test_swapping_gauge_windows_swaps_high_and_low(baseline: list[float], candidate: list[float]) -> None:
    n = min(len(baseline), len(candidate))
    forward = classify_gauge(GAUGE, _gauge(baseline[:n]), _gauge(candidate[:n]), ALPHA)
    backward = classify_gauge(GAUGE, _gauge(candidate[:n]), _gauge(baseline[:n]), ALPHA)
    swap = {Classification.HIGH: Classification.LOW, Classification.LOW: Classification.HIGH}
    # The trend test compares the candidate's own slope too, which swapping does not mirror: only the
    # level verdicts must swap (excursions are counted beyond a limit set from the baseline alone).
    if "Theil-Sen trend test" not in forward.reason + backward.reason and EPISODES not in forward.reason + backward.reason:
        assert backward.classification == swap.get(forward.classification, forward.classification)


@PROPERTY
@given(baseline=levels, candidate=levels, scale=st.sampled_from([1e-3, 7.0, 1e4]))
def test_scaling_a_gauge_keeps_its_verdict(baseline: list[float], candidate: list[float], scale: float) -> None:
    original = classify_gauge(GAUGE, _gauge(baseline), _gauge(candidate), ALPHA)
    scaled = classify_gauge(GAUGE, _gauge([v * scale for v in baseline]), _gauge([v * scale for v in candidate]), ALPHA)
    assert scaled.classification == original.classification


@PROPERTY
@given(baseline=odd_levels, candidate=odd_levels)
def test_constant_zero_one_point_and_nan_gauges_give_a_verdict_with_a_reason(baseline: list[float], candidate: list[float]) -> None:
    verdict = classify_gauge(GAUGE, _gauge(baseline), _gauge(candidate), ALPHA)
    assert verdict.reason.startswith("g ") and verdict.classification in Classification


@PROPERTY
@given(rows=st.lists(st.lists(st.integers(min_value=0, max_value=40), min_size=15, max_size=15), min_size=1, max_size=12))
def test_the_tail_of_any_histogram_gives_a_verdict_and_never_fails_against_itself(rows: list[list[int]]) -> None:
    side = _buckets(rows)
    verdict = classify_tail(TAIL, side, side, ALPHA)
    assert verdict.classification not in (Classification.HIGH, Classification.LOW) and verdict.reason
    assert classify_tail(TAIL, {}, side, ALPHA).classification is Classification.NODATA
