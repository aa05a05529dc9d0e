"""Streamlit rendering shared by the pages; untrusted text reaches Markdown only through `escape_markdown`."""

# Label values, reasons and error messages are untrusted: they go to Markdown-rendering elements
# (st.error, st.caption, st.metric, labels) escaped, or to code blocks and tables, which render text inertly.

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import streamlit as st

from releasehealth import backtest_report, report
from releasehealth.config import Catalogue
from releasehealth.dashboard import charts, tables
from releasehealth.dashboard.data import TTL_SECONDS, Loaded, WatchState
from releasehealth.format import format_age, format_time, plural
from releasehealth.model import Action, Deploy, Query, Window
from releasehealth.serialize import evaluation_to_dict
from releasehealth.store import StoredBacktest
from releasehealth.verdicts import Evaluation, LogEvidence, SourceHealth, Timeline

T = TypeVar("T")
RELEASE_PAGE = "views/release.py"
SERVICE_PAGE = "views/service.py"
TTL_TEXT = f"{TTL_SECONDS} s"
OVERVIEW_PAGE = "views/overview.py"
# Every ASCII punctuation character: CommonMark lets any of them be backslash-escaped, and escaping all
# of them also disarms Streamlit's extensions (:color[...] directives, $math$) and GFM autolinks.
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")

DEPLOYED = st.column_config.DatetimeColumn("deployed (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC")
# Narrow enough for the reason to show at 1280 px; each metric's change is in the table below it.
OVERVIEW_COLUMNS = {
    "service": st.column_config.TextColumn("service", pinned=True),
    "version": st.column_config.TextColumn("version", width="small"),
    "age": st.column_config.TextColumn("age", width="small", help="Since the release was deployed"),
    "action": st.column_config.TextColumn("action", width="small"),
    "score": st.column_config.NumberColumn("score", format="%.0f", width="small", help="0-100, coloured as its action"),
    # One line colour for every row (Streamlit colours a chart column as a whole); the cell's background is
    # the shade of the error ratio's own verdict (tables.styled_overview).
    "error ratio trend": st.column_config.LineChartColumn(
        "error ratio", width="small", color="#424242",
        help="Error ratio per step (%), the baseline window then the candidate window; red: it fails the release",
    ),
    "failing log signatures": st.column_config.TextColumn(
        "failing logs", width="small", help="Log signatures that fail the release (new or credibly rising errors)"
    ),
    "reason": st.column_config.TextColumn("reason", width="large"),
    "error ratio classification": None,  # hidden: the sparkline's shade says it
}
HISTORY_COLUMNS = {
    "score": st.column_config.ProgressColumn("score", min_value=0, max_value=100, format="%.0f"),
    "reason": OVERVIEW_COLUMNS["reason"],
}
# Counts are estimates scaled up from the sample, so decimals would claim a precision they do not have.
LOG_COUNT = st.column_config.NumberColumn(format="%.0f", help="Lines in the window, estimated from the sample")


