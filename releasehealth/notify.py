"""Watch mode's messages: one per release and state change, to where on-call already looks.

A `Notice` says what happened to a release (it became ROLLBACK or HOLD; later it was promoted or
replaced), with the verdict's reason, the deep link to its page, its report and the rollback command.
`payload` shapes it for each kind of channel: a Slack incoming webhook, a Microsoft Teams workflow
webhook (an Adaptive Card), a generic JSON webhook (signed with HMAC-SHA256 over the timestamp and the
body), or Alertmanager's v2 API (an alert labelled service, version, action and severity, resolved when
the release is promoted or replaced). collectors.notifications posts one message; the outbox in the
history store retries it with `backoff` until it is delivered, so a receiver that is down loses nothing
across a restart.

The outbox keeps each notice as a JSON document numbered with its FORMAT: a message queued by one
release-health may be delivered by another (an upgrade, a rollback of the watcher, two versions on one
store). A document of a format this one does not read is an UnreadableNotice, never a guess.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import typing
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from releasehealth.collectors.notifications import post
from releasehealth.errors import ReleaseHealthError
from releasehealth.format import format_time, score_text
from releasehealth.model import Action

SEND_TIMEOUT = 5.0  # seconds: a receiver that hangs is retried later, it never holds the evaluations up
SIGNATURE_HEADER = "X-Release-Health-Signature"
TIMESTAMP_HEADER = "X-Release-Health-Timestamp"
SEVERITY = {Action.ROLLBACK: "critical", Action.HOLD: "warning", Action.INCONCLUSIVE: "warning"}
# Alertmanager ends an alert not posted again within its resolve_timeout (5 min by default); the watcher
# posts once, so an open alert says how long it stands: until resolved, at most this long.
ALERT_LIFETIME = timedelta(days=1)
# The stored notice's format: raised when a field is added, removed or changes meaning, so that an older
# release-health refuses a newer document instead of misreading it. Documents without one are format 1
# (written before it was numbered).
FORMAT = 1


class UnreadableNotice(ReleaseHealthError):
    """A stored notice this release-health cannot read (a newer one's format, or a damaged document): its
    message fails, says why, and stays in the outbox for a release-health that can read it."""

    def __init__(self, why: str) -> None:
        super().__init__(f"unreadable message: {why}")


class ChannelKind(StrEnum):
    SLACK = "slack"
    TEAMS = "teams"
    WEBHOOK = "webhook"
    ALERTMANAGER = "alertmanager"


@dataclass(frozen=True)
class Notice:
    """What one message says about one release, whatever the channel."""

    service: str
    version: str
    baseline: str
    action: Action  # the state the release is in: ROLLBACK, HOLD; PROMOTE or the last state when resolved
    reason: str
    score: float | None
    team: str
    at: datetime  # when the watcher judged it
    release_url: str  # the release's page on the dashboard ("" when no dashboard URL is configured)
    report_url: str
    rollback_command: str
    resolved_action: Action | None = None  # set when this notice ends an earlier ROLLBACK or HOLD notice
    resolution: str = ""  # why it ended: "promoted", "replaced by 1.4.0"

    @property
    def resolved(self) -> bool:
        return self.resolved_action is not None

    @property
    def key(self) -> str:
        """One message per release and state: what the outbox is unique on."""
        return f"{self.service}\x1f{self.version}\x1f{self.action.value}\x1f{'resolved' if self.resolved else 'open'}"

    def fields(self) -> dict[str, Any]:
        """The notice's fields as JSON values (the generic webhook's body carries them)."""
        document = dataclasses.asdict(self)
        document.update(action=self.action.value, at=self.at.isoformat(),
                        resolved_action=self.resolved_action.value if self.resolved_action else None)
        return document

    def to_dict(self) -> dict[str, Any]:
        """The document the outbox stores: the fields, numbered with their FORMAT."""
        return {"format": FORMAT, **self.fields()}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Notice:
        """The notice a stored document holds; raise UnreadableNotice saying why when it is of a format this
        release-health does not read (a newer one's), or its fields are missing, unknown or of the wrong kind."""
        version = document.get("format", 1)  # written before formats were numbered: format 1's fields
        if type(version) is not int or version < 1:
            raise UnreadableNotice(f"unknown format {version!r}, this one reads {FORMAT}")
        if version > FORMAT:
            raise UnreadableNotice(f"stored by a newer release-health: format {version}, this one reads {FORMAT}")
        fields = {name: value for name, value in document.items() if name != "format"}
        _check_fields(fields, version)
        resolved = fields["resolved_action"]
        try:
            return cls(**{
                **fields, "action": Action(fields["action"]), "at": datetime.fromisoformat(fields["at"]),
                "resolved_action": Action(resolved) if resolved is not None else None,
            })
        except (TypeError, ValueError) as exc:  # an action no longer known, a time that is not ISO 8601
            raise UnreadableNotice(f"format {version}: {exc}") from exc


def _check_fields(fields: dict[str, Any], version: int) -> None:
    """Raise UnreadableNotice unless `fields` are a Notice's, each of its kind (text, a number or null)."""
    expected = typing.get_type_hints(Notice)
    missing, unknown = sorted(expected.keys() - fields.keys()), sorted(fields.keys() - expected.keys())
    if missing or unknown:
        told = [f"{what} {', '.join(names)}" for what, names in (("missing", missing), ("unknown", unknown)) if names]
        raise UnreadableNotice(f"not the fields of format {version}: {'; '.join(told)}")
    # The texts and the score; the action and the time are parsed (and refused) by from_dict.
    kinds: dict[object, tuple[type, ...]] = {str: (str,), float | None: (int, float, type(None))}
    wrong = [
        name for name, hint in expected.items()
        if hint in kinds and (not isinstance(fields[name], kinds[hint]) or isinstance(fields[name], bool))
    ]
    if wrong:
        raise UnreadableNotice(f"format {version}: not of their kind: {', '.join(wrong)}")


def release_links(dashboard_url: str, service: str, version: str) -> tuple[str, str]:
    """The deep links to a release's page and to its post-deploy review report on the dashboard at
    `dashboard_url` (the report is downloaded from the release's page, HTML or Markdown)."""
    if not dashboard_url:
        return "", ""
    page = f"{dashboard_url.rstrip('/')}/release?{urlencode({'service': service, 'version': version})}"
    return page, page


def headline(notice: Notice) -> str:
    """The message's first line: what happened to which release."""
    release = f"{notice.service} {notice.version}"
    if notice.resolved:
        return f"{release}: {notice.resolution} (was {notice.resolved_action.value if notice.resolved_action else ''})"
    return f"{notice.action.value} {release} (baseline {notice.baseline}, score {score_text(notice.score)})"


def text(notice: Notice) -> str:
    """The message as plain text: headline, reason, what to run, where to look."""
    lines = [headline(notice), notice.reason]
    if notice.action is Action.ROLLBACK and not notice.resolved and notice.rollback_command:
        lines.append(f"Roll back with: {notice.rollback_command}")
    if notice.release_url:
        lines.append(f"Evidence: {notice.release_url}")
    lines.append(f"Judged at {format_time(notice.at)}" + (f", team {notice.team}" if notice.team else ""))
    return "\n".join(lines)


def payload(kind: ChannelKind, notice: Notice) -> Any:
    """The JSON body `kind` expects."""
    if kind is ChannelKind.SLACK:
        # Slack's mrkdwn treats <, > and & as markup: escaped, so log text in a reason stays text.
        return {"text": _slack_escape(text(notice))}
    if kind is ChannelKind.TEAMS:
        facts = [{"title": "Reason", "value": notice.reason}]
        if notice.action is Action.ROLLBACK and not notice.resolved and notice.rollback_command:
            facts.append({"title": "Roll back with", "value": notice.rollback_command})
        card: dict[str, Any] = {
            "type": "AdaptiveCard", "version": "1.4", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "body": [{"type": "TextBlock", "text": headline(notice), "weight": "Bolder", "wrap": True},
                     {"type": "FactSet", "facts": facts}],
        }
        if notice.release_url:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the evidence", "url": notice.release_url}]
        return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}
    if kind is ChannelKind.ALERTMANAGER:
        return [alert(notice)]
    return {"event": "resolved" if notice.resolved else "verdict", "text": text(notice), **notice.fields()}


