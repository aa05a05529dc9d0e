"""What the judge does with data it should not trust: a window with valid data on too few steps is NO DATA
(coverage in steps, not span), a counter-reset spike is left out instead of deciding the ratio, a gauge
value outside its valid range is left out, and each is counted in the evidence."""

from __future__ import annotations

import dataclasses

import numpy as np

from releasehealth.model import Classification, MetricKind, MetricSpec, Policy, Series, Tolerance
from releasehealth.scoring.judging import judge
from releasehealth.scoring.series import SPIKE_FACTOR, plausible_steps
from releasehealth.verdicts import MetricInput, MetricVerdict

STEPS = 30
RATIO = MetricSpec(name="error_ratio", kind=MetricKind.RATIO, queries={"numerator": "errors", "denominator": "requests"},
                   unit="ratio", tolerance=Tolerance(0.2, 0.001), critical=True, group="errors", min_count=200)
MEMORY = MetricSpec(name="memory", kind=MetricKind.GAUGE, queries={"value": "memory"}, unit="bytes",
                    tolerance=Tolerance(0.2, 0.0), min_count=10, valid_min=0.0)
WIGGLE = np.array([0.0, 1.5, -1.0, 0.5, -1.5, 1.0, -0.5, 0.8, -0.8, 0.2])


def _times(n: int = STEPS) -> np.ndarray:
    return 1_800_000_000 + 60.0 * np.arange(1, n + 1)


def _ratio(errors: np.ndarray, requests: np.ndarray, keep: slice = slice(None)) -> dict[str, list[Series]]:
    times = _times(len(requests))[keep]
    return {"numerator": [Series({}, times, errors[keep])], "denominator": [Series({}, times, requests[keep])]}


def _verdict(item: MetricInput) -> MetricVerdict:
    release, _ = judge([item], Policy(), "1.0", "1.1")
    return release.verdicts[0]


def _traffic(rate: float) -> tuple[np.ndarray, np.ndarray]:
    requests = 1000.0 * (1 + np.resize(WIGGLE, STEPS) / 100)
    return np.round(requests * rate), requests


def test_a_window_with_a_quarter_of_its_steps_is_no_data_whatever_its_span() -> None:
    errors, requests = _traffic(0.002)
    quarter = slice(0, None, 4)  # the first and the last step are there: the span is whole
    item = MetricInput(spec=RATIO, baseline=_ratio(errors, requests), candidate=_ratio(errors, requests, quarter), expected_steps=STEPS)
    verdict = _verdict(item)
    assert verdict.classification is Classification.NODATA
    assert "the candidate window 8 of 30 steps (15 needed" in verdict.reason


def test_half_the_steps_are_enough_to_judge() -> None:
    errors, requests = _traffic(0.002)
    item = MetricInput(spec=RATIO, baseline=_ratio(errors, requests), candidate=_ratio(errors, requests, slice(0, None, 2)), expected_steps=STEPS)
    assert _verdict(item).classification is Classification.PASS


def test_a_counter_reset_spike_neither_rolls_back_nor_hides_a_regression() -> None:
    errors, requests = _traffic(0.002)
    spiked_errors, spiked_requests = errors.copy(), requests.copy()
    spiked_errors[15] += 1e9
    spiked_requests[15] += 1e9  # increase() across a restart: both counters jump
    good = _verdict(MetricInput(spec=RATIO, baseline=_ratio(errors, requests), candidate=_ratio(spiked_errors, spiked_requests)))
    assert good.classification is Classification.PASS, good.reason
    bad_errors, _ = _traffic(0.02)
    bad_errors[15] += 1e9
    bad = _verdict(MetricInput(spec=RATIO, baseline=_ratio(errors, requests), candidate=_ratio(bad_errors, spiked_requests)))
    assert bad.classification is Classification.HIGH, bad.reason
    assert bad.candidate is not None and "1 invalid step left out" in bad.candidate.detail


def test_plausible_steps_leave_out_only_counts_no_traffic_explains() -> None:
    counts = np.array([100.0, 120.0, 0.0, 90.0, 100.0 * SPIKE_FACTOR, 100.0 * SPIKE_FACTOR * 1.5])
    assert plausible_steps(counts).tolist() == [True, True, True, True, True, False]
    assert plausible_steps(np.array([1.0, 1e9])).all()  # too few steps to tell a spike from traffic


def test_a_gauge_outside_its_valid_range_is_left_out_and_counted() -> None:
    level = 100 * 2**20 * (1 + np.resize(WIGGLE, STEPS) / 100)
    garbled = level.copy()
    garbled[::3] = -0.5 * 2**20  # "memory PASS: -0.521 MiB vs 165 MiB"
    side = {"value": [Series({}, _times(), level)]}
    verdict = _verdict(MetricInput(spec=MEMORY, baseline=side, candidate={"value": [Series({}, _times(), garbled)]}, expected_steps=STEPS))
    assert verdict.classification is Classification.PASS, verdict.reason
    assert verdict.candidate is not None and verdict.candidate.value is not None and verdict.candidate.value > 0
    assert "10 steps outside the valid range left out" in verdict.candidate.detail
    # ... and with most of the window garbled, too little is left to judge.
    garbled[::2] = -1.0
    verdict = _verdict(MetricInput(spec=MEMORY, baseline=side, candidate={"value": [Series({}, _times(), garbled)]}, expected_steps=STEPS))
    assert verdict.classification is Classification.NODATA, verdict.reason


def test_without_a_valid_range_a_negative_gauge_is_judged() -> None:
    spec = dataclasses.replace(MEMORY, name="temperature", valid_min=None)
    cold = -10.0 * (1 + np.resize(WIGGLE, STEPS) / 100)
    side = {"value": [Series({}, _times(), cold)]}
    assert _verdict(MetricInput(spec=spec, baseline=side, candidate=side, expected_steps=STEPS)).classification is Classification.PASS
