"""Watch mode over a simulated day: every deploy of the demo fleet judged as it happens, stored, and the bad
ones announced once each, across a watcher killed mid-day and a second watcher on the same store."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from releasehealth.config import RollbackHookSettings
from releasehealth.errors import DeliveryError
from releasehealth.model import Action
from releasehealth.notify import ChannelKind, Notice
from releasehealth.simulator import Fleet, demo, simulate
from releasehealth.store import Store
from releasehealth.watch import Channel, StepReport, Watcher, WatchOptions
from testing.servers import ElasticsearchServer, PostgresServer, PrometheusServer

SEED = 7
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # the same day's shape every run
STEP = timedelta(minutes=10)
SETTINGS = WatchOptions(
    interval=STEP, check_interval=timedelta(minutes=15), dashboard_url="https://rh.example.com",
    channels=(Channel("chat", ChannelKind.SLACK, "https://hooks.example.com/x"),
              Channel("checkout-pager", ChannelKind.WEBHOOK, "https://pager.example.com", secret="s", teams=frozenset({"checkout"}))),
    rollback=RollbackHookSettings(command="kubectl argo rollouts abort {service} --note {version}", enabled=True, dry_run=False),
)

Sent = list[tuple[str, Notice]]
RAN: list[list[str]] = []  # the rollback hook's command lines, as the day's watchers ran them


@pytest.fixture(scope="module")
def day_fleet() -> Fleet:
    """The demo fleet of one day (named apart from the session's `fleet`, which the real Prometheus holds)."""
    return simulate(seed=SEED, end=END)


def _watcher(
    day_fleet: Fleet, url: str, holder: str, send: Callable[[Channel, Notice], None], settings: WatchOptions = SETTINGS,
    monotonic: Callable[[], float] = time.monotonic,
) -> Watcher:
    wired = demo.of_fleet(day_fleet, store=url).wire(create_store=True)
    assert wired.sources.store is not None

    def run(argv: list[str], timeout: float) -> str:
        RAN.append(argv)
        return "exit 0"

    return Watcher(wired.sources, wired.catalogue, wired.sources.store, settings, holder, send, run, monotonic)


def _times(day_fleet: Fleet) -> list[datetime]:
    first = min(r.deployed_at for s in day_fleet.services for r in s.releases[1:])
    start = first.replace(second=0, microsecond=0) - STEP
    return [start + n * STEP for n in range(int((END - start) / STEP) + 1)]


@pytest.fixture(scope="module")
def day(day_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Sent, list[StepReport], str]:
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

    a, b = _watcher(day_fleet, url, "watcher-a", send), _watcher(day_fleet, url, "watcher-b", send)
    times = _times(day_fleet)
    killed = times[len(times) // 2]
    reports = []
    for now in times:
        if now < killed:
            reports.append(a.step(now))
        reports.append(b.step(now))
    return sent, reports, url


def _releases(day_fleet: Fleet) -> dict[tuple[str, str], bool]:
    """(service, version) of every deploy: whether it is a regression."""
    return {(s.name, r.version): r.label.is_regression for s in day_fleet.services for r in s.releases[1:]}


def test_every_bad_release_is_announced_once_and_no_good_one(day_fleet: Fleet, day: tuple[Sent, list[StepReport], str]) -> None:
    sent, _, _ = day
    chat = [n for channel, n in sent if channel == "chat"]
    assert [key for key, count in Counter(n.key for n in chat).items() if count > 1] == []  # no duplicate
    announced = {(n.service, n.version) for n in chat if not n.resolved}
    releases = _releases(day_fleet)
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
    day_fleet: Fleet, day: tuple[Sent, list[StepReport], str],
) -> None:
    _, reports, url = day
    store = Store(url)
    try:
        reviewed = {(e.service, e.version) for s in day_fleet.services for e in store.history(s.name)}
        assert set(_releases(day_fleet)) <= reviewed  # every release has its post-deploy review
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


def test_watch_once_on_the_demo_judges_and_stores_each_latest_release(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from releasehealth.cli import app

    url = f"sqlite:///{tmp_path / 'history.db'}"
    result = CliRunner().invoke(app, ["--demo", "--demo-end", END.strftime("%Y-%m-%dT%H:%M:%S"), "--store", url, "watch", "--once"])
    assert result.exit_code == 0, result.output
    assert "watching 8 services every 30 s" in result.output and "ROLLBACK" in result.output
    store = Store(url)
    try:
        assert len(store.watched()) == 8 and len(store.fleet()) == 8
    finally:
        store.close()


def test_a_channel_whose_variables_are_not_set_is_a_config_error_naming_them_all(tmp_path: Path) -> None:
    import yaml

    from releasehealth import config
    from releasehealth.errors import ConfigError
    from releasehealth.watch import options
    from testing.configs import example_config

    raw = example_config("http://127.0.0.1:9")
    raw["watch"] = {"dashboard_url": "https://rh.example.com", "channels": [
        {"name": "chat", "kind": "slack", "url_env": "RH_TEST_SLACK_URL"},
        {"name": "pager", "kind": "webhook", "url_env": "RH_TEST_HOOK_URL", "secret_env": "RH_TEST_HOOK_SECRET", "teams": ["checkout"]},
    ]}
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw))
    catalogue = config.load(path)
    with pytest.raises(ConfigError) as missing:
        options(catalogue.watch, catalogue.path, {"RH_TEST_HOOK_URL": "https://pager.example.com"})
    text = str(missing.value)
    assert str(path) in text and "RH_TEST_SLACK_URL" in text and "RH_TEST_HOOK_SECRET" in text and "RH_TEST_HOOK_URL" not in text
    resolved = options(catalogue.watch, catalogue.path, {
        "RH_TEST_SLACK_URL": "https://hooks.example.com/T/B/x", "RH_TEST_HOOK_URL": "https://pager.example.com",
        "RH_TEST_HOOK_SECRET": "s3cret",
    })
    assert [(c.name, c.kind.value, c.routes("cart-service", "checkout"), c.routes("user-service", "identity")) for c in resolved.channels] == [
        ("chat", "slack", True, True), ("pager", "webhook", True, False),
    ]
    raw["watch"]["channels"][1].pop("secret_env")
    raw["watch"]["channels"].append({"name": "chat", "kind": "teams", "url_env": "X", "secret_env": "Y"})
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as invalid:
        config.load(path)
    problems = str(invalid.value)
    assert "watch.channels[1]: a webhook is signed" in problems and "watch.channels[2]: secret_env: only a webhook" in problems
    raw["watch"]["channels"] = [{"name": "chat", "kind": "slack", "url_env": "X"}] * 2
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"watch.channels: .*duplicate channel name\(s\): chat"):
        config.load(path)


