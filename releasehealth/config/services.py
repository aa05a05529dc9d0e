"""Each service resolved once: its preset's labels, templates and metrics merged with its own, muting
applied, where its versions and logs come from; every problem with its path."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

from releasehealth.config.schema import (
    CustomMetric,
    ElasticsearchSettings,
    Preset,
    ServiceEntry,
)
from releasehealth.config.templates import derived_problems, template_problem
from releasehealth.model import (
    LabelNames,
    LogSettings,
    MetricKind,
    MetricSpec,
    Policy,
    Service,
)
from releasehealth.queries import kubernetes

JOINED_VERSION = "version"  # the label a pod join gives every series (kubernetes: {join: pod})
ROLES = {
    MetricKind.RATIO: {"numerator", "denominator"},
    MetricKind.HISTOGRAM_QUANTILE: {"buckets"},
    MetricKind.HISTOGRAM_TAIL: {"buckets"},
    MetricKind.GAUGE: {"value"},
}
_TEMPLATE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class _Custom:
    """A service's own templates (its custom metrics' PromQL among them), their units and its metrics."""

    templates: dict[str, str]
    bucket_units: dict[str, str]
    metrics: tuple[MetricSpec, ...]
    problems: list[str]


def resolve_service(
    entry: ServiceEntry, preset: Preset, where: str, *, logs: LogSettings | None, log_specs: tuple[MetricSpec, ...],
    policy: Policy,
) -> tuple[Service, list[str]]:
    """The service `entry` declares, resolved against its preset, with the problems found (paths under `where`)."""
    custom = _custom(entry, preset, where)
    own = {m.name for m in custom.metrics}
    metrics = tuple(m for m in preset.metrics if m.name not in own) + custom.metrics
    metrics += log_specs if entry.logs.enabled else ()
    labels = LabelNames(
        service=entry.labels.service or preset.label_names.service,
        version=preset.label_names.version if entry.labels.version is None else entry.labels.version,
    )
    # A service's own template of a name replaces the preset's, PromQL or derived.
    templates = {n: t for n, t in {**preset.templates, **custom.templates}.items() if n not in entry.derived}
    derived = {n: d for n, d in {**preset.derived, **entry.derived}.items() if n not in custom.templates}
    problems = custom.problems + [f"{where}.{p}" for p in derived_problems(entry.derived, templates)]
    k8s = entry.kubernetes
    if k8s is not None:
        k8s = dataclasses.replace(k8s, deployment=k8s.deployment or entry.name)
        if k8s.join == "pod":  # every series gets its pod's version under this name
            labels = LabelNames(labels.service, JOINED_VERSION)
    service = Service(
        name=entry.name,
        preset=preset.name,
        labels=labels,
        selector=tuple(sorted(entry.selector.items())),
        team=entry.team,
        metrics=_muted(metrics, set(policy.muted) | set(entry.muted), set(policy.counted)),
        logs=logs if entry.logs.enabled and log_specs else None,
        templates=templates,
        derived=derived,
        own_templates=frozenset(custom.templates) | frozenset(entry.derived),
        bucket_units={**preset.bucket_units, **custom.bucket_units},
        no_version=preset.no_version,
        kubernetes=k8s,
        join=kubernetes.pod_join(k8s) if k8s is not None and k8s.join == "pod" and labels.version else "",
    )
    return service, problems


def service_logs(
    entry: ServiceEntry, elasticsearch: ElasticsearchSettings | None, history: timedelta = timedelta(hours=24),
    callers: bool = True,
) -> LogSettings | None:
    """Where a service's logs are: the source's index and fields, with the service's overrides, how far
    back before the baseline its error vocabulary is read, and whether its callers' lines are read."""
    if elasticsearch is None:
        return None
    fields = dataclasses.replace(elasticsearch.fields, **entry.logs.fields)
    return LogSettings(
        index=entry.logs.index or elasticsearch.index, fields=fields, service=entry.logs.service or "",
        sample_size=elasticsearch.sample_size, info_sample_size=elasticsearch.info_sample_size, history=history,
        callers=callers,
    )


def _muted(metrics: Sequence[MetricSpec], names: Collection[str], counted: Collection[str]) -> tuple[MetricSpec, ...]:
    """Mute the metrics named (a name in both lists stays muted: muting is the safe side)."""
    return tuple(
        dataclasses.replace(m, muted=m.name in names or (m.muted and m.name not in counted)) for m in metrics
    )


def _custom(entry: ServiceEntry, preset: Preset, where: str) -> _Custom:
    """A service's own templates and metrics, each query checked: a name of a template (its own or its
    preset's), or PromQL, named "<metric>.<role>" once it is a template. Every problem with its path."""
    templates = dict(entry.templates)
    joined = entry.kubernetes is not None and entry.kubernetes.join == "pod"
    problems = [
        f"{where}.templates.{name}: {problem}" for name, text in entry.templates.items()
        if (problem := template_problem(name, text, strict=True, joined=joined))
    ]
    known = {**preset.templates, **preset.derived, **templates, **entry.derived}
    specs: list[MetricSpec] = []
    units: dict[str, str] = {}
    names: set[str] = set()
    for j, metric in enumerate(entry.metrics):
        if metric.name in names or metric.name in LOG_METRIC_NAMES:
            problems.append(f"{where}.metrics[{j}].name: {metric.name!r} is already a metric of this service")
        names.add(metric.name)
        queries = {}
        for role, value in metric.queries.items():
            path = f"{where}.metrics[{j}].queries.{role}"
            if value in known:
                queries[role] = value
            elif _TEMPLATE_NAME.match(value.strip()):
                problems.append(f"{path}: unknown template {value.strip()!r} (known: {', '.join(sorted(known))})")
            elif problem := template_problem(f"{metric.name}.{role}", value, strict=True, joined=joined):
                problems.append(f"{path}: {problem}")
            else:
                queries[role] = f"{metric.name}.{role}"
                templates[queries[role]] = value
        problems += [f"{where}.metrics[{j}]: {p}" for p in _roles_problems(metric)]
        if metric.bucket_unit != "seconds":
            units |= {template: metric.bucket_unit for template in queries.values()}
        specs.append(dataclasses.replace(metric, queries=queries))
    return _Custom(templates, units, tuple(specs), problems)


LOG_METRIC_NAMES = frozenset({"error_log_rate", "log_signatures"})


def _roles_problems(metric: CustomMetric) -> list[str]:
    """The queries a kind needs (a ratio: numerator and denominator...), and a quantile for a histogram."""
    expected = ROLES.get(metric.kind)
    if expected is None:
        return [f"kind {metric.kind.value} cannot be a custom metric (known: {', '.join(k.value for k in ROLES)})"]
    problems = []
    if set(metric.queries) != expected:
        got = ", ".join(sorted(metric.queries)) or "none"
        problems.append(f"queries: a {metric.kind.value} metric needs {', '.join(sorted(expected))}, got {got}")
    if metric.kind in (MetricKind.HISTOGRAM_QUANTILE, MetricKind.HISTOGRAM_TAIL) and metric.quantile is None:
        problems.append(f"quantile: a {metric.kind.value} metric needs one (e.g. 0.95)")
    return problems
