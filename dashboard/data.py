"""Every cache and every environment read of the dashboard: loaders that return errors instead of raising."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import streamlit as st

from releasehealth import config, wiring
from releasehealth.config import Catalogue
from releasehealth.deploys import DeployScan, ScanMemory, deploys_of, discover
from releasehealth.errors import ConfigError, ReleaseHealthError
from releasehealth.evaluate import (
    Progress,
    evaluate_fleet,
    evaluate_release,
    evaluate_releases,
)
from releasehealth.format import redact_secrets
from releasehealth.model import Deploy
from releasehealth.simulator import demo
from releasehealth.store import QueuedMessage, StoredBacktest, WatchedRelease
from releasehealth.timeline import timeline as service_timeline
from releasehealth.verdicts import Evaluation, SourceHealth, Timeline
from releasehealth.watch import LEASE
from releasehealth.wiring import Wiring

TTL_SECONDS = 60
HEALTH_TTL_SECONDS = 15  # shorter: the Sources page is where people look while a source recovers
TRUE = frozenset({"1", "true", "yes", "on"})

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Loaded(Generic[T_co]):
    """A loader's answer: the value, or the message of the error that prevented it."""

    value: T_co | None = None
    error: str = ""


@dataclass(frozen=True)
class Settings:
    """Where the data comes from, as set by the CLI (`release-health demo` / `release-health dashboard`)."""

    demo: bool
    seed: str
    config_path: str
    demo_end: str = ""  # ISO time the demo fleet's history ends at (release-health --demo-end); empty: now
    store_url: str = ""  # the history store instead of the config's (release-health --store); empty: the config's


def settings() -> Settings:
    env = os.environ
    return Settings(
        demo=env.get("RELEASE_HEALTH_DEMO", "").strip().lower() in TRUE,
        seed=env.get("RELEASE_HEALTH_SEED", "7"),
        config_path=env.get("RELEASE_HEALTH_CONFIG", config.DEFAULT_PATH),
        demo_end=env.get("RELEASE_HEALTH_DEMO_END", "").strip(),
        store_url=env.get("RELEASE_HEALTH_STORE", "").strip(),
    )


def describe() -> str:
    """One line saying where the data comes from, for the header above every page."""
    current = settings()
    return f"Demo fleet (seed {current.seed})" if current.demo else f"Config: {redact_secrets(current.config_path)}"


def catalogue() -> Loaded[Catalogue]:
    opened = _open(settings())
    return Loaded(error=opened.error) if opened.value is None else Loaded(opened.value.catalogue)


DeploysFound = Callable[[Mapping[str, Sequence[Deploy]], datetime], None]


def fleet(progress: Progress = None, deploys_found: DeploysFound | None = None) -> Loaded[list[Evaluation]]:
    """The latest release of every service, evaluated; when it is not cached, `progress` hears each step
    and `deploys_found` is shown the deploys (as of when) before the releases are judged. It is called
    here, outside the cached evaluation: Streamlit replays what a cached function draws, and cannot
    replay drawing into a place made outside it."""
    current = settings()
    discovered = None
    if deploys_found is not None and time.monotonic() - _fleet_evaluated.get(current, -math.inf) > TTL_SECONDS:
        scanned = _run(current, _discover)
        if scanned.value is not None:
            deploys_found(scanned.value[0].by_service, scanned.value[1])
            discovered = scanned.value
    loaded = _fleet(current, _progress=progress, _discovered=discovered)
    _fleet_evaluated[current] = time.monotonic()
    return loaded


def _discover(w: Wiring) -> tuple[DeployScan, datetime]:
    now = w.now()
    return discover(w.sources, w.catalogue.services, w.catalogue.policy, now), now


# When each settings' fleet was last evaluated (or read from the cache): a page shows the deploys while the
# releases are judged only when the cached fleet has expired, not on every rerun.
_fleet_evaluated: dict[Settings, float] = {}


def release(service: str, version: str | None, baseline: str | None = None, progress: Progress = None) -> Loaded[Evaluation]:
    """One release of a service (the latest if `version` is None), evaluated against the baseline the
    configuration names, or `baseline` ("previous", "time-shifted:7d", "pinned:1.2.0"...)."""
    return _release(settings(), service, version, baseline, _progress=progress)


def timeline(service: str) -> Loaded[Timeline]:
    """A service's last day: request rate, error ratio and latency per version, and its deploys."""
    return _timeline(settings(), service)


def deploys(service: str) -> Loaded[list[Deploy]]:
    """The deploys of a service seen in the lookback, oldest first."""
    return _deploys(settings(), service)


def releases(service: str) -> Loaded[list[Evaluation]]:
    """Every release of a service seen in the lookback, evaluated, newest first."""
    return _releases(settings(), service)


def source_health() -> Loaded[list[SourceHealth]]:
    return _health(settings())


@dataclass(frozen=True)
class WatchState:
    """What the history store says of watch mode: who holds the lease and until when, the releases it
    follows, and its messages not delivered yet."""

    lease: tuple[str, datetime] | None
    watched: list[WatchedRelease]
    undelivered: list[QueuedMessage]


def watch_state() -> Loaded[WatchState] | None:
    """Watch mode as the store records it; None without a history store."""
    return _watch(settings())


@st.cache_data(ttl=HEALTH_TTL_SECONDS, show_spinner=False)
def _watch(current: Settings) -> Loaded[WatchState] | None:
    opened = _open(current)
    if opened.value is not None and opened.value.sources.store is None:
        return None

    def read(w: Wiring) -> WatchState:
        store = w.sources.store
        assert store is not None
        return WatchState(store.lease(LEASE), store.watched(), [m for m in store.messages() if m.sent_at is None])

    return _run(current, read)


