"""A deterministic simulated fleet: services with diurnal traffic, noise and labelled releases.

Every service is scraped every `scrape_interval`; each scrape records the requests, 5xx errors,
4xx responses, latency-histogram bucket counts and CPU seconds of the interval that ends at that scrape,
and the resident memory at that instant. A deploy switches traffic to the new version at an instant
aligned to the minute; the old version's last scrape and the new version's first scrape (counters at 0)
share that instant, so Prometheus' `increase()` over aligned steps recovers the simulated counts exactly.
The new version's memory gauge starts at its first own scrape.

Two scenarios: "default" (the demo and the tests: four faults of one size each, good releases) and
"accuracy" (the benchmark: every fault at several sizes, good releases on a traffic ramp, with a
traffic-mix change or with noisy neighbours, and low-traffic services).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np
from scipy.special import ndtr, ndtri

# The prometheus_client default buckets, in seconds (+Inf is implicit as the last column).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SERVICE_NAMES = (
    "user-service",
    "order-service",
    "payment-service",
    "inventory-service",
    "cart-service",
    "search-service",
    "shipping-service",
    "notification-service",
    "catalog-service",
    "review-service",
    # Beyond the demo's ten, for load benchmarks (50 services); appended, so the first ten are unchanged.
    "auth-service", "gateway-service", "pricing-service", "recommendation-service", "fraud-service",
    "invoice-service", "refund-service", "coupon-service", "loyalty-service", "wishlist-service",
    "checkout-service", "tax-service", "currency-service", "address-service", "profile-service",
    "session-service", "email-service", "sms-service", "push-service", "media-service",
    "thumbnail-service", "upload-service", "export-service", "report-service", "audit-service",
    "billing-service", "subscription-service", "ledger-service", "warehouse-service", "returns-service",
    "tracking-service", "rating-service", "question-service", "seller-service", "ads-service",
    "analytics-service", "feature-flag-service", "config-service", "scheduler-service", "webhook-service",
)
FLEET_SIZE = 8  # services in a simulated fleet unless asked otherwise: the demo's and the tests'
MAX_SERVICES = 1000  # benchmarks at fleet scale: past the names above, "user-service-2" and so on


def service_name(index: int) -> str:
    """The name of the fleet's service number `index` (from 0): SERVICE_NAMES, then numbered again."""
    base = SERVICE_NAMES[index % len(SERVICE_NAMES)]
    return base if index < len(SERVICE_NAMES) else f"{base}-{index // len(SERVICE_NAMES) + 1}"


Z95 = float(ndtri(0.95))
SCENARIOS = ("default", "accuracy")
MIB = 2.0**20


class ReleaseLabel(StrEnum):
    """What a simulated release really is: the ground truth the verdicts are scored against."""

    INITIAL = "initial"  # running before the simulation starts: never evaluated
    GOOD = "good"
    ERROR_RATIO = "error_ratio"  # the 5xx ratio rises by `factor`
    LATENCY = "latency"  # every latency is multiplied by `factor` (so is p95)
    NEW_EXCEPTION = "new_exception"  # a new, handled exception type is logged (metrics unchanged)
    ERROR_LOG_BURST = "error_log_burst"  # a known error message is logged `factor` times as often
    MEMORY_LEAK = "memory_leak"  # memory grows linearly after the deploy, by (factor - 1) of its level an hour
    CPU = "cpu"  # each request costs `factor` times the CPU
    TRAFFIC_DROP = "traffic_drop"  # the release serves `factor` of the traffic (0.6: 40% fewer requests)
    GOOD_RAMP = "good_ramp"  # good, deployed on a traffic ramp: +50% over the hour around the deploy
    GOOD_MIX = "good_mix"  # good, the traffic mix turns cheaper: latency -15%, error ratio within +-15%
    GOOD_NOISY = "good_noisy"  # good, noisy neighbours: short latency spikes in both windows alike
    # The shapes real regressions take beyond a level shift (the accuracy scenario only):
    EPISODES = "episodes"  # `factor` of the minutes at 3x latency and 3x CPU per request; medians unchanged
    TAIL_LATENCY = "tail_latency"  # `factor` of the requests 5-10x slower; the median unchanged
    LATE_STEP = "late_step"  # latency x`factor` from the middle of the judged window on (deploy + 20 min)
    BASELINE_SPIKE = "baseline_spike"  # CPU per request x`factor`, the baseline window holding one 50x minute
    CONNECTIONS = "connections"  # connections in use (a small-integer gauge, ties everywhere) x`factor`
    # ... and good releases whose windows differ anyway:
    GOOD_DIURNAL = "good_diurnal"  # good, on the daily ramp: traffic, connections and memory rise through both windows
    GOOD_SPIKE = "good_spike"  # good, one isolated minute of 5x latency and CPU in the judged window
    GOOD_CYCLE = "good_cycle"  # good, memory and connections on the steep part of a daily cycle

    @property
    def is_regression(self) -> bool:
        return self not in NOT_REGRESSIONS