def alert(notice: Notice) -> dict[str, Any]:
    """The Alertmanager alert of a ROLLBACK or HOLD, standing ALERT_LIFETIME unless resolved: a resolved
    notice ends the alert of the action it resolves (same labels, endsAt now)."""
    action = notice.resolved_action or notice.action
    labels = {
        "alertname": "ReleaseHealthVerdict", "service": notice.service, "version": notice.version,
        "action": action.value, "severity": SEVERITY.get(action, "warning"),
    }
    if notice.team:
        labels["team"] = notice.team
    document: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": headline(notice), "description": notice.reason,
                        "rollback_command": notice.rollback_command, "report": notice.report_url},
        "startsAt": notice.at.isoformat(),
    }
    if notice.release_url:
        document["generatorURL"] = notice.release_url
    document["endsAt"] = (notice.at if notice.resolved else notice.at + ALERT_LIFETIME).isoformat()
    return document


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of "timestamp.body" with the shared secret, as "sha256=<hex>": a receiver recomputes
    it, compares in constant time and refuses old timestamps (replays)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def send(kind: ChannelKind, url: str, notice: Notice, *, secret: str = "", timeout: float = SEND_TIMEOUT) -> None:
    """Post `notice` to one channel (Alertmanager: to its v2 alerts path); raise DeliveryError naming the
    channel's kind, never its URL, when it was not accepted."""
    target = f"{url.rstrip('/')}/api/v2/alerts" if kind is ChannelKind.ALERTMANAGER else url
    body = json.dumps(payload(kind, notice), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if kind is ChannelKind.WEBHOOK and secret:
        timestamp = f"{notice.at.timestamp():.0f}"
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    post(target, body, headers, what=kind.value, timeout=timeout)


def backoff(attempts: int) -> timedelta:
    """How long to wait before the next try after `attempts` failed ones: 10 s doubling, at most 10 min."""
    return timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 600))


def _slack_escape(message: str) -> str:
    return message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
