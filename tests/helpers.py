"""Shorthands the tests share: a release, a fleet or a service's deploys evaluated through a wiring, as the
front ends do (the service looked up by name, the catalogue's policy unless another is given)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI

from releasehealth.config import Catalogue
from releasehealth.deploys import deploys_of
from releasehealth.evaluate import (
    Progress,
    evaluate_fleet,
    evaluate_release,
    evaluate_releases,
)
from releasehealth.model import Deploy, Policy
from releasehealth.simulator import Fleet, simulate
from releasehealth.simulator import demo as embedded_demo
from releasehealth.sources import Sources
from releasehealth.timeline import timeline as service_timeline
from releasehealth.verdicts import Evaluation, Timeline
from releasehealth.wiring import Wiring
from testing.servers import free_port


def evaluate(
    wired: Wiring, service: str, version: str | None = None, *, now: datetime | None = None, policy: Policy | None = None
) -> Evaluation:
    catalogue = wired.catalogue
    return evaluate_release(wired.sources, catalogue.service(service), policy or catalogue.policy, version, now=now)


def fleet(
    wired: Wiring, *, now: datetime | None = None, policy: Policy | None = None, progress: Progress = None
) -> list[Evaluation]:
    catalogue = wired.catalogue
    return evaluate_fleet(wired.sources, catalogue.services, policy or catalogue.policy, now=now, progress=progress)


def releases(wired: Wiring, service: str, *, now: datetime | None = None) -> list[Evaluation]:
    catalogue = wired.catalogue
    return evaluate_releases(wired.sources, catalogue.service(service), catalogue.policy, now=now)


def deploys(wired: Wiring, service: str, *, now: datetime | None = None) -> list[Deploy]:
    catalogue = wired.catalogue
    return deploys_of(wired.sources, catalogue.service(service), catalogue.policy, now or datetime.now(UTC))


def demo(seed: int = 7, end: datetime | None = None) -> tuple[Catalogue, Sources, Fleet]:
    """The embedded demo fleet of `seed` ending at `end`, wired without a history store (a test that wants
    one opens its own): its catalogue, its sources and the fleet."""
    built = embedded_demo.of_fleet(simulate(seed=seed, end=end))
    wired = built.wire()
    return wired.catalogue, wired.sources, built.fleet


def timeline(wired: Wiring, service: str, *, now: datetime | None = None) -> Timeline:
    catalogue = wired.catalogue
    return service_timeline(wired.sources, catalogue.service(service), catalogue.policy, now)


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """An ASGI app served by uvicorn in a thread of this process, on a free loopback port; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # a limit against a hang, not an expectation of speed
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the in-process API did not start"
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)