def test_the_watchers_metrics_count_its_scans_evaluations_and_messages(day: tuple[Sent, list[StepReport], str]) -> None:
    from prometheus_client import generate_latest

    from releasehealth.exposition import watch_registry
    from releasehealth.watch import WatchStats

    _, reports, url = day
    stats = WatchStats()
    for report in reports:
        stats.add(report)
    store = Store(url)
    try:
        text = generate_latest(watch_registry(stats, store.fleet)).decode()
    finally:
        store.close()
    worked = [r for r in reports if r.holder]
    assert f"release_health_watch_scans_total {float(len(worked))}" in text
    assert f"release_health_watch_evaluations_total {float(sum(len(r.evaluated) for r in worked))}" in text
    assert 'release_health_watch_messages_failed_total{channel="chat"} 1.0' in text  # the one refused
    assert "release_health_watch_messages_pending 0.0" in text and "release_health_watch_source_up 1.0" in text
    assert 'release_health_verdict{action="ROLLBACK",service=' in text  # the store's latest verdicts, for alerts


def test_the_running_watcher_serves_its_metrics_and_a_sigkill_loses_nothing(tmp_path: Path) -> None:
    """`release-health watch` as a service: /metrics answers with its scans and the verdicts; killed with
    SIGKILL, the store holds every evaluation it made and every release it follows (the take-over by the
    next watcher: the simulated day above)."""
    import subprocess
    import sys

    import requests

    from testing.servers import Server, free_port, wait_ready

    url = f"sqlite:///{tmp_path / 'history.db'}"
    port = free_port()
    log = (tmp_path / "watch.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "release-health"), "--demo", "--demo-end", END.strftime("%Y-%m-%dT%H:%M:%S"),
         "--store", url, "watch", "--metrics-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    watcher = wait_ready(Server(f"http://127.0.0.1:{port}", process, tmp_path), "/metrics", log.name, 120)
    try:
        deadline, text = time.monotonic() + 120, ""
        while "release_health_watch_scans_total 1.0" not in text and time.monotonic() < deadline:
            time.sleep(0.3)
            text = requests.get(watcher.url + "/metrics", timeout=60).text  # a guard against a hang
        assert "release_health_watch_evaluations_total 8.0" in text and 'release_health_verdict{action="ROLLBACK"' in text
        assert "release_health_watch_lease_held 1.0" in text
    finally:
        process.kill()  # SIGKILL: no goodbye
        process.wait(timeout=60)
    store = Store(url)
    try:
        assert len(store.watched()) == 8 and len(store.fleet()) == 8
        holder, _ = store.lease("watch") or ("", None)
        assert holder.endswith(f":{process.pid}")  # left to expire: the next watcher waits three intervals
    finally:
        store.close()


def test_a_watcher_stopped_by_sigterm_hands_its_lease_back(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'history.db'}"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "release-health"), "--demo", "--demo-end", END.strftime("%Y-%m-%dT%H:%M:%S"),
         "--store", url, "watch", "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while not any("ROLLBACK" in line for line in lines) and time.monotonic() < deadline:
            lines.append(process.stdout.readline())  # the first scan's line names the releases judged
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=120)  # a limit against a hang
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
    assert process.returncode == 0 and "the store's lease is handed back" in rest, "".join(lines) + rest
    store = Store(url)
    try:
        lease = store.lease("watch")
        assert lease is not None and lease[1] <= END  # expired: the next watcher takes over at once
        assert store.acquire_lease("watch", "next", END, STEP)
    finally:
        store.close()


