"""A release's post-deploy review report, HTML (self-contained, charts embedded) or Markdown, rendered from
its Evaluation: the one the dashboard just made, or one read back from the history store
(releasehealth.serialize.evaluation_from_dict), so a report still renders after the sources forgot the data.

Every label, reason, log template and example is untrusted text: the HTML template is autoescaped, and
Markdown escapes it (tables) or fences it (examples, queries).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import jinja2
import plotly.graph_objects as go
from markupsafe import Markup

from releasehealth.format import (
    count_text,
    duration_text,
    format_p_value,
    per_thousand,
    score_text,
    signed_percent,
    time_text,
    value_text,
)
from releasehealth.model import NOTABLE_SIGNATURES, Deploy, Series, Window
from releasehealth.verdicts import Evaluation, LogSignature, MetricVerdict

FINGERPRINT_COVERS = (
    "SHA-256 (first 16 hex digits) of the effective judging policy and this service's metric specs, "
    "as configured when this report was made (not necessarily when the release was evaluated)"
)
FLAGGED = NOTABLE_SIGNATURES
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def config_fingerprint(*parts: object) -> str:
    """The first 16 hex digits of the SHA-256 of the parts' reprs (frozen dataclasses: stable reprs)."""
    return hashlib.sha256("\n".join(repr(p) for p in parts).encode()).hexdigest()[:16]


# ---- the report's content ------------------------------------------------------------------------------


def timeline(evaluation: Evaluation) -> list[tuple[str, str]]:
    """(time to the second, event) of the release's moments, in time order."""
    events: list[tuple[datetime, str]] = []
    roles: tuple[tuple[str, Deploy | None, Window | None], ...] = (
        ("baseline", evaluation.baseline, evaluation.baseline_window),
        ("candidate", evaluation.candidate, evaluation.candidate_window),
    )
    for role, deploy, window in roles:
        if deploy is not None:
            events.append((deploy.started_at, f"{role} {deploy.version} deployed"))
        if window is not None:
            events += [(window.start, f"{role} window starts"), (window.end, f"{role} window ends")]
    if evaluation.candidate is not None and evaluation.candidate.last_seen is not None:
        events.append((evaluation.candidate.last_seen, "candidate last seen"))
    events.append((evaluation.evaluated_at, "evaluated"))
    return [(time_text(at), event) for at, event in sorted(events, key=lambda event: event[0].timestamp())]


def _minutes(series: Series | None, window: Window | None) -> tuple[list[float], list[float]]:
    """Minutes since the window's start (the first point when the window is unknown), and the values."""
    if series is None or not series.timestamps.size:
        return [], []
    origin = window.start.timestamp() if window else float(series.timestamps[0])
    return [(float(t) - origin) / 60 for t in series.timestamps], [float(v) for v in series.values]


def chart(evaluation: Evaluation, verdict: MetricVerdict, include_plotlyjs: bool) -> str:
    """The metric's baseline and candidate series against minutes since each window's start, as an HTML
    fragment; plotly escapes the JSON it embeds, and the trace names are fixed words."""
    figure = go.Figure()
    for role, series, window in (
        ("baseline", verdict.baseline_series, evaluation.baseline_window),
        ("candidate", verdict.candidate_series, evaluation.candidate_window),
    ):
        x, y = _minutes(series, window)
        figure.add_trace(go.Scatter(x=x, y=y, name=role, mode="lines+markers"))
    figure.update_layout(
        height=300, margin={"l": 50, "r": 20, "t": 20, "b": 40},
        xaxis_title="minutes since the window's start", yaxis_title=verdict.unit or "",
    )
    return str(figure.to_html(full_html=False, include_plotlyjs=include_plotlyjs, config={"displaylogo": False}))


def _charted(verdict: MetricVerdict) -> bool:
    return any(s is not None and s.timestamps.size for s in (verdict.baseline_series, verdict.candidate_series))


def _charts(evaluation: Evaluation) -> dict[str, Markup]:
    """One chart per metric with per-step series; plotly.js is inlined once, in the first."""
    charts: dict[str, Markup] = {}
    for verdict in _verdicts(evaluation):
        if _charted(verdict):
            charts[verdict.metric] = Markup(chart(evaluation, verdict, include_plotlyjs=not charts))
    return charts


def _verdicts(evaluation: Evaluation) -> tuple[MetricVerdict, ...]:
    return evaluation.score.verdicts if evaluation.score else ()


def _score(evaluation: Evaluation) -> float | None:
    return evaluation.score.score if evaluation.score else None


def _step_text(step: timedelta | None) -> str:
    return f", step {duration_text(step)}" if step else ""