def escape_markdown(text: str) -> str:
    """Return `text` with every Markdown-significant character backslash-escaped, so it renders literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _markdown_lines(text: str) -> str:
    """Escaped text keeping its line breaks (Markdown would join them): multi-line config errors."""
    return "  \n".join(escape_markdown(line.strip()) for line in text.splitlines())


def show_error(message: str) -> None:
    st.error(_markdown_lines(message), icon=":material/error:")


def unwrap(loaded: Loaded[T]) -> T:
    """The loaded value, or show its error and stop the page: a failing source never crashes a page."""
    if loaded.value is None:
        show_error(loaded.error or "no data")
        st.stop()
    return loaded.value


def not_found(message: str) -> NoReturn:
    """An unknown service or version in the URL: say so, offer the way back, stop the page."""
    st.warning(_markdown_lines(message), icon=":material/search_off:")
    st.page_link(OVERVIEW_PAGE, label="Back to the fleet overview", icon=":material/arrow_back:")
    st.stop()


def source_banner(loaded: Loaded[list[SourceHealth]]) -> None:
    """A banner per source that does not answer, on every page (the rest of the page still renders)."""
    if loaded.value is None:
        return  # the page's own loader shows the configuration error
    for down in (h for h in loaded.value if not h.ok):
        st.error(
            _markdown_lines(f"Source {down.name} ({down.url}) does not answer: {down.error}. "
                            "What depends on it is shown as an error; the rest still works."),
            icon=":material/cloud_off:",
        )


def header(description: str, on_refresh: Callable[[], None]) -> None:
    """Above every page: where the data comes from, and a button to ask the sources again now."""
    where, refresh = st.columns([6, 1], vertical_alignment="center")
    where.caption(escape_markdown(description))
    refresh.button("Refresh", icon=":material/refresh:", on_click=on_refresh, help="Ask the sources again now")


# ---- overview ------------------------------------------------------------------------------------


def overview_filters(evaluations: Sequence[Evaluation], team_of: dict[str, str]) -> list[Evaluation]:
    """Verdict, team and text filters (kept in the session while the overview refreshes itself)."""
    by_verdict, by_team, by_text = st.columns([2, 2, 3])
    actions = by_verdict.multiselect("Verdict", [a.value for a in tables.RISK_ORDER], key="filter_action", placeholder="all")
    teams = sorted({t for t in team_of.values() if t})
    chosen_teams = by_team.multiselect("Team", teams, key="filter_team", placeholder="all", disabled=not teams)
    text = by_text.text_input("Search", key="filter_text", placeholder="service, version, team or reason")
    return tables.filter_evaluations(evaluations, actions, chosen_teams, text, team_of)


def action_counts(evaluations: Sequence[Evaluation]) -> None:
    counts = tables.action_counts(evaluations)
    for column, (action, count) in zip(st.columns(len(counts)), counts.items(), strict=True):
        column.metric(action.value, count)


def show_pending(place: Any, team_of: Mapping[str, str]) -> Callable[[Mapping[str, Sequence[Deploy]], datetime], None]:
    """What draws the fleet's releases in `place` (an st.empty) as soon as their deploys are known, while
    they are judged: the overview's first rows on a cold start, replaced by the verdicts."""

    def show(deploys: Mapping[str, Sequence[Deploy]], now: datetime) -> None:
        with place.container():
            st.caption(escape_markdown(f"{plural(len(deploys), 'service')}: their latest releases, being judged…"))
            st.dataframe(tables.pending_table(deploys, now, team_of), hide_index=True, column_config=OVERVIEW_COLUMNS)

    return show


def fleet_table(evaluations: Sequence[Evaluation], team_of: dict[str, str] | None = None) -> None:
    """The fleet, riskiest first; selecting a row opens its release."""
    ordered = tables.by_risk(evaluations)
    if not ordered:
        st.info("No service matches the filters." if st.session_state.get("filter_text") or st.session_state.get(
            "filter_action") or st.session_state.get("filter_team") else "No service is configured.")
        return
    table = tables.overview_table(ordered, team_of)
    event = st.dataframe(
        tables.styled_overview(table), hide_index=True, column_config=OVERVIEW_COLUMNS, on_select="rerun",
        selection_mode="single-row", key="fleet_table",
    )
    for row in event.selection.rows:
        _switch_to_release(ordered[row])
    with st.expander("Each metric: baseline → candidate and the change"):
        st.dataframe(
            tables.metric_changes_table(ordered), hide_index=True,
            column_config={"service": OVERVIEW_COLUMNS["service"], "deployed": DEPLOYED},
        )


def release_picker(evaluations: Sequence[Evaluation]) -> None:
    """A select box of the fleet's latest releases, riskiest first, and a link to the chosen one."""
    openable = {e.service: e for e in tables.by_risk(evaluations) if e.candidate}
    if not openable:
        return
    chosen = st.selectbox(
        "Open a release", list(openable),
        format_func=lambda s: f"{s} {_version(openable[s])} ({openable[s].recommendation.action.value})",
    )
    evaluation = openable[chosen]
    release_link, service_link = st.columns(2)
    with release_link:
        st.page_link(
            RELEASE_PAGE, label=escape_markdown(f"Open {evaluation.service} {_version(evaluation)}"),
            icon=":material/open_in_new:", query_params=_release_params(evaluation),
        )
    with service_link:
        st.page_link(
            SERVICE_PAGE, label=escape_markdown(f"History of {evaluation.service}"), icon=":material/timeline:",
            query_params={"service": evaluation.service},
        )