GOOD_LABELS = (
    ReleaseLabel.GOOD, ReleaseLabel.GOOD_RAMP, ReleaseLabel.GOOD_MIX, ReleaseLabel.GOOD_NOISY,
    ReleaseLabel.GOOD_DIURNAL, ReleaseLabel.GOOD_SPIKE, ReleaseLabel.GOOD_CYCLE,
)
NOT_REGRESSIONS = frozenset({ReleaseLabel.INITIAL, *GOOD_LABELS})


@dataclass(frozen=True)
class SimulatedRelease:
    version: str
    deployed_at: datetime
    label: ReleaseLabel
    factor: float  # size of the fault (1.0 for good releases)
    error_ratio: float  # the true 5xx probability per request
    latency_median: float  # seconds; latency is lognormal(log(median), sigma)
    latency_sigma: float
    commit: str = ""
    memory_bytes: float = 0.0  # resident memory once warm, before any leak
    leak_per_hour: float = 0.0  # memory growth per hour after the deploy, as a share of memory_bytes
    cpu_per_request: float = 0.0  # CPU seconds each request costs (on top of the service's idle CPU)
    traffic: float = 1.0  # share of the service's traffic this release serves

    @property
    def p95_latency(self) -> float:
        return self.latency_median * math.exp(Z95 * self.latency_sigma)

    @property
    def fault_size(self) -> str:
        """The fault's size in words: "x2" errors, "+25%" latency or CPU, "+50%/h" memory, "-40%" traffic,
        "10%" of the minutes or the requests for episodes and tails."""
        relative = {ReleaseLabel.LATENCY, ReleaseLabel.CPU, ReleaseLabel.TRAFFIC_DROP, ReleaseLabel.LATE_STEP}
        if self.label is ReleaseLabel.MEMORY_LEAK:
            return f"+{(self.factor - 1) * 100:.0f}%/h"
        if self.label in relative:
            return f"{(self.factor - 1) * 100:+.0f}%"
        if self.label in (ReleaseLabel.EPISODES, ReleaseLabel.TAIL_LATENCY):
            return f"{self.factor * 100:g}%"
        if self.label in (ReleaseLabel.ERROR_RATIO, ReleaseLabel.ERROR_LOG_BURST, ReleaseLabel.BASELINE_SPIKE,
                          ReleaseLabel.CONNECTIONS):
            return f"x{self.factor:g}"
        return ""


