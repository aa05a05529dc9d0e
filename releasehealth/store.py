"""The history store: recorded and detected deploys, every evaluation with its evidence, and the
"not a risk" signatures. SQLite by default (a file), PostgreSQL by URL; SQLAlchemy Core.

Writes are transactions (an evaluation and its row are written whole or not at all); SQLite runs in
WAL mode so readers keep reading while a writer writes, and waits (busy timeout) rather than failing
on a lock. The schema is versioned in a one-row `schema_version` table: a store created by a newer
release is refused with a clear error instead of being misread. A database that is locked or
unreachable is retried briefly, then raised as StoreError naming the database (never its password).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from releasehealth.errors import ReleaseHealthError
from releasehealth.model import Action, Deploy, DeploySourceKind
from releasehealth.serialize import evaluation_to_dict
from releasehealth.verdicts import Evaluation

# 2: evaluations.deployed_at, the candidate's deploy time: the fleet view is each service's newest release.
# 3: watch mode's tables (watched, outbox, leases), created beside the others.
# 4: backtests and their days (releasehealth.backtest), created beside the others.
SCHEMA_VERSION = 4
DEFAULT_URL = "sqlite:///release-health.db"
RETRIES = 3  # a locked or briefly unreachable database: tried this many times more, with backoff
T = TypeVar("T")

metadata = sa.MetaData()
schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))
deploys = sa.Table(
    "deploys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("service", sa.String(255), nullable=False),
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # recorded | detected | event
    sa.Column("commit_sha", sa.String(255), nullable=False, default=""),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("service", "version", name="one_deploy_per_version"),
)
evaluations = sa.Table(
    "evaluations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("service", sa.String(255), nullable=False),
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("baseline_version", sa.String(255), nullable=False),
    sa.Column("policy", sa.String(32), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("document", sa.Text, nullable=False),  # the evaluation as JSON: verdicts, queries, series, logs
    sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=True),  # the candidate's deploy (schema 2)
    sa.Index("evaluations_by_release", "service", "version", "evaluated_at"),
    sa.Index("evaluations_by_time", "service", "evaluated_at"),
    sa.Index("evaluations_by_deploy", "service", "deployed_at", "evaluated_at"),
)
not_a_risk = sa.Table(
    "not_a_risk",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("signature", sa.Text, nullable=False, unique=True),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

# Watch mode (schema 3): the releases being watched, the messages to send, and who is the watcher.
watched = sa.Table(
    "watched",
    metadata,
    sa.Column("service", sa.String(255), nullable=False),
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("team", sa.String(255), nullable=False, default=""),
    sa.Column("state", sa.String(16), nullable=False),  # watching | final | superseded
    sa.Column("action", sa.String(16), nullable=False, default=""),  # the last verdict's
    sa.Column("checks", sa.Integer, nullable=False, default=0),
    sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("notified", sa.String(16), nullable=False, default=""),  # the action of the open notice, "" none
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # The rollback hook, run at most once per release: claimed (its time) before it runs, then its outcome.
    sa.Column("rollback_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("rollback_command", sa.Text, nullable=False, default=""),
    sa.Column("rollback_result", sa.Text, nullable=False, default=""),
    sa.PrimaryKeyConstraint("service", "version", name="one_watch_per_release"),
    sa.Index("watched_by_state", "state", "next_check_at"),
)
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(255), nullable=False),  # the channel's name in the configuration
    sa.Column("notice_key", sa.String(1100), nullable=False),  # one message per release and state
    sa.Column("notice", sa.Text, nullable=False),  # the message's content as JSON (no URL, no secret)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, default=""),
    sa.UniqueConstraint("channel", "notice_key", name="one_message_per_release_and_state"),
    sa.Index("outbox_due", "sent_at", "next_attempt_at"),
)
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# Backtests (schema 4): each run with its settings, and its days as they are done (a run resumes from them).
backtests = sa.Table(
    "backtests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),  # its settings and configuration: what a resumed run must match
    sa.Column("settings", sa.Text, nullable=False),  # JSON, for people
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),  # None: running, interrupted or paused
    sa.Column("summary", sa.Text, nullable=False, default=""),  # the calibration as JSON, once finished
    sa.Index("backtests_by_digest", "digest", "finished_at"),
)
backtest_days = sa.Table(
    "backtest_days",
    metadata,
    sa.Column("backtest_id", sa.Integer, sa.ForeignKey("backtests.id", ondelete="CASCADE"), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # ISO date, UTC
    sa.Column("trials", sa.Text, nullable=False),  # JSON list
    sa.Column("queries", sa.Integer, nullable=False),
    sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("backtest_id", "day", name="one_row_per_backtest_day"),
)


@dataclass(frozen=True)
class StoredBacktest:
    id: int
    settings: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None
    summary: dict[str, Any] | None  # None until finished


class StoreError(ReleaseHealthError):
    """The history store could not be read or written; nothing was half-written."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"history store {where}: {message}")


