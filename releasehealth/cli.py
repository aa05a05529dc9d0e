"""The `release-health` command line: a thin Typer shell over releasehealth.analysis.

Exit codes (for pipelines): 0 PROMOTE, 1 error, 2 usage, 3 ROLLBACK, 4 HOLD or INCONCLUSIVE.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from releasehealth import analysis, config
from releasehealth.errors import ReleaseHealthError
from releasehealth.model import Action, BaselinePolicy, Deploy, DeploySourceKind, Evaluation, Service, SignatureStatus
from releasehealth.serialize import evaluation_to_dict

EXIT_CODES = {Action.PROMOTE: 0, Action.ROLLBACK: 3, Action.HOLD: 4, Action.INCONCLUSIVE: 4}
EXIT_ERROR = 1

app = typer.Typer(
    help="Compare each release of each microservice with the one it replaced; recommend promote, hold or rollback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass
class Context:
    config_path: str
    demo: bool
    seed: int
    demo_end: datetime | None = None
    store_url: str | None = None  # --store: overrides the config's store.url

    def open(self, with_store: bool = False) -> tuple[config.Catalogue, analysis.Sources]:
        """The catalogue and sources: the embedded demo fleet, or the config file's real sources; with
        the history store when asked for, or when the baseline policy (last-good) needs it."""
        if self.demo:
            end = self.demo_end.replace(tzinfo=self.demo_end.tzinfo or UTC) if self.demo_end else None
            catalogue, sources, _ = analysis.demo(seed=self.seed, end=end)
            # The demo's store is a file in the temp folder, per seed: it never lands in your working tree.
            default = f"sqlite:///{Path(tempfile.gettempdir()) / f'release-health-demo-{self.seed}.db'}"
            catalogue = dataclasses.replace(catalogue, store_url=self.store_url or default)
        else:
            catalogue = config.load(self.config_path)
            if self.store_url:
                catalogue = dataclasses.replace(catalogue, store_url=self.store_url, store_password_env=None)
            sources = analysis.connect(catalogue)
        if with_store or catalogue.policy.baseline is BaselinePolicy.LAST_GOOD or _store_exists(catalogue.store_url):
            sources = dataclasses.replace(sources, store=analysis.open_store(catalogue))
        return catalogue, sources


def _store_exists(url: str) -> bool:
    """Whether a history store is there to read (its recorded deploys count everywhere): a SQLite file
    that exists, or any server database. Only the commands that write create a SQLite file."""
    if not url:
        return False
    if not url.startswith("sqlite"):
        return True
    path = url.split(":///", 1)[-1]
    return bool(path) and path != url and Path(path).exists()


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """One error handler for every command: our exceptions become a message on stderr and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ReleaseHealthError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_ERROR) from exc

    return wrapper


@app.callback()
def main_options(
    ctx: typer.Context,
    config_path: Annotated[
        str, typer.Option("--config", "-c", envvar="RELEASE_HEALTH_CONFIG", help="The YAML catalogue.")
    ] = config.DEFAULT_PATH,
    demo: Annotated[bool, typer.Option("--demo", help="Use the embedded simulated fleet instead of the config.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the demo fleet.")] = 7,
    demo_end: Annotated[
        datetime | None, typer.Option(help="End the demo fleet's history at this UTC time (default: now), to reproduce it.")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(envvar="RELEASE_HEALTH_STORE", help="History store URL (default: the config's store.url)."),
    ] = None,
) -> None:
    ctx.obj = Context(config_path, demo, seed, demo_end, store)


@app.command()
@handle_errors
def services(ctx: typer.Context) -> None:
    """List the configured services."""
    catalogue, _ = ctx.obj.open()
    # Names are what people copy from this list: never shortened to fit the terminal.
    table = Table(Column("service", no_wrap=True), "team", "preset", "service label", "versions from", "selector")
    for s in catalogue.services:
        selector = ", ".join(f"{k}={v}" for k, v in s.selector)
        table.add_row(*(escape(x) for x in (s.name, s.team, s.preset, s.labels.service, _versions_from(s), selector)))
    out.print(table)


def _versions_from(service: Service) -> str:
    """Where a service's versions come from: its version label, Kubernetes, or events and records only."""
    k8s = f"kubernetes deployment {service.kubernetes.deployment}" if service.kubernetes else ""
    if service.labels.version:
        return f"label {service.labels.version}" + (f" (checked against {k8s})" if k8s else "")
    return k8s or "deploy events and recorded deploys"