def backtests() -> Loaded[list[StoredBacktest]] | None:
    """The stored backtests, newest first (release-health backtest); None without a history store."""
    return _backtests(settings())


@st.cache_data(ttl=HEALTH_TTL_SECONDS, show_spinner=False)
def _backtests(current: Settings) -> Loaded[list[StoredBacktest]] | None:
    opened = _open(current)
    if opened.value is not None and opened.value.catalogue.store is None:
        return None

    def read(w: Wiring) -> list[StoredBacktest]:
        return w.sources.store.backtests() if w.sources.store is not None else []  # configured, not created yet

    return _run(current, read)


def refresh() -> None:
    """Forget every cached answer, so the next run asks the sources again."""
    for loader in (_fleet, _release, _deploys, _releases, _timeline, _health, _watch, _backtests):
        loader.clear()
    _open.clear()


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError("RELEASE_HEALTH_SEED", [f"must be an integer, got {text!r}"]) from None


def _end(text: str) -> datetime | None:
    if not text:
        return None
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("RELEASE_HEALTH_DEMO_END", [f"must be an ISO time such as 2026-11-27T08:00:00Z, got {text!r}"]) from None
    return end if end.tzinfo else end.replace(tzinfo=UTC)


# Simulated once per process (its history ends when the dashboard starts, or at --demo-end), so its
# numbers stay put while people click around; Refresh does not re-simulate it.
@st.cache_resource(show_spinner="Simulating the demo fleet…")
def _demo(seed: int, end: datetime | None, store: str) -> demo.Demo:
    return demo.build(seed, end, store=store or None)


def _connect(current: Settings) -> Wiring:
    """The one wiring every front end uses: the dashboard reads the store, the recorded deploys and the
    not-a-risk marks the CLI and the API read (the demo's too: its store per seed)."""
    if current.demo:
        return _demo(_seed(current.seed), _end(current.demo_end), current.store_url).wire()
    return wiring.from_file(current.config_path, store_url=current.store_url or None)


# A resource, not data: the sources hold HTTP sessions (or the simulated fleet) that must not be copied.
# Reopened every TTL (the configuration and the store may have changed), keeping the deploy scans: each
# overview then reads the deploys since the last one, not the whole lookback (releasehealth.deploys).
@st.cache_resource(ttl=TTL_SECONDS, show_spinner=False)
def _open(current: Settings) -> Loaded[Wiring]:
    try:
        opened = _connect(current)
    except ReleaseHealthError as exc:
        return Loaded(error=str(exc))
    opened.sources.deploys.memory = _scans(current)
    return Loaded(opened)


@st.cache_resource(show_spinner=False)
def _scans(current: Settings) -> ScanMemory:
    return ScanMemory()


def _run(current: Settings, call: Callable[[Wiring], T]) -> Loaded[T]:
    """Call with the opened wiring; our errors become the answer, so failures are cached too (a source
    that is down costs one timeout per TTL, not one per click)."""
    opened = _open(current)
    if opened.value is None:
        return Loaded(error=opened.error)
    try:
        return Loaded(call(opened.value))
    except ReleaseHealthError as exc:
        return Loaded(error=str(exc))


# The pages show progress in an st.status; `_progress` (not part of the cache key) updates it. The fleet
# is a resource, shared, not copied: at 200 services its evaluations pickle to 23 MB, 0.6 s to store and
# 0.4 s to copy back on every rerun, and pickling computes every verdict's per-step chart series, which the
# overview never shows. Evaluations are frozen: nothing changes them.
@st.cache_resource(ttl=TTL_SECONDS, show_spinner=False)
def _fleet(
    current: Settings, _progress: Progress = None, _discovered: tuple[DeployScan, datetime] | None = None
) -> Loaded[list[Evaluation]]:
    def evaluate(w: Wiring) -> list[Evaluation]:
        scan, now = _discovered if _discovered is not None else (None, w.now())
        return evaluate_fleet(w.sources, w.catalogue.services, w.catalogue.policy, now=now, progress=_progress, discovered=scan)

    return _run(current, evaluate)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _release(
    current: Settings, service: str, version: str | None, baseline: str | None, _progress: Progress = None
) -> Loaded[Evaluation]:
    def evaluate(w: Wiring) -> Evaluation:
        policy = config.with_baseline(w.catalogue.policy, baseline) if baseline else w.catalogue.policy
        return evaluate_release(w.sources, w.catalogue.service(service), policy, version, now=w.now(), progress=_progress)

    return _run(current, evaluate)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading the service's last day…")
def _timeline(current: Settings, service: str) -> Loaded[Timeline]:
    # A demo pinned to an end (--demo-end) has no history after it: its clock, and its last day, stop there.
    return _run(current, lambda w: service_timeline(w.sources, w.catalogue.service(service), w.catalogue.policy, w.now()))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _deploys(current: Settings, service: str) -> Loaded[list[Deploy]]:
    return _run(current, lambda w: deploys_of(w.sources, w.catalogue.service(service), w.catalogue.policy, w.now()))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Evaluating every release of the service…")
def _releases(current: Settings, service: str) -> Loaded[list[Evaluation]]:
    return _run(current, lambda w: evaluate_releases(w.sources, w.catalogue.service(service), w.catalogue.policy, now=w.now()))


@st.cache_data(ttl=HEALTH_TTL_SECONDS, show_spinner="Checking the sources…")
def _health(current: Settings) -> Loaded[list[SourceHealth]]:
    return _run(current, lambda w: w.sources.health())
