"""The commands that read the sources and the history store: services, deploys, evaluate, check, the store's
commands (record-deploy, history, report, not-a-risk) and the gate.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from releasehealth import config
from releasehealth.cli.app import EXIT_CODES, EXIT_ERROR, OutputFormat, app, err, handle_errors, out, shown, store_of, utc_option
from releasehealth.cli.printing import print_evaluation, versions_from
from releasehealth.errors import ConfigError
from releasehealth.format import format_seconds, label_problem, plural, score_text
from releasehealth.model import Deploy, DeploySourceKind

if TYPE_CHECKING:
    from releasehealth.verdicts import Evaluation


@app.command()
@handle_errors
def services(ctx: typer.Context) -> None:
    """List the configured services."""
    catalogue = ctx.obj.open().catalogue
    # Names are what people copy from this list: never shortened to fit the terminal.
    table = Table(Column("service", no_wrap=True), "team", "preset", "service label", "versions from", "selector")
    for s in catalogue.services:
        selector = ", ".join(f"{k}={v}" for k, v in s.selector)
        table.add_row(*(shown(x) for x in (s.name, s.team, s.preset, s.labels.service, versions_from(s), selector)))
    out.print(table)


@app.command()
@handle_errors
def deploys(ctx: typer.Context, service: str) -> None:
    """List the deploys of SERVICE detected in the lookback, oldest first."""
    from releasehealth.deploys import deploys_of  # the commands that judge import the core when they run

    opened = ctx.obj.open()
    catalogue = opened.catalogue
    table = Table("version", "deployed at (UTC)", "last seen (UTC)", "source")
    for d in deploys_of(opened.sources, catalogue.service(service), catalogue.policy, opened.now()):
        table.add_row(shown(d.version), format_seconds(d.started_at), format_seconds(d.last_seen), d.source.value)
    out.print(table)


@app.command()
@handle_errors
def evaluate(
    ctx: typer.Context,
    service: str,
    version: Annotated[str | None, typer.Option(help="The release to judge (default: the latest).")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")] = OutputFormat.TABLE,
    at: Annotated[
        datetime | None, typer.Option(help="Evaluate as of this UTC time instead of now (ISO 8601).")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="previous, concurrent, time-shifted[:1d|:7d], pinned:VERSION or last-good (default: the config's)."),
    ] = None,
    save: Annotated[bool, typer.Option(help="Also save the evaluation in the history store.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show each Elasticsearch request whole, not summed up on one line.")
    ] = False,
) -> None:
    """Judge a release of SERVICE against its baseline; the exit code carries the recommendation."""
    from releasehealth.evaluate import evaluate_release
    from releasehealth.serialize import evaluation_to_dict

    opened = ctx.obj.open(create_store=save)
    catalogue = opened.catalogue
    policy = config.with_baseline(catalogue.policy, baseline) if baseline else catalogue.policy
    now = utc_option(at, "--at") or opened.now()
    evaluation = evaluate_release(opened.sources, catalogue.service(service), policy, version, now=now)
    if save and evaluation.candidate is not None:
        store_of(opened).save_evaluation(evaluation)
    if output is OutputFormat.JSON:
        out.print_json(json.dumps(evaluation_to_dict(evaluation)))
    else:
        print_evaluation(evaluation, catalogue, verbose=verbose)
    raise typer.Exit(EXIT_CODES[evaluation.recommendation.action])


@app.command()
@handle_errors
def check(ctx: typer.Context) -> None:
    """Check that every source answers; exit 1 if one does not."""
    failed = False
    for health in ctx.obj.open().sources.health():
        status = "[green]ok[/]" if health.ok else "[red]DOWN[/]"
        latency = f"{health.latency_seconds * 1000:.0f} ms" if health.latency_seconds is not None else "-"
        out.print(f"{health.name} {shown(health.url)}: {status} {latency} {shown(health.error)}")
        failed |= not health.ok
    raise typer.Exit(EXIT_ERROR if failed else 0)


@app.command("record-deploy")
@handle_errors
def record_deploy(
    ctx: typer.Context,
    service: Annotated[str, typer.Option(help="The service deployed (as configured).")],
    version: Annotated[str, typer.Option(help="The version deployed.")],
    commit: Annotated[str, typer.Option(help="The commit deployed.")] = "",
    at: Annotated[datetime | None, typer.Option(help="When it was deployed, UTC (default: now).")] = None,
) -> None:
    """Record a deploy in the history store (it wins over the deploy detected from the metrics)."""
    problems = [f"{option}: {problem}" for option, text in (("--version", version), ("--commit", commit))
                if (problem := label_problem(text))]
    if problems or not version.strip():
        raise ConfigError("record-deploy", problems or ["--version: empty"])
    opened = ctx.obj.open(create_store=True)
    opened.catalogue.service(service)  # an unknown service is an error naming the known ones
    started = utc_option(at, "--at") or opened.now()
    store = store_of(opened)
    store.record_deploy(Deploy(service, version, started, DeploySourceKind.RECORDED, commit=commit))
    out.print(f"recorded {shown(service)} {shown(version)} deployed at {format_seconds(started)} UTC in {shown(store.name)}")


@app.command()
@handle_errors
def history(
    ctx: typer.Context,
    service: str,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many evaluations, newest first.")] = 20,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """The stored evaluations of SERVICE, newest first."""
    opened = ctx.obj.open(create_store=True)
    opened.catalogue.service(service)
    store = store_of(opened)
    stored = store.history(service, limit)
    if output is OutputFormat.JSON:
        out.print_json(json.dumps([s.document for s in stored]))
        return
    if not stored:
        out.print(f"no stored evaluation of {shown(service)} in {shown(store.name)} (gate, evaluate --save and the API store them)")
        return
    table = Table("evaluated (UTC)", Column("version", no_wrap=True), "baseline", "action", "score", "reason")
    for s in stored:
        table.add_row(
            f"{s.evaluated_at:%Y-%m-%d %H:%M}", shown(s.version), shown(s.baseline_version), s.action.value, score_text(s.score),
            shown(s.reason),
        )
    out.print(table)


class ReportFormat(StrEnum):
    HTML = "html"
    MD = "md"


@app.command()
@handle_errors
def report(
    ctx: typer.Context,
    service_argument: Annotated[str | None, typer.Argument(metavar="SERVICE", help="The service.", show_default=False)] = None,
    service: Annotated[str | None, typer.Option("--service", help="The service (as the argument).", show_default=False)] = None,
    version: Annotated[str | None, typer.Option(help="The release (default: the newest evaluated).")] = None,
    output: Annotated[ReportFormat, typer.Option("--format", "-f", help="html or md.")] = ReportFormat.HTML,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="The file (default: stdout for md, SERVICE-VERSION.html for html).")
    ] = None,
) -> None:
    """Write a release's report (self-contained HTML or Markdown) from its stored evaluation alone."""
    import re

    from releasehealth import report as reporting
    from releasehealth.serialize import evaluation_from_dict

    if (service_argument is None) == (service is None):
        raise typer.BadParameter("name the service once: `report SERVICE` (or --service SERVICE)", param_hint="SERVICE")
    service = service if service_argument is None else service_argument
    assert service is not None  # exactly one of the two is set
    opened = ctx.obj.open(create_store=True)
    catalogue = opened.catalogue
    metrics = catalogue.service(service).metrics
    stored = store_of(opened).latest(service, version)
    if stored is None:
        release = f"{service} {version}" if version else service
        how = ctx.obj.command("evaluate", service, *(["--version", version] if version else []), "--save")
        err.print(f"[bold red]error:[/] no stored evaluation of {shown(release)}: run `{shown(how)}` (or the gate) first")
        raise typer.Exit(EXIT_ERROR)
    fingerprint = reporting.config_fingerprint(catalogue.policy, metrics)
    render = reporting.render_html if output is ReportFormat.HTML else reporting.render_markdown
    text = render(evaluation_from_dict(stored.document), fingerprint)
    if out_file is None and output is ReportFormat.MD:
        sys.stdout.write(text)
        return
    path = out_file or Path(re.sub(r"[^A-Za-z0-9._-]", "_", f"{stored.service}-{stored.version}") + ".html")
    path.write_text(text, encoding="utf-8")
    err.print(f"wrote {shown(str(path))} ({stored.service} {stored.version}, evaluated {stored.evaluated_at:%Y-%m-%d %H:%M} UTC)")