@app.command()
@handle_errors
def deploys(ctx: typer.Context, service: str) -> None:
    """List the deploys of SERVICE detected in the lookback, oldest first."""
    catalogue, sources = ctx.obj.open()
    table = Table("version", "deployed at (UTC)", "last seen (UTC)", "source")
    for d in analysis.list_deploys(catalogue, sources, service):
        table.add_row(escape(d.version), _when(d.started_at), _when(d.last_seen), d.source.value)
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
) -> None:
    """Judge a release of SERVICE against its baseline; the exit code carries the recommendation."""
    catalogue, sources = ctx.obj.open(with_store=save or (baseline or "").startswith("last-good"))
    if baseline:
        catalogue = config.with_baseline(catalogue, baseline)
    now = at.replace(tzinfo=at.tzinfo or UTC) if at else None
    evaluation = analysis.evaluate(catalogue, sources, service, version, now=now)
    if save and evaluation.candidate is not None:
        sources.store.save_evaluation(evaluation)
    if output is OutputFormat.JSON:
        out.print_json(json.dumps(evaluation_to_dict(evaluation)))
    else:
        print_evaluation(evaluation, catalogue)
    raise typer.Exit(EXIT_CODES[evaluation.recommendation.action])


@app.command()
@handle_errors
def check(ctx: typer.Context) -> None:
    """Check that every source answers; exit 1 if one does not."""
    _, sources = ctx.obj.open()
    failed = False
    for health in analysis.check_sources(sources):
        status = "[green]ok[/]" if health.ok else "[red]DOWN[/]"
        latency = f"{health.latency_seconds * 1000:.0f} ms" if health.latency_seconds is not None else "-"
        out.print(f"{health.name} {escape(health.url)}: {status} {latency} {escape(health.error)}")
        failed |= not health.ok
    raise typer.Exit(EXIT_ERROR if failed else 0)


