"""PromQL: label-value escaping, selector building and strict template rendering.

Label values (service names, versions) are untrusted: they only ever enter a query as a quoted,
escaped string literal, so a value containing quotes, braces or backslashes cannot change the query.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from releasehealth.errors import TemplateError
from releasehealth.model import LabelNames, Query

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
# RE2 metacharacters; escaping them makes a regex matcher match the literal value only.
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def quote(value: str) -> str:
    """Return `value` as a PromQL double-quoted string literal (Go escaping rules)."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def regex_literal(value: str) -> str:
    """Return an RE2 pattern that matches exactly `value` (metacharacters escaped)."""
    return _RE2_SPECIAL.sub(r"\\\1", value)


def check_label_name(name: str) -> str:
    """Return `name` if it is a valid Prometheus label name; raise TemplateError otherwise."""
    if not LABEL_NAME.match(name):
        raise TemplateError(f"invalid label name {name!r}")
    return name


def selector(
    label: str, values: Sequence[str], extra: Sequence[tuple[str, str]] = ()
) -> str:
    """Return the matchers inside `{...}` selecting any of `values` of `label`, plus exact `extra` matchers.

    One value gives an equality matcher; several give one anchored regex alternation, so a whole
    fleet is fetched in one query.
    """
    if not values:
        raise TemplateError("a selector needs at least one label value")
    check_label_name(label)
    if len(values) == 1:
        matchers = [f"{label}={quote(values[0])}"]
    else:
        alternation = "|".join(regex_literal(v) for v in sorted(set(values)))
        matchers = [f"{label}=~{quote(alternation)}"]
    matchers += [f"{check_label_name(name)}={quote(value)}" for name, value in extra]
    return ",".join(matchers)


def render(name: str, template: str, variables: Mapping[str, str]) -> str:
    """Return `template` with `${var}` placeholders filled; raise TemplateError on a missing or bad one.

    Strict on purpose (as Go templates with missingkey=error): a missing variable never becomes an
    empty string that would silently widen a query.
    """
    try:
        return string.Template(template).substitute(variables)
    except KeyError as exc:
        raise TemplateError(f"template {name!r}: no value for variable ${{{exc.args[0]}}}") from exc
    except ValueError as exc:  # a lone "$": label_replace's "$1" must be written "$$1" in a template
        raise TemplateError(f"template {name!r}: {exc} (write $$ for a literal $, as in label_replace's \"$$1\")") from exc


def template_variables(template: str) -> set[str]:
    """Return the names of the `${var}` placeholders used in `template`."""
    return set(string.Template(template).get_identifiers())


def parse_duration(text: str) -> timedelta:
    """Return the timedelta of a Prometheus duration such as "30s", "5m", "1h30m"; raise ValueError."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 1h30m, 7d)")
    return sum((int(n) * _DURATION_UNITS[u] for n, u in parts), timedelta())


def format_duration(delta: timedelta) -> str:
    """Return `delta` as a Prometheus duration ("90s" -> "1m30s"); whole seconds only."""
    seconds = int(delta.total_seconds())
    if seconds <= 0 or seconds != delta.total_seconds():
        raise TemplateError(f"duration must be a positive whole number of seconds, got {delta}")
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def build_query(
    template_name: str,
    template: str,
    services: Sequence[str],
    labels: LabelNames,
    *,
    extra: Sequence[tuple[str, str]] = (),
    step: timedelta,
    start: datetime,
    end: datetime,
    lookback: timedelta | None = None,
    instant: bool = False,
    source: str = "",
    join: str = "",
) -> Query:
    """Return the Query for one template over `services`, grouped by their service and version labels
    (the service label alone when the metrics carry no version).

    A range query covers (start, end] at `step`; an instant query is evaluated at `end` and looks back
    `lookback` (its `start` is end - lookback, for display).
    """
    variables = {
        "by": ", ".join(check_label_name(name) for name in labels.by),
        "selector": selector(labels.service, services, extra),
        "step": format_duration(step),
        "lookback": format_duration(lookback or step),
        "join": join,  # a pod join giving each raw series its version (queries.kubernetes.pod_join), or nothing
    }
    text = render(template_name, template, variables)
    return Query(
        template=template_name,
        text=text,
        services=tuple(services),
        labels=labels,
        source=source,
        start=end - lookback if instant and lookback else start,
        end=end,
        step=None if instant else step,
    )
