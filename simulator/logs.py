"""Simulated ECS log documents for a fleet: volume follows traffic, faults are labelled.

Each service logs an ERROR for a quarter of its 5xx responses (the rest fail upstream of its code),
plus WARN and INFO lines at a rate per request. A NEW_EXCEPTION release also logs a handled exception
type never seen before (the responses still succeed, so the metrics stay healthy); an ERROR_LOG_BURST
release logs its known timeout error `factor` times as often per request as the release it replaces
(retries hide it from the 5xx ratio).

Each service also calls the next one in the fleet, and logs a WARN naming it ("Upstream search-service
answered HTTP 503 ...; failing over") for a share of the callee's 5xx: the callee's blast radius, as its
callers' logs show it (a warn line: it never fails the caller's own release).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import string
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from releasehealth.queries import elasticsearch as dsl
from releasehealth.simulator.fleet import Fleet, ReleaseLabel, SimulatedService

LEVELS = ("error", "warn", "info")
LOGGED_5XX_SHARE = 0.25
WARN_PER_REQUEST = 0.0004
INFO_PER_REQUEST = 0.0002
NEW_EXCEPTION_PER_REQUEST = 0.003
CALLER_SHARE = 0.05  # of the callee's 5xx that its caller logs, naming it (most retry quietly)
UPSTREAMS = ("inventory.prod.svc", "payments.prod.svc", "pricing.prod.svc", "users.prod.svc", "search.prod.svc")
TABLES = ("orders", "order_items", "users", "carts", "shipments")


@dataclass(frozen=True)
class LogTemplate:
    """A message pattern; `{name}` parts are filled with variable values by `_fill`."""

    key: str
    level: str
    error_type: str
    text: str
    weight: float = 1.0
    logger: str = ""  # the statement that logs it: ECS log.logger, log.origin.function, .file.name, .file.line
    function: str = ""
    file: str = ""
    line: int = 0

    @property
    def origin(self) -> str:
        return dsl.statement(self.logger, self.function, self.file, str(self.line) if self.line else "")

    def ecs_log(self) -> dict[str, object]:
        """The document's `log` object: its level and, when known, the statement's origin."""
        out: dict[str, object] = {"level": self.level}
        if self.logger:
            out["logger"] = self.logger
        if self.function or self.file:
            out["origin"] = {"function": self.function, "file": {"name": self.file, "line": self.line}}
        return out


ERRORS = (
    LogTemplate("timeout", "error", "TimeoutError", "Timeout after {ms}ms waiting for {upstream}:{port}{path}", 4),
    LogTemplate("refused", "error", "ConnectionRefusedError", "Connection refused: {ip}:5432 (pool {n}/{pool})", 2),
    LogTemplate("upstream", "error", "UpstreamUnavailable", "Upstream {upstream} returned HTTP 503 for request {uuid}", 3),
    LogTemplate(
        "decode", "error", "JSONDecodeError",
        "Failed to deserialize payload for order {uuid}: unexpected token at offset {n}", 1,
    ),
)
WARNINGS = (
    LogTemplate("slow_query", "warn", "", "Slow query took {ms} ms: SELECT * FROM {table} WHERE id = {n}", 4),
    LogTemplate("retry", "warn", "", "Retrying {upstream} call {uuid} (attempt {attempt}/3) after {dur}s", 3),
    LogTemplate("cache", "warn", "", "Cache hit ratio {pct}% below threshold for cache {table}", 2),
    # Log text is untrusted input: it must render inert wherever it is shown.
    LogTemplate(
        "rejected", "warn", "", "Rejected input <script>alert('{n}')</script> in field **comment** from {ip}", 1,
    ),
)
INFOS = (
    LogTemplate("request", "info", "", "GET {path} completed in {ms}ms status=200", 3, "http.access", "log", "access.py", 88),
    LogTemplate("flush", "info", "", "Flushed {n} metrics to collector at {ip}:9091 in {dur}s", 1, "metrics.push", "flush", "push.py", 41),
)
NEW_EXCEPTIONS = (
    LogTemplate(
        "npe", "error", "java.lang.NullPointerException",
        'NullPointerException: Cannot invoke "String.length()" because "coupon" is null at '
        "com.shop.checkout.CouponValidator.validate(CouponValidator.java:{line})",
    ),
    LogTemplate(
        "keyerror", "error", "KeyError",
        "KeyError: 'discount_code' while pricing cart {uuid} in /srv/app/pricing/rules.py line {line}",
    ),
    LogTemplate(
        "illegal_state", "error", "IllegalStateException",
        "IllegalStateException: reservation {uuid} already released for sku {n}",
    ),
    LogTemplate(
        "typeerror", "error", "TypeError",
        # Echoes user input: a new signature whose examples are hostile markup, to be shown inert.
        "TypeError: Cannot read properties of undefined (reading 'address') of input <script>alert('{n}')</script> "
        "in field **comment** at /app/dist/checkout.{hex}.js:{line}",
    ),
)
BURST = ERRORS[0]
CALLER = LogTemplate(
    "caller", "warn", "", "Upstream {callee} answered HTTP 503 for {path}; failing over", 1, "http.client", "call",
    "client.py", 131,
)
TEMPLATES = ERRORS + WARNINGS + INFOS + NEW_EXCEPTIONS + (CALLER,)
TEMPLATE_INDEX = {t.key: i for i, t in enumerate(TEMPLATES)}
LEVEL_OF_TEMPLATE = np.array([LEVELS.index(t.level) for t in TEMPLATES])


@dataclass(frozen=True, eq=False)
class ServiceLogs:
    """One service's log lines, as columns sorted by time."""

    service: str
    times: np.ndarray  # UNIX seconds, float64, millisecond resolution
    release: np.ndarray  # index into the service's releases
    template: np.ndarray  # index into TEMPLATES
    messages: tuple[str, ...]
    trace_ids: tuple[str, ...]
    _words: dict[int, frozenset[str]] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def levels(self) -> np.ndarray:
        """Each line's level, as an index into LEVELS."""
        return LEVEL_OF_TEMPLATE[self.template]

    @cached_property
    def trace_rank(self) -> np.ndarray:
        """Each line's place in the order of trace ids (the order Elasticsearch samples in), ties by line."""
        order = np.argsort(np.array(self.trace_ids), kind="stable")
        rank = np.empty(order.size, dtype=np.intp)
        rank[order] = np.arange(order.size)
        return rank

    def words_of(self, row: int) -> frozenset[str]:
        """The words of line `row`'s message as a match query sees them (kept: callers' queries of several
        services read the same lines)."""
        found = self._words.get(row)
        if found is None:
            found = self._words[row] = frozenset(words(self.messages[row]))
        return found

    def counts(self, release: int, start: float, end: float) -> dict[str, int]:
        """Lines per level of a release with start <= time < end: the ground truth of the collector."""
        mask = (self.release == release) & (self.times >= start) & (self.times < end)
        levels = self.levels[mask]
        return {level: int((levels == i).sum()) for i, level in enumerate(LEVELS)}


