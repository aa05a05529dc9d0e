"""Watch mode: every deploy judged as it happens, stored, and announced where on-call already looks.

Each `step` (every scan interval) the watcher, if it holds the store's lease (two watchers on one store:
one works, the other waits), reads the deploys of every service (the incremental scan: only the time
since the last one), starts watching each service's newest release, and evaluates every watched release
whose checkpoint is due, as the pipeline gate does: alpha spent across the checks, ROLLBACK as soon as it
is credible, PROMOTE only after the whole window. Every evaluation goes to the history store, so every
release gets its post-deploy review without any pipeline integration.

Messages go out on state changes only, one per release and state: when a release turns ROLLBACK, when it
is still HOLD (or INCONCLUSIVE) once its window is over, and, for a release announced so, when it is later
promoted or replaced. They are queued in the store's outbox first and sent after the evaluations, retried
with backoff: a receiver that is down never holds the evaluations up, and a restart loses nothing.

The state lives in the store, not in the process: a watcher restarted (or killed) resumes where the store
says, never judging a checkpoint's release twice into a second message, never missing one.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from releasehealth import config
from releasehealth.config import Catalogue
from releasehealth.deploys import DeployScan, discover
from releasehealth.errors import ConfigError, DeliveryError, ReleaseHealthError, SourceError
from releasehealth.evaluate import evaluate_release
from releasehealth.gate import gated_policy, is_final
from releasehealth.model import Action, Deploy, Service
from releasehealth.notify import ChannelKind, Notice, UnreadableNotice, backoff, release_links, send
from releasehealth.sources import Sources
from releasehealth.store import QueuedMessage, Store, WatchedRelease
from releasehealth.verdicts import Evaluation

log = logging.getLogger(__name__)

LEASE = "watch"
WATCHING, FINAL, SUPERSEDED = "watching", "final", "superseded"
# What is announced; PROMOTE only ends an announcement (a good release is no news), and INCONCLUSIVE (no
# baseline, no data) is the dashboard's and the watcher's metrics' to show, not a page for on-call.
ANNOUNCED = (Action.ROLLBACK, Action.HOLD)


@dataclass(frozen=True)
class Channel:
    """Where messages go: a name (what the outbox keys on), a kind, the URL and secret (read from the
    environment), and which teams' or services' releases it is for (all when both are empty)."""

    name: str
    kind: ChannelKind
    url: str
    secret: str = ""
    teams: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()

    def routes(self, service: str, team: str) -> bool:
        if not self.teams and not self.services:
            return True
        return service in self.services or (bool(team) and team in self.teams)


@dataclass(frozen=True)
class WatchOptions:
    """The watch section of the configuration, its channels' URLs and secrets read from the environment."""

    interval: timedelta = timedelta(seconds=30)  # between scans
    check_interval: timedelta = timedelta(minutes=5)  # between a release's checkpoints (alpha is spent per check)
    # After its window, a release still HOLD is announced and watched this much longer, for a promotion.
    settle: timedelta = timedelta(hours=2)
    dashboard_url: str = ""
    channels: tuple[Channel, ...] = ()
    rollback: config.RollbackHookSettings = config.RollbackHookSettings()  # off unless enabled; dry by default


def options(settings: config.WatchSettings, where: str, environ: Mapping[str, str]) -> WatchOptions:
    """The watch section with each channel's URL and secret read from the variables it names; a variable
    not set is a ConfigError naming the file, the channel and the variable, all of them at once."""
    problems, channels = [], []
    for index, channel in enumerate(settings.channels):
        url, secret = environ.get(channel.url_env, ""), environ.get(channel.secret_env, "") if channel.secret_env else ""
        if not url:
            problems.append(f"watch.channels[{index}] ({channel.name}): url_env: the environment variable {channel.url_env} is not set")
        if channel.secret_env and not secret:
            problems.append(f"watch.channels[{index}] ({channel.name}): secret_env: the environment variable {channel.secret_env} is not set")
        channels.append(Channel(
            channel.name, ChannelKind(channel.kind), url, secret, frozenset(channel.teams), frozenset(channel.services),
        ))
    if problems:
        raise ConfigError(where, problems)
    return WatchOptions(
        settings.interval, settings.check_interval, settings.settle, settings.dashboard_url, tuple(channels), settings.rollback,
    )


