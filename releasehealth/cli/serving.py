"""The commands that serve: the HTTP API, and the dashboard (on the config's sources or the embedded demo).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from releasehealth.cli.app import EXIT_ERROR, MAX_SEED, Context, app, err, handle_errors, store_of
from releasehealth.errors import ReleaseHealthError

if TYPE_CHECKING:  # the command imports the watcher when it runs (the CLI starts without the core)
    from releasehealth.watch import StepReport


@app.command()
@handle_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the HTTP API (verdicts for pipelines, deploy recording, /metrics, OpenAPI at /docs)."""
    from releasehealth import api

    opened = ctx.obj.open(create_store=True)
    err.print(f"serving the API on http://{host}:{port} (store: {store_of(opened).name})")
    api.serve(opened, host, port)


@app.command()
def demo(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port of the dashboard.", min=1, max=65535)] = 8501,
    seed: Annotated[
        int | None, typer.Option(min=0, max=MAX_SEED, help="Seed of the demo fleet (default: the global --seed, 7).")
    ] = None,
) -> None:
    """Serve the dashboard on the embedded simulated fleet (no external service needed)."""
    _serve(_demo_environment(ctx.obj, seed), port)


@app.command()
def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port of the dashboard.", min=1, max=65535)] = 8501,
) -> None:
    """Serve the dashboard on the sources of the config file (on the demo fleet with --demo)."""
    if ctx.obj.demo:
        _serve(_demo_environment(ctx.obj, None), port)
    _serve({"RELEASE_HEALTH_CONFIG": str(Path(ctx.obj.config_path).resolve()), **_store_environment(ctx.obj)}, port)


def _demo_environment(context: Context, seed: int | None) -> dict[str, str]:
    """How the dashboard learns it serves the demo fleet, of which seed, ending when (--demo-end)."""
    environment = {
        "RELEASE_HEALTH_DEMO": "1", "RELEASE_HEALTH_SEED": str(context.seed if seed is None else seed),
        **_store_environment(context),
    }
    if context.demo_end:
        environment["RELEASE_HEALTH_DEMO_END"] = context.demo_end.replace(tzinfo=context.demo_end.tzinfo or UTC).isoformat()
    return environment


def _store_environment(context: Context) -> dict[str, str]:
    """--store, for the dashboard: it reads the same history store as every other command."""
    return {"RELEASE_HEALTH_STORE": context.store_url} if context.store_url else {}


# Streamlit imports the app's modules on the first visit; importing them before the server starts takes
# that second off the first page anyone opens.
STREAMLIT_WITH_WARM_IMPORTS = (
    "import releasehealth.dashboard.components, releasehealth.dashboard.charts, releasehealth.evaluate; "
    "from streamlit.web.cli import main; main()"
)


def _serve(environment: dict[str, str], port: int) -> None:
    spec = find_spec("releasehealth.dashboard")
    if spec is None or spec.origin is None:
        err.print("[bold red]error:[/] the dashboard package is not installed")
        raise typer.Exit(EXIT_ERROR)
    app_path = str(Path(spec.origin).parent / "server.py")  # Streamlit's ASGI app around app.py
    argv = [
        sys.executable, "-c", STREAMLIT_WITH_WARM_IMPORTS, "run", app_path,
        "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
        # A page for release decisions: no Deploy button, no developer menu (viewers get Print and Settings).
        "--client.toolbarMode", "viewer",
    ]
    err.print(f"serving the dashboard on http://localhost:{port}")
    os.execve(sys.executable, argv, {**os.environ, **environment})


@app.command()
@handle_errors
def watch(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One scan, its checkpoints and messages, then exit.")] = False,
    metrics_host: Annotated[str, typer.Option(help="Address of the watcher's /metrics.")] = "127.0.0.1",
    metrics_port: Annotated[int, typer.Option(help="Port of the watcher's /metrics (0: none).", min=0, max=65535)] = 9465,
) -> None:
    """Judge every deploy as it happens, store each evaluation, and announce the bad ones (the config's watch:)."""
    import signal
    import socket
    import time
    from datetime import datetime

    from prometheus_client import start_http_server

    from releasehealth.exposition import watch_registry
    from releasehealth.format import duration_text
    from releasehealth.watch import Watcher, WatchStats, options

    opened = ctx.obj.open(create_store=True)
    settings = options(opened.catalogue.watch, opened.catalogue.path, os.environ)
    holder = f"{socket.gethostname()}:{os.getpid()}"
    watcher = Watcher(opened.sources, opened.catalogue, store_of(opened), settings, holder)
    names = ", ".join(c.name for c in settings.channels) or "none (evaluations are stored, nothing is sent)"
    err.print(f"watching {len(opened.catalogue.services)} services every {duration_text(settings.interval)} as {holder}; channels: {names}")
    stats = WatchStats()
    if metrics_port and not once:
        store = store_of(opened)
        start_http_server(metrics_port, metrics_host, registry=watch_registry(stats, store.fleet))
        err.print(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
    def clock() -> datetime:  # a pinned demo's stands still at its end
        return opened.now() if ctx.obj.demo_end else datetime.now(UTC)

    # SIGTERM (docker stop, systemd, kubectl) ends the loop as Ctrl-C does, so the lease is handed back.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            started = time.monotonic()
            try:
                report = watcher.step(clock())
            except ReleaseHealthError as exc:  # the store unreachable: said, and tried again next interval
                if once:
                    raise
                err.print(f"[bold red]error:[/] {exc}; trying again in {duration_text(settings.interval)}")
            else:
                stats.add(report)
                err.print(_step_line(report))
            if once:
                return
            time.sleep(max(settings.interval.total_seconds() - (time.monotonic() - started), 0.0))
    except KeyboardInterrupt:
        err.print("stopping: the store's lease is handed back")
    finally:
        if not once:
            watcher.stop(clock())


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _step_line(report: StepReport) -> str:
    """One line per scan: what was judged and sent, or why nothing was."""
    from releasehealth.format import format_seconds, plural

    if not report.holder:
        return f"{format_seconds(report.at)} standby: another watcher holds the store's lease"
    parts = [f"{format_seconds(report.at)} {plural(report.watching, 'release')} still watched"]
    if report.scan_error:
        parts.append(f"deploys unreadable, nothing judged: {report.scan_error}")
    parts += [f"{service} {version} {action.value}" for service, version, action in report.evaluated]
    parts += [f"{service} {version} not judged: {error}" for service, version, error in report.failed]
    parts += [f"rollback hook for {service} {version}: {command} ({result})" for service, version, command, result in report.rollbacks]
    if report.queued or report.sent or report.send_failures:
        parts.append(f"messages: {report.queued} queued, {report.sent} sent, {report.send_failures} failed")
    return "; ".join(parts)