def test_the_rollback_hook_runs_once_for_each_rollback_across_the_restart(day_fleet: Fleet, day: tuple[Sent, list[StepReport], str]) -> None:
    sent, _, url = day
    rolled_back = {(n.service, n.version) for channel, n in sent if channel == "chat" and n.action is Action.ROLLBACK and not n.resolved}
    assert rolled_back and sorted(RAN) == sorted(
        ["kubectl", "argo", "rollouts", "abort", service, "--note", version] for service, version in rolled_back
    )
    store = Store(url)
    try:
        recorded = store.rollbacks()
    finally:
        store.close()
    assert {(s, v) for s, v, _, _, _ in recorded} == rolled_back and {r for *_, r in recorded} == {"exit 0"}


def test_a_dry_rollback_hook_only_records_its_command(day_fleet: Fleet, tmp_path: Path) -> None:
    import dataclasses

    url = f"sqlite:///{tmp_path / 'history.db'}"
    dry = dataclasses.replace(SETTINGS, rollback=RollbackHookSettings(enabled=True), channels=())
    before = len(RAN)
    report = _watcher(day_fleet, url, "dry", lambda c, n: None, dry).step(END)
    assert len(RAN) == before  # nothing run
    rollbacks = {(s, v): (c, r) for s, v, c, r in report.rollbacks}
    assert rollbacks and {s for s, _, a in report.evaluated if a is Action.ROLLBACK} == {s for s, _ in rollbacks}
    (command, result), *_ = rollbacks.values()
    assert command.startswith("kubectl rollout undo deployment/") and result.startswith("dry run")


def test_a_slow_receiver_delays_the_messages_not_the_scans(day_fleet: Fleet, tmp_path: Path) -> None:
    import dataclasses

    # The watcher's clock for its sending budget, moved by the receiver: each message takes 0.3 s of it.
    clock = [0.0]

    def slow(channel: Channel, notice: Notice) -> None:
        clock[0] += 0.3

    url = f"sqlite:///{tmp_path / 'history.db'}"
    quick = dataclasses.replace(
        SETTINGS, interval=timedelta(seconds=1), channels=SETTINGS.channels[:1], rollback=RollbackHookSettings(),
    )
    watcher = _watcher(day_fleet, url, "slow", slow, quick, monotonic=lambda: clock[0])
    first = watcher.step(END)
    # Half an interval (0.5 s) of sending: two messages, then the next scan; the rest go at the next ones.
    assert first.queued >= 3 and first.sent == 2
    sent = first.sent
    for n in range(1, 10):
        sent += watcher.step(END + n * timedelta(seconds=1)).sent
    assert sent == first.queued