@app.command()
@handle_errors
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for fleet.om and truth.json.")] = Path("simulated"),
    seed: Annotated[int, typer.Option(help="Seed of the fleet.")] = 7,
    hours: Annotated[float, typer.Option(help="Hours of history, ending now.")] = 26,
    services_count: Annotated[int, typer.Option("--services", help="Number of services (1-50).")] = 8,
    serve_live: Annotated[
        bool, typer.Option("--serve", help="Run live instead: /metrics for Prometheus, logs to --elasticsearch.")
    ] = False,
    port: Annotated[int, typer.Option(help="--serve: port of /metrics.")] = 9100,
    host: Annotated[str, typer.Option(help="--serve: address to listen on.")] = "0.0.0.0",
    elasticsearch: Annotated[str | None, typer.Option(help="--serve: Elasticsearch URL to ship the logs to.")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="--serve: environment variable holding an Elasticsearch API key.")
    ] = None,
    speed: Annotated[float, typer.Option(help="--serve: simulated seconds per real second.")] = 1.0,
    schedule: Annotated[
        list[str] | None,
        typer.Option(help="--serve: a release SERVICE@OFFSET:LABEL[:FACTOR], e.g. user-service@90s:error_ratio:5 (repeatable)."),
    ] = None,
    prometheus_config: Annotated[
        Path | None, typer.Option(help="--serve: write a prometheus.yml scraping the simulator to this file.")
    ] = None,
    scrape_interval: Annotated[str, typer.Option(help="--serve: scrape interval in --prometheus-config.")] = "5s",
    preset: Annotated[
        str, typer.Option(help="Name the metrics as this preset does (generic, spring-boot, istio, ...).")
    ] = "generic",
    service_preset: Annotated[
        list[str] | None,
        typer.Option(help="SERVICE=PRESET: name this service's metrics as PRESET (repeatable: a mixed fleet; a service may have several)."),
    ] = None,
    versionless: Annotated[
        list[str] | None, typer.Option(help="Write this service's metrics without a version label (repeatable).")
    ] = None,
    kubernetes: Annotated[
        bool, typer.Option("--kubernetes", help="Also write kube-state-metrics' view of the deploys (ReplicaSets, pods).")
    ] = False,
) -> None:
    """Write a simulated fleet: metrics as OpenMetrics (for promtool), logs as bulk NDJSON (for
    Elasticsearch, with index templates), and the ground truth as JSON. With --serve, run it live
    until interrupted, with scheduled releases (by default a few good ones, then faults)."""
    if serve_live:
        from releasehealth.simulator import live

        if prometheus_config:
            target = f"{'localhost' if host in ('0.0.0.0', '') else host}:{port}"
            prometheus_config.write_text(live.prometheus_config(target, scrape_interval))
            out.print(f"wrote {prometheus_config} (scraping {target} every {scrape_interval})")
        api_key = os.environ.get(api_key_env) if api_key_env else None
        live.serve(port, host, services_count, seed, speed, schedule or (), elasticsearch, api_key, say=out.print)
        return
    from releasehealth.errors import ConfigError, NotFoundError
    from releasehealth.simulator import simulate as simulate_fleet
    from releasehealth.simulator.logs import simulate_logs, write_ndjson
    from releasehealth.simulator.openmetrics import PRESETS, write_files

    fleet = simulate_fleet(seed=seed, hours=hours, services=services_count)
    # Every name is checked before anything is written; a service named in no --service-preset gets --preset.
    names = [s.name for s in fleet.services]
    presets: dict[str, list[str]] = {name: [] for name in names}
    for item in service_preset or ():
        name, equals, chosen = item.partition("=")
        if not equals:
            raise ConfigError("--service-preset", [f"{item!r}: expected SERVICE=PRESET"])
        presets.setdefault(name, []).append(chosen)
    presets = {name: chosen or [preset] for name, chosen in presets.items()}
    known = sorted(config.preset_names() & PRESETS.keys())
    unknown_presets = sorted({p for chosen in presets.values() for p in chosen} - set(known))
    unknown_services = sorted((set(presets) | set(versionless or ())) - set(names))
    if unknown_presets:
        raise NotFoundError(f"unknown preset(s) {', '.join(unknown_presets)} (known: {', '.join(known)})")
    if unknown_services:
        raise NotFoundError(f"unknown service(s) {', '.join(unknown_services)} (simulated: {', '.join(names)})")
    options = {"presets": presets, "versionless": tuple(versionless or ()), "kubernetes": kubernetes}
    metrics, truth = write_files(fleet, out_dir, **options)
    logs = write_ndjson(simulate_logs(fleet), out_dir)
    out.print(f"wrote {metrics}, {logs} and {truth}")
    out.print(f"load the metrics: promtool tsdb create-blocks-from openmetrics {metrics} DATA_DIR")
    out.print(f"load the logs: see the README (index templates {out_dir}/logs-template.json, deploys-template.json)")


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
    catalogue, sources = ctx.obj.open(with_store=True)
    catalogue.service(service)  # an unknown service is an error naming the known ones
    started = at.replace(tzinfo=at.tzinfo or UTC) if at else datetime.now(UTC)
    sources.store.record_deploy(Deploy(service, version, started, DeploySourceKind.RECORDED, commit=commit))
    out.print(f"recorded {escape(service)} {escape(version)} deployed at {started:%Y-%m-%d %H:%M:%S} UTC in {escape(sources.store.name)}")


