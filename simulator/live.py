"""The simulated fleet, live: /metrics for Prometheus to scrape, ECS logs shipped to Elasticsearch.

Each service serves traffic in real time (or `speed` times faster) with the per-request models of
`fleet.py` (Poisson requests, a 5xx probability that wanders, lognormal latency counted into BUCKETS,
CPU per request, a resident-memory gauge that refills after a restart) and logs as `logs.py` does.
A schedule deploys new versions at offsets from the start: the new version's series appear with counters
at zero and the old version's disappear (its process is gone), and a deploy event is logged.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from releasehealth.simulator import fleet as model
from releasehealth.simulator import logs as logmodel
from releasehealth.simulator.fleet import (
    BUCKETS,
    SERVICE_NAMES,
    ReleaseLabel,
    SimulatedRelease,
)

# The demo schedule (offsets in simulated time): good releases first, then faults a reviewer can watch.
# Far enough apart for 5-minute windows (deploy/release-health.yaml) to judge each against the one before.
DEFAULT_SCHEDULE = (
    "user-service@10m:good",
    "order-service@12m:good",
    "payment-service@16m:new_exception",
    "user-service@20m:error_ratio:5",
    "order-service@24m:latency:1.5",
)
CODES = ("200", "404", "500")  # success, client error, server error
LIVE_PORT = 19100  # of /metrics: off node_exporter's 9100, which many hosts run
TICK_SECONDS = 0.25  # real seconds between traffic updates
LIVE_RPS = (30.0, 80.0)  # requests per simulated second: enough for a one-minute window to be judged


@dataclass(frozen=True)
class ScheduledRelease:
    """A release of `service` deployed `offset` (simulated time) after the start."""

    service: str
    offset: timedelta
    label: ReleaseLabel
    factor: float = 1.0


def parse_schedule(specs: Iterable[str]) -> tuple[ScheduledRelease, ...]:
    """Parse `SERVICE@OFFSET:LABEL[:FACTOR]` entries (e.g. `user-service@90s:error_ratio:5`), sorted by
    offset; raises ValueError naming every bad entry. A fault without a factor takes the demo's size."""
    from releasehealth.config import parse_option_duration

    out, problems = [], []
    for spec in specs:
        try:
            service, rest = spec.split("@", 1)
            offset, label, *factor = rest.split(":")
            kind = ReleaseLabel(label)
            if kind is ReleaseLabel.INITIAL or len(factor) > 1:
                raise ValueError(spec)
            size = float(factor[0]) if factor else model.DEFAULT_FACTORS.get(kind, 1.0)
            out.append(ScheduledRelease(service, parse_option_duration(offset, "schedule"), kind, size))
        except Exception:  # noqa: BLE001 - every malformed entry is reported together
            problems.append(spec)
    if problems:
        labels = ", ".join(label.value for label in ReleaseLabel if label is not ReleaseLabel.INITIAL)
        raise ValueError(f"bad schedule entries {problems}: expected SERVICE@OFFSET:LABEL[:FACTOR], labels: {labels}")
    return tuple(sorted(out, key=lambda r: r.offset))


def prometheus_config(target: str, interval: str = "5s", job: str = "release-health-simulator") -> str:
    """A prometheus.yml scraping the live simulator at `target` (host:port)."""
    return (
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        f"  - job_name: {job}\n"
        f"    scrape_interval: {interval}\n"
        "    honor_labels: true\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )


@dataclass
class _Counters:
    """One running version's counters since its process started."""

    requests: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(CODES, 0))
    buckets: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(BUCKETS) + 1, dtype=np.int64))
    latency_sum: float = 0.0
    cpu_seconds: float = 0.0
    memory: float = 0.0


