"""A deterministic simulated fleet: services with diurnal traffic, noise and labelled releases.

Every service is scraped every `scrape_interval`; each scrape records the requests, 5xx errors,
4xx responses and latency-histogram bucket counts of the interval that ends at that scrape. A deploy
switches traffic to the new version at an instant aligned to the minute; the old version's last scrape
and the new version's first scrape (counters at 0) share that instant, so Prometheus' `increase()` over
aligned steps recovers the simulated counts exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np
from scipy.stats import norm

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
)
Z95 = float(norm.ppf(0.95))


class ReleaseLabel(StrEnum):
    """What a simulated release really is: the ground truth the verdicts are scored against."""

    INITIAL = "initial"  # running before the simulation starts: never evaluated
    GOOD = "good"
    ERROR_RATIO = "error_ratio"  # the 5xx ratio rises by `factor`
    LATENCY = "latency"  # every latency is multiplied by `factor` (so is p95)
    NEW_EXCEPTION = "new_exception"  # a new, handled exception type is logged (metrics unchanged)
    ERROR_LOG_BURST = "error_log_burst"  # a known error message is logged `factor` times as often

    @property
    def is_regression(self) -> bool:
        return self is not ReleaseLabel.GOOD and self is not ReleaseLabel.INITIAL


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

    @property
    def p95_latency(self) -> float:
        return self.latency_median * math.exp(Z95 * self.latency_sigma)


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
        for name in ("requests", "errors", "client_errors", "latency_sum"):
            out[name] = np.where(mine, getattr(self, name)[index], 0)
        out["buckets"] = np.where(mine[:, None], self.buckets[index], 0)
        out["requests"][0] = out["errors"][0] = out["client_errors"][0] = 0
        out["latency_sum"][0] = 0.0
        out["buckets"][0] = 0
        return out

    def cumulative(self, version: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(scrape times, counter values) of `version`: what a Prometheus scrape would have read."""
        index = self.scrapes_of(version)
        increments = self._increments(version)
        return self.times[index], {name: np.cumsum(values, axis=0) for name, values in increments.items()}


@dataclass(frozen=True, eq=False)
class Fleet:
    seed: int
    start: datetime
    end: datetime
    scrape_interval: timedelta
    services: tuple[SimulatedService, ...]

    def service(self, name: str) -> SimulatedService:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def truth(self) -> dict:
        """The ground truth as JSON-ready data: every release, its label, fault size and true values."""
        return {
            "seed": self.seed,
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
                            "p95_latency_seconds": r.p95_latency,
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
    services: int = 8,
    releases_per_service: int = 3,
    scrape_interval: timedelta = timedelta(seconds=30),
) -> Fleet:
    """Return a simulated fleet ending at `end` (default: now, floored to the minute).

    The same seed and end give the same fleet. Each service draws from its own random stream, so its
    releases and faults do not depend on how many services are simulated.
    """
    if not 1 <= services <= len(SERVICE_NAMES):
        raise ValueError(f"services must be between 1 and {len(SERVICE_NAMES)}")
    end = _floor_minute(end or datetime.now(UTC))
    start = end - timedelta(hours=hours)
    labels = _release_labels(np.random.default_rng(seed), services * releases_per_service)
    built = tuple(
        _simulate_service(
            np.random.default_rng([seed, i]), SERVICE_NAMES[i], start, end, scrape_interval,
            labels[i * releases_per_service:(i + 1) * releases_per_service],
        )
        for i in range(services)
    )
    return Fleet(seed, start, end, scrape_interval, built)


