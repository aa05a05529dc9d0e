"""The judge: classify each metric, score the release, recommend an action. Each step a pure function.

False ROLLBACKs are kept under alpha per release (see scoring.multiple): a check spends its share of
alpha (all of it when a release is judged once); the log-signature metric gets 1/m of it (it corrects
across its own signatures), and the other metrics share the rest through Holm's step-down procedure.
Metrics that cannot roll a release back however they fail (not critical, in groups whose weight, even
all failing together, keeps the score at or above the marginal threshold: by default the half-weight
"saturation" group) form a second family with an alpha of its own, policy.hold_alpha (0.05 by default):
they can only HOLD a release, so they spend a false-HOLD budget, not the false-ROLLBACK one, and adding a
gauge costs the error and latency tests no power. Any counted metric that fails holds the release at
least: the score decides between HOLD and ROLLBACK, never whether a failing metric is promoted. Muted metrics are judged and shown but take no alpha and count in neither
score nor recommendation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence

from releasehealth.model import Action, Classification, MetricKind, MetricSpec, Policy, Tolerance
from releasehealth.scoring.coverage import with_coverage
from releasehealth.scoring.gauge import classify_gauge
from releasehealth.scoring.kayenta import kayenta_judge
from releasehealth.scoring.latency import classify_quantile, classify_tail
from releasehealth.scoring.logs import classify_signatures
from releasehealth.scoring.multiple import check_alpha, holm_adjusted
from releasehealth.scoring.ratio import classify_ratio
from releasehealth.verdicts import GroupScore, MetricInput, MetricVerdict, Recommendation, ReleaseScore, Summary

Classifier = Callable[[MetricInput, float, float], MetricVerdict]  # (input, alpha, alpha of the interval shown)
CLASSIFIERS: dict[MetricKind, Classifier] = {
    MetricKind.RATIO: lambda i, alpha, ci: classify_ratio(i.spec, i.baseline, i.candidate, alpha, ci),
    MetricKind.LOG_RATE: lambda i, alpha, ci: classify_ratio(i.spec, i.baseline, i.candidate, alpha, ci),
    MetricKind.HISTOGRAM_QUANTILE: lambda i, alpha, ci: classify_quantile(i.spec, i.baseline, i.candidate, alpha, ci),
    MetricKind.HISTOGRAM_TAIL: lambda i, alpha, ci: classify_tail(i.spec, i.baseline, i.candidate, alpha, ci),
    MetricKind.LOG_SIGNATURES: lambda i, alpha, ci: classify_signatures(i.spec, i.samples, i.baseline, i.candidate, alpha),
    MetricKind.GAUGE: lambda i, alpha, ci: classify_gauge(i.spec, i.baseline, i.candidate, alpha, ci),
}
FAILING = (Classification.HIGH, Classification.LOW)
MISSING = (Classification.NODATA, Classification.ERROR)


def judge(
    inputs: Sequence[MetricInput], policy: Policy, baseline: str, candidate: str, information: float = 1.0
) -> tuple[ReleaseScore, Recommendation]:
    """Return the release's score and recommendation from its metrics' inputs; `information` is the share
    of the full window the candidate has been observed for (it sets the alpha a repeated check may spend).
    With policy.judge == "kayenta", Kayenta's classifier and scorer decide instead (scoring.kayenta).
    Either way, a metric with valid data on too few of its window's steps is NO DATA (scoring.coverage)."""
    inputs = [with_coverage(i, policy.min_window_share) for i in inputs]
    alpha = release_alpha(policy, information)
    if policy.judge == "kayenta":
        # Kayenta's weights are percentages, a group not named sharing what is left; ours are relative,
        # 1 for a group not named. Naming every group gives Kayenta the same proportions.
        groups = {i.spec.group for i in inputs if not i.spec.muted}
        weights = {g: policy.group_weights.get(g, 1.0) for g in groups}
        # Kayenta scores no log signatures; they are still compared, at the share ours would give them, and shown.
        specs = [i.spec for i in inputs]
        held = release_alpha(policy, information, policy.hold_alpha)
        signature_alpha = {
            s.name: metric_alpha(alpha, specs, policy, s.name, held) for s in specs if s.kind is MetricKind.LOG_SIGNATURES
        }
        return kayenta_judge(
            inputs, baseline, candidate, group_weights=weights, thresholds=policy.thresholds, signature_alpha=signature_alpha,
        )
    light = hold_only([i.spec for i in inputs], policy)
    verdicts = classify(inputs, alpha, light, release_alpha(policy, information, policy.hold_alpha))
    release_score = score(verdicts, {i.spec.name: i.spec.weight for i in inputs}, policy.group_weights)
    return release_score, recommend(release_score, policy, baseline, candidate)


