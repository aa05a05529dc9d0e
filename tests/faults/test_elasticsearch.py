"""Faults of Elasticsearch (noida-db behind a fault proxy), against releases of every kind: the logs group
and the deploy events never yield a PROMOTE they cannot support, never a traceback, and an error names
the source and the query."""

from __future__ import annotations

from typing import Any

import pytest

from releasehealth.simulator import ReleaseLabel
from testing import faults
from testing.faults import Fault, FaultProxy
from testing.servers import PrometheusServer, free_port
from tests.faults.matrix import Case, Release, check_each, check_outcome, evaluate, through


def _answers(change: Any) -> Fault:
    """A fault changing each search's answer (every item of a multi-search) of a successful response."""
    def fault(e: faults.Exchange) -> faults.Exchange:
        if e.status != 200:
            return e
        payload = e.json()
        for answer in payload.get("responses", [payload]):
            change(answer)
        return e.with_json(payload)
    return faults.on_searches(fault)


def _empty(answer: dict[str, Any]) -> None:
    answer["hits"] = {"total": {"value": 0, "relation": "eq"}, "hits": []}
    for aggregation in (answer.get("aggregations") or {}).values():
        aggregation["buckets"] = {} if isinstance(aggregation.get("buckets"), dict) else []


def _item_error(answer: dict[str, Any]) -> None:
    answer.clear()
    answer.update(status=500, error={"type": "search_phase_execution_exception", "reason": "all shards failed"})


def _shard_failed(answer: dict[str, Any]) -> None:
    answer["_shards"] = {"total": 3, "successful": 2, "skipped": 0, "failed": 1}


def _timed_out(answer: dict[str, Any]) -> None:
    answer["timed_out"] = True


def _no_aggregations(answer: dict[str, Any]) -> None:
    answer.pop("aggregations", None)


def _hostile_messages(answer: dict[str, Any]) -> None:
    """Log text is untrusted: control characters, bidi overrides and markup in every line, and a huge line
    (the first of each answer: thousands of them would only make the test slow)."""
    for position, hit in enumerate((answer.get("hits") or {}).get("hits", [])):
        source = hit.get("_source", {})
        if "message" in source:
            source["message"] = "\x1b[2J\x1b[HPROMOTE\r\n\u202e<script>alert(1)</script>" + ("x" * 100_000 if position == 0 else "")


CASES = [
    Case("reset", faults.on_searches(faults.drop), names_the_query=True),
    Case("hang", faults.on_searches(faults.hang(5)), names_the_query=True),
    Case("slow", faults.on_searches(faults.hang(0.2)), judgeable=True),
    Case("500 json", faults.on_searches(faults.status(
        500, b'{"error":{"type":"illegal_state_exception","reason":"boom"},"status":500}')), names_the_query=True),
    Case("503 text", faults.on_searches(faults.status(503, b"upstream connect error", "text/plain")), names_the_query=True),
    Case("400 json", faults.on_searches(faults.status(
        400, b'{"error":{"type":"parsing_exception","reason":"bad query"},"status":400}')), names_the_query=True),
    Case("429", faults.on_searches(faults.status(429, b"slow down", "text/plain")), names_the_query=True),
    Case("garbage", faults.on_searches(faults.garbage), names_the_query=True),
    Case("truncated", faults.on_searches(faults.truncated), names_the_query=True),
    Case("5 MB error", faults.on_searches(faults.status(500, b"x" * (5 * 2**20), "text/plain")), names_the_query=True),
    Case("empty result", _answers(_empty)),
    Case("one search failed", _answers(_item_error), names_the_query=True),
    Case("a shard failed", _answers(_shard_failed), names_the_query=True),
    Case("timed out", _answers(_timed_out), names_the_query=True),
    Case("no aggregations", _answers(_no_aggregations), names_the_query=True),
    Case("hostile log text", _answers(_hostile_messages), judgeable=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_fault_never_promotes_what_it_hides(
    case: Case, elasticsearch_proxy: FaultProxy, releases: dict[ReleaseLabel, Release], prometheus: PrometheusServer
) -> None:
    check_each(case, elasticsearch_proxy, through(prometheus.url, elasticsearch_proxy.url, "elasticsearch"), releases)


def test_elasticsearch_refusing_connections_is_an_error_naming_it(
    releases: dict[ReleaseLabel, Release], prometheus: PrometheusServer
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    case = Case("refused", faults.drop, names_the_query=True)
    for release in releases.values():
        check_outcome(case, release, evaluate(through(prometheus.url, url, "elasticsearch"), release), url)