@dataclass(frozen=True, eq=False)
class SimulatedService:
    """One service's scrapes. Arrays are per scrape; `release_index` says which release served it."""

    name: str
    base_rps: float
    releases: tuple[SimulatedRelease, ...]
    times: np.ndarray  # UNIX seconds of each scrape, int64
    release_index: np.ndarray  # int, per scrape
    requests: np.ndarray  # int64 increments per scrape interval
    errors: np.ndarray  # 5xx, a subset of requests
    client_errors: np.ndarray  # 4xx, a subset of requests (not failures)
    buckets: np.ndarray  # int64 [scrape, bucket] non-cumulative counts, last column is +Inf
    latency_sum: np.ndarray  # float seconds per scrape interval
    cpu_seconds: np.ndarray  # float CPU seconds used per scrape interval
    memory: np.ndarray  # float resident bytes at each scrape, of the release serving it
    connections: np.ndarray  # connections in use at each scrape (small integers), of the release serving it

    def release(self, version: str) -> SimulatedRelease:
        for release in self.releases:
            if release.version == version:
                return release
        raise KeyError(f"{self.name} has no version {version!r}")

    def scrapes_of(self, version: str) -> np.ndarray:
        """Indices of the scrapes at which `version` is exposed (its counters exist).

        A new version is first exposed, with counters at zero, at the deploy instant: the scrape that
        also closes the previous version's last interval.
        """
        index = [r.version for r in self.releases].index(version)
        served = np.flatnonzero(self.release_index == index)
        if index > 0 and served.size and served[0] > 0:
            served = np.concatenate([[served[0] - 1], served])
        return served

    def counts(self, version: str, start: datetime, end: datetime) -> dict[str, np.ndarray | int]:
        """Exact totals of `version` over scrape intervals ending in (start, end]: the ground truth."""
        index = self.scrapes_of(version)
        t = self.times[index]
        keep = index[(t > start.timestamp()) & (t <= end.timestamp())]
        increments = self._increments(version)
        keep_mask = np.isin(index, keep)
        return {
            "requests": int(increments["requests"][keep_mask].sum()),
            "errors": int(increments["errors"][keep_mask].sum()),
            "buckets": increments["buckets"][keep_mask].sum(axis=0),
        }

    def _increments(self, version: str) -> dict[str, np.ndarray]:
        """Per exposed scrape of `version`: what its counters grew by (zero at its first scrape)."""
        index = self.scrapes_of(version)
        mine = self.release_index[index] == [r.version for r in self.releases].index(version)
        out = {}
        for name in ("requests", "errors", "client_errors", "latency_sum", "cpu_seconds"):
            out[name] = np.where(mine, getattr(self, name)[index], 0)
        out["buckets"] = np.where(mine[:, None], self.buckets[index], 0)
        out["requests"][0] = out["errors"][0] = out["client_errors"][0] = 0
        out["latency_sum"][0] = out["cpu_seconds"][0] = 0.0
        out["buckets"][0] = 0
        return out

    def cumulative(self, version: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(scrape times, counter values) of `version`: what a Prometheus scrape would have read."""
        index = self.scrapes_of(version)
        increments = self._increments(version)
        return self.times[index], {name: np.cumsum(values, axis=0) for name, values in increments.items()}

    def gauge(self, version: str, name: str = "memory") -> tuple[np.ndarray, np.ndarray]:
        """(scrape times, values) of a gauge of `version` ("memory": resident bytes, "connections"): its own
        scrapes only (a process that has not started exposes no gauge; the deploy instant belongs to the
        version it retires)."""
        own = np.flatnonzero(self.release_index == [r.version for r in self.releases].index(version))
        values: np.ndarray = getattr(self, name)
        return self.times[own], values[own]


@dataclass(frozen=True, eq=False)
class Fleet:
    seed: int
    start: datetime
    end: datetime
    scrape_interval: timedelta
    services: tuple[SimulatedService, ...]
    scenario: str = "default"

    def service(self, name: str) -> SimulatedService:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def truth(self) -> dict:
        """The ground truth as JSON-ready data: every release, its label, fault size and true values."""
        return {
            "seed": self.seed,
            "scenario": self.scenario,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "scrape_interval_seconds": self.scrape_interval.total_seconds(),
            "services": [
                {
                    "name": s.name,
                    "base_rps": s.base_rps,
                    "releases": [
                        {
                            "version": r.version,
                            "deployed_at": r.deployed_at.isoformat(),
                            "label": r.label.value,
                            "factor": r.factor,
                            "error_ratio": r.error_ratio,
                            "fault_size": r.fault_size,
                            "regression": r.label.is_regression,
                            "p95_latency_seconds": r.p95_latency,
                            "memory_bytes": r.memory_bytes,
                            "leak_per_hour": r.leak_per_hour,
                            "cpu_seconds_per_request": r.cpu_per_request,
                            "traffic": r.traffic,
                            "commit": r.commit,
                        }
                        for r in s.releases
                    ],
                }
                for s in self.services
            ],
        }


def simulate(
    seed: int = 7,
    end: datetime | None = None,
    hours: float = 26,
    services: int = FLEET_SIZE,
    releases_per_service: int = 3,
    scrape_interval: timedelta = timedelta(seconds=30),
    scenario: str = "default",
) -> Fleet:
    """Return a simulated fleet ending at `end` (default: now, floored to the minute).

    The same seed, end and scenario give the same fleet. Each service draws from its own random streams,
    so its releases and faults do not depend on how many services are simulated. `scenario` is
    "default" (the demo's four faults, one size each) or "accuracy" (every fault at several sizes, the
    good-release variants, and every third service on low traffic); raises ValueError for another.
    """
    if not 1 <= services <= MAX_SERVICES:
        raise ValueError(f"services must be between 1 and {MAX_SERVICES}")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    end = _floor_minute(end or datetime.now(UTC))
    start = end - timedelta(hours=hours)
    count = services * releases_per_service
    planner = _accuracy_plan if scenario == "accuracy" else _default_plan
    plan = planner(np.random.default_rng(seed), count)
    built = tuple(
        _simulate_service(
            (seed, i), service_name(i), start, end, scrape_interval,
            plan[i * releases_per_service:(i + 1) * releases_per_service], scenario,
        )
        for i in range(services)
    )
    return Fleet(seed, start, end, scrape_interval, built, scenario)


def _floor_minute(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(second=0, microsecond=0)


FAULTS = (ReleaseLabel.ERROR_RATIO, ReleaseLabel.LATENCY, ReleaseLabel.NEW_EXCEPTION, ReleaseLabel.ERROR_LOG_BURST)
DEFAULT_FACTORS = {ReleaseLabel.ERROR_RATIO: 3.0, ReleaseLabel.LATENCY: 1.5, ReleaseLabel.ERROR_LOG_BURST: 6.0}
# The accuracy scenario's faults and sizes (SimulatedRelease.factor): error ratio x1.5/x2/x5, p95 +10/+25/+50%,
# memory x1.5/x2/x3 an hour after the deploy, CPU per request +40%/x2, 40% of the traffic lost.
FAULT_SIZES: dict[ReleaseLabel, tuple[float, ...]] = {
    ReleaseLabel.ERROR_RATIO: (1.5, 2.0, 5.0),
    ReleaseLabel.LATENCY: (1.1, 1.25, 1.5),
    ReleaseLabel.MEMORY_LEAK: (1.2, 1.5, 2.0, 3.0),  # +20%/h: a slow leak, +10% over a 30-minute window
    ReleaseLabel.CPU: (1.4, 2.0),
    ReleaseLabel.TRAFFIC_DROP: (0.6,),
    ReleaseLabel.NEW_EXCEPTION: (1.0,),
    ReleaseLabel.ERROR_LOG_BURST: (6.0,),
    ReleaseLabel.EPISODES: (0.05, 0.1, 0.2),
    ReleaseLabel.TAIL_LATENCY: (0.01, 0.05),
    ReleaseLabel.LATE_STEP: (1.5,),
    ReleaseLabel.BASELINE_SPIKE: (2.0,),
    ReleaseLabel.CONNECTIONS: (1.5, 2.0),
}
GOOD_SHARE = 0.45  # of the accuracy scenario's releases: enough good ones to measure a 1% false-rollback rate
LOW_TRAFFIC_EVERY = 3  # in the accuracy scenario, every third service serves 0.5-3 req/s
LOW_TRAFFIC_RPS = (0.5, 3.0)
RAMP = 0.5  # GOOD_RAMP: traffic +50%, rising from 30 min before the deploy to 35 min after, gone an hour later
# GOOD_MIX: the new workload, from the deploy on. Its error ratio moves within +-5% (with a release's own
# +-10% drift, at most +28% from the baseline: a good release stays inside the error ratio's +30% tolerance).
MIX_LATENCY, MIX_ERRORS, MIX_CPU = 0.85, (0.9, 1.05), 0.85
SPIKES_PER_WINDOW = 2  # GOOD_NOISY: latency spikes in the 30 min before the deploy and in the 30 min judged after
SPIKE_SECONDS, SPIKE_LATENCY, SPIKE_ERRORS = (60.0, 180.0), (2.0, 4.0), 2.0
# Resources: resident memory level (log-uniform), its noise, slow drift and refill after a restart; CPU.
MEMORY_BYTES = (150 * MIB, 2048 * MIB)
MEMORY_NOISE, MEMORY_DRIFT, DRIFT_HOURS = 0.015, 0.03, (5.0, 9.0)
WARM_DEFICIT, WARM_SECONDS = 0.2, 90.0  # a new process starts 20% lighter and fills its caches in minutes
CPU_PER_REQUEST, IDLE_CORES, CPU_NOISE = (0.002, 0.015), (0.01, 0.04), 0.05
HEALTHY_LIKE = (*GOOD_LABELS, ReleaseLabel.NEW_EXCEPTION, ReleaseLabel.ERROR_LOG_BURST)
# The shapes: EPISODES' minutes run at EPISODE_FACTOR; TAIL_LATENCY's slow requests are 5-10x slower;
# LATE_STEP starts STEP_AT after the deploy; BASELINE_SPIKE's baseline holds one minute at SPIKE_CPU.
EPISODE_FACTOR, TAIL_SLOWDOWN, STEP_AT, SPIKE_CPU = 3.0, (5.0, 10.0), 1200.0, 50.0
JUDGED = (300, 2100)  # seconds after a deploy the default policy judges (5-minute warm-up, 30-minute window)
LONE_SPIKE = 5.0  # GOOD_SPIKE: latency and CPU of its one minute
CONNECTIONS_IN_USE = (4.0, 12.0)  # connections a service holds at its mean traffic (Poisson, small integers)
CONNECTIONS_LOAD = 0.2  # the share of them that follows the traffic (the rest: the pool's long-lived ones)
DIURNAL_RAMP, DIURNAL_MEMORY = 0.6, 0.1  # GOOD_DIURNAL: traffic +60% and memory +10% across both windows
CYCLE_AMPLITUDE, CYCLE_ENVELOPE = 0.25, 5400.0  # GOOD_CYCLE: a daily cycle of +-25%, steepest at the deploy


def _release_labels(rng: np.random.Generator, count: int) -> list[ReleaseLabel]:
    """Half the releases are good; the other half spread over the four faults, at least one of each."""
    each = max(1, count // 8)
    labels = [fault for fault in FAULTS for _ in range(each)]
    labels += [ReleaseLabel.GOOD] * max(0, count - len(labels))
    rng.shuffle(labels)
    return labels


def _default_plan(rng: np.random.Generator, count: int) -> list[tuple[ReleaseLabel, float]]:
    return [(label, DEFAULT_FACTORS.get(label, 1.0)) for label in _release_labels(rng, count)]


def _accuracy_plan(rng: np.random.Generator, count: int) -> list[tuple[ReleaseLabel, float]]:
    """GOOD_SHARE of the releases good (the four variants in turn); the rest cycle through every fault
    and size from a random starting cell, so each seed covers them all evenly; then shuffled."""
    cells = [(label, size) for label, sizes in FAULT_SIZES.items() for size in sizes]
    goods = round(count * GOOD_SHARE)
    first = int(rng.integers(len(cells)))
    plan = [(GOOD_LABELS[i % len(GOOD_LABELS)], 1.0) for i in range(goods)]
    plan += [cells[(first + i) % len(cells)] for i in range(count - goods)]
    rng.shuffle(plan)
    return plan


def _simulate_service(
    streams: tuple[int, int],
    name: str,
    start: datetime,
    end: datetime,
    scrape: timedelta,
    plan: list[tuple[ReleaseLabel, float]],
    scenario: str,
) -> SimulatedService:
    """One service from its own streams: `streams` (seed, position) draws traffic and faults exactly as
    before gauges existed; (seed, position, 2) draws the resources; (seed, position, 3) the accuracy
    scenario's extras (low traffic, ramps, spikes), so adding them leaves the default fleet unchanged."""
    rng = np.random.default_rng(list(streams))
    extras = np.random.default_rng([*streams, 3])
    releases = _plan_releases(rng, start, end, plan)
    step = int(scrape.total_seconds())
    times = np.arange(int(start.timestamp()), int(end.timestamp()) + 1, step, dtype=np.int64)
    deploys = np.array([int(r.deployed_at.timestamp()) for r in releases[1:]], dtype=np.int64)
    # The scrape at a deploy instant closes the old version's last interval.
    release_index = np.searchsorted(deploys, times, side="left")
    base_rps = float(np.round(rng.uniform(4, 60), 1))
    if scenario == "accuracy" and streams[1] % LOW_TRAFFIC_EVERY == LOW_TRAFFIC_EVERY - 1:
        base_rps = float(np.round(extras.uniform(*LOW_TRAFFIC_RPS), 2))
    peak_hour = rng.uniform(12, 18)
    hours = (times % 86400) / 3600
    diurnal = 1 + 0.6 * np.cos(2 * np.pi * (hours - peak_hour) / 24)
    rate = base_rps * diurnal * rng.lognormal(0, 0.1, size=times.size) * step * _traffic(times, releases, release_index)
    requests = rng.poisson(rate)
    error_ratio = np.array([r.error_ratio for r in releases])[release_index]
    spikes = _spikes(extras, times, releases)
    # Overdispersion: the error probability itself wanders from interval to interval.
    p_error = np.clip(error_ratio * rng.lognormal(-0.045, 0.3, size=times.size) * np.where(spikes > 1, SPIKE_ERRORS, 1.0), 0, 1)
    errors = rng.binomial(requests, p_error)
    client_errors = rng.binomial(requests - errors, 0.01)
    medians = np.array([r.latency_median for r in releases])[release_index]
    sigmas = np.array([r.latency_sigma for r in releases])[release_index]
    shape = _shapes(np.random.default_rng([*streams, 4]), times, releases, release_index)
    medians = medians * rng.lognormal(0, 0.05, size=times.size) * spikes * shape.latency
    buckets = _bucket_counts(rng, requests, medians, sigmas, shape.tail_share, shape.tail_slowdown)
    latency_sum = requests * medians * np.exp(sigmas**2 / 2) * (1 + shape.tail_share * (shape.tail_slowdown - 1))
    resources = np.random.default_rng([*streams, 2])
    releases = _with_resources(resources, releases)
    cpu_seconds = _cpu_seconds(resources, releases, release_index, requests, step, shape.cpu)
    memory = _memory(resources, times, releases, release_index) * shape.memory
    expected = base_rps * diurnal * _traffic(times, releases, release_index)
    return SimulatedService(
        name, base_rps, tuple(releases), times, release_index,
        requests.astype(np.int64), errors.astype(np.int64), client_errors.astype(np.int64),
        buckets, latency_sum, cpu_seconds, np.round(memory),
        _connections(np.random.default_rng([*streams, 5]), expected / base_rps, shape.connections),
    )


def _traffic(times: np.ndarray, releases: list[SimulatedRelease], release_index: np.ndarray) -> np.ndarray:
    """Per scrape, the multiplier of the service's traffic: the serving release's share, and the ramps
    around GOOD_RAMP deploys (all ones in the default scenario)."""
    share = np.array([r.traffic for r in releases])[release_index]
    for release in releases:
        at = release.deployed_at.timestamp()
        if release.label is ReleaseLabel.GOOD_RAMP:
            share = share * (1 + RAMP * np.interp(times, [at - 1800, at + 2100, at + 5700], [0.0, 1.0, 0.0]))
        if release.label is ReleaseLabel.GOOD_DIURNAL:
            share = share * (1 + DIURNAL_RAMP * _diurnal_ramp(times, at))
    return share


def _diurnal_ramp(times: np.ndarray, at: float) -> np.ndarray:
    """0 before the baseline window, rising linearly to 1 at the end of the judged window, back to 0 an hour later."""
    return np.interp(times, [at - 1800, at + JUDGED[1], at + JUDGED[1] + 3600], [0.0, 1.0, 0.0])


def _spikes(rng: np.random.Generator, times: np.ndarray, releases: list[SimulatedRelease]) -> np.ndarray:
    """Per scrape, the latency multiplier of noisy neighbours: around each GOOD_NOISY deploy, the same
    number of 1-3 minute spikes in the 30 minutes before it and in the 30 minutes after its 5-minute
    warm-up (the default policy's windows), so baseline and candidate suffer alike."""
    out = np.ones(times.size)
    for release in (r for r in releases if r.label is ReleaseLabel.GOOD_NOISY):
        at = release.deployed_at.timestamp()
        for low, high in ((at - 1800, at), (at + 300, at + 2100)):
            for _ in range(SPIKES_PER_WINDOW):
                length = rng.uniform(*SPIKE_SECONDS)
                begin = rng.uniform(low, high - length)
                out[(times > begin) & (times <= begin + length)] *= rng.uniform(*SPIKE_LATENCY)
    return out


@dataclass(frozen=True)
class Shapes:
    """Per scrape, what the shapes of the accuracy scenario do (ones and zeros where none applies)."""

    latency: np.ndarray  # multiplier of the latency median
    cpu: np.ndarray  # multiplier of each request's CPU cost
    tail_share: np.ndarray  # share of requests from the slow tail
    tail_slowdown: np.ndarray  # how much slower those are
    memory: np.ndarray  # multiplier of resident memory
    connections: np.ndarray  # multiplier of the connections in use


def _shapes(rng: np.random.Generator, times: np.ndarray, releases: list[SimulatedRelease], release_index: np.ndarray) -> Shapes:
    """The per-scrape multipliers of every shape, each applied while its release serves (GOOD_DIURNAL and
    GOOD_CYCLE around the deploy, across both windows; BASELINE_SPIKE in the release it replaces)."""
    ones = np.ones(times.size)
    latency, cpu, memory, connections = ones.copy(), ones.copy(), ones.copy(), ones.copy()
    tail_share, tail_slowdown = np.zeros(times.size), ones.copy()
    for index, release in enumerate(releases):
        at, serving = release.deployed_at.timestamp(), release_index == index
        if release.label is ReleaseLabel.EPISODES:
            slow = serving & _episode_minutes(rng, times, at, release.factor)
            latency[slow] *= EPISODE_FACTOR
            cpu[slow] *= EPISODE_FACTOR
        elif release.label is ReleaseLabel.TAIL_LATENCY:
            tail_share[serving], tail_slowdown[serving] = release.factor, rng.uniform(*TAIL_SLOWDOWN)
        elif release.label is ReleaseLabel.LATE_STEP:
            latency[serving & (times > at + STEP_AT)] *= release.factor
        elif release.label is ReleaseLabel.BASELINE_SPIKE:
            minute = at - 60 * int(rng.integers(2, 30))  # one minute inside the 30-minute baseline window
            cpu[(times > minute) & (times <= minute + 60)] *= SPIKE_CPU
        elif release.label is ReleaseLabel.CONNECTIONS:
            connections[serving] *= release.factor
        elif release.label is ReleaseLabel.GOOD_SPIKE:
            minute = at + 60 * int(rng.integers(JUDGED[0] // 60, JUDGED[1] // 60))
            spike = (times > minute) & (times <= minute + 60)
            latency[spike] *= LONE_SPIKE
            cpu[spike] *= LONE_SPIKE
        elif release.label is ReleaseLabel.GOOD_DIURNAL:
            rise = _diurnal_ramp(times, at)
            memory *= 1 + DIURNAL_MEMORY * rise
        elif release.label is ReleaseLabel.GOOD_CYCLE:
            # sin is steepest at 0 and pi: the deploy sits on the cycle's rising or falling flank. The cycle
            # fades out hours away (a Gaussian envelope), so the service's other releases barely see it.
            phase = float(rng.choice([0.0, np.pi]))
            envelope = np.exp(-0.5 * ((times - at) / CYCLE_ENVELOPE) ** 2)
            cycle = 1 + CYCLE_AMPLITUDE * np.sin(2 * np.pi * (times - at) / 86400 + phase) * envelope
            memory *= cycle
            connections *= cycle
    return Shapes(latency, cpu, tail_share, tail_slowdown, memory, connections)


def _episode_minutes(rng: np.random.Generator, times: np.ndarray, at: float, share: float) -> np.ndarray:
    """The scrapes inside episode minutes after a deploy at `at`: exactly round(share x 30) of the judged
    window's 30 minutes, and each other minute with probability `share`."""
    first, last = int(JUDGED[0] // 60), int(JUDGED[1] // 60)
    judged = rng.choice(np.arange(first, last), size=max(1, round(share * (last - first))), replace=False)
    minutes = (times - at - 1) // 60  # the scrape at t closes (t - 30 s, t]: minute m is (at + 60 m, at + 60 (m + 1)]
    others = rng.random(int(minutes.max() - minutes.min()) + 1 if times.size else 0) < share
    chosen = np.isin(minutes, judged)
    outside = (minutes >= 0) & ((minutes < first) | (minutes >= last))
    chosen |= outside & others[(minutes - minutes.min()).astype(int)]
    return chosen


def _connections(rng: np.random.Generator, load: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    """Connections held per scrape: Poisson around the service's level, mostly the pool's long-lived
    connections, a fifth of it following the load (traffic over its mean), times the shapes' multiplier;
    small integers with many ties, as a pool's gauge reads."""
    level = rng.uniform(*CONNECTIONS_IN_USE)
    return rng.poisson(level * (1 - CONNECTIONS_LOAD + CONNECTIONS_LOAD * load) * multiplier).astype(np.float64)


def _plan_releases(
    rng: np.random.Generator, start: datetime, end: datetime, plan: list[tuple[ReleaseLabel, float]]
) -> list[SimulatedRelease]:
    """An initial release plus one deploy per planned (label, size), spread over the span at least 1 h apart."""
    major, minor = int(rng.integers(1, 4)), int(rng.integers(0, 20))
    healthy_error = float(rng.uniform(0.002, 0.01))
    healthy_median = float(rng.uniform(0.04, 0.15))
    sigma = float(rng.uniform(0.4, 0.6))
    releases = [
        SimulatedRelease(
            f"{major}.{minor}.0", start, ReleaseLabel.INITIAL, 1.0, healthy_error, healthy_median, sigma, _commit(rng)
        )
    ]
    # The first deploy leaves two hours of history before it; the last leaves at least an hour after it.
    first, last = start + timedelta(hours=2), end - timedelta(hours=1, minutes=10)
    segment = (last - first) / max(1, len(plan))  # no plan: the initial release alone
    for i, (label, factor) in enumerate(plan):
        offset = segment * (i + rng.uniform(0.1, 0.6))
        deployed_at = _floor_minute(first + offset)
        if label is ReleaseLabel.GOOD_MIX:
            # The workload itself changes at the deploy (and stays changed for the releases after it).
            healthy_error *= rng.uniform(*MIX_ERRORS)
            healthy_median *= MIX_LATENCY
        error, median = _release_values(rng, label, factor, releases[-1], healthy_error, healthy_median)
        traffic = factor if label is ReleaseLabel.TRAFFIC_DROP else 1.0
        releases.append(
            SimulatedRelease(
                f"{major}.{minor}.{i + 1}", deployed_at, label, factor, error, median, sigma, _commit(rng),
                traffic=traffic,
            )
        )
    return releases


def _release_values(
    rng: np.random.Generator, label: ReleaseLabel, factor: float, previous: SimulatedRelease, error: float, median: float
) -> tuple[float, float]:
    """(5xx ratio, latency median) of a release given the healthy values and the release it replaces."""
    if label in HEALTHY_LIKE:
        # A good release is healthy (it fixes any earlier fault) and still drifts a little: the judge must
        # tolerate that. Log faults leave the metrics healthy: only the logs tell.
        return error * rng.uniform(0.9, 1.1), median * rng.uniform(0.97, 1.03)
    # A fault is relative to the release it replaces, which is the baseline it is judged against.
    if label is ReleaseLabel.ERROR_RATIO:
        return previous.error_ratio * factor, previous.latency_median
    if label is ReleaseLabel.LATENCY:
        return previous.error_ratio, previous.latency_median * factor
    return previous.error_ratio, previous.latency_median  # memory, CPU and traffic faults leave these alone


def _with_resources(rng: np.random.Generator, releases: list[SimulatedRelease]) -> list[SimulatedRelease]:
    """The releases with their memory level, leak and CPU cost: healthy-like releases near the service's
    healthy level, leak-free; a fault relative to the release it replaces; every other release keeps what
    it replaced (only a good release fixes an earlier fault)."""
    memory = float(np.exp(rng.uniform(*np.log(MEMORY_BYTES))))
    cpu = float(rng.uniform(*CPU_PER_REQUEST))
    out = [dataclasses.replace(releases[0], memory_bytes=memory, cpu_per_request=cpu)]
    for release in releases[1:]:
        previous = out[-1]
        if release.label is ReleaseLabel.GOOD_MIX:
            cpu *= MIX_CPU  # cheaper requests from this deploy on
        level, leak, cost = previous.memory_bytes, previous.leak_per_hour, previous.cpu_per_request
        if release.label in HEALTHY_LIKE:
            level, leak, cost = memory * rng.uniform(0.95, 1.05), 0.0, cpu * rng.uniform(0.95, 1.05)
        elif release.label is ReleaseLabel.MEMORY_LEAK:
            leak += release.factor - 1  # on top of any leak of the release it replaces
        elif release.label in (ReleaseLabel.CPU, ReleaseLabel.BASELINE_SPIKE):
            cost = previous.cpu_per_request * release.factor
        out.append(dataclasses.replace(release, memory_bytes=level, leak_per_hour=leak, cpu_per_request=cost))
    return out


def _cpu_seconds(
    rng: np.random.Generator, releases: list[SimulatedRelease], release_index: np.ndarray, requests: np.ndarray,
    step: int, multiplier: np.ndarray,
) -> np.ndarray:
    """CPU seconds per scrape interval: the service's idle cores plus each request's cost (times the
    shapes' multiplier), with noise."""
    idle = rng.uniform(*IDLE_CORES)
    cost = np.array([r.cpu_per_request for r in releases])[release_index]
    return (idle * step + cost * requests * multiplier) * rng.lognormal(0, CPU_NOISE, size=requests.size)


def _memory(
    rng: np.random.Generator, times: np.ndarray, releases: list[SimulatedRelease], release_index: np.ndarray
) -> np.ndarray:
    """Resident bytes per scrape of the serving release: its level, refilled after the restart, drifting
    slowly, growing linearly if it leaks, with scrape-to-scrape noise."""
    age = times - np.array([r.deployed_at.timestamp() for r in releases])[release_index]
    level = np.array([r.memory_bytes for r in releases])[release_index]
    leak = np.array([r.leak_per_hour for r in releases])[release_index]
    period, phase = rng.uniform(*DRIFT_HOURS) * 3600, rng.uniform(0, 2 * np.pi)
    drift = 1 + MEMORY_DRIFT * np.sin(2 * np.pi * times / period + phase)
    warm = 1 - WARM_DEFICIT * np.exp(-age / WARM_SECONDS)
    noise = 1 + rng.normal(0, MEMORY_NOISE, size=times.size)
    return level * warm * drift * (1 + leak * age / 3600) * noise


def _commit(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), size=12))


def _bucket_counts(
    rng: np.random.Generator, requests: np.ndarray, medians: np.ndarray, sigmas: np.ndarray,
    tail_share: np.ndarray, tail_slowdown: np.ndarray,
) -> np.ndarray:
    """Non-cumulative histogram counts per scrape: requests spread over buckets by the lognormal CDF, a
    `tail_share` of them from the same lognormal `tail_slowdown` times slower."""
    bounds = np.log(np.array(BUCKETS))[None, :]
    fast = ndtr((bounds - np.log(medians)[:, None]) / sigmas[:, None])
    slow = ndtr((bounds - np.log(medians * tail_slowdown)[:, None]) / sigmas[:, None])
    cdf = (1 - tail_share)[:, None] * fast + tail_share[:, None] * slow
    probabilities = np.diff(np.concatenate([np.zeros((len(requests), 1)), cdf, np.ones((len(requests), 1))], axis=1), axis=1)
    probabilities = np.clip(probabilities, 0, None)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return rng.multinomial(requests, probabilities).astype(np.int64)
