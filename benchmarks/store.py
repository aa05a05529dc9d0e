"""History store: Store.fleet(), history() and latest() with 10,000 stored evaluations of 50 services.

Fills a fresh store with real evaluation documents (the demo fleet's releases, judged, about 90 kB of
JSON each) under 50 service names, 200 evaluations each (20 versions checked 10 times, as the gate
does), inserted in batches inside one transaction through the store's table; then times each read
`--runs` times on a warm database and prints the median and the maximum, the target for fleet()
(100 ms), and the query plan of fleet(). SQLite always; PostgreSQL too with --postgres (a throw-away
server started like the tests' one) or --postgres URL (an existing, empty database). To see how the
queries scale without writing 90 kB per row, --tiny-documents stores `{}` instead (e.g. with
--evaluations 200000). Usage:
    .venv/bin/python benchmarks/store.py [--postgres [URL]] [--evaluations 10000] [--services 50] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasehealth.evaluate import evaluate_releases  # noqa: E402
from releasehealth.serialize import evaluation_to_dict  # noqa: E402
from releasehealth.simulator import demo, simulate  # noqa: E402
from releasehealth.store import Store, evaluations  # noqa: E402

END = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
FLEET_TARGET_MS = 100.0
VERSIONS_PER_SERVICE = 20
BATCH = 500
SERVICE, VERSION = "@@service@@", "@@version@@"  # placeholders in the template documents


def templates() -> list[tuple[dict, str]]:
    """Real evaluations of every release of the demo fleet that has a baseline: (summary columns, the
    document as JSON with placeholders for the service and version)."""
    built = demo.of_fleet(simulate(seed=7, end=END))
    wired, found = built.wire(), []
    for service in wired.catalogue.services:
        for evaluation in evaluate_releases(wired.sources, service, wired.catalogue.policy, now=END):
            if evaluation.candidate is None or evaluation.baseline is None:
                continue  # a first release has nothing to compare with: a small document, rare in a real store
            document = evaluation_to_dict(evaluation)
            document["service"], document["candidate"]["version"] = SERVICE, VERSION
            r = evaluation.recommendation
            row = {
                "baseline_version": r.baseline, "policy": evaluation.policy.value, "action": r.action.value,
                "score": evaluation.score.score if evaluation.score else None, "reason": r.reason,
            }
            found.append((row, json.dumps(document, separators=(",", ":"))))
    return found


def rows(count: int, services: int, tiny: bool = False) -> Iterator[dict]:
    """`count` evaluation rows over `services` services, oldest first, five minutes apart per service."""
    shapes = [(row, "{}") for row, _ in templates()] if tiny else templates()
    per_service = count // services
    checks = max(1, per_service // VERSIONS_PER_SERVICE)
    start = END - timedelta(minutes=5 * per_service)
    for n in range(per_service * services):
        step, s = divmod(n, services)
        service, version = f"service-{s:02d}", f"1.{step // checks}.0"
        row, document = shapes[n % len(shapes)]
        yield {
            **row, "service": service, "version": version, "evaluated_at": start + timedelta(minutes=5 * step),
            "document": document.replace(SERVICE, service).replace(VERSION, version),
        }


def fill(store: Store, count: int, services: int, tiny: bool = False) -> float:
    """Insert the rows in batches in one transaction; return the seconds it took."""
    started = time.perf_counter()
    batch: list[dict] = []
    with store.engine.begin() as connection:
        for row in rows(count, services, tiny):
            batch.append(row)
            if len(batch) == BATCH:
                connection.execute(evaluations.insert(), batch)
                batch = []
        if batch:
            connection.execute(evaluations.insert(), batch)
    return time.perf_counter() - started


def timed(read: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Median and maximum milliseconds of `runs` calls (after one warm-up call), and the last answer."""
    answer = read()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = read()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, max(seconds) * 1000, answer


def fleet_plan(store: Store) -> list[str]:
    """The database's plan for the statement fleet() runs (caught as it goes to the driver)."""
    caught: list[tuple[str, object]] = []

    def catch(_conn: object, _cursor: object, statement: str, parameters: object, _context: object, _many: bool) -> None:
        caught.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", catch)
    try:
        store.fleet()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", catch)
    statement, parameters = caught[-1]
    explain = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as connection:
        plan = connection.exec_driver_sql(explain + statement, parameters)  # type: ignore[arg-type]
        return [" ".join(str(c) for c in row) for row in plan]


def measure(name: str, url: str, count: int, services: int, runs: int, tiny: bool = False) -> bool:
    store = Store(url)
    try:
        print(f"\n== {name}: {store.name}")
        seconds = fill(store, count, services, tiny)
        with store.engine.connect() as connection:
            stored = connection.execute(sa.select(sa.func.count()).select_from(evaluations)).scalar_one()
        print(f"inserted {stored} evaluations of {services} services in {seconds:.1f} s")
        if store.engine.dialect.name == "postgresql":
            with store.engine.begin() as connection:
                connection.execute(sa.text("ANALYZE evaluations"))
        service = f"service-{services // 2:02d}"
        newest = f"1.{VERSIONS_PER_SERVICE - 1}.0"
        reads = {
            "fleet()": (lambda: store.fleet(), FLEET_TARGET_MS),
            f"history({service!r})": (lambda: store.history(service), None),
            f"history({service!r}, limit=20)": (lambda: store.history(service, 20), None),
            f"latest({service!r}, {newest!r})": (lambda: store.latest(service, newest), None),
            f"latest({service!r})": (lambda: store.latest(service), None),
        }
        met = True
        print(f"{'read':<44} {'rows':>5} {'median ms':>10} {'max ms':>8}  target")
        for label, (read, target) in reads.items():
            median, worst, answer = timed(read, runs)
            found = len(answer) if isinstance(answer, list) else int(answer is not None)
            verdict = "" if target is None else f"<= {target:.0f} ms: {'met' if median <= target else 'MISSED'}"
            met &= target is None or median <= target
            print(f"{label:<44} {found:>5} {median:>10.1f} {worst:>8.1f}  {verdict}")
        fleet = store.fleet()
        assert len(fleet) == services and all(s.version == newest for s in fleet), "fleet() must answer each service's newest"
        print("fleet() query plan:")
        for line in fleet_plan(store):
            print(f"  {line}")
        return met
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30, help="timed calls of each read")
    parser.add_argument("--tiny-documents", action="store_true", help="store {} as each document (to time the queries alone)")
    parser.add_argument(
        "--postgres", nargs="?", const="start", default=None, metavar="URL",
        help="also PostgreSQL: a throw-away server (no URL) or an existing empty database (URL)",
    )
    args = parser.parse_args()
    met = True
    sizes = (args.evaluations, args.services, args.runs, args.tiny_documents)
    with tempfile.TemporaryDirectory() as folder:
        met &= measure("SQLite", f"sqlite:///{Path(folder) / 'history.db'}", *sizes)
        if args.postgres == "start":
            from testing.servers import start_postgres

            server = start_postgres(Path(folder))
            try:
                met &= measure("PostgreSQL", server.url, *sizes)
            finally:
                server.stop()
        elif args.postgres:
            met &= measure("PostgreSQL", args.postgres, *sizes)
    print(f"\nfleet() target ({FLEET_TARGET_MS:.0f} ms median): {'met' if met else 'MISSED'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
