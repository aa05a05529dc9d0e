"""The HTTP API for pipelines: a thin FastAPI shell over releasehealth.evaluate and the history store.

    GET  /api/v1/services                                          every service, its team, its latest stored verdict
    GET  /api/v1/services/{service}/releases/{version}/verdict     evaluate (answers cached TTL_SECONDS), save, answer
    GET  /api/v1/services/{service}/releases/{version}/gate        the same, spending alpha across polls; 200 for a final PROMOTE, 412 otherwise
    POST /api/v1/services/{service}/releases/{version}/gate        the same, for Flagger (its webhooks POST)
    POST /api/v1/deploys                                           record a deploy (bearer token from api.token_env)
    GET  /metrics                                                  the latest stored verdicts, Prometheus text format
    GET  /healthz                                                  whether the history store answers

Our exceptions become HTTP answers in one place (`ERROR_STATUS`, `_error`): unknown service or version
404, a source or the store failing 503, anything else 500 with a message and never a traceback.
An Argo Rollouts web metric reads the verdict (`successCondition: result.action == "PROMOTE" && result.final`);
a Flagger webhook calls the gate, which passes only a PROMOTE made on the whole window (`gate.is_final`).
The gate is polled, like `release-health gate` re-checks: it spends alpha across its checks the same way
(policy.check_interval, or one check per cache lifetime), so polling does not inflate false rollbacks.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from releasehealth import __version__
from releasehealth.errors import (
    ConfigError,
    NotFoundError,
    ReleaseHealthError,
    SourceError,
)
from releasehealth.evaluate import evaluate_release
from releasehealth.exposition import EXPOSITION, exposition
from releasehealth.gate import gated_policy, is_final
from releasehealth.model import Action, Classification, Deploy, DeploySourceKind
from releasehealth.serialize import evaluation_to_dict
from releasehealth.store import StoredEvaluation, StoreError
from releasehealth.verdicts import Evaluation
from releasehealth.wiring import Wiring

log = logging.getLogger(__name__)

TTL_SECONDS = 60.0  # like the dashboard's cache: pipelines polling a verdict re-query the sources once a minute
# The gate evaluates a release at most once per cached answer: that is its check interval for spending alpha
# (when the policy sets none); polls further apart spend less than they could, never more.
GATE_INTERVAL = timedelta(seconds=TTL_SECONDS)
# Evaluations running at once (in worker threads); more wait. Keeps threads free for the cheap endpoints
# and the sources from a burst of queries when many pipelines poll new releases together.
EVALUATIONS_AT_ONCE = 4
# A version may hold a "/" (feature/login-2, a branch name), sent as %2F: the path convertor keeps it whole.
RELEASE = "/api/v1/services/{service}/releases/{version:path}"
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFoundError, 404),
    (SourceError, 503),
    (StoreError, 503),
    (ReleaseHealthError, 500),  # ConfigError, TemplateError: the operator's configuration must change
)
# Label values (a version, a commit) are untrusted: printable text only, at most what the store keeps.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=PRINTABLE)]
ServicePath = Annotated[str, Path(min_length=1, max_length=255)]
VersionPath = Annotated[str, Path(min_length=1, max_length=255)]
BEARER = HTTPBearer(
    auto_error=False, description="The token in the environment variable api.token_env names (RELEASE_HEALTH_API_TOKEN)."
)


class UnknownService(NotFoundError):
    """An unknown service, with the names of the known ones (for the 404 body)."""

    def __init__(self, message: str, known: list[str]) -> None:
        self.known = known
        super().__init__(message)


# ---- the wire format ----------------------------------------------------------------------------------


class Problem(BaseModel):
    detail: str
    known: list[str] | None = Field(None, description="The known services, when the service asked for is not one.")


class LatestVerdict(BaseModel):
    version: str
    action: Action
    score: float | None
    evaluated_at: datetime


class ServiceSummary(BaseModel):
    name: str
    team: str
    latest: LatestVerdict | None = Field(description="The newest stored verdict of the service; null if none.")


class ServiceList(BaseModel):
    services: list[ServiceSummary]


class Verdict(BaseModel):
    service: str
    version: str
    baseline: str = Field(description='The baseline version, or "(none)".')
    action: Action
    final: bool = Field(
        description="True for a ROLLBACK, and for a PROMOTE once the candidate was watched for the whole window: "
        "the gate passes only a final PROMOTE."
    )
    score: float | None
    reason: str
    reasons: list[str] = Field(description="One per failing or unjudged metric.")
    evaluated_at: datetime
    evaluation: dict[str, Any] = Field(description="The whole evaluation: windows, verdicts, queries, logs.")


def _utc(at: datetime | None) -> datetime | None:
    """A naive time is UTC (as on the command line); an aware one is converted to UTC."""
    if at is None:
        return None
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range once converted to UTC") from exc


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Name
    version: Label
    commit: Annotated[str, StringConstraints(max_length=255, pattern=PRINTABLE)] = ""
    deployed_at: Annotated[datetime | None, AfterValidator(_utc)] = Field(
        None, description="When it was deployed (default: now); a time without an offset is UTC."
    )


class DeployOut(BaseModel):
    service: str
    version: str
    commit: str
    deployed_at: datetime
    source: DeploySourceKind


class Health(BaseModel):
    status: str
    store: str
    detail: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown service (the known ones are listed) or version (the seen ones are)."},
    503: {"model": Problem, "description": "A source or the history store is unavailable."},
}


# ---- verdicts, cached -------------------------------------------------------------------------------


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
        score=_finite(score.score if score else None), reason=r.reason,
        reasons=[v.reason for v in (score.verdicts if score else ()) if v.classification is not Classification.PASS],
        evaluated_at=evaluation.evaluated_at, evaluation=evaluation_to_dict(evaluation),
    )
    return Answer(r.action, final, verdict.model_dump_json().encode())


class VerdictCache:
    """Answers per (service, version) for `ttl` seconds; concurrent misses of one key share one evaluation.

    Used from the event loop only, so its dicts need no lock; the evaluation itself runs in a worker
    thread, as an independent task, so a client that hangs up does not cancel it for the others waiting.
    """

    def __init__(
        self, ttl: float = TTL_SECONDS, at_once: int = EVALUATIONS_AT_ONCE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._limiter = anyio.CapacityLimiter(at_once)
        self._answers: dict[tuple[str, str, bool], tuple[float, Answer]] = {}
        self._pending: dict[tuple[str, str, bool], asyncio.Future[Answer]] = {}

    async def get(self, key: tuple[str, str, bool], compute: Callable[[], Answer]) -> Answer:
        hit = self._answers.get(key)
        if hit is not None and hit[0] > self._clock():
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

    def _settle(self, key: tuple[str, str, bool], task: asyncio.Future[Answer]) -> None:
        if self._pending.get(key) is not task:
            return  # forgotten while it ran: its answer may predate the change
        del self._pending[key]
        if task.cancelled() or task.exception() is not None:
            return  # errors are not cached: the next poll tries again
        now = self._clock()
        self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
        self._answers[key] = (now + self.ttl, task.result())


# ---- the application --------------------------------------------------------------------------------


def create_app(wired: Wiring, environ: Mapping[str, str] | None = None) -> FastAPI:
    """The API over a wiring whose store is open. The deploy token is read now from the environment
    variable the catalogue's api.token_env names (of `environ`, default os.environ)."""
    catalogue, sources = wired.catalogue, wired.sources
    store = sources.store
    if store is None:
        raise ConfigError(catalogue.path, ["the API needs the history store (store.url)"])
    variable = catalogue.api.token_env
    token = (os.environ if environ is None else environ).get(variable) or None
    if token is None:
        log.warning("POST /api/v1/deploys refuses every request: set the environment variable %s to a token", variable)
    app = FastAPI(
        title="release-health",
        version=__version__,
        description="Verdicts on each release of each microservice, for CD pipelines (Argo Rollouts, Flagger, Jenkins).",
    )
    app.add_exception_handler(ReleaseHealthError, _error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _unexpected)
    answers = VerdictCache()
    authorised = _bearer(token, variable)

    def known(name: str) -> None:
        try:
            catalogue.service(name)
        except NotFoundError as exc:
            raise UnknownService(str(exc), [s.name for s in catalogue.services]) from None

    gate_policy = gated_policy(catalogue.policy, GATE_INTERVAL)

    def judge(service: str, version: str, gated: bool) -> Answer:
        policy = gate_policy if gated else catalogue.policy
        evaluation = evaluate_release(sources, catalogue.service(service), policy, version)
        store.save_evaluation(evaluation)
        return answer(evaluation, policy.window)

    async def verdict_of(service: str, version: str, gated: bool = False) -> Answer:
        known(service)
        return await answers.get((service, version, gated), lambda: judge(service, version, gated))

    @app.get("/api/v1/services", response_model=ServiceList, responses={503: ERRORS[503]})
    def list_services() -> ServiceList:
        """Every configured service with its team and its newest stored verdict."""
        latest = {s.service: s for s in store.fleet()}
        return ServiceList(services=[_summary(s.name, s.team, latest.get(s.name)) for s in catalogue.services])

    @app.get(RELEASE + "/verdict", response_model=Verdict, responses=ERRORS)
    async def verdict(service: ServicePath, version: VersionPath) -> Response:
        """Judge a release against its baseline and save the evaluation; answers are cached for a minute."""
        return Response((await verdict_of(service, version)).body, media_type="application/json")

    gate_responses = {412: {"model": Verdict, "description": "Not (yet) a final PROMOTE: halt."}, **ERRORS}

    @app.get(RELEASE + "/gate", response_model=Verdict, responses=gate_responses)
    @app.post(RELEASE + "/gate", response_model=Verdict, responses=gate_responses)
    async def gate(service: ServicePath, version: VersionPath) -> Response:
        """The verdict, with 200 only for a PROMOTE made on the whole window and 412 otherwise. POST is
        for Flagger, whose webhooks POST (the body they send is ignored)."""
        found = await verdict_of(service, version, gated=True)
        return Response(found.body, status_code=200 if found.passes else 412, media_type="application/json")

    @app.post(
        "/api/v1/deploys", status_code=201, response_model=DeployOut, dependencies=[Depends(authorised)],
        responses={
            400: {"model": Problem, "description": "The body is not JSON."},
            401: {"model": Problem, "description": "No valid bearer token."},
            **ERRORS,
        },
    )
    async def record_deploy(body: DeployIn) -> DeployOut:
        """Record a deploy a pipeline made (it wins over the one detected from the metrics)."""
        known(body.service)
        deploy = Deploy(
            body.service, body.version, body.deployed_at or datetime.now(UTC), DeploySourceKind.RECORDED, commit=body.commit
        )
        recorded = await run_in_threadpool(store.record_deploy, deploy)
        answers.forget(body.service)  # the new deploy moves the windows of the service's releases
        return DeployOut(
            service=recorded.service, version=recorded.version, commit=recorded.commit,
            deployed_at=recorded.started_at, source=recorded.source,
        )

    @app.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {EXPOSITION: {}}}, 503: ERRORS[503]})
    def metrics() -> PlainTextResponse:
        """The latest stored evaluation of each service in the Prometheus text exposition format."""
        return PlainTextResponse(exposition(store.fleet()), media_type=EXPOSITION)

    @app.get("/healthz", response_model=Health, response_model_exclude_none=True, responses={503: {"model": Health}})
    def healthz() -> Any:
        """200 when the history store answers a trivial read, 503 otherwise."""
        try:
            store.not_a_risk()
        except StoreError as exc:
            return JSONResponse(Health(status="unavailable", store=store.name, detail=str(exc)).model_dump(), 503)
        return Health(status="ok", store=store.name)

    return app


