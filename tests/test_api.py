"""The HTTP API against a real server on loopback: `release-health --demo ... serve` in its own process
group (pinned demo fleet, a fresh SQLite store, a random deploy token), plus one in-process server whose
Prometheus is down and whose token is unset. Which release is a ROLLBACK and which a PROMOTE is worked out
here from the same deterministic demo fleet. Each test uses its own services, so their order is free."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from releasehealth import api
from releasehealth.api.answers import Versions
from releasehealth.collectors.deploys import MetricDeploySource
from releasehealth.errors import SourceUnavailable
from releasehealth.gate import is_final
from releasehealth.model import Action, Query, Series
from releasehealth.sources import Sources
from releasehealth.store import Store
from releasehealth.verdicts import SourceHealth
from releasehealth.wiring import Wiring
from testing.servers import GroupServer, free_port, wait_ready
from tests import helpers

SEED = 7
# The last midnight minus two hours: the same time of day on every run, so the same verdicts.
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=2)
TOKEN_ENV = "RELEASE_HEALTH_API_TOKEN"


class ApiServer(GroupServer):
    """`release-health serve`, started in its own session."""


@dataclass(frozen=True)
class Fleet:
    """The demo fleet's latest releases as judged in this process: service -> (version, action, final)."""

    latest: dict[str, tuple[str, Action, bool]]

    def pick(self, action: Action, taken: set[str]) -> str:
        service = next(s for s, (_, a, final) in self.latest.items() if a is action and final and s not in taken)
        taken.add(service)
        return service

    def version(self, service: str) -> str:
        return self.latest[service][0]


@dataclass(frozen=True)
class Roles:
    """Which service each test may touch: recording a deploy changes a service's windows."""

    rollback: str
    promote: str
    cached: str
    deploys: str
    fuzzed: str


@pytest.fixture(scope="module")
def demo_fleet() -> Fleet:
    # Not named `fleet`: that is the session's simulated fleet, which the session's servers are built from.
    catalogue, sources, _ = helpers.demo(seed=SEED, end=END)
    evaluations = helpers.fleet(Wiring(catalogue, sources))
    return Fleet({
        e.service: (e.candidate.version, e.recommendation.action, is_final(e, catalogue.policy.window))
        for e in evaluations if e.candidate is not None
    })


@pytest.fixture(scope="module")
def roles(demo_fleet: Fleet) -> Roles:
    taken: set[str] = set()
    rollback, promote, cached = (demo_fleet.pick(action, taken) for action in (Action.ROLLBACK, Action.PROMOTE, Action.PROMOTE))
    rest = [s for s in demo_fleet.latest if s not in taken]
    return Roles(rollback, promote, cached, rest[0], rest[1])


@dataclass(frozen=True)
class Live:
    url: str
    token: str
    store_url: str

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, body: object = None, token: str | None = None, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return requests.post(self.url + path, json=body, headers=headers, timeout=30, **kwargs)

    def store(self) -> Store:
        return Store(self.store_url)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("api")
    token, port = secrets.token_urlsafe(24), free_port()
    store_url = f"sqlite:///{folder / 'store.db'}"
    log = (folder / "api.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "release-health"), "--demo", "--seed", str(SEED),
            "--demo-end", END.strftime("%Y-%m-%dT%H:%M:%S"), "--store", store_url, "serve", "--port", str(port),
        ],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, TOKEN_ENV: token}, start_new_session=True,
    )
    server = wait_ready(ApiServer(f"http://127.0.0.1:{port}", process, folder), "/healthz", log.name, 60)
    try:
        yield Live(server.url, token, store_url)
    finally:
        server.stop()


def release(service: str, version: str, what: str = "verdict") -> str:
    return f"/api/v1/services/{quote(service, safe='')}/releases/{quote(version, safe='')}/{what}"


# ---- verdicts ---------------------------------------------------------------------------------------


