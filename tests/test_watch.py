"""Watch mode over a simulated day: every deploy of the demo fleet judged as it happens, stored, and the bad
ones announced once each, across a watcher killed mid-day and a second watcher on the same store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from releasehealth.errors import DeliveryError
from releasehealth.model import Action
from releasehealth.notify import ChannelKind, Notice
from releasehealth.simulator import Fleet, demo, simulate
from releasehealth.store import Store
from releasehealth.watch import Channel, StepReport, Watcher, WatchSettings

SEED = 7
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # the same day's shape every run
STEP = timedelta(minutes=10)
SETTINGS = WatchSettings(
    interval=STEP, check_interval=timedelta(minutes=15), dashboard_url="https://rh.example.com",
    channels=(Channel("chat", ChannelKind.SLACK, "https://hooks.example.com/x"),
              Channel("checkout-pager", ChannelKind.WEBHOOK, "https://pager.example.com", secret="s", teams=frozenset({"checkout"}))),
)

Sent = list[tuple[str, Notice]]


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return simulate(seed=SEED, end=END)


def _watcher(fleet: Fleet, url: str, holder: str, send: Callable[[Channel, Notice], None]) -> Watcher:
    wired = demo.of_fleet(fleet, store=url).wire(create_store=True)
    assert wired.sources.store is not None
    return Watcher(wired.sources, wired.catalogue, wired.sources.store, SETTINGS, holder, send)


def _times(fleet: Fleet) -> list[datetime]:
    first = min(r.deployed_at for s in fleet.services for r in s.releases[1:])
    start = first.replace(second=0, microsecond=0) - STEP
    return [start + n * STEP for n in range(int((END - start) / STEP) + 1)]


@pytest.fixture(scope="module")
def day(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Sent, list[StepReport], str]:
    """The day watched by A until midday, when it dies without a word (its lease left to expire), and by B,
    which steps all day on the same store and takes over; the first chat message fails once."""
    url = f"sqlite:///{tmp_path_factory.mktemp('watch') / 'history.db'}"
    sent: Sent = []
    refused: list[str] = []

    def send(channel: Channel, notice: Notice) -> None:
        if channel.name == "chat" and not refused:
            refused.append(notice.key)
            raise DeliveryError("slack: HTTP 500")
        sent.append((channel.name, notice))

    a, b = _watcher(fleet, url, "watcher-a", send), _watcher(fleet, url, "watcher-b", send)
    times = _times(fleet)
    killed = times[len(times) // 2]
    reports = []
    for now in times:
        if now < killed:
            reports.append(a.step(now))
        reports.append(b.step(now))
    return sent, reports, url


def _releases(fleet: Fleet) -> dict[tuple[str, str], bool]:
    """(service, version) of every deploy: whether it is a regression."""
    return {(s.name, r.version): r.label.is_regression for s in fleet.services for r in s.releases[1:]}


def test_every_bad_release_is_announced_once_and_no_good_one(fleet: Fleet, day: tuple[Sent, list[StepReport], str]) -> None:
    sent, _, _ = day
    chat = [n for channel, n in sent if channel == "chat"]
    assert [key for key, count in Counter(n.key for n in chat).items() if count > 1] == []  # no duplicate
    announced = {(n.service, n.version) for n in chat if not n.resolved}
    releases = _releases(fleet)
    assert {r for r, bad in releases.items() if bad} == announced
    assert all(n.action in (Action.ROLLBACK, Action.HOLD) for n in chat if not n.resolved)
    rollback = next(n for n in chat if n.action is Action.ROLLBACK)
    assert rollback.release_url.startswith("https://rh.example.com/release?service=") and "rollout undo" in rollback.rollback_command


def test_each_channel_gets_the_releases_routed_to_it(day: tuple[Sent, list[StepReport], str]) -> None:
    sent, _, _ = day
    pager = [n for channel, n in sent if channel == "checkout-pager"]
    assert pager and {n.team for n in pager} == {"checkout"}
    assert {n.key for n in pager} <= {n.key for channel, n in sent if channel == "chat"}


def test_every_deploy_is_judged_and_stored_and_one_watcher_works_at_a_time(
    fleet: Fleet, day: tuple[Sent, list[StepReport], str],
) -> None:
    _, reports, url = day
    store = Store(url)
    try:
        reviewed = {(e.service, e.version) for s in fleet.services for e in store.history(s.name)}
        assert set(_releases(fleet)) <= reviewed  # every release has its post-deploy review
        assert {r.state for r in store.watched()} <= {"final", "superseded", "watching"}
        messages = store.messages()
        assert all(m.sent_at is not None for m in messages)
        assert [m.attempts for m in messages if m.last_error == ""].count(0) == len(messages) - 1  # the one refused
    finally:
        store.close()
    by_time: dict[datetime, list[StepReport]] = {}
    for report in reports:
        by_time.setdefault(report.at, []).append(report)
    assert all(sum(r.holder for r in step) == 1 for step in by_time.values() if len(step) == 2)  # A or B, never both
    worked = [r for r in reports if r.holder]
    gap = max((later.at - earlier.at for earlier, later in zip(worked, worked[1:], strict=False)), default=timedelta())
    assert gap <= 4 * STEP  # B took over once A's lease (three intervals) ran out