def serve(wired: Wiring, host: str, port: int) -> None:
    """Serve the API in this process until interrupted."""
    uvicorn.run(create_app(wired), host=host, port=port, workers=1)


# ---- helpers ------------------------------------------------------------------------------------------


def _bearer(token: str | None, variable: str) -> Callable[..., None]:
    """The dependency that lets a request through only with `Authorization: Bearer <token>`."""

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if token is None:
            raise _unauthorised(f"recording deploys is disabled: set the environment variable {variable}, restart the API")
        if credentials is None or not hmac.compare_digest(_bytes(credentials.credentials), _bytes(token)):
            raise _unauthorised("a valid token is required: Authorization: Bearer <token>")

    return authorised


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _bytes(text: str) -> bytes:
    # surrogateescape: os.environ keeps undecodable bytes as surrogates; they compare as the bytes they were.
    return text.encode("utf-8", "surrogateescape")


def _summary(name: str, team: str, stored: StoredEvaluation | None) -> ServiceSummary:
    latest = None
    if stored is not None:
        latest = LatestVerdict(
            version=stored.version, action=stored.action, score=_finite(stored.score), evaluated_at=stored.evaluated_at
        )
    return ServiceSummary(name=name, team=team, latest=latest)


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return value if value is not None and math.isfinite(value) else None


async def _error(request: Request, exc: Exception) -> JSONResponse:
    """Our exceptions as HTTP answers: the status from ERROR_STATUS, the message, never a traceback."""
    status = next(code for kind, code in ERROR_STATUS if isinstance(exc, kind))
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    body = Problem(detail=str(exc), known=getattr(exc, "known", None)).model_dump(exclude_none=True)
    return JSONResponse(body, status)


async def _invalid(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 body, written in ASCII: the input it echoes may hold a lone surrogate (a JSON string
    may escape one), which UTF-8 cannot encode."""
    errors = jsonable_encoder(exc.errors()) if isinstance(exc, RequestValidationError) else [str(exc)]
    return Response(json.dumps({"detail": errors}, ensure_ascii=True), 422, media_type="application/json")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: a message, never the traceback (uvicorn logs it)."""
    return JSONResponse({"detail": "internal error (see the API's log)"}, 500)

