"""Logs: Elasticsearch requests per release evaluation, and signature-mining speed.

Starts noida-db (the Elasticsearch-API test server) on loopback with the simulated fleet's logs, judges
releases with the real ElasticsearchLogSource (metrics from the in-memory simulated source), and times
drain3 template mining on samples of simulated error and warn messages. Usage:
    .venv/bin/python benchmarks/logs.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasehealth import wiring  # noqa: E402
from releasehealth.collectors.elasticsearch import ElasticsearchLogSource  # noqa: E402
from releasehealth.evaluate import evaluate_fleet, evaluate_release  # noqa: E402
from releasehealth.model import LogLine  # noqa: E402
from releasehealth.scoring.signatures import SideTotals, compare, mine  # noqa: E402
from releasehealth.simulator import (
    demo,  # noqa: E402
    simulate,  # noqa: E402
)
from releasehealth.simulator.logs import LEVELS, TEMPLATES, simulate_logs  # noqa: E402
from testing.servers import load_logs, start_elasticsearch  # noqa: E402

END = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def requests_per_evaluation() -> None:
    fleet = simulate(seed=7, end=END)
    logs = simulate_logs(fleet)
    with tempfile.TemporaryDirectory() as folder:
        server = start_elasticsearch(Path(folder))
        try:
            started = time.perf_counter()
            load_logs(server.url, logs)
            print(f"loaded {logs.documents} documents into noida-db in {time.perf_counter() - started:.1f} s")
            built = demo.of_fleet(fleet)
            catalogue, metrics, policy = built.catalogue, built.metrics, built.catalogue.policy
            print(f"{'evaluation':<34} {'ES requests':>11} {'seconds':>8}")
            for service in fleet.services[:4]:
                for release in service.releases[1:]:
                    source = ElasticsearchLogSource(server.url, deploy_index="deploys")
                    sources = wiring.assemble(catalogue, metrics=metrics, logs=source).sources
                    started = time.perf_counter()
                    evaluate_release(sources, catalogue.service(service.name), policy, release.version, now=fleet.end)
                    name = f"{service.name} {release.version}"
                    print(f"{name:<34} {source.requests_made:>11} {time.perf_counter() - started:>8.2f}")
            source = ElasticsearchLogSource(server.url, deploy_index="deploys")
            started = time.perf_counter()
            sources = wiring.assemble(catalogue, metrics=metrics, logs=source).sources
            evaluate_fleet(sources, catalogue.services, policy, now=fleet.end)
            print(f"{'fleet overview (8 services)':<34} {source.requests_made:>11} {time.perf_counter() - started:>8.2f}")
        finally:
            server.stop()


def mining_speed() -> None:
    logs = simulate_logs(simulate(seed=7, end=END))
    lines = [
        LogLine(float(t), TEMPLATES[k].level, m, TEMPLATES[k].error_type)
        for s in logs.services
        for t, k, m in zip(s.times.tolist(), s.template.tolist(), s.messages, strict=True)
        if TEMPLATES[k].level in LEVELS[:2]
    ][:20_000]
    print(f"\n{'mining (one core, CPU time)':<34} {'lines':>7} {'seconds':>8} {'lines/s':>9} {'templates':>9}")
    for size in (1_000, 5_000, 10_000, 20_000):
        sample = lines[:size]
        started = time.process_time()
        clusters = mine(sample[: size // 2], sample[size // 2:])
        elapsed = time.process_time() - started
        print(f"{'mine both windows':<34} {size:>7} {elapsed:>8.3f} {size / elapsed:>9.0f} {len(clusters):>9}")
    half = len(lines[:5000]) // 2
    totals = (SideTotals(half, half, 100_000.0), SideTotals(half, half, 100_000.0))
    started = time.process_time()
    signatures = compare(lines[:half], lines[half:5000], totals, tolerance=1.0, alpha=0.0025)
    elapsed = time.process_time() - started
    print(f"{'mine + compare (5,000 lines)':<34} {5000:>7} {elapsed:>8.3f} {5000 / elapsed:>9.0f} {len(signatures):>9}")


if __name__ == "__main__":
    mining_speed()
    print()
    requests_per_evaluation()
