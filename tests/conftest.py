"""Session fixtures: the simulated fleet, and a real Prometheus holding it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from releasehealth import analysis, config
from releasehealth.config import Catalogue
from releasehealth.simulator import Fleet, simulate
from tests.servers import PrometheusServer, backfill, start_prometheus

ROOT = Path(__file__).resolve().parent.parent
SEED = 7


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    # Ends at the current minute, so Prometheus sees it as recent data and "now" is right after it.
    return simulate(seed=SEED, end=datetime.now(UTC))


@pytest.fixture(scope="session")
def prometheus(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    folder = tmp_path_factory.mktemp("prometheus")
    server = start_prometheus(backfill(fleet, folder), folder)
    yield server
    server.stop()


def example_config(url: str, **prometheus: object) -> dict:
    """The shipped example config, pointed at `url`."""
    raw = yaml.safe_load((ROOT / "release-health.yaml").read_text())
    raw["sources"]["prometheus"].update(url=url, **prometheus)
    return raw


@pytest.fixture(scope="session")
def catalogue(prometheus: PrometheusServer) -> Catalogue:
    return config.parse(example_config(prometheus.url), "release-health.yaml")


@pytest.fixture(scope="session")
def sources(catalogue: Catalogue) -> analysis.Sources:
    return analysis.connect(catalogue)


@pytest.fixture(scope="session")
def config_file(prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "release-health.yaml"
    path.write_text(yaml.safe_dump(example_config(prometheus.url)))
    return path