def attention_links(evaluations: Sequence[Evaluation]) -> None:
    """A link to every release that should not be promoted (ROLLBACK first): one click from the overview."""
    failing = [e for e in tables.by_risk(evaluations) if e.candidate and e.recommendation.action is not Action.PROMOTE]
    if not failing:
        return
    st.caption("Releases that need a look:")
    for evaluation in failing:
        st.page_link(
            RELEASE_PAGE,
            label=escape_markdown(
                f"Open {evaluation.service} {_version(evaluation)} ({evaluation.recommendation.action.value})"
            ),
            icon=":material/error:" if evaluation.recommendation.action is Action.ROLLBACK else ":material/pending:",
            query_params=_release_params(evaluation),
        )


def _version(evaluation: Evaluation) -> str:
    return evaluation.candidate.version if evaluation.candidate else ""


def _release_params(evaluation: Evaluation) -> dict[str, str]:
    return {"service": evaluation.service, "version": _version(evaluation)}


def _switch_to_release(evaluation: Evaluation) -> NoReturn:
    st.switch_page(RELEASE_PAGE, query_params=_release_params(evaluation))


# ---- release -------------------------------------------------------------------------------------


def select_param(
    label: str, param: str, options: Sequence[str], *, default_first: bool = False, clears: Sequence[str] = (),
    write_default: bool = True,
) -> str | None:
    """A select box bound to a query parameter, so the URL is a deep link to what is shown.

    Returns the chosen option; or the requested value even if it is not an option, so the caller
    reports it as unknown rather than silently showing something else. With `write_default` False, the
    first option (the configured default) stays out of the URL until someone picks another.
    """
    requested = st.query_params.get(param) or None
    if requested is not None and requested in options:
        index: int | None = list(options).index(requested)
    else:
        index = 0 if requested is None and default_first and options else None
    chosen = st.selectbox(label, options, index=index, placeholder=f"Choose a {label.lower()}")
    filled_default = requested is None and index is not None and chosen == options[index]
    if chosen is not None and chosen != requested and (write_default or not filled_default):
        st.query_params[param] = chosen
        if requested is not None:  # a value was changed, not a default filled in: what depended on it goes
            for dependent in clears:
                st.query_params.pop(dependent, None)
    return chosen if chosen is not None else requested


def release(evaluation: Evaluation, catalogue: Catalogue) -> None:
    """Everything behind one release's recommendation: banner, releases compared, evidence, queries."""
    recommendation = evaluation.recommendation
    st.subheader(escape_markdown(f"{evaluation.service} {recommendation.candidate}"))
    r = evaluation.recommendation
    banner(evaluation, catalogue.rollback(evaluation.service, r.candidate, r.baseline))
    notes(evaluation)
    summary(evaluation)
    metric_charts(evaluation)
    verdicts(evaluation)
    logs(evaluation)
    queries(evaluation.queries)
    download(evaluation, catalogue)


def banner(evaluation: Evaluation, rollback_command: str) -> None:
    r = evaluation.recommendation
    text = (
        f"**{r.action.value}** {escape_markdown(f'{evaluation.service} {r.candidate}')} "
        f"(baseline {escape_markdown(r.baseline)})  \n{_markdown_lines(r.reason)}"
    )
    if r.action is Action.ROLLBACK:
        st.error(text, icon=":material/undo:")
        st.caption("Roll back with:")
        st.code(rollback_command, language="bash")
    elif r.action is Action.PROMOTE:
        st.success(text, icon=":material/check_circle:")
    else:
        st.warning(text, icon=":material/pending:")


def notes(evaluation: Evaluation) -> None:
    """What degraded without failing the evaluation (e.g. deploy events unreadable): the verdict stands,
    but the reader should know what it was built without."""
    for note in evaluation.notes:
        st.warning(_markdown_lines(note), icon=":material/warning:")


