"""The history store on a real SQLite file and a real PostgreSQL: evaluations read back whole, deploys,
"not a risk", last-good, schema versions, a writer killed mid-write, a database that is down, and the
CLI commands that use the store."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from releasehealth.cli import app
from releasehealth.config import Catalogue
from releasehealth.model import Action, Deploy, DeploySourceKind
from releasehealth.serialize import evaluation_to_dict
from releasehealth.simulator import Fleet
from releasehealth.sources import Sources
from releasehealth.store import (
    SCHEMA_VERSION,
    Store,
    StoredEvaluation,
    StoreError,
)
from releasehealth.verdicts import Evaluation
from releasehealth.wiring import Wiring
from testing.servers import PostgresServer, free_port
from tests import helpers

# A fixed end: the demo fleet, and so every evaluation below, is the same on every run.
END = datetime(2025, 11, 20, tzinfo=UTC)
SERVICE = "user-service"  # its releases at END: 3.12.0 INCONCLUSIVE, 3.12.1 PROMOTE, 3.12.2 ROLLBACK, 3.12.3 PROMOTE

runner = CliRunner()


@pytest.fixture(scope="module")
def demo() -> tuple[Catalogue, Sources, Fleet]:
    return helpers.demo(seed=7, end=END)


@pytest.fixture(scope="module")
def fleet_evaluations(demo: tuple[Catalogue, Sources, Fleet]) -> list[Evaluation]:
    catalogue, sources, _ = demo
    return helpers.fleet(Wiring(catalogue, sources), now=END)


@pytest.fixture(scope="module")
def releases(demo: tuple[Catalogue, Sources, Fleet]) -> dict[str, Evaluation]:
    """Every release of SERVICE, by version, each judged against the one it replaced."""
    catalogue, sources, _ = demo
    found = {e.candidate.version: e for e in helpers.releases(Wiring(catalogue, sources), SERVICE, now=END)}
    actions = {version: e.recommendation.action for version, e in found.items()}
    assert actions == {
        "3.12.0": Action.INCONCLUSIVE, "3.12.1": Action.PROMOTE, "3.12.2": Action.ROLLBACK, "3.12.3": Action.PROMOTE,
    }  # what the tests below rely on
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: an SQLite file, or a new database on the session's real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"store_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    yield opened
    opened.close()


def document(evaluation: Evaluation) -> dict:
    """What the store must hand back: the evaluation's JSON document, as JSON reads it."""
    return json.loads(json.dumps(evaluation_to_dict(evaluation)))


def assert_utc(at: datetime) -> None:
    assert at.tzinfo is UTC, f"{at!r} is not in UTC"


def assert_stored(stored: StoredEvaluation, evaluation: Evaluation) -> None:
    r = evaluation.recommendation
    assert (stored.service, stored.version, stored.baseline_version) == (evaluation.service, r.candidate, r.baseline)
    assert (stored.action, stored.reason, stored.policy) == (r.action, r.reason, evaluation.policy.value)
    assert stored.score == (evaluation.score.score if evaluation.score else None)
    assert stored.evaluated_at == evaluation.evaluated_at
    assert_utc(stored.evaluated_at)
    assert stored.document == document(evaluation)


# ---- round trip, on both backends -----------------------------------------------------------------------


def test_saved_evaluations_read_back_whole(store: Store, fleet_evaluations: list[Evaluation]) -> None:
    ids = [store.save_evaluation(e) for e in fleet_evaluations]

    assert ids == sorted(set(ids))
    by_service = {e.service: e for e in fleet_evaluations}
    fleet = store.fleet()
    assert [s.service for s in fleet] == sorted(by_service)
    for stored in fleet:
        assert_stored(stored, by_service[stored.service])
        assert store.latest(stored.service) == stored
        assert store.latest(stored.service, stored.version) == stored
        assert store.history(stored.service) == [stored]
    assert store.latest(SERVICE, "9.9.9") is None and store.history("no-such-service") == []


