"""Faults of Prometheus, injected by a proxy on loopback in front of the real one, against releases of
every kind (good, an error regression, a latency regression, a new exception): never a PROMOTE when the
data needed to judge is missing, partial or invalid; never a ROLLBACK of a good release on a fault; no
traceback; the message names the source and the query."""

from __future__ import annotations

from typing import Any

import pytest

from releasehealth.simulator import ReleaseLabel
from releasehealth.verdicts import Evaluation
from testing import faults
from testing.faults import Fault, FaultProxy
from testing.servers import free_port
from tests.faults.matrix import Case, Release, check_each, check_outcome, evaluate, through


def _payload(change: Any) -> Fault:
    return faults.on_queries(faults.prometheus_payload(change))


def _each_series(change: Any) -> Fault:
    def apply(payload: dict[str, Any]) -> None:
        for series in faults.series_of(payload):
            change(series)
    return _payload(apply)


def _values(value: Any) -> Fault:
    def change(series: dict[str, Any]) -> None:
        for point in faults.points_of(series):
            point[1] = value(point[1])
    return _each_series(change)


def _thin(keep_every: int) -> Fault:
    def change(series: dict[str, Any]) -> None:
        if "values" in series:
            series["values"] = series["values"][::keep_every]
    return _each_series(change)


def _without(matches: Any) -> Fault:
    def apply(payload: dict[str, Any]) -> None:
        payload["data"]["result"] = [s for s in faults.series_of(payload) if not matches(s["metric"])]
    return _payload(apply)


def _only_for(metric: str, fault: Fault) -> Fault:
    return lambda e: fault(e) if metric in e.promql else e


def _spike(series: dict[str, Any]) -> None:
    """A counter reset's artefact: one step of the 5xx count a million times too high."""
    values = series.get("values") or []
    if series["metric"].get("code", "").startswith("5") and values:
        values[len(values) // 2][1] = str(float(values[len(values) // 2][1]) * 1e6 + 1e6)


PARTIAL = "store gateway eu-1 is unavailable: the result may be partial"


CASES = [
    Case("reset", faults.on_queries(faults.drop), names_the_query=True),
    Case("hang", faults.on_queries(faults.hang(5)), names_the_query=True),
    Case("slow", faults.on_queries(faults.hang(0.2)), judgeable=True),
    Case("500 json", faults.on_queries(faults.status(500, b'{"status":"error","errorType":"internal","error":"boom"}')), names_the_query=True),
    Case("503 text", faults.on_queries(faults.status(503, b"upstream connect error", "text/plain")), names_the_query=True),
    Case("400 json", faults.on_queries(faults.status(400, b'{"status":"error","errorType":"bad_data","error":"parse error"}')), names_the_query=True),
    Case("422 empty", faults.on_queries(faults.status(422)), names_the_query=True),
    Case("429", faults.on_queries(faults.status(429, b"slow down", "text/plain")), names_the_query=True),
    Case("garbage", faults.on_queries(faults.garbage), names_the_query=True),
    Case("truncated", faults.on_queries(faults.truncated), names_the_query=True),
    Case("5 MB error", faults.on_queries(faults.status(500, b"x" * (5 * 2**20), "text/plain")), names_the_query=True),
    Case("empty result", _payload(lambda p: p["data"].__setitem__("result", []))),
    Case("one metric's series missing", _only_for("http_request_duration_seconds_bucket", _without(lambda labels: True))),
    Case("half the steps", _thin(2), judgeable=True),
    Case("a quarter of the steps", _thin(4)),
    Case("NaN", _values(lambda v: "NaN")),
    Case("infinite", _values(lambda v: "+Inf")),
    Case("negative", _values(lambda v: str(-abs(float(v)) - 1))),
    Case("duplicate series", _payload(lambda p: p["data"].__setitem__("result", faults.series_of(p) * 2)), judgeable=True),
    Case("counter reset", _each_series(_spike), judgeable=True),
    Case("warnings", faults.on_queries(faults.warnings(PARTIAL)), names_the_query=True, shows=PARTIAL),
    Case("warnings on the metrics", faults.on_range_queries(faults.warnings(PARTIAL)), names_the_query=True, shows=PARTIAL),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_fault_never_promotes_what_it_hides(
    case: Case, prometheus_proxy: FaultProxy, releases: dict[ReleaseLabel, Release], logs_replay: str
) -> None:
    check_each(case, prometheus_proxy, through(prometheus_proxy.url, logs_replay, "prometheus"), releases)


def test_the_candidates_series_missing_never_promotes(
    prometheus_proxy: FaultProxy, releases: dict[ReleaseLabel, Release], logs_replay: str
) -> None:
    wired = through(prometheus_proxy.url, logs_replay, "prometheus")
    for release in releases.values():
        case = Case("candidate missing", candidate_missing(release.version))
        with prometheus_proxy.injecting(case.fault):
            outcome = evaluate(wired, release)
        check_outcome(case, release, outcome, prometheus_proxy.url)


def candidate_missing(version: str) -> Fault:
    """Range queries lose the series of `version`; deploy detection (instant queries) still sees it."""
    return faults.on_range_queries(_without(lambda labels: labels.get("version") == version))


def test_prometheus_refusing_connections_is_an_error_naming_it(
    releases: dict[ReleaseLabel, Release], logs_replay: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    outcome = evaluate(through(url, logs_replay, "prometheus"), releases[ReleaseLabel.GOOD])
    assert not isinstance(outcome, Evaluation), outcome
    assert url in str(outcome) and "quer" in str(outcome)
