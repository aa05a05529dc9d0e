"""The judge on literal data: quantiles, ratio and latency classification, scoring, recommendation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from releasehealth.model import Action, Classification, Direction, MetricKind, MetricSpec, Policy, Series, Tolerance
from releasehealth.scoring.judging import judge, recommend, score
from releasehealth.scoring.latency import (
    classify_quantile,
    histogram_quantile,
    smooth_quantile,
)
from releasehealth.scoring.ratio import classify_ratio
from releasehealth.verdicts import MetricInput, MetricVerdict, Summary

ALPHA = 0.005
ERROR_RATIO = MetricSpec(name="error_ratio", kind=MetricKind.RATIO, queries={"numerator": "errors", "denominator": "requests"}, unit="ratio", tolerance=Tolerance(0.2, 0.001), critical=True, group="errors", min_count=200)
P95 = MetricSpec(name="p95_latency", kind=MetricKind.HISTOGRAM_QUANTILE, queries={"buckets": "latency_buckets"}, unit="seconds", tolerance=Tolerance(0.2, 0.005), group="latency", quantile=0.95, min_count=200)
BOUNDS = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf])


def _steps(n: int) -> np.ndarray:
    return 1_800_000_000 + 60.0 * np.arange(1, n + 1)


def _ratio_side(errors: list[float], requests: list[float]) -> dict[str, list[Series]]:
    steps = _steps(len(requests))
    return {
        "numerator": [Series({}, steps, np.array(errors, dtype=float))],
        "denominator": [Series({}, steps, np.array(requests, dtype=float))],
    }


# ---- ratios ---------------------------------------------------------------------------------------


def test_error_ratio_high_when_candidate_triples() -> None:
    verdict = classify_ratio(ERROR_RATIO, _ratio_side([5] * 30, [1000] * 30), _ratio_side([15] * 30, [1000] * 30), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert verdict.reason.startswith("error_ratio HIGH: 1.50% vs 0.50% (+200.0%)")
    assert "tolerance +20% and +0.10 pp" in verdict.reason and verdict.reason.endswith("; critical")


def test_error_ratio_passes_when_identical() -> None:
    side = _ratio_side([5, 6, 4] * 10, [1000] * 30)
    assert classify_ratio(ERROR_RATIO, side, side, ALPHA).classification is Classification.PASS


def test_zero_error_baseline_still_catches_new_errors() -> None:
    # Kayenta's blind spot: [0,1,2,1,0,0]-like errors against a baseline of zeros.
    verdict = classify_ratio(ERROR_RATIO, _ratio_side([0] * 30, [1000] * 30), _ratio_side([0, 10, 20, 10, 0, 0] * 5, [1000] * 30), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert "(new, from zero)" in verdict.reason


def test_no_errors_anywhere_passes_with_a_reason() -> None:
    verdict = classify_ratio(ERROR_RATIO, _ratio_side([0] * 10, [500] * 10), _ratio_side([0] * 10, [500] * 10), ALPHA)
    assert verdict.classification is Classification.PASS and "no errors in either window" in verdict.reason


def test_low_traffic_is_nodata_not_a_pass() -> None:
    verdict = classify_ratio(ERROR_RATIO, _ratio_side([0] * 10, [10] * 10), _ratio_side([5] * 10, [10] * 10), ALPHA)
    assert verdict.classification is Classification.NODATA
    assert "baseline 100 and candidate 100 requests, at least 200 needed" in verdict.reason


def test_a_rise_within_tolerance_passes_even_when_credible() -> None:
    verdict = classify_ratio(ERROR_RATIO, _ratio_side([100] * 30, [10000] * 30), _ratio_side([110] * 30, [10000] * 30), ALPHA)
    assert verdict.classification is Classification.PASS and "within tolerance" in verdict.reason


def test_a_credible_rise_just_beyond_tolerance_fails() -> None:
    # +25% against a +20% tolerance on 300,000 requests a window: the rise is certain and beyond the
    # tolerance, though not credibly beyond it (testing "change <= 20%" would pass it).
    verdict = classify_ratio(ERROR_RATIO, _ratio_side([100] * 30, [10000] * 30), _ratio_side([125] * 30, [10000] * 30), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert "beyond tolerance +20% and +0.10 pp; credible (p=" in verdict.reason


def test_a_big_rise_on_few_errors_is_not_credible() -> None:
    verdict = classify_ratio(ERROR_RATIO, _ratio_side([1] + [0] * 9, [100] * 10), _ratio_side([3] + [0] * 9, [100] * 10), ALPHA)
    assert verdict.classification is Classification.PASS and "not credible" in verdict.reason


def test_bursty_errors_are_judged_with_overdispersion() -> None:
    # Same totals (+50%), once spread evenly and once in bursts: only the even spread is credible.
    baseline = _ratio_side([50] * 30, [10000] * 30)
    even = classify_ratio(ERROR_RATIO, baseline, _ratio_side([75] * 30, [10000] * 30), ALPHA)
    bursty = classify_ratio(ERROR_RATIO, _ratio_side([0, 0, 150] * 10, [10000] * 30), _ratio_side([0, 0, 225] * 10, [10000] * 30), ALPHA)
    assert even.classification is Classification.HIGH
    assert bursty.classification is Classification.PASS


def test_a_drop_is_harmless_for_an_increase_metric() -> None:
    verdict = classify_ratio(ERROR_RATIO, _ratio_side([30] * 30, [1000] * 30), _ratio_side([5] * 30, [1000] * 30), ALPHA)
    assert verdict.classification is Classification.PASS and "harmless direction" in verdict.reason


def test_a_drop_fails_a_decrease_metric_as_low() -> None:
    spec = MetricSpec(name="success", kind=MetricKind.RATIO, queries={}, unit="ratio", direction=Direction.DECREASE, tolerance=Tolerance(0.05, 0.0))
    verdict = classify_ratio(spec, _ratio_side([990] * 30, [1000] * 30), _ratio_side([800] * 30, [1000] * 30), ALPHA)
    assert verdict.classification is Classification.LOW


# ---- histograms -----------------------------------------------------------------------------------


def test_histogram_quantile_interpolates_linearly_as_prometheus() -> None:
    bounds = np.array([0.1, 0.2, math.inf])
    assert histogram_quantile(0.5, bounds, np.array([0, 100, 100])) == pytest.approx(0.15)
    assert histogram_quantile(0.95, bounds, np.array([50, 90, 100])) == pytest.approx(0.2)  # +Inf: highest finite
    assert histogram_quantile(0.5, bounds, np.array([0, 0, 0])) is None


def _lognormal_buckets(median: float, sigma: float, count: float) -> np.ndarray:
    return count * norm.cdf((np.log(BOUNDS) - math.log(median)) / sigma)


@pytest.mark.parametrize("median", [0.03, 0.05, 0.08, 0.12])
def test_smooth_quantile_recovers_a_lognormal_p95(median: float) -> None:
    truth = median * math.exp(norm.ppf(0.95) * 0.5)
    assert smooth_quantile(0.95, BOUNDS, _lognormal_buckets(median, 0.5, 100_000)) == pytest.approx(truth, rel=0.01)


def _bucket_side(median: float, steps: int = 30, per_step: float = 2000) -> dict[str, list[Series]]:
    t = _steps(steps)
    rng = np.random.default_rng(1)
    medians = median * rng.lognormal(0, 0.03, steps)
    counts = np.array([np.round(_lognormal_buckets(m, 0.5, per_step)) for m in medians])
    labels = [str(b) if math.isfinite(b) else "+Inf" for b in BOUNDS]
    return {"buckets": [Series({"le": le}, t, counts[:, i]) for i, le in enumerate(labels)]}


def test_p95_high_when_latency_rises_by_half() -> None:
    verdict = classify_quantile(P95, _bucket_side(0.06), _bucket_side(0.09), ALPHA)
    assert verdict.classification is Classification.HIGH
    assert verdict.change == pytest.approx(0.5, abs=0.05)
    assert "p95_latency HIGH" in verdict.reason and "blocks" in verdict.reason


def test_p95_passes_a_small_drift() -> None:
    assert classify_quantile(P95, _bucket_side(0.06), _bucket_side(0.063), ALPHA).classification is Classification.PASS


def test_p95_without_traffic_is_nodata() -> None:
    verdict = classify_quantile(P95, _bucket_side(0.06, per_step=2), _bucket_side(0.06), ALPHA)
    assert verdict.classification is Classification.NODATA


# ---- score and recommendation ------------------------------------------------------------------------


def _verdict(metric: str, classification: Classification, critical: bool = False, group: str = "g") -> MetricVerdict:
    empty = Summary(None, 0)
    return MetricVerdict(metric=metric, classification=classification, reason=f"{metric} {classification.value}: because", baseline=empty, candidate=empty, critical=critical, group=group)


def _recommend(*verdicts: MetricVerdict, weights: dict[str, float] | None = None) -> Action:
    policy = Policy()
    release = score(list(verdicts), weights or {}, policy.group_weights)
    return recommend(release, policy, "1.0", "1.1").action


def test_all_pass_promotes() -> None:
    assert _recommend(_verdict("a", Classification.PASS), _verdict("b", Classification.PASS)) is Action.PROMOTE


def test_a_failing_critical_metric_rolls_back_whatever_the_score() -> None:
    verdicts = [_verdict(str(i), Classification.PASS) for i in range(20)] + [_verdict("c", Classification.HIGH, critical=True)]
    assert _recommend(*verdicts) is Action.ROLLBACK


def test_half_the_metrics_without_data_is_inconclusive() -> None:
    assert _recommend(_verdict("a", Classification.PASS), _verdict("b", Classification.NODATA)) is Action.INCONCLUSIVE


def test_missing_data_never_promotes() -> None:
    verdicts = [_verdict("a", Classification.PASS), _verdict("b", Classification.PASS), _verdict("c", Classification.ERROR)]
    assert _recommend(*verdicts) is Action.HOLD


def test_score_between_thresholds_holds_and_below_rolls_back() -> None:
    passes = [_verdict(str(i), Classification.PASS) for i in range(9)]
    assert _recommend(*passes, _verdict("x", Classification.HIGH)) is Action.HOLD  # 90
    assert _recommend(*passes[:2], _verdict("x", Classification.HIGH)) is Action.ROLLBACK  # 67


def test_groups_count_equally_by_default_and_by_their_configured_weight() -> None:
    verdicts = [
        _verdict("a", Classification.PASS, group="errors"),
        _verdict("b", Classification.HIGH, group="latency"),
        _verdict("c", Classification.PASS, group="logs"),
        _verdict("d", Classification.PASS, group="logs"),
    ]
    assert score(verdicts, {}).score == pytest.approx(200 / 3)
    assert score(verdicts, {}, {"latency": 2.0}).score == pytest.approx(50.0)


def test_metric_weights_apply_within_a_group() -> None:
    verdicts = [_verdict("a", Classification.PASS), _verdict("b", Classification.HIGH)]
    assert score(verdicts, {"a": 3.0, "b": 1.0}).score == pytest.approx(75.0)


def test_a_fetch_error_becomes_an_error_verdict_with_its_reason() -> None:
    inputs = [MetricInput(spec=ERROR_RATIO, baseline={}, candidate={}, error="query 'errors' failed: http://p:9090: unreachable")]
    release, recommendation = judge(inputs, Policy(), "1.0", "1.1")
    assert release.verdicts[0].classification is Classification.ERROR
    assert "unreachable" in release.verdicts[0].reason
    assert recommendation.action is Action.INCONCLUSIVE


def test_a_numerator_without_points_counts_as_zero() -> None:
    empty = {"numerator": [Series({}, np.array([]), np.array([]))], "denominator": _ratio_side([0], [1000] * 30)["denominator"]}
    verdict = classify_ratio(ERROR_RATIO, empty, empty, ALPHA)
    assert verdict.classification is Classification.PASS and "no errors in either window" in verdict.reason


# ---- multiple testing --------------------------------------------------------------------------------


def test_holm_adjusts_step_down() -> None:
    from releasehealth.scoring.multiple import holm_adjusted

    assert holm_adjusted([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjusted([0.5]) == [0.5]


def test_alpha_spent_over_all_checks_adds_up_to_alpha() -> None:
    from releasehealth.scoring.multiple import check_alpha, spending

    checks = [check_alpha(0.01, k / 6, 1 / 6) for k in range(1, 7)]
    assert sum(checks) == pytest.approx(0.01)
    assert checks == sorted(checks)  # early checks spend little
    assert check_alpha(0.01, 1.0, None) == 0.01 and spending(0.01, 0.0) == 0.0


def _fixed(name: str, p_value: float | None, muted: bool = False, critical: bool = False) -> MetricInput:
    spec = MetricSpec(name=name, kind=MetricKind.RATIO, queries={}, unit="ratio", critical=critical, muted=muted)
    return MetricInput(spec=spec, baseline={"p": [Series({}, np.array([1.0]), np.array([p_value if p_value is not None else np.nan]))]}, candidate={})


@pytest.fixture
def p_value_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in classifier for RATIO that fails a metric exactly when its given p-value is below alpha."""
    from releasehealth.scoring import judging as judge_module

    def classify(item: MetricInput, alpha: float, _: float) -> MetricVerdict:
        p = float(item.baseline["p"][0].values[0])
        if np.isnan(p):
            return MetricVerdict(metric=item.spec.name, classification=Classification.NODATA, reason="no data", baseline=Summary(None, 0), candidate=Summary(None, 0))
        label = Classification.HIGH if p < alpha else Classification.PASS
        return MetricVerdict(metric=item.spec.name, classification=label, reason=f"p={p}", baseline=Summary(1, 1), candidate=Summary(2, 1), p_value=p, critical=item.spec.critical)

    monkeypatch.setitem(judge_module.CLASSIFIERS, MetricKind.RATIO, classify)