def test_history_is_newest_first_and_fleet_shows_each_services_newest(
    store: Store, demo: tuple[Catalogue, Sources, Fleet]
) -> None:
    catalogue, sources, _ = demo
    # Saved out of time order, as a re-run with --at can: "newest" is by evaluation time, not by insertion.
    times = [END - timedelta(hours=2), END, END - timedelta(hours=1)]
    saved = {at: helpers.evaluate(Wiring(catalogue, sources), SERVICE, now=at) for at in times}
    for evaluation in saved.values():
        store.save_evaluation(evaluation)

    history = store.history(SERVICE)
    assert [s.evaluated_at for s in history] == sorted(times, reverse=True)
    for stored in history:
        assert_stored(stored, saved[stored.evaluated_at])
    assert store.history(SERVICE, limit=1) == history[:1]
    assert store.latest(SERVICE) == history[0]
    assert store.fleet() == [history[0]]


def test_the_fleet_view_is_each_services_newest_release_whatever_was_asked_since(
    store: Store, releases: dict[str, Evaluation]
) -> None:
    store.save_evaluation(releases["3.12.3"])
    # Later, someone asks for an older release (the API's verdict GET needs no token): it is stored, and
    # its history shows it, but what the service runs, for /metrics and the services list, does not change.
    older = dataclasses.replace(releases["3.12.1"], evaluated_at=releases["3.12.3"].evaluated_at + timedelta(hours=1))
    store.save_evaluation(older)

    assert store.latest(SERVICE).version == "3.12.1"
    assert [(s.service, s.version) for s in store.fleet()] == [(SERVICE, "3.12.3")]