@app.command("not-a-risk")
@handle_errors
def mark_not_a_risk(
    ctx: typer.Context,
    signature: Annotated[str, typer.Argument(help="The signature's template, as the CLI and dashboard print it.")],
    note: Annotated[str, typer.Option(help="Why it is not a risk (shown to whoever wonders later).")] = "",
) -> None:
    """Mark a log signature as not a risk, in the history store: it never fails a release again."""
    store = store_of(ctx.obj.open(create_store=True))
    store.mark_not_a_risk(signature, note)
    out.print(f"marked not a risk in {shown(store.name)}: {shown(signature)}")


@app.command()
@handle_errors
def gate(
    ctx: typer.Context,
    service: Annotated[str, typer.Option(help="The service deployed.")],
    version: Annotated[str, typer.Option(help="The version to gate.")],
    wait: Annotated[
        str | None,
        typer.Option(help="How long to wait for a final verdict (default: the warm-up and the window, plus 5m: 40m)."),
    ] = None,
    interval: Annotated[str, typer.Option(help="How often to re-evaluate (e.g. 1m).")] = "1m",
) -> None:
    """Re-evaluate a release until its verdict is final: exit 0 PROMOTE (after the full window), 3 ROLLBACK
    (as soon as it is credible), 4 HOLD or INCONCLUSIVE at the timeout, 1 on an error."""
    from releasehealth import gate as gating

    every = config.parse_option_duration(interval, "--interval")
    explicit = config.parse_option_duration(wait, "--wait") if wait else None
    opened = ctx.obj.open(create_store=True)
    catalogue = opened.catalogue
    policy = catalogue.policy
    # A PROMOTE is final only once the whole window has been watched: wait at least that long by default.
    waiting = explicit or policy.warmup + policy.window + timedelta(minutes=5)

    def report(n: int, evaluation: Evaluation) -> None:
        r = evaluation.recommendation
        err.print(f"check {n}: {r.action.value} {shown(service)} {shown(version)} (baseline {shown(r.baseline)}): {shown(r.reason)}")

    result = gating.run(opened.sources, catalogue.service(service), policy, version, waiting, every, report=report)
    evaluation = result.evaluation
    print_evaluation(evaluation, catalogue)
    out.print(f"gate: {result.stopped} after {plural(result.checks, 'check')}")
    raise typer.Exit(EXIT_CODES[evaluation.recommendation.action])