@app.command()
@handle_errors
def history(
    ctx: typer.Context,
    service: str,
    limit: Annotated[int, typer.Option(help="How many evaluations, newest first.")] = 20,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """The stored evaluations of SERVICE, newest first."""
    catalogue, sources = ctx.obj.open(with_store=True)
    catalogue.service(service)
    stored = sources.store.history(service, limit)
    if output is OutputFormat.JSON:
        out.print_json(json.dumps([s.document for s in stored]))
        return
    if not stored:
        out.print(f"no stored evaluation of {escape(service)} in {escape(sources.store.name)} (gate, evaluate --save and the API store them)")
        return
    table = Table("evaluated (UTC)", Column("version", no_wrap=True), "baseline", "action", "score", "reason")
    for s in stored:
        score = "-" if s.score is None else f"{s.score:.0f}"
        table.add_row(f"{s.evaluated_at:%Y-%m-%d %H:%M}", escape(s.version), escape(s.baseline_version), s.action.value, score, escape(s.reason))
    out.print(table)


class ReportFormat(StrEnum):
    HTML = "html"
    MD = "md"


@app.command()
@handle_errors
def report(
    ctx: typer.Context,
    service: Annotated[str, typer.Option(help="The service.")],
    version: Annotated[str | None, typer.Option(help="The release (default: the newest evaluated).")] = None,
    output: Annotated[ReportFormat, typer.Option("--format", "-f", help="html or md.")] = ReportFormat.HTML,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="The file (default: stdout for md, SERVICE-VERSION.html for html).")
    ] = None,
) -> None:
    """Write a release's report (self-contained HTML or Markdown) from its stored evaluation alone."""
    import re

    from releasehealth import report as reporting

    catalogue, sources = ctx.obj.open(with_store=True)
    metrics = catalogue.service(service).metrics
    stored = sources.store.latest(service, version)
    if stored is None:
        release = f"{service} {version}" if version else service
        how = f"release-health evaluate {service}" + (f" --version {version}" if version else "") + " --save"
        err.print(f"[bold red]error:[/] no stored evaluation of {escape(release)}: run `{escape(how)}` (or the gate) first")
        raise typer.Exit(EXIT_ERROR)
    fingerprint = reporting.config_fingerprint(catalogue.policy, metrics)
    render = reporting.render_html if output is ReportFormat.HTML else reporting.render_markdown
    text = render(stored.document, fingerprint)
    if out_file is None and output is ReportFormat.MD:
        sys.stdout.write(text)
        return
    path = out_file or Path(re.sub(r"[^A-Za-z0-9._-]", "_", f"{stored.service}-{stored.version}") + ".html")
    path.write_text(text, encoding="utf-8")
    err.print(f"wrote {escape(str(path))} ({stored.service} {stored.version}, evaluated {stored.evaluated_at:%Y-%m-%d %H:%M} UTC)")


@app.command("not-a-risk")
@handle_errors
def mark_not_a_risk(
    ctx: typer.Context,
    signature: Annotated[str, typer.Argument(help="The signature's template, as the CLI and dashboard print it.")],
    note: Annotated[str, typer.Option(help="Why it is not a risk (shown to whoever wonders later).")] = "",
) -> None:
    """Mark a log signature as not a risk, in the history store: it never fails a release again."""
    _, sources = ctx.obj.open(with_store=True)
    sources.store.mark_not_a_risk(signature, note)
    out.print(f"marked not a risk in {escape(sources.store.name)}: {escape(signature)}")


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

    every = config.parse_duration(interval, "--interval")
    explicit = config.parse_duration(wait, "--wait") if wait else None
    catalogue, sources = ctx.obj.open(with_store=True)
    catalogue.service(service)
    # A PROMOTE is final only once the whole window has been watched: wait at least that long by default.
    waiting = explicit or catalogue.policy.warmup + catalogue.policy.window + timedelta(minutes=5)

    def report(n: int, evaluation: Evaluation) -> None:
        r = evaluation.recommendation
        err.print(f"check {n}: {r.action.value} {escape(service)} {escape(version)} (baseline {escape(r.baseline)}): {escape(r.reason)}")

    result = gating.run(catalogue, sources, service, version, waiting, every, report=report)
    evaluation = result.evaluation
    print_evaluation(evaluation, catalogue)
    out.print(f"gate: {result.stopped} after {result.checks} check(s)")
    raise typer.Exit(EXIT_CODES[evaluation.recommendation.action])


