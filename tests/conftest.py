"""Session fixtures: the simulated fleet, and a real Prometheus holding it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
import yaml

from releasehealth import config, wiring
from releasehealth.config import Catalogue
from releasehealth.simulator import Fleet, simulate
from releasehealth.simulator.logs import FleetLogs, simulate_logs
from releasehealth.sources import Sources
from testing.configs import example_config
from testing.faults import FaultProxy
from testing.servers import (
    ElasticsearchServer,
    PrometheusServer,
    backfill,
    load_logs,
    start_elasticsearch,
    start_prometheus,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from testing.servers import PostgresServer

SEED = 7
Stoppable = TypeVar("Stoppable", PrometheusServer, ElasticsearchServer)


@pytest.fixture(scope="session", autouse=True)
def _own_temp_folder() -> Iterator[None]:
    """The embedded demo keeps its history store in the temp folder: the session gets a folder of its own,
    so a store a developer's demo left behind never changes a verdict under test, and none is left behind."""
    folder = Path(tempfile.mkdtemp(prefix="release-health-tests-"))
    folder.chmod(0o755)  # servers running as other users (PostgreSQL) make their folders in it too
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))  # servers and commands the tests start
        patch.setattr(tempfile, "tempdir", str(folder))  # this process
        yield
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    # Ends at the last midnight: recent enough for Prometheus' and the deploy lookback, and the same
    # time of day on every run, so the simulated traffic, and every verdict, is the same on every run.
    return simulate(seed=SEED, end=datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))


@pytest.fixture(scope="session", autouse=True)
def _servers_starting(request: pytest.FixtureRequest, _own_temp_folder: None) -> None:
    """The real servers the session's tests will need start in the background when the session does:
    promtool's backfill (~8 s) and noida-db's bulk load (~18 s) run side by side, and beside the tests
    that need neither, instead of in the set-up of the first test that needs them."""
    needed = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    for server in ("elasticsearch", "prometheus"):
        if server in needed:
            request.getfixturevalue(f"{server}_starting")


@pytest.fixture(scope="session")
def prometheus_starting(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[PrometheusServer]]:
    """Prometheus starting on the fleet's backfilled TSDB blocks, in a thread of its own; stopped at the
    end of the session if it started."""
    folder = tmp_path_factory.mktemp("prometheus")
    yield from _in_background(lambda: start_prometheus(backfill(fleet, folder), folder))


@pytest.fixture(scope="session")
def prometheus(prometheus_starting: Future[PrometheusServer]) -> PrometheusServer:
    return prometheus_starting.result()


@pytest.fixture(scope="session")
def fleet_logs(fleet: Fleet) -> FleetLogs:
    return simulate_logs(fleet)


@pytest.fixture(scope="session")
def elasticsearch_starting(fleet_logs: FleetLogs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[ElasticsearchServer]]:
    """noida-db starting, and loading the fleet's logs, in a thread of its own; stopped at the end of the
    session if it started."""
    folder = tmp_path_factory.mktemp("noida")
    yield from _in_background(lambda: _loaded_elasticsearch(fleet_logs, folder))


def _in_background(start: Callable[[], Stoppable]) -> Iterator[Future[Stoppable]]:
    """A server starting in a thread of its own, as a future; stopped afterwards if it started."""
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(start)
        yield starting
        if starting.exception() is None:
            starting.result().stop()


def _loaded_elasticsearch(logs: FleetLogs, folder: Path) -> ElasticsearchServer:
    server = start_elasticsearch(folder)
    try:
        load_logs(server.url, logs)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def elasticsearch(elasticsearch_starting: Future[ElasticsearchServer]) -> ElasticsearchServer:
    return elasticsearch_starting.result()


@pytest.fixture(scope="session")
def logs_replay(elasticsearch: ElasticsearchServer) -> Iterator[str]:
    """The URL of the session's noida-db behind a proxy that answers a search it has answered before from
    memory (testing.faults.FaultProxy with remember): the fleet's logs never change, and the suite judges
    the same releases many times over, each a second or two of noida-db's time. Tests that write to
    noida-db, or test the collector itself, use `elasticsearch` directly."""
    proxy = FaultProxy(elasticsearch.url, remember=True)
    yield proxy.url
    proxy.stop()


@pytest.fixture(scope="session")
def catalogue(prometheus: PrometheusServer, logs_replay: str) -> Catalogue:
    return config.parse(example_config(prometheus.url, logs_replay), "release-health.yaml")


@pytest.fixture(scope="session")
def wired(catalogue: Catalogue) -> wiring.Wiring:
    """The example catalogue over the session's real Prometheus and noida-db, through the one wiring."""
    return wiring.connect(catalogue)


@pytest.fixture(scope="session")
def sources(wired: wiring.Wiring) -> Sources:
    return wired.sources


@pytest.fixture(scope="session")
def config_file(prometheus: PrometheusServer, logs_replay: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "release-health.yaml"
    path.write_text(yaml.safe_dump(example_config(prometheus.url, logs_replay)))
    return path


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL (the history store's team mode), on a Unix socket only; stopped by pg_ctl."""
    from testing.servers import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """The SQLAlchemy URL of the database created with the session's PostgreSQL. Shared by every test of
    the session: a test that needs an empty store makes its own with `postgres.create_database(name)`."""
    return postgres.url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (never a downloaded browser), shared by the browser tests."""
    from playwright.sync_api import sync_playwright

    from testing.servers import CHROMIUM_ARGS, require

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=require("chromium"), args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()