def words(text: str) -> list[str]:
    """The words of a text as a match query sees them: lowercase, split at non-word characters."""
    return [w for w in re.split(r"\W+", text.lower()) if w]


@dataclass(frozen=True, eq=False)
class FleetLogs:
    fleet: Fleet
    services: tuple[ServiceLogs, ...]

    def service(self, name: str) -> ServiceLogs:
        return next(s for s in self.services if s.service == name)

    @property
    def documents(self) -> int:
        return sum(s.times.size for s in self.services)

    def truth(self) -> dict:
        """Per release: its log fault and the template that carries it."""
        out = {}
        for service in self.fleet.services:
            for index, release in enumerate(service.releases):
                template = _fault_template(service, index)
                out[f"{service.name}@{release.version}"] = {
                    "label": release.label.value,
                    "template": template.text if template else None,
                    "error_type": template.error_type if template else None,
                }
        return out


def simulate_logs(fleet: Fleet) -> FleetLogs:
    """Return the log lines of every service of `fleet` (deterministic from the fleet's seed).

    The lines of the last few fleets are kept, by the fleet's content: formatting them is a second of
    Python for the demo's eight services, and the demo fleet is rebuilt with the same seed and end many
    times in a process (a dashboard rebuilding its demo, the tests). They are shared, so read-only."""
    key = hashlib.blake2b(pickle.dumps(fleet, protocol=pickle.HIGHEST_PROTOCOL)).digest()
    with _KEPT_LOCK:
        kept = _KEPT.get(key)
        if kept is not None:
            _KEPT.move_to_end(key)
            return FleetLogs(fleet, kept)
    built = tuple(_service_logs(fleet, i, s) for i, s in enumerate(fleet.services))
    for service in built:
        for column in (service.times, service.release, service.template):
            column.flags.writeable = False
    with _KEPT_LOCK:
        _KEPT[key] = built
        while len(_KEPT) > KEPT_FLEETS:
            _KEPT.popitem(last=False)
    return FleetLogs(fleet, built)


