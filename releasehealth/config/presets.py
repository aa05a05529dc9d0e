"""The presets (queries/presets/*.yaml, each an ecosystem's metric names and labels) and the logs group."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import ValidationError

from releasehealth.config.schema import (
    PRESETS_PACKAGE,
    LogsPolicy,
    Preset,
    describe_error,
    preset_names,
)
from releasehealth.config.templates import derived_problems, template_problems
from releasehealth.errors import ConfigError, NotFoundError
from releasehealth.format import did_you_mean
from releasehealth.model import MetricKind, MetricSpec, Tolerance

__all__ = ["load_preset", "log_metrics", "preset_names"]


@cache
def load_preset(name: str) -> Preset:
    """Return the named preset, its metrics including those it takes from another (metrics_from); raise
    NotFoundError or ConfigError."""
    if name not in preset_names():
        raise NotFoundError(f"unknown preset {name!r}{did_you_mean(name, preset_names())} (known: {', '.join(sorted(preset_names()))})")
    where = f"queries/presets/{name}.yaml"
    text = (resources.files(PRESETS_PACKAGE) / f"{name}.yaml").read_text(encoding="utf-8")
    try:
        preset = Preset.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise ConfigError(where, [describe_error(e, Preset) for e in exc.errors()]) from exc
    problems = template_problems(preset.templates) + derived_problems(preset.derived, preset.templates)
    problems += [f"bucket_units.{t}: unknown template {t!r}" for t in preset.bucket_units if t not in preset.templates]
    problems += [
        f"metrics.{m.name}.queries.{role}: unknown template {t!r}"
        for m in preset.metrics
        for role, t in m.queries.items()
        if t not in preset.templates and t not in preset.derived
    ]
    inherited: tuple[MetricSpec, ...] = ()
    if preset.metrics_from == name:
        problems.append("metrics_from: a preset cannot take its metrics from itself")
    elif preset.metrics_from is not None and preset.metrics_from not in preset_names():
        names = sorted(preset_names())
        problems.append(
            f"metrics_from: unknown preset {preset.metrics_from!r}{did_you_mean(preset.metrics_from, names)} (known: {', '.join(names)})"
        )
    elif preset.metrics_from is not None:
        inherited = load_preset(preset.metrics_from).metrics
    if problems:
        raise ConfigError(where, problems)
    replaced = {m.name for m in preset.metrics}
    known = {**preset.templates, **preset.derived}
    kept = tuple(m for m in inherited if m.name not in replaced and all(t in known for t in m.queries.values()))
    return preset.model_copy(update={"metrics": kept + preset.metrics})


def log_metrics(policy: LogsPolicy | None = None) -> tuple[MetricSpec, ...]:
    """The logs group: error-level log lines per request, and new or increased error signatures."""
    policy = policy or LogsPolicy()
    return (
        MetricSpec(
            name="error_log_rate", kind=MetricKind.LOG_RATE, queries={"denominator": "requests"}, unit="ratio",
            tolerance=policy.error_rate_tolerance, group="logs", min_count=200,
        ),
        MetricSpec(
            name="log_signatures", kind=MetricKind.LOG_SIGNATURES, queries={}, unit="",
            tolerance=Tolerance(relative=policy.increase_tolerance), critical=policy.critical, group="logs",
            min_count=policy.min_new_count, vanished=policy.vanished,
            callers="show" if policy.callers == "off" else policy.callers,
        ),
    )
