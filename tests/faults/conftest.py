"""The fault suite's fixtures: one release of each kind, and a fault proxy in front of each real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from releasehealth.simulator import Fleet, ReleaseLabel
from testing.faults import FaultProxy
from testing.servers import ElasticsearchServer, PrometheusServer
from tests.faults.matrix import Release, one_of_each


@pytest.fixture(scope="session")
def releases(fleet: Fleet) -> dict[ReleaseLabel, Release]:
    return one_of_each(fleet)


@pytest.fixture(scope="session")
def prometheus_proxy(prometheus: PrometheusServer) -> Iterator[FaultProxy]:
    server = FaultProxy(prometheus.url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def elasticsearch_proxy(elasticsearch: ElasticsearchServer) -> Iterator[FaultProxy]:
    """noida-db behind a fault proxy that answers a search it has seen from memory (see FaultProxy)."""
    server = FaultProxy(elasticsearch.url, remember=True)
    yield server
    server.stop()
