"""`release-health backtest`: the configuration replayed over the team's own history (releasehealth.backtest),
printed as tables, JSON, Markdown or HTML.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from releasehealth.cli.app import app, err, handle_errors, out, shown, utc_option
from releasehealth.errors import ConfigError
from releasehealth.model import parse_duration


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"


def _duration(value: str, option: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(option, [str(exc)]) from None


@app.command()
@handle_errors
def backtest(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="How far back the period starts: a duration before --until (30d) or a UTC time.")] = "30d",
    until: Annotated[datetime | None, typer.Option(help="When the period ends, UTC (default: now).")] = None,
    services: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="A service to replay (repeat it; default: every configured one).")
    ] = None,
    compare: Annotated[
        Path | None, typer.Option(help="Another configuration file: list the releases it would judge otherwise.")
    ] = None,
    incidents: Annotated[
        Path | None, typer.Option(help="A CSV file of service,version of releases known bad: say which were caught.")
    ] = None,
    pairs_per_day: Annotated[int, typer.Option(min=0, max=96, help="A/A slots per service and day (each an adjacent and a time-shifted pair).")] = 4,
    time_shifted: Annotated[bool, typer.Option(help="Also A/A pairs a baseline_shift apart (the same time of day).")] = True,
    step: Annotated[str | None, typer.Option(help="A coarser step than the policy's (5m): fewer points to read, said in the report.")] = None,
    max_queries: Annotated[
        int | None, typer.Option(min=1, help="Stop (resumably) once this many metric queries have run; run again to go on.")
    ] = None,
    output_format: Annotated[ReportFormat, typer.Option("--format", "-f", help="table, json, markdown or html.")] = ReportFormat.TABLE,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to this file instead of printing it.")] = None,
) -> None:
    """Replay every release of a period, and A/A pairs where nothing changed, through the configuration:
    its measured false-alarm rate, the tolerance each metric needs, the incidents it would have caught."""
    from releasehealth import backtest as replaying
    from releasehealth import wiring
    from releasehealth.backtest_report import render_html, render_markdown
    from releasehealth.calibration import calibration_to_dict, read_incidents

    opened = ctx.obj.open(create_store=True)
    end = utc_option(until, "--until") or opened.now()
    start = _since(since, end)
    settings = replaying.BacktestSettings(
        since=start, until=end, services=tuple(services or ()), pairs_per_day=pairs_per_day, time_shifted=time_shifted,
        step=_duration(step, "--step") if step else None, max_queries=max_queries,
    )
    chosen = replaying.selected(opened.catalogue.services, settings.services)
    known = read_incidents(str(incidents)) if incidents else []
    other = None
    if compare is not None:
        theirs = wiring.from_file(str(compare))
        other = (theirs.sources, replaying.selected(theirs.catalogue.services, settings.services), theirs.catalogue.policy)
    with Progress(
        TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TextColumn("days"), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("days", total=len(settings.days()))
        calibration, _ = replaying.calibrate(
            opened.sources, chosen, opened.catalogue.policy, settings, now=opened.now(), incidents=known, compare=other,
            progress=lambda day, done, total: bar.update(task, completed=done, total=total),
        )
    summary = calibration_to_dict(calibration)
    rendered = {
        ReportFormat.JSON: lambda: json.dumps(summary, indent=2), ReportFormat.MARKDOWN: lambda: render_markdown(summary),
        ReportFormat.HTML: lambda: render_html(summary),
    }
    if output is not None:
        output.write_text(rendered.get(output_format, rendered[ReportFormat.MARKDOWN])(), encoding="utf-8")
        err.print(f"backtest report written to {shown(str(output))}")
        _print_tables(summary)
    elif output_format is ReportFormat.TABLE:
        _print_tables(summary)
    else:
        out.print(rendered[output_format](), markup=False, highlight=False)


def _since(value: str, end: datetime) -> datetime:
    """--since as a duration before the end (30d) or a UTC time."""
    try:
        return end - parse_duration(value)
    except ValueError:
        pass
    try:
        at = utc_option(datetime.fromisoformat(value), "--since")
    except ValueError:
        raise ConfigError("--since", [f"{value!r} is neither a duration (30d) nor a time (2026-11-01T00:00)"]) from None
    assert at is not None
    return at


def _print_tables(summary: dict[str, Any]) -> None:
    from releasehealth.backtest_report import METRIC_HEADER, headline, incident_rows, metric_rows, release_rows

    out.print(f"backtest {summary['since'][:16]} .. {summary['until'][:16]} UTC: {summary['days']} day(s), "
              f"{len(summary['services'])} service(s), {summary['queries']} queries")
    out.print(shown(headline(summary)))
    if not summary["complete"]:
        out.print("[bold]stopped by the query budget[/]: run the same command again to go on")
    table = Table(*METRIC_HEADER)
    for row in metric_rows(summary):
        table.add_row(*(shown(cell) for cell in row))
    out.print(table)
    actions: dict[str, int] = {}
    for row in release_rows(summary):
        actions[row[4]] = actions.get(row[4], 0) + 1
    out.print(f"releases: {len(summary['releases'])} ({', '.join(f'{n} {a}' for a, n in sorted(actions.items())) or 'none'})")
    if summary["incidents"]:
        incidents = Table("service", "version", "known from", "outcome")
        for row in incident_rows(summary):
            incidents.add_row(*(shown(cell) for cell in row))
        out.print(incidents)
    if summary["compared"] is not None:
        out.print(f"releases the other configuration judges otherwise: {len(summary['compared'])}")
        for change in summary["compared"]:
            out.print(f"  {shown(change['service'])} {shown(change['version'])}: {change['before']} -> {change['after']}")
    for why, count in summary["skipped"].items():
        out.print(f"skipped {count}: {shown(why)}")
    for note in summary["notes"]:
        out.print(f"note: {shown(note)}")
