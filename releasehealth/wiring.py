"""The one wiring: the sources and the history store every front end (CLI, API, dashboard) reads, opened
from a catalogue, so that the same release gets the same verdict wherever it is asked.

The rule for the store is the same everywhere: it is opened when it exists (a SQLite file that is there,
or any server database), so its recorded deploys and not-a-risk marks count for every front end; a
front end that writes (the API, `gate`, `evaluate --save`, `record-deploy`) or a last-good baseline
opens it even when it does not exist yet. The embedded demo (releasehealth.simulator.demo) is wired
here too, over its in-memory sources.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from releasehealth.collectors.base import LogSource, MetricSource
from releasehealth.collectors.deploys import MetricDeploySource
from releasehealth.config import (
    Catalogue,
    ElasticsearchSettings,
    PrometheusSettings,
    StoreSettings,
    load,
    store_settings,
)
from releasehealth.config.credentials import (
    elasticsearch_credentials,
    prometheus_credentials,
    store_password,
)
from releasehealth.errors import NotFoundError
from releasehealth.model import BaselinePolicy
from releasehealth.sources import Sources
from releasehealth.store import Store, exists

if TYPE_CHECKING:  # the collectors load their client libraries when a catalogue names a real source
    from releasehealth.collectors.elasticsearch import ElasticsearchLogSource
    from releasehealth.collectors.prometheus import PrometheusMetricSource


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Wiring:
    """A catalogue and the sources (and store) it names, opened, and the clock its front ends read "now"
    from: the real one, or a pinned demo's end (whose history stops there)."""

    catalogue: Catalogue
    sources: Sources
    clock: Clock = utc_now

    def now(self) -> datetime:
        return self.clock()


def from_file(path: str | Path, *, store_url: str | None = None, create_store: bool = False) -> Wiring:
    """The wiring of the config file at `path`, its store replaced by `store_url` when given (--store).
    Raises ConfigError (an invalid file, a credential variable not set), NotFoundError (no Prometheus) or StoreError."""
    catalogue = load(path)
    if store_url:
        catalogue = dataclasses.replace(catalogue, store=store_settings(store_url))
    return connect(catalogue, create_store=create_store)


def connect(catalogue: Catalogue, *, create_store: bool = False) -> Wiring:
    """The wiring of a loaded catalogue over the real sources it names."""
    if catalogue.prometheus is None:
        raise NotFoundError(f"{catalogue.path}: no Prometheus source is configured")
    logs = _elasticsearch(catalogue.elasticsearch) if catalogue.elasticsearch else None
    return assemble(catalogue, metrics=_prometheus(catalogue.prometheus), logs=logs, create_store=create_store)


def assemble(
    catalogue: Catalogue, *, metrics: MetricSource, logs: LogSource | None, create_store: bool = False, clock: Clock = utc_now,
) -> Wiring:
    """The wiring of `catalogue` over these metric and log sources, with its history store when the store
    exists, when `create_store`, or when the baseline policy (last-good) reads it."""
    settings = catalogue.store
    needed = create_store or catalogue.policy.baseline is BaselinePolicy.LAST_GOOD
    store = open_store(settings, catalogue.path) if settings and (needed or exists(settings.url)) else None
    names = frozenset(s.name for s in catalogue.services) | frozenset(s.logs.service for s in catalogue.services if s.logs and s.logs.service)
    sources = Sources(
        metrics=metrics, deploys=MetricDeploySource(metrics), logs=logs, store=store, not_a_risk=catalogue.not_a_risk,
        service_names=names,
    )
    return Wiring(catalogue, sources, clock)


def open_store(settings: StoreSettings, where: str) -> Store:
    """The history store `settings` name (raises StoreError, or ConfigError naming `where` for a password not set)."""
    return Store(settings.url, password=store_password(settings, where))


def _prometheus(settings: PrometheusSettings) -> PrometheusMetricSource:
    from releasehealth.collectors.prometheus import PrometheusMetricSource

    headers, auth = prometheus_credentials(settings)
    return PrometheusMetricSource(
        settings.url, timeout=settings.timeout, retries=settings.retries, headers=headers, auth=auth,
        verify_tls=settings.verify_tls, ca_file=settings.ca_file, max_answer_mb=settings.max_answer_mb,
        max_points=settings.max_points,
    )


def _elasticsearch(settings: ElasticsearchSettings) -> ElasticsearchLogSource:
    from releasehealth.collectors.elasticsearch import ElasticsearchLogSource

    api_key, auth = elasticsearch_credentials(settings)
    return ElasticsearchLogSource(
        settings.url, timeout=settings.timeout, retries=settings.retries, api_key=api_key, basic_auth=auth,
        verify_tls=settings.verify_tls, ca_file=settings.ca_file, deploy_index=settings.deploy_index,
        deploy_fields=settings.fields,
    )