KEPT_FLEETS = 4
_KEPT: OrderedDict[bytes, tuple[ServiceLogs, ...]] = OrderedDict()
_KEPT_LOCK = threading.Lock()


def _fault_template(service: SimulatedService, release_index: int) -> LogTemplate | None:
    label = service.releases[release_index].label
    if label is ReleaseLabel.NEW_EXCEPTION:
        return NEW_EXCEPTIONS[(sum(map(ord, service.name)) + release_index) % len(NEW_EXCEPTIONS)]
    if label is ReleaseLabel.ERROR_LOG_BURST:
        return BURST
    return None


def _service_logs(fleet: Fleet, position: int, service: SimulatedService) -> ServiceLogs:
    rng = np.random.default_rng([fleet.seed, position, 1])
    requests = service.requests.astype(float)
    per_template: list[tuple[int, np.ndarray]] = []  # (template, lines per scrape)
    error_weights = np.array([t.weight for t in ERRORS])
    logged_errors = rng.binomial(service.errors, LOGGED_5XX_SHARE)
    for i, count in enumerate(_split(rng, logged_errors, error_weights / error_weights.sum())):
        per_template.append((TEMPLATE_INDEX[ERRORS[i].key], count))
    for group, rate in ((WARNINGS, WARN_PER_REQUEST), (INFOS, INFO_PER_REQUEST)):
        weights = np.array([t.weight for t in group])
        for template, share in zip(group, weights / weights.sum(), strict=True):
            per_template.append((TEMPLATE_INDEX[template.key], rng.poisson(requests * rate * share)))
    per_template += _fault_lines(rng, service, requests, LOGGED_5XX_SHARE * error_weights[0] / error_weights.sum())
    callee = fleet.services[(position + 1) % len(fleet.services)]
    if callee is not service:
        # A stream of its own, so the service's other lines stay as they were without callers.
        own = np.random.default_rng([fleet.seed, position, 2])
        per_template.append((TEMPLATE_INDEX[CALLER.key], own.poisson(callee.errors * CALLER_SHARE)))
        return _assemble(rng, service, per_template, float(fleet.scrape_interval.total_seconds()), (callee.name, own))
    return _assemble(rng, service, per_template, float(fleet.scrape_interval.total_seconds()))