def test_a_store_of_schema_1_is_migrated_and_its_fleet_view_is_by_release(tmp_path: Path, releases: dict[str, Evaluation]) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # the tables as release-health wrote them before schema 2
        connection.execute(sa.text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        connection.execute(sa.text("INSERT INTO schema_version VALUES (1)"))
        connection.execute(sa.text(
            "CREATE TABLE evaluations (id INTEGER PRIMARY KEY, service VARCHAR(255) NOT NULL, version VARCHAR(255) NOT NULL, "
            "baseline_version VARCHAR(255) NOT NULL, policy VARCHAR(32) NOT NULL, action VARCHAR(16) NOT NULL, score FLOAT, "
            "reason TEXT NOT NULL, evaluated_at DATETIME NOT NULL, document TEXT NOT NULL)"
        ))
        for n, version in enumerate(("3.12.3", "3.12.1")):  # the older release evaluated last
            evaluation = releases[version]
            connection.execute(
                sa.text("INSERT INTO evaluations VALUES (:id, :service, :version, '-', 'previous', :action, NULL, '', :at, :doc)"),
                {"id": n + 1, "service": SERVICE, "version": version, "action": evaluation.recommendation.action.value,
                 "at": (END + timedelta(hours=n)).strftime("%Y-%m-%d %H:%M:%S.000000"),
                 "doc": json.dumps(document(evaluation))},
            )
    engine.dispose()

    store = Store(url)

    assert [(s.service, s.version) for s in store.fleet()] == [(SERVICE, "3.12.3")]
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version FROM schema_version")).scalars().all() == [SCHEMA_VERSION]
        assert connection.execute(sa.text("SELECT count(*) FROM evaluations WHERE deployed_at IS NULL")).scalar() == 0
    engine.dispose()
    store.close()


def test_record_deploy_replaces_an_earlier_record_of_the_same_version(store: Store) -> None:
    berlin = timezone(timedelta(hours=2))
    store.record_deploy(Deploy(SERVICE, "2.0.0", END - timedelta(hours=1), DeploySourceKind.RECORDED, commit="bbb"))
    store.record_deploy(Deploy(SERVICE, "1.0.0", END - timedelta(hours=3), DeploySourceKind.RECORDED, commit="aaa"))
    # The pipeline re-records 2.0.0 (a re-run), with a time in another zone: the same instant comes back in UTC.
    store.record_deploy(Deploy(SERVICE, "2.0.0", datetime(2025, 11, 19, 23, 30, tzinfo=berlin), DeploySourceKind.RECORDED, commit="ccc"))
    store.record_deploy(Deploy("order-service", "5.0.0", END, DeploySourceKind.RECORDED))

    deploys = store.deploys(SERVICE)

    assert [(d.version, d.started_at, d.commit, d.source) for d in deploys] == [
        ("1.0.0", END - timedelta(hours=3), "aaa", DeploySourceKind.RECORDED),
        ("2.0.0", END - timedelta(hours=2, minutes=30), "ccc", DeploySourceKind.RECORDED),
    ]
    for d in deploys:
        assert_utc(d.started_at)
    assert [d.version for d in store.deploys("order-service")] == ["5.0.0"]
    assert store.deploys("no-such-service") == []


def test_not_a_risk_signatures_are_added_once(store: Store) -> None:
    assert store.not_a_risk() == frozenset()
    store.mark_not_a_risk("Timeout calling <*> after <*> ms", "known flaky dependency")
    store.mark_not_a_risk("Cache miss for key <*>")
    store.mark_not_a_risk("Timeout calling <*> after <*> ms", "noted again")  # replaces, does not fail

    assert store.not_a_risk() == frozenset({"Timeout calling <*> after <*> ms", "Cache miss for key <*>"})


def test_last_good_is_the_newest_earlier_promoted_version(store: Store, releases: dict[str, Evaluation]) -> None:
    for version in ("3.12.0", "3.12.1", "3.12.2", "3.12.3"):
        store.save_evaluation(releases[version])
    deployed = {version: e.candidate.started_at for version, e in releases.items()}

    # 3.12.2 (ROLLBACK) lies between: the last good before 3.12.3 is 3.12.1, not the one it replaced.
    assert store.last_good(SERVICE, before=deployed["3.12.3"], excluding="3.12.3") == "3.12.1"
    # A later PROMOTE (3.12.3) is not a baseline for an earlier release.
    assert store.last_good(SERVICE, before=deployed["3.12.2"], excluding="3.12.2") == "3.12.1"
    # The candidate itself is never its own baseline, and before 3.12.1 nothing was promoted.
    assert store.last_good(SERVICE, before=END, excluding="3.12.3") == "3.12.1"
    assert store.last_good(SERVICE, before=END) == "3.12.3"
    assert store.last_good(SERVICE, before=deployed["3.12.1"], excluding="3.12.1") is None
    assert store.last_good("order-service", before=END) is None


def test_last_good_follows_the_latest_verdict_of_a_version(store: Store, releases: dict[str, Evaluation]) -> None:
    promoted = releases["3.12.1"]
    store.save_evaluation(promoted)

    def judged(at: datetime, action: Action) -> Evaluation:
        return dataclasses.replace(
            promoted, evaluated_at=at, recommendation=dataclasses.replace(promoted.recommendation, action=action)
        )

    # An older verdict saved afterwards (a backfill with --at) does not override the newer PROMOTE...
    store.save_evaluation(judged(END - timedelta(hours=1), Action.ROLLBACK))
    assert store.last_good(SERVICE, before=END, excluding="3.12.3") == "3.12.1"
    # ...but a newer one does: judged again later (say, by the gate as more data came in), rolled back.
    store.save_evaluation(judged(END + timedelta(minutes=5), Action.ROLLBACK))
    assert store.last_good(SERVICE, before=END, excluding="3.12.3") is None


# ---- schema versions ----------------------------------------------------------------------------------


def test_a_store_written_by_a_newer_release_is_refused(store_url: str) -> None:
    Store(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    engine.dispose()

    with pytest.raises(StoreError) as refused:
        Store(store_url)

    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused.value)
    assert "upgrade release-health" in str(refused.value)


def test_a_new_store_records_its_schema_version(store_url: str) -> None:
    Store(store_url).close()
    Store(store_url).close()  # opening again adds nothing
    engine = sa.create_engine(store_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version FROM schema_version")).scalars().all() == [SCHEMA_VERSION]
    engine.dispose()


# ---- nothing half-written -----------------------------------------------------------------------------


def test_a_write_that_fails_midway_leaves_the_earlier_record(store: Store) -> None:
    store.record_deploy(Deploy(SERVICE, "2.0.0", END, DeploySourceKind.RECORDED, commit="abc"))
    # The replacement deletes the earlier record, then its insert fails (a commit is required): the
    # transaction rolls back as a whole, so the earlier record is still there.
    broken = Deploy(SERVICE, "2.0.0", END + timedelta(hours=1), DeploySourceKind.RECORDED, commit=None)  # type: ignore[arg-type]

    with pytest.raises(StoreError) as failed:
        store.record_deploy(broken)

    assert "history store" in str(failed.value)
    assert [(d.version, d.started_at, d.commit) for d in store.deploys(SERVICE)] == [("2.0.0", END, "abc")]


def test_an_evaluation_that_cannot_be_serialised_is_not_stored(store: Store, releases: dict[str, Evaluation]) -> None:
    store.save_evaluation(releases["3.12.1"])
    unserialisable = dataclasses.replace(releases["3.12.3"], notes=(object(),))

    with pytest.raises(TypeError):
        store.save_evaluation(unserialisable)

    assert [s.version for s in store.history(SERVICE)] == ["3.12.1"]


# ---- SQLite: a writer killed mid-write, readers beside a writer ---------------------------------------------

WRITER = """
import sys
from datetime import datetime
from releasehealth.evaluate import evaluate_fleet
from releasehealth.simulator import demo, simulate
from releasehealth.store import Store

end = datetime.fromisoformat(sys.argv[2])
wired = demo.of_fleet(simulate(seed=7, end=end)).wire()
evaluations = evaluate_fleet(wired.sources, wired.catalogue.services, wired.catalogue.policy, now=end)
store = Store(sys.argv[1])
print("ready", flush=True)
while True:
    for evaluation in evaluations:
        print(store.save_evaluation(evaluation), flush=True)  # printed once committed
"""


def test_every_committed_evaluation_survives_a_writer_killed_mid_write(
    tmp_path: Path, fleet_evaluations: list[Evaluation], releases: dict[str, Evaluation]
) -> None:
    path = tmp_path / "history.db"
    url = f"sqlite:///{path}"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url, END.isoformat()], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        printed = [int(writer.stdout.readline()) for _ in range(40)]
        os.kill(writer.pid, signal.SIGKILL)  # most likely inside a transaction: it writes without pause
        writer.wait(timeout=10)
        printed += [int(line) for line in writer.stdout.read().split()]
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == -signal.SIGKILL

    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    store = Store(url)
    stored = {s.id: s for service in {s.service for s in store.fleet()} for s in store.history(service, limit=10_000)}
    assert set(printed) <= set(stored)
    saved = {e.service: document(e) for e in fleet_evaluations}  # what the writer saved, over and over
    assert all(stored[i].document == saved[stored[i].service] for i in printed)
    assert store.save_evaluation(releases["3.12.1"]) > max(printed)  # and it takes writes again
    store.close()


def test_readers_read_while_a_writer_holds_a_write_transaction(tmp_path: Path, releases: dict[str, Evaluation]) -> None:
    path = tmp_path / "history.db"
    store = Store(f"sqlite:///{path}")
    store.save_evaluation(releases["3.12.1"])
    writer = sqlite3.connect(path, isolation_level=None)
    assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    try:
        # EXCLUSIVE: without WAL, this lock would keep every reader out until the writer commits.
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute(
            "INSERT INTO evaluations (service, version, baseline_version, policy, action, score, "
            "reason, evaluated_at, document) VALUES (?, '9.9.9', '3.12.1', 'previous', 'PROMOTE', 100, '', ?, '{}')",
            (SERVICE, "2025-11-20 01:00:00.000000"),
        )

        history = store.history(SERVICE)  # answers at once: the reader does not wait for the writer

        assert [s.version for s in history] == ["3.12.1"]  # and does not see what is not committed
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        store.close()


# ---- a database that is down ----------------------------------------------------------------------------


def test_an_unreachable_postgresql_is_a_store_error_without_the_password() -> None:
    port = free_port()  # nothing listens there
    slept: list[float] = []

    with pytest.raises(StoreError) as failed:
        Store(f"postgresql+psycopg://release:s3cret@127.0.0.1:{port}/history", sleep=slept.append)

    message = str(failed.value)
    assert message.startswith(f"history store postgresql+psycopg://release:***@127.0.0.1:{port}/history: ")
    assert "s3cret" not in message and "(after 4 attempts)" in message
    assert slept == [0.2, 0.4, 0.8]  # retried with backoff before giving up


def test_cli_with_an_unreachable_store_exits_1_with_a_message(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://release:s3cret@127.0.0.1:{free_port()}/history"

    result = runner.invoke(app, [*cli_demo(), "--store", url, "history", SERVICE])

    assert result.exit_code == 1
    assert result.output.startswith("error: history store postgresql+psycopg://127.0.0.1:")  # no user, no password
    assert "s3cret" not in result.output and "Traceback" not in result.output


# ---- the CLI's store commands ----------------------------------------------------------------------------

# `deploys` looks back from now: the CLI's demo ends at the last midnight (the same time of day, so the
# same traffic and verdicts, on every run) and evaluations are made as of that midnight.
CLI_END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
AT = ["--at", CLI_END.strftime("%Y-%m-%dT%H:%M:%S")]


def cli_demo() -> list[str]:
    return ["--demo", "--demo-end", CLI_END.strftime("%Y-%m-%dT%H:%M:%S")]


@pytest.fixture(scope="module")
def cli_releases() -> list[Evaluation]:
    """SERVICE's releases in the CLI's demo fleet, newest first, as `evaluate --at` judges them."""
    catalogue, sources, _ = helpers.demo(seed=7, end=CLI_END)
    return helpers.releases(Wiring(catalogue, sources), SERVICE, now=CLI_END)


def invoke(store: str, *arguments: str) -> Result:
    return runner.invoke(app, [*cli_demo(), "--store", store, *arguments])


def test_record_deploy_of_an_unknown_service_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"

    result = invoke(url, "record-deploy", "--service", "no-such-service", "--version", "1.0.0")

    assert result.exit_code == 1
    assert "unknown service 'no-such-service'" in result.output and SERVICE in result.output
    store = Store(url)
    assert store.deploys("no-such-service") == [] and store.deploys(SERVICE) == []
    store.close()


def _record_latest(url: str, cli_releases: list[Evaluation]) -> Deploy:
    """Record SERVICE's latest release two minutes after it was detected, as a pipeline that knows the
    deploy's time to the second would; return the deploy recorded."""
    latest = cli_releases[0].candidate
    told = Deploy(SERVICE, latest.version, latest.started_at + timedelta(minutes=2), DeploySourceKind.RECORDED, commit="4f2a9c1")
    recorded = invoke(
        url, "record-deploy", "--service", SERVICE, "--version", told.version, "--commit", told.commit,
        "--at", told.started_at.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    assert recorded.exit_code == 0, recorded.output
    assert f"recorded {SERVICE} {told.version} deployed at {told.started_at:%Y-%m-%d %H:%M:%S} UTC" in recorded.output
    return told


def _judged_candidate(result: Result) -> dict:
    return json.loads(result.stdout)["candidate"]


def test_a_recorded_deploy_wins_over_the_detected_one(tmp_path: Path, cli_releases: list[Evaluation]) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    told = _record_latest(url, cli_releases)

    saved = invoke(url, "evaluate", SERVICE, *AT, "--save", "--format", "json")  # --save opens the store

    assert _judged_candidate(saved) | {"last_seen": None} == {
        "version": told.version, "deployed_at": told.started_at.isoformat(), "last_seen": None, "source": "recorded",
        "commit": "4f2a9c1",
    }
    store = Store(url)
    assert [(d.version, d.started_at, d.source) for d in store.deploys(SERVICE)] == [(told.version, told.started_at, DeploySourceKind.RECORDED)]
    store.close()


def test_deploys_and_evaluate_see_a_recorded_deploy_without_save(tmp_path: Path, cli_releases: list[Evaluation]) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    told = _record_latest(url, cli_releases)

    listed = invoke(url, "deploys", SERVICE)
    evaluated = invoke(url, "evaluate", SERVICE, *AT, "--format", "json")

    row = next(line for line in listed.output.splitlines() if told.version in line)
    assert f"{told.started_at:%Y-%m-%d %H:%M:%S}" in row and "recorded" in row
    assert _judged_candidate(evaluated)["source"] == "recorded"


def test_evaluate_save_then_history_lists_it(tmp_path: Path, cli_releases: list[Evaluation]) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    latest = cli_releases[0]

    evaluated = invoke(url, "evaluate", SERVICE, *AT, "--save", "--format", "json")
    history = invoke(url, "history", SERVICE)
    documents = invoke(url, "history", SERVICE, "--format", "json")

    assert evaluated.exit_code == {Action.PROMOTE: 0, Action.ROLLBACK: 3}.get(latest.recommendation.action, 4)
    row = next(line for line in history.output.splitlines() if latest.candidate.version in line)
    assert latest.recommendation.action.value in row and f"{CLI_END:%Y-%m-%d %H:%M}" in row
    assert json.loads(documents.stdout) == [json.loads(evaluated.stdout)]


def test_evaluate_last_good_baseline_skips_a_rolled_back_release(tmp_path: Path, cli_releases: list[Evaluation]) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    actions = [(e.candidate.version, e.recommendation.action) for e in reversed(cli_releases)]  # oldest first
    assert [a for _, a in actions[1:]] == [Action.PROMOTE, Action.ROLLBACK, Action.PROMOTE]  # the demo's story
    (good, _), (bad, _), (candidate, _) = actions[1:]
    for version in (good, bad):
        assert invoke(url, "evaluate", SERVICE, "--version", version, *AT, "--save").exit_code in (0, 3)

    previous = invoke(url, "evaluate", SERVICE, "--version", candidate, *AT, "--format", "json")
    last_good = invoke(url, "evaluate", SERVICE, "--version", candidate, *AT, "--baseline", "last-good", "--format", "json")

    assert json.loads(previous.stdout)["baseline"]["version"] == bad  # the release it replaced
    judged = json.loads(last_good.stdout)
    assert judged["baseline"]["version"] == good and judged["baseline_policy"] == "last-good"


# ---- watch mode -------------------------------------------------------------------------------------

def test_one_watcher_holds_the_lease_until_it_expires(store: Store) -> None:
    now, ttl = datetime(2026, 12, 7, 10, tzinfo=UTC), timedelta(seconds=90)
    assert store.acquire_lease("watch", "a", now, ttl)
    assert not store.acquire_lease("watch", "b", now + timedelta(seconds=30), ttl)  # a holds it
    assert store.acquire_lease("watch", "a", now + timedelta(seconds=30), ttl)  # a renews it
    assert not store.acquire_lease("watch", "b", now + timedelta(seconds=119), ttl)
    assert store.acquire_lease("watch", "b", now + timedelta(seconds=121), ttl)  # a stopped renewing: b takes over
    assert not store.acquire_lease("watch", "a", now + timedelta(seconds=122), ttl)


def test_a_release_is_watched_once_and_its_state_kept(store: Store) -> None:
    from releasehealth.store import WatchedRelease

    now = datetime(2026, 12, 7, 10, tzinfo=UTC)
    release = WatchedRelease("cart-service", "2.4.3", now, "checkout", "watching", "", 0, now + timedelta(minutes=5), "", now)
    assert store.watch(release) and not store.watch(dataclasses.replace(release, team="other"))
    assert store.watched(due_by=now) == [] and store.watched(due_by=now + timedelta(minutes=5)) == [release]
    checked = dataclasses.replace(release, state="final", action="ROLLBACK", checks=1, notified="ROLLBACK")
    store.update_watched(checked)
    assert store.watched(state="watching") == [] and store.watched(service="cart-service") == [checked]


def test_each_message_is_queued_once_and_retried_until_sent(store: Store) -> None:
    now = datetime(2026, 12, 7, 10, tzinfo=UTC)
    notice = {"service": "cart-service", "text": "ROLLBACK cart-service 2.4.3"}
    assert store.enqueue("slack", "cart-service 2.4.3 ROLLBACK", notice, now)
    assert not store.enqueue("slack", "cart-service 2.4.3 ROLLBACK", notice, now)  # a restart, a second watcher
    assert store.enqueue("pager", "cart-service 2.4.3 ROLLBACK", notice, now)  # another channel: its own copy
    first, second = store.due_messages(now)
    store.message_failed(first.id, "slack: HTTP 500", now + timedelta(seconds=10))
    assert [m.id for m in store.due_messages(now)] == [second.id]
    store.message_sent(second.id, now)
    retried, = store.due_messages(now + timedelta(seconds=10))
    assert retried.attempts == 1 and retried.last_error == "slack: HTTP 500" and retried.notice == notice
    store.message_sent(retried.id, now + timedelta(seconds=10))
    assert store.due_messages(now + timedelta(days=1)) == [] and all(m.sent_at for m in store.messages())