def test_holm_passes_what_bonferroni_misses(p_value_classifier: None) -> None:
    from releasehealth.scoring.judging import classify

    verdicts = classify([_fixed("a", 1e-6), _fixed("b", 0.007)], alpha=0.01)
    # Bonferroni would hold b to 0.005; Holm, after a is rejected, to 0.01.
    assert [v.classification for v in verdicts] == [Classification.HIGH, Classification.HIGH]
    assert classify([_fixed("a", 0.5), _fixed("b", 0.007)], alpha=0.01)[1].classification is Classification.PASS


def test_a_muted_metric_takes_no_alpha_and_cannot_fail_the_release(p_value_classifier: None) -> None:
    from releasehealth.scoring.judging import classify

    verdicts = classify([_fixed("a", 0.008), _fixed("b", 1e-9, muted=True, critical=True)], alpha=0.01)
    assert verdicts[0].classification is Classification.HIGH  # a alone takes all of alpha
    assert verdicts[1].muted and verdicts[1].classification is Classification.HIGH
    release = score(verdicts, {})
    assert [g.group for g in release.groups] == ["default"]
    recommendation = recommend(release, Policy(), "1.0", "1.1")
    assert "critical" not in recommendation.reason


def test_an_early_check_during_a_rollout_spends_less_alpha(p_value_classifier: None) -> None:
    from datetime import timedelta

    from releasehealth.scoring.judging import release_alpha

    policy = Policy(alpha=0.01, check_interval=timedelta(minutes=5))
    assert release_alpha(policy, 1 / 3) < release_alpha(policy, 1.0) < 0.01
    assert release_alpha(Policy(alpha=0.01), 0.5) == 0.01
    _, early = judge([_fixed("a", 1e-4)], policy, "1.0", "1.1", information=1 / 3)
    _, late = judge([_fixed("a", 1e-4)], policy, "1.0", "1.1", information=1.0)
    assert early.action is Action.PROMOTE and late.action is Action.ROLLBACK


