"""HTTP API: latency of the verdict endpoint on cached verdicts, with 50 concurrent clients.

Starts `release-health --demo --seed 7 --demo-end END --store sqlite:///TMP/store.db serve` on a free
loopback port in its own process group (the demo fleet's 8 services, pinned to a fixed end so the
verdicts are the same on every run), asks once for the latest release of every service to warm the
cache, then runs `--clients` concurrent clients, each on its own keep-alive connection, each making
`--requests` GETs of .../verdict over those releases in turn. Latency is measured per request in the
client, from sending the request to having read the whole body.

Two clients: `asyncio` (default; stdlib streams speaking HTTP/1.1, one coroutine per client, cheap enough
that the server is the bottleneck) and `threads` (one thread per client with requests.Session: on two
cores its 50 threads saturate a core under the GIL, so its figures are mostly the client's own queueing).
The CPU share of the server and of the client during the run is printed, to show which one was the
bottleneck. Also printed: count, p50/p95/p99/max, throughput, how many evaluations the store gained during
the run (0: every answer came from the cache, the run staying within the 60 s TTL) and whether p99 meets
the target. Usage:
    .venv/bin/python benchmarks/api.py [--clients 50] [--requests 200] [--client asyncio|threads] [--target-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasehealth.deploys import deploys_of
from releasehealth.simulator import demo, simulate
from releasehealth.store import Store
from testing.servers import GroupServer, free_port, wait_ready

SEED = 7
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=2)


class ApiServer(GroupServer):
    """`release-health serve`, started in its own session."""


def start(folder: Path) -> tuple[ApiServer, str]:
    """The API on the pinned demo fleet with a fresh store in `folder`; returns it and the store's URL."""
    port, store_url = free_port(), f"sqlite:///{folder / 'store.db'}"
    log = (folder / "api.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "release-health"), "--demo", "--seed", str(SEED),
            "--demo-end", END.strftime("%Y-%m-%dT%H:%M:%S"), "--store", store_url, "serve", "--port", str(port),
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return wait_ready(ApiServer(f"http://127.0.0.1:{port}", process, folder), "/healthz", log.name, 60), store_url


def latest_releases() -> list[str]:
    """The verdict path of every demo service's latest release."""
    wired = demo.of_fleet(simulate(seed=SEED, end=END)).wire()
    catalogue, paths = wired.catalogue, []
    for service in catalogue.services:
        version = deploys_of(wired.sources, service, catalogue.policy, datetime.now(UTC))[-1].version
        paths.append(f"/api/v1/services/{service.name}/releases/{version}/verdict")
    return paths


def threads_client(
    url: str, paths: list[str], count: int, offset: int, start: threading.Barrier, out: list[float], failures: list[str]
) -> None:
    """`count` GETs over `paths` in turn with one requests.Session; each latency (s) into `out`."""
    session = requests.Session()
    start.wait()
    for n in range(count):
        path = paths[(offset + n) % len(paths)]
        began = time.perf_counter()
        answer = session.get(url + path, timeout=30)
        _ = answer.content
        out.append(time.perf_counter() - began)
        if answer.status_code != 200:
            failures.append(f"{answer.status_code} {path}")
    session.close()


def run_threads(url: str, paths: list[str], clients: int, count: int) -> tuple[list[float], list[str], float]:
    """All latencies, the failures and the elapsed seconds of `clients` threads."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    barrier = threading.Barrier(clients + 1)
    threads = [
        threading.Thread(target=threads_client, args=(url, paths, count, i, barrier, latencies[i], failures))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return [x for mine in latencies for x in mine], failures, time.perf_counter() - began


async def asyncio_client(
    host: str, port: int, paths: list[str], count: int, offset: int, out: list[float], failures: list[str]
) -> None:
    """`count` GETs over `paths` in turn on one HTTP/1.1 keep-alive connection; each latency (s) into `out`."""
    reader, writer = await asyncio.open_connection(host, port)
    for n in range(count):
        path = paths[(offset + n) % len(paths)]
        began = time.perf_counter()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:"))
        await reader.readexactly(length)
        out.append(time.perf_counter() - began)
        if head[0].split(" ")[1] != "200":
            failures.append(f"{head[0]} {path}")
    writer.close()
    await writer.wait_closed()


def run_asyncio(url: str, paths: list[str], clients: int, count: int) -> tuple[list[float], list[str], float]:
    """All latencies, the failures and the elapsed seconds of `clients` coroutines."""
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    latencies: list[float] = []
    failures: list[str] = []

    async def everyone() -> float:
        began = time.perf_counter()
        await asyncio.gather(*(asyncio_client(host, port, paths, count, i, latencies, failures) for i in range(clients)))
        return time.perf_counter() - began

    return latencies, failures, asyncio.run(everyone())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def stored(store_url: str, paths: list[str]) -> int:
    """How many evaluations of the benchmarked services the store holds."""
    store = Store(store_url)
    try:
        return sum(len(store.history(service)) for service in {p.split("/")[4] for p in paths})
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--client", choices=("asyncio", "threads"), default="asyncio")
    parser.add_argument("--target-ms", type=float, default=50.0, help="p99 target")
    args = parser.parse_args()
    paths = latest_releases()
    run = run_asyncio if args.client == "asyncio" else run_threads
    with tempfile.TemporaryDirectory() as folder:
        server, store_url = start(Path(folder))
        try:
            for path in paths:  # warm the cache: one evaluation per release
                requests.get(server.url + path, timeout=60).raise_for_status()
            before = stored(store_url, paths)
            server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
            latencies, failures, elapsed = run(server.url, paths, args.clients, args.requests)
            server_cpu, client_cpu = cpu_seconds(server.process.pid) - server_cpu, time.process_time() - client_cpu
            evaluations = stored(store_url, paths) - before
        finally:
            server.stop()
    ordered = sorted(latencies)
    ms = {name: 1000 * percentile(ordered, share) for name, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))}
    print(f"verdict endpoint, cached: {len(paths)} releases, {args.clients} {args.client} clients x {args.requests} requests")
    print(f"requests: {len(ordered)} ({len(failures)} not 200{': ' + ', '.join(failures[:3]) if failures else ''})")
    print(
        f"latency ms: p50 {ms['p50']:.1f}  p95 {ms['p95']:.1f}  p99 {ms['p99']:.1f}  max {1000 * ordered[-1]:.1f}"
        f"  (mean {1000 * statistics.fmean(ordered):.1f})"
    )
    print(f"throughput: {len(ordered) / elapsed:.0f} requests/s over {elapsed:.1f} s")
    shares = f"server {100 * server_cpu / elapsed:.0f}%, client {100 * client_cpu / elapsed:.0f}%"
    print(f"CPU during the run: {shares} (of one core; two cores in all)")
    print(f"evaluations during the run: {evaluations} (0: all answers came from the cache)")
    met = ms["p99"] <= args.target_ms and not failures
    print(f"target p99 <= {args.target_ms:.0f} ms: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