def summary(evaluation: Evaluation) -> None:
    score, candidate, baseline = st.columns(3)
    score.metric("Score", tables.format_score(evaluation), help="Weighted share of passing metrics, 0–100")
    candidate.metric("Candidate", escape_markdown(evaluation.recommendation.candidate))
    baseline.metric("Baseline", escape_markdown(evaluation.recommendation.baseline))
    st.dataframe(tables.release_table(evaluation), hide_index=True)
    st.caption(
        escape_markdown(
            f"Baseline policy: {evaluation.policy.value}. Evaluated at {format_time(evaluation.evaluated_at)}."
        )
    )


def _windows(evaluation: Evaluation) -> tuple[Window | None, Window | None]:
    return evaluation.baseline_window, evaluation.candidate_window


def _versions(evaluation: Evaluation) -> tuple[str, str]:
    return evaluation.recommendation.baseline, evaluation.recommendation.candidate


def metric_charts(evaluation: Evaluation) -> None:
    """A chart per verdict with per-step data, two a row; the others (log_signatures by design, failed
    fetches) named in one line rather than a box each."""
    verdicts_ = tables.verdicts(evaluation)
    if not verdicts_:
        st.info("No metric was judged, so there is no evidence to chart.")
        return
    figures = {v.metric: charts.metric_figure(v, _windows(evaluation), _versions(evaluation)) for v in verdicts_}
    histogram = next((v for v in verdicts_ if v.distribution is not None), None)
    charted = {metric: figure for metric, figure in figures.items() if figure is not None}
    if charted:
        for column, (metric, figure) in zip(itertools.cycle(st.columns(min(len(charted), 2))), charted.items()):
            with column:
                st.plotly_chart(figure, key=f"chart-{metric}")
    uncharted = [f"{v.metric} ({v.classification.value})" for v in verdicts_ if figures[v.metric] is None]
    if uncharted:
        st.caption(escape_markdown(f"No per-step data to chart: {', '.join(uncharted)}."))
    # The latency quantiles share one histogram: its buckets, compared once, show where requests moved.
    figure = charts.distribution_figure(histogram, _versions(evaluation)) if histogram else None
    if figure is not None:
        st.plotly_chart(figure, key="latency-distribution")


def verdicts(evaluation: Evaluation) -> None:
    table = tables.verdict_table(evaluation)
    if table.empty:
        return
    metric = st.column_config.TextColumn(pinned=True)
    st.dataframe(
        tables.styled_verdicts(table), hide_index=True,
        column_config={"metric": metric, "reason": st.column_config.TextColumn(width="large")},
    )
    with st.expander("Each metric's test, p-value and windows"):
        st.dataframe(tables.verdict_test_table(evaluation), hide_index=True, column_config={"metric": metric})


def logs(evaluation: Evaluation) -> None:
    """The log evidence: the signature diff, the messages of what is new or increased, lines per level."""
    st.subheader("Logs")
    evidence = evaluation.logs
    if evidence is None:
        # The core leaves `logs` unset both for a service without logs and for a release it did not judge.
        st.info("Logs were not read: the release was not judged." if evaluation.score is None
                else "Logs are not configured for this service.")
        return
    if evidence.error:
        show_error(f"Logs could not be used: {evidence.error}")
    if evidence.baseline is None and evidence.candidate is None:
        return
    signature_diff(evidence)
    signature_examples(evidence)
    log_levels(evidence, _windows(evaluation), _versions(evaluation))


def signature_diff(evidence: LogEvidence) -> None:
    if not evidence.signatures:
        st.info("No error or warn message was sampled in either window, so there is no signature to compare.")
        return
    if evidence.blast_radius:
        st.caption(escape_markdown(evidence.blast_radius))
    columns = _signature_columns(evidence.rate_basis)
    st.dataframe(tables.signature_table(evidence), hide_index=True, column_config=columns)
    with st.expander("Each signature's lines, error type, caller and notes"):
        st.dataframe(tables.signature_detail_table(evidence), hide_index=True, column_config=columns)