@dataclass(frozen=True)
class StoredEvaluation:
    """One stored evaluation: its summary columns and the full JSON document."""

    id: int
    service: str
    version: str
    baseline_version: str
    policy: str
    action: Action
    score: float | None
    reason: str
    evaluated_at: datetime
    document: dict[str, Any]


class Store:
    """The history store at `url` (an SQLAlchemy URL: sqlite:///path.db, postgresql+psycopg://...)."""

    def __init__(
        self, url: str = DEFAULT_URL, *, password: str | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        """`password`, from the environment, is added to the URL; it never appears in `name` or errors."""
        self._sleep = sleep
        try:
            parsed = sa.make_url(url)
        except (SQLAlchemyError, ValueError) as exc:
            raise StoreError(repr(url.split("@")[-1]), f"not a database URL: {exc}") from None
        if password is not None:
            parsed = parsed.set(password=password)
        self.url = parsed.render_as_string(hide_password=False)
        self.name = parsed.render_as_string(hide_password=True)
        try:
            self.engine = _engine(self.url)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StoreError(self.name, f"cannot open: {exc}") from None
        self._migrate()

    def close(self) -> None:
        self.engine.dispose()

    # ---- deploys -----------------------------------------------------------------------------------

    def record_deploy(self, deploy: Deploy) -> Deploy:
        """Record a deploy (a pipeline's word wins over detection: it replaces a detected one)."""
        row = {
            "service": deploy.service, "version": deploy.version, "started_at": _utc(deploy.started_at),
            "source": deploy.source.value, "commit_sha": deploy.commit, "recorded_at": datetime.now(UTC),
        }

        def write(connection: Connection) -> None:
            connection.execute(
                deploys.delete().where(deploys.c.service == deploy.service, deploys.c.version == deploy.version)
            )
            connection.execute(deploys.insert().values(**row))

        self._write(write)
        return deploy

    def deploys(self, service: str) -> list[Deploy]:
        """The recorded deploys of a service, oldest first."""
        query = sa.select(deploys).where(deploys.c.service == service).order_by(deploys.c.started_at)
        return [_deploy(row) for row in self._read(lambda c: c.execute(query).all())]

    # ---- evaluations -------------------------------------------------------------------------------

    def save_evaluation(self, evaluation: Evaluation) -> int:
        """Store an evaluation whole (one transaction); return its id."""
        if evaluation.candidate is None:
            raise StoreError(self.name, f"an evaluation of {evaluation.service} without a candidate is not stored")
        r = evaluation.recommendation
        row = {
            "service": evaluation.service, "version": evaluation.candidate.version, "baseline_version": r.baseline,
            "policy": evaluation.policy.value, "action": r.action.value,
            "score": evaluation.score.score if evaluation.score else None, "reason": r.reason,
            "evaluated_at": _utc(evaluation.evaluated_at), "deployed_at": _utc(evaluation.candidate.started_at),
            "document": json.dumps(evaluation_to_dict(evaluation), separators=(",", ":")),
        }
        def insert(connection: Connection) -> int:
            key = connection.execute(evaluations.insert().values(**row)).inserted_primary_key
            assert key is not None  # an insert into a table with a primary key always has one
            return int(key[0])

        return self._write(insert)

    def latest(self, service: str, version: str | None = None) -> StoredEvaluation | None:
        """The newest stored evaluation of a release (of the service's newest evaluated release if None)."""
        query = sa.select(evaluations).where(evaluations.c.service == service)
        if version is not None:
            query = query.where(evaluations.c.version == version)
        query = query.order_by(evaluations.c.evaluated_at.desc(), evaluations.c.id.desc()).limit(1)
        rows = self._read(lambda c: c.execute(query).all())
        return _stored(rows[0]) if rows else None

    def history(self, service: str, limit: int = 200) -> list[StoredEvaluation]:
        """A service's evaluations, newest first."""
        query = (
            sa.select(evaluations).where(evaluations.c.service == service)
            .order_by(evaluations.c.evaluated_at.desc(), evaluations.c.id.desc()).limit(limit)
        )
        return [_stored(row) for row in self._read(lambda c: c.execute(query).all())]

    def fleet(self) -> list[StoredEvaluation]:
        """Each service's newest release, in its newest evaluation: what the service runs now, whatever
        older release someone asked about since (a verdict of an older release never stands for the
        service). One query, whose cost grows with the number of services, not of evaluations stored."""
        newest = _newest_of_each_service()
        query = sa.select(evaluations).join(newest, evaluations.c.id == newest.c.id).order_by(evaluations.c.service)
        return [_stored(row) for row in self._read(lambda c: c.execute(query).all())]

    def last_good(self, service: str, before: datetime, excluding: str = "") -> str | None:
        """The newest version of `service` deployed before `before` whose latest evaluation was PROMOTE."""
        latest = _newest(evaluations.c.version, evaluations.c.service == service)
        query = (
            sa.select(evaluations.c.version, evaluations.c.document)
            .join(latest, evaluations.c.id == latest.c.id)
            .where(evaluations.c.action == Action.PROMOTE.value, evaluations.c.version != excluding)
        )
        promoted = []
        for version, document in self._read(lambda c: c.execute(query).all()):
            deployed = (json.loads(document).get("candidate") or {}).get("deployed_at")
            if deployed and datetime.fromisoformat(deployed) < before:
                promoted.append((datetime.fromisoformat(deployed), version))
        return max(promoted)[1] if promoted else None

    # ---- not a risk --------------------------------------------------------------------------------

    def mark_not_a_risk(self, signature: str, note: str = "") -> None:
        def write(connection: Connection) -> None:
            connection.execute(not_a_risk.delete().where(not_a_risk.c.signature == signature))
            connection.execute(not_a_risk.insert().values(signature=signature, note=note, added_at=datetime.now(UTC)))

        self._write(write)

    def not_a_risk(self) -> frozenset[str]:
        rows = self._read(lambda c: c.execute(sa.select(not_a_risk.c.signature)).all())
        return frozenset(row[0] for row in rows)

    # ---- watch mode --------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Hold the lease `name` until now + ttl if it is free, expired or already `holder`'s: two watchers
        on one store, and only the holder evaluates and notifies. True when `holder` holds it."""
        until, now = _utc(now + ttl), _utc(now)

        def write(connection: Connection) -> bool:
            taken = connection.execute(
                leases.update().where(leases.c.name == name, sa.or_(leases.c.holder == holder, leases.c.expires_at <= now))
                .values(holder=holder, expires_at=until)
            ).rowcount
            if taken:
                return True
            return bool(_insert_new(connection, leases, {"name": name, "holder": holder, "expires_at": until}))

        return self._write(write)

    def lease(self, name: str) -> tuple[str, datetime] | None:
        """(holder, expires_at) of the lease `name`, None when nobody ever took it."""
        rows = self._read(lambda c: c.execute(sa.select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)).all())
        return (rows[0][0], _read_time(rows[0][1])) if rows else None

    def release_lease(self, name: str, holder: str, now: datetime) -> None:
        """Hand the lease back (a watcher stopping cleanly): the next one takes over at its next scan."""
        self._write(lambda c: c.execute(
            leases.update().where(leases.c.name == name, leases.c.holder == holder).values(expires_at=_utc(now))
        ))

    def watch(self, release: WatchedRelease) -> bool:
        """Start watching a release; False when it is watched (or was) already."""
        return bool(self._write(lambda c: _insert_new(c, watched, _watched_row(release))))

    def watched(self, *, state: str | None = None, due_by: datetime | None = None, service: str | None = None) -> list[WatchedRelease]:
        """The watched releases (in `state`, due for a check by `due_by`, of `service`), oldest deploy first."""
        query = sa.select(watched).order_by(watched.c.deployed_at, watched.c.service, watched.c.version)
        if state is not None:
            query = query.where(watched.c.state == state)
        if due_by is not None:
            query = query.where(watched.c.next_check_at <= _utc(due_by))
        if service is not None:
            query = query.where(watched.c.service == service)
        return [_watched_release(row) for row in self._read(lambda c: c.execute(query).all())]

    def update_watched(self, release: WatchedRelease) -> None:
        row = _watched_row(release)
        self._write(lambda c: c.execute(
            watched.update().where(watched.c.service == release.service, watched.c.version == release.version).values(**row)
        ))

    def claim_rollback(self, service: str, version: str, command: str, now: datetime) -> bool:
        """Claim the release's one run of the rollback hook (recording the command); False when it was
        claimed before (by this watcher before a restart, or another one)."""
        claimed = self._write(lambda c: c.execute(
            watched.update().where(watched.c.service == service, watched.c.version == version, watched.c.rollback_at.is_(None))
            .values(rollback_at=_utc(now), rollback_command=command)
        ).rowcount)
        return bool(claimed)

    def rollback_done(self, service: str, version: str, result: str) -> None:
        self._write(lambda c: c.execute(
            watched.update().where(watched.c.service == service, watched.c.version == version).values(rollback_result=result)
        ))

    def rollbacks(self) -> list[tuple[str, str, datetime, str, str]]:
        """(service, version, when, command, result) of every rollback the hook ran (or, dry, would have)."""
        query = sa.select(watched.c.service, watched.c.version, watched.c.rollback_at, watched.c.rollback_command,
                          watched.c.rollback_result).where(watched.c.rollback_at.is_not(None)).order_by(watched.c.rollback_at)
        return [(r[0], r[1], _read_time(r[2]), r[3], r[4]) for r in self._read(lambda c: c.execute(query).all())]

    def enqueue(self, channel: str, key: str, notice: dict[str, Any], now: datetime) -> bool:
        """Queue one message for `channel`; False when this release and state was queued for it before (a
        restart, another watcher): each is sent once."""
        row = {
            "channel": channel, "notice_key": key, "notice": json.dumps(notice, separators=(",", ":")),
            "created_at": _utc(now), "attempts": 0, "next_attempt_at": _utc(now), "last_error": "",
        }
        return bool(self._write(lambda c: _insert_new(c, outbox, row)))

    def due_messages(self, now: datetime, limit: int = 100) -> list[QueuedMessage]:
        """The unsent messages whose next attempt is due, oldest first."""
        query = (
            sa.select(outbox).where(outbox.c.sent_at.is_(None), outbox.c.next_attempt_at <= _utc(now))
            .order_by(outbox.c.id).limit(limit)
        )
        return [_queued(row) for row in self._read(lambda c: c.execute(query).all())]

    def unsent(self) -> int:
        """How many queued messages are not delivered yet (due or waiting for their next attempt)."""
        query = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        return int(self._read(lambda c: c.execute(query).scalar_one()))

    def messages(self) -> list[QueuedMessage]:
        """Every queued message, sent or not, oldest first."""
        return [_queued(row) for row in self._read(lambda c: c.execute(sa.select(outbox).order_by(outbox.c.id)).all())]

    def message_sent(self, message_id: int, now: datetime) -> None:
        self._write(lambda c: c.execute(outbox.update().where(outbox.c.id == message_id).values(sent_at=_utc(now), last_error="")))

    def message_failed(self, message_id: int, error: str, retry_at: datetime) -> None:
        self._write(lambda c: c.execute(
            outbox.update().where(outbox.c.id == message_id)
            .values(attempts=outbox.c.attempts + 1, last_error=error, next_attempt_at=_utc(retry_at))
        ))

    # ---- plumbing ----------------------------------------------------------------------------------

    # ---- backtests ----------------------------------------------------------------------------------

    def start_backtest(self, digest: str, settings: dict[str, Any], now: datetime) -> tuple[int, dict[str, tuple[list[Any], int]]]:
        """The unfinished backtest of these settings and configuration (`digest`) with the days it has done
        (day -> (trials, queries)), to resume; or a new one with none."""

        def start(connection: Connection) -> tuple[int, dict[str, tuple[list[Any], int]]]:
            found = connection.execute(
                sa.select(backtests.c.id).where(backtests.c.digest == digest, backtests.c.finished_at.is_(None))
                .order_by(backtests.c.id.desc()).limit(1)
            ).scalar()
            if found is None:
                row = {"digest": digest, "settings": json.dumps(settings), "started_at": _utc(now), "summary": ""}
                inserted = connection.execute(backtests.insert().values(**row).returning(backtests.c.id)).scalar_one()
                return int(inserted), {}
            days = connection.execute(sa.select(backtest_days).where(backtest_days.c.backtest_id == found)).all()
            return int(found), {d.day: (json.loads(d.trials), d.queries) for d in days}

        return self._write(start)

    def save_backtest_day(self, backtest_id: int, day: str, trials: list[Any], queries: int, now: datetime) -> None:
        """One day's trials, whole or not at all (a day done twice by two runs keeps the first)."""
        row = {"backtest_id": backtest_id, "day": day, "trials": json.dumps(trials, separators=(",", ":")),
               "queries": queries, "done_at": _utc(now)}
        self._write(lambda c: _insert_new(c, backtest_days, row))

    def finish_backtest(self, backtest_id: int, summary: dict[str, Any], now: datetime) -> None:
        self._write(lambda c: c.execute(
            backtests.update().where(backtests.c.id == backtest_id).values(summary=json.dumps(summary), finished_at=_utc(now))
        ))

    def backtests(self, limit: int = 50) -> list[StoredBacktest]:
        """The latest backtests, newest first (an unfinished one without its summary)."""
        query = sa.select(backtests).order_by(backtests.c.id.desc()).limit(limit)
        return [
            StoredBacktest(r.id, json.loads(r.settings), _read_time(r.started_at),
                           _read_time(r.finished_at) if r.finished_at is not None else None,
                           json.loads(r.summary) if r.summary else None)
            for r in self._read(lambda c: c.execute(query).all())
        ]

    def _migrate(self) -> None:
        def migrate(connection: Connection) -> None:
            known = sa.inspect(connection).get_table_names()
            found = connection.execute(sa.select(schema_version.c.version)).scalars().all() if "schema_version" in known else []
            if found and max(found) > SCHEMA_VERSION:
                raise StoreError(
                    self.name, f"schema version {max(found)} was written by a newer release-health "
                    f"(this one knows {SCHEMA_VERSION}): upgrade release-health"
                )
            if found and max(found) < 2:
                _add_deployed_at(connection)
            metadata.create_all(connection)
            if not found:
                connection.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            elif max(found) < SCHEMA_VERSION:
                connection.execute(schema_version.update().values(version=SCHEMA_VERSION))

        self._write(migrate)

    def _write(self, work: Callable[[Connection], T]) -> T:
        return self._retry(lambda: self._transaction(work))

    def _read(self, work: Callable[[Connection], T]) -> T:
        def read() -> T:
            with self.engine.connect() as connection:
                return work(connection)

        return self._retry(read)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:  # commit on success, roll back on any exception
            return work(connection)

    def _retry(self, attempt: Callable[[], T]) -> T:
        for n in range(RETRIES + 1):
            try:
                return attempt()
            except OperationalError as exc:  # locked, unreachable, connection lost: worth another try
                if n == RETRIES:
                    raise StoreError(self.name, f"{_first_line(exc)} (after {RETRIES + 1} attempts)") from None
                self._sleep(0.2 * 2**n)
            except DBAPIError as exc:
                raise StoreError(self.name, _first_line(exc)) from None
        raise AssertionError("unreachable")


def _engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 10})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
        cursor.execute("PRAGMA busy_timeout=10000")  # wait for a lock rather than fail at once
        cursor.close()

    return engine


