"""A release's report, HTML (self-contained, charts embedded) or Markdown, rebuilt from its stored evaluation.

Works only from the JSON document the history store keeps (releasehealth.serialize.evaluation_to_dict):
never from Prometheus or Elasticsearch, so a report still renders after the sources forgot the data.
Every label, reason, log template and example in the document is untrusted text: the HTML template is
autoescaped, and Markdown escapes it (tables) or fences it (examples, queries).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import jinja2
import plotly.graph_objects as go
from markupsafe import Markup

FINGERPRINT_COVERS = (
    "SHA-256 (first 16 hex digits) of the effective judging policy and this service's metric specs, "
    "as configured when this report was made (not necessarily when the release was evaluated)"
)
FLAGGED = ("NEW", "INCREASED")  # the signature statuses whose examples a reader needs to see
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def config_fingerprint(*parts: object) -> str:
    """The first 16 hex digits of the SHA-256 of the parts' reprs (frozen dataclasses: stable reprs)."""
    return hashlib.sha256("\n".join(repr(p) for p in parts).encode()).hexdigest()[:16]


# ---- the report's content, as plain data ----------------------------------------------------------


def number(value: Any, unit: str = "") -> str:
    """A stored number as shown: 6 significant digits, '-' for none, 'inf' kept; the unit appended."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else f"{value:.6g}"
    return f"{text} {unit}".strip() if unit else text


def percent(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value}" if isinstance(value, str) else f"{value * 100:+.1f}%"


def timeline(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(ISO time, event) of the release's moments, in time order."""
    events: list[tuple[str, str]] = []
    for role in ("baseline", "candidate"):
        deploy = document.get(role) or {}
        if deploy.get("deployed_at"):
            events.append((deploy["deployed_at"], f"{role} {deploy.get('version')} deployed"))
        window = document.get(f"{role}_window") or {}
        if window.get("start"):
            events.append((window["start"], f"{role} window starts"))
            events.append((window["end"], f"{role} window ends"))
    if (document.get("candidate") or {}).get("last_seen"):
        events.append((document["candidate"]["last_seen"], "candidate last seen"))
    if document.get("evaluated_at"):
        events.append((document["evaluated_at"], "evaluated"))
    return sorted(events, key=lambda event: datetime.fromisoformat(event[0]))


def _minutes(points: list[list[Any]], start: str | None) -> tuple[list[float], list[Any]]:
    """Minutes since the window's start (the first point when the window is unknown), and the values."""
    if not points:
        return [], []
    origin = datetime.fromisoformat(start).timestamp() if start else points[0][0]
    return [(t - origin) / 60 for t, _ in points], [v for _, v in points]


def chart(document: dict[str, Any], verdict: dict[str, Any], include_plotlyjs: bool) -> str:
    """The metric's baseline and candidate series against minutes since each window's start, as an HTML
    fragment; plotly escapes the JSON it embeds, and the trace names are fixed words."""
    figure = go.Figure()
    for role in ("baseline", "candidate"):
        window = document.get(f"{role}_window") or {}
        x, y = _minutes(verdict["series"].get(role) or [], window.get("start"))
        figure.add_trace(go.Scatter(x=x, y=y, name=role, mode="lines+markers"))
    figure.update_layout(
        height=300, margin={"l": 50, "r": 20, "t": 20, "b": 40},
        xaxis_title="minutes since the window's start", yaxis_title=verdict.get("unit") or "",
    )
    return figure.to_html(full_html=False, include_plotlyjs=include_plotlyjs, config={"displaylogo": False})


def _charts(document: dict[str, Any]) -> dict[str, Markup]:
    """One chart per metric with a series snapshot; plotly.js is inlined once, in the first."""
    charts: dict[str, Markup] = {}
    for verdict in document.get("verdicts") or []:
        series = verdict.get("series") or {}
        if series.get("baseline") or series.get("candidate"):
            charts[verdict["metric"]] = Markup(chart(document, verdict, include_plotlyjs=not charts))
    return charts