def test_rollback_release_is_rollback_and_its_gate_halts_with_412(live: Live, demo_fleet: Fleet, roles: Roles) -> None:
    version = demo_fleet.version(roles.rollback)
    verdict = live.get(release(roles.rollback, version))
    assert verdict.status_code == 200
    body = verdict.json()
    assert (body["service"], body["version"], body["action"], body["final"]) == (roles.rollback, version, "ROLLBACK", True)
    assert body["reasons"] and all(" PASS" not in reason for reason in body["reasons"])
    assert body["evaluation"]["recommendation"]["action"] == "ROLLBACK"
    gate = live.get(release(roles.rollback, version, "gate"))
    assert gate.status_code == 412
    assert gate.json()["action"] == "ROLLBACK"


def test_promote_release_passes_the_gate_with_200_by_get_and_by_flagger_post(live: Live, demo_fleet: Fleet, roles: Roles) -> None:
    version = demo_fleet.version(roles.promote)
    gate = live.get(release(roles.promote, version, "gate"))
    assert gate.status_code == 200
    body = gate.json()
    assert (body["action"], body["final"], body["reasons"]) == ("PROMOTE", True, [])
    assert body["baseline"] == body["evaluation"]["baseline"]["version"]
    flagger = {"name": roles.promote, "namespace": "prod", "phase": "Progressing", "metadata": {}}
    assert live.post(release(roles.promote, version, "gate"), flagger).status_code == 200


def test_verdict_within_the_ttl_comes_from_the_cache_and_concurrent_misses_evaluate_once(
    live: Live, demo_fleet: Fleet, roles: Roles
) -> None:
    version = demo_fleet.version(roles.cached)
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: live.get(release(roles.cached, version)).json(), range(8)))
    again = live.get(release(roles.cached, version)).json()
    assert len({b["evaluated_at"] for b in bodies + [again]}) == 1
    store = live.store()
    try:
        assert [s.version for s in store.history(roles.cached)] == [version]  # evaluated, and saved, once
    finally:
        store.close()


def test_services_list_every_service_with_its_team_and_latest_stored_verdict(live: Live, demo_fleet: Fleet, roles: Roles) -> None:
    version = demo_fleet.version(roles.rollback)
    assert live.get(release(roles.rollback, version)).status_code == 200
    listed = {s["name"]: s for s in live.get("/api/v1/services").json()["services"]}
    assert set(listed) == set(demo_fleet.latest)
    assert all(s["team"] for s in listed.values())
    latest = listed[roles.rollback]["latest"]
    assert (latest["version"], latest["action"]) == (version, "ROLLBACK")
    assert 0 <= latest["score"] <= 100


def test_reading_an_older_release_never_changes_what_the_fleet_view_reports(live: Live, demo_fleet: Fleet, roles: Roles) -> None:
    service, newest = roles.rollback, demo_fleet.version(roles.rollback)
    catalogue, sources, _ = helpers.demo(seed=SEED, end=END)
    older = [d.version for d in helpers.deploys(Wiring(catalogue, sources), service) if d.version != newest][-1]
    assert live.get(release(service, newest)).status_code == 200
    assert live.get(release(service, older)).status_code == 200  # an unauthenticated read, saved in the store
    listed = {s["name"]: s for s in live.get("/api/v1/services").json()["services"]}
    assert listed[service]["latest"]["version"] == newest
    exposed = {labels["version"] for labels, _ in of(parse_exposition(live.get("/metrics").text), "release_health_score", service)}
    assert exposed == {newest}