class LiveService:
    """One service: its planned releases, the one serving now, and its counters."""

    def __init__(self, position: int, name: str, start: float, speed: float, plan: Sequence[ScheduledRelease], seed: int):
        self.name = name
        self.rng = np.random.default_rng([seed, position, 4])
        self.base_rps = float(np.round(self.rng.uniform(*LIVE_RPS), 1))
        self.idle_cores = float(self.rng.uniform(*model.IDLE_CORES))
        self.releases = self._plan(start, speed, plan)
        self.fault_lines = _fault_lines(name, self.releases)
        self.current = 0
        self.counters = _Counters()

    def _plan(self, start: float, speed: float, plan: Sequence[ScheduledRelease]) -> list[SimulatedRelease]:
        """The initial release and one per scheduled entry, with the fleet's healthy values and faults."""
        rng = self.rng
        major, minor = int(rng.integers(1, 4)), int(rng.integers(0, 20))
        error, median, sigma = float(rng.uniform(0.002, 0.01)), float(rng.uniform(0.04, 0.15)), float(rng.uniform(0.4, 0.6))
        at = datetime.fromtimestamp(start, UTC)
        releases = [SimulatedRelease(f"{major}.{minor}.0", at, ReleaseLabel.INITIAL, 1.0, error, median, sigma, model._commit(rng))]
        for i, entry in enumerate(plan, start=1):
            e, m = model._release_values(rng, entry.label, entry.factor, releases[-1], error, median)
            deployed = datetime.fromtimestamp(start + entry.offset.total_seconds() / speed, UTC)
            traffic = entry.factor if entry.label is ReleaseLabel.TRAFFIC_DROP else 1.0
            releases.append(
                SimulatedRelease(f"{major}.{minor}.{i}", deployed, entry.label, entry.factor, e, m, sigma, model._commit(rng), traffic=traffic)
            )
        return model._with_resources(rng, releases)

    @property
    def release(self) -> SimulatedRelease:
        return self.releases[self.current]

    def due(self, now: float) -> SimulatedRelease | None:
        """The next release if its deploy time has come."""
        upcoming = self.releases[self.current + 1:self.current + 2]
        return upcoming[0] if upcoming and upcoming[0].deployed_at.timestamp() <= now else None

    def deploy(self, now: float) -> dict:
        """Switch to the next release at `now` (a fresh process: counters at zero); return its deploy event."""
        self.current += 1
        self.counters = _Counters()
        r = self.release
        return {
            "@timestamp": _iso(now),
            "service": {"name": self.name, "version": r.version},
            "commit": r.commit,
        }

    def advance(self, now: float, real_seconds: float, speed: float) -> list[dict]:
        """Serve `real_seconds` of traffic ending at `now`; return the log documents it wrote."""
        r, rng, c = self.release, self.rng, self.counters
        simulated = real_seconds * speed
        requests = int(rng.poisson(self.base_rps * r.traffic * simulated * rng.lognormal(0, 0.1)))
        p_error = min(1.0, r.error_ratio * float(rng.lognormal(-0.045, 0.3)))
        errors = int(rng.binomial(requests, p_error))
        client = int(rng.binomial(requests - errors, 0.01))
        median = r.latency_median * float(rng.lognormal(0, 0.05))
        c.requests["200"] += requests - errors - client
        c.requests["404"] += client
        c.requests["500"] += errors
        c.buckets += model._bucket_counts(
            rng, np.array([requests]), np.array([median]), np.array([r.latency_sigma]), np.zeros(1), np.ones(1)
        )[0]
        c.latency_sum += requests * median * float(np.exp(r.latency_sigma**2 / 2))
        c.cpu_seconds += (self.idle_cores * simulated + r.cpu_per_request * requests) * float(rng.lognormal(0, model.CPU_NOISE))
        c.memory = self._memory(now, speed)
        return self._logs(now, real_seconds, requests, errors)

    def _memory(self, now: float, speed: float) -> float:
        """Resident bytes: the release's level, refilling after the restart, growing if it leaks."""
        r = self.release
        age = (now - r.deployed_at.timestamp()) * speed
        warm = 1 - model.WARM_DEFICIT * np.exp(-age / model.WARM_SECONDS)
        noise = 1 + self.rng.normal(0, model.MEMORY_NOISE)
        return float(round(r.memory_bytes * warm * (1 + r.leak_per_hour * age / 3600) * noise))

    def _logs(self, now: float, seconds: float, requests: int, errors: int) -> list[dict]:
        """This interval's lines, drawn as `logs.py` draws them per scrape interval."""
        rng = self.rng
        counts: list[tuple[logmodel.LogTemplate, int]] = []
        weights = np.array([t.weight for t in logmodel.ERRORS])
        logged = int(rng.binomial(errors, logmodel.LOGGED_5XX_SHARE))
        counts += zip(logmodel.ERRORS, rng.multinomial(logged, weights / weights.sum()).tolist(), strict=True)
        for group, rate in ((logmodel.WARNINGS, logmodel.WARN_PER_REQUEST), (logmodel.INFOS, logmodel.INFO_PER_REQUEST)):
            shares = np.array([t.weight for t in group]) / sum(t.weight for t in group)
            counts += [(t, int(rng.poisson(requests * rate * s))) for t, s in zip(group, shares, strict=True)]
        fault = self.fault_lines[self.current]
        if fault is not None:
            counts.append((fault[0], int(rng.poisson(requests * fault[1]))))
        return [doc for template, n in counts if n for doc in self._documents(template, n, now - seconds, seconds)]

    def _documents(self, template: logmodel.LogTemplate, count: int, start: float, seconds: float) -> Iterator[dict]:
        version = self.release.version
        times = np.sort(start + self.rng.uniform(0, seconds, count))
        traces = self.rng.integers(0, 2**63, size=(count, 2), dtype=np.int64).tolist()
        for at, message, (a, b) in zip(times.tolist(), logmodel._messages(self.rng, template.text, count), traces, strict=True):
            doc = {
                "@timestamp": _iso(at),
                "service": {"name": self.name, "version": version},
                "log": {"level": template.level},
                "message": message,
                "trace": {"id": f"{a:016x}{b:016x}"},
            }
            if template.error_type:
                doc["error"] = {"type": template.error_type, "message": message}
            yield doc


