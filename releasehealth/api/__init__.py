"""The HTTP API for pipelines: a thin FastAPI shell over releasehealth.evaluate and the history store.

    GET  /api/v1/services                                          every service, its team, its newest release's stored verdict
    GET  /api/v1/services/{service}/releases/{version}/verdict     evaluate (answers cached TTL_SECONDS), save, answer
    GET  /api/v1/services/{service}/releases/{version}/gate        the same, spending alpha across polls; 200 for a final PROMOTE, 412 otherwise
    POST /api/v1/services/{service}/releases/{version}/gate        the same, for Flagger (its webhooks POST)
    POST /api/v1/deploys                                           record a deploy (bearer token from api.token_env)
    GET  /metrics                                                  each service's newest release's verdict, Prometheus text format
    GET  /healthz                                                  whether the history store answers

Unknown service or version 404, a source or the store failing 503, anything else 500 with a message and
never a traceback (app.py); errors are cached like verdicts, a body is refused before it is read when the
token is missing or it is too large (guard.py). An Argo Rollouts web metric reads the verdict
(`successCondition: result.action == "PROMOTE" && result.final`); a Flagger webhook calls the gate, which
passes only a PROMOTE made on the whole window (`gate.is_final`). The gate is polled, like
`release-health gate` re-checks: it spends alpha across its checks the same way (policy.check_interval,
or one check per cache lifetime), so polling does not inflate false rollbacks.
"""

from releasehealth.api.answers import TTL_SECONDS, Answer, VerdictCache, answer
from releasehealth.api.app import create_app, serve

__all__ = ["TTL_SECONDS", "Answer", "VerdictCache", "answer", "create_app", "serve"]