def _raw_request(url: str, head: str, body: bytes = b"", wait: float = 10.0) -> str:
    """Send `head` (and `body`) on a socket of its own, and return the status line of the answer, read
    without sending anything more: an answer that needed the rest of the body would never come."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(head.encode() + b"\r\n" + body)
        return connection.recv(4096).decode("latin-1").split("\r\n")[0]


def test_a_post_without_the_token_is_refused_before_its_body_is_read(live: Live) -> None:
    head = "POST /api/v1/deploys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
    assert " 401 " in _raw_request(live.url, head)  # 1000 bytes announced, none sent


def test_a_body_over_the_limit_is_refused_unread_whatever_the_token(live: Live) -> None:
    for authorization in ("", f"Authorization: Bearer {live.token}\r\n"):
        head = f"POST /api/v1/deploys HTTP/1.1\r\nHost: x\r\n{authorization}Content-Length: {200 * 2**20}\r\n"
        assert " 413 " in _raw_request(live.url, head)


def test_a_chunked_body_over_the_limit_is_cut_off_and_records_nothing(live: Live, roles: Roles) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"service": "%s", "version": "huge", "commit": "' % roles.deploys.encode()
        for _ in range(100):
            yield b"x" * 4096
        yield b'"}'

    try:
        answer = requests.post(live.url + "/api/v1/deploys", data=chunks(), timeout=30,
                               headers={"Authorization": f"Bearer {live.token}", "Content-Type": "application/json"})
        assert answer.status_code >= 400
    except requests.ConnectionError:
        pass  # the server closed the connection mid-body: as good as a refusal
    store = live.store()
    try:
        assert "huge" not in {d.version for d in store.deploys(roles.deploys)}
    finally:
        store.close()


def test_unknown_service_is_404_naming_the_known_ones(live: Live, demo_fleet: Fleet) -> None:
    answer = live.get(release("no-such-service", "1.0.0"))
    assert answer.status_code == 404
    assert sorted(answer.json()["known"]) == sorted(demo_fleet.latest)
    assert "no-such-service" in answer.json()["detail"]


def test_unknown_version_is_404_listing_the_versions_seen(live: Live, demo_fleet: Fleet, roles: Roles) -> None:
    answer = live.get(release(roles.promote, "0.0.0-nope", "gate"))
    assert answer.status_code == 404
    assert demo_fleet.version(roles.promote) in answer.json()["detail"]


# ---- recording deploys ------------------------------------------------------------------------------


def test_post_without_or_with_a_wrong_token_is_401_and_writes_nothing(live: Live, roles: Roles) -> None:
    body = {"service": roles.deploys, "version": "9.9.9-unauthorised"}
    assert live.post("/api/v1/deploys", body).status_code == 401
    assert live.post("/api/v1/deploys", body, token=live.token + "x").status_code == 401
    assert live.post("/api/v1/deploys", body, token="").status_code == 401
    answer = requests.post(live.url + "/api/v1/deploys", json=body, headers={"Authorization": live.token}, timeout=30)
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    store = live.store()
    try:
        assert "9.9.9-unauthorised" not in {d.version for d in store.deploys(roles.deploys)}
    finally:
        store.close()


@pytest.mark.parametrize("fields", [
    {},  # no version
    {"version": ""},
    {"version": "1", "deployed_at": "yesterday"},
    {"version": "1", "extra": True},
    {"version": "1", "deployed_at": "9999-12-31T23:59:59-23:00"},  # past the year 9999 once in UTC
    {"version": "1", "commit": "a\x00b"},
    {"version": "x" * 256},
])
def test_post_with_a_bad_body_is_422_and_writes_nothing(live: Live, roles: Roles, fields: dict) -> None:
    assert live.post("/api/v1/deploys", {"service": roles.deploys} | fields, token=live.token).status_code == 422
    assert live.post("/api/v1/deploys", [], token=live.token).status_code == 422
    store = live.store()
    try:
        assert "1" not in {d.version for d in store.deploys(roles.deploys)}
    finally:
        store.close()


def test_post_for_an_unknown_service_is_404_naming_the_known_ones(live: Live, demo_fleet: Fleet) -> None:
    answer = live.post("/api/v1/deploys", {"service": "nope", "version": "1"}, token=live.token)
    assert answer.status_code == 404
    assert sorted(answer.json()["known"]) == sorted(demo_fleet.latest)


def test_good_post_is_201_and_the_deploy_is_in_the_store(live: Live, roles: Roles) -> None:
    at = END - timedelta(hours=1)
    body = {"service": roles.deploys, "version": "7.7.7", "commit": "abc123", "deployed_at": at.isoformat()}
    answer = live.post("/api/v1/deploys", body, token=live.token)
    assert answer.status_code == 201
    assert answer.json() | {"deployed_at": None} == {
        "service": roles.deploys, "version": "7.7.7", "commit": "abc123", "deployed_at": None, "source": "recorded",
    }
    assert datetime.fromisoformat(answer.json()["deployed_at"]) == at
    store = live.store()
    try:
        recorded = {d.version: d for d in store.deploys(roles.deploys)}["7.7.7"]
    finally:
        store.close()
    assert (recorded.started_at, recorded.commit, recorded.source.value) == (at, "abc123", "recorded")


@pytest.mark.parametrize("deployed_at", [-1, "1969-12-31T23:59:59Z", "0001-01-01T00:00:00"])
def test_a_deploy_before_1970_is_refused_and_nothing_written(live: Live, roles: Roles, deployed_at: object) -> None:
    body = {"service": roles.deploys, "version": "6.6.6", "deployed_at": deployed_at}
    answer = live.post("/api/v1/deploys", body, token=live.token)
    assert answer.status_code == 422 and "between 1970 and 9000" in answer.text
    store = live.store()
    try:
        assert "6.6.6" not in {d.version for d in store.deploys(roles.deploys)}
    finally:
        store.close()


def test_version_with_a_newline_is_refused_and_quotes_and_backslashes_reach_metrics_escaped(
    live: Live, roles: Roles
) -> None:
    # A line feed (any control character) is never part of a version: 422, nothing written. A quote
    # and a backslash are printable: accepted, stored, and escaped in the exposition.
    at = (END - timedelta(minutes=30)).isoformat()
    refused = live.post("/api/v1/deploys", {"service": roles.deploys, "version": 'v"1\\\nx'}, token=live.token)
    assert refused.status_code == 422
    hostile = 'v"2\\} 1 # fake_metric 9'  # a quote, a backslash, a brace, spaces: printable, so accepted
    posted = live.post("/api/v1/deploys", {"service": roles.deploys, "version": hostile, "deployed_at": at}, live.token)
    assert posted.status_code == 201
    verdict = live.get(release(roles.deploys, hostile))
    assert verdict.status_code == 200 and verdict.json()["version"] == hostile
    assert live.get(release(roles.deploys, 'v"1\\\nx')).status_code == 404  # never recorded: unknown
    samples = parse_exposition(live.get("/metrics").text)
    mine = {labels["action"]: value for labels, value in of(samples, "release_health_verdict", roles.deploys)}
    assert mine[verdict.json()["action"]] == 1 and sum(mine.values()) == 1
    assert {labels["version"] for _, labels, _ in samples if labels.get("service") == roles.deploys} == {hostile}
    assert not any(name == "fake_metric" for name, _, _ in samples)


def test_a_version_with_a_slash_is_addressed_encoded(live: Live, roles: Roles) -> None:
    # A branch-named version: %2F in the URL. Recorded earlier than the hostile one, so it is not the latest.
    version = "feature/login-2.0"
    at = (END - timedelta(minutes=75)).isoformat()
    posted = live.post("/api/v1/deploys", {"service": roles.deploys, "version": version, "deployed_at": at}, live.token)
    assert posted.status_code == 201
    verdict = live.get(release(roles.deploys, version))
    assert verdict.status_code == 200 and verdict.json()["version"] == version
    assert live.get(release(roles.deploys, "feature/nope")).status_code == 404


# ---- /metrics and /healthz --------------------------------------------------------------------------


def test_metrics_is_strict_exposition_text_with_every_action_per_release(live: Live, demo_fleet: Fleet, roles: Roles) -> None:
    live.get(release(roles.promote, demo_fleet.version(roles.promote)))
    answer = live.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse_exposition(answer.text)
    verdicts = of(samples, "release_health_verdict", roles.promote)
    assert {labels["action"]: value for labels, value in verdicts} == {"PROMOTE": 1, "HOLD": 0, "ROLLBACK": 0, "INCONCLUSIVE": 0}
    classes = of(samples, "release_health_metric_classification", roles.promote)
    assert classes and {labels["classification"] for labels, _ in classes} == {"PASS"}
    assert [value for _, value in of(samples, "release_health_score", roles.promote)] == [100]


def test_healthz_names_the_store(live: Live) -> None:
    answer = live.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "store": live.store_url}


# ---- the schema, fuzzed -----------------------------------------------------------------------------


def test_schemathesis_finds_no_server_error(live: Live, demo_fleet: Fleet, roles: Roles, tmp_path: Path) -> None:
    # The fuzzed service is bound to a real one half the time, and its version to real ones, so the
    # generated requests also reach the evaluation, not only the 404 for an unknown service.
    config = tmp_path / "schemathesis.toml"
    versions = [demo_fleet.version(roles.fuzzed), "0.0.0"]
    config.write_text(
        f"[dictionaries.services]\nvalues = {json.dumps([roles.fuzzed])}\n"
        f"[dictionaries.versions]\nvalues = {json.dumps(versions)}\n"
        "[parameters]\n"
        '"path.service" = { dictionary = "services", probability = 0.5 }\n'
        '"path.version" = { dictionary = "versions", probability = 0.5 }\n'
        '"body.service" = { dictionary = "services", probability = 0.5 }\n'
    )
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"), "--config-file", str(config), "run", live.url + "/openapi.json",
            "--checks", "not_a_server_error", "--max-examples", "20", "--seed", "7", "--workers", "1",
            "--header", f"Authorization: Bearer {live.token}", "--generation-database", "none", "--no-color",
        ],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"\d+ generated, \d+ passed", run.stdout), run.stdout[-2000:]


# ---- a Prometheus that is down, a token that is unset -----------------------------------------------


class DownMetricSource:
    name = "http://prometheus.invalid:9090"

    def fetch(self, query: Query) -> list[Series]:
        raise SourceUnavailable(self.name, "connection refused")

    def check(self) -> SourceHealth:
        return SourceHealth(self.name, self.name, False, None, "connection refused")


class Remember(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """An in-process server on the demo catalogue whose Prometheus is down and whose token is unset;
    yields its URL and what it logged at startup."""
    catalogue, _, _ = helpers.demo(seed=SEED, end=END)
    metrics = DownMetricSource()
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('down') / 'store.db'}")
    handler = Remember()
    logging.getLogger(api.__name__).addHandler(handler)
    try:
        sources = Sources(metrics=metrics, deploys=MetricDeploySource(metrics), store=store)
        app = api.create_app(Wiring(catalogue, sources), environ={})
    finally:
        logging.getLogger(api.__name__).removeHandler(handler)
    try:
        with helpers.served(app) as url:
            yield url, handler.messages
    finally:
        store.close()


def test_source_down_is_503_with_the_reason_never_promote(down: tuple[str, list[str]]) -> None:
    url, _ = down
    for what in ("verdict", "gate"):
        answer = requests.get(url + release("user-service", "3.12.3", what), timeout=30)
        assert answer.status_code == 503
        assert "connection refused" in answer.json()["detail"]
        assert "PROMOTE" not in answer.text


def test_unset_token_refuses_every_post_naming_the_variable_and_says_so_at_startup(down: tuple[str, list[str]]) -> None:
    url, messages = down
    answer = requests.post(url + "/api/v1/deploys", json={"service": "user-service", "version": "1"}, timeout=30,
                           headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 401
    assert TOKEN_ENV in answer.json()["detail"]
    assert any(TOKEN_ENV in m for m in messages)


# ---- the cache, on a fake clock ---------------------------------------------------------------------


def test_cache_answers_within_the_ttl_shares_a_miss_evaluates_again_after_and_keeps_errors_as_answers() -> None:
    now = [0.0]
    calls: list[str] = []
    cache = api.VerdictCache(ttl=60, clock=lambda: now[0])

    def judge(version: str) -> api.Answer:
        calls.append(version)
        time.sleep(0.05)  # long enough for the other requests to arrive while it runs
        if version == "bad":
            raise SourceUnavailable("prometheus", "down")
        if version == "bug":
            raise RuntimeError("a bug")
        return api.Answer(Action.PROMOTE, True, version.encode())

    async def scenario() -> None:
        answers = await asyncio.gather(*(cache.get(("s", "1"), lambda: judge("1")) for _ in range(5)))
        assert set(answers) == {api.Answer(Action.PROMOTE, True, b"1")}
        now[0] = 59.9
        await cache.get(("s", "1"), lambda: judge("1"))
        assert calls == ["1"]
        now[0] = 60.1
        await cache.get(("s", "1"), lambda: judge("1"))
        assert calls == ["1", "1"]
        # Our errors are answers: polling a release whose source is down costs one attempt per TTL.
        for _ in range(2):
            with pytest.raises(SourceUnavailable):
                await cache.get(("s", "bad"), lambda: judge("bad"))
        assert calls == ["1", "1", "bad"]
        now[0] = 120.2
        with pytest.raises(SourceUnavailable):
            await cache.get(("s", "bad"), lambda: judge("bad"))
        assert calls == ["1", "1", "bad", "bad"]
        # A bug is not an answer: it is not kept.
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await cache.get(("s", "bug"), lambda: judge("bug"))
        assert calls == ["1", "1", "bad", "bad", "bug", "bug"]
        cache.forget("s")
        await cache.get(("s", "1"), lambda: judge("1"))
        assert calls == ["1", "1", "bad", "bad", "bug", "bug", "1"]

    asyncio.run(scenario())


def test_unknown_versions_cost_one_deploy_scan_per_service_per_refresh_even_when_asked_together() -> None:
    now = [0.0]
    scans: list[str] = []

    def scan(service: str) -> list[str]:
        scans.append(service)
        time.sleep(0.05)  # long enough for the other questions to arrive while it runs
        return ["1.0", "1.1"]

    versions = Versions(scan, refresh=10.0, clock=lambda: now[0])
    with ThreadPoolExecutor(max_workers=20) as pool:
        found = list(pool.map(lambda n: versions.known("s", f"9.{n}"), range(200)))
    assert not any(found) and scans == ["s"]
    assert versions.known("s", "1.1") and scans == ["s"]  # a known version never scans
    now[0] = 10.5
    assert not versions.known("s", "9.9") and scans == ["s", "s"]  # after the refresh, a new deploy can be found
    versions.forget("s")  # a recorded deploy: the next question scans
    versions.known("s", "1.0")
    assert scans == ["s", "s", "s"]


# ---- a strict parser of the text exposition format (version 0.0.4) ----------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL = rf'({LABEL_NAME})="((?:[^"\\\n]|\\[\\"n])*)"'
VALUE = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN)"
SAMPLE = re.compile(rf"(?P<name>{NAME})(?:\{{(?P<labels>(?:{LABEL})(?:,{LABEL})*,?)?\}})? (?P<value>{VALUE})(?: -?[0-9]+)?")
TYPE = re.compile(rf"# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)")
HELP = re.compile(rf"# HELP ({NAME}) (?:[^\\\n]|\\[\\n])*")
UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


def parse_exposition(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of `text` as (name, labels, value); fails on any line the format does not allow, a
    sample before its TYPE, a family split in two, or a repeated series."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    samples, typed, done, seen = [], set(), set(), set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("# TYPE"):
            match = TYPE.fullmatch(line)
            assert match and match[1] not in typed, f"line {n}: bad or repeated TYPE: {line!r}"
            typed.add(match[1])
            continue
        if line.startswith("# HELP"):
            assert HELP.fullmatch(line), f"line {n}: bad HELP: {line!r}"
            continue
        match = SAMPLE.fullmatch(line)
        assert match, f"line {n}: not a sample: {line!r}"
        name = match["name"]
        assert name in typed, f"line {n}: {name} has no TYPE before it"
        if name != current:
            assert name not in done, f"line {n}: {name}'s samples are not together"
            if current:
                done.add(current)
            current = name
        pairs = re.findall(LABEL, match["labels"] or "")
        labels = {k: re.sub(r"\\(.)", lambda m: UNESCAPE[m[1]], v) for k, v in pairs}
        assert len(labels) == len(pairs), f"line {n}: a label repeats"
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen, f"line {n}: repeated series"
        seen.add(key)
        samples.append((name, labels, float(match["value"])))
    return samples


def of(samples: list[tuple[str, dict[str, str], float]], name: str, service: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric for one service."""
    return [(labels, value) for n, labels, value in samples if n == name and labels.get("service") == service]


def test_the_parser_rejects_what_the_format_does_not_allow() -> None:
    good = '# TYPE m gauge\nm{a="x\\"y\\\\z\\n"} 1\n'
    assert parse_exposition(good) == [("m", {"a": 'x"y\\z\n'}, 1.0)]
    for bad in ('# TYPE m gauge\nm{a="x"y"} 1\n', '# TYPE m gauge\nm{a="x\ny"} 1\n', 'm 1\n', '# TYPE m gauge\nm 1 2 3\n'):
        with pytest.raises(AssertionError):
            parse_exposition(bad)
    assert math.isnan(parse_exposition("# TYPE m gauge\nm NaN\n")[0][2])