def _flags(signature: LogSignature) -> str:
    flags = ["not a risk"] if signature.ignored else []
    flags += [] if signature.credible else ["not credible yet"]
    flags += [f"caller {signature.caller}"] if signature.caller else []
    flags += [f"replaced by {signature.replaced_by}"] if signature.replaced_by else []
    flags += ["seen in the service's history"] if signature.in_history else []
    return "; ".join(flags)


# ---- HTML ------------------------------------------------------------------------------------------

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>release-health report: {{ e.service }} {{ candidate.version }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
pre { background: #f5f5f5; padding: .5em; white-space: pre-wrap; word-break: break-all; }
.PROMOTE { color: #080; } .ROLLBACK { color: #b00; } .HOLD, .INCONCLUSIVE { color: #a60; }
</style></head><body>
<h1>{{ e.service }} {{ candidate.version }}</h1>
<section id="verdict"><h2>Verdict</h2>
<p class="{{ e.recommendation.action.value }}"><strong>{{ e.recommendation.action.value }}</strong>
(score {{ score_text(score) }}, baseline {{ baseline.version or "-" }})</p>
<p>Reason: {{ e.recommendation.reason }}</p>
{% for note in e.notes %}<p>Note: {{ note }}</p>{% endfor %}
</section>
<section id="timeline"><h2>Timeline (UTC)</h2><table><tr><th>time</th><th>event</th></tr>
{% for at, event in timeline %}<tr><td>{{ at }}</td><td>{{ event }}</td></tr>{% endfor %}
</table></section>
<section id="metrics"><h2>Metric comparisons</h2>
<table><tr><th>metric</th><th>group</th><th>verdict</th><th>baseline</th><th>candidate</th><th>change</th><th>p-value</th><th>test</th></tr>
{% for v in verdicts %}<tr><td>{{ v.metric }}{% if v.critical %} (critical){% endif %}</td><td>{{ v.group }}</td>
<td>{{ v.classification.value }}</td><td>{{ value(v.baseline.value, v.unit) }}<br>{{ v.baseline.detail }}</td>
<td>{{ value(v.candidate.value, v.unit) }}<br>{{ v.candidate.detail }}</td><td>{{ percent(v.change) }}</td>
<td>{{ p(v.p_value) }}</td><td>{{ v.test }}</td></tr>{% endfor %}
</table>
{% for v in verdicts %}<h3>{{ v.metric }}: {{ v.classification.value }}</h3><p>{{ v.reason }}</p>
{% if v.metric in charts %}<div class="chart">{{ charts[v.metric] }}</div>{% else %}<p>No series stored.</p>{% endif %}
{% endfor %}</section>
<section id="logs"><h2>Log signatures</h2>
{% if not logs %}<p>Logs were not read.</p>
{% elif logs.error %}<p>Logs could not be read: {{ logs.error }}</p>
{% else %}<p>Rates per 1k {{ "requests" if logs.rate_basis == "requests" else "log lines" }}.</p>
{% if logs.blast_radius %}<p>{{ logs.blast_radius }}</p>{% endif %}
<table><tr><th>status</th><th>level</th><th>template</th><th>lines</th><th>rate</th><th>p-value</th><th>flags</th></tr>
{% for s in logs.signatures %}<tr><td>{{ s.status.value }}</td><td>{{ s.level }}</td><td><code>{{ s.template }}</code></td>
<td>{{ count(s.baseline_count) }} &rarr; {{ count(s.candidate_count) }}</td><td>{{ rate(s.baseline_rate) }} &rarr; {{ rate(s.candidate_rate) }}</td>
<td>{{ p(s.p_value) }}</td><td>{{ flags(s) }}</td></tr>{% endfor %}
</table>
{% for s in logs.signatures if s.status in flagged and s.examples %}<h3>{{ s.status.value }}: <code>{{ s.template }}</code></h3>
{% for example in s.examples %}<pre class="example">{{ example }}</pre>{% endfor %}{% endfor %}
{% endif %}</section>
<section id="queries"><h2>Queries that ran</h2>
{% for q in e.queries %}<p>{{ q.template }} ({{ q.source }}, {{ at(q.start) }} .. {{ at(q.end) }}{{ step(q.step) }})</p>
<pre class="query">{{ q.text }}</pre>{% endfor %}</section>
<section id="baseline"><h2>Baseline</h2>
<p>Policy {{ e.policy.value }}: {{ e.baseline_description }}</p>
<p>Baseline {{ baseline.version or "-" }} deployed {{ at(baseline.started_at) }} (commit {{ baseline.commit or "-" }});
candidate {{ candidate.version or "-" }} deployed {{ at(candidate.started_at) }} (commit {{ candidate.commit or "-" }}).</p>
</section>
<section id="fingerprint"><h2>Configuration fingerprint</h2>
<p><code>{{ fingerprint }}</code>: {{ covers }}.</p></section>
</body></html>
"""
_environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_html = _environment.from_string(HTML_TEMPLATE)
_NO_DEPLOY = {"version": "", "started_at": None, "commit": ""}


def render_html(evaluation: Evaluation, config_fingerprint: str) -> str:
    """The report as one HTML file: plotly.js inlined once, nothing fetched when it is opened."""
    return _html.render(
        e=evaluation, candidate=evaluation.candidate or _NO_DEPLOY, baseline=evaluation.baseline or _NO_DEPLOY,
        score=_score(evaluation), verdicts=_verdicts(evaluation), logs=evaluation.logs, timeline=timeline(evaluation),
        charts=_charts(evaluation), value=value_text, count=count_text, rate=per_thousand, p=format_p_value,
        score_text=score_text, percent=signed_percent, at=time_text, step=_step_text, flags=_flags,
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


def markdown_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]


def _md_metrics(evaluation: Evaluation) -> list[str]:
    rows = [
        (
            v.metric + (" (critical)" if v.critical else ""), v.group, v.classification.value,
            f"{value_text(v.baseline.value, v.unit)} ({v.baseline.detail})",
            f"{value_text(v.candidate.value, v.unit)} ({v.candidate.detail})",
            signed_percent(v.change), format_p_value(v.p_value), v.test,
        )
        for v in _verdicts(evaluation)
    ]
    lines = ["## Metric comparisons", ""]
    lines += markdown_table(("metric", "group", "verdict", "baseline", "candidate", "change", "p-value", "test"), rows)
    for v in _verdicts(evaluation):
        lines += ["", f"- {md_escape(v.reason)}"]
    return lines


def _md_logs(evaluation: Evaluation) -> list[str]:
    logs = evaluation.logs
    lines = ["## Log signatures", ""]
    if not logs:
        return lines + ["Logs were not read."]
    if logs.error:
        return lines + [f"Logs could not be read: {md_escape(logs.error)}"]
    per = "requests" if logs.rate_basis == "requests" else "log lines"
    lines += [f"Rates per 1k {per}.", ""]
    lines += [md_escape(logs.blast_radius), ""] if logs.blast_radius else []
    rows = [
        (
            s.status.value, s.level, s.template, f"{count_text(s.baseline_count)} → {count_text(s.candidate_count)}",
            f"{per_thousand(s.baseline_rate)} → {per_thousand(s.candidate_rate)}", format_p_value(s.p_value), _flags(s),
        )
        for s in logs.signatures
    ]
    lines += markdown_table(("status", "level", "template", "lines", "rate", "p-value", "flags"), rows)
    for s in logs.signatures:
        if s.status in FLAGGED and s.examples:
            lines += ["", f"### {s.status.value}: {md_escape(s.template)}", ""]
            lines += [fenced(example) for example in s.examples]
    return lines


def _md_queries(evaluation: Evaluation) -> list[str]:
    lines = ["## Queries that ran"]
    for q in evaluation.queries:
        lines += ["", f"{md_escape(q.template)} ({md_escape(q.source)}, {time_text(q.start)} .. {time_text(q.end)}{_step_text(q.step)})", ""]
        lines.append(fenced(q.text))
    return lines


def render_markdown(evaluation: Evaluation, config_fingerprint: str) -> str:
    """The report as Markdown: the same sections as the HTML, the charts' numbers in the tables."""
    r = evaluation.recommendation
    baseline = evaluation.baseline.version if evaluation.baseline else "-"
    lines = [
        f"# {md_escape(evaluation.service)} {md_escape(evaluation.candidate.version if evaluation.candidate else None)}",
        "", "## Verdict", "",
        f"**{r.action.value}** (score {score_text(_score(evaluation))}, baseline {md_escape(baseline)})",
        "", f"Reason: {md_escape(r.reason)}",
    ]
    lines += [f"\nNote: {md_escape(note)}" for note in evaluation.notes]
    lines += ["", "## Timeline (UTC)", ""] + markdown_table(("time", "event"), timeline(evaluation))
    lines += [""] + _md_metrics(evaluation) + [""] + _md_logs(evaluation) + [""] + _md_queries(evaluation)
    lines += [""] + _md_baseline(evaluation)
    lines += ["", "## Configuration fingerprint", "", f"`{config_fingerprint}`: {FINGERPRINT_COVERS}.", ""]
    return "\n".join(lines)


def _md_baseline(evaluation: Evaluation) -> list[str]:
    policy = f"Policy {md_escape(evaluation.policy.value)}: {md_escape(evaluation.baseline_description)}"
    releases = "; ".join(
        f"{role} {md_escape(deploy.version if deploy else '-')} deployed {time_text(deploy.started_at if deploy else None)}"
        f" (commit {md_escape((deploy.commit if deploy else '') or '-')})"
        for role, deploy in (("baseline", evaluation.baseline), ("candidate", evaluation.candidate))
    )
    return ["## Baseline", "", policy, "", f"{releases}."]
