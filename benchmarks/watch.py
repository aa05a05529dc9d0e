"""Watch mode at fleet scale, on a real Prometheus: queries per scan, how soon a deploy is noticed, and the
watcher's CPU between checkpoints.

Simulates N services (generic preset, 12 h at 1-minute scrapes, 3 releases each), backfills them into a
real Prometheus (promtool, as the tests do) and steps one watcher (`releasehealth.watch.Watcher`, a SQLite
store, no channel) through the last `--hours` of that history at the scan interval, as `release-health
watch` would live. Per scan: the queries Prometheus answered (its own prometheus_http_requests_total) and
the watcher's CPU time (time.process_time: this process, its threads included), split into scans with no
checkpoint due (the steady state) and scans that evaluated; and each deploy's delay from its first sample
to the first scan that followed it. Targets (issue 20): <= 1 query per template per scan for deploy
discovery, a new deploy noticed within one interval, CPU <= 10% of one core between checkpoints. Usage:
    .venv/bin/python benchmarks/watch.py [--services 200] [--interval 30] [--hours 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasehealth import wiring  # noqa: E402
from releasehealth.simulator import simulate  # noqa: E402
from releasehealth.watch import Watcher, WatchOptions  # noqa: E402
from testing.configs import write_fleet_config  # noqa: E402
from testing.servers import backfill, prometheus_load, start_prometheus  # noqa: E402

# The same time of day on every run (the fleet depends on it, not on the date): the same verdicts.
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--interval", type=int, default=30, help="scan interval, seconds")
    parser.add_argument("--hours", type=float, default=4.0, help="the end of the history watched, hours")
    args = parser.parse_args()
    interval = timedelta(seconds=args.interval)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        started = time.perf_counter()
        fleet = simulate(seed=7, end=END, services=args.services, hours=12, releases_per_service=3)
        server = start_prometheus(backfill(fleet, folder), folder)
        print(f"{args.services} services simulated and backfilled in {time.perf_counter() - started:.0f} s; "
              f"watching the last {args.hours:g} h at a {args.interval}-s interval")
        try:
            path = write_fleet_config(server.url, [s.name for s in fleet.services], folder, timeout="120s", store=True)
            wired = wiring.from_file(path, create_store=True)
            assert wired.sources.store is not None
            watcher = Watcher(wired.sources, wired.catalogue, wired.sources.store, WatchOptions(interval=interval), "bench")
            first = END - timedelta(hours=args.hours)
            steps = [first + n * interval for n in range(int((END - first) / interval) + 1)]
            quiet, busy, queries, noticed = [], [], [], {}
            for now in steps:
                before, cpu = prometheus_load(server), time.process_time()
                report = watcher.step(now)
                spent = time.process_time() - cpu
                ran = (prometheus_load(server) - before).queries
                (busy if report.evaluated else quiet).append(spent)
                if not report.evaluated:
                    queries.append(ran)
                for release in wired.sources.store.watched():
                    noticed.setdefault((release.service, release.version), now)
        finally:
            server.stop()
    deploys = {(s.name, r.version): r.deployed_at for s in fleet.services for r in s.releases[1:] if first <= r.deployed_at <= END}
    delays = [(noticed[k] - at).total_seconds() for k, at in deploys.items() if k in noticed]
    missed = [k for k in deploys if k not in noticed]
    print(f"scans: {len(steps)} ({len(quiet)} with no checkpoint due, {len(busy)} that evaluated)")
    print(f"queries per scan with no checkpoint: median {statistics.median(queries):.0f}, max {max(queries)} "
          "(deploy discovery: first_seen + last_seen; target <= 1 per template)")
    share = statistics.median(quiet) / args.interval * 100
    print(f"CPU per scan with no checkpoint: median {statistics.median(quiet) * 1000:.0f} ms, max {max(quiet) * 1000:.0f} ms "
          f"= {share:.1f}% of one core at a {args.interval}-s interval (target <= 10%)")
    if busy:
        print(f"CPU per scan that evaluated: median {statistics.median(busy) * 1000:.0f} ms, max {max(busy) * 1000:.0f} ms")
    print(f"deploys in the watched hours: {len(deploys)}; noticed after (s): median {statistics.median(delays) if delays else 0:.0f}, "
          f"max {max(delays) if delays else 0:.0f} (target <= {args.interval}); missed: {len(missed)}")


if __name__ == "__main__":
    main()