def release_alpha(policy: Policy, information: float, budget: float | None = None) -> float:
    """The alpha this check of a release may spend of `budget` (default policy.alpha): all of it when
    releases are judged once."""
    interval = policy.check_interval / policy.window if policy.check_interval else None
    return check_alpha(policy.alpha if budget is None else budget, information, interval)


def per_metric_alpha(alpha: float, specs: Sequence[MetricSpec]) -> float:
    """Bonferroni share of one metric: alpha over the metrics that count (muted ones take none)."""
    return alpha / max(1, sum(not spec.muted for spec in specs))


def metric_alpha(
    alpha: float, specs: Sequence[MetricSpec], policy: Policy, name: str, hold_alpha: float | None = None
) -> float:
    """The Bonferroni share `classify` gives the metric `name` within its family (the hold-only family
    has `hold_alpha`, default `alpha`)."""
    light = hold_only(specs, policy)
    family = hold_alpha if name in light and hold_alpha is not None else alpha
    return per_metric_alpha(family, [s for s in specs if (s.name in light) == (name in light)])


def hold_only(specs: Sequence[MetricSpec], policy: Policy) -> frozenset[str]:
    """The counted metrics that cannot roll the release back: not critical, in the lightest groups whose
    joint failure (every other group passing) still scores at or above the marginal threshold."""
    specs = [s for s in specs if not s.muted]
    weights = {s.group: policy.group_weights.get(s.group, 1.0) for s in specs}
    critical = {s.group for s in specs if s.critical}
    total, failed, light = sum(weights.values()), 0.0, set()
    for group in sorted(set(weights) - critical, key=lambda g: (weights[g], g)):  # ties by name: stable
        if total and 100 * (total - failed - weights[group]) / total >= policy.thresholds.marginal_score:
            failed += weights[group]
            light.add(group)
    return frozenset(s.name for s in specs if s.group in light)


def metric_shares(specs: Sequence[MetricSpec], policy: Policy) -> dict[str, float]:
    """Each metric's Bonferroni share of its family's alpha when a release is judged once: the level it is
    held to before Holm's step-down (which can only pass more), and its share of the false-alarm budget."""
    alpha, held = release_alpha(policy, 1.0), release_alpha(policy, 1.0, policy.hold_alpha)
    return {spec.name: metric_alpha(alpha, specs, policy, spec.name, held) for spec in specs}


def reclassify(item: MetricInput, policy: Policy, alpha: float, tolerance: Tolerance) -> MetricVerdict:
    """The verdict on one metric as `judge` reaches it, at `alpha` and with another tolerance (calibration:
    which tolerance would have kept a metric quiet on the A/A pairs of a backtest)."""
    item = with_coverage(item, policy.min_window_share)
    return _classify_one(dataclasses.replace(item, spec=dataclasses.replace(item.spec, tolerance=tolerance)), alpha, alpha)


def classify(
    inputs: Sequence[MetricInput], alpha: float, hold_only: Collection[str] = (), hold_alpha: float | None = None
) -> list[MetricVerdict]:
    """Return one verdict per metric; a fetch error becomes an ERROR verdict, never an exception.

    The metrics named in `hold_only` form a family of their own with `hold_alpha` (default `alpha`), the
    others another with `alpha`. Within a family every metric is first judged at its Bonferroni share;
    Holm's procedure then also passes, at the level the Holm family holds, the metrics whose adjusted
    p-value clears it.
    """
    verdicts: list[MetricVerdict | None] = [None] * len(inputs)
    families: tuple[tuple[Callable[[str], bool], float], ...] = (
        (lambda name: name not in hold_only, alpha), (lambda name: name in hold_only, alpha if hold_alpha is None else hold_alpha),
    )
    for in_family, budget in families:
        members = [k for k, item in enumerate(inputs) if in_family(item.spec.name)]
        for k, verdict in zip(members, _classify_family([inputs[k] for k in members], budget), strict=True):
            verdicts[k] = verdict
    return [v for v in verdicts if v is not None]


def _classify_family(inputs: Sequence[MetricInput], alpha: float) -> list[MetricVerdict]:
    share = per_metric_alpha(alpha, [item.spec for item in inputs])
    verdicts = [_classify_one(item, share, share) for item in inputs]
    family = [  # (index, p-value) of each metric Holm's procedure ranks
        (k, verdict.p_value) for k, (item, verdict) in enumerate(zip(inputs, verdicts, strict=True))
        if not item.spec.muted and item.spec.kind is not MetricKind.LOG_SIGNATURES and verdict.p_value is not None
    ]
    level = share * len(family)
    adjusted = holm_adjusted([p_value for _, p_value in family])
    for (k, p_value), p_adjusted in zip(family, adjusted, strict=True):
        if p_adjusted < level and p_value >= share:
            verdicts[k] = _classify_one(inputs[k], level, share)  # p <= adjusted < level: credible
        verdicts[k] = dataclasses.replace(verdicts[k], alpha=level)
    return verdicts


