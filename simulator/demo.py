"""The embedded demo: a simulated fleet and its logs behind the same wiring as a real configuration, so
every front end serves it as it would serve your Prometheus (`release-health demo`, `--demo`)."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from releasehealth.config import Catalogue, catalogue_for, store_settings
from releasehealth.model import LogSettings, Policy
from releasehealth.simulator.fleet import Fleet, simulate
from releasehealth.simulator.logs import simulate_logs
from releasehealth.simulator.sources import SimulatedLogSource, SimulatedMetricSource
from releasehealth.wiring import Wiring, assemble, utc_now

LOG_INDEX = "logs-{service}"
# The demo fleet's owners, as in the shipped release-health.yaml, so the dashboard's team filter has teams.
TEAMS = {
    "user-service": "identity", "order-service": "checkout", "payment-service": "checkout", "inventory-service": "supply",
    "cart-service": "checkout", "search-service": "discovery", "shipping-service": "supply",
    "notification-service": "messaging", "catalog-service": "discovery", "review-service": "discovery",
}


def store_url(seed: int) -> str:
    """The demo's history store: a file in the temp folder, per seed, that never lands in your working tree."""
    return f"sqlite:///{Path(tempfile.gettempdir()) / f'release-health-demo-{seed}.db'}"


@dataclass(frozen=True)
class Demo:
    """A simulated fleet, its catalogue and its in-memory sources. Wire it as often as the history store
    may have appeared: the simulation is the expensive part, and it is done once."""

    fleet: Fleet
    catalogue: Catalogue
    metrics: SimulatedMetricSource
    logs: SimulatedLogSource
    pinned_end: datetime | None = None  # --demo-end: "now" stays there, as the history does

    def wire(self, create_store: bool = False) -> Wiring:
        """The demo behind the one wiring, as a real configuration would be; a pinned demo's clock stops
        at its end, so every query, deploy age and window reads as of that time."""
        end = self.pinned_end
        clock = utc_now if end is None else (lambda: end)
        return assemble(self.catalogue, metrics=self.metrics, logs=self.logs, create_store=create_store, clock=clock)


def build(seed: int = 7, end: datetime | None = None, *, store: str | None = None) -> Demo:
    """The demo fleet of `seed`, its history ending at `end` (default now), with the demo's history store
    for that seed (or `store`)."""
    demo = of_fleet(simulate(seed=seed, end=end), store=store or store_url(seed))
    # The fleet's history ends at `end` floored to the minute: the clock stops where the data does.
    return dataclasses.replace(demo, pinned_end=demo.fleet.end) if end is not None else demo


# The accuracy scenario's services also report the connections they hold (a pool's gauge, as OpenTelemetry's
# db.client.connections.usage): a custom metric of small integers, judged like memory.
CONNECTIONS_TEMPLATES = {"connections": 'avg by (${by}) (db_client_connections_usage{${selector},state="used"}${join})'}
CONNECTIONS_METRIC = {
    "name": "connections", "kind": "gauge", "unit": "connections", "queries": {"value": "connections"},
    "valid_min": 0, "direction": "increase", "tolerance": {"relative": 0.2, "absolute": 0.5}, "trend_tolerance": 0.1,
    "group": "saturation",
    "min_count": 10,
}


def of_fleet(fleet: Fleet, *, policy: Policy | None = None, store: str = "") -> Demo:
    """Any simulated fleet as a demo: every service on the generic preset with its logs and its team (and,
    in the accuracy scenario, its connections in use); a history store only when `store` names one."""
    names = [s.name for s in fleet.services]
    accuracy = fleet.scenario == "accuracy"
    catalogue = catalogue_for(
        names, policy=policy, logs=LogSettings(index=LOG_INDEX), teams=TEAMS,
        templates=CONNECTIONS_TEMPLATES if accuracy else None, metrics=[CONNECTIONS_METRIC] if accuracy else (),
    )
    if store:
        catalogue = dataclasses.replace(catalogue, store=store_settings(store))
    return Demo(fleet, catalogue, SimulatedMetricSource(fleet), SimulatedLogSource(simulate_logs(fleet)))