def _newest(partition: sa.ColumnElement[Any], *where: sa.ColumnElement[bool]) -> sa.Subquery:
    """The ids of the newest evaluation of each `partition` (service, or version): newest by evaluation
    time then id, as latest() and history() order them; insertion order alone is not time order (a
    re-run with --at, a backfill)."""
    rank = sa.func.row_number().over(
        partition_by=partition, order_by=(evaluations.c.evaluated_at.desc(), evaluations.c.id.desc())
    )
    ranked = sa.select(evaluations.c.id, rank.label("rank")).where(*where).subquery()
    return sa.select(ranked.c.id).where(ranked.c.rank == 1).subquery()


def _add_deployed_at(connection: Connection) -> None:
    """Schema 1 to 2: the deploy time of each evaluation's candidate, from its document, in a column."""
    kind = sa.DateTime(timezone=True).compile(dialect=connection.dialect)
    connection.execute(sa.text(f"ALTER TABLE evaluations ADD COLUMN deployed_at {kind}"))
    for identity, document in connection.execute(sa.select(evaluations.c.id, evaluations.c.document)).all():
        deployed = (json.loads(document).get("candidate") or {}).get("deployed_at")
        if deployed:
            at = _utc(datetime.fromisoformat(deployed))
            connection.execute(evaluations.update().where(evaluations.c.id == identity).values(deployed_at=at))


