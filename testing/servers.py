"""Real servers for tests and benchmarks: Prometheus over promtool-backfilled blocks, and noida-db's
Elasticsearch API loaded with the simulated logs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

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


# A query-API sample of Prometheus' own metrics: name, handler, value.
QUERY_SAMPLE = re.compile(
    r'^(prometheus_http_requests_total|prometheus_http_request_duration_seconds_sum)\{[^}]*handler="(/api/v1/query[^"]*)"[^}]*\} (\S+)$'
)
@dataclass(frozen=True)
class PrometheusLoad:
    """Prometheus' own counters for its query API: requests answered per handler, and seconds spent."""

    requests: Counter[str]
    seconds: float

    def __sub__(self, other: PrometheusLoad) -> PrometheusLoad:
        return PrometheusLoad(self.requests - other.requests, self.seconds - other.seconds)

    @property
    def queries(self) -> int:
        return self.requests.total()


def prometheus_load(prometheus: PrometheusServer) -> PrometheusLoad:
    """The query-API counters so far, from Prometheus' /metrics: reading /metrics is not a query, so the
    benchmark's own reads add nothing to what it counts."""
    counts: Counter[str] = Counter()
    seconds = 0.0
    for line in requests.get(prometheus.url + "/metrics", timeout=10).text.splitlines():
        if match := QUERY_SAMPLE.match(line):
            name, handler, value = match.groups()
            if name == "prometheus_http_requests_total":
                counts[handler] += int(float(value))
            else:
                seconds += float(value)
    return PrometheusLoad(counts, seconds)


class ElasticsearchServer(Server):
    pass