def _signature_columns(rate_basis: str) -> dict[str, Any]:
    unit = tables.rate_label(rate_basis)
    rate = st.column_config.NumberColumn(format="%.3f", help=f"Lines {unit} in the window")
    return {
        "template": st.column_config.TextColumn(width="large"),
        "baseline count": LOG_COUNT,
        "candidate count": LOG_COUNT,
        f"baseline ({unit})": rate,
        f"candidate ({unit})": rate,
        "not a risk": st.column_config.CheckboxColumn(help="On the not-a-risk list: never fails a release"),
        "credible": st.column_config.CheckboxColumn(help="p-value below the release's corrected alpha"),
        "caller": st.column_config.TextColumn(help="Another service's line naming this one: the release's blast radius"),
        "notes": st.column_config.TextColumn(width="medium"),
    }


def signature_examples(evidence: LogEvidence) -> None:
    """The template and raw example messages of every NEW or INCREASED signature, in code blocks: they
    are log text, which Markdown would render (and HTML-like text in it is common)."""
    for signature in tables.flagged_signatures(evidence):
        st.caption(escape_markdown(tables.example_caption(signature)))
        st.code(tables.example_text(signature), language=None, wrap_lines=True)


def log_levels(evidence: LogEvidence, windows: tuple[Window | None, Window | None], versions: tuple[str, str]) -> None:
    figure = charts.log_levels_figure(evidence, windows, versions)
    if figure is not None:
        st.plotly_chart(figure, key="log-levels-chart")
    types, sampling = st.columns(2)
    with types:
        error_types = tables.error_types_table(evidence)
        st.caption("Error types (lines per window)" if not error_types.empty else "No error type in either window.")
        if not error_types.empty:
            st.dataframe(error_types, hide_index=True)
    with sampling:
        for role, data, version in zip(("baseline", "candidate"), (evidence.baseline, evidence.candidate), versions, strict=True):
            if data is not None:
                st.caption(escape_markdown(tables.sampling_text(role, version, data)))


def queries(ran: Sequence[Query]) -> None:
    with st.expander(f"Queries that ran ({len(ran)})"):
        for query in ran:
            st.caption(escape_markdown(_query_caption(query)))
            st.code(query.text, language=None, wrap_lines=True)


def _query_caption(query: Query) -> str:
    if query.start is None:
        return f"{query.template}: instant query at {format_time(query.end)} on {query.source}"
    span = f"{format_time(query.start)} → {format_time(query.end)}"
    if query.step is None:
        # A PromQL instant query's lookback, or an Elasticsearch search's range: both cover the span.
        return f"{query.template}: covers {span}, on {query.source}"
    return f"{query.template}: range query {span}, step {query.step.total_seconds():g}s, on {query.source}"


def download(evaluation: Evaluation, catalogue: Catalogue) -> None:
    """The evaluation as JSON, and the post-deploy review report (HTML with its charts, or Markdown),
    each built only when its button is clicked (the HTML report carries plotly.js: megabytes)."""
    name = tables.safe_file_name(f"{evaluation.service}-{evaluation.recommendation.candidate}")
    service = next((s for s in catalogue.services if s.name == evaluation.service), None)
    fingerprint = report.config_fingerprint(catalogue.policy, service.metrics if service else ())
    json_column, html_column, markdown_column = st.columns(3)
    json_column.download_button(
        "Evaluation (JSON)", lambda: json.dumps(evaluation_to_dict(evaluation), indent=2),
        file_name=f"{name}.json", mime="application/json", on_click="ignore", icon=":material/download:",
    )
    html_column.download_button(
        "Report (HTML)", lambda: report.render_html(evaluation, fingerprint),
        file_name=f"{name}.html", mime="text/html", on_click="ignore", icon=":material/description:",
    )
    markdown_column.download_button(
        "Report (Markdown)", lambda: report.render_markdown(evaluation, fingerprint),
        file_name=f"{name}.md", mime="text/markdown", on_click="ignore", icon=":material/article:",
    )