def _newest_of_each_service() -> sa.Subquery:
    """The id of each service's newest release's newest evaluation, by a loose index scan: a recursive
    CTE hops from one service to the next in the (service, deployed_at, evaluated_at) index, then one
    backward seek per service finds it. A GROUP BY or a window reads the index entry of every evaluation ever stored (50 ms at
    100,000 on SQLite and PostgreSQL, and the store is kept forever); this stays under a millisecond."""
    e = evaluations.c
    services = sa.select(sa.func.min(e.service).label("service")).cte("services", recursive=True)
    following = sa.select(sa.func.min(e.service)).where(e.service > services.c.service).scalar_subquery()
    services = services.union_all(sa.select(following).where(services.c.service.is_not(None)))
    newest = (
        sa.select(e.id).where(e.service == services.c.service)
        .order_by(e.deployed_at.desc().nulls_last(), e.evaluated_at.desc(), e.id.desc()).limit(1).scalar_subquery()
    )
    return sa.select(newest.label("id")).select_from(services).where(services.c.service.is_not(None)).subquery()


def exists(url: str) -> bool:
    """Whether the history store at `url` is there to read: a SQLite file that exists, or any server
    database (only the commands that write create a SQLite file)."""
    try:
        parsed = sa.make_url(url)
    except (SQLAlchemyError, ValueError):
        return False
    if parsed.get_backend_name() != "sqlite":
        return True
    database = parsed.database
    return bool(database) and database != ":memory:" and Path(str(database)).exists()


