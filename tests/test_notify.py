"""Watch mode's messages: their shape for each channel, the webhook's signature checked by a receiver,
and delivery failures translated into DeliveryError (a local HTTP receiver, real sockets)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from releasehealth.errors import DeliveryError
from releasehealth.model import Action
from releasehealth.notify import (
    FORMAT,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ChannelKind,
    Notice,
    UnreadableNotice,
    alert,
    backoff,
    payload,
    release_links,
    send,
)
from testing.servers import free_port, start_alertmanager

AT = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
SECRET = "s3cret-for-tests"
GUARD = 60.0  # seconds: a limit against hangs, never an expectation of speed
HANG_LIMIT = 120.0  # how long a hanging receiver holds its answer at most (it is released at teardown)


def _notice(**changes: object) -> Notice:
    release_url, report_url = release_links("https://rh.example.com/", "cart-service", "2.4.3")
    fields: dict[str, object] = dict(
        service="cart-service", version="2.4.3", baseline="2.4.2", action=Action.ROLLBACK,
        reason="critical metric failed: error_ratio HIGH: 1.82% vs 0.61% <script>", score=57.0, team="checkout", at=AT,
        release_url=release_url, report_url=report_url, rollback_command="kubectl rollout undo deployment/cart-service",
    )
    fields.update(changes)
    return Notice(**fields)  # type: ignore[arg-type]


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records each POST and answers with the status the test set; one that `hangs` answers only when the
    test is over (its event set at teardown), whatever the client's timeout."""

    status = 200
    hangs = False
    released = threading.Event()
    received: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append((self.path, dict(self.headers), body))
        if type(self).hangs:
            type(self).released.wait(HANG_LIMIT)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"received": [], "status": 200, "hangs": False, "released": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        handler.released.set()
        server.shutdown()
        server.server_close()


