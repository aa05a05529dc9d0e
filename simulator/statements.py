"""Statement-level logs of one service around a release: what the log findings are measured on.

A service here is a set of log statements, each a line of its code with its own logger, function, file and
line, its level and its text, logged at a rate per request. A window is 30 minutes of them at the
service's traffic, every count Poisson around its rate (the rate itself wandering a little per minute,
as a real workload does). A release pair is a baseline window and a candidate window of one of the
shapes below, labelled, so `benchmarks/logs.py` can count what the findings catch and what they flag:

- NORMAL: the same release in both windows, at a slightly different traffic (noise only);
- STATEMENT_STOPS: one steady INFO statement stops in the candidate and nothing else changes, as when a
  code exception makes a request path return early without logging an error;
- RENAMED: one or two INFO statements are reworded (new text, moved a few lines), at the same rate;
- CALLER_ERRORS: the service's own lines are unchanged, but its callers log errors naming it ("No
  instances available for ts-travel-service") as when it fails health checks or refuses connections.

In every shape the callers also log a background of lines naming the service (timeouts now and then),
and lines that only share its words ("ts-travel-service-v2", "travel service"), which are not its.

Messages carry values (ids, durations, counts) and some name their code location in the text
(`TravelServiceImpl#451`), as Java services do. Deterministic from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from releasehealth.model import LogLine
from releasehealth.queries import elasticsearch as dsl

MINUTES = 30
WANDER = 0.1  # the per-minute rate's relative wander (lognormal sigma)


class Shape(StrEnum):
    NORMAL = "normal"
    STATEMENT_STOPS = "statement_stops"
    RENAMED = "renamed"
    CALLER_ERRORS = "caller_errors"


SERVICE = "ts-travel-service"
# What the callers log about the service, per request of the service: (caller, level, text, rate).
CALLER_BACKGROUND = (
    ("ts-order-service", "error", "Timeout calling ts-travel-service after {ms} ms", 0.002),
    ("ts-preserve-service", "warn", "Slow answer from ts-travel-service: {ms} ms", 0.004),
    ("ts-order-service", "error", "ts-travel-service-v2 rejected trip {id}", 0.003),  # another service's name
    ("ts-route-service", "error", "No travel service plan for route {id}", 0.002),  # its words, not its name
)
CALLER_FAULT = (
    ("ts-preserve-service", "error", "No instances available for ts-travel-service", 0.02),
    ("ts-order-service", "error", "Connection refused: ts-travel-service:12346 after {ms} ms", 0.01),
)


@dataclass(frozen=True)
class Statement:
    """One log statement of the code: where it is, what it says, how often per request."""

    logger: str
    function: str
    file: str
    line: int
    level: str
    text: str  # "{n}" for a number, "{id}" for an id, "{ms}" for a duration
    per_request: float

    @property
    def origin(self) -> str:
        return dsl.statement(self.logger, self.function, self.file, str(self.line))


# A booking service's statements: steady INFO on every request path, rarer WARN and ERROR.
STATEMENTS = (
    Statement("ts.TravelServiceImpl", "queryInfo", "TravelServiceImpl.java", 451, "info", "TravelServiceImpl#451 query trips from {id} to {id}: {n} found", 0.30),
    Statement("ts.TravelServiceImpl", "queryInfo", "TravelServiceImpl.java", 457, "info", "TravelServiceImpl#457 trip {id} has {n} seats left", 0.25),
    Statement("ts.OrderServiceImpl", "create", "OrderServiceImpl.java", 120, "info", "Order {id} created for account {id}", 0.20),
    Statement("ts.OrderServiceImpl", "pay", "OrderServiceImpl.java", 188, "info", "Order {id} paid in {ms} ms", 0.18),
    Statement("ts.SeatServiceImpl", "distribute", "SeatServiceImpl.java", 64, "info", "Distributed seat {n} of coach {n} on train {id}", 0.15),
    Statement("ts.AuthFilter", "doFilter", "AuthFilter.java", 42, "info", "Authenticated user {id} with role USER", 0.40),
    Statement("ts.CacheManager", "refresh", "CacheManager.java", 77, "info", "Refreshed station cache: {n} entries in {ms} ms", 0.01),
    Statement("ts.HttpClient", "retry", "HttpClient.java", 210, "warn", "Retrying call to ts-price-service after {ms} ms (attempt {n})", 0.004),
    Statement("ts.OrderServiceImpl", "pay", "OrderServiceImpl.java", 201, "error", "Payment for order {id} declined by provider: code {n}", 0.001),
)
STEADY = [k for k, s in enumerate(STATEMENTS) if s.level == "info" and s.per_request >= 0.15]


@dataclass(frozen=True)
class ReleasePair:
    shape: Shape
    baseline: tuple[LogLine, ...]
    candidate: tuple[LogLine, ...]
    requests: tuple[float, float]  # requests in each window
    changed: tuple[tuple[str, str], ...]  # the statements the shape changed: (origin, text before its first value)
    callers: tuple[tuple[LogLine, ...], tuple[LogLine, ...]] = ((), ())  # other services' lines with its words


def release_pair(seed: int, shape: Shape, rps: float, with_origin: bool = True) -> ReleasePair:
    """A baseline and a candidate window of `shape` at about `rps` requests per second; `with_origin`: the
    documents name their statement (ECS log.logger, log.origin.*), otherwise the text alone tells."""
    rng = np.random.default_rng([seed, list(Shape).index(shape), 11])
    before = list(STATEMENTS)
    after = list(STATEMENTS)
    changed: list[tuple[str, str]] = []
    if shape is Shape.STATEMENT_STOPS:
        stopped = STEADY[int(rng.integers(len(STEADY)))]
        changed.append((after[stopped].origin, after[stopped].text.split("{")[0]))
        after[stopped] = replace(after[stopped], per_request=0.0)
    elif shape is Shape.RENAMED:
        for k in rng.choice(STEADY, size=int(rng.integers(1, 3)), replace=False).tolist():
            changed.append((after[k].origin, after[k].text.split("{")[0]))
            after[k] = replace(after[k], text=f"[v2] {after[k].text.replace(' ', ' now ', 1)}", line=after[k].line + 3)
    traffic = rps * 60 * rng.uniform(0.9, 1.1, size=2)
    baseline, b_requests = _window(rng, before, traffic[0], 0.0, with_origin)
    candidate, c_requests = _window(rng, after, traffic[1], 3600.0, with_origin)
    faults = CALLER_FAULT if shape is Shape.CALLER_ERRORS else ()
    callers = (_callers(rng, CALLER_BACKGROUND, b_requests, 0.0), _callers(rng, CALLER_BACKGROUND + faults, c_requests, 3600.0))
    changed += [(caller, text.split("{")[0]) for caller, _, text, _ in faults]
    return ReleasePair(shape, baseline, candidate, (b_requests, c_requests), tuple(changed), callers)


def _callers(
    rng: np.random.Generator, said: tuple[tuple[str, str, str, float], ...], requests: float, start: float
) -> tuple[LogLine, ...]:
    """The callers' lines in a window of `requests` requests to the service, spread over it."""
    lines = []
    for caller, level, text, rate in said:
        stamps = start + np.sort(rng.uniform(0, 60.0 * MINUTES, size=rng.poisson(requests * rate)))
        lines += [LogLine(float(t), level, _fill(rng, text), "", "", caller) for t in stamps.tolist()]
    return tuple(sorted(lines, key=lambda line: line.timestamp))