@contextmanager
def opened(url: str) -> Iterator[Store]:
    store = Store(url)
    try:
        yield store
    finally:
        store.close()


def _utc(at: datetime) -> datetime:
    """A time to write, in UTC (naive: taken as UTC). SQLite keeps no offset, only the wall time: a time
    in another zone must be converted first, or it would read back shifted by its offset."""
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def _read_time(at: datetime) -> datetime:
    """A time read back, in UTC. SQLite returns naive datetimes (they were written in UTC); PostgreSQL
    returns them in the session's time zone, which is the server's unless set: convert, so that what
    the store hands back (and the CLI prints as UTC) does not depend on the server's setting."""
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def _deploy(row: Any) -> Deploy:
    return Deploy(row.service, row.version, _read_time(row.started_at), DeploySourceKind(row.source), None, row.commit_sha)


def _stored(row: Any) -> StoredEvaluation:
    return StoredEvaluation(
        row.id, row.service, row.version, row.baseline_version, row.policy, Action(row.action), row.score, row.reason,
        _read_time(row.evaluated_at), json.loads(row.document),
    )


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0][:300]


@dataclass(frozen=True)
class WatchedRelease:
    """A release watch mode follows: its last verdict, the checks so far, when the next is due, and the
    action of the message it is announced in (when one was sent)."""

    service: str
    version: str
    deployed_at: datetime
    team: str
    state: str  # watching | final | superseded
    action: str
    checks: int
    next_check_at: datetime
    notified: str
    updated_at: datetime


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    channel: str
    key: str
    notice: dict[str, Any]
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str
    unreadable: str = ""  # why the stored content is not a JSON object, when it is not (`notice` is then empty)


