"""Verdicts cached for the API: one evaluation per release and cache lifetime however many ask, errors
cached as verdicts are, and each service's versions known without a query per unknown version asked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import anyio.to_thread

from releasehealth.api.wire import Verdict, finite
from releasehealth.errors import ReleaseHealthError
from releasehealth.gate import is_final
from releasehealth.model import Action, Classification
from releasehealth.serialize import evaluation_to_dict
from releasehealth.verdicts import Evaluation

TTL_SECONDS = 60.0  # like the dashboard's cache: pipelines polling a verdict re-query the sources once a minute
# Evaluations running at once (in worker threads); more wait. Keeps threads free for the cheap endpoints
# and the sources from a burst of queries when many pipelines poll new releases together.
EVALUATIONS_AT_ONCE = 4
Key = tuple[str, str, bool]  # service, version, gated


@dataclass(frozen=True)
class Answer:
    """A verdict ready to send: the action, whether it is final, and the JSON body."""

    action: Action
    final: bool
    body: bytes

    @property
    def passes(self) -> bool:
        return self.action is Action.PROMOTE and self.final


def answer(evaluation: Evaluation, window: timedelta) -> Answer:
    """The Verdict of an evaluation, serialized once (cached answers are sent as these bytes)."""
    r, score = evaluation.recommendation, evaluation.score
    final = is_final(evaluation, window)
    verdict = Verdict(
        service=evaluation.service, version=r.candidate, baseline=r.baseline, action=r.action, final=final,
        score=finite(score.score if score else None), reason=r.reason,
        reasons=[v.reason for v in (score.verdicts if score else ()) if v.classification is not Classification.PASS],
        evaluated_at=evaluation.evaluated_at, evaluation=evaluation_to_dict(evaluation),
    )
    return Answer(r.action, final, verdict.model_dump_json().encode())


class VerdictCache:
    """Answers per (service, version, gated) for `ttl` seconds; concurrent misses of one key share one
    evaluation. Our errors (an unknown version, a source down) are answers too, cached as long: a client
    polling one that fails costs the sources one attempt per `ttl`, not one per request.

    Used from the event loop only, so its dicts need no lock; the evaluation itself runs in a worker
    thread, as an independent task, so a client that hangs up does not cancel it for the others waiting.
    """

    def __init__(
        self, ttl: float = TTL_SECONDS, at_once: int = EVALUATIONS_AT_ONCE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._limiter = anyio.CapacityLimiter(at_once)
        self._answers: dict[Key, tuple[float, Answer | ReleaseHealthError]] = {}
        self._pending: dict[Key, asyncio.Future[Answer]] = {}

    async def get(self, key: Key, compute: Callable[[], Answer]) -> Answer:
        hit = self._answers.get(key)
        if hit is not None and hit[0] > self._clock():
            if isinstance(hit[1], ReleaseHealthError):
                raise hit[1]
            return hit[1]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(anyio.to_thread.run_sync(compute, limiter=self._limiter))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    def forget(self, service: str) -> None:
        """Drop a service's answers, and let an evaluation already running finish uncached."""
        self._answers = {k: v for k, v in self._answers.items() if k[0] != service}
        self._pending = {k: v for k, v in self._pending.items() if k[0] != service}

    def _settle(self, key: Key, task: asyncio.Future[Answer]) -> None:
        if self._pending.get(key) is not task:
            return  # forgotten while it ran: its answer may predate the change
        del self._pending[key]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not isinstance(error, ReleaseHealthError):
            return  # a bug is not an answer: the next request tries again
        now = self._clock()
        self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
        self._answers[key] = (now + self.ttl, error if isinstance(error, ReleaseHealthError) else task.result())


class Versions:
    """The versions each service was seen with, from one deploy scan per service at most every `refresh`
    seconds: asking for many versions that do not exist costs the sources one scan, not one per version."""

    def __init__(
        self, scan: Callable[[str], list[str]], refresh: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._scan = scan  # the versions of a service, oldest first
        self._refresh = refresh
        self._clock = clock
        self._seen: dict[str, tuple[float, list[str]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def known(self, service: str, version: str) -> bool:
        """Whether `service` has `version`; scans again only when the last scan is older than `refresh`
        (a version deployed a moment ago is found then). Questions arriving together about one service
        wait for one scan. Raises what the scan raises."""
        with self._guard:
            lock = self._locks.setdefault(service, threading.Lock())
        with lock:
            scanned = self._seen.get(service)
            if scanned is not None and (version in scanned[1] or self._clock() - scanned[0] < self._refresh):
                return version in scanned[1]
            versions = self._scan(service)
            self._seen[service] = (self._clock(), versions)
            return version in versions

    def forget(self, service: str) -> None:
        """Scan the service again at the next question (a deploy was recorded)."""
        self._seen.pop(service, None)

    def seen(self, service: str) -> list[str]:
        """The versions of `service` the last scan saw, oldest first."""
        return self._seen.get(service, (0.0, []))[1]
