"""Evaluations as JSON-ready dicts: the CLI's --format json, the dashboard's download, the API later."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from releasehealth.model import (
    Deploy,
    Evaluation,
    LogEvidence,
    LogSignature,
    LogWindowData,
    MetricVerdict,
    Query,
    Series,
    Summary,
    Window,
)


def evaluation_to_dict(evaluation: Evaluation) -> dict[str, Any]:
    score = evaluation.score
    return {
        "service": evaluation.service,
        "candidate": _deploy(evaluation.candidate),
        "baseline": _deploy(evaluation.baseline),
        "baseline_policy": evaluation.policy.value,
        "baseline_description": evaluation.baseline_description,
        "candidate_window": _window(evaluation.candidate_window),
        "baseline_window": _window(evaluation.baseline_window),
        "recommendation": {
            "action": evaluation.recommendation.action.value,
            "reason": evaluation.recommendation.reason,
        },
        "score": _number(score.score) if score else None,
        "groups": [
            {"group": g.group, "score": _number(g.score), "weight": g.weight} for g in (score.groups if score else ())
        ],
        "verdicts": [_verdict(v) for v in (score.verdicts if score else ())],
        "logs": _logs(evaluation.logs),
        "notes": list(evaluation.notes),
        "queries": [_query(q) for q in evaluation.queries],
        "evaluated_at": _time(evaluation.evaluated_at),
    }


def _logs(evidence: LogEvidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {
        "error": evidence.error or None,
        "rate_basis": evidence.rate_basis,
        "baseline": _log_window(evidence.baseline),
        "candidate": _log_window(evidence.candidate),
        "signatures": [_signature(s) for s in evidence.signatures],
    }


def _log_window(data: LogWindowData | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {
        "lines": {level: data.total(level) for level in sorted(data.levels)},
        "error_types": dict(sorted(data.error_types.items(), key=lambda item: -item[1])),
        "sampled": len(data.sample),
        "sampled_from": data.sampled_from,
        "skipped": data.skipped,
        "truncated": data.truncated,
    }


def _signature(signature: LogSignature) -> dict[str, Any]:
    return {
        "status": signature.status.value,
        "template": signature.template,
        "level": signature.level,
        "error_type": signature.error_type or None,
        "baseline_count": _number(signature.baseline_count),
        "candidate_count": _number(signature.candidate_count),
        "baseline_rate": _number(signature.baseline_rate),
        "candidate_rate": _number(signature.candidate_rate),
        "p_value": _number(signature.p_value),
        "credible": signature.credible,
        "not_a_risk": signature.ignored,
        "examples": list(signature.examples),
    }


def _verdict(verdict: MetricVerdict) -> dict[str, Any]:
    tolerance = verdict.tolerance
    return {
        "metric": verdict.metric,
        "classification": verdict.classification.value,
        "reason": verdict.reason,
        "baseline": _summary(verdict.baseline),
        "candidate": _summary(verdict.candidate),
        "unit": verdict.unit,
        "change": _number(verdict.change),
        "p_value": _number(verdict.p_value),
        "test": verdict.test,
        "tolerance": {"relative": tolerance.relative, "absolute": tolerance.absolute} if tolerance else None,
        "critical": verdict.critical,
        "group": verdict.group,
        "queries": [q.text for q in verdict.queries],
        # A compact snapshot of the per-step evidence, so a stored evaluation can be charted after the
        # sources have forgotten the data: [[unix seconds, value], ...], values to 6 significant digits.
        "series": {"baseline": _points(verdict.baseline_series), "candidate": _points(verdict.candidate_series)},
    }


def _points(series: Series | None) -> list[list[float | None]]:
    if series is None:
        return []
    return [
        [float(t), float(f"{v:.6g}") if math.isfinite(v) else None]
        for t, v in zip(series.timestamps.tolist(), series.values.tolist(), strict=True)
    ]


def _summary(summary: Summary) -> dict[str, Any]:
    return {"value": _number(summary.value), "count": _number(summary.count), "detail": summary.detail}


def _query(query: Query) -> dict[str, Any]:
    return {
        "template": query.template,
        "promql": query.text,
        "source": query.source,
        "start": _time(query.start),
        "end": _time(query.end),
        "step_seconds": query.step.total_seconds() if isinstance(query.step, timedelta) else None,
        "instant": query.step is None,
    }


def _deploy(deploy: Deploy | None) -> dict[str, Any] | None:
    if deploy is None:
        return None
    return {
        "version": deploy.version,
        "deployed_at": _time(deploy.started_at),
        "last_seen": _time(deploy.last_seen),
        "source": deploy.source.value,
        "commit": deploy.commit or None,
    }


def _window(window: Window | None) -> dict[str, Any] | None:
    if window is None:
        return None
    return {"start": _time(window.start), "end": _time(window.end), "step_seconds": window.step.total_seconds()}


def _time(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: infinity (a rise from zero) is written as the string "inf"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