def _window(
    rng: np.random.Generator, statements: list[Statement], per_minute: float, start: float, with_origin: bool
) -> tuple[tuple[LogLine, ...], float]:
    """MINUTES minutes of the statements at `per_minute` requests a minute (each minute wandering)."""
    requests = per_minute * rng.lognormal(0.0, WANDER, size=MINUTES)
    lines: list[LogLine] = []
    for statement in statements:
        counts = rng.poisson(requests * statement.per_request)
        for minute, count in enumerate(counts.tolist()):
            stamps = start + 60.0 * minute + np.sort(rng.uniform(0, 60, size=count))
            origin = statement.origin if with_origin else ""
            lines += [LogLine(float(t), statement.level, _fill(rng, statement.text), "", origin) for t in stamps.tolist()]
    lines.sort(key=lambda line: line.timestamp)
    return tuple(lines), float(requests.sum())


def _fill(rng: np.random.Generator, text: str) -> str:
    out = text
    while "{id}" in out:
        out = out.replace("{id}", f"{int(rng.integers(10**7, 10**8)):x}", 1)
    while "{n}" in out:
        out = out.replace("{n}", str(int(rng.integers(1, 500))), 1)
    while "{ms}" in out:
        out = out.replace("{ms}", str(int(rng.integers(2, 900))), 1)
    return out


def sample(lines: tuple[LogLine, ...], size: int, rng: np.random.Generator) -> tuple[LogLine, ...]:
    """A uniform sample of at most `size` lines (as Elasticsearch's sort by a random trace id draws)."""
    if len(lines) <= size:
        return lines
    picked = np.sort(rng.choice(len(lines), size=size, replace=False))
    return tuple(lines[i] for i in picked.tolist())
