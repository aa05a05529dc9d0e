"""Real servers for tests and benchmarks: Prometheus over promtool-backfilled blocks, and noida-db's
Elasticsearch API loaded with the simulated logs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TypeVar
from pathlib import Path

import requests

from releasehealth.simulator import Fleet
from releasehealth.simulator.logs import (
    DEPLOY_MAPPINGS,
    INDEX_MAPPINGS,
    FleetLogs,
    bulk_lines,
    deploy_documents,
    documents,
    index_name,
)
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
class Server:
    """A server process this test session started, and where it answers."""

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


class PrometheusServer(Server):
    pass


S = TypeVar("S", bound=Server)


class ElasticsearchServer(Server):
    pass


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
    return wait_ready(PrometheusServer(f"http://127.0.0.1:{port}", process, folder), "/-/ready", log.name, 60)


def wait_ready(server: S, path: str, log: str, seconds: float) -> S:
    """Return `server` once GET `path` answers 200; stop it and fail, pointing at its log, if it exits
    or does not answer in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.process.args[0]} exited with {server.process.returncode}; see {log}")
        try:
            if requests.get(server.url + path, timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.process.args[0]} did not answer within {seconds:.0f} s; see {log}")


# ---- an Elasticsearch-API server: noida-db ----------------------------------------------------------


def noida_binary() -> str:
    """The server binary inside the noida-db wheel: started directly, so its PID is the server's own
    (the console script would spawn it as a separate process)."""
    import noida_db

    path = Path(noida_db.__file__).parent / "noida-db"
    if not path.exists():
        raise RuntimeError("noida-db's binary is missing: run the tests with ./dev test, which installs it")
    return str(path)


def start_elasticsearch(folder: Path) -> ElasticsearchServer:
    """Start noida-db's Elasticsearch API on a free loopback port with its data in `folder`."""
    port = free_port()
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = (folder / "noida.log").open("w")
    process = subprocess.Popen(
        [noida_binary(), "start", "--only", "elasticsearch", "--elasticsearch-port", str(port), "--data-dir", str(data)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    return wait_ready(ElasticsearchServer(f"http://127.0.0.1:{port}", process, folder), "/", log.name, 30)


def load_logs(url: str, logs: FleetLogs, chunk: int = 10_000) -> None:
    """Create an index per service with ECS mappings (and the deploy index), bulk-load, refresh."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=300)
    for service in logs.services:
        client.indices.create(index=index_name(service.service), mappings=INDEX_MAPPINGS)
    client.indices.create(index="deploys", mappings=DEPLOY_MAPPINGS)
    batches = [(index_name(s.service), list(documents(s, logs.fleet))) for s in logs.services]
    batches.append(("deploys", list(deploy_documents(logs.fleet))))
    for index, docs in batches:
        for start in range(0, len(docs), chunk):
            body = "".join(bulk_lines(index, iter(docs[start:start + chunk])))
            result = client.bulk(operations=body)
            if result["errors"]:
                raise RuntimeError(f"bulk load into {index} failed: {str(result['items'][:2])[:500]}")
    client.indices.refresh(index="*")
    client.close()
