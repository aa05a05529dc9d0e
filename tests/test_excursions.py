"""Episodes: a few steps far out while the level holds. Counted ratios (errors, the latency tail) test
each step's count against the baseline's rate; gauges use the exact precedence test. One isolated spike
never fails."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from releasehealth.model import Classification, MetricKind, MetricSpec, Series, Tolerance
from releasehealth.scoring.excursions import MIN_EPISODES, NOMINAL_RATE, episodes_p_value, excursion_steps, runs
from releasehealth.scoring.gauge import classify_gauge
from releasehealth.scoring.latency import classify_tail
from releasehealth.scoring.ratio import classify_ratio

ALPHA = 0.005
CPU = MetricSpec(name="cpu", kind=MetricKind.GAUGE, queries={"value": "cpu"}, unit="cores", tolerance=Tolerance(0.2, 0.0), min_count=10)
CONNECTIONS = MetricSpec(name="connections", kind=MetricKind.GAUGE, queries={"value": "c"}, unit="", tolerance=Tolerance(0.2, 0.5), min_count=10)
ERRORS = MetricSpec(name="error_ratio", kind=MetricKind.RATIO, queries={"numerator": "e", "denominator": "r"}, unit="ratio", tolerance=Tolerance(0.2, 0.001), min_count=200)
TAIL = MetricSpec(name="tail", kind=MetricKind.HISTOGRAM_TAIL, queries={"buckets": "b"}, unit="ratio", tolerance=Tolerance(0.5, 0.002), quantile=0.99, min_count=200)
WIGGLE = [0.0, 1.5, -1.0, 0.5, -1.5, 1.0, -0.5, 0.8, -0.8, 0.2]
BOUNDS = np.array([0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf])


def _steps(n: int) -> np.ndarray:
    return 1_800_000_000 + 60.0 * np.arange(1, n + 1)


def _gauge(values: list[float]) -> dict[str, list[Series]]:
    return {"value": [Series({}, _steps(len(values)), np.array(values, dtype=float))]}


def _flat(level: float, episodes: dict[int, float] | None = None, n: int = 30) -> list[float]:
    values = [level * (1 + WIGGLE[i % len(WIGGLE)] / 100) for i in range(n)]
    for step, factor in (episodes or {}).items():
        values[step] *= factor
    return values


def _ratio(errors: list[float], requests: list[float]) -> dict[str, list[Series]]:
    steps = _steps(len(requests))
    return {"numerator": [Series({}, steps, np.array(errors, dtype=float))], "denominator": [Series({}, steps, np.array(requests, dtype=float))]}


def _latency(slow: dict[int, float], n: int = 30, per_step: float = 300) -> dict[str, list[Series]]:
    """Lognormal latencies around 60 ms; the steps in `slow` run that many times slower."""
    rows = []
    for step in range(n):
        median = 0.06 * slow.get(step, 1.0) * (1 + WIGGLE[step % len(WIGGLE)] / 100)
        rows.append(np.round(per_step * norm.cdf((np.log(BOUNDS) - math.log(median)) / 0.5)))
    counts = np.array(rows)
    labels = [str(b) if math.isfinite(b) else "+Inf" for b in BOUNDS]
    return {"buckets": [Series({"le": le}, _steps(n), counts[:, k]) for k, le in enumerate(labels)]}


# ---- the count --------------------------------------------------------------------------------------


def test_one_episode_never_fails_and_two_in_thirty_are_rare_by_chance() -> None:
    assert MIN_EPISODES == 2 and episodes_p_value(1, 30, 0, 30) == 1.0
    assert episodes_p_value(2, 30, 0, 30) == pytest.approx(1 - (1 - NOMINAL_RATE) ** 30 - 30 * NOMINAL_RATE * (1 - NOMINAL_RATE) ** 29)
    assert episodes_p_value(2, 30, 0, 30) < 1e-3


def test_the_baseline_own_excursions_set_the_rate() -> None:
    # A baseline with one excursion step of its own: 2 episodes in 30 candidate steps are ordinary.
    assert episodes_p_value(2, 30, 1, 30) > 0.2
    assert episodes_p_value(8, 30, 1, 30) < 1e-5


def test_adjacent_excursion_steps_are_one_episode() -> None:
    assert runs(np.array([False, True, True, False, True, False, True, True, True])) == 3
    assert runs(np.array([True])) == 1 and runs(np.array([], dtype=bool)) == 0


def test_a_step_is_an_excursion_only_beyond_its_binomial_tail() -> None:
    # At a limit of 0.25%: 1 of 30 requests is ordinary, 4 of 30 are not; 30 of 1000 are not; 3 of 1000 are.
    mask = excursion_steps(np.array([1.0, 4.0, 30.0, 3.0]), np.array([30.0, 30.0, 1000.0, 1000.0]), 0.0025, 1.0, 1)
    assert mask.tolist() == [False, True, True, False]
    # A dispersion of 4 makes a count four times less telling; a harmful fall mirrors the tail.
    assert not excursion_steps(np.array([8.0]), np.array([1000.0]), 0.0025, 4.0, 1)[0]
    assert excursion_steps(np.array([900.0]), np.array([1000.0]), 0.99, 1.0, -1).tolist() == [True]
    assert not excursion_steps(np.array([0.0]), np.array([0.0]), 0.5, 1.0, 1)[0]


# ---- gauges: the exact precedence test ---------------------------------------------------------------


def test_cpu_episodes_in_a_third_of_the_steps_fail_while_the_median_holds() -> None:
    episodes = {k: 3.0 for k in range(0, 30, 3)}
    verdict = classify_gauge(CPU, _gauge(_flat(2.0)), _gauge(_flat(2.0, episodes)), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert "10 of 30 steps above" in verdict.reason and "precedence test of excursions" in verdict.reason


def test_one_isolated_spike_in_the_candidate_passes() -> None:
    verdict = classify_gauge(CPU, _gauge(_flat(2.0)), _gauge(_flat(2.0, {12: 5.0})), ALPHA)
    assert verdict.classification is Classification.PASS and "1 step beyond" in verdict.reason


def test_a_count_like_gauge_with_ties_counts_its_episodes() -> None:
    baseline = [6.0, 7.0, 6.0, 6.0, 8.0, 7.0] * 5
    candidate = [20.0 if k % 3 == 0 else v for k, v in enumerate(baseline)]
    verdict = classify_gauge(CONNECTIONS, _gauge(baseline), _gauge(candidate), ALPHA)
    assert verdict.classification is Classification.HIGH and "10 of 30 steps above" in verdict.reason
    assert classify_gauge(CONNECTIONS, _gauge(baseline), _gauge(baseline[::-1]), ALPHA).classification is Classification.PASS


# ---- counted ratios ---------------------------------------------------------------------------------


def test_error_bursts_the_window_total_dilutes_fail() -> None:
    # Two minutes at 15% errors in thirty at 0.5%, on a bursty baseline: the window goes to 1.5%.
    baseline = [5, 2, 9, 4, 7, 3, 6, 5, 8, 1] * 3
    candidate = list(baseline)
    candidate[8], candidate[21] = 150, 150
    verdict = classify_ratio(ERRORS, _ratio(baseline, [1000] * 30), _ratio(candidate, [1000] * 30), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert "2 episodes (2 of 30 steps) above" in verdict.reason and "episodes the window's total dilutes" in verdict.reason


def test_one_error_burst_is_judged_on_the_window_total_alone() -> None:
    baseline = [5, 2, 9, 4, 7, 3, 6, 5, 8, 1] * 3
    candidate = list(baseline)
    candidate[8] = 60
    verdict = classify_ratio(ERRORS, _ratio(baseline, [1000] * 30), _ratio(candidate, [1000] * 30), ALPHA)
    assert verdict.classification is Classification.PASS and "1 episode beyond the baseline's rate" in verdict.reason


# ---- the latency tail -------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [(6, 19), (3, 14, 26)])
def test_slow_minutes_fail_the_tail(minutes: tuple[int, ...]) -> None:
    verdict = classify_tail(TAIL, _latency({}), _latency(dict.fromkeys(minutes, 3.0)), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert f"{len(minutes)} episodes ({len(minutes)} of 30 steps) above" in verdict.reason


def test_a_slow_minute_straddling_two_steps_is_one_episode() -> None:
    verdict = classify_tail(TAIL, _latency({}), _latency({12: 3.0, 13: 3.0}), ALPHA)
    assert verdict.classification is Classification.PASS and "1 episode " in verdict.reason


def test_one_slow_minute_leaves_the_tail_passing() -> None:
    assert classify_tail(TAIL, _latency({}), _latency({12: 5.0}), ALPHA).classification is Classification.PASS
