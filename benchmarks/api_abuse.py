"""HTTP API under abuse: what it costs the sources and how much memory it takes.

Simulates the demo-sized fleet (8 services), backfills it into a real Prometheus, and starts
`release-health --config F serve` on it in its own process group, with a token and a SQLite store. Then,
in turn:
  - unknown versions: 200 GETs of .../verdict for versions that do not exist, 20 at a time, spread over
    the services; then the same 200 again;
  - one release, 200 verdict GETs at once (the cache must run one evaluation);
  - an older release read: its verdict GET must not change what /api/v1/services reports;
  - 200 MB POSTed to /api/v1/deploys without a token, with Content-Length; the same with the token;
    the same with the token and chunked (no Content-Length);
and prints for each: the answers' status codes, the Prometheus queries it caused (Prometheus' own
counters), the evaluations the store gained, the wall time, and the server's resident memory after it;
at the end the server's peak resident memory (VmHWM) against the 600 MB target. Usage:
    .venv/bin/python benchmarks/api_abuse.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from releasehealth.simulator import Fleet, simulate
from releasehealth.store import Store
from testing.configs import example_config
from testing.servers import (
    GroupServer,
    PrometheusServer,
    backfill,
    free_port,
    prometheus_load,
    start_prometheus,
    wait_ready,
)

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
TOKEN = "abuse-benchmark-token"
BIG = 200 * 2**20
RSS_TARGET_MB = 600


class ApiServer(GroupServer):
    """`release-health serve`, started in its own session."""


def start_api(prometheus: PrometheusServer, folder: Path) -> tuple[ApiServer, str]:
    raw = example_config(prometheus.url, timeout="60s")
    store_url = f"sqlite:///{folder / 'store.db'}"
    raw["store"] = {"url": store_url}
    path = folder / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw))
    port = free_port()
    log = (folder / "api.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "release-health"), "--config", str(path), "serve", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RELEASE_HEALTH_API_TOKEN": TOKEN},
    )
    return wait_ready(ApiServer(f"http://127.0.0.1:{port}", process, folder), "/healthz", log.name, 120), store_url


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A field of /proc/PID/status in MiB (VmRSS: resident now; VmHWM: the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def evaluations(store_url: str) -> int:
    store = Store(store_url)
    try:
        return sum(len(store.history(s, 100_000)) for s in {e.service for e in store.fleet()})
    finally:
        store.close()


def body(total: int, piece: int = 2**20) -> Iterator[bytes]:
    """A JSON-looking body of `total` bytes, as chunks."""
    yield b'{"service": "user-service", "version": "1", "commit": "'
    for _ in range(total // piece):
        yield b"x" * piece
    yield b'"}'


def post(url: str, token: str | None, chunked: bool) -> str:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data: Iterator[bytes] | bytes = body(BIG) if chunked else b"".join(body(BIG))
    try:
        return str(requests.post(url + "/api/v1/deploys", data=data, headers=headers, timeout=120).status_code)
    except requests.ConnectionError:
        return "closed"


def measure(label: str, api: ApiServer, prometheus: PrometheusServer, store_url: str, action: Callable[[], list[str]]) -> None:
    before_queries, before_evaluations = prometheus_load(prometheus), evaluations(store_url)
    started = time.perf_counter()
    answers = action()
    seconds = time.perf_counter() - started
    queries = (prometheus_load(prometheus) - before_queries).queries
    gained = evaluations(store_url) - before_evaluations
    codes = ", ".join(f"{code} x{n}" for code, n in sorted(Counter(answers).items()))
    print(f"  {label:<52} {codes:<22} {queries:>5} queries {gained:>4} evaluations {seconds:>6.2f} s "
          f"RSS {memory_mb(api.process.pid):>5.0f} MB")


def main() -> None:
    print(f"API abuse benchmark: 8 simulated services, seed 7, history ending {END:%Y-%m-%d %H:%M} UTC")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fleet: Fleet = simulate(seed=7, end=END)
        prometheus = start_prometheus(backfill(fleet, folder), folder)
        try:
            api, store_url = start_api(prometheus, folder)
            try:
                run(api, prometheus, store_url, fleet)
            finally:
                api.stop()
        finally:
            prometheus.stop()


def run(api: ApiServer, prometheus: PrometheusServer, store_url: str, fleet: Fleet) -> None:
    url, pid = api.url, api.process.pid
    services = [s.name for s in fleet.services]
    newest = {s.name: s.releases[-1].version for s in fleet.services}
    older = {s.name: s.releases[-2].version for s in fleet.services}
    print(f"  started: RSS {memory_mb(pid):.0f} MB")

    def get_all(paths: list[str], workers: int) -> list[str]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return [str(code) for code in pool.map(lambda p: requests.get(url + p, timeout=300).status_code, paths)]

    unknown = [f"/api/v1/services/{services[n % len(services)]}/releases/9.9.{n}/verdict" for n in range(200)]
    measure("200 GETs of unknown versions, 20 at a time", api, prometheus, store_url, lambda: get_all(unknown, 20))
    measure("the same 200 again", api, prometheus, store_url, lambda: get_all(unknown, 20))
    one = f"/api/v1/services/{services[0]}/releases/{newest[services[0]]}/verdict"
    measure("200 verdict GETs of one release at once", api, prometheus, store_url, lambda: get_all([one] * 200, 200))
    old = f"/api/v1/services/{services[0]}/releases/{older[services[0]]}/verdict"
    measure("a verdict GET of an older release", api, prometheus, store_url, lambda: get_all([old], 1))
    listed = {s["name"]: s for s in requests.get(url + "/api/v1/services", timeout=60).json()["services"]}
    shown = (listed[services[0]].get("latest") or {}).get("version")
    print(f"  /api/v1/services still reports {services[0]} {shown} (newest {newest[services[0]]}): "
          f"{'yes' if shown == newest[services[0]] else 'NO'}")
    measure("200 MB POST without a token", api, prometheus, store_url, lambda: [post(url, None, chunked=False)])
    measure("200 MB POST with the token", api, prometheus, store_url, lambda: [post(url, TOKEN, chunked=False)])
    measure("200 MB chunked POST with the token", api, prometheus, store_url, lambda: [post(url, TOKEN, chunked=True)])
    peak = memory_mb(pid, "VmHWM")
    print(f"  peak RSS of the API: {peak:.0f} MB (target <= {RSS_TARGET_MB} MB: {'met' if peak <= RSS_TARGET_MB else 'MISSED'})")


if __name__ == "__main__":
    main()
