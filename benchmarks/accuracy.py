"""Verdict accuracy on the simulator's labelled releases: detection rate by fault, false-rollback rate.

Runs the embedded (in-memory) source, so it measures the judge, not Prometheus. Usage:
    .venv/bin/python benchmarks/accuracy.py [--seeds 20]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import UTC, datetime

from releasehealth import analysis
from releasehealth.model import Action

END = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    outcomes: Counter[tuple[str, float, Action]] = Counter()
    started = time.perf_counter()
    for seed in range(args.seeds):
        catalogue, sources, fleet = analysis.demo(seed=seed, end=END)
        for service in fleet.services:
            judged = {e.candidate.version: e for e in analysis.evaluate_releases(catalogue, sources, service.name, now=fleet.end)}
            for release in service.releases[1:]:
                outcomes[(release.label.value, release.factor, judged[release.version].recommendation.action)] += 1
    elapsed = time.perf_counter() - started
    print(f"{args.seeds} seeds, {sum(outcomes.values())} releases judged in {elapsed:.1f} s")
    print(f"{'release':<14} {'fault size':>10} {'n':>5} {'ROLLBACK':>9} {'HOLD':>5} {'INCONCL.':>9} {'PROMOTE':>8}")
    for label, factor in sorted({(label, factor) for label, factor, _ in outcomes}):
        row = {action: outcomes[(label, factor, action)] for action in Action}
        n = sum(row.values())
        print(
            f"{label:<14} {'x' + format(factor, 'g'):>10} {n:>5} {row[Action.ROLLBACK] / n:>9.1%} {row[Action.HOLD] / n:>5.1%}"
            f" {row[Action.INCONCLUSIVE] / n:>9.1%} {row[Action.PROMOTE] / n:>8.1%}"
        )
    good = sum(v for (label, _, _), v in outcomes.items() if label == "good")
    false_rollbacks = sum(v for (label, _, action), v in outcomes.items() if label == "good" and action is Action.ROLLBACK)
    print(f"false-rollback rate on good releases: {false_rollbacks}/{good} = {false_rollbacks / good:.2%}")


if __name__ == "__main__":
    main()
