"""Plotly figures of the per-step evidence behind a verdict: baseline and candidate overlaid."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from releasehealth.model import Classification, MetricVerdict, Series, Window

# Scale to the unit people read: a ratio in percent, seconds in milliseconds.
SCALES = {"ratio": (100.0, "%"), "seconds": (1000.0, "ms")}
BASELINE_COLOUR = "#7f7f7f"
CANDIDATE_COLOURS = {Classification.HIGH: "#d62728", Classification.LOW: "#d62728"}
CANDIDATE_COLOUR = "#1f77b4"


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
        title=plot_text(f"{verdict.metric}: {verdict.classification.value}"),
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