def _insert_new(connection: Connection, table: sa.Table, row: dict[str, Any]) -> int:
    """Insert `row` unless a row with its key is there (another writer's included): the rows inserted."""
    # ON CONFLICT DO NOTHING, in each database's dialect; the rows RETURNING tells what was inserted
    # (psycopg's rowcount says -1 for such an insert).
    key = next(iter(table.primary_key.columns))
    if connection.dialect.name == "postgresql":
        statement: sa.Insert = postgresql.insert(table).values(**row).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).values(**row).on_conflict_do_nothing()
    return len(connection.execute(statement.returning(key)).all())


def _watched_row(release: WatchedRelease) -> dict[str, Any]:
    return {
        "service": release.service, "version": release.version, "deployed_at": _utc(release.deployed_at),
        "team": release.team, "state": release.state, "action": release.action, "checks": release.checks,
        "next_check_at": _utc(release.next_check_at), "notified": release.notified, "updated_at": _utc(release.updated_at),
    }


def _watched_release(row: Any) -> WatchedRelease:
    return WatchedRelease(
        row.service, row.version, _read_time(row.deployed_at), row.team, row.state, row.action, row.checks,
        _read_time(row.next_check_at), row.notified, _read_time(row.updated_at),
    )


def _queued(row: Any) -> QueuedMessage:
    notice, unreadable = _notice_document(row.notice)
    return QueuedMessage(
        row.id, row.channel, row.notice_key, notice, row.attempts, _read_time(row.next_attempt_at),
        _read_time(row.sent_at) if row.sent_at is not None else None, row.last_error, unreadable,
    )


def _notice_document(text: str) -> tuple[dict[str, Any], str]:
    """A queued message's stored content, or why it is not a JSON object: that message fails alone (the
    watcher says so), the others are still read and sent."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        return {}, f"not JSON ({exc})"
    if not isinstance(document, dict):
        return {}, f"not a JSON object but {type(document).__name__}"
    return document, ""