def _floor_minute(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(second=0, microsecond=0)


FAULTS = (ReleaseLabel.ERROR_RATIO, ReleaseLabel.LATENCY, ReleaseLabel.NEW_EXCEPTION, ReleaseLabel.ERROR_LOG_BURST)


def _release_labels(rng: np.random.Generator, count: int) -> list[ReleaseLabel]:
    """Half the releases are good; the other half spread over the four faults, at least one of each."""
    each = max(1, count // 8)
    labels = [fault for fault in FAULTS for _ in range(each)]
    labels += [ReleaseLabel.GOOD] * max(0, count - len(labels))
    rng.shuffle(labels)
    return labels


def _simulate_service(
    rng: np.random.Generator,
    name: str,
    start: datetime,
    end: datetime,
    scrape: timedelta,
    labels: list[ReleaseLabel],
) -> SimulatedService:
    releases = _plan_releases(rng, start, end, labels)
    step = int(scrape.total_seconds())
    times = np.arange(int(start.timestamp()), int(end.timestamp()) + 1, step, dtype=np.int64)
    deploys = np.array([int(r.deployed_at.timestamp()) for r in releases[1:]], dtype=np.int64)
    # The scrape at a deploy instant closes the old version's last interval.
    release_index = np.searchsorted(deploys, times, side="left")
    base_rps = float(np.round(rng.uniform(4, 60), 1))
    peak_hour = rng.uniform(12, 18)
    hours = (times % 86400) / 3600
    diurnal = 1 + 0.6 * np.cos(2 * np.pi * (hours - peak_hour) / 24)
    rate = base_rps * diurnal * rng.lognormal(0, 0.1, size=times.size) * step
    requests = rng.poisson(rate)
    error_ratio = np.array([r.error_ratio for r in releases])[release_index]
    # Overdispersion: the error probability itself wanders from interval to interval.
    p_error = np.clip(error_ratio * rng.lognormal(-0.045, 0.3, size=times.size), 0, 1)
    errors = rng.binomial(requests, p_error)
    client_errors = rng.binomial(requests - errors, 0.01)
    medians = np.array([r.latency_median for r in releases])[release_index]
    sigmas = np.array([r.latency_sigma for r in releases])[release_index]
    medians = medians * rng.lognormal(0, 0.05, size=times.size)
    buckets = _bucket_counts(rng, requests, medians, sigmas)
    latency_sum = requests * medians * np.exp(sigmas**2 / 2)
    return SimulatedService(
        name, base_rps, tuple(releases), times, release_index,
        requests.astype(np.int64), errors.astype(np.int64), client_errors.astype(np.int64),
        buckets, latency_sum,
    )


def _plan_releases(
    rng: np.random.Generator, start: datetime, end: datetime, labels: list[ReleaseLabel]
) -> list[SimulatedRelease]:
    """An initial release plus one deploy per label, spread over the span at least 2 h apart."""
    major, minor = int(rng.integers(1, 4)), int(rng.integers(0, 20))
    healthy_error = float(rng.uniform(0.002, 0.01))
    healthy_median = float(rng.uniform(0.04, 0.15))
    sigma = float(rng.uniform(0.4, 0.6))
    releases = [
        SimulatedRelease(
            f"{major}.{minor}.0", start, ReleaseLabel.INITIAL, 1.0, healthy_error, healthy_median, sigma, _commit(rng)
        )
    ]
    # The first deploy leaves a day of history before it; the last leaves at least an hour after it.
    first, last = start + timedelta(hours=2), end - timedelta(hours=1, minutes=10)
    segment = (last - first) / len(labels)
    for i, label in enumerate(labels):
        offset = segment * (i + rng.uniform(0.1, 0.6))
        deployed_at = _floor_minute(first + offset)
        previous = releases[-1]
        error, median, factor = healthy_error, healthy_median, 1.0
        if label in (ReleaseLabel.GOOD, ReleaseLabel.NEW_EXCEPTION, ReleaseLabel.ERROR_LOG_BURST):
            # A good release is healthy (it fixes any earlier fault) and still drifts a little: the
            # judge must tolerate that. Log faults leave the metrics healthy: only the logs tell.
            error *= rng.uniform(0.9, 1.1)
            median *= rng.uniform(0.97, 1.03)
            factor = {ReleaseLabel.ERROR_LOG_BURST: 6.0}.get(label, 1.0)
        elif label is ReleaseLabel.ERROR_RATIO:
            # A fault is relative to the release it replaces, which is the baseline it is judged against.
            factor = 3.0
            error, median = previous.error_ratio * factor, previous.latency_median
        else:
            factor = 1.5
            error, median = previous.error_ratio, previous.latency_median * factor
        releases.append(
            SimulatedRelease(
                f"{major}.{minor}.{i + 1}", deployed_at, label, factor, error, median, sigma, _commit(rng)
            )
        )
    return releases


def _commit(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), size=12))


def _bucket_counts(
    rng: np.random.Generator, requests: np.ndarray, medians: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """Non-cumulative histogram counts per scrape: requests spread over buckets by the lognormal CDF."""
    bounds = np.log(np.array(BUCKETS))[None, :]
    cdf = norm.cdf((bounds - np.log(medians)[:, None]) / sigmas[:, None])
    probabilities = np.diff(np.concatenate([np.zeros((len(requests), 1)), cdf, np.ones((len(requests), 1))], axis=1), axis=1)
    probabilities = np.clip(probabilities, 0, None)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return rng.multinomial(requests, probabilities).astype(np.int64)