def _fault_lines(name: str, releases: Sequence[SimulatedRelease]) -> list[tuple[logmodel.LogTemplate, float] | None]:
    """Per release, its log fault as (template, lines per request), or None: the rates of
    `logs._fault_lines` (a burst is `factor` times the replaced release's timeout rate)."""
    weights = [t.weight for t in logmodel.ERRORS]
    timeouts_per_error = logmodel.LOGGED_5XX_SHARE * weights[0] / sum(weights)
    out: list[tuple[logmodel.LogTemplate, float] | None] = []
    timeout_rate = 0.0
    for index, release in enumerate(releases):
        own = release.error_ratio * timeouts_per_error
        fault = None
        if release.label is ReleaseLabel.NEW_EXCEPTION:
            fault = (logmodel.NEW_EXCEPTIONS[(sum(map(ord, name)) + index) % len(logmodel.NEW_EXCEPTIONS)], logmodel.NEW_EXCEPTION_PER_REQUEST)
        elif release.label is ReleaseLabel.ERROR_LOG_BURST:
            fault = (logmodel.BURST, max(0.0, release.factor * timeout_rate - own))
        timeout_rate = own + (fault[1] if fault and fault[0] is logmodel.BURST else 0.0)
        out.append(fault)
    return out


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _FleetCollector(Collector):
    """Exposes every service's running version, labelled {service, version}."""

    def __init__(self, live: LiveFleet):
        self.live = live

    def collect(self) -> Iterator:
        labels = ["service", "version"]
        requests = CounterMetricFamily("http_requests", "HTTP requests by status code.", labels=[*labels, "code"])
        latency = HistogramMetricFamily("http_request_duration_seconds", "HTTP request latency.", labels=labels)
        cpu = CounterMetricFamily("process_cpu_seconds", "CPU seconds used by the process.", labels=labels)
        memory = GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of the process.", labels=labels)
        with self.live.lock:
            for s in self.live.services:
                key, c = [s.name, s.release.version], s.counters
                for code, value in c.requests.items():
                    requests.add_metric([*key, code], value)
                cumulative = np.cumsum(c.buckets).tolist()
                bounds = [*(f"{b:g}" for b in BUCKETS), "+Inf"]
                latency.add_metric(key, list(zip(bounds, cumulative, strict=True)), c.latency_sum)
                cpu.add_metric(key, c.cpu_seconds)
                memory.add_metric(key, c.memory)
        yield from (requests, latency, cpu, memory)


class LiveFleet:
    """The services, advanced by a background thread; documents wait in `pending` for the shipper."""

    def __init__(self, services: int = 3, schedule: Sequence[ScheduledRelease] = (), speed: float = 1.0, seed: int = 7):
        if not 1 <= services <= len(SERVICE_NAMES):
            raise ValueError(f"services must be between 1 and {len(SERVICE_NAMES)}")
        names = SERVICE_NAMES[:services]
        unknown = sorted({r.service for r in schedule} - set(names))
        if unknown:
            raise ValueError(f"schedule names services not simulated: {unknown} (simulated: {', '.join(names)})")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed, self.start = speed, time.time()
        self.services = [
            LiveService(i, n, self.start, speed, [r for r in schedule if r.service == n], seed) for i, n in enumerate(names)
        ]
        self.lock = threading.Lock()
        self.pending: list[tuple[str, dict]] = []  # (index, document)
        self.last = self.start

    def tick(self, now: float | None = None) -> None:
        """Deploy what is due, then serve the traffic since the last tick."""
        now = time.time() if now is None else now
        with self.lock:
            elapsed, self.last = max(0.0, now - self.last), now
            for s in self.services:
                if s.due(now) is not None:
                    self.pending.append(("deploys", s.deploy(now)))
                index = logmodel.index_name(s.name)
                self.pending += [(index, d) for d in s.advance(now, elapsed, self.speed)]

    def take(self) -> list[tuple[str, dict]]:
        with self.lock:
            out, self.pending = self.pending, []
        return out

    def schedule(self) -> list[tuple[str, SimulatedRelease]]:
        """Every release after the initial ones, by deploy time."""
        return sorted(((s.name, r) for s in self.services for r in s.releases[1:]), key=lambda x: x[1].deployed_at)