def _split(rng: np.random.Generator, totals: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Multinomial split of each scrape's total over the templates: [template, scrape]."""
    return rng.multinomial(totals, shares).T


def _fault_lines(
    rng: np.random.Generator, service: SimulatedService, requests: np.ndarray, timeouts_per_error: float
) -> list[tuple[int, np.ndarray]]:
    out = []
    timeout_rate = 0.0  # timeout lines per request of the release before, bursts included
    for index, release in enumerate(service.releases):
        template = _fault_template(service, index)
        own_timeouts = release.error_ratio * timeouts_per_error
        per_request = 0.0
        if release.label is ReleaseLabel.NEW_EXCEPTION:
            per_request = NEW_EXCEPTION_PER_REQUEST
        elif release.label is ReleaseLabel.ERROR_LOG_BURST:
            # Timeouts at `factor` times the replaced release's rate: extra lines on top of its own.
            per_request = max(0.0, release.factor * timeout_rate - own_timeouts)
        timeout_rate = own_timeouts + (per_request if template is BURST else 0.0)
        if template is not None:
            serving = service.release_index == index
            out.append((TEMPLATE_INDEX[template.key], np.where(serving, rng.poisson(requests * per_request), 0)))
    return out


def _assemble(
    rng: np.random.Generator, service: SimulatedService, per_template: list[tuple[int, np.ndarray]], interval: float,
    callee: tuple[str, np.random.Generator] | None = None,
) -> ServiceLogs:
    """The lines of every (template, lines per scrape), spread over each scrape's interval; the caller
    template's messages name `callee` and draw from its own generator (the others' draws stay as they were)."""
    templates = np.concatenate([np.full(int(c.sum()), t) for t, c in per_template])
    scrape = np.concatenate([np.repeat(np.arange(c.size), c) for _, c in per_template])
    messages = [
        m for t, c in per_template
        for m in (
            _messages(callee[1], CALLER.text.replace("{callee}", callee[0]), int(c.sum()))
            if callee is not None and TEMPLATES[t] is CALLER else _messages(rng, TEMPLATES[t].text, int(c.sum()))
        )
    ]
    # A line of the interval ending at scrape i falls uniformly in (t_i - interval, t_i), to the millisecond.
    times = service.times[scrape] - interval + np.ceil(rng.uniform(0, interval, scrape.size) * 1000) / 1000
    times = np.minimum(times, service.times[scrape] - 0.001)
    order = np.argsort(times, kind="stable")
    trace_ids = rng.integers(0, 2**63, size=(templates.size, 2), dtype=np.int64)
    return ServiceLogs(
        service.name,
        times[order],
        service.release_index[scrape[order]],
        templates[order],
        tuple(messages[i] for i in order.tolist()),
        tuple(f"{a:016x}{b:016x}" for a, b in trace_ids.tolist()),
    )


def _messages(rng: np.random.Generator, text: str, count: int) -> list[str]:
    """`count` messages of one template, each variable part drawn independently."""
    # Sorted: a set's order follows PYTHONHASHSEED, and the draws must follow the seed alone.
    fields = sorted({name for _, name, _, _ in string.Formatter().parse(text) if name})
    columns = {name: _values(rng, name, count, text) for name in fields}
    return [text.format(**{name: column[i] for name, column in columns.items()}) for i in range(count)]


def _values(rng: np.random.Generator, name: str, count: int, text_key: str = "") -> list[str]:
    def pick(options: tuple) -> list[str]:
        return [str(options[i]) for i in rng.integers(len(options), size=count)]

    def ints(low: int, high: int) -> list[str]:
        return [str(x) for x in rng.integers(low, high, size=count).tolist()]

    if name == "upstream":
        return pick(UPSTREAMS)
    if name == "table":
        return pick(TABLES)
    if name == "port":
        return pick((80, 443, 8080, 9090))
    if name == "pool":
        return pick((20, 50, 100))
    if name == "ip":
        return [".".join(map(str, row)) for row in rng.integers(1, 255, size=(count, 4)).tolist()]
    if name == "path":
        return [f"/api/v1/items/{x}" for x in ints(1, 99_999)]
    if name == "uuid":
        return [_uuid(h) for h in rng.integers(0, 2**63, size=(count, 2), dtype=np.int64).tolist()]
    if name in ("dur", "pct"):
        low, high = (0.05, 9.5) if name == "dur" else (10.0, 60.0)
        return [f"{x:.{2 if name == 'dur' else 1}f}" for x in rng.uniform(low, high, count).tolist()]
    if name == "hex":
        return [f"{x:08x}" for x in rng.integers(0, 2**32, size=count).tolist()]
    if name == "line":  # a statement's source line: one per template, as a stack trace has
        return [str(20 + sum(map(ord, text_key)) % 880)] * count
    ranges = {"ms": (200, 30_000), "n": (1, 100_000), "attempt": (1, 4)}
    return ints(*ranges[name])


def _uuid(halves: list[int]) -> str:
    h = f"{halves[0]:016x}{halves[1]:016x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


# ---- ECS documents and bulk NDJSON ------------------------------------------------------------------

INDEX_MAPPINGS = {
    "properties": {
        "@timestamp": {"type": "date"},
        "service": {"properties": {"name": {"type": "keyword"}, "version": {"type": "keyword"}}},
        "log": {
            "properties": {
                "level": {"type": "keyword"},
                "logger": {"type": "keyword"},
                "origin": {
                    "properties": {
                        "function": {"type": "keyword"},
                        "file": {"properties": {"name": {"type": "keyword"}, "line": {"type": "long"}}},
                    }
                },
            }
        },
        "message": {"type": "text"},
        "error": {"properties": {"type": {"type": "keyword"}, "message": {"type": "text"}}},
        "trace": {"properties": {"id": {"type": "keyword"}}},
    }
}
DEPLOY_MAPPINGS = {
    "properties": {
        "@timestamp": {"type": "date"},
        "service": {"properties": {"name": {"type": "keyword"}, "version": {"type": "keyword"}}},
        "commit": {"type": "keyword"},
    }
}


def index_name(service: str) -> str:
    return f"logs-{service}"


def documents(logs: ServiceLogs, fleet: Fleet) -> Iterator[dict]:
    """The ECS documents of one service's lines."""
    releases = fleet.service(logs.service).releases
    for at, release, template, message, trace in zip(
        logs.times.tolist(), logs.release.tolist(), logs.template.tolist(), logs.messages, logs.trace_ids, strict=True
    ):
        t = TEMPLATES[template]
        doc = {
            "@timestamp": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "service": {"name": logs.service, "version": releases[release].version},
            "log": t.ecs_log(),
            "message": message,
            "trace": {"id": trace},
        }
        if t.error_type:
            doc["error"] = {"type": t.error_type, "message": message}
        yield doc


def deploy_documents(fleet: Fleet) -> Iterator[dict]:
    """One deploy event per release after the initial one (what a pipeline would record)."""
    for service in fleet.services:
        for release in service.releases[1:]:
            yield {
                "@timestamp": release.deployed_at.isoformat().replace("+00:00", "Z"),
                "service": {"name": service.name, "version": release.version},
                "commit": release.commit,
            }


def bulk_lines(index: str, docs: Iterator[dict]) -> Iterator[str]:
    action = json.dumps({"index": {"_index": index}})
    for doc in docs:
        yield action + "\n" + json.dumps(doc) + "\n"


def write_ndjson(logs: FleetLogs, folder: Path) -> Path:
    """Write every service's documents as one bulk NDJSON file (an index per service), the ground truth,
    and index templates with ECS keyword mappings for `logs-*` and `deploys`; return the NDJSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "logs.ndjson"
    with path.open("w", encoding="utf-8") as out:
        for service in logs.services:
            out.writelines(bulk_lines(index_name(service.service), documents(service, logs.fleet)))
        out.writelines(bulk_lines("deploys", deploy_documents(logs.fleet)))
    (folder / "logs-truth.json").write_text(json.dumps(logs.truth(), indent=2), encoding="utf-8")
    for name, pattern, mappings in (("logs", "logs-*", INDEX_MAPPINGS), ("deploys", "deploys", DEPLOY_MAPPINGS)):
        template = {"index_patterns": [pattern], "template": {"mappings": mappings}}
        (folder / f"{name}-template.json").write_text(json.dumps(template, indent=2), encoding="utf-8")
    return path
