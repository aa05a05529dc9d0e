"""Plotly figures of the per-step evidence: a verdict's baseline and candidate overlaid, log lines per level."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from releasehealth.model import Classification, LogWindowData, Series, Window
from releasehealth.verdicts import LogEvidence, MetricVerdict, Timeline

# Scale to the unit people read, as the tables write it: a ratio in percent, seconds in milliseconds, bytes
# in MiB (plotly's own ticks would say 0.94B where the table says 885 MiB).
SCALES = {"ratio": (100.0, "%"), "seconds": (1000.0, "ms"), "bytes": (1 / 2**20, "MiB")}
BASELINE_COLOUR = "#7f7f7f"
CANDIDATE_COLOURS = {Classification.HIGH: "#d62728", Classification.LOW: "#d62728"}
CANDIDATE_COLOUR = "#1f77b4"
LEVEL_COLOURS = {"error": "#d62728", "warn": "#ff7f0e", "info": "#1f77b4", "debug": "#7f7f7f"}
_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVEL_COLOURS)}


def plot_text(text: str) -> str:
    """Plotly renders names and titles as pseudo-HTML (links included): entity-escape untrusted text."""
    return html.escape(text, quote=True)


def metric_figure(
    verdict: MetricVerdict,
    windows: tuple[Window | None, Window | None],
    versions: tuple[str, str],
) -> go.Figure | None:
    """Baseline and candidate per-step values against minutes since each window's start, so the two
    windows overlay; dotted lines are the window values the verdict compared. None without data."""
    factor, suffix = SCALES.get(verdict.unit, (1.0, verdict.unit))
    roles = (
        ("baseline", verdict.baseline_series, verdict.baseline.value, BASELINE_COLOUR),
        ("candidate", verdict.candidate_series, verdict.candidate.value,
         CANDIDATE_COLOURS.get(verdict.classification, CANDIDATE_COLOUR)),
    )
    figure = go.Figure()
    for (role, series, summary, colour), window, version in zip(roles, windows, versions, strict=True):
        if series is None or not series.timestamps.size:
            continue
        figure.add_trace(_trace(series, window, factor, f"{role} {version}", colour, suffix))
        if summary is not None and np.isfinite(summary):
            figure.add_hline(y=summary * factor, line_dash="dot", line_color=colour, opacity=0.7)
    return _styled(figure, verdict, suffix) if figure.data else None


def _styled(figure: go.Figure, verdict: MetricVerdict, suffix: str) -> go.Figure:
    return figure.update_layout(
        title=plot_text(f"{verdict.metric}: {verdict.classification.value}{' (muted: not counted)' if verdict.muted else ''}"),
        xaxis_title="minutes since window start",
        yaxis_title=plot_text(f"{verdict.metric} ({suffix})" if suffix else verdict.metric),
        height=340,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="x unified",
    )


def _trace(series: Series, window: Window | None, factor: float, name: str, colour: str, suffix: str) -> go.Scatter:
    start = window.start.timestamp() if window else float(series.timestamps[0])
    return go.Scatter(
        x=(series.timestamps - start) / 60.0,
        y=series.values * factor,
        mode="lines+markers",
        marker={"size": 4},
        line={"color": colour},
        name=plot_text(name),
        hovertemplate=f"%{{y:.3g}} {plot_text(suffix)}",
    )


def log_levels_figure(
    logs: LogEvidence,
    windows: tuple[Window | None, Window | None],
    versions: tuple[str, str],
) -> go.Figure | None:
    """Log lines per step and level, baseline and candidate side by side on a shared y axis (overlaying
    up to eight traces was unreadable); x is minutes since each window's start. None without data."""
    sides = (("baseline", logs.baseline), ("candidate", logs.candidate))
    titles = [plot_text(f"{role} {version}") for (role, _), version in zip(sides, versions, strict=True)]
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=titles)
    shown: set[str] = set()
    for column, ((_, data), window) in enumerate(zip(sides, windows, strict=True), start=1):
        if data is None or window is None:
            continue
        for level in _levels(data):
            figure.add_trace(_level_trace(data.levels[level], window, level, level not in shown), row=1, col=column)
            shown.add(level)
    return _styled_levels(figure, windows) if figure.data else None


def _levels(data: LogWindowData) -> list[str]:
    """Known levels most severe first, then any other in name order, so colours and legend stay put."""
    return sorted(data.levels, key=lambda level: (_LEVEL_RANK.get(level, len(_LEVEL_RANK)), level))