def _verified(headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: recompute the HMAC over "timestamp.body" and compare in constant time."""
    timestamp, given = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    expected = "sha256=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given, expected)


def test_the_webhook_is_signed_and_its_receiver_can_check_it(receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    send(ChannelKind.WEBHOOK, url + "/hook", _notice(), secret=SECRET)
    (path, headers, body), = handler.received
    assert path == "/hook" and _verified(headers, body)
    document = json.loads(body)
    assert document["event"] == "verdict" and document["action"] == "ROLLBACK" and document["service"] == "cart-service"
    assert document["release_url"] == "https://rh.example.com/release?service=cart-service&version=2.4.3"
    assert "kubectl rollout undo deployment/cart-service" in document["text"]
    tampered = body.replace(b"ROLLBACK", b"PROMOTE")
    assert not _verified(headers, tampered)
    assert SECRET not in body.decode() and SECRET not in json.dumps(headers)


def test_each_channel_gets_the_body_it_expects() -> None:
    notice = _notice()
    slack = payload(ChannelKind.SLACK, notice)
    assert slack["text"].startswith("ROLLBACK cart-service 2.4.3 (baseline 2.4.2, score 57)")
    assert "&lt;script&gt;" in slack["text"] and "<script>" not in slack["text"]  # Slack's markup is inert
    teams = payload(ChannelKind.TEAMS, notice)
    card = teams["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["actions"][0]["url"] == notice.release_url
    assert {"title": "Roll back with", "value": notice.rollback_command} in card["body"][1]["facts"]
    alerts = payload(ChannelKind.ALERTMANAGER, notice)
    assert alerts[0]["labels"] == {
        "alertname": "ReleaseHealthVerdict", "service": "cart-service", "version": "2.4.3", "action": "ROLLBACK",
        "severity": "critical", "team": "checkout",
    }
    assert alerts[0]["endsAt"] == (AT + timedelta(days=1)).isoformat() and alerts[0]["generatorURL"] == notice.release_url


def test_a_resolved_notice_ends_the_alert_it_resolves_and_says_why() -> None:
    resolved = _notice(action=Action.PROMOTE, resolved_action=Action.HOLD, resolution="promoted", reason="all pass")
    ended = alert(resolved)
    assert ended["labels"]["action"] == "HOLD" and ended["labels"]["severity"] == "warning"
    assert ended["endsAt"] == AT.isoformat()
    assert payload(ChannelKind.SLACK, resolved)["text"].startswith("cart-service 2.4.3: promoted (was HOLD)")
    assert resolved.key != _notice(action=Action.HOLD).key  # a message of its own, once
    assert Notice.from_dict(json.loads(json.dumps(resolved.to_dict()))) == resolved


def test_a_stored_notice_carries_its_format_and_one_without_is_read_as_the_first() -> None:
    notice = _notice(resolved_action=Action.HOLD, resolution="replaced by 2.4.4")
    stored = json.loads(json.dumps(notice.to_dict()))
    assert stored["format"] == FORMAT == 1 and Notice.from_dict(stored) == notice
    before_formats = {k: v for k, v in stored.items() if k != "format"}  # what the predecessor wrote
    assert Notice.from_dict(before_formats) == notice
    assert "format" not in payload(ChannelKind.WEBHOOK, notice)  # the webhook's body is not the stored document


@pytest.mark.parametrize(("changes", "why"), [
    ({"format": 2}, "stored by a newer release-health: format 2, this one reads 1"),
    ({"format": "1"}, "unknown format '1', this one reads 1"),
    ({"format": 0}, "unknown format 0, this one reads 1"),
    ({"team": None}, "format 1: not of their kind: team"),
    ({"score": "57"}, "format 1: not of their kind: score"),
    ({"action": "PAUSE"}, "format 1: 'PAUSE' is not a valid Action"),
    ({"at": "yesterday"}, "format 1: Invalid isoformat string: 'yesterday'"),
    ({"blast_radius": []}, "not the fields of format 1: unknown blast_radius"),
    ({"format": None, "team": None}, "unknown format None, this one reads 1"),
])
def test_a_stored_notice_not_of_a_format_this_one_reads_is_unreadable_saying_why(changes: dict[str, object], why: str) -> None:
    document = {**_notice().to_dict(), **changes}
    with pytest.raises(UnreadableNotice) as unreadable:
        Notice.from_dict(document)
    assert str(unreadable.value) == f"unreadable message: {why}"


def test_a_stored_notice_missing_fields_is_unreadable_naming_them() -> None:
    document = {k: v for k, v in _notice().to_dict().items() if k not in ("format", "team", "reason")}
    with pytest.raises(UnreadableNotice, match=r"^unreadable message: not the fields of format 1: missing reason, team$"):
        Notice.from_dict(document)


@pytest.mark.parametrize(("status", "hangs", "timeout", "problem"), [
    (500, False, GUARD, "HTTP 500"),  # a limit against a hang only
    (200, True, 1.0, "no answer within 1 s"),  # the timeout under test: the receiver never answers in time
])
def test_a_receiver_that_fails_or_hangs_is_a_delivery_error_without_its_url(
    receiver: tuple[str, type[Receiver]], status: int, hangs: bool, timeout: float, problem: str,
) -> None:
    url, handler = receiver
    handler.status, handler.hangs = status, hangs
    with pytest.raises(DeliveryError, match=problem) as caught:
        send(ChannelKind.SLACK, url + "/services/T000/B000/XXXX", _notice(), timeout=timeout)
    assert "XXXX" not in str(caught.value)


def test_a_receiver_that_refuses_connections_is_a_delivery_error() -> None:
    with pytest.raises(DeliveryError, match="unreachable"):
        send(ChannelKind.TEAMS, f"http://127.0.0.1:{free_port()}/", _notice(), timeout=GUARD)


def test_alertmanager_gets_its_alerts_on_its_v2_path(receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    send(ChannelKind.ALERTMANAGER, url + "/", _notice())
    (path, _, body), = handler.received
    assert path == "/api/v2/alerts" and json.loads(body)[0]["labels"]["service"] == "cart-service"


def test_retries_back_off_to_a_ceiling() -> None:
    waits = [backoff(n).total_seconds() for n in range(1, 10)]
    assert waits[:4] == [10, 20, 40, 80] and max(waits) == 600 and waits == sorted(waits)


def test_alertmanager_shows_the_rollback_alert_and_resolves_it_on_promotion(tmp_path: Path) -> None:
    manager = start_alertmanager(tmp_path)
    alerts_url = f"{manager.url}/api/v2/alerts"
    query = {"filter": 'service="cart-service"'}
    try:
        # Judged a minute ago and promoted half a minute later: the resolving endsAt is already past, as
        # Alertmanager resolves an alert, with no waiting here.
        now = datetime.now(UTC).replace(microsecond=0)
        opened = _notice(at=now - timedelta(seconds=60))
        send(ChannelKind.ALERTMANAGER, manager.url, opened, timeout=GUARD)
        (shown,) = requests.get(alerts_url, params=query, timeout=GUARD).json()
        assert shown["labels"]["action"] == "ROLLBACK" and shown["labels"]["severity"] == "critical"
        assert shown["status"]["state"] == "active" and shown["generatorURL"] == opened.release_url
        # Posted once, it stands until resolved (a day at most), not Alertmanager's 5-min resolve_timeout.
        assert datetime.fromisoformat(shown["endsAt"]) > now + timedelta(hours=12)
        resolved = dataclasses.replace(
            opened, action=Action.PROMOTE, resolved_action=Action.ROLLBACK, resolution="promoted", at=now - timedelta(seconds=30),
        )
        send(ChannelKind.ALERTMANAGER, manager.url, resolved, timeout=GUARD)
        # Resolved, it leaves the alerts Alertmanager lists (active, silenced, inhibited or unprocessed).
        deadline, listed = time.monotonic() + GUARD, [shown]
        while listed and time.monotonic() < deadline:
            listed = requests.get(alerts_url, params=query, timeout=GUARD).json()
        assert listed == []
    finally:
        manager.stop()
