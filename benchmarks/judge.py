"""The judge's own speed: per metric pair of 200-step windows, and per whole release, ours and Kayenta mode.

Simulates the accuracy scenario's fleet (every fault and good variant, the connections gauge beside the
generic preset), evaluates its releases through the in-memory sources with a 200-minute window at one-
minute steps, captures the inputs handed to the judge, and then times, on those same inputs:

- each metric kind's classifier on one pair of windows (gauge, ratio, latency quantile and tail; the
  log signatures are mined text, timed in benchmarks/logs.py): the median over every captured pair, cold
  (the bucket matrices a release's latency metrics share are built inside the timing);
- `judge` on a whole release (alpha spending, the score and the recommendation), ours and with
  policy.judge "kayenta": on its metrics, and on its metrics and log signatures (the mining of both
  windows' messages). The shared bucket matrices are forgotten before every run.

Times are CPU-bound wall clock in this one process, the median of `--repeat` runs of each. Usage:
    .venv/bin/python benchmarks/judge.py [--services 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import recording  # noqa: E402

from releasehealth import evaluate  # noqa: E402
from releasehealth.model import MetricKind, Policy  # noqa: E402
from releasehealth.scoring.judging import CLASSIFIERS, judge  # noqa: E402
from releasehealth.scoring.latency import MATRICES  # noqa: E402
from releasehealth.simulator import demo, simulate  # noqa: E402
from releasehealth.verdicts import MetricInput  # noqa: E402

END = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
WINDOW, STEP = timedelta(minutes=200), timedelta(minutes=1)
TARGET_PAIR_MS, TARGET_RELEASE_MS = 0.45, 3.0
ALPHA = 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    releases, policy = capture(args.services)
    steps = statistics.median(i.expected_steps for inputs, *_ in releases for i in inputs if i.expected_steps)
    print(f"{len(releases)} releases judged, windows of {steps:.0f} steps\n")
    print(f"{'per metric pair':<28}{'pairs':>7}{'median ms':>11}{'p90 ms':>9}  target")
    for kind in (MetricKind.GAUGE, MetricKind.RATIO, MetricKind.HISTOGRAM_QUANTILE, MetricKind.HISTOGRAM_TAIL):
        pairs = [i for inputs, *_ in releases for i in inputs if i.spec.kind is kind and not (i.error or i.absent)]
        classify = CLASSIFIERS[kind]
        times = [_time(lambda i=i, f=classify: f(i, ALPHA, ALPHA), args.repeat) for i in pairs]
        _row(kind.value, len(pairs), times, TARGET_PAIR_MS)
    print(f"\n{'per release':<28}{'releases':>7}{'median ms':>11}{'p90 ms':>9}  target")
    kayenta = dataclasses.replace(policy, judge="kayenta")
    for name, chosen, logs in (
        ("release-health, metrics", policy, False), ("Kayenta mode, metrics", kayenta, False),
        ("release-health, with logs", policy, True), ("Kayenta mode, with logs", kayenta, True),
    ):
        judged = [(_kept(inputs, logs), baseline, candidate, info) for inputs, baseline, candidate, info in releases]
        times = [_time(lambda r=r, p=chosen: judge(r[0], p, r[1], r[2], r[3]), args.repeat) for r in judged]
        _row(name, len(releases), times, TARGET_RELEASE_MS if not logs else math.inf)
    return 0


def capture(services: int) -> tuple[list[tuple[tuple[MetricInput, ...], str, str, float]], Policy]:
    """Every release's judge inputs, from the in-memory sources with 200-step windows."""
    fleet = simulate(seed=7, end=END, services=services, releases_per_service=3, scenario="accuracy")
    policy = dataclasses.replace(demo.of_fleet(fleet).catalogue.policy, window=WINDOW, step=STEP)
    wired = demo.of_fleet(fleet, policy=policy).wire()
    with recording() as seen:
        for service in wired.catalogue.services:
            evaluate.evaluate_releases(wired.sources, service, wired.catalogue.policy, now=fleet.end)
    return [(inputs, baseline, candidate, info) for candidate, (inputs, baseline, info) in seen.items()], policy


def _kept(inputs: tuple[MetricInput, ...], logs: bool) -> tuple[MetricInput, ...]:
    return inputs if logs else tuple(i for i in inputs if i.spec.kind is not MetricKind.LOG_SIGNATURES)


def _time(work: Callable[[], object], repeat: int) -> float:
    """The median milliseconds of `repeat` runs of `work`, each with no bucket matrix kept from before."""
    runs = []
    for _ in range(repeat):
        MATRICES.clear()
        start = time.perf_counter()
        work()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def _row(name: str, count: int, times: list[float], target: float) -> None:
    if not times:
        print(f"{name:<28}{0:>7}{'-':>11}{'-':>9}")
        return
    median = statistics.median(times)
    p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
    verdict = "" if math.isinf(target) else f"<= {target:g} ms " + ("met" if median <= target else "MISSED")
    print(f"{name:<28}{count:>7}{median:>11.3f}{p90:>9.3f}  {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
