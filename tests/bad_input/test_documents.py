"""Untrusted documents: deploy events and log documents from Elasticsearch, deploys POSTed to the API, and
the log messages mined for signatures. Whatever their shape, the collector gives deploys, lines or its own
error; what it passes on is printable and bounded; the API answers 201 or a 4xx, never a 500."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from releasehealth import api, config, wiring
from releasehealth.collectors.elasticsearch import MAX_MESSAGE, deploy_from_event, sample_from_response
from releasehealth.errors import SourceError
from releasehealth.format import UNPRINTABLE
from releasehealth.model import LogFields, LogLine
from releasehealth.scoring.signatures import compare
from releasehealth.verdicts import SideTotals
from testing.configs import example_config
from testing.servers import free_port
from tests import helpers
from tests.bad_input.values import FUZZ, HOSTILE, documents, scalars

FIELDS = LogFields()
C0 = "".join(chr(c) for c in range(32) if chr(c) not in "\t\n")  # control characters a log line must not keep

times = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.sampled_from(HOSTILE), st.none(),
    st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat),
)
# Documents shaped like deploy events and log lines (their field names, flat or nested), with hostile values.
field_values = st.one_of(scalars, documents)
event_documents = st.fixed_dictionaries({}, optional={
    "@timestamp": times, "service.name": field_values, "service.version": field_values, "commit": field_values,
    "service": st.fixed_dictionaries({}, optional={"name": field_values, "version": field_values}),
    "message": field_values, "log.level": field_values, "error.type": field_values,
    "log": st.fixed_dictionaries({}, optional={"level": field_values}),
})
hits = st.lists(st.one_of(st.fixed_dictionaries({"_source": event_documents | documents}), documents), max_size=8)
responses = st.one_of(
    st.fixed_dictionaries(
        {"hits": st.fixed_dictionaries({"hits": hits}, optional={"total": documents})},
        optional={"_shards": documents, "timed_out": documents, "status": documents, "error": documents},
    ),
    documents,
)


@FUZZ
@given(event_documents | documents)
def test_a_deploy_event_is_a_deploy_or_nothing(document: Any) -> None:
    deploy = deploy_from_event(document, FIELDS) if isinstance(document, dict) else None
    if deploy is None:
        return
    assert deploy.service and deploy.version
    assert not UNPRINTABLE.search(deploy.service + deploy.version + deploy.commit), deploy
    assert deploy.started_at.tzinfo is not None and len(deploy.commit) <= 64


@FUZZ
@given(responses)
def test_a_log_search_answer_gives_lines_or_the_sources_error(response: Any) -> None:
    try:
        lines, population, skipped, truncated = sample_from_response("es", response, FIELDS)
    except SourceError as exc:
        assert str(exc).startswith("es: ")
        return
    assert population >= len(lines) and skipped >= 0 and 0 <= truncated <= len(lines)
    for line in lines:
        assert line.message.strip() and len(line.message) <= MAX_MESSAGE + 1
        assert not any(c in C0 for c in line.message + line.level + line.error_type), line
        assert isinstance(line.timestamp, float)


messages = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=200))


@FUZZ
@given(st.lists(messages, max_size=12), st.lists(messages, max_size=12))
def test_any_messages_mine_into_signatures(baseline: list[str], candidate: list[str]) -> None:
    def lines(texts: list[str]) -> list[LogLine]:
        return [LogLine(0.0, "error", t) for t in texts if t.strip()]

    mined_b, mined_c = lines(baseline), lines(candidate)
    totals = (SideTotals(len(mined_b), len(mined_b), 1000.0), SideTotals(len(mined_c), len(mined_c), 1000.0))
    signatures = compare(mined_b, mined_c, totals, tolerance=1.0, alpha=0.01)
    assert sum(s.candidate_count for s in signatures) == len(mined_c)
    assert all(math.isfinite(s.candidate_rate or 0.0) for s in signatures)


# ---- deploys POSTed to the API ---------------------------------------------------------------------------

TOKEN = "fuzz-token"
bodies = st.one_of(
    st.fixed_dictionaries(
        {"service": st.sampled_from(["user-service", "nope"]) | field_values, "version": field_values},
        optional={"commit": field_values, "deployed_at": times, "extra": field_values},
    ),
    documents,
)


@pytest.fixture(scope="module")
def deploy_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API on a config whose store is a file of its own (its sources are never asked: deploys only)."""
    raw = example_config(f"http://127.0.0.1:{free_port()}")
    raw["store"] = {"url": f"sqlite:///{Path(tmp_path_factory.mktemp('api')) / 'history.db'}"}
    wired = wiring.connect(config.parse(raw, "fuzz.yaml"), create_store=True)
    with helpers.served(api.create_app(wired, environ={"RELEASE_HEALTH_API_TOKEN": TOKEN})) as url:
        yield url


@FUZZ
@given(bodies)
def test_a_posted_deploy_is_recorded_or_refused_never_a_500(deploy_api: str, body: Any) -> None:
    answer = requests.post(  # json.dumps writes NaN and Infinity, which JSON has not: the API must refuse them
        f"{deploy_api}/api/v1/deploys", data=json.dumps(body), timeout=60,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert answer.status_code in (201, 400, 404, 422), (answer.status_code, answer.text)
    if answer.status_code == 201:
        recorded = answer.json()
        assert not UNPRINTABLE.search(recorded["version"] + recorded["commit"]), recorded
        assert 1970 <= datetime.fromisoformat(recorded["deployed_at"]).year < 9000, recorded