# ---- HTML ------------------------------------------------------------------------------------------

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>release-health report: {{ d.service }} {{ candidate.version }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
pre { background: #f5f5f5; padding: .5em; white-space: pre-wrap; word-break: break-all; }
.PROMOTE { color: #080; } .ROLLBACK { color: #b00; } .HOLD, .INCONCLUSIVE { color: #a60; }
</style></head><body>
<h1>{{ d.service }} {{ candidate.version }}</h1>
<section id="verdict"><h2>Verdict</h2>
<p class="{{ d.recommendation.action }}"><strong>{{ d.recommendation.action }}</strong>
(score {{ number(d.score) }}, baseline {{ baseline.version or "-" }})</p>
<p>Reason: {{ d.recommendation.reason }}</p>
{% for note in d.notes %}<p>Note: {{ note }}</p>{% endfor %}
</section>
<section id="timeline"><h2>Timeline (UTC)</h2><table><tr><th>time</th><th>event</th></tr>
{% for at, event in timeline %}<tr><td>{{ at }}</td><td>{{ event }}</td></tr>{% endfor %}
</table></section>
<section id="metrics"><h2>Metric comparisons</h2>
<table><tr><th>metric</th><th>group</th><th>verdict</th><th>baseline</th><th>candidate</th><th>change</th><th>p-value</th><th>test</th></tr>
{% for v in d.verdicts %}<tr><td>{{ v.metric }}{% if v.critical %} (critical){% endif %}</td><td>{{ v.group }}</td>
<td>{{ v.classification }}</td><td>{{ number(v.baseline.value, v.unit) }}<br>{{ v.baseline.detail }}</td>
<td>{{ number(v.candidate.value, v.unit) }}<br>{{ v.candidate.detail }}</td><td>{{ percent(v.change) }}</td>
<td>{{ number(v.p_value) }}</td><td>{{ v.test }}</td></tr>{% endfor %}
</table>
{% for v in d.verdicts %}<h3>{{ v.metric }}: {{ v.classification }}</h3><p>{{ v.reason }}</p>
{% if v.metric in charts %}<div class="chart">{{ charts[v.metric] }}</div>{% else %}<p>No series stored.</p>{% endif %}
{% endfor %}</section>
<section id="logs"><h2>Log signatures</h2>
{% if not d.logs %}<p>Logs were not read.</p>
{% elif d.logs.error %}<p>Logs could not be read: {{ d.logs.error }}</p>
{% else %}<p>Rates per 1k {{ "requests" if d.logs.rate_basis == "requests" else "log lines" }}.</p>
<table><tr><th>status</th><th>level</th><th>template</th><th>lines</th><th>rate</th><th>p-value</th><th>flags</th></tr>
{% for s in d.logs.signatures %}<tr><td>{{ s.status }}</td><td>{{ s.level }}</td><td><code>{{ s.template }}</code></td>
<td>{{ number(s.baseline_count) }} &rarr; {{ number(s.candidate_count) }}</td><td>{{ number(s.baseline_rate) }} &rarr; {{ number(s.candidate_rate) }}</td>
<td>{{ number(s.p_value) }}</td><td>{{ "not a risk" if s.not_a_risk else "" }}{{ "" if s.credible else " not credible yet" }}</td></tr>{% endfor %}
</table>
{% for s in d.logs.signatures if s.status in flagged and s.examples %}<h3>{{ s.status }}: <code>{{ s.template }}</code></h3>
{% for example in s.examples %}<pre class="example">{{ example }}</pre>{% endfor %}{% endfor %}
{% endif %}</section>
<section id="queries"><h2>Queries that ran</h2>
{% for q in d.queries %}<p>{{ q.template }} ({{ q.source }}, {{ q.start }} .. {{ q.end }}{% if q.step_seconds %}, step {{ q.step_seconds }} s{% endif %})</p>
<pre class="query">{{ q.promql }}</pre>{% endfor %}</section>
<section id="baseline"><h2>Baseline</h2>
<p>Policy {{ d.baseline_policy }}: {{ d.baseline_description }}</p>
<p>Baseline {{ baseline.version or "-" }} deployed {{ baseline.deployed_at or "-" }} (commit {{ baseline.commit or "-" }});
candidate {{ candidate.version or "-" }} deployed {{ candidate.deployed_at or "-" }} (commit {{ candidate.commit or "-" }}).</p>
</section>
<section id="fingerprint"><h2>Configuration fingerprint</h2>
<p><code>{{ fingerprint }}</code>: {{ covers }}.</p></section>
</body></html>
"""
_environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_html = _environment.from_string(HTML_TEMPLATE)


def render_html(document: dict[str, Any], config_fingerprint: str) -> str:
    """The report as one HTML file: plotly.js inlined once, nothing fetched when it is opened."""
    return _html.render(
        d=document, candidate=document.get("candidate") or {}, baseline=document.get("baseline") or {},
        timeline=timeline(document), charts=_charts(document), number=number, percent=percent,
        flagged=FLAGGED, fingerprint=config_fingerprint, covers=FINGERPRINT_COVERS,
    )


# ---- Markdown --------------------------------------------------------------------------------------


def md_escape(text: Any) -> str:
    """Untrusted text as literal Markdown: every special character backslash-escaped (CommonMark allows
    escaping any ASCII punctuation), line breaks flattened so a table row stays one row."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def fenced(text: str, info: str = "text") -> str:
    """A fenced code block whose fence is longer than any backtick run in the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]


def _md_metrics(document: dict[str, Any]) -> list[str]:
    rows = [
        (
            v["metric"] + (" (critical)" if v.get("critical") else ""), v.get("group"), v["classification"],
            f"{number(v['baseline']['value'], v.get('unit') or '')} ({v['baseline']['detail']})",
            f"{number(v['candidate']['value'], v.get('unit') or '')} ({v['candidate']['detail']})",
            percent(v.get("change")), number(v.get("p_value")), v.get("test"),
        )
        for v in document.get("verdicts") or []
    ]
    lines = ["## Metric comparisons", ""]
    lines += _table(("metric", "group", "verdict", "baseline", "candidate", "change", "p-value", "test"), rows)
    for v in document.get("verdicts") or []:
        lines += ["", f"- {md_escape(v['reason'])}"]
    return lines


def _md_logs(document: dict[str, Any]) -> list[str]:
    logs = document.get("logs")
    lines = ["## Log signatures", ""]
    if not logs:
        return lines + ["Logs were not read."]
    if logs.get("error"):
        return lines + [f"Logs could not be read: {md_escape(logs['error'])}"]
    per = "requests" if logs.get("rate_basis") == "requests" else "log lines"
    lines += [f"Rates per 1k {per}.", ""]
    rows = [
        (
            s["status"], s["level"], s["template"], f"{number(s['baseline_count'])} → {number(s['candidate_count'])}",
            f"{number(s['baseline_rate'])} → {number(s['candidate_rate'])}", number(s.get("p_value")),
            ("not a risk " if s.get("not_a_risk") else "") + ("" if s.get("credible") else "not credible yet"),
        )
        for s in logs.get("signatures") or []
    ]
    lines += _table(("status", "level", "template", "lines", "rate", "p-value", "flags"), rows)
    for s in logs.get("signatures") or []:
        if s["status"] in FLAGGED and s.get("examples"):
            lines += ["", f"### {s['status']}: {md_escape(s['template'])}", ""]
            lines += [fenced(example) for example in s["examples"]]
    return lines


def _md_queries(document: dict[str, Any]) -> list[str]:
    lines = ["## Queries that ran"]
    for q in document.get("queries") or []:
        step = f", step {q['step_seconds']} s" if q.get("step_seconds") else ""
        lines += ["", f"{md_escape(q['template'])} ({md_escape(q['source'])}, {q['start']} .. {q['end']}{step})", ""]
        lines.append(fenced(q["promql"]))
    return lines


def render_markdown(document: dict[str, Any], config_fingerprint: str) -> str:
    """The report as Markdown: the same sections as the HTML, the charts' numbers in the tables."""
    candidate, baseline = document.get("candidate") or {}, document.get("baseline") or {}
    r = document["recommendation"]
    lines = [
        f"# {md_escape(document['service'])} {md_escape(candidate.get('version'))}", "", "## Verdict", "",
        f"**{r['action']}** (score {number(document.get('score'))}, baseline {md_escape(baseline.get('version') or '-')})",
        "", f"Reason: {md_escape(r['reason'])}",
    ]
    lines += [f"\nNote: {md_escape(note)}" for note in document.get("notes") or []]
    lines += ["", "## Timeline (UTC)", ""] + _table(("time", "event"), timeline(document))
    lines += [""] + _md_metrics(document) + [""] + _md_logs(document) + [""] + _md_queries(document)
    lines += [""] + _md_baseline(document)
    lines += ["", "## Configuration fingerprint", "", f"`{config_fingerprint}`: {FINGERPRINT_COVERS}.", ""]
    return "\n".join(lines)


def _md_baseline(document: dict[str, Any]) -> list[str]:
    policy = f"Policy {md_escape(document.get('baseline_policy'))}: {md_escape(document.get('baseline_description') or '')}"
    releases = "; ".join(
        f"{role} {md_escape(deploy.get('version') or '-')} deployed {deploy.get('deployed_at') or '-'}"
        f" (commit {md_escape(deploy.get('commit') or '-')})"
        for role, deploy in (("baseline", document.get("baseline") or {}), ("candidate", document.get("candidate") or {}))
    )
    return ["## Baseline", "", policy, "", f"{releases}."]