def sender(channel: Channel, notice: Notice) -> None:
    """Deliver one message to its channel (raises DeliveryError)."""
    send(channel.kind, channel.url, notice, secret=channel.secret)


def run_command(argv: list[str], timeout: float) -> str:
    """Run the rollback hook's command (no shell: its placeholders are quoted words); its outcome as text."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"not run to the end: {exc}"
    output = (done.stdout + done.stderr).strip()
    return f"exit {done.returncode}" + (f": {output[-500:]}" if output else "")


Send = Callable[[Channel, Notice], None]
Run = Callable[[list[str], float], str]


@dataclass
class StepReport:
    """What one step did: for logs, the watcher's /metrics and the tests."""

    at: datetime
    holder: bool = True
    scan_error: str = ""
    watching: int = 0
    evaluated: list[tuple[str, str, Action]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (service, version, error)
    evaluation_seconds: float = 0.0
    queued: int = 0
    sent_to: Counter[str] = field(default_factory=Counter)  # deliveries, by channel
    failed_to: Counter[str] = field(default_factory=Counter)
    pending: int = 0  # messages still to deliver after this step
    rollbacks: list[tuple[str, str, str, str]] = field(default_factory=list)  # (service, version, command, result)

    @property
    def sent(self) -> int:
        return self.sent_to.total()

    @property
    def send_failures(self) -> int:
        return self.failed_to.total()


@dataclass
class WatchStats:
    """The watcher's running totals, for its /metrics: scans, the source's state, evaluations and messages."""

    scans: int = 0
    scan_errors: int = 0
    source_up: bool = True
    holder: bool = False
    last_scan: float = 0.0  # Unix time
    watching: int = 0
    evaluations: int = 0
    evaluation_failures: int = 0
    evaluation_seconds: float = 0.0
    pending: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def add(self, report: StepReport) -> None:
        self.holder, self.last_scan = report.holder, report.at.timestamp()
        if not report.holder:
            return
        self.scans += 1
        self.scan_errors += bool(report.scan_error)
        self.source_up = not report.scan_error
        self.watching, self.pending = report.watching, report.pending
        self.evaluations += len(report.evaluated)
        self.evaluation_failures += len(report.failed)
        self.evaluation_seconds += report.evaluation_seconds
        self.sent.update(report.sent_to)
        self.failed.update(report.failed_to)


class Watcher:
    def __init__(
        self, sources: Sources, catalogue: Catalogue, store: Store, settings: WatchOptions, holder: str, send: Send = sender,
        run: Run = run_command, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources, self.catalogue, self.store, self.settings = sources, catalogue, store, settings
        self.holder, self.send, self.run, self.monotonic = holder, send, run, monotonic
        self.policy = gated_policy(catalogue.policy, settings.check_interval)

    def stop(self, now: datetime) -> None:
        """Hand the store's lease back: another watcher takes over at its next scan, not three intervals on."""
        self.store.release_lease(LEASE, self.holder, now)

    def step(self, now: datetime) -> StepReport:
        """One scan: deploys, due checkpoints, then the outbox. Never raises for a source or a receiver."""
        report = StepReport(now)
        if not self.store.acquire_lease(LEASE, self.holder, now, 3 * self.settings.interval):
            report.holder = False
            return report
        try:
            # The whole lookback at the first scan, then only the time since each last one (one query per
            # template): a past backfilled or expired moves no service's newest release, which is all it follows.
            scan = discover(self.sources, self.catalogue.services, self.catalogue.policy, now, full_rescan=timedelta.max)
        except SourceError as exc:
            # Prometheus down: nothing is judged (never a PROMOTE without data); the queued messages still go.
            report.scan_error = str(exc)
        else:
            known: dict[str, list[WatchedRelease]] = {}
            for release in self.store.watched():
                known.setdefault(release.service, []).append(release)
            for service in self.catalogue.services:
                self._follow(service, scan.by_service.get(service.name, []), known.get(service.name, []), now, report)
            for release in self.store.watched(state=WATCHING, due_by=now):
                self._check(release, scan, now, report)
        report.watching = len(self.store.watched(state=WATCHING))
        self._deliver(now, report)
        return report

    # ---- releases ----------------------------------------------------------------------------------

    def _follow(
        self, service: Service, deploys: Sequence[Deploy], known: Sequence[WatchedRelease], now: datetime, report: StepReport,
    ) -> None:
        """Watch the service's newest release; a release it replaces is done (and its message resolved)."""
        if not deploys:
            return
        newest = deploys[-1]
        for older in known:
            if older.version != newest.version and older.state != SUPERSEDED and older.deployed_at < newest.started_at:
                self._resolve(older, f"replaced by {newest.version}", now, report)
                self.store.update_watched(dataclasses.replace(older, state=SUPERSEDED, updated_at=now))
        if any(r.version == newest.version for r in known):
            return
        first_check = max(newest.started_at + self.settings.check_interval, now)
        self.store.watch(WatchedRelease(
            service.name, newest.version, newest.started_at, service.team, WATCHING, "", 0, first_check, "", now,
        ))

    def _check(self, release: WatchedRelease, scan: DeployScan, now: datetime, report: StepReport) -> None:
        started = time.monotonic()
        try:
            service = self.catalogue.service(release.service)
            evaluation = evaluate_release(self.sources, service, self.policy, release.version, now=now, discovered=scan)
        except ReleaseHealthError as exc:  # a service no longer configured, a version gone from the lookback
            report.evaluation_seconds += time.monotonic() - started
            report.failed.append((release.service, release.version, str(exc)))
            # Tried again at the next checkpoint, until the release's watch would have ended anyway.
            state = FINAL if now - release.deployed_at >= self._deadline() else WATCHING
            self.store.update_watched(dataclasses.replace(
                release, state=state, next_check_at=now + self.settings.check_interval, updated_at=now,
            ))
            return
        report.evaluation_seconds += time.monotonic() - started
        self.store.save_evaluation(evaluation)
        action = evaluation.recommendation.action
        report.evaluated.append((release.service, release.version, action))
        window_over = is_final(evaluation, self.policy.window) or self._window_over(release, now)
        state, notified = WATCHING, release.notified
        if action is Action.ROLLBACK:
            state = FINAL
        elif action is Action.PROMOTE and window_over:
            state = FINAL
        elif window_over and now - release.deployed_at >= self._deadline():  # still HOLD after its settling time
            state = FINAL
        if action is Action.ROLLBACK:
            self._roll_back(release, evaluation, now, report)
        if action in ANNOUNCED and (action is Action.ROLLBACK or window_over) and notified != action.value:
            report.queued += self._announce(release, evaluation, now)
            notified = action.value
        elif action is Action.PROMOTE and state == FINAL and notified:
            self._resolve(release, "promoted", now, report, evaluation)
            notified = ""
        self.store.update_watched(dataclasses.replace(
            release, state=state, action=action.value, checks=release.checks + 1, notified=notified,
            next_check_at=now + self.settings.check_interval, updated_at=now,
        ))

    def _roll_back(self, release: WatchedRelease, evaluation: Evaluation, now: datetime, report: StepReport) -> None:
        """The rollback hook, when enabled: claimed in the store first, so it runs at most once per release
        (a restart, a second watcher); only printed and recorded while dry_run."""
        hook = self.settings.rollback
        if not hook.enabled:
            return
        baseline = evaluation.recommendation.baseline
        command = hook.command.format(
            service=shlex.quote(release.service), version=shlex.quote(release.version), baseline=shlex.quote(baseline),
        )
        if not self.store.claim_rollback(release.service, release.version, command, now):
            return
        if hook.dry_run:
            result = "dry run: not run (watch.rollback.dry_run)"
        else:
            result = self.run(shlex.split(command), hook.timeout.total_seconds())
        log.warning("rollback hook for %s %s: %s -> %s", release.service, release.version, command, result)
        report.rollbacks.append((release.service, release.version, command, result))
        self.store.rollback_done(release.service, release.version, result)

    def _window_over(self, release: WatchedRelease, now: datetime) -> bool:
        """The candidate had its whole window (and warm-up) to show itself: what it is now is its verdict."""
        return now - release.deployed_at >= self.policy.warmup + self.policy.window + self.settings.check_interval

    def _deadline(self) -> timedelta:
        return self.policy.warmup + self.policy.window + self.settings.settle

    # ---- messages ----------------------------------------------------------------------------------

    def _announce(self, release: WatchedRelease, evaluation: Evaluation, now: datetime) -> int:
        notice = self._notice(release, evaluation, now)
        return self._queue(notice, now)

    def _resolve(
        self, release: WatchedRelease, why: str, now: datetime, report: StepReport, evaluation: Evaluation | None = None,
    ) -> None:
        if not release.notified:
            return
        notice = dataclasses.replace(
            self._notice(release, evaluation, now), action=Action.PROMOTE if why == "promoted" else Action(release.notified),
            resolved_action=Action(release.notified), resolution=why,
        )
        report.queued += self._queue(notice, now)

    def _notice(self, release: WatchedRelease, evaluation: Evaluation | None, now: datetime) -> Notice:
        release_url, report_url = release_links(self.settings.dashboard_url, release.service, release.version)
        recommendation = evaluation.recommendation if evaluation else None
        baseline = recommendation.baseline if recommendation else ""
        return Notice(
            service=release.service, version=release.version, baseline=baseline,
            action=recommendation.action if recommendation else Action(release.action or Action.HOLD.value),
            reason=recommendation.reason if recommendation else "",
            score=evaluation.score.score if evaluation and evaluation.score else None, team=release.team, at=now,
            release_url=release_url, report_url=report_url,
            rollback_command=self.catalogue.rollback(release.service, release.version, baseline) if baseline else "",
        )

    def _queue(self, notice: Notice, now: datetime) -> int:
        return sum(
            self.store.enqueue(channel.name, notice.key, notice.to_dict(), now)
            for channel in self.settings.channels if channel.routes(notice.service, notice.team)
        )

    def _deliver(self, now: datetime, report: StepReport) -> None:
        """Send the due messages, for at most half a scan interval: receivers that hang (each send has its
        own timeout) delay the rest to the next scan, never the scans themselves."""
        channels = {c.name: c for c in self.settings.channels}
        deadline = self.monotonic() + self.settings.interval.total_seconds() / 2
        for message in self.store.due_messages(now):
            channel = channels.get(message.channel)
            if channel is None:  # a channel since removed from the configuration: nowhere to send it
                continue
            if self.monotonic() > deadline:
                break
            self._deliver_one(channel, message, now, report)
        report.pending = self.store.unsent()

    def _deliver_one(self, channel: Channel, message: QueuedMessage, now: datetime, report: StepReport) -> None:
        """Send one message; one not delivered, or not readable by this release-health (queued by a newer
        one, or damaged), fails alone: counted, its error kept, tried again later (by a watcher that reads it)."""
        try:
            self.send(channel, _notice(message))
        except (DeliveryError, UnreadableNotice) as exc:
            report.failed_to[channel.name] += 1
            self.store.message_failed(message.id, str(exc), now + backoff(message.attempts + 1))
            log.warning("message %s to %s not delivered: %s", message.key.replace("\x1f", " "), channel.name, exc)
            return
        report.sent_to[channel.name] += 1
        self.store.message_sent(message.id, now)


def _notice(message: QueuedMessage) -> Notice:
    """The notice a queued message holds; raise UnreadableNotice when its stored content cannot be read."""
    if message.unreadable:
        raise UnreadableNotice(message.unreadable)
    return Notice.from_dict(message.notice)
