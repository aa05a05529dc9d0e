"""All presentation of numbers, units, percentages, durations and times, for reasons and every front end
(CLI, dashboard, reports): ratios in percent, seconds in milliseconds, bytes in MiB or GiB, times in UTC."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from releasehealth.model import Query, Tolerance, Window

NONE = "–"  # a value that is not there, in tables
# C0 and C1 control characters, and the bidirectional marks, overrides and isolates that make text display
# in another order than it is written (U+202E shows "lave.exe" as "exe.eval"): never shown as they are.
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# Query parameters whose values are secrets when they are in a URL (?token=..., &api_key=..., &sig=...).
SECRET_PARAMETER = re.compile(r"(?i)(token|key|secret|pass|auth|sig|credential)")


# Credentials inside free text (a message quoting what a file says): the user and password of a URL with
# any scheme, a "user:password@" without one, and the values of secret-looking query parameters.
_TEXT_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*:/+)[^\s/@'\"]*@|(?<![\w/])[^\s/@'\":]+:[^\s/@'\"]*@")
_TEXT_SECRET_PARAMETER = re.compile(
    r"([?&][^=&\s'\"]*(?:token|key|secret|pass|auth|sig|credential)[^=&\s'\"]*=)[^&\s'\"]+", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """A URL as it may be shown anywhere: without the user and password before its host (however its
    scheme is typed: https:/user:secret@host too), the values of secret-looking query parameters "***"."""
    text = _TEXT_USERINFO.sub(lambda match: match.group(1) or "", url.strip())
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    query = "&".join(
        f"{name}=***" if SECRET_PARAMETER.search(name) else (f"{name}={value}" if sep else name)
        for name, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit(parts._replace(query=query)) if parts.query else text


def redact_secrets(text: str) -> str:
    """Free text as it may be shown anywhere: every URL in it as `redact_url` would show it."""
    text = _TEXT_USERINFO.sub(lambda match: match.group(1) or "", text)
    return _TEXT_SECRET_PARAMETER.sub(r"\1***", text)


MAX_LABEL = 255  # characters of a recorded version or commit: what the store keeps


def label_problem(text: str) -> str | None:
    """What is wrong with `text` as a recorded version or commit (None: nothing). A version is shown on
    terminals and pages and matched against metric labels: one line of printable text, of sane length."""
    if len(text) > MAX_LABEL:
        return f"longer than {MAX_LABEL} characters"
    if UNPRINTABLE.search(text):
        return f"holds control or bidirectional characters ({printable(text)[:80]})"
    return None


def printable(text: str) -> str:
    """External text (a version, a log line, a reason quoting one) made safe for a terminal: each control
    or bidirectional character shown as its escape (\\x1b, \\u202e) instead of acting."""
    return UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def format_value(value: float | None, unit: str, sign: bool = False) -> str:
    """`value` in `unit`, signed (+/-) when `sign` (for shifts and slopes)."""
    if value is None or not math.isfinite(value):
        return "no data"
    plus = "+" if sign else ""
    if unit == "ratio":
        return f"{value * 100:{plus}.2f}%"
    if unit == "seconds":
        if abs(value) >= 10:
            return f"{value:{plus}.1f} s"
        # Three significant digits below 10 ms: CPU per request is a few ms, where whole ms say nothing.
        return f"{value * 1000:{plus}.0f} ms" if abs(value) >= 0.01 else f"{value * 1000:{plus}.3g} ms"
    if unit == "bytes":
        scaled, suffix = (value / 2**30, "GiB") if abs(value) >= 2**30 else (value / 2**20, "MiB")
        return f"{scaled:{plus}.3g} {suffix}"
    return f"{value:{plus}.4g} {unit}".rstrip()


def format_absolute(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.2f} pp"
    if unit == "seconds":
        return f"{value * 1000:.0f} ms"
    return f"{value:.4g}"


def change_text(change: float | None) -> str:
    if change is None or math.isnan(change):
        return "no change computed"
    if math.isinf(change):
        return "new, from zero" if change > 0 else "-100%"
    return f"{change * 100:+.1f}%"


def tolerance_text(tolerance: Tolerance, unit: str) -> str:
    return f"+{tolerance.relative * 100:g}% and +{format_absolute(tolerance.absolute, unit)}"


def confidence_text(ci_alpha: float) -> str:
    """A confidence level to four significant digits: 99.83% (after Bonferroni a level is 99.8333...%)."""
    return f"{(1 - ci_alpha) * 100:.4g}%"


def p_text(p_value: float) -> str:
    return f"p={p_value:.2g}"


def format_p_value(p_value: float | None) -> str:
    return NONE if p_value is None or math.isnan(p_value) else f"{p_value:.2g}"


def per_thousand(rate: float | None) -> str:
    """A rate per 1,000 requests (or log lines), as the CLI prints signature rates."""
    return "-" if rate is None else f"{rate:.2f}"


def signed_percent(change: float | None) -> str:
    """A relative change as a report shows it: +12.3%, inf for a rise from zero, '-' for none."""
    if change is None or math.isnan(change):
        return "-"
    if math.isinf(change):
        return "inf" if change > 0 else "-inf"
    return f"{change * 100:+.1f}%"


def duration_text(delta: timedelta) -> str:
    """A duration for people: "7 d", "2 h", "30 min", "45 s" (under a minute: "0 min" would say nothing)."""
    minutes = delta.total_seconds() / 60
    if abs(minutes) < 1:
        return f"{delta.total_seconds():.0f} s"
    if minutes >= 1440 and minutes % 1440 == 0:
        return f"{minutes / 1440:.0f} d"
    if minutes >= 120:
        return f"{minutes / 60:g} h"
    return f"{minutes:.0f} min"


def format_age(age: timedelta) -> str:
    """How long ago: "<1 min", "42 min", "5 h 07 min", "3 d 4 h"."""
    minutes = int(age.total_seconds() // 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def format_time(at: datetime | None) -> str:
    """A time to the minute, in UTC: 2026-12-07 14:05 UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else NONE


