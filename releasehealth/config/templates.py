"""Checks of PromQL templates, a preset's or a service's: known variables only, and valid PromQL once rendered."""

from __future__ import annotations

import re
from collections.abc import Mapping

import promql_parser

from releasehealth.errors import TemplateError
from releasehealth.model import DerivedTemplate
from releasehealth.queries import promql

TEMPLATE_VARIABLES = frozenset({"by", "selector", "step", "lookback", "join"})
SAMPLE_VARIABLES = {"by": "service, version", "selector": 'service="x"', "step": "1m", "lookback": "1d"}
SAMPLE_JOIN = " * on (namespace, pod) group_left (version) max by (namespace, pod, version) (kube_pod_info)"


def template_problems(templates: Mapping[str, str]) -> list[str]:
    """Every template must use only known variables and render to PromQL that parses."""
    return [f"templates.{name}: {problem}" for name, text in templates.items() if (problem := template_problem(name, text))]


def derived_problems(derived: Mapping[str, DerivedTemplate], templates: Mapping[str, str]) -> list[str]:
    """A derived template must read a PromQL template of the same preset or service (not another derived
    one, not itself) that keeps each label it selects on: `sum by (${by}, code)` for `where: {code: ...}`."""
    problems = []
    for name, template in derived.items():
        if name in templates:
            problems.append(f"derived.{name}: {name!r} is also a PromQL template: one or the other")
        elif template.source not in templates:
            problems.append(f"derived.{name}.from: unknown template {template.source!r} (known: {', '.join(sorted(templates))})")
        else:
            grouped = _grouped_by(templates[template.source])
            problems += [
                f"derived.{name}.where.{label}: template {template.source!r} does not keep the label {label!r} "
                f"(group it by (${{by}}, {label}))"
                for label in template.where if label not in grouped
            ]
    return problems


def without_comments(text: str) -> str:
    """The PromQL without its comments: from a # outside a string literal to the end of the line."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        quote = ""
        for k, char in enumerate(line):
            if quote:
                quote = "" if char == quote and line[k - 1] != "\\" else quote
            elif char in "\"'`":
                quote = char
            elif char == "#":
                out.append("\n" if line.endswith("\n") else "")
                break
            out.append(char)
    return "".join(out)


def _grouped_by(template: str) -> set[str]:
    """The labels named in the `by (...)` clauses of a template (${by} aside)."""
    return {label.strip() for clause in re.findall(r"\bby\s*\(([^)]*)\)", template) for label in clause.split(",")}


def template_problem(name: str, text: str, strict: bool = False, joined: bool = False) -> str:
    """What is wrong with one template ("" if nothing): unknown variables, PromQL that does not parse, or
    (`strict`, a service's own) no ${selector} or ${by}: it would read the whole fleet, or return series
    that cannot be told apart by service and version."""
    try:
        used = promql.template_variables(text)
        # A variable in a `# comment` selects nothing: `sum(x) # ${selector}` would read the whole fleet.
        outside_comments = promql.template_variables(without_comments(text))
    except ValueError as exc:
        return str(exc)
    unknown = used - TEMPLATE_VARIABLES
    if unknown:
        known = ", ".join("${" + v + "}" for v in sorted(TEMPLATE_VARIABLES))
        return f"unknown variable(s) {', '.join('${' + v + '}' for v in sorted(unknown))} (known: {known})"
    missing = ({"selector", "by"} | ({"join"} if joined else set())) - outside_comments if strict else set()
    if missing == {"join"}:
        return "must use ${join} where the raw series are (kubernetes: {join: pod}): e.g. increase(my_total{${selector}}[${step}])${join}"
    if missing:
        return f"must use {' and '.join('${' + v + '}' for v in sorted(missing))}: " + (
            "e.g. sum by (${by}) (increase(my_total{${selector}}[${step}]))"
        )
    try:
        for join in ("", SAMPLE_JOIN):  # it must parse as written, and with a pod join in ${join}
            promql_parser.parse(promql.render(name, text, {**SAMPLE_VARIABLES, "join": join}))
    except TemplateError as exc:
        return str(exc).split(": ", 1)[-1]
    except ValueError as exc:
        return f"not valid PromQL: {exc}"
    return ""