def backfill(fleet: Fleet, folder: Path, **options: Any) -> Path:
    """Write the fleet as OpenMetrics (named as `options` say: see openmetrics.write_openmetrics) and turn
    it into TSDB blocks with promtool; return the TSDB dir."""
    metrics, _ = write_files(fleet, folder / "simulated", **options)
    tsdb = folder / "tsdb"
    subprocess.run(
        [require("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(metrics), str(tsdb)],
        check=True, capture_output=True, timeout=300,
    )
    return tsdb


def start_prometheus(tsdb: Path, folder: Path) -> PrometheusServer:
    """Start Prometheus on a free loopback port over `tsdb` (backfilled, nothing scraped); return once
    /-/ready answers."""
    config = folder / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    # Blocks older than the retention are deleted at start-up: keep the simulated past.
    return _run_prometheus(config, tsdb, folder, ["--storage.tsdb.retention.time=3650d"])


def start_scraping_prometheus(config: Path, folder: Path) -> PrometheusServer:
    """Start Prometheus on a free loopback port with `config` (its scrape_configs) and an empty TSDB in
    `folder`; return once /-/ready answers."""
    return _run_prometheus(config, folder / "tsdb", folder, [])


def _run_prometheus(config: Path, tsdb: Path, folder: Path, extra: list[str]) -> PrometheusServer:
    port = free_port()
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            require("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}", *extra,
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )
    return wait_ready(PrometheusServer(f"http://127.0.0.1:{port}", process, folder), "/-/ready", log.name, 60)


class AlertmanagerServer(Server):
    pass


def start_alertmanager(folder: Path, webhook: str = "http://127.0.0.1:9/unused") -> AlertmanagerServer:
    """Start Debian's Alertmanager on a free loopback port, clustering off, its one receiver a webhook at
    `webhook`; return once /-/ready answers."""
    port = free_port()
    config = folder / "alertmanager.yml"
    config.write_text(
        "route: {receiver: hook, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\n"
        f"receivers: [{{name: hook, webhook_configs: [{{url: '{webhook}'}}]}}]\n"
    )
    log = (folder / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            require("prometheus-alertmanager"), f"--config.file={config}", f"--storage.path={folder / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )
    return wait_ready(AlertmanagerServer(f"http://127.0.0.1:{port}", process, folder), "/-/ready", log.name, 60)


def wait_ready(server: S, path: str, log: str, seconds: float) -> S:
    """Return `server` once GET `path` answers 200; stop it and fail, pointing at its log, if it exits
    or does not answer in time."""
    deadline = time.monotonic() + seconds
    name = _program(server.process)
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited with {server.process.returncode}; see {log}")
        try:
            if requests.get(server.url + path, timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not answer within {seconds:.0f} s; see {log}")


def _program(process: subprocess.Popen[Any]) -> str:
    """The program a process runs, for messages."""
    args = process.args
    first = args[0] if isinstance(args, (list, tuple)) and args else args
    return os.fsdecode(first) if isinstance(first, (str, bytes, os.PathLike)) else str(first)


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
            result = client.bulk(operations=body)  # type: ignore[arg-type]  # NDJSON text is sent as is
            if result["errors"]:
                raise RuntimeError(f"bulk load into {index} failed: {str(result['items'][:2])[:500]}")
    client.indices.refresh(index="*")
    client.close()


# ---- the dashboard: Streamlit -----------------------------------------------------------------------


# Debian's Chromium (/usr/bin/chromium), launched by Playwright without its own browser download.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
# A page is fully rendered when this is true: Streamlit marks its root with the script's state, and draws
# skeletons where elements are still loading.
STREAMLIT_RENDERED = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const loading = '[data-testid="stSkeleton"], [data-testid="stSkeletonElement"], [data-testid="stAppSkeleton"]';
    return app !== null && app.dataset.testScriptState === "notRunning" && document.querySelector(loading) === null;
}"""


class GroupServer(Server):
    """A server started in its own session (start_new_session=True), with children of its own."""

    def stop(self) -> None:
        """Stop its process group (its leader is the PID we started), SIGTERM then SIGKILL."""
        for sig, seconds in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=seconds)
                return
            except subprocess.TimeoutExpired:
                continue


class DashboardServer(GroupServer):
    """Streamlit serving the dashboard."""


def start_dashboard(arguments: Sequence[str], folder: Path) -> DashboardServer:
    """Start `release-health ARGUMENTS --port PORT` (e.g. `["demo"]` or `["--config", path, "dashboard"]`)
    on a free loopback port; return once Streamlit's /_stcore/health answers."""
    port = free_port()
    script = Path(sys.executable).parent / "release-health"
    # `demo` and `dashboard` exec Streamlit in place, so the PID we start is the server's own.
    return _start_streamlit([str(script), *arguments, "--port", str(port)], port, {}, folder)


def start_pinned_demo(seed: int, end: datetime, folder: Path) -> DashboardServer:
    """Start `release-health --seed SEED --demo-end END demo` on a free loopback port: the demo fleet
    ending at `end`, so that what a test evaluates is exactly what the dashboard shows."""
    utc = end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")  # the CLI reads a naive time as UTC
    return start_dashboard(["--seed", str(seed), "--demo-end", utc, "demo"], folder)


def _start_streamlit(argv: list[str], port: int, environment: Mapping[str, str], folder: Path) -> DashboardServer:
    log = (folder / "streamlit.log").open("w")
    env = {
        **os.environ, **environment,
        # Other people edit the dashboard while tests run: a saved file must not rerun the page under test.
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
        "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",
    }
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = DashboardServer(f"http://127.0.0.1:{port}", process, folder)
    return wait_ready(server, "/_stcore/health", log.name, 60)


# ---- the history store's team mode: PostgreSQL ------------------------------------------------------


@dataclass
class PostgresServer:
    """A PostgreSQL cluster this test session started, listening only on a Unix socket in `folder`.

    `url` is the SQLAlchemy URL of the database created at start; `create_database` makes more, so
    that a test can have an empty one. The server's log is copied to `log_folder` when it stops."""

    url: str
    folder: Path
    port: int
    pid: int
    log_folder: Path

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@/{name}?host={self.folder}&port={self.port}"

    def create_database(self, name: str) -> str:
        """Create database `name` (a plain identifier); return its SQLAlchemy URL."""
        import psycopg

        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(host=str(self.folder), port=self.port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        """`pg_ctl stop` as postgres (fast shutdown), SIGKILL to the postmaster's PID if that fails; then
        keep the log and remove the cluster's folder."""
        stopped = subprocess.run(
            [*_as_postgres(), postgres_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"],
            capture_output=True, timeout=60, check=False,
        )
        if stopped.returncode != 0:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            shutil.copyfile(self.folder / "postgres.log", self.log_folder / "postgres.log")
        except OSError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_binary(name: str) -> str:
    """A PostgreSQL server binary: Debian keeps them off the PATH, in /usr/lib/postgresql/VERSION/bin
    (the newest version wins); elsewhere (a source build, Homebrew) they are on the PATH."""
    found = [p for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}") if p.parts[-3].isdigit()]
    if found:
        return str(max(found, key=lambda p: int(p.parts[-3])))
    return require(name)


def _as_postgres() -> list[str]:
    """initdb refuses to run as root: as root, PostgreSQL's tools run as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def start_postgres(folder: Path, database: str = "release_health", timezone: str = "America/New_York") -> PostgresServer:
    """Start a throw-away PostgreSQL cluster, create `database`; return once it accepts connections.

    The cluster lives in a fresh temporary folder owned by `postgres` (pytest's folders are private to
    root, and a Unix socket's path must stay under about 100 bytes); its log is copied to `folder` when
    it stops. It listens on no TCP address, only on the socket `.s.PGSQL.PORT` in its folder, with a
    free port number. Its time zone is not UTC on purpose, as a team's server often is not: what the
    store hands back must not depend on it."""
    import tempfile

    cluster = Path(tempfile.mkdtemp(prefix="release-health-pg-"))
    if os.geteuid() == 0:
        shutil.chown(cluster, "postgres")
    data, log = cluster / "data", cluster / "postgres.log"
    initdb = [postgres_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
    subprocess.run([*_as_postgres(), *initdb], check=True, capture_output=True, timeout=120)
    port = free_port()
    # fsync off: a test cluster need not survive a power cut, and initdb/commits are much faster without.
    options = f"-k {cluster} -p {port} -c listen_addresses='' -c timezone={timezone} -c fsync=off"
    pg_ctl = [postgres_binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"]
    started = subprocess.run([*_as_postgres(), *pg_ctl], capture_output=True, text=True, timeout=90, check=False)
    if started.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(cluster, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}\n{tail}")
    pid = int((data / "postmaster.pid").read_text().split()[0])
    server = PostgresServer("", cluster, port, pid, folder)
    try:
        server.url = server.create_database(database)
    except Exception:
        server.stop()
        raise
    return server