# ---- the generic preset's gauges in the score ------------------------------------------------------------


def _generic_specs() -> list[MetricSpec]:
    from releasehealth.config import load_preset, log_metrics

    return load_preset("generic").metrics + log_metrics()


def _generic_weights() -> dict[str, float]:
    return {s.name: s.weight for s in _generic_specs()}


def _generic_verdicts(*failing: str) -> list[MetricVerdict]:
    """A verdict per metric of the generic preset and the logs group: `failing` HIGH, the rest PASS."""
    import dataclasses

    return [
        dataclasses.replace(
            _verdict(s.name, Classification.HIGH if s.name in failing else Classification.PASS, s.critical, s.group),
            muted=s.muted,
        )
        for s in _generic_specs()
    ]


def test_a_latency_regression_still_rolls_back_beside_the_saturation_gauges() -> None:
    # The saturation group weighs half: a fourth equally weighted group would lift one failing group to
    # exactly the marginal score (75), and a slowdown would only hold.
    assert _recommend(*_generic_verdicts("p50_latency", "p95_latency"), weights=_generic_weights()) is Action.ROLLBACK
    # A tail-only slowdown (p95 up, the median not) fails half the latency group: it holds.
    assert _recommend(*_generic_verdicts("p95_latency"), weights=_generic_weights()) is Action.HOLD
    # p99 ships muted: failing alone, it changes nothing.
    assert _recommend(*_generic_verdicts("p99_latency"), weights=_generic_weights()) is Action.PROMOTE


def test_the_saturation_gauges_are_tested_in_a_family_of_their_own() -> None:
    from releasehealth.scoring.judging import hold_only, metric_alpha

    specs, policy = _generic_specs(), Policy()
    assert hold_only(specs, policy) == {"memory", "cpu_per_request"}
    # The error ratio shares alpha with p50, p95, the tail and the two log metrics only: the gauges cost it
    # nothing; they share a false-HOLD budget of their own.
    assert metric_alpha(0.01, specs, policy, "error_ratio", policy.hold_alpha) == pytest.approx(0.01 / 6)
    assert metric_alpha(0.01, specs, policy, "memory", policy.hold_alpha) == pytest.approx(0.05 / 2)
    # Four groups of equal weight: one failing non-critical group scores 75 and only holds, two would
    # reach 50; the latency group holds a critical metric (the tail), so saturation is the hold-only one.
    assert hold_only(specs, Policy(group_weights={})) == {"memory", "cpu_per_request"}


@pytest.mark.parametrize("gauge", ["memory", "cpu_per_request"])
def test_a_counted_gauge_failing_alone_holds_the_release(gauge: str) -> None:
    assert _recommend(*_generic_verdicts(gauge), weights=_generic_weights()) is Action.HOLD