def test_prometheus_down_or_a_service_gone_is_said_and_nothing_is_judged(day_fleet: Fleet, tmp_path: Path) -> None:
    import dataclasses

    import yaml

    from releasehealth import wiring
    from releasehealth.store import WatchedRelease
    from releasehealth.watch import WatchStats
    from testing.configs import example_config
    from testing.servers import free_port

    raw = example_config(f"http://127.0.0.1:{free_port()}", timeout="1s")
    raw["store"] = {"url": f"sqlite:///{tmp_path / 'history.db'}"}
    (tmp_path / "release-health.yaml").write_text(yaml.safe_dump(raw))
    wired = wiring.from_file(tmp_path / "release-health.yaml", create_store=True)
    store = wired.sources.store
    assert store is not None
    gone = WatchedRelease("retired-service", "1.0", END - timedelta(hours=1), "", "watching", "", 0, END, "", END)
    store.watch(gone)
    sent: Sent = []
    watcher = Watcher(wired.sources, wired.catalogue, store, dataclasses.replace(SETTINGS, rollback=RollbackHookSettings()),
                      "blind", lambda c, n: sent.append((c.name, n)))
    report = watcher.step(END)
    stats = WatchStats()
    stats.add(report)
    assert report.scan_error and "unreachable" in report.scan_error and not report.evaluated and not sent
    assert not stats.source_up and stats.scan_errors == 1
    # With the deploys readable again (the demo's sources), the retired service's release fails alone.
    demo_wired = demo.of_fleet(day_fleet, store=raw["store"]["url"]).wire()
    report = Watcher(demo_wired.sources, demo_wired.catalogue, store, SETTINGS, "blind", lambda c, n: None, lambda a, t: "").step(END)
    assert [(s, v) for s, v, _ in report.failed] == [("retired-service", "1.0")] and "unknown service" in report.failed[0][2]
    assert len(report.evaluated) == 8


def test_a_watcher_on_the_real_prometheus_and_postgresql_judges_as_the_cli_does(
    fleet: Fleet, prometheus: PrometheusServer, postgres: PostgresServer,
) -> None:
    """The session's real Prometheus (the test fleet backfilled) and a PostgreSQL store: one scan at the
    fleet's end follows every service's latest release and judges it as `evaluate` does; a second watcher
    on the store waits."""
    import uuid

    from releasehealth import config, wiring
    from releasehealth.evaluate import evaluate_release
    from testing.configs import example_config

    raw = example_config(prometheus.url)
    raw["store"] = {"url": postgres.create_database(f"watch_{uuid.uuid4().hex[:12]}")}
    wired = wiring.connect(config.parse(raw, "release-health.yaml"), create_store=True)
    store = wired.sources.store
    assert store is not None
    options = WatchOptions(channels=SETTINGS.channels[:1])
    sent: Sent = []
    report = Watcher(wired.sources, wired.catalogue, store, options, "pg-a", lambda c, n: sent.append((c.name, n))).step(fleet.end)
    standby = Watcher(wired.sources, wired.catalogue, store, options, "pg-b", lambda c, n: sent.append((c.name, n))).step(fleet.end)
    assert not standby.holder and not standby.evaluated
    latest = {s.name: s.releases[-1] for s in fleet.services}
    assert {(s, v) for s, v, _ in report.evaluated} == {(name, r.version) for name, r in latest.items()}
    policy = Watcher(wired.sources, wired.catalogue, store, options, "x").policy
    for service, version, action in report.evaluated:
        alone = evaluate_release(wired.sources, wired.catalogue.service(service), policy, version, now=fleet.end)
        assert alone.recommendation.action is action, (service, version)
        # Metrics only (no logs here): a log-only fault passes, but a rollback is always a regression's.
        assert action is not Action.ROLLBACK or latest[service].label.is_regression, (service, version)
    assert any(a is Action.ROLLBACK for _, _, a in report.evaluated)
    rollbacks = {(n.service, n.version) for _, n in sent if n.action is Action.ROLLBACK}
    assert rollbacks == {(s, v) for s, v, a in report.evaluated if a is Action.ROLLBACK}
    assert {r.state for r in store.watched()} <= {"final", "watching"} and len(store.fleet()) == len(latest)