def format_window(window: Window | None) -> str:
    """A window as its start to the minute, its end's time of day, and its length."""
    if window is None:
        return NONE
    return f"{format_time(window.start)} → {window.end.astimezone(UTC):%H:%M} ({format_age(window.duration)})"


def format_seconds(at: datetime | None) -> str:
    """A time to the second, without its zone (the CLI says UTC in its headings): 2026-12-07 14:05:09."""
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def time_text(at: datetime | None) -> str:
    """A time to the second in UTC, saying so: 2026-12-07 14:05:09 UTC ('-' for none)."""
    return f"{format_seconds(at.astimezone(UTC))} UTC" if at else "-"


def score_text(score: float | None) -> str:
    """A release's score, whole ('-' for none: nothing was judged)."""
    return "-" if score is None else f"{score:.0f}"


def value_text(value: float | None, unit: str = "") -> str:
    """A measured value in its unit as every front end shows it ('-' for none): 93 ms, 885 MiB, 0.63%."""
    return "-" if value is None else format_value(value, unit)


def count_text(count: float | None) -> str:
    """A count of requests or lines, whole ('-' for none): estimates scaled from a sample claim no decimals."""
    return "-" if count is None or not math.isfinite(count) else f"{count:.0f}"


def query_line(query: Query) -> str:
    """A query on one line: PromQL as it ran; an Elasticsearch request as its request line and what it
    searches (how many searches, which indices, for which services, over which time), its bodies left
    out (the CLI shows them with --verbose)."""
    request, _, bodies = query.text.partition("\n")
    if not bodies:
        return query.text
    documents = [line for line in bodies.split("\n") if line.strip()]
    indices: list[str] = []
    if request.endswith("_msearch"):  # header and body lines in turn; a header names its index
        searches = len(documents) // 2
        for header in documents[::2]:
            index = _index_of(header)
            if index and index not in indices:
                indices.append(index)
    else:  # one request, one search, however its body is laid out
        searches = 1
    what = [plural(searches, "search", "searches")]
    if indices:
        what.append("of " + ", ".join(indices))
    if query.services:
        what.append("for " + ", ".join(query.services))
    if query.start and query.end:
        what.append(f"{format_seconds(query.start)}..{format_seconds(query.end)} UTC")
    return f"{request} ({', '.join(what)})"


def _index_of(header: str) -> str | None:
    try:
        document = json.loads(header)
    except ValueError:
        return None
    index = document.get("index") if isinstance(document, dict) else None
    return ",".join(map(str, index)) if isinstance(index, list) else str(index) if index else None


def plural(count: int, one: str, many: str | None = None) -> str:
    """A count with its noun: "1 line", "2 lines", "3 searches"."""
    return f"{count} {one if count == 1 else many or one + 's'}"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the known name closest to a mistyped one, or '' when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_version_text(service: str, version: str, seen: list[str], lookback: timedelta) -> str:
    """What every front end says of a version the service was not seen running."""
    known = ", ".join(seen) or "none"
    return f"{service} has no version {version!r} in the last {duration_text(lookback)}{did_you_mean(version, seen)} (seen: {known})"
