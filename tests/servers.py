"""Real servers for tests and benchmarks: a Prometheus over TSDB blocks backfilled by promtool."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from releasehealth.simulator import Fleet
from releasehealth.simulator.openmetrics import write_files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(command: str) -> str:
    """The path of `command`; fails loudly (never skips) when the test command did not install it."""
    path = shutil.which(command)
    if path is None:
        raise RuntimeError(f"{command} is not installed: run the tests with ./dev test, which installs it")
    return path


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen
    folder: Path

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL if it lingers)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def backfill(fleet: Fleet, folder: Path) -> Path:
    """Write the fleet as OpenMetrics and turn it into TSDB blocks with promtool; return the TSDB dir."""
    metrics, _ = write_files(fleet, folder / "simulated")
    tsdb = folder / "tsdb"
    subprocess.run(
        [require("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(metrics), str(tsdb)],
        check=True, capture_output=True, timeout=300,
    )
    return tsdb


def start_prometheus(tsdb: Path, folder: Path) -> PrometheusServer:
    """Start Prometheus on a free loopback port over `tsdb`; return once /-/ready answers."""
    config = folder / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            require("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
            # Blocks older than the retention are deleted at start-up: keep the simulated past.
            "--storage.tsdb.retention.time=3650d",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, folder)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}; see {folder / 'prometheus.log'}")
        try:
            if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("prometheus did not become ready within 60 s")
