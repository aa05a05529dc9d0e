"""The catalogue: the validated configuration, its services resolved once; loaded from the YAML file."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from releasehealth.config.presets import load_preset, log_metrics
from releasehealth.config.schema import (
    DEFAULT_ROLLBACK,
    ApiSettings,
    CatalogueFile,
    ElasticsearchSettings,
    PrometheusSettings,
    ServiceEntry,
    StoreSettings,
    WatchSettings,
    describe_error,
)
from releasehealth.config.services import resolve_service, service_logs
from releasehealth.errors import ConfigError, NotFoundError
from releasehealth.format import did_you_mean
from releasehealth.model import (
    DEFAULT_GROUP_WEIGHTS,
    BaselinePolicy,
    LogSettings,
    Policy,
    Service,
    parse_duration,
)

DEFAULT_PATH = "release-health.yaml"
CONCURRENT_NEEDS_A_VERSION = (
    "so a concurrent baseline cannot tell the versions apart: use previous, last-good, pinned or time-shifted"
)


@dataclass(frozen=True, kw_only=True)
class Catalogue:
    """The validated configuration: where the data is, which services, and how to judge them."""

    policy: Policy
    services: tuple[Service, ...]
    prometheus: PrometheusSettings | None = None
    elasticsearch: ElasticsearchSettings | None = None
    rollback_command: str = DEFAULT_ROLLBACK
    path: str = "<memory>"
    not_a_risk: frozenset[str] = frozenset()  # log signature templates that are known not to be a risk
    store: StoreSettings | None = None  # the history store (an SQLAlchemy URL; its password in the environment); None: none
    api: ApiSettings = ApiSettings()
    watch: WatchSettings = WatchSettings()

    def service(self, name: str) -> Service:
        """Return the named service; raise NotFoundError listing the known ones."""
        for service in self.services:
            if service.name == name:
                return service
        names = [s.name for s in self.services]
        raise NotFoundError(f"unknown service {name!r} in {self.path}{did_you_mean(name, names)} (known: {', '.join(names)})")

    def rollback(self, service: str, version: str, baseline: str) -> str:
        """The configured rollback command with {service}, {version} and {baseline} filled in, each
        shell-quoted: they are label values, untrusted, and the command is meant to be pasted in a shell."""
        return self.rollback_command.format(
            service=shlex.quote(service), version=shlex.quote(version), baseline=shlex.quote(baseline)
        )


def load(path: str | Path = DEFAULT_PATH) -> Catalogue:
    """Return the catalogue in the YAML file at `path`; raise ConfigError listing every problem."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text (byte {exc.start}): save the file as UTF-8"]) from exc
    except ValueError as exc:  # a path no file can have (a NUL byte in it)
        raise ConfigError(path, [f"cannot read the file: {exc}"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from exc
    except (ValueError, OverflowError) as exc:  # a date YAML reads but Python cannot hold (0000-00-00)
        raise ConfigError(path, [f"not valid YAML: a value cannot be read ({exc})"]) from exc
    except RecursionError as exc:
        raise ConfigError(path, ["not valid YAML: nested too deeply"]) from exc
    return parse(raw, path)


def parse(raw: Any, path: str = "<memory>") -> Catalogue:
    """Return the catalogue for already-parsed YAML `raw`; raise ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(path, ["the top level must be a mapping with sources, policy and services"])
    try:
        file = CatalogueFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(path, [describe_error(error, CatalogueFile) for error in exc.errors()]) from exc
    return _resolve(file, path)


def _resolve(file: CatalogueFile, path: str) -> Catalogue:
    """Every service resolved against its preset; every problem at once."""
    policy = dataclasses.replace(file.policy, group_weights={**DEFAULT_GROUP_WEIGHTS, **file.policy.group_weights})
    elasticsearch = file.sources.elasticsearch
    log_specs = log_metrics(file.logs) if elasticsearch and file.logs.enabled else ()
    services, problems = [], []
    for i, entry in enumerate(file.services):
        service, found = resolve_service(
            entry, load_preset(entry.preset), f"services[{i}]", logs=service_logs(entry, elasticsearch, file.logs.history, file.logs.callers != "off"),
            log_specs=log_specs, policy=policy,
        )
        services.append(service)
        problems += found
    problems += _unknown_muted(policy, file.services, services) + _versionless_problems(policy, services)
    if problems:
        raise ConfigError(path, problems)
    return Catalogue(
        policy=policy, services=tuple(services), prometheus=file.sources.prometheus, elasticsearch=elasticsearch,
        rollback_command=file.rollback_command, path=path, not_a_risk=frozenset(file.logs.not_a_risk),
        store=file.store, api=file.api, watch=file.watch,
    )


def _unknown_muted(policy: Policy, entries: Sequence[ServiceEntry], services: Sequence[Service]) -> list[str]:
    """A muted name that is no metric would silently mute nothing: say so, with its path."""
    known = {m.name for s in services for m in s.metrics}
    problems = [
        f"policy.{key}: unknown metric {n!r} (known: {', '.join(sorted(known))})"
        for key, names in (("muted", policy.muted), ("counted", policy.counted))
        for n in names if n not in known
    ]
    for i, (entry, service) in enumerate(zip(entries, services, strict=True)):
        mine = {m.name for m in service.metrics}
        problems += [
            f"services[{i}].muted: unknown metric {n!r} (known: {', '.join(sorted(mine))})" for n in entry.muted if n not in mine
        ]
    return problems


def _versionless_problems(policy: Policy, services: Sequence[Service]) -> list[str]:
    """Metrics without a version cannot tell two versions serving at once apart: no concurrent baseline."""
    if policy.baseline is not BaselinePolicy.CONCURRENT:
        return []
    return [
        f"services[{i}]: its metrics carry no version label (preset {s.preset}), {CONCURRENT_NEEDS_A_VERSION}"
        for i, s in enumerate(services) if not s.labels.version
    ]


def parse_option_duration(text: str, where: str) -> timedelta:
    """A positive duration from the command line (30s, 5m, 1h30m); ConfigError naming the option."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(where, [str(exc)]) from None


def store_settings(url: str, where: str = "--store") -> StoreSettings:
    """The history store at `url` given on the command line or in the environment; ConfigError naming `where`."""
    try:
        return StoreSettings(url=url)
    except ValidationError as exc:
        raise ConfigError(where, [describe_error(e) for e in exc.errors()]) from None


def with_baseline(policy: Policy, choice: str) -> Policy:
    """The policy with another baseline: previous, last-good, concurrent, time-shifted[:SHIFT] (e.g.
    time-shifted:7d) or pinned:VERSION. Raises ConfigError on anything else."""
    name, _, argument = choice.partition(":")
    try:
        baseline = BaselinePolicy(name)
    except ValueError:
        known = ", ".join(p.value for p in BaselinePolicy)
        raise ConfigError("--baseline", [f"unknown baseline {choice!r} (known: {known}; time-shifted:7d, pinned:1.2.3)"]) from None
    changes: dict[str, Any] = {"baseline": baseline}
    try:
        if baseline is BaselinePolicy.TIME_SHIFTED and argument:
            changes["baseline_shift"] = parse_duration(argument)
        elif baseline is BaselinePolicy.PINNED:
            if not argument:
                raise ValueError("pinned needs a version: pinned:1.2.3")
            changes["pinned_version"] = argument
        elif argument:
            raise ValueError(f"{name} takes no argument")
    except ValueError as exc:
        raise ConfigError("--baseline", [str(exc)]) from None
    shift = changes.get("baseline_shift", policy.baseline_shift)
    if baseline is BaselinePolicy.TIME_SHIFTED and policy.lookback < shift + 2 * policy.window:
        raise ConfigError("--baseline", [f"a shift of {argument or shift} needs a lookback longer than it (policy.lookback)"])
    try:
        return dataclasses.replace(policy, **changes)
    except ValidationError as exc:
        raise ConfigError("--baseline", [describe_error(e) for e in exc.errors()]) from None


def catalogue_for(
    service_names: Sequence[str], *, policy: Policy | None = None, logs: LogSettings | None = None,
    teams: dict[str, str] | None = None, path: str = "<demo>", templates: Mapping[str, str] | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
) -> Catalogue:
    """A catalogue of generic-preset services (the embedded demo fleet's), reading their logs as `logs`
    says (none without), each service's team from `teams`, each with the custom `templates` and `metrics`
    (as a config file's services[].templates and .metrics say them)."""
    policy = policy or Policy()
    log_specs = log_metrics() if logs else ()
    services = tuple(
        resolve_service(
            ServiceEntry.model_validate({
                "name": name, "team": (teams or {}).get(name, ""), "templates": dict(templates or {}), "metrics": list(metrics),
            }),
            load_preset("generic"), name, logs=logs, log_specs=log_specs, policy=policy,
        )[0]
        for name in service_names
    )
    return Catalogue(policy=policy, services=services, path=path)
