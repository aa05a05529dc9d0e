"""Presets and versions from Kubernetes at fleet scale: query cost and agreement with the generic preset.

Simulates a fleet (default 50 services, 3 releases each, 12 h scraped every minute), writes it under the
presets' names asked for (default generic and nginx-ingress: all six take ~100 MiB of OpenMetrics per
service and day) plus kube-state-metrics' view of its deploys, backfills it into a real Prometheus
(promtool, as the tests do), then for each preset evaluates every service's latest release with one
`evaluate_fleet` (nginx-ingress, whose metrics have no version, through Kubernetes), timing it and counting
Prometheus queries, and compares every verdict with the generic preset's on the metrics both have.
Also times the two kube-state-metrics detection queries on their own. Usage:
    .venv/bin/python benchmarks/presets.py [--services 50] [--hours 12] [--lookback 7d] [--presets generic,istio,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasehealth import config, wiring
from releasehealth.collectors.prometheus import PrometheusMetricSource
from releasehealth.config import Catalogue
from releasehealth.evaluate import evaluate_fleet
from releasehealth.model import KubernetesSettings
from releasehealth.queries import kubernetes
from releasehealth.simulator import Fleet, simulate
from releasehealth.verdicts import Evaluation
from testing.configs import example_config
from testing.servers import backfill, start_prometheus

END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # the same fleet every run


def catalogue(url: str, fleet: Fleet, preset: str, lookback: str, pod_join: bool = False) -> Catalogue:
    raw = example_config(url, timeout="120s")
    raw["policy"]["lookback"] = lookback
    raw["services"] = [{"name": s.name, "preset": preset} for s in fleet.services]
    if preset == "nginx-ingress" or pod_join:
        k8s = {"namespace": "shop", **({"join": "pod", "container": "app"} if pod_join else {})}
        raw["services"] = [{**s, "kubernetes": k8s} for s in raw["services"]]
    return config.parse(raw, f"{preset}.yaml")


def restricted(catalogue: Catalogue, names: set[str]) -> Catalogue:
    services = tuple(dataclasses.replace(s, metrics=tuple(m for m in s.metrics if m.name in names)) for s in catalogue.services)
    return dataclasses.replace(catalogue, services=services)


def evaluate(catalogue: Catalogue, now: datetime) -> tuple[list[Evaluation], float, int]:
    sources = wiring.connect(catalogue).sources
    started = time.perf_counter()
    evaluations = evaluate_fleet(sources, catalogue.services, catalogue.policy, now=now)
    return evaluations, time.perf_counter() - started, sources.metrics.queries_run


def agreement(expected: list[Evaluation], got: list[Evaluation]) -> tuple[int, int, int]:
    """(releases, same action, same classification on every metric)."""
    actions = verdicts = 0
    for want, have in zip(expected, got, strict=True):
        actions += want.recommendation.action is have.recommendation.action
        pairs = zip(want.score.verdicts, have.score.verdicts, strict=True) if want.score and have.score else ()
        verdicts += bool(want.score and have.score) and all(a.classification is b.classification for a, b in pairs)
    return len(expected), actions, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--hours", type=float, default=12)
    parser.add_argument("--lookback", default="7d")
    parser.add_argument("--presets", default="generic,nginx-ingress", help="comma-separated; generic is always included")
    args = parser.parse_args()
    presets = tuple(dict.fromkeys(["generic", *args.presets.split(",")]))
    fleet = simulate(seed=7, end=END, hours=args.hours, services=args.services, scrape_interval=timedelta(minutes=1))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        everywhere = {s.name: presets for s in fleet.services}
        tsdb = backfill(fleet, Path(folder), presets=everywhere, kubernetes=True)
        size = sum(p.stat().st_size for p in (Path(folder) / "simulated").glob("*.om")) / 2**20
        print(f"{args.services} services x {len(fleet.services[0].releases)} releases, {args.hours:g} h: "
              f"{size:.0f} MiB of OpenMetrics under {len(presets)} presets + kube-state-metrics, written and backfilled in "
              f"{time.perf_counter() - started:.1f} s")
        server = start_prometheus(tsdb, Path(folder))
        try:
            run(server.url, fleet, args.lookback, presets)
        finally:
            server.stop()


def run(url: str, fleet: Fleet, lookback: str, presets: tuple[str, ...]) -> None:
    now = fleet.end
    generic = catalogue(url, fleet, "generic", lookback)
    evaluate(generic, now)  # warm Prometheus' page cache, so the first preset timed is not the slowest
    print(f"\n{'preset':<20} {'evaluate_fleet':>10} {'queries':>8}   agreement with generic (latest releases)")
    # Every preset as configured by default; those with a version label also with the pod join instead.
    runs = [(p, False) for p in presets] + [(p, True) for p in presets if config.load_preset(p).labels.version]
    for preset, pod_join in runs:
        mine = catalogue(url, fleet, preset, lookback, pod_join)
        shared = {m.name for m in mine.services[0].metrics} & {m.name for m in generic.services[0].metrics}
        expected, _, _ = evaluate(restricted(generic, shared), now)
        got, seconds, queries = evaluate(restricted(mine, shared), now)
        releases, actions, verdicts = agreement(expected, got)
        name = preset + (" pod join" if pod_join else "")
        print(f"{name:<20} {seconds:>8.2f} s {queries:>8}   actions {actions}/{releases}, every metric's verdict {verdicts}/{releases}")
    source = PrometheusMetricSource(url, timeout=timedelta(seconds=120))
    names = [s.name for s in fleet.services]
    times = []
    for template in ("first_seen", "last_seen") * 3:
        query = kubernetes.seen_query(template, names, KubernetesSettings(deployment="", namespace="shop"), step=timedelta(minutes=1),
                                      lookback=config.parse_option_duration(lookback, "--lookback"), end=now, source=url)
        started = time.perf_counter()
        found = source.fetch(query)
        times.append(time.perf_counter() - started)
    print(f"\nkube-state-metrics detection, {len(names)} deployments, {lookback} lookback at 1 m steps: "
          f"median {statistics.median(times):.2f} s, max {max(times):.2f} s per query ({len(found)} versions)")


if __name__ == "__main__":
    main()
