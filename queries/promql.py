"""PromQL: label-value escaping, selector building and strict template rendering.

Label values (service names, versions) are untrusted: they only ever enter a query as a quoted,
escaped string literal, so a value containing quotes, braces or backslashes cannot change the query.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import promql_parser

from releasehealth.errors import TemplateError
from releasehealth.model import LabelNames, Query, Service

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
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


def format_duration(delta: timedelta) -> str:
    """Return `delta` as a Prometheus duration ("90s" -> "1m30s", promql-parser's spelling); whole seconds
    only, as range selectors and steps are."""
    seconds = delta.total_seconds()
    if seconds <= 0 or seconds != int(seconds):
        raise TemplateError(f"duration must be a positive whole number of seconds, got {delta}")
    return str(promql_parser.display_duration(delta))


def metric_names(template: str) -> list[str]:
    """The metric names a template selects with the service's matchers (`name{${selector}...}`): what a
    "no data for preset X: expected metric Y" names."""
    return list(dict.fromkeys(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{\$\{selector\}", template)))


@dataclass(frozen=True)
class QueryGroup:
    """Services whose queries are one: the same service and version labels, the same extra matchers, the
    same pod join, on the same source. Renders any template for any of them; services of one group are
    fetched together, one query per template (and per span), never one per service."""

    labels: LabelNames
    selector: tuple[tuple[str, str], ...] = ()  # exact matchers added for every service
    join: str = ""  # what ${join} renders to: a pod join giving each raw series its version (queries.kubernetes.pod_join)
    source: str = ""  # shown with every query: the URL it runs against

    @classmethod
    def of(cls, service: Service, source: str) -> QueryGroup:
        return cls(service.labels, service.selector, service.join, source)

    def range(
        self, name: str, template: str, services: Sequence[str], *, start: datetime, end: datetime, step: timedelta
    ) -> Query:
        """A range query over (start, end] at `step`, grouped by the service and version labels (the service
        label alone when the metrics carry no version)."""
        text = render(name, template, self._variables(services, step, step))
        return Query(
            template=name, text=text, services=tuple(services), labels=self.labels, source=self.source,
            start=start, end=end, step=step,
        )

    def instant(
        self, name: str, template: str, services: Sequence[str], *, end: datetime, lookback: timedelta, step: timedelta
    ) -> Query:
        """An instant query evaluated at `end`, looking back `lookback` (its `start` is end - lookback, shown)."""
        text = render(name, template, self._variables(services, step, lookback))
        return Query(
            template=name, text=text, services=tuple(services), labels=self.labels, source=self.source,
            start=end - lookback, end=end, step=None,
        )

    def _variables(self, services: Sequence[str], step: timedelta, lookback: timedelta) -> dict[str, str]:
        return {
            "by": ", ".join(check_label_name(name) for name in self.labels.by),
            "selector": selector(self.labels.service, services, self.selector),
            "step": format_duration(step),
            "lookback": format_duration(lookback),
            "join": self.join,
        }
