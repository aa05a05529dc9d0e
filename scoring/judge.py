"""The judge: classify each metric, score the release, recommend an action. Each step a pure function.

Multiple testing: every metric is tested at alpha / m (Bonferroni over the m metrics judged), so the
chance that any of a release's metrics raises a false alarm stays below alpha however many metrics a
service has (Dunn, "Multiple comparisons among means", JASA 56, 1961). Repeated evaluations during a
rollout are not yet corrected for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from releasehealth.model import (
    Action,
    Classification,
    GroupScore,
    MetricInput,
    MetricKind,
    MetricVerdict,
    Policy,
    Recommendation,
    ReleaseScore,
    Summary,
)
from scoring.latency import classify_quantile
from scoring.logs import classify_signatures
from scoring.ratio import classify_ratio

Classifier = Callable[[MetricInput, float], MetricVerdict]
CLASSIFIERS: dict[MetricKind, Classifier] = {
    MetricKind.RATIO: lambda i, alpha: classify_ratio(i.spec, i.baseline, i.candidate, alpha),
    MetricKind.LOG_RATE: lambda i, alpha: classify_ratio(i.spec, i.baseline, i.candidate, alpha),
    MetricKind.HISTOGRAM_QUANTILE: lambda i, alpha: classify_quantile(i.spec, i.baseline, i.candidate, alpha),
    MetricKind.LOG_SIGNATURES: lambda i, _: classify_signatures(i.spec, i.signatures, i.baseline, i.candidate),
}
FAILING = (Classification.HIGH, Classification.LOW)
MISSING = (Classification.NODATA, Classification.ERROR)


def judge(inputs: Sequence[MetricInput], policy: Policy, baseline: str, candidate: str) -> tuple[ReleaseScore, Recommendation]:
    """Return the release's score and recommendation from its metrics' inputs."""
    verdicts = classify(inputs, policy.alpha)
    release_score = score(verdicts, {i.spec.name: i.spec.weight for i in inputs}, policy.group_weights)
    return release_score, recommend(release_score, policy, baseline, candidate)


def per_metric_alpha(alpha: float, metrics: int) -> float:
    """Bonferroni: each of `metrics` tests gets alpha / metrics."""
    return alpha / max(1, metrics)


def classify(inputs: Sequence[MetricInput], alpha: float) -> list[MetricVerdict]:
    """Return one verdict per metric; a fetch error becomes an ERROR verdict, never an exception."""
    return [_classify_one(item, per_metric_alpha(alpha, len(inputs))) for item in inputs]


def _classify_one(item: MetricInput, alpha: float) -> MetricVerdict:
    spec = item.spec
    if item.error:
        empty = Summary(None, 0.0)
        return MetricVerdict(
            spec.name, Classification.ERROR, f"{spec.name} ERROR: {item.error}", empty, empty, unit=spec.unit,
            critical=spec.critical, group=spec.group, tolerance=spec.tolerance, queries=item.queries,
        )
    verdict = CLASSIFIERS[spec.kind](item, alpha)
    return dataclasses.replace(verdict, queries=item.queries)


def score(
    verdicts: Sequence[MetricVerdict], weights: Mapping[str, float], group_weights: Mapping[str, float] | None = None
) -> ReleaseScore:
    """Group score = 100 x the weighted share of its judged metrics that pass (NODATA and ERROR left out);
    release score = the mean of the group scores weighted by `group_weights` (1 for a group not named),
    so that errors, latency and logs count as signals of their own however many metrics each has.
    None if nothing was judged."""
    groups: dict[str, list[MetricVerdict]] = {}
    for verdict in verdicts:
        groups.setdefault(verdict.group, []).append(verdict)
    group_scores = []
    for name, members in groups.items():
        judged = [v for v in members if v.classification not in MISSING]
        total = sum(weights.get(v.metric, 1.0) for v in judged)
        passed = sum(weights.get(v.metric, 1.0) for v in judged if v.classification is Classification.PASS)
        value = 100.0 * passed / total if total else None
        group_scores.append(GroupScore(name, value, (group_weights or {}).get(name, 1.0)))
    scored = [g for g in group_scores if g.score is not None]
    total_weight = sum(g.weight for g in scored)
    release = sum(g.score * g.weight for g in scored) / total_weight if scored and total_weight else None
    return ReleaseScore(release, tuple(group_scores), tuple(verdicts))


def recommend(release: ReleaseScore, policy: Policy, baseline: str, candidate: str) -> Recommendation:
    """Critical failure -> ROLLBACK; half or more metrics unjudged -> INCONCLUSIVE; else by thresholds.
    Missing data never promotes: a passing score with any unjudged metric holds."""
    verdicts = release.verdicts
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
    if missing:
        return decide(
            Action.HOLD,
            f"score {value:.0f} passes but {len(missing)} of {len(verdicts)} metrics could not be judged: "
            + "; ".join(v.reason for v in missing),
        )
    return decide(Action.PROMOTE, f"score {value:.0f} >= {thresholds.pass_score:g}: all {len(verdicts)} metrics pass")
