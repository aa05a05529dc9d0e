"""Pure builders of what the pages show: formatted values and DataFrames, no Streamlit."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from releasehealth.format import change_text, format_value
from releasehealth.model import Action, Evaluation, MetricVerdict, SourceHealth, Window

# Riskiest first: what the on-call engineer must look at before anything else.
RISK_ORDER = {Action.ROLLBACK: 0, Action.INCONCLUSIVE: 1, Action.HOLD: 2, Action.PROMOTE: 3}
NONE = "–"


def format_p_value(p_value: float | None) -> str:
    return NONE if p_value is None or math.isnan(p_value) else f"{p_value:.2g}"


def format_age(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def format_time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else NONE


def format_window(window: Window | None) -> str:
    if window is None:
        return NONE
    return f"{format_time(window.start)} → {window.end.astimezone(UTC):%H:%M} ({format_age(window.duration)})"


def format_score(evaluation: Evaluation) -> str:
    score = _score(evaluation)
    return NONE if score is None else f"{score:.0f}"


def safe_file_name(text: str) -> str:
    """A download name made only of harmless characters (versions are untrusted label values)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "evaluation"


def by_risk(evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    """ROLLBACK, INCONCLUSIVE, HOLD, PROMOTE; within an action the lowest score (or none) first."""
    return sorted(evaluations, key=_risk_key)


def _risk_key(evaluation: Evaluation) -> tuple[int, float, str]:
    score = _score(evaluation)
    return RISK_ORDER[evaluation.recommendation.action], -1.0 if score is None else score, evaluation.service


def _score(evaluation: Evaluation) -> float | None:
    return evaluation.score.score if evaluation.score else None


def verdicts(evaluation: Evaluation) -> tuple[MetricVerdict, ...]:
    return evaluation.score.verdicts if evaluation.score else ()


def action_counts(evaluations: Sequence[Evaluation]) -> dict[Action, int]:
    counts = {action: 0 for action in RISK_ORDER}
    for evaluation in evaluations:
        counts[evaluation.recommendation.action] += 1
    return counts


def overview_table(evaluations: Sequence[Evaluation], now: datetime) -> pd.DataFrame:
    """One row per service, riskiest first, with each metric's baseline → candidate and change."""
    rows = [_overview_row(e, now) for e in by_risk(evaluations)]
    table = pd.DataFrame(rows, columns=_overview_columns(rows))
    metric_columns = [c for c in table.columns if c not in _FIXED_COLUMNS]
    table[metric_columns] = table[metric_columns].fillna("")
    return table


_FIXED_COLUMNS = ("service", "version", "deployed", "age", "action", "score", "reason")


def _overview_columns(rows: list[dict[str, Any]]) -> list[str]:
    metric_columns = dict.fromkeys(k for row in rows for k in row if k not in _FIXED_COLUMNS)
    return [*_FIXED_COLUMNS[:-1], *metric_columns, _FIXED_COLUMNS[-1]]


def _overview_row(evaluation: Evaluation, now: datetime) -> dict[str, Any]:
    candidate = evaluation.candidate
    row: dict[str, Any] = {
        "service": evaluation.service,
        "version": candidate.version if candidate else NONE,
        "deployed": candidate.started_at if candidate else None,
        "age": format_age(now - candidate.started_at) if candidate else NONE,
        "action": evaluation.recommendation.action.value,
        "score": _score(evaluation),
        "reason": evaluation.recommendation.reason,
    }
    for verdict in verdicts(evaluation):
        before, after = (format_value(s.value, verdict.unit) for s in (verdict.baseline, verdict.candidate))
        row[verdict.metric] = f"{before} → {after}"
        row[f"{verdict.metric} change"] = change_text(verdict.change)
    return row


def release_table(evaluation: Evaluation) -> pd.DataFrame:
    """The two releases compared: version, deploy time and the window each was judged on."""
    rows = [
        {"role": role, "version": deploy.version if deploy else NONE,
         "deployed": format_time(deploy.started_at if deploy else None), "window": format_window(window)}
        for role, deploy, window in (
            ("candidate", evaluation.candidate, evaluation.candidate_window),
            ("baseline", evaluation.baseline, evaluation.baseline_window),
        )
    ]
    return pd.DataFrame(rows)


def verdict_table(evaluation: Evaluation) -> pd.DataFrame:
    return pd.DataFrame([_verdict_row(v) for v in verdicts(evaluation)])


def _verdict_row(verdict: MetricVerdict) -> dict[str, Any]:
    return {
        "metric": verdict.metric,
        "classification": verdict.classification.value,
        "baseline": format_value(verdict.baseline.value, verdict.unit),
        "candidate": format_value(verdict.candidate.value, verdict.unit),
        "change": change_text(verdict.change),
        "test": verdict.test,
        "p-value": format_p_value(verdict.p_value),
        "critical": verdict.critical,
        "reason": verdict.reason,
        "baseline detail": verdict.baseline.detail,
        "candidate detail": verdict.candidate.detail,
    }


def history_table(evaluations: Sequence[Evaluation]) -> pd.DataFrame:
    """Every release of one service, newest first, with its verdict."""
    rows = [
        {
            "version": e.candidate.version if e.candidate else NONE,
            "deployed": format_time(e.candidate.started_at if e.candidate else None),
            "baseline": e.recommendation.baseline,
            "action": e.recommendation.action.value,
            "score": _score(e),
            "reason": e.recommendation.reason,
        }
        for e in evaluations
    ]
    return pd.DataFrame(rows)


def sources_table(health: Sequence[SourceHealth]) -> pd.DataFrame:
    rows = [
        {
            "source": h.name,
            "url": h.url,
            "status": "ok" if h.ok else "DOWN",
            "latency (ms)": None if h.latency_seconds is None else round(h.latency_seconds * 1000, 1),
            "checked": format_time(h.checked_at),
            "last error": h.error,
        }
        for h in health
    ]
    return pd.DataFrame(rows)