def test_a_watcher_follows_releases_known_from_elasticsearch_deploy_events_and_stores_what_they_tell(
    fleet: Fleet, prometheus: PrometheusServer, elasticsearch: ElasticsearchServer, tmp_path: Path,
) -> None:
    """The session's real Prometheus, its metrics read as if they carried no version label, and the deploy
    events of the session's noida-db (one per release after the first, with its commit): the watcher knows
    each service's latest release from its event alone, follows it from the event's time, judges it as
    `evaluate` does on the same sources, and stores the commit and the deploy time the event told."""
    from releasehealth import config, wiring
    from releasehealth.evaluate import evaluate_release
    from releasehealth.model import DeploySourceKind
    from releasehealth.serialize import evaluation_from_dict
    from testing.configs import example_config

    raw = example_config(prometheus.url, elasticsearch.url)
    raw["logs"]["enabled"] = False  # the deploy index only: the logs' own tests judge them
    for entry in raw["services"]:
        entry["labels"] = {"version": ""}
    raw["store"] = {"url": f"sqlite:///{tmp_path / 'history.db'}"}
    wired = wiring.connect(config.parse(raw, "release-health.yaml"), create_store=True)
    store = wired.sources.store
    assert store is not None
    watcher = Watcher(wired.sources, wired.catalogue, store, WatchOptions(), "events")
    report = watcher.step(fleet.end)
    latest = {s.name: s.releases[-1] for s in fleet.services}
    assert not report.scan_error and not report.failed
    assert {(s, v) for s, v, _ in report.evaluated} == {(name, r.version) for name, r in latest.items()}
    assert {(r.service, r.version, r.deployed_at) for r in store.watched()} == {
        (name, r.version, r.deployed_at) for name, r in latest.items()
    }
    for service, version, action in report.evaluated:
        stored = store.latest(service, version)
        assert stored is not None and stored.action is action
        candidate = evaluation_from_dict(stored.document).candidate
        assert candidate is not None
        assert (candidate.source, candidate.started_at, candidate.commit) == (
            DeploySourceKind.EVENT, latest[service].deployed_at, latest[service].commit,
        )
        alone = evaluate_release(wired.sources, wired.catalogue.service(service), watcher.policy, version, now=fleet.end)
        assert alone.recommendation.action is action, (service, version)
        assert action is not Action.ROLLBACK or latest[service].label.is_regression, (service, version)
    assert any(a is Action.ROLLBACK for _, _, a in report.evaluated)  # windows cut at the events' times find them


def test_a_message_this_release_health_cannot_read_fails_alone_and_stays_queued(day_fleet: Fleet, tmp_path: Path) -> None:
    """Outbox rows written by hand beside the watcher's own: one of today's format and one its predecessor
    wrote (no format) are delivered; one of a newer release-health's format and one damaged fail, each with
    its reason, are counted, stay queued and are tried again; the step completes."""
    import dataclasses

    from prometheus_client import generate_latest

    from releasehealth.exposition import watch_registry
    from releasehealth.store import outbox
    from releasehealth.watch import WatchStats

    sent: Sent = []
    quiet = dataclasses.replace(SETTINGS, channels=SETTINGS.channels[:1], rollback=RollbackHookSettings())
    watcher = _watcher(day_fleet, f"sqlite:///{tmp_path / 'history.db'}", "reader", lambda c, n: sent.append((c.name, n)), quiet)
    store = watcher.store
    today = Notice("order-service", "9.0.0", "8.9.0", Action.HOLD, "p95_latency MARGINAL", 80.0, "checkout", END - STEP,
                   "", "", "kubectl rollout undo deployment/order-service")
    predecessor = {k: v for k, v in dataclasses.replace(today, version="9.0.1").to_dict().items() if k != "format"}
    newer = {**dataclasses.replace(today, version="9.0.2").to_dict(), "format": 2, "blast_radius": ["cart-service"]}
    for key, document in (("today", today.to_dict()), ("predecessor", predecessor), ("newer", newer), ("damaged", {})):
        assert store.enqueue("chat", key, document, END - STEP)
    with store.engine.begin() as connection:
        connection.execute(outbox.update().where(outbox.c.notice_key == "damaged").values(notice='{"service": "order-serv'))
    report = watcher.step(END)
    assert report.evaluated  # the step went on, and completed
    hand_written = [(c, n) for c, n in sent if n.service == "order-service" and n.version.startswith("9.0.")]
    assert hand_written == [("chat", today), ("chat", dataclasses.replace(today, version="9.0.1"))]
    by_key = {m.key: m for m in store.messages()}
    assert [k for k, m in by_key.items() if m.sent_at is None] == ["newer", "damaged"]
    assert by_key["newer"].last_error == "unreadable message: stored by a newer release-health: format 2, this one reads 1"
    assert by_key["damaged"].last_error.startswith("unreadable message: not JSON (")
    assert report.failed_to == Counter({"chat": 2}) and report.sent == len(sent) and report.pending == 2
    stats = WatchStats()
    stats.add(report)
    metrics = generate_latest(watch_registry(stats, store.fleet)).decode()
    assert 'release_health_watch_messages_failed_total{channel="chat"} 2.0' in metrics
    assert "release_health_watch_messages_pending 2.0" in metrics
    # Tried again after their backoff (by a release-health that reads them, it would be sent), never dropped.
    delivered = len(sent)
    again = watcher.step(END + timedelta(minutes=1))
    assert again.failed_to == Counter({"chat": 2}) and len(sent) == delivered and again.pending == 2
    unsent = {m.key: m for m in store.messages() if m.sent_at is None}
    assert {k: m.attempts for k, m in unsent.items()} == {"newer": 2, "damaged": 2}
    assert unsent["newer"].notice == newer  # kept as it was stored, for a release-health that reads it
