"""Pure builders of what the pages show: formatted values and DataFrames, no Streamlit."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from releasehealth import backtest_report
from releasehealth.format import (
    NONE,
    change_text,
    format_age,
    format_p_value,
    format_time,
    format_value,
    format_window,
    plural,
    value_text,
)
from releasehealth.model import NOTABLE_SIGNATURES, Action, BaselinePolicy, Classification, Deploy, LogWindowData, Policy
from releasehealth.store import StoredBacktest, WatchedRelease
from releasehealth.verdicts import Evaluation, LogEvidence, LogSignature, MetricVerdict, SourceHealth

# Riskiest first: what the on-call engineer must look at before anything else.
RISK_ORDER = {Action.ROLLBACK: 0, Action.INCONCLUSIVE: 1, Action.HOLD: 2, Action.PROMOTE: 3}


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


def filter_evaluations(
    evaluations: Sequence[Evaluation], actions: Sequence[str], teams: Sequence[str], text: str, team_of: Mapping[str, str]
) -> list[Evaluation]:
    """The evaluations whose action and team are among those chosen (all when none is chosen) and whose
    service, version, team or reason contains `text` (case-insensitive)."""
    needle = text.strip().lower()

    def keep(e: Evaluation) -> bool:
        team = team_of.get(e.service, "")
        haystack = " ".join((e.service, e.candidate.version if e.candidate else "", team, e.recommendation.reason))
        return (
            (not actions or e.recommendation.action.value in actions)
            and (not teams or team in teams)
            and (not needle or needle in haystack.lower())
        )

    return [e for e in evaluations if keep(e)]


def overview_table(evaluations: Sequence[Evaluation], team_of: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per service, riskiest first: what on-call reads first, narrow enough to show whole at 1280
    px with its reason (each metric's change is in `metric_changes_table`). A release's age is as of its
    evaluation (a pinned demo's end, not the wall clock)."""
    rows = [_overview_row(e, (team_of or {}).get(e.service, "")) for e in by_risk(evaluations)]
    return pd.DataFrame(rows, columns=OVERVIEW_FIELDS)


# The log column sits by the score: a new error signature is what on-call looks for first in the logs.
OVERVIEW_FIELDS = (
    "service", "version", "team", "age", "action", "score", "error ratio trend", "failing log signatures", "reason",
    "error ratio classification",  # not shown: it tints the sparkline's cell
)
# What each action looks like wherever it is shown: red, amber, grey and green, with text that stays legible.
ACTION_COLOURS = {
    Action.ROLLBACK: ("#c62828", "#ffffff"),
    Action.HOLD: ("#f9a825", "#1a1a1a"),
    Action.INCONCLUSIVE: ("#757575", "#ffffff"),
    Action.PROMOTE: ("#2e7d32", "#ffffff"),
}


def action_style(action: str) -> str:
    """The CSS of a cell holding an action (or a score, coloured by its release's action): a badge."""
    colours = next((c for a, c in ACTION_COLOURS.items() if a.value == action), None)
    if colours is None:
        return ""
    background, text = colours
    return f"background-color: {background}; color: {text}; font-weight: 600"


# The pale shades of ACTION_COLOURS: the background of a sparkline, whose line stays legible on each.
ACTION_TINTS = {
    Action.ROLLBACK: "#ffcdd2", Action.HOLD: "#ffe0b2", Action.INCONCLUSIVE: "#eeeeee", Action.PROMOTE: "#c8e6c9",
}


def styled_overview(table: pd.DataFrame) -> Any:
    """The overview table with each action a coloured badge, each score coloured as its action and each
    error-ratio sparkline on the shade of its own verdict (Streamlit draws a chart column in one colour)."""
    badges = [action_style(a) for a in table["action"]]
    columns = {"action": badges, "score": badges}
    if "error ratio classification" in table:
        columns["error ratio trend"] = [_tint(c) for c in table["error ratio classification"]]
    return _styled(table, columns)


def _tint(classification: str) -> str:
    action = CLASSIFICATION_ACTIONS.get(classification)  # type: ignore[call-overload]  # StrEnum keys find strings
    return f"background-color: {ACTION_TINTS[action]}" if action else ""


def _styled(table: pd.DataFrame, columns: Mapping[str, list[str]]) -> Any:
    """`table` as a pandas Styler with the CSS of each cell of `columns` (the other cells as they are)."""
    styles = pd.DataFrame("", index=table.index, columns=table.columns)
    for column, css in columns.items():
        styles[column] = css
    return table.style.apply(lambda _: styles, axis=None)