def baseline_select(catalogue: Catalogue, deploys: Sequence[Deploy], candidate: str | None) -> str | None:
    """The baseline selector of the release page, bound to ?baseline=; None means the configured one."""
    configured = tables.baseline_spec(catalogue.policy)
    options = tables.baseline_options(configured, [d.version for d in deploys], candidate)
    chosen = select_param("Baseline", "baseline", options, default_first=True, write_default=False)
    if chosen is not None and chosen not in options:
        not_found(f"Unknown baseline {chosen!r}: choose one of {', '.join(options[:6])}, or pinned:VERSION.")
    return None if chosen in (None, configured) else chosen


def evaluating(what: str) -> tuple[Any, Callable[[str], None]]:
    """A collapsed st.status for a load that may take a while, and the progress callback that names
    each step of the evaluation in its label as it starts (nothing is called on a cache hit)."""
    status = st.status(escape_markdown(f"Evaluating {what}…"), expanded=False)
    return status, lambda step: status.update(label=escape_markdown(f"Evaluating {what}: {step}…"))


def evaluated(status: Any, loaded: Loaded[Any], seconds: float, label: str) -> None:
    """Close the status: what was done and how long it took, or that it failed (the page shows why)."""
    if loaded.value is None:
        status.update(label=escape_markdown(f"{label}: failed after {seconds:.1f} s"), state="error")
        return
    status.update(
        label=escape_markdown(f"{label} in {seconds:.2f} s (answers are cached for {TTL_TEXT})"), state="complete"
    )


def evaluation_steps(status: Any, evaluation: Evaluation) -> None:
    """What the evaluation of one release did, step by step, inside its (collapsed) status."""
    with status:
        st.caption(escape_markdown(f"Baseline: {evaluation.baseline_description or evaluation.policy.value}."))
        for step in _steps(evaluation):
            st.caption(escape_markdown(step))


def _steps(evaluation: Evaluation) -> list[str]:
    templates = sorted({q.template for q in evaluation.queries})
    steps = [f"1. deploys read ({evaluation.candidate.source.value if evaluation.candidate else 'none'})",
             f"2. metrics queried: {', '.join(templates) or 'none'}"]
    if evaluation.logs is not None:
        steps.append(f"3. logs read: {'failed' if evaluation.logs.error else f'{len(evaluation.logs.signatures)} signatures'}")
    steps.append(f"{len(steps) + 1}. judged: {evaluation.recommendation.action.value}")
    return steps


def service_link(service: str) -> None:
    st.page_link(SERVICE_PAGE, label=escape_markdown(f"History of {service}"), icon=":material/timeline:",
                 query_params={"service": service})


# ---- service -------------------------------------------------------------------------------------


def timeline(loaded: Loaded[Timeline]) -> None:
    """Request rate, error ratio and latency over the last day with deploy markers, or why not."""
    if loaded.value is None:
        show_error(f"The timeline could not be read: {loaded.error}")
        return
    line = loaded.value
    for error in line.errors:
        st.warning(_markdown_lines(error), icon=":material/warning:")
    figure = charts.timeline_figure(line)
    if figure is None:
        st.info(escape_markdown(f"No traffic of {line.service} in the last {format_age(line.end - line.start)}."))
    else:
        st.plotly_chart(figure, key="service-timeline")
    st.caption(escape_markdown(
        f"{format_time(line.start)} → {format_time(line.end)}, one point per "
        f"{line.step.total_seconds() / 60:g} min; dashed lines are deploys."
    ))
    queries(line.queries)


def release_history(evaluations: Sequence[Evaluation], service: str) -> None:
    """Score per release, then the table of releases: selecting a row opens that release."""
    figure = charts.score_history_figure(*tables.score_history(evaluations))
    if figure is not None:
        st.plotly_chart(figure, key="score-history")
    judged = [e for e in evaluations if e.candidate]
    if not judged:
        st.info(escape_markdown(f"No release of {service} was seen yet."))
        return
    event = st.dataframe(
        tables.history_table(judged), hide_index=True, column_config=HISTORY_COLUMNS, on_select="rerun",
        selection_mode="single-row", key="history_table",
    )
    for row in event.selection.rows:
        _switch_to_release(judged[row])


# ---- sources -------------------------------------------------------------------------------------