@app.command()
@handle_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP API (verdicts for pipelines, deploy recording, /metrics, OpenAPI at /docs)."""
    from releasehealth import api

    catalogue, sources = ctx.obj.open(with_store=True)
    err.print(f"serving the API on http://{host}:{port} (store: {sources.store.name})")
    api.serve(catalogue, sources, host, port)


@app.command()
def demo(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port of the dashboard.")] = 8501,
    seed: Annotated[int | None, typer.Option(help="Seed of the demo fleet (default: the global --seed, 7).")] = None,
) -> None:
    """Serve the dashboard on the embedded simulated fleet (no external service needed)."""
    _serve(_demo_environment(ctx.obj, seed), port)


@app.command()
def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port of the dashboard.")] = 8501,
) -> None:
    """Serve the dashboard on the sources of the config file (on the demo fleet with --demo)."""
    if ctx.obj.demo:
        _serve(_demo_environment(ctx.obj, None), port)
    _serve({"RELEASE_HEALTH_CONFIG": str(Path(ctx.obj.config_path).resolve())}, port)


def _demo_environment(context: Context, seed: int | None) -> dict[str, str]:
    """How the dashboard learns it serves the demo fleet, of which seed, ending when (--demo-end)."""
    environment = {"RELEASE_HEALTH_DEMO": "1", "RELEASE_HEALTH_SEED": str(context.seed if seed is None else seed)}
    if context.demo_end:
        environment["RELEASE_HEALTH_DEMO_END"] = context.demo_end.replace(tzinfo=context.demo_end.tzinfo or UTC).isoformat()
    return environment


# Streamlit imports the app's modules on the first visit; importing them before the server starts takes
# that second off the first page anyone opens.
STREAMLIT_WITH_WARM_IMPORTS = (
    "import releasehealth.dashboard.components, releasehealth.dashboard.charts, releasehealth.analysis; "
    "from streamlit.web.cli import main; main()"
)


def _serve(environment: dict[str, str], port: int) -> None:
    spec = find_spec("releasehealth.dashboard")
    if spec is None or spec.origin is None:
        err.print("[bold red]error:[/] the dashboard package is not installed")
        raise typer.Exit(EXIT_ERROR)
    app_path = str(Path(spec.origin).parent / "app.py")
    argv = [
        sys.executable, "-c", STREAMLIT_WITH_WARM_IMPORTS, "run", app_path,
        "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    err.print(f"serving the dashboard on http://localhost:{port}")
    os.execve(sys.executable, argv, {**os.environ, **environment})


def print_evaluation(evaluation: Evaluation, catalogue: config.Catalogue) -> None:
    r = evaluation.recommendation
    colour = {Action.PROMOTE: "green", Action.ROLLBACK: "red"}.get(r.action, "yellow")
    out.print(
        f"[bold {colour}]{r.action.value}[/] {escape(evaluation.service)} "
        f"{escape(r.candidate)} (baseline {escape(r.baseline)}, policy {evaluation.policy.value})"
    )
    if evaluation.baseline_description:
        out.print(f"baseline: {escape(evaluation.baseline_description)}")
    out.print(f"reason: {escape(r.reason)}")
    if evaluation.candidate_window and evaluation.baseline_window:
        b, c = evaluation.baseline_window, evaluation.candidate_window
        out.print(f"windows: baseline {_when(b.start)}..{_when(b.end)}, candidate {_when(c.start)}..{_when(c.end)}")
    if evaluation.score:
        score = evaluation.score.score
        out.print(f"score: {'-' if score is None else f'{score:.0f}'}")
        for v in evaluation.score.verdicts:
            out.print(f"  {v.classification.value:<7} {escape(v.reason)}")
            out.print(f"          baseline: {escape(v.baseline.detail)}; candidate: {escape(v.candidate.detail)}")
    print_logs(evaluation)
    for note in evaluation.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if r.action is Action.ROLLBACK:
        out.print(f"rollback: {escape(catalogue.rollback(evaluation.service, r.candidate, r.baseline))}")
    out.print("queries:")
    for q in evaluation.queries:
        out.print(f"  {escape(f'[{q.template}]')} {escape(q.text)}")


def print_logs(evaluation: Evaluation) -> None:
    """The log findings: NEW and INCREASED signatures with an example each, then a count of the rest."""
    logs = evaluation.logs
    if logs is None:
        return
    if logs.error:
        out.print(f"logs: [red]{escape(logs.error)}[/]")
        return
    per = "1k requests" if logs.rate_basis == "requests" else "1k log lines"
    out.print(f"log signatures (rates per {per}):")
    notable = [s for s in logs.signatures if s.status in (SignatureStatus.NEW, SignatureStatus.INCREASED)]
    for s in notable:
        rates = f"{_rate(s.baseline_rate)} -> {_rate(s.candidate_rate)}"
        flags = (" not-a-risk" if s.ignored else "") + ("" if s.credible else " (not credible yet)")
        out.print(
            f"  {s.status.value:<9} {s.level:<5} {escape(s.template)}  [{s.baseline_count:.0f} -> {s.candidate_count:.0f}"
            f" lines, {rates}{flags}]"
        )
        if s.examples:
            out.print(f"            e.g. {escape(s.examples[0][:300])}")
    rest = len(logs.signatures) - len(notable)
    if rest:
        out.print(f"  ... and {rest} known or gone signature(s)")


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f}"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def main() -> None:
    app()
