"""`release-health simulate`: write a simulated fleet for a real Prometheus and Elasticsearch, or run it live.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from releasehealth import config
from releasehealth.cli.app import MAX_SEED, app, handle_errors, out
from releasehealth.errors import ConfigError


@app.command()
@handle_errors
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for fleet.om and truth.json.")] = Path("simulated"),
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the fleet.")] = 7,
    hours: Annotated[float, typer.Option(help="Hours of history, ending now (1 to 720).", min=1, max=720)] = 26,
    services_count: Annotated[int, typer.Option("--services", help="Number of services (1-50).", min=1, max=50)] = 8,
    serve_live: Annotated[
        bool, typer.Option("--serve", help="Run live instead: /metrics for Prometheus, logs to --elasticsearch.")
    ] = False,
    port: Annotated[int, typer.Option(help="--serve: port of /metrics.", min=1, max=65535)] = 19100,  # simulator.live.LIVE_PORT
    host: Annotated[str, typer.Option(help="--serve: address to listen on.")] = "0.0.0.0",
    elasticsearch: Annotated[str | None, typer.Option(help="--serve: Elasticsearch URL to ship the logs to.")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="--serve: environment variable holding an Elasticsearch API key.")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="--serve: simulated seconds per real second (0.01 to 10000).", min=0.01, max=10_000)
    ] = 1.0,
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

        config.parse_option_duration(scrape_interval, "--scrape-interval")  # it goes into a YAML file as written

        if prometheus_config:
            target = f"{'localhost' if host in ('0.0.0.0', '') else host}:{port}"
            prometheus_config.write_text(live.prometheus_config(target, scrape_interval))
            out.print(f"wrote {prometheus_config} (scraping {target} every {scrape_interval})")
        api_key = os.environ.get(api_key_env) if api_key_env else None
        live.serve(port, host, services_count, seed, speed, schedule or (), elasticsearch, api_key, say=out.print)
        return
    from releasehealth.errors import NotFoundError
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
