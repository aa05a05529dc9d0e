"""The backtest at scale, on a real Prometheus: its time and queries for N services x D days of history at
one-minute resolution, and how the A/A false-alarm rate it measures compares with the false alarms on the
good releases of the same history (the simulator knows which releases are good).

Simulates the fleet (generic preset, one scrape a minute, one release per service and day), backfills it
into a real Prometheus (promtool, one two-hour block at a time), then runs `release-health backtest`'s core
(`releasehealth.backtest.calibrate`, metrics only, an SQLite store) over the whole history and prints:
wall time, the queries Prometheus answered (its own prometheus_http_requests_total) per metric template
and day, the A/A rates overall and per metric with their intervals, and the rate on good releases.
Targets (issue 21): 50 services x 30 days in <= 10 min on 2 cores, <= 3 queries per template per day;
the A/A false-alarm rate on good history <= the configured budget + its interval. `--keep DIR` keeps the
backfilled TSDB there and reuses it on the next run (the backfill of 30 days takes minutes). Usage:
    .venv/bin/python benchmarks/backtest.py [--services 50] [--days 30] [--step 1m] [--pairs-per-day 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasehealth import backtest, wiring  # noqa: E402
from releasehealth.calibration import Calibration, rate  # noqa: E402
from releasehealth.model import Action, MetricKind, parse_duration  # noqa: E402
from releasehealth.simulator import simulate  # noqa: E402
from releasehealth.simulator.fleet import Fleet  # noqa: E402
from releasehealth.simulator.openmetrics import write_openmetrics  # noqa: E402
from testing.configs import write_fleet_config  # noqa: E402
from testing.servers import prometheus_load, require, start_prometheus  # noqa: E402

# The same time of day on every run (the fleet depends on it, not on the date): the same history.
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
BLOCK_SECONDS = 7200  # Prometheus' block: promtool writes one per two hours of samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step", default="", help="a coarser step than the policy's 1m (downsampled), e.g. 5m")
    parser.add_argument("--pairs-per-day", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="keep the backfilled TSDB in this folder and reuse it")
    args = parser.parse_args()
    fleet = simulate(seed=7, end=END, services=args.services, hours=24 * args.days + 2, releases_per_service=args.days,
                     scrape_interval=timedelta(minutes=1))
    with tempfile.TemporaryDirectory() as name:
        folder = args.keep or Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        tsdb = folder / f"tsdb-{args.services}x{args.days}-{END:%H%M}"
        started = time.perf_counter()
        if not tsdb.exists():
            _backfill(fleet, folder, tsdb)
        server = start_prometheus(tsdb, folder)
        print(f"{args.services} services x {args.days} days ({sum(len(s.releases) - 1 for s in fleet.services)} deploys) "
              f"simulated and backfilled in {time.perf_counter() - started:.0f} s")
        try:
            path = write_fleet_config(server.url, [s.name for s in fleet.services], Path(name), timeout="300s", store=True)
            wired = wiring.from_file(path, create_store=True)
            services = [
                dataclasses.replace(s, logs=None, metrics=tuple(m for m in s.metrics if m.kind not in (MetricKind.LOG_RATE, MetricKind.LOG_SIGNATURES)))
                for s in wired.catalogue.services
            ]
            templates = {t for s in services for m in s.metrics for t in m.queries.values()}
            settings = backtest.BacktestSettings(
                since=END - timedelta(days=args.days), until=END, pairs_per_day=args.pairs_per_day,
                step=parse_duration(args.step) if args.step else None,
            )
            before, clock = prometheus_load(server), time.perf_counter()
            calibration, _ = backtest.calibrate(wired.sources, services, wired.catalogue.policy, settings,
                                                progress=lambda day, done, total: print(f"\r  day {done}/{total}", end="", flush=True))
            elapsed = time.perf_counter() - clock
            load = prometheus_load(server) - before
        finally:
            server.stop()
    print()
    _report(calibration, fleet, elapsed, load.queries, load.seconds, len(templates), args)


class _ByBlock:
    """A text sink that splits OpenMetrics by Prometheus' two-hour block: each sample line goes to the file
    of its block, the family headers and the end to every file. promtool reads its whole input once per
    block it writes, so one file of a month takes hundreds of passes; one file per block takes one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[int, TextIO] = {}
        self.headers: list[str] = []

    def write(self, text: str) -> None:
        for line in text.splitlines(keepends=True):
            self._line(line)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        if line.startswith("#"):
            self.headers.append(line)
            for file in self.files.values():
                file.write(line)
            return
        block = int(float(line.rsplit(" ", 1)[1]) // BLOCK_SECONDS)
        file = self.files.get(block)
        if file is None:
            file = self.files[block] = (self.folder / f"{block}.om").open("w", encoding="utf-8")
            file.writelines(h for h in self.headers if not h.startswith("# EOF"))
        file.write(line)

    def close(self) -> list[Path]:
        for file in self.files.values():
            file.close()
        return [self.folder / f"{block}.om" for block in sorted(self.files)]


def _backfill(fleet: Fleet, folder: Path, tsdb: Path) -> None:
    """promtool, one two-hour block at a time (see _ByBlock)."""
    parts = folder / "parts"
    parts.mkdir(exist_ok=True)
    sink = _ByBlock(parts)
    write_openmetrics(fleet, sink)  # type: ignore[arg-type]  # a TextIO in all that write_openmetrics uses
    for text in sink.close():
        subprocess.run([require("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(text), str(tsdb)],
                       check=True, capture_output=True, timeout=600)
        text.unlink()


def _report(c: Calibration, fleet: Fleet, elapsed: float, queries: int, seconds: float, templates: int, args: argparse.Namespace) -> None:
    per_template_day = queries / templates / args.days
    print(f"backtest of {args.services} services x {args.days} days at a step of {args.step or '1m (the policy s)'}: "
          f"{elapsed:.0f} s = {elapsed / 60:.1f} min (target <= 10 min)")
    print(f"queries: {queries} ({c.queries} for the days' windows, the rest the deploy scan), {templates} metric templates: "
          f"{per_template_day:.2f} per template per day (target <= 3); Prometheus' own time {seconds:.0f} s")
    pairs = c.false_alarms
    print(f"A/A pairs judged: {pairs.trials} (+{c.unjudged_pairs} unjudged for missing data); releases judged: {len(c.releases)}")
    budget = c.alpha + c.hold_alpha
    print(f"A/A false alarms: {pairs.events}/{pairs.trials} = {_pct(pairs.value)} (95% CI {_pct(pairs.low)}..{_pct(pairs.high)}); "
          f"budget alpha + hold_alpha = {_pct(budget)}: {'met' if pairs.low <= budget else 'MISSED'}")
    print(f"A/A false ROLLBACKs: {c.false_rollbacks.events}/{c.false_rollbacks.trials} = {_pct(c.false_rollbacks.value)} "
          f"(95% CI {_pct(c.false_rollbacks.low)}..{_pct(c.false_rollbacks.high)}) against alpha {_pct(c.alpha)}")
    for kind, r in c.by_kind.items():
        print(f"  {kind}: {r.events}/{r.trials} = {_pct(r.value)} ({_pct(r.low)}..{_pct(r.high)})")
    truth = {(s.name, r.version): r.label.is_regression for s in fleet.services for r in s.releases[1:]}
    good = [t for t in c.releases if not truth.get((t.service, t.version), True)]
    on_good = rate(sum(t.action in (Action.HOLD, Action.ROLLBACK) for t in good), len(good))
    overlap = on_good.low <= pairs.high and pairs.low <= on_good.high
    print(f"false alarms on the good releases of the same history: {on_good.events}/{on_good.trials} = {_pct(on_good.value)} "
          f"({_pct(on_good.low)}..{_pct(on_good.high)}): the intervals {'overlap' if overlap else 'DO NOT overlap'}")
    bad = [t for t in c.releases if truth.get((t.service, t.version), False)]
    print(f"regressions caught: {sum(t.action is Action.ROLLBACK for t in bad)} ROLLBACK, {sum(t.action is Action.HOLD for t in bad)} HOLD "
          f"of {len(bad)}")
    print(f"\n{'metric':<16}{'share':>8}{'A/A at configured':>26}{'noisy':>7}  suggested")
    for m in c.metrics:
        r = m.configured
        suggested = "-" if m.suggested is None else f"x{m.tolerance_at(m.suggested).relative / max(m.tolerance.relative, 1e-12):g}"
        print(f"{m.metric:<16}{_pct(m.share):>8}{f'{r.events}/{r.trials} = {_pct(r.value)}':>26}{'yes' if m.noisy else 'no':>7}  {suggested}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


if __name__ == "__main__":
    main()
