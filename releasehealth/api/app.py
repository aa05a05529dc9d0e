"""The API's application: its routes over releasehealth.evaluate and the history store, and the one
place our exceptions become HTTP answers (`ERROR_STATUS`, `_error`)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from releasehealth import __version__
from releasehealth.api.answers import TTL_SECONDS, Answer, VerdictCache, Versions, answer
from releasehealth.api.guard import Guard, token_problem
from releasehealth.api.wire import (
    DeployIn,
    DeployOut,
    Health,
    LatestVerdict,
    Problem,
    ServiceList,
    ServiceSummary,
    Verdict,
    finite,
)
from releasehealth.deploys import deploys_of
from releasehealth.errors import ConfigError, NotFoundError, ReleaseHealthError, SourceError
from releasehealth.evaluate import evaluate_release
from releasehealth.exposition import EXPOSITION, exposition
from releasehealth.format import unknown_version_text
from releasehealth.gate import gated_policy
from releasehealth.model import Deploy, DeploySourceKind
from releasehealth.store import StoredEvaluation, StoreError
from releasehealth.wiring import Wiring

log = logging.getLogger(__name__)

# The gate evaluates a release at most once per cached answer: that is its check interval for spending alpha
# (when the policy sets none); polls further apart spend less than they could, never more.
GATE_INTERVAL = timedelta(seconds=TTL_SECONDS)
# A version may hold a "/" (feature/login-2, a branch name), sent as %2F: the path convertor keeps it whole.
RELEASE = "/api/v1/services/{service}/releases/{version:path}"
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFoundError, 404),
    (SourceError, 503),
    (StoreError, 503),
    (ReleaseHealthError, 500),  # ConfigError, TemplateError: the operator's configuration must change
)
ServicePath = Annotated[str, Path(min_length=1, max_length=255)]
VersionPath = Annotated[str, Path(min_length=1, max_length=255)]
BEARER = HTTPBearer(
    auto_error=False, description="The token in the environment variable api.token_env names (RELEASE_HEALTH_API_TOKEN)."
)
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown service (the known ones are listed) or version (the seen ones are)."},
    503: {"model": Problem, "description": "A source or the history store is unavailable."},
}


class UnknownService(NotFoundError):
    """An unknown service, with the names of the known ones (for the 404 body)."""

    def __init__(self, message: str, known: list[str]) -> None:
        self.known = known
        super().__init__(message)


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
    app.add_middleware(Guard, token=token, variable=variable)
    answers = VerdictCache()
    authorised = _bearer(token, variable)
    versions = Versions(lambda name: [
        d.version for d in deploys_of(sources, catalogue.service(name), catalogue.policy, wired.now())
    ])

    def known(name: str) -> None:
        try:
            catalogue.service(name)
        except NotFoundError as exc:
            raise UnknownService(str(exc), [s.name for s in catalogue.services]) from None

    gate_policy = gated_policy(catalogue.policy, GATE_INTERVAL)

    def judge(service: str, version: str, gated: bool) -> Answer:
        if not versions.known(service, version):
            raise NotFoundError(unknown_version_text(service, version, list(versions.seen(service)), catalogue.policy.lookback))
        policy = gate_policy if gated else catalogue.policy
        evaluation = evaluate_release(sources, catalogue.service(service), policy, version, now=wired.now())
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
        versions.forget(body.service)
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


def _bearer(token: str | None, variable: str) -> Callable[..., None]:
    """The route's own check of `Authorization: Bearer <token>` (the Guard middleware checks it first,
    before the body is read; this one also puts the scheme in the OpenAPI schema)."""

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
        if problem := token_problem(header, token, variable):
            raise HTTPException(401, problem, headers={"WWW-Authenticate": "Bearer"})

    return authorised


def _summary(name: str, team: str, stored: StoredEvaluation | None) -> ServiceSummary:
    latest = None
    if stored is not None:
        latest = LatestVerdict(
            version=stored.version, action=stored.action, score=finite(stored.score), evaluated_at=stored.evaluated_at
        )
    return ServiceSummary(name=name, team=team, latest=latest)


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