class LogShipper:
    """Bulk-indexes the fleet's pending documents into Elasticsearch, creating the indices with the
    simulator's ECS mappings first. A failed bulk keeps its documents for the next attempt."""

    MAX_PENDING = 200_000

    def __init__(self, url: str, live: LiveFleet, api_key: str | None = None):
        from elasticsearch import Elasticsearch

        self.client = Elasticsearch(url, api_key=api_key, request_timeout=30)
        self.live = live
        self.backlog: list[tuple[str, dict]] = []  # (index, document)
        self.ready = False

    def _create_indices(self) -> None:
        wanted = [(logmodel.index_name(s.name), logmodel.INDEX_MAPPINGS) for s in self.live.services]
        for index, mappings in [*wanted, ("deploys", logmodel.DEPLOY_MAPPINGS)]:
            if not self.client.indices.exists(index=index):
                self.client.indices.create(index=index, mappings=mappings)
        self.ready = True

    def ship(self) -> int:
        """Send what is pending; return how many documents were indexed."""
        self.backlog = (self.backlog + self.live.take())[-self.MAX_PENDING:]
        if not self.backlog:
            return 0
        if not self.ready:
            self._create_indices()
        body = "".join(a for index, doc in self.backlog for a in logmodel.bulk_lines(index, iter([doc])))
        # The client sends a str as the NDJSON body itself; its annotation names only a sequence of mappings.
        result = self.client.bulk(operations=body, refresh=True)  # type: ignore[arg-type]
        if result.get("errors"):
            raise RuntimeError(f"bulk indexing failed: {str(result['items'][:2])[:300]}")
        sent, self.backlog = len(self.backlog), []
        return sent


class LiveSimulator:
    """The running simulator: the /metrics server, the traffic thread and the log shipper thread."""

    def __init__(
        self, live: LiveFleet, port: int = LIVE_PORT, host: str = "0.0.0.0", elasticsearch: str | None = None,
        ship_every: float = 2.0, api_key: str | None = None,
    ):
        self.live, self.port, self.host, self.ship_every = live, port, host, ship_every
        self.shipper = LogShipper(elasticsearch, live, api_key) if elasticsearch else None
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.server: WSGIServer | None = None

    def start(self) -> LiveSimulator:
        registry = CollectorRegistry()
        registry.register(_FleetCollector(self.live))
        self.server, _ = start_http_server(self.port, self.host, registry=registry)
        self.port = self.server.server_port
        self.threads = [threading.Thread(target=self._run_traffic, daemon=True)]
        if self.shipper:
            self.threads.append(threading.Thread(target=self._run_shipper, daemon=True))
        for thread in self.threads:
            thread.start()
        return self

    def _run_traffic(self) -> None:
        while not self.stopping.wait(TICK_SECONDS):
            self.live.tick()

    def _run_shipper(self) -> None:
        assert self.shipper is not None  # the thread is started only with a shipper (see start)
        while not self.stopping.wait(self.ship_every):
            try:
                self.shipper.ship()
            except Exception as exc:  # noqa: BLE001 - Elasticsearch may come up later: keep the logs, retry
                print(f"log shipping failed, will retry: {exc}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)
        if self.shipper:
            try:
                self.shipper.ship()
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                print(f"could not ship the last logs: {exc}", file=sys.stderr, flush=True)
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def wait(self) -> None:
        """Block until interrupted (Ctrl-C or SIGTERM raising KeyboardInterrupt/SystemExit)."""
        try:
            while not self.stopping.wait(1.0):
                pass
        finally:
            self.stop()


def default_schedule(services: int) -> tuple[ScheduledRelease, ...]:
    """The demo schedule, restricted to the first `services` services."""
    names = set(SERVICE_NAMES[:services])
    return tuple(r for r in parse_schedule(DEFAULT_SCHEDULE) if r.service in names)


def serve(
    port: int = LIVE_PORT, host: str = "0.0.0.0", services: int = 3, seed: int = 7, speed: float = 1.0,
    schedule: Sequence[str] = (), elasticsearch: str | None = None, api_key: str | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Run the live simulator until interrupted; raises ConfigError for a bad schedule or option."""
    from releasehealth.errors import ConfigError

    try:
        plan = parse_schedule(schedule) if schedule else default_schedule(services)
        live = LiveFleet(services, plan, speed, seed)
    except ValueError as exc:
        raise ConfigError("simulate --serve", [str(exc)]) from exc
    simulator = LiveSimulator(live, port, host, elasticsearch, api_key=api_key).start()
    shown = "localhost" if host in ("0.0.0.0", "") else host
    say(f"serving /metrics of {services} services on http://{shown}:{simulator.port}/metrics (speed x{speed:g})")
    say(f"logs: {'shipped to ' + elasticsearch if elasticsearch else 'not shipped (no --elasticsearch)'}")
    for name, release in live.schedule():
        say(f"  {release.deployed_at:%H:%M:%S} UTC  {name} {release.version}  {release.label.value} {release.fault_size}".rstrip())
    simulator.wait()
