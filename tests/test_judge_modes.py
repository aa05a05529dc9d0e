"""The judge mode switch: policy.judge = kayenta hands the release to Kayenta's classifier and scorer."""

from __future__ import annotations

import dataclasses

import numpy as np

from releasehealth import config
from releasehealth.model import Action, MetricKind, MetricSpec, Policy, Series, Tolerance
from releasehealth.scoring.judging import judge
from releasehealth.verdicts import MetricInput
from testing.configs import example_config

SPEC = MetricSpec(name="error_ratio", kind=MetricKind.RATIO, queries={}, unit="ratio", tolerance=Tolerance(0.2, 0.001), critical=True)


def _side(errors: list[float], requests: float = 1000.0) -> dict[str, list[Series]]:
    t = 1_800_000_000 + 60.0 * np.arange(1, len(errors) + 1)
    return {"numerator": [Series({}, t, np.array(errors, dtype=float))], "denominator": [Series({}, t, np.full(len(errors), requests))]}


def test_kayenta_mode_misses_what_ours_catches_on_zero_inflated_errors() -> None:
    # Kayenta's documented blind spot: sparse new errors against a clean baseline (0.67% of 3,000 requests).
    inputs = [MetricInput(spec=SPEC, baseline=_side([0] * 30, 100.0), candidate=_side([0, 1, 2, 1, 0, 0] * 5, 100.0))]
    ours = judge(inputs, Policy(), "1.0", "1.1")[1]
    kayenta = judge(inputs, dataclasses.replace(Policy(), judge="kayenta"), "1.0", "1.1")[1]
    assert kayenta.action is Action.PROMOTE and "Kayenta" in kayenta.reason
    assert ours.action is not Action.PROMOTE


def test_kayenta_mode_rolls_back_a_clear_critical_regression() -> None:
    inputs = [MetricInput(spec=SPEC, baseline=_side([5, 6, 4, 5, 7] * 6), candidate=_side([30, 28, 35, 31, 29] * 6))]
    _, recommendation = judge(inputs, dataclasses.replace(Policy(), judge="kayenta"), "1.0", "1.1")
    assert recommendation.action is Action.ROLLBACK


def test_the_judge_is_chosen_in_the_config() -> None:
    raw = example_config("http://p:9090")
    raw["policy"]["judge"] = "kayenta"
    assert config.parse(raw).policy.judge == "kayenta"
