"""A backtest's report, Markdown or HTML (self-contained, plotly inlined), rendered from its calibration as
JSON (releasehealth.calibration.calibration_to_dict): the one just made, or one the history store kept,
which the dashboard's Calibration page shows the same way.

Service names, versions and reasons are untrusted text: the HTML template is autoescaped, Markdown
escapes it (releasehealth.report.md_escape).
"""

from __future__ import annotations

from typing import Any

import jinja2
import plotly.graph_objects as go
from markupsafe import Markup

from releasehealth.report import markdown_table, md_escape


def percent(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def rate_text(r: dict[str, Any]) -> str:
    """"3 of 412 = 0.73% (0.15..2.1%)": a rate with its interval."""
    if not r["trials"]:
        return "no pairs judged"
    return f"{r['events']} of {r['trials']} = {percent(r['rate'])} ({percent(r['low'])}..{percent(r['high'])})"


def tolerance_text(tolerance: dict[str, Any]) -> str:
    parts = [f"{tolerance['relative'] * 100:g}%"] if tolerance["relative"] else []
    parts += [f"{tolerance['absolute']:g} absolute"] if tolerance["absolute"] else []
    return " and ".join(parts) or "none"


def verdict_of(metric: dict[str, Any]) -> str:
    """What the A/A pairs say of one metric at its configured tolerance."""
    configured = next(r for r in metric["rates"] if r["multiple"] == 1.0)
    if not configured["trials"]:
        return "not judged on any A/A pair"
    if metric["noisy"]:
        return "NOISY: false alarms credibly above its share"
    if configured["rate"] > metric["share"]:
        return "above its share, not credibly"
    return "within its share"


def suggestion_text(metric: dict[str, Any]) -> str:
    suggested = metric["suggested"]
    if suggested is None:
        return "none of the tolerances tried is quiet enough" if any(r["trials"] for r in metric["rates"]) else "-"
    if suggested["multiple"] == 1.0:
        return "keep it"
    return f"{tolerance_text(suggested)} ({suggested['multiple']:g} x)"


def metric_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    """metric, share, configured tolerance, A/A false alarms, verdict, suggested tolerance, releases it changes."""
    return [
        (
            m["metric"], percent(m["share"], 3), tolerance_text(m["tolerance"]),
            rate_text(next(r for r in m["rates"] if r["multiple"] == 1.0)), verdict_of(m), suggestion_text(m),
            str(len(m["changes"])),
        )
        for m in summary["metrics"]
    ]


METRIC_HEADER = ("metric", "share of alpha", "tolerance", "A/A false alarms", "verdict", "suggested tolerance", "releases it changes")


def headline(summary: dict[str, Any]) -> str:
    """The backtest's answer in one sentence."""
    alarms, rollbacks = summary["false_alarms"], summary["false_rollbacks"]
    promised = summary["alpha"] + summary["hold_alpha"]
    if not alarms["trials"]:
        return "No A/A pair could be judged: nothing measured (see what was skipped)."
    within = "within" if alarms["high"] <= promised or alarms["rate"] <= promised else "ABOVE"
    return (
        f"A/A false alarms (HOLD or ROLLBACK): {rate_text(alarms)}, {within} the configured budget of "
        f"{percent(promised)} (alpha {percent(summary['alpha'])} for ROLLBACK + hold_alpha {percent(summary['hold_alpha'])}); "
        f"false ROLLBACKs {rate_text(rollbacks)} against alpha {percent(summary['alpha'])}."
    )


def release_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (t["service"], t["version"], t["baseline_version"], t["candidate_start"][:16].replace("T", " "), t["action"],
         ", ".join(t["failing"]) or "-")
        for t in summary["releases"]
    ]


def incident_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    def outcome(action: str | None) -> str:
        return {"ROLLBACK": "caught (ROLLBACK)", "HOLD": "held", None: "not judged"}.get(action, f"MISSED ({action})")

    return [(i["service"], i["version"], i["source"], outcome(i["action"])) for i in summary["incidents"]]