def source_health(health: Sequence[SourceHealth]) -> None:
    for down in (h for h in health if not h.ok):
        show_error(f"Source {down.name} ({down.url}) is down: {down.error}")
    if health and all(h.ok for h in health):
        st.success(f"All {plural(len(health), 'source')} answer.", icon=":material/check_circle:")
    st.dataframe(tables.sources_table(health), hide_index=True)


def watch_section(state: Loaded[WatchState] | None) -> None:
    """Watch mode as the store records it: who watches, the releases it follows, undelivered messages."""
    st.subheader("Watch")
    if state is None:
        st.info("No history store is configured: watch mode keeps its state there (store.url).")
        return
    if state.value is None:
        show_error(f"The watch state could not be read: {state.error}")
        return
    now = datetime.now(UTC)
    watch = state.value
    st.caption(escape_markdown(tables.lease_text(watch.lease, now)))
    if watch.undelivered:
        failing = [m for m in watch.undelivered if m.last_error]
        text = f"{plural(len(watch.undelivered), 'message')} not delivered yet"
        if failing:
            last = failing[-1]
            text += f"; the last failure ({last.channel}, {plural(last.attempts, 'attempt')}): {last.last_error}"
        show_error(text)
    if watch.watched:
        still = sum(r.state == "watching" for r in watch.watched)
        st.caption(escape_markdown(f"{plural(still, 'release')} watched, {plural(len(watch.watched), 'release')} in all."))
        st.dataframe(tables.watch_table(watch.watched, now), hide_index=True)


def calibration(loaded: Loaded[list[StoredBacktest]] | None, chosen: str | None) -> None:
    """The stored backtests: the one chosen (by id, default the newest finished) with its answer, the
    metrics' false-alarm rates per tolerance, its releases, incidents and what it skipped."""
    if loaded is None:
        st.info("No history store is configured: backtests are kept there (store.url).")
        return
    if loaded.value is None:
        show_error(f"The backtests could not be read: {loaded.error}")
        return
    if not loaded.value:
        st.info("No backtest has been run on this store yet: `release-health backtest --since 30d` replays the last 30 days.")
        return
    runs = {str(b.id): b for b in loaded.value}
    default = chosen if chosen in runs else next((key for key, b in runs.items() if b.summary is not None), next(iter(runs)))
    picked = st.selectbox("Backtest", list(runs), index=list(runs).index(default), format_func=lambda key: tables.backtest_label(runs[key]))
    run = runs[picked]
    if run.summary is None:
        st.warning("This backtest has not finished (stopped by its query budget, or interrupted): run the same command again to go on.")
        return
    summary = run.summary
    st.markdown(f"**{escape_markdown(backtest_report.headline(summary))}**")
    st.dataframe(tables.backtest_metrics_table(summary), hide_index=True)
    if any(r["trials"] for m in summary["metrics"] for r in m["rates"]):
        st.plotly_chart(backtest_report.rate_chart(summary), key="backtest-rates")
    with st.expander(f"Releases ({len(summary['releases'])})"):
        st.dataframe(tables.backtest_releases_table(summary), hide_index=True)
    if summary["incidents"]:
        caught = sum(i["action"] == "ROLLBACK" for i in summary["incidents"])
        st.subheader(f"Incidents: {caught} of {len(summary['incidents'])} caught")
        st.dataframe(tables.backtest_incidents_table(summary), hide_index=True)
    if summary["compared"] is not None:
        st.subheader(f"Releases the other configuration judges otherwise: {len(summary['compared'])}")
        st.dataframe(tables.backtest_changes_table(summary["compared"]), hide_index=True)
    with st.expander("Skipped"):
        st.dataframe(tables.backtest_skipped_table(summary), hide_index=True)
        for note in summary["notes"]:
            st.caption(escape_markdown(note))
    html_column, markdown_column = st.columns(2)
    html_column.download_button(
        "Report (HTML)", lambda: backtest_report.render_html(summary), file_name=f"backtest-{run.id}.html",
        mime="text/html", on_click="ignore", icon=":material/description:",
    )
    markdown_column.download_button(
        "Report (Markdown)", lambda: backtest_report.render_markdown(summary), file_name=f"backtest-{run.id}.md",
        mime="text/markdown", on_click="ignore", icon=":material/article:",
    )