def metric_changes_table(evaluations: Sequence[Evaluation]) -> pd.DataFrame:
    """Per service, riskiest first: when it was deployed and each metric's baseline → candidate and change."""
    rows = []
    for evaluation in by_risk(evaluations):
        candidate = evaluation.candidate
        row: dict[str, Any] = {"service": evaluation.service, "deployed": candidate.started_at if candidate else None}
        for verdict in verdicts(evaluation):
            row.update(_metric_cells(verdict))
        rows.append(row)
    table = pd.DataFrame(rows)
    metric_columns = [c for c in table.columns if c not in ("service", "deployed")]
    table[metric_columns] = table[metric_columns].fillna("")
    return table


def pending_table(
    deploys: Mapping[str, Sequence[Deploy]], now: datetime, team_of: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per service as soon as its deploys are known, before they are judged: the latest release,
    its team and age, newest deploys first (what changed last is what on-call asks about first)."""
    rows = [
        {"service": service, "version": found[-1].version if found else NONE, "team": (team_of or {}).get(service) or NONE,
         "age": format_age(now - found[-1].started_at) if found else NONE, "action": "judging…"}
        for service, found in deploys.items()
    ]
    latest = {service: found[-1].started_at if found else None for service, found in deploys.items()}
    rows.sort(key=lambda row: (latest[row["service"]] is None, -(latest[row["service"]] or now).timestamp(), row["service"]))
    return pd.DataFrame(rows, columns=["service", "version", "team", "age", "action"])


def _overview_row(evaluation: Evaluation, team: str) -> dict[str, Any]:
    candidate = evaluation.candidate
    return {
        "service": evaluation.service,
        "version": candidate.version if candidate else NONE,
        "team": team or NONE,
        "age": format_age(evaluation.evaluated_at - candidate.started_at) if candidate else NONE,
        "action": evaluation.recommendation.action.value,
        "score": _score(evaluation),
        "error ratio trend": sparkline(evaluation),
        "failing log signatures": failing_signature_count(evaluation),
        "reason": evaluation.recommendation.reason,
        "error ratio classification": verdict.classification.value if (verdict := _sparkline_verdict(evaluation)) else "",
    }


def _sparkline_verdict(evaluation: Evaluation) -> MetricVerdict | None:
    """The first ratio metric with a candidate series: the one a row's sparkline draws."""
    return next((v for v in verdicts(evaluation) if v.unit == "ratio" and v.candidate_series is not None), None)


def sparkline(evaluation: Evaluation) -> list[float]:
    """The first ratio metric's per-step values in percent, baseline window then candidate window (what
    a row's sparkline draws; steps without traffic are left out). Empty when nothing was judged."""
    verdict = _sparkline_verdict(evaluation)
    if verdict is None:
        return []
    values = [s.values for s in (verdict.baseline_series, verdict.candidate_series) if s is not None]
    joined = np.concatenate(values) * 100 if values else np.array([])
    return [round(float(v), 4) for v in joined if np.isfinite(v)]


def _metric_cells(verdict: MetricVerdict) -> dict[str, str]:
    """Baseline → candidate and the change; a metric without values (log_signatures, NODATA) shows its
    classification instead of "no data → no data"."""
    if verdict.baseline.value is None and verdict.candidate.value is None:
        return {verdict.metric: verdict.classification.value}
    before, after = (format_value(s.value, verdict.unit) for s in (verdict.baseline, verdict.candidate))
    return {verdict.metric: f"{before} → {after}", f"{verdict.metric} change": change_text(verdict.change)}


def failing_signature_count(evaluation: Evaluation) -> str:
    """New or increased error signatures that fail the release (the judge marks them); NONE when the
    logs were not read."""
    logs = evaluation.logs
    if logs is None or logs.error:
        return NONE
    return str(sum(s.failing for s in logs.signatures))


def release_table(evaluation: Evaluation) -> pd.DataFrame:
    """The two releases compared: version, deploy time and source, commit, and the window each was judged on."""
    rows = [
        {"role": role, "version": deploy.version if deploy else NONE,
         "deployed": format_time(deploy.started_at if deploy else None),
         "deploy source": deploy.source.value if deploy else NONE,
         "commit": (deploy.commit if deploy else "") or NONE,
         "window": format_window(window)}
        for role, deploy, window in (
            ("candidate", evaluation.candidate, evaluation.candidate_window),
            ("baseline", evaluation.baseline, evaluation.baseline_window),
        )
    ]
    return pd.DataFrame(rows)


def verdict_table(evaluation: Evaluation) -> pd.DataFrame:
    """What decides, narrow enough to show whole at 1280 px: classification, values, change and reason."""
    return pd.DataFrame([_verdict_row(v) for v in verdicts(evaluation)])


def verdict_test_table(evaluation: Evaluation) -> pd.DataFrame:
    """How each metric was tested: p-value, whether it is critical, the test and each window's detail."""
    return pd.DataFrame([_test_row(v) for v in verdicts(evaluation)])


def _verdict_row(verdict: MetricVerdict) -> dict[str, Any]:
    return {
        "metric": verdict.metric,
        "classification": verdict.classification.value,
        # A metric without a value of its own (log_signatures: its findings are listed below) shows "-".
        "baseline": value_text(verdict.baseline.value, verdict.unit),
        "candidate": value_text(verdict.candidate.value, verdict.unit),
        "change": change_text(verdict.change),
        "reason": verdict.reason,
    }


def _test_row(verdict: MetricVerdict) -> dict[str, Any]:
    return {
        "metric": verdict.metric,
        "p-value": format_p_value(verdict.p_value),
        "critical": verdict.critical,
        "test": verdict.test,
        "baseline detail": verdict.baseline.detail,
        "candidate detail": verdict.candidate.detail,
    }


# A metric's classification as the action it leads to looks: failing red, passing green, unknown grey.
CLASSIFICATION_ACTIONS = {
    Classification.HIGH: Action.ROLLBACK, Classification.LOW: Action.ROLLBACK, Classification.PASS: Action.PROMOTE,
    Classification.NODATA: Action.INCONCLUSIVE, Classification.ERROR: Action.INCONCLUSIVE,
}


def styled_verdicts(table: pd.DataFrame) -> Any:
    """The metric table with each classification a badge in the colour of the action it points to."""
    # The keys are StrEnum members: the table's plain strings find them.
    badges = [action_style(CLASSIFICATION_ACTIONS[c].value) if c in CLASSIFICATION_ACTIONS else "" for c in table["classification"]]
    return _styled(table, {"classification": badges})


def score_history(evaluations: Sequence[Evaluation]) -> tuple[list[str], list[float | None], list[str]]:
    """(versions, scores, actions) of a service's releases, oldest first, for the score chart."""
    ordered = sorted(((e, e.candidate) for e in evaluations if e.candidate), key=lambda pair: pair[1].started_at)
    return (
        [candidate.version for _, candidate in ordered],
        [_score(e) for e, _ in ordered],
        [e.recommendation.action.value for e, _ in ordered],
    )


# The baselines a reader may compare a release with (DESIGN §5); pinned ones are added per version.
BASELINE_CHOICES = ("previous", "time-shifted:1d", "time-shifted:7d", "concurrent", "last-good")


def baseline_spec(policy: Policy) -> str:
    """The configured baseline as the page's selector writes it: "previous", "time-shifted:1d", "pinned:V"."""
    if policy.baseline is BaselinePolicy.TIME_SHIFTED:
        hours = policy.baseline_shift.total_seconds() / 3600
        return f"time-shifted:{hours / 24:g}d" if hours % 24 == 0 else f"time-shifted:{hours:g}h"
    if policy.baseline is BaselinePolicy.PINNED:
        return f"pinned:{policy.pinned_version}"
    return policy.baseline.value


def baseline_options(configured: str, versions: Sequence[str], candidate: str | None) -> list[str]:
    """The baseline policies to offer on a release page: the configured one first, then the others,
    then "pinned:V" for every other version seen."""
    pinned = [f"pinned:{v}" for v in versions if v != candidate]
    return list(dict.fromkeys([configured, *BASELINE_CHOICES, *pinned]))


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


def watch_table(watched: Sequence[WatchedRelease], now: datetime) -> pd.DataFrame:
    """The releases watch mode follows, those still watched first, then the newest: their last verdict,
    checks, next checkpoint and the message they are announced in."""
    ordered = sorted(watched, key=lambda r: (r.state != "watching", -r.deployed_at.timestamp(), r.service))
    rows = [
        {"service": r.service, "version": r.version, "deployed": format_time(r.deployed_at), "state": r.state,
         "verdict": r.action or NONE, "checks": r.checks,
         "next check": format_age(r.next_check_at - now) if r.state == "watching" and r.next_check_at > now else NONE,
         "announced": r.notified or NONE}
        for r in ordered
    ]
    return pd.DataFrame(rows, columns=["service", "version", "deployed", "state", "verdict", "checks", "next check", "announced"])


def lease_text(lease: tuple[str, datetime] | None, now: datetime) -> str:
    """Who watches: the lease's holder while it runs, or since when nobody does."""
    if lease is None:
        return "No watcher has run on this store (release-health watch)."
    holder, expires = lease
    if expires > now:
        return f"Watcher {holder} holds the store's lease (renewed at each scan) until {format_time(expires)}."
    return f"No watcher is running: the last one, {holder}, stopped renewing its lease at {format_time(expires)}."


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


# ---- logs ----------------------------------------------------------------------------------------

# NEW and INCREASED are what a reviewer must read the messages of; KNOWN and GONE stay in the table.
FLAGGED = NOTABLE_SIGNATURES


def rate_label(basis: str) -> str:
    """The unit of signature rates: "per 1k requests", or "per 1k log lines" when requests are unknown."""
    return f"per 1k {basis}"


def signature_table(logs: LogEvidence) -> pd.DataFrame:
    """The signature diff, in the core's order (NEW first), with rates labelled by their basis: what
    decides, narrow enough to show whole at 1280 px (counts and notes in `signature_detail_table`)."""
    unit = rate_label(logs.rate_basis)
    rows = [
        {
            "status": s.status.value,
            "template": s.template,
            "level": s.level,
            f"baseline ({unit})": s.baseline_rate,
            f"candidate ({unit})": s.candidate_rate,
            "p-value": format_p_value(s.p_value),
            "credible": s.credible,
        }
        for s in logs.signatures
    ]
    return pd.DataFrame(rows)


def signature_detail_table(logs: LogEvidence) -> pd.DataFrame:
    """Each signature's lines in each window, error type, not-a-risk mark, calling service and notes."""
    rows = [
        {
            "template": s.template,
            "error type": s.error_type,
            "baseline count": s.baseline_count,
            "candidate count": s.candidate_count,
            "not a risk": s.ignored,
            "caller": s.caller,
            "notes": signature_notes(s),
        }
        for s in logs.signatures
    ]
    return pd.DataFrame(rows)


def signature_notes(signature: LogSignature) -> str:
    """What else is known of a signature: its successor, its history, whose line it is."""
    notes = []
    if signature.replaced_by:
        notes.append(f"replaced by {signature.replaced_by}")
    if signature.in_history:
        notes.append("seen in the service's history")
    if signature.caller:
        notes.append(f"logged by caller {signature.caller}")
    return "; ".join(notes)


def flagged_signatures(logs: LogEvidence) -> list[LogSignature]:
    return [s for s in logs.signatures if s.status in FLAGGED]


def example_caption(signature: LogSignature) -> str:
    """What a flagged signature's code block shows, with the counts; no log text (that stays in the block)."""
    counts = f"{plural(round(signature.candidate_count), 'line')} in the candidate, {signature.baseline_count:.0f} in the baseline"
    return f"{signature.status.value} {signature.level} signature: {counts}. Its template, then example messages:"


def example_text(signature: LogSignature) -> str:
    """The template, a blank line, then the raw example messages: for a code block, never Markdown."""
    return "\n".join([signature.template, "", *signature.examples])


def error_types_table(logs: LogEvidence) -> pd.DataFrame:
    """Lines per error type in each window, the candidate's most frequent first."""
    baseline = logs.baseline.error_types if logs.baseline else {}
    candidate = logs.candidate.error_types if logs.candidate else {}
    rows = [
        {"error type": name, "baseline": baseline.get(name, 0), "candidate": candidate.get(name, 0)}
        for name in dict.fromkeys([*candidate, *baseline])
    ]
    table = pd.DataFrame(rows, columns=["error type", "baseline", "candidate"])
    return table.sort_values(["candidate", "error type"], ascending=[False, True], ignore_index=True)


def sampling_text(role: str, version: str, data: LogWindowData) -> str:
    """How much of a window's error and warn lines the signatures were mined from, and what was dropped."""
    text = f"{role} {version}: {len(data.sample)} of {data.sampled_from} error/warn lines sampled"
    dropped = [f"{n} {what}" for n, what in ((data.skipped, "skipped (no message)"), (data.truncated, "truncated"))
               if n]
    return f"{text}; {', '.join(dropped)}" if dropped else text


def backtest_label(run: StoredBacktest) -> str:
    """How a backtest is picked: its number, period, services and whether it finished."""
    settings = run.settings
    services = len(run.summary["services"]) if run.summary else len(settings.get("services") or []) or "all"
    state = "" if run.finished_at else " (not finished)"
    return f"#{run.id}: {settings['since'][:10]} .. {settings['until'][:10]}, {services} services, run {format_time(run.started_at)}{state}"


def backtest_metrics_table(summary: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(backtest_report.metric_rows(summary), columns=list(backtest_report.METRIC_HEADER))


def backtest_releases_table(summary: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        backtest_report.release_rows(summary), columns=["service", "version", "baseline", "candidate from (UTC)", "verdict", "failing"]
    )


def backtest_incidents_table(summary: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(backtest_report.incident_rows(summary), columns=["service", "version", "known from", "outcome"])


def backtest_changes_table(changes: list[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(backtest_report.change_rows(changes), columns=["service", "version", "this configuration", "the other"])


def backtest_skipped_table(summary: dict[str, Any]) -> pd.DataFrame:
    rows = [*summary["skipped"].items(), ("A/A pairs held or inconclusive for missing data alone (not counted)", summary["unjudged_pairs"])]
    return pd.DataFrame(rows, columns=["why", "how many"])