def change_rows(changes: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return [(c["service"], c["version"], c["before"], c["after"]) for c in changes]


def render_markdown(summary: dict[str, Any]) -> str:
    """The backtest as Markdown: the answer, the metrics' rates per tolerance, releases, incidents, skips."""
    services = ", ".join(summary["services"])
    lines = [
        "# Backtest", "",
        f"{summary['since'][:16]} .. {summary['until'][:16]} UTC, {summary['days']} day(s), {len(summary['services'])} "
        f"service(s): {md_escape(services)}; {summary['queries']} queries.", "",
        md_escape(headline(summary)), "",
    ]
    if not summary["complete"]:
        lines += ["**Stopped by the query budget**: run the same command again to go on from where it stopped.", ""]
    if summary["by_kind"]:
        lines += markdown_table(("A/A pairs", "false alarms"), [(kind, rate_text(r)) for kind, r in summary["by_kind"].items()]) + [""]
    if summary["tuned_false_alarms"]:
        lines += [f"With every metric at its suggested tolerance: {md_escape(rate_text(summary['tuned_false_alarms']))}.", ""]
    lines += ["## Metrics", ""] + markdown_table(METRIC_HEADER, metric_rows(summary))
    multiples = [r["multiple"] for r in summary["metrics"][0]["rates"]] if summary["metrics"] else []
    if multiples:
        lines += ["", "### A/A false-alarm rate per tolerance (multiples of the configured one)", ""]
        lines += markdown_table(
            ["metric", *(f"{m:g} x" for m in multiples)],
            [[m["metric"], *(percent(r["rate"]) if r["trials"] else "-" for r in m["rates"])] for m in summary["metrics"]],
        )
    for m in summary["metrics"]:
        if m["changes"]:
            lines += ["", f"### Releases {md_escape(m['metric'])} at {md_escape(suggestion_text(m))} would judge otherwise", ""]
            lines += markdown_table(("service", "version", "was", "would be"), change_rows(m["changes"]))
    lines += ["", f"## Releases ({len(summary['releases'])})", ""]
    lines += markdown_table(("service", "version", "baseline", "candidate from (UTC)", "verdict", "failing"), release_rows(summary))
    if summary["incidents"]:
        caught = sum(i["action"] == "ROLLBACK" for i in summary["incidents"])
        lines += ["", f"## Incidents: {caught} of {len(summary['incidents'])} caught", ""]
        lines += markdown_table(("service", "version", "known from", "outcome"), incident_rows(summary))
    if summary["compared"] is not None:
        lines += ["", f"## Releases the other configuration judges otherwise ({len(summary['compared'])})", ""]
        lines += markdown_table(("service", "version", "this configuration", "the other"), change_rows(summary["compared"]))
    lines += ["", "## Skipped", ""]
    skipped = [(why, str(count)) for why, count in summary["skipped"].items()]
    skipped.append(("A/A pairs held or inconclusive for missing data alone (not counted)", str(summary["unjudged_pairs"])))
    lines += markdown_table(("why", "how many"), skipped)
    if summary["notes"]:
        lines += ["", *(f"- {md_escape(note)}" for note in summary["notes"])]
    return "\n".join(lines) + "\n"


def rate_chart(summary: dict[str, Any]) -> go.Figure:
    """Each metric's A/A false-alarm rate (with its interval) against the multiple of its tolerance."""
    figure = go.Figure()
    for m in summary["metrics"]:
        judged = [r for r in m["rates"] if r["trials"]]
        if not judged:
            continue
        figure.add_trace(go.Scatter(
            x=[r["multiple"] for r in judged], y=[r["rate"] * 100 for r in judged], name=m["metric"], mode="lines+markers",
            error_y={"type": "data", "symmetric": False, "array": [(r["high"] - r["rate"]) * 100 for r in judged],
                     "arrayminus": [(r["rate"] - r["low"]) * 100 for r in judged]},
        ))
    figure.update_layout(
        xaxis={"title": "tolerance, multiple of the configured one", "type": "log"},
        yaxis={"title": "A/A false alarms (%)", "rangemode": "tozero"}, height=420, margin={"l": 60, "r": 20, "t": 30, "b": 50},
        legend={"orientation": "h"},
    )
    return figure


HTML_TEMPLATE = """<!doctype html><html><head><meta charset="utf-8"><title>Backtest {{ s.since[:10] }} .. {{ s.until[:10] }}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}.noisy{color:#b00020;font-weight:bold}</style>
</head><body>
<h1>Backtest</h1>
<p>{{ s.since[:16] }} .. {{ s.until[:16] }} UTC, {{ s.days }} day(s), {{ s.services|length }} service(s): {{ s.services|join(", ") }};
{{ s.queries }} queries.</p>
<p><strong>{{ headline }}</strong></p>
{% if not s.complete %}<p><strong>Stopped by the query budget</strong>: run the same command again to go on.</p>{% endif %}
{% if s.by_kind %}<table><tr><th>A/A pairs</th><th>false alarms</th></tr>
{% for kind, r in s.by_kind.items() %}<tr><td>{{ kind }}</td><td>{{ rate(r) }}</td></tr>{% endfor %}</table>{% endif %}
{% if s.tuned_false_alarms %}<p>With every metric at its suggested tolerance: {{ rate(s.tuned_false_alarms) }}.</p>{% endif %}
<h2>Metrics</h2>
<table><tr>{% for h in metric_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in metrics %}<tr>{% for cell in row %}<td{% if loop.index == 5 and cell.startswith("NOISY") %} class="noisy"{% endif %}>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
<div class="chart">{{ chart }}</div>
{% for m in s.metrics if m.changes %}<h3>Releases {{ m.metric }} at {{ suggestion(m) }} would judge otherwise</h3>
<table><tr><th>service</th><th>version</th><th>was</th><th>would be</th></tr>
{% for c in m.changes %}<tr><td>{{ c.service }}</td><td>{{ c.version }}</td><td>{{ c.before }}</td><td>{{ c.after }}</td></tr>{% endfor %}</table>{% endfor %}
<h2>Releases ({{ s.releases|length }})</h2>
<table><tr><th>service</th><th>version</th><th>baseline</th><th>candidate from (UTC)</th><th>verdict</th><th>failing</th></tr>
{% for row in releases %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if s.incidents %}<h2>Incidents</h2><table><tr><th>service</th><th>version</th><th>known from</th><th>outcome</th></tr>
{% for row in incidents %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% if s.compared is not none %}<h2>Releases the other configuration judges otherwise ({{ s.compared|length }})</h2>
<table><tr><th>service</th><th>version</th><th>this configuration</th><th>the other</th></tr>
{% for c in s.compared %}<tr><td>{{ c.service }}</td><td>{{ c.version }}</td><td>{{ c.before }}</td><td>{{ c.after }}</td></tr>{% endfor %}</table>{% endif %}
<h2>Skipped</h2><table><tr><th>why</th><th>how many</th></tr>
{% for why, count in s.skipped.items() %}<tr><td>{{ why }}</td><td>{{ count }}</td></tr>{% endfor %}
<tr><td>A/A pairs held or inconclusive for missing data alone (not counted)</td><td>{{ s.unjudged_pairs }}</td></tr></table>
{% for note in s.notes %}<p>{{ note }}</p>{% endfor %}
</body></html>
"""
_html = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(HTML_TEMPLATE)


def render_html(summary: dict[str, Any]) -> str:
    """The backtest as one HTML file: plotly.js inlined, nothing fetched when it is opened."""
    chart = Markup(rate_chart(summary).to_html(full_html=False, include_plotlyjs=True))  # plotly's own escaping: trusted
    return _html.render(
        s=summary, headline=headline(summary), rate=rate_text, metric_header=METRIC_HEADER, metrics=metric_rows(summary),
        chart=chart, suggestion=suggestion_text, releases=release_rows(summary), incidents=incident_rows(summary),
    )