def per_step(series: Series, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Minutes since the window's start at the end of every step, and the lines in each step.

    Steps without a point count zero: log sources return only steps that have lines (Elasticsearch
    `min_doc_count: 1`), and a line drawn across the gap would invent lines that were never logged.
    """
    step = window.step.total_seconds()
    steps = round(window.duration.total_seconds() / step)
    index = np.rint((series.timestamps - window.start.timestamp()) / step).astype(int) - 1
    keep = (index >= 0) & (index < steps)
    counts = np.zeros(steps)
    np.add.at(counts, index[keep], series.values[keep])
    return np.arange(1, steps + 1) * step / 60.0, counts


def _level_trace(series: Series, window: Window, level: str, legend: bool) -> go.Scatter:
    minutes, counts = per_step(series, window)
    return go.Scatter(
        x=minutes, y=counts, mode="lines", name=plot_text(level), legendgroup=plot_text(level), showlegend=legend,
        line={"color": LEVEL_COLOURS.get(level), "width": 1.5}, hovertemplate="%{y:.0f} lines",
    )


def _styled_levels(figure: go.Figure, windows: tuple[Window | None, Window | None]) -> go.Figure:
    step = next((w.step.total_seconds() for w in windows if w is not None), None)
    figure.update_xaxes(title_text="minutes since window start")
    figure.update_yaxes(title_text=f"log lines per {step:g} s step" if step else "log lines", col=1)
    return figure.update_layout(
        title="Log lines per level",
        height=340,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "xanchor": "right", "x": 1.0},
        hovermode="x unified",
    )


# ---- service page --------------------------------------------------------------------------------

VERSION_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
ACTION_COLOURS = {"ROLLBACK": "#d62728", "HOLD": "#ff7f0e", "INCONCLUSIVE": "#7f7f7f", "PROMOTE": "#2ca02c"}


def timeline_figure(timeline: Timeline) -> go.Figure | None:
    """Request rate, error ratio and latency over the service's last day, one colour per version, a
    dashed line at every deploy. None when no quantity has data."""
    rows = (
        ("requests / s", timeline.request_rate, 1.0),
        ("error ratio (%)", timeline.error_ratio, 100.0),
        (f"{timeline.latency_name or 'latency'} (ms)", timeline.latency, 1000.0),
    )
    figure = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04)
    versions = [d.version for d in timeline.deploys]
    versions += sorted({v for _, by_version, _ in rows for v in by_version} - set(versions))
    colours = {v: VERSION_COLOURS[k % len(VERSION_COLOURS)] for k, v in enumerate(versions)}
    for row, (title, by_version, factor) in enumerate(rows, start=1):
        for version in versions:
            series = by_version.get(version)
            if series is None or not series.timestamps.size:
                continue
            figure.add_trace(
                go.Scatter(
                    x=_datetimes(series.timestamps), y=series.values * factor, mode="lines", name=plot_text(version),
                    legendgroup=plot_text(version), showlegend=row == 1, line={"color": colours[version], "width": 1.5},
                    hovertemplate=f"%{{y:.3g}} {plot_text(title)}",
                ),
                row=row, col=1,
            )
        figure.update_yaxes(title_text=plot_text(title), row=row, col=1)
    if not figure.data:
        return None
    for deploy in timeline.deploys:
        if deploy.started_at >= timeline.start:
            figure.add_vline(x=deploy.started_at, line_dash="dash", line_color=colours[deploy.version], opacity=0.8)
            figure.add_annotation(
                x=deploy.started_at, y=1.0, yref="paper", text=plot_text(deploy.version), showarrow=False,
                yanchor="bottom", font={"size": 10, "color": colours[deploy.version]},
            )
    return figure.update_layout(
        height=620, margin={"l": 10, "r": 10, "t": 40, "b": 10}, hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "xanchor": "right", "x": 1.0, "title": "version"},
    )


def _datetimes(timestamps: np.ndarray) -> np.ndarray:
    return (timestamps * 1000).astype("datetime64[ms]")


def score_history_figure(versions: list[str], scores: list[float | None], actions: list[str]) -> go.Figure | None:
    """A bar per release, oldest left, its height the score and its colour the recommendation; a
    release without a score (not judged) is a bar of zero height labelled with its action."""
    if not versions:
        return None
    figure = go.Figure(
        go.Bar(
            x=[plot_text(v) for v in versions],
            y=[s if s is not None else 0 for s in scores],
            marker_color=[ACTION_COLOURS.get(a, "#7f7f7f") for a in actions],
            text=[plot_text(a) for a in actions],
            textposition="outside",
            hovertemplate="%{x}: score %{y:.0f}<extra></extra>",
        )
    )
    return figure.update_layout(
        title="Score per release", yaxis={"range": [0, 115], "title": "score"}, xaxis={"title": "version", "type": "category"},
        height=300, margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )


def distribution_figure(verdict: MetricVerdict, versions: tuple[str, str]) -> go.Figure | None:
    """The share of requests per latency bucket in each window, side by side: where the requests moved."""
    distribution = verdict.distribution
    if distribution is None:
        return None
    labels = [_bucket_label(distribution.bounds, k) for k in range(distribution.bounds.size)]
    figure = go.Figure()
    for role, counts, version, colour in (
        ("baseline", distribution.baseline, versions[0], BASELINE_COLOUR),
        ("candidate", distribution.candidate, versions[1], CANDIDATE_COLOURS.get(verdict.classification, CANDIDATE_COLOUR)),
    ):
        total = counts.sum()
        if total <= 0:
            continue
        figure.add_trace(
            go.Bar(
                x=labels, y=counts / total * 100, name=plot_text(f"{role} {version}"), marker_color=colour,
                hovertemplate="%{x}: %{y:.2f}% of requests<extra></extra>",
            )
        )
    if not figure.data:
        return None
    return figure.update_layout(
        title="Latency distribution: share of requests per histogram bucket",
        barmode="group", xaxis={"title": "latency bucket", "type": "category"}, yaxis={"title": "% of requests"},
        height=340, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )


def _bucket_label(bounds: np.ndarray, index: int) -> str:
    def ms(value: float) -> str:
        return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"

    if np.isinf(bounds[index]):
        return f"> {ms(float(bounds[index - 1]))}" if index else "all"
    return f"≤ {ms(float(bounds[index]))}"
