"""Fleet evaluation against the loop a user would write, on a real Prometheus.

Simulates N services (generic preset, 12 h at 1-minute scrapes, 3 releases each), backfills them into a
real Prometheus (promtool, as the tests do) and times three sides, each in a fresh process, in interleaved
rounds (the order rotates every round):

- A: the product, `evaluate_fleet` over the N latest releases through the one wiring;
- B: a plain prometheus-api-client loop, `custom_query_range` per service x template x window, given A's
  windows and judging nothing (the deploy detection such a loop would also need is left out: B is flattered);
- C: A's own HTTP requests, recorded in a first run of A, replayed with `requests`, bodies read, nothing decoded.

Per side: the median wall time of the work (the interpreter's start and imports excluded), the queries and
the time Prometheus itself spent on them (its own prometheus_http_requests_total and
prometheus_http_request_duration_seconds_sum for the query handlers), and the child's peak RSS; then the
ratios A/C and A/B, and A's growth between sizes. Side B needs the `bench` extra (prometheus-api-client,
which the product does not use). Usage:
    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/fleet.py [--services 50,100,200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing.configs import write_fleet_config  # noqa: E402
from testing.servers import backfill, prometheus_load, start_prometheus  # noqa: E402

# The same time of day on every run (the fleet depends on it, not on the date): the same verdicts.
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
HOURS, RELEASES, SCRAPE = 12.0, 3, timedelta(minutes=1)
SIDES = ("A", "B", "C")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="50,100,200", help="fleet sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--side", choices=(*SIDES, "plan"), help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(_run_side(args.side, args.folder)))
        return 0
    walls: dict[int, float] = {}
    for size in (int(n) for n in args.services.split(",")):
        walls[size] = _measure(size, args.rounds)
    sizes = sorted(walls)
    for smaller, larger in zip(sizes, sizes[1:], strict=False):
        print(f"A({larger}) / A({smaller}) = {walls[larger] / walls[smaller]:.2f} (target <= 2.1 when doubling)")
    return 0


def _measure(size: int, rounds: int) -> float:
    """Print the table of one fleet size; return A's median wall time."""
    from releasehealth.simulator import simulate

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        started = time.perf_counter()
        fleet = simulate(seed=7, end=END, services=size, hours=HOURS, releases_per_service=RELEASES, scrape_interval=SCRAPE)
        server = start_prometheus(backfill(fleet, folder), folder)
        try:
            write_fleet_config(server.url, [s.name for s in fleet.services], folder, timeout="120s")
            print(f"\n{size} services: simulated and backfilled in {time.perf_counter() - started:.0f} s")
            _child("plan", folder)  # A once: its windows (for B) and its HTTP requests (for C)
            results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
            for round_ in range(rounds):
                for side in SIDES[round_ % 3:] + SIDES[:round_ % 3]:
                    before = prometheus_load(server)
                    measured = _child(side, folder)
                    load = prometheus_load(server) - before
                    results[side].append({**measured, "queries": load.queries, "prometheus": load.seconds})
        finally:
            server.stop()
    print(f"{'side':<44} {'wall s':>7} {'queries':>8} {'Prometheus s':>12} {'peak RSS MB':>11}")
    labels = {
        "A": "A: evaluate_fleet (the product)",
        "B": "B: prometheus-api-client loop, no judging",
        "C": "C: A's requests replayed, nothing decoded",
    }
    medians = {side: statistics.median(r["wall"] for r in rows) for side, rows in results.items()}
    for side, rows in results.items():
        queries = statistics.median(r["queries"] for r in rows)
        handler = statistics.median(r["prometheus"] for r in rows)
        rss = max(r["rss_mb"] for r in rows)
        print(f"{labels[side]:<44} {medians[side]:>7.2f} {queries:>8.0f} {handler:>12.2f} {rss:>11.0f}")
    print(f"A/C = {medians['A'] / medians['C']:.2f} (target <= 1.2 at 200)   A/B = {medians['A'] / medians['B']:.2f} (target < 1)")
    return medians["A"]


def _child(side: str, folder: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--side", side, "--folder", str(folder)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"side {side} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_side(side: str, folder: Path) -> dict[str, Any]:
    """One side's work in this (fresh) process: its wall time and this process's peak RSS."""
    if side in ("A", "plan"):
        wall = _product(folder, record=side == "plan")
    elif side == "B":
        wall = _loop(folder)
    else:
        wall = _replay(folder)
    return {"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _product(folder: Path, record: bool) -> float:
    import requests

    from releasehealth import wiring
    from releasehealth.evaluate import evaluate_fleet
    from releasehealth.fetch import FetchKey
    from releasehealth.queries.promql import QueryGroup

    sent: list[dict[str, Any]] = []
    if record:  # every HTTP request the product makes, for C to replay
        original = requests.Session.request

        def recording(session: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            sent.append({"method": method, "url": url, "params": kwargs.get("params"), "data": kwargs.get("data")})
            return original(session, method, url, *args, **kwargs)

        requests.Session.request = recording  # type: ignore[method-assign]
    opened = wiring.from_file(folder / "release-health.yaml")
    catalogue = opened.catalogue
    started = time.perf_counter()
    evaluations = evaluate_fleet(opened.sources, catalogue.services, catalogue.policy, now=END)
    wall = time.perf_counter() - started
    if record:
        # B's loop: the same templates, one service at a time, over each window A judged.
        loop = []
        for evaluation in evaluations:
            service = catalogue.service(evaluation.service)
            windows = [w for w in (evaluation.baseline_window, evaluation.candidate_window) if w is not None]
            for name in sorted({name for spec in service.metrics for name in spec.queries.values()}):
                key = FetchKey.of(service, name, opened.sources.metrics.name)
                group = QueryGroup.of(service, opened.sources.metrics.name)
                for w in windows:
                    query = group.range(key.template, key.text, [service.name], start=w.start, end=w.end, step=w.step)
                    loop.append({"query": query.text, "start": w.start.timestamp(), "end": w.end.timestamp(), "step": w.step.total_seconds()})
        plan = {"url": catalogue.prometheus.url if catalogue.prometheus else "", "loop": loop, "requests": sent}
        (folder / "plan.json").write_text(json.dumps(plan))
    return wall


def _loop(folder: Path) -> float:
    try:
        from prometheus_api_client import PrometheusConnect
    except ImportError:
        raise SystemExit("side B is a prometheus-api-client loop: .venv/bin/pip install -e '.[bench]'") from None

    plan = json.loads((folder / "plan.json").read_text())
    client = PrometheusConnect(plan["url"], disable_ssl=True)
    started = time.perf_counter()
    for item in plan["loop"]:
        client.custom_query_range(
            item["query"], start_time=datetime.fromtimestamp(item["start"], UTC),
            end_time=datetime.fromtimestamp(item["end"], UTC), step=f"{item['step']:g}s",
        )
    return time.perf_counter() - started


def _replay(folder: Path) -> float:
    import requests

    plan = json.loads((folder / "plan.json").read_text())
    session = requests.Session()
    read = 0  # bytes: the bodies are read, as the product reads them, and nothing more
    started = time.perf_counter()
    for sent in plan["requests"]:
        answer = session.request(sent["method"], sent["url"], params=sent["params"], data=sent["data"], timeout=300)
        read += len(answer.content)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
