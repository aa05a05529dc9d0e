"""Evaluations as JSON-ready dicts and back: the CLI's --format json, the API, the dashboard's download and
the history store (whose documents rebuild an Evaluation for a report long after the sources forgot).

`evaluation_to_dict(evaluation_from_dict(d)) == d` for every document this module writes. The document is
a summary, not the whole evaluation: per-step series are kept to 6 significant digits, a log window's
per-step counts as totals per level, a verdict's queries as their text.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from releasehealth.model import (
    Action,
    BaselinePolicy,
    Classification,
    Deploy,
    DeploySourceKind,
    LogWindowData,
    Query,
    Series,
    SignatureStatus,
    Tolerance,
    Window,
)
from releasehealth.verdicts import (
    Evaluation,
    GroupScore,
    LogEvidence,
    LogSignature,
    MetricVerdict,
    Recommendation,
    ReleaseScore,
    Summary,
)

Document = dict[str, Any]


def evaluation_to_dict(evaluation: Evaluation) -> Document:
    score = evaluation.score
    r = evaluation.recommendation
    return {
        "service": evaluation.service,
        "candidate": _deploy(evaluation.candidate),
        "baseline": _deploy(evaluation.baseline),
        "baseline_policy": evaluation.policy.value,
        "baseline_description": evaluation.baseline_description,
        "candidate_window": _window(evaluation.candidate_window),
        "baseline_window": _window(evaluation.baseline_window),
        "recommendation": {"action": r.action.value, "reason": r.reason, "baseline": r.baseline, "candidate": r.candidate},
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


def evaluation_from_dict(document: Document) -> Evaluation:
    """The Evaluation a stored document describes (as much of it as the document keeps). Raises KeyError
    or ValueError on a document this module did not write."""
    candidate, baseline = _read_deploy(document["service"], document.get("candidate")), _read_deploy(
        document["service"], document.get("baseline")
    )
    r = document["recommendation"]
    recommendation = Recommendation(
        Action(r["action"]), r["reason"],
        r.get("baseline") or (baseline.version if baseline else "(none)"),
        r.get("candidate") or (candidate.version if candidate else "(none)"),
    )
    verdicts = tuple(_read_verdict(v) for v in document.get("verdicts") or ())
    has_score = document.get("score") is not None or document.get("groups") or verdicts
    score = ReleaseScore(
        _read_number(document.get("score")),
        tuple(GroupScore(g["group"], _read_number(g["score"]), g["weight"]) for g in document.get("groups") or ()),
        verdicts,
    ) if has_score else None
    return Evaluation(
        service=document["service"], candidate=candidate, baseline=baseline,
        policy=BaselinePolicy(document["baseline_policy"]), recommendation=recommendation,
        evaluated_at=datetime.fromisoformat(document["evaluated_at"]),
        candidate_window=_read_window(document.get("candidate_window")),
        baseline_window=_read_window(document.get("baseline_window")),
        score=score, queries=tuple(_read_query(q) for q in document.get("queries") or ()),
        logs=_read_logs(document.get("logs")), notes=tuple(document.get("notes") or ()),
        baseline_description=document.get("baseline_description") or "",
    )


# ---- writing ------------------------------------------------------------------------------------------


def _logs(evidence: LogEvidence | None) -> Document | None:
    if evidence is None:
        return None
    return {
        "error": evidence.error or None,
        "rate_basis": evidence.rate_basis,
        "baseline": _log_window(evidence.baseline),
        "candidate": _log_window(evidence.candidate),
        "signatures": [_signature(s) for s in evidence.signatures],
    }


def _log_window(data: LogWindowData | None) -> Document | None:
    if data is None:
        return None
    return {
        "lines": {level: data.total(level) for level in sorted(data.levels)},
        "error_types": dict(sorted(data.error_types.items(), key=lambda item: -item[1])),
        "sampled": data.sampled,
        "sampled_from": data.sampled_from,
        "skipped": data.skipped,
        "truncated": data.truncated,
        "info_sampled_from": data.info_sampled_from,
    }


def _signature(signature: LogSignature) -> Document:
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
        "failing": signature.failing,
        "not_a_risk": signature.ignored,
        "examples": list(signature.examples),
        "replaced_by": signature.replaced_by or None,
        "in_history": signature.in_history,
        "caller": signature.caller or None,
        "origin": signature.origin or None,
    }


def _verdict(verdict: MetricVerdict) -> Document:
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
        "alpha": _number(verdict.alpha),
        "test": verdict.test,
        "tolerance": {"relative": tolerance.relative, "absolute": tolerance.absolute} if tolerance else None,
        "critical": verdict.critical,
        "muted": verdict.muted,
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


def _summary(summary: Summary) -> Document:
    return {"value": _number(summary.value), "count": _number(summary.count), "detail": summary.detail, "invalid": summary.invalid}


def _query(query: Query) -> Document:
    return {
        "template": query.template,
        "promql": query.text,
        "source": query.source,
        "start": _time(query.start),
        "end": _time(query.end),
        "step_seconds": query.step.total_seconds() if isinstance(query.step, timedelta) else None,
        "instant": query.step is None,
    }


def _deploy(deploy: Deploy | None) -> Document | None:
    if deploy is None:
        return None
    return {
        "version": deploy.version,
        "deployed_at": _time(deploy.started_at),
        "last_seen": _time(deploy.last_seen),
        "source": deploy.source.value,
        "commit": deploy.commit or None,
    }


def _window(window: Window | None) -> Document | None:
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


# ---- reading ------------------------------------------------------------------------------------------


def _read_number(value: float | str | None) -> float | None:
    if value is None:
        return None
    return float(value) if isinstance(value, str) else value


def _read_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _read_deploy(service: str, data: Document | None) -> Deploy | None:
    if data is None:
        return None
    started = datetime.fromisoformat(data["deployed_at"])
    return Deploy(service, data["version"], started, DeploySourceKind(data["source"]), _read_time(data.get("last_seen")),
                  data.get("commit") or "")


def _read_window(data: Document | None) -> Window | None:
    if data is None:
        return None
    return Window(datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]), timedelta(seconds=data["step_seconds"]))


def _read_query(data: Document) -> Query:
    step = None if data.get("instant") or data.get("step_seconds") is None else timedelta(seconds=data["step_seconds"])
    return Query(
        template=data["template"], text=data["promql"], source=data["source"], start=_read_time(data.get("start")),
        end=_read_time(data.get("end")), step=step,
    )


def _read_series(points: list[list[float | None]]) -> Series | None:
    if not points:
        return None
    return Series({}, np.array([p[0] for p in points], dtype=np.float64),
                  np.array([np.nan if p[1] is None else p[1] for p in points], dtype=np.float64))


def _read_summary(data: Document) -> Summary:
    count = _read_number(data.get("count"))
    invalid = _read_number(data.get("invalid"))  # absent from documents stored before it was kept
    return Summary(_read_number(data.get("value")), 0.0 if count is None else count, data.get("detail") or "", int(invalid or 0))


def _read_verdict(data: Document) -> MetricVerdict:
    tolerance = data.get("tolerance")
    series = data.get("series") or {}
    return MetricVerdict(
        metric=data["metric"], classification=Classification(data["classification"]), reason=data["reason"],
        baseline=_read_summary(data["baseline"]), candidate=_read_summary(data["candidate"]), unit=data.get("unit") or "",
        change=_read_number(data.get("change")), p_value=_read_number(data.get("p_value")), test=data.get("test") or "",
        tolerance=Tolerance(tolerance["relative"], tolerance["absolute"]) if tolerance else None,
        critical=bool(data.get("critical")), group=data.get("group") or "default", muted=bool(data.get("muted")),
        alpha=_read_number(data.get("alpha")), queries=tuple(Query(template="", text=text) for text in data.get("queries") or ()),
        baseline_series=_read_series(series.get("baseline") or []),
        candidate_series=_read_series(series.get("candidate") or []),
    )


def _read_logs(data: Document | None) -> LogEvidence | None:
    if data is None:
        return None
    return LogEvidence(
        _read_log_window(data.get("baseline")), _read_log_window(data.get("candidate")),
        tuple(_read_signature(s) for s in data.get("signatures") or ()), data.get("rate_basis") or "requests",
        error=data.get("error") or "",
    )


def _read_log_window(data: Document | None) -> LogWindowData | None:
    """A log window as the document keeps it: each level's total as one point, the sample's sizes."""
    if data is None:
        return None
    levels = {
        level: Series({"level": level}, np.array([0.0]), np.array([float(total)])) for level, total in data["lines"].items()
    }
    return LogWindowData(
        levels, dict(data.get("error_types") or {}), (), int(data.get("sampled_from") or 0), int(data.get("skipped") or 0),
        int(data.get("truncated") or 0), sampled_count=int(data.get("sampled") or 0),
        info_sampled_from=int(data.get("info_sampled_from") or 0),
    )


def _read_signature(data: Document) -> LogSignature:
    return LogSignature(
        template=data["template"], level=data["level"], error_type=data.get("error_type") or "",
        status=SignatureStatus(data["status"]), baseline_count=_read_number(data["baseline_count"]) or 0.0,
        candidate_count=_read_number(data["candidate_count"]) or 0.0, baseline_rate=_read_number(data.get("baseline_rate")),
        candidate_rate=_read_number(data.get("candidate_rate")), examples=tuple(data.get("examples") or ()),
        ignored=bool(data.get("not_a_risk")), p_value=_read_number(data.get("p_value")),
        credible=bool(data.get("credible")), failing=bool(data.get("failing")), replaced_by=data.get("replaced_by") or "",
        in_history=bool(data.get("in_history")), origin=data.get("origin") or "",
        caller=data.get("caller") or "",
    )