def _classify_one(item: MetricInput, alpha: float, ci_alpha: float) -> MetricVerdict:
    spec = item.spec
    if item.error or item.absent:
        empty = Summary(None, 0.0)
        label, why = (Classification.ERROR, f"{spec.name} ERROR: {item.error}") if item.error else (
            Classification.NODATA, f"{spec.name} {item.absent}"
        )
        return MetricVerdict(
            metric=spec.name, classification=label, reason=why, baseline=empty, candidate=empty, unit=spec.unit,
            critical=spec.critical, group=spec.group, muted=spec.muted, tolerance=spec.tolerance, queries=item.queries,
        )
    verdict = CLASSIFIERS[spec.kind](item, alpha, ci_alpha)
    return dataclasses.replace(verdict, queries=item.queries, muted=spec.muted, alpha=alpha)


def score(
    verdicts: Sequence[MetricVerdict], weights: Mapping[str, float], group_weights: Mapping[str, float] | None = None
) -> ReleaseScore:
    """Group score = 100 x the weighted share of its judged metrics that pass (NODATA and ERROR left out);
    release score = the mean of the group scores weighted by `group_weights` (1 for a group not named),
    so that errors, latency and logs count as signals of their own however many metrics each has.
    None if nothing was judged."""
    groups: dict[str, list[MetricVerdict]] = {}
    for verdict in (v for v in verdicts if not v.muted):
        groups.setdefault(verdict.group, []).append(verdict)
    group_scores = []
    for name, members in groups.items():
        judged = [v for v in members if v.classification not in MISSING]
        total = sum(weights.get(v.metric, 1.0) for v in judged)
        passed = sum(weights.get(v.metric, 1.0) for v in judged if v.classification is Classification.PASS)
        value = 100.0 * passed / total if total else None
        group_scores.append(GroupScore(name, value, (group_weights or {}).get(name, 1.0)))
    scored = [(g.score, g.weight) for g in group_scores if g.score is not None]
    total_weight = sum(weight for _, weight in scored)
    release = sum(value * weight for value, weight in scored) / total_weight if scored and total_weight else None
    return ReleaseScore(release, tuple(group_scores), tuple(verdicts))


def recommend(release: ReleaseScore, policy: Policy, baseline: str, candidate: str) -> Recommendation:
    """Critical failure -> ROLLBACK; half or more metrics unjudged -> INCONCLUSIVE; else by thresholds.
    Missing data never promotes: a passing score with any unjudged metric holds."""
    verdicts = [v for v in release.verdicts if not v.muted]
    failing = [v for v in verdicts if v.classification in FAILING]
    missing = [v for v in verdicts if v.classification in MISSING]
    critical = [v for v in failing if v.critical]
    thresholds = policy.thresholds

    def decide(action: Action, reason: str) -> Recommendation:
        return Recommendation(action, reason, baseline, candidate)

    if critical:
        return decide(Action.ROLLBACK, "critical metric failed: " + "; ".join(v.reason for v in critical))
    if not verdicts or len(missing) * 2 >= len(verdicts) or release.score is None:
        return decide(
            Action.INCONCLUSIVE,
            f"{len(missing)} of {len(verdicts)} metrics could not be judged: " + "; ".join(v.reason for v in missing),
        )
    value = release.score
    if value < thresholds.marginal_score:
        return decide(
            Action.ROLLBACK,
            f"score {value:.0f} is below the marginal threshold {thresholds.marginal_score:g}: "
            + "; ".join(v.reason for v in failing),
        )
    if value < thresholds.pass_score:
        return decide(
            Action.HOLD,
            f"score {value:.0f} is between the marginal ({thresholds.marginal_score:g}) and pass "
            f"({thresholds.pass_score:g}) thresholds: " + "; ".join(v.reason for v in failing),
        )
    if failing:
        # However many metrics pass beside it, a credible regression beyond tolerance is never promoted:
        # a third saturation gauge must not dilute a leak into a PROMOTE.
        return decide(
            Action.HOLD,
            f"score {value:.0f} passes but {len(failing)} of {len(verdicts)} metrics failed: "
            + "; ".join(v.reason for v in failing),
        )
    if missing:
        return decide(
            Action.HOLD,
            f"score {value:.0f} passes but {len(missing)} of {len(verdicts)} metrics could not be judged: "
            + "; ".join(v.reason for v in missing),
        )
    return decide(Action.PROMOTE, f"score {value:.0f} >= {thresholds.pass_score:g}: all {len(verdicts)} metrics pass")
