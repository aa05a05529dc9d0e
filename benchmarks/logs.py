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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasehealth import wiring  # noqa: E402
from releasehealth.collectors.elasticsearch import ElasticsearchLogSource  # noqa: E402
from releasehealth.config import log_metrics  # noqa: E402
from releasehealth.evaluate import evaluate_fleet, evaluate_release  # noqa: E402
from releasehealth.model import LogLine, Series, SignatureStatus  # noqa: E402
from releasehealth.scoring.logs import classify_signatures  # noqa: E402
from releasehealth.scoring.signatures import SideTotals, compare, mine  # noqa: E402
from releasehealth.simulator import (
    demo,  # noqa: E402
    simulate,  # noqa: E402
)
from releasehealth.simulator.logs import LEVELS, TEMPLATES, simulate_logs  # noqa: E402
from releasehealth.simulator.statements import SERVICE, ReleasePair, Shape, release_pair, sample  # noqa: E402
from releasehealth.verdicts import LogSamples, LogSignature  # noqa: E402
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


PAIRS = 100  # release pairs per shape and traffic
FINDINGS_ALPHA = 0.0025  # about the share of a release's alpha (0.01) the log signatures get


def statement_findings() -> None:
    """What the log findings catch and flag on statement-level release pairs (simulator.statements): a
    statement that stops must be found (VANISHED, holding), normal noise and reworded lines never flagged."""
    spec = log_metrics()[1]
    print(f"\n{'log findings, statement-level pairs':<22} {'traffic':>8} {'pairs':>6} {'flagged':>8} {'found':>6}  target")
    targets = {
        Shape.NORMAL: "0 flagged", Shape.STATEMENT_STOPS: ">= 95% found", Shape.RENAMED: "0 held",
        Shape.CALLER_ERRORS: ">= 95% found",
    }
    for shape in Shape:
        for rps in (2.0, 20.0):
            flagged = found = 0
            for seed in range(PAIRS):
                pair = release_pair(seed, shape, rps, with_origin=seed % 2 == 0)
                verdict = classify_signatures(spec, _samples(pair, seed), *_lines_per_side(pair), alpha=FINDINGS_ALPHA)
                failing = [s for s in verdict.signatures if s.failing]
                flagged += bool(failing)
                found += any(_found(s, shape) and _names(s.template, pair.changed) for s in failing)
            shown = f"{100 * found / PAIRS:.0f}%" if shape in FAULTS else "-"
            print(f"{shape.value:<22} {rps:>6.0f}/s {PAIRS:>6} {100 * flagged / PAIRS:>7.0f}% {shown:>6}  {targets[shape]}")


FAULTS = {Shape.STATEMENT_STOPS: SignatureStatus.VANISHED, Shape.CALLER_ERRORS: SignatureStatus.NEW}


def _found(signature: LogSignature, shape: Shape) -> bool:
    """A finding of the fault: the statement VANISHED, or a caller's line naming the service is NEW."""
    if shape is Shape.CALLER_ERRORS:
        return bool(signature.caller) and signature.status in (SignatureStatus.NEW, SignatureStatus.INCREASED)
    return signature.status is FAULTS.get(shape)


def _names(signature: str, changed: tuple[str, ...]) -> bool:
    """Whether a signature is of one of the statements the shape changed (by its origin or its text)."""
    return any(origin in signature for origin, _ in changed) or any(text in signature for _, text in changed)


def _samples(pair: ReleasePair, seed: int) -> LogSamples:
    """Both windows as the collector reads them: error and warn lines sampled up to 5,000, info up to 2,000."""
    rng = np.random.default_rng(seed)
    sides = []
    for lines, requests in zip((pair.baseline, pair.candidate), pair.requests, strict=True):
        flagged = tuple(line for line in lines if line.level in ("error", "warn"))
        info = tuple(line for line in lines if line.level == "info")
        kept, kept_info = sample(flagged, 5000, rng), sample(info, 2000, rng)
        sides.append((kept + kept_info, SideTotals(len(kept), len(flagged), requests, "requests", len(kept_info), len(info))))
    callers = tuple(sample(lines, 5000, rng) for lines in pair.callers)
    caller_totals = tuple(
        SideTotals(len(kept), len(lines), requests) for kept, lines, requests in zip(callers, pair.callers, pair.requests, strict=True)
    )
    return LogSamples(
        baseline=sides[0][0], candidate=sides[1][0], totals=(sides[0][1], sides[1][1]),
        callee=SERVICE, callers=(callers[0], callers[1]), caller_totals=(caller_totals[0], caller_totals[1]),
    )


def _lines_per_side(pair: ReleasePair) -> tuple[dict[str, list[Series]], dict[str, list[Series]]]:
    return tuple({"lines": [Series({}, np.array([60.0]), np.array([float(len(lines))]))]} for lines in (pair.baseline, pair.candidate))  # type: ignore[return-value]


if __name__ == "__main__":
    statement_findings()
    mining_speed()
    print()
    requests_per_evaluation()
