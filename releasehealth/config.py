"""The YAML catalogue (release-health.yaml): validated with pydantic, every problem reported at once.

This is the edge where outside input enters, so it is the only place with pydantic models; the rest
of the code receives the frozen types of `releasehealth.model`. Credentials are read from environment
variables named in the file, never from the file itself.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import promql_parser
import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from releasehealth.queries import promql
from releasehealth.errors import ConfigError, NotFoundError, TemplateError
from releasehealth.model import (
    BaselinePolicy,
    DEFAULT_GROUP_WEIGHTS,
    Direction,
    KubernetesSettings,
    LabelNames,
    LogFields,
    LogSettings,
    MetricKind,
    MetricSpec,
    Policy,
    Service,
    Thresholds,
    Tolerance,
)

DEFAULT_PATH = "release-health.yaml"
TEMPLATE_VARIABLES = frozenset({"by", "selector", "step", "lookback", "join"})
JOINED_VERSION = "version"  # the label a pod join gives every series (kubernetes: {join: pod})
ROLLBACK_PLACEHOLDERS = frozenset({"service", "version", "baseline"})
CONCURRENT_NEEDS_A_VERSION = (
    "so a concurrent baseline cannot tell the versions apart: use previous, last-good, pinned or time-shifted"
)


def _duration(text: object) -> timedelta:
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {text!r}")
    delta = promql.parse_duration(text)
    if delta <= timedelta():
        raise ValueError("duration must be positive")
    return delta


def parse_duration(text: str, where: str) -> timedelta:
    """A positive duration from the command line (30s, 5m, 1h30m); ConfigError naming the option."""
    try:
        return _duration(text)
    except ValueError as exc:
        raise ConfigError(where, [str(exc)]) from None


def _label_name(name: str) -> str:
    if not promql.LABEL_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Prometheus label name")
    return name


def _label_name_or_none(name: str) -> str:
    """A label name, or "" for "the metrics carry no such label" (a version taken from elsewhere)."""
    return name and _label_name(name)


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _header_name(name: str) -> str:
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")
    if name.lower() in ("authorization", "proxy-authorization", "cookie"):
        raise ValueError(f"{name} carries credentials: name an environment variable instead (bearer_token_env, ...)")
    return name


def _header_value(value: str) -> str:
    if not re.fullmatch(r"[\x20-\x7e\t]*", value):
        raise ValueError("header values must be printable ASCII on one line")
    return value


def _existing_file(path: str) -> str:
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    return path


HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderValue = Annotated[str, AfterValidator(_header_value)]
ExistingFile = Annotated[str, AfterValidator(_existing_file)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
LabelName = Annotated[str, AfterValidator(_label_name)]
OptionalLabelName = Annotated[str, AfterValidator(_label_name_or_none)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrometheusModel(_Strict):
    url: HttpUrl
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(2, ge=0, le=10)
    bearer_token_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    verify_tls: bool = True
    ca_file: ExistingFile | None = None  # a CA bundle to verify the server with (an internal CA)
    # Headers sent with every query, e.g. {X-Scope-OrgID: team-a} for Mimir, Cortex or Thanos tenants.
    # Never credentials: those go in environment variables (bearer_token_env, username_env/password_env).
    headers: dict[HeaderName, HeaderValue] = {}


class LogFieldsModel(_Strict):
    timestamp: str = "@timestamp"
    service: str = "service.name"
    version: str = "service.version"
    level: str = "log.level"
    message: str = "message"
    error_type: str = "error.type"
    error_message: str = "error.message"
    trace_id: str = "trace.id"


class ElasticsearchModel(_Strict):
    url: HttpUrl
    index: str = "logs-*"
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(2, ge=0, le=10)
    api_key_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    verify_tls: bool = True
    ca_file: ExistingFile | None = None
    sample_size: int = Field(5000, ge=10, le=10_000)
    deploy_index: str | None = None
    fields: LogFieldsModel = LogFieldsModel()


class SourcesModel(_Strict):
    prometheus: PrometheusModel
    elasticsearch: ElasticsearchModel | None = None


class ToleranceModel(_Strict):
    relative: float = Field(ge=0)
    absolute: float = Field(0.0, ge=0)


class LogsPolicyModel(_Strict):
    enabled: bool = True
    critical: bool = True  # a new or credibly increased error signature rolls back
    min_new_count: int = Field(10, ge=1)
    increase_tolerance: float = Field(1.0, ge=0)  # INCREASED needs a credible rise beyond +100%
    error_rate_tolerance: ToleranceModel = ToleranceModel(relative=0.5, absolute=0.0005)
    not_a_risk: list[str] = []


class ServiceLogsModel(_Strict):
    enabled: bool = True
    index: str | None = None
    service: str | None = None  # the value of the service field, when it is not the service's name
    fields: dict[str, str] = {}

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        unknown = set(fields) - set(LogFieldsModel.model_fields)
        if unknown:
            raise ValueError(f"unknown field name(s) {', '.join(sorted(unknown))} (known: {', '.join(LogFieldsModel.model_fields)})")
        return fields


class ThresholdsModel(_Strict):
    pass_: float = Field(95.0, alias="pass", ge=0, le=100)
    marginal: float = Field(75.0, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdsModel:
        if self.marginal > self.pass_:
            raise ValueError(f"marginal ({self.marginal}) must not exceed pass ({self.pass_})")
        return self


class PolicyModel(_Strict):
    window: Duration = timedelta(minutes=30)
    warmup: Duration = timedelta(minutes=5)
    step: Duration = timedelta(minutes=1)
    lookback: Duration = timedelta(days=7)
    baseline: BaselinePolicy = BaselinePolicy.PREVIOUS
    judge: Literal["release-health", "kayenta"] = "release-health"
    baseline_shift: Duration = timedelta(days=1)  # time-shifted: how far back (1d, 7d)
    pinned_version: str | None = None  # pinned: the version every release is compared with
    min_window_share: float = Field(0.5, gt=0, le=1)
    alpha: float = Field(0.01, gt=0, lt=0.5)
    thresholds: ThresholdsModel = ThresholdsModel()
    group_weights: dict[str, Annotated[float, Field(gt=0)]] = {}
    muted: list[str] = []  # metrics judged and shown but never counted, for every service
    counted: list[str] = []  # metrics a preset ships muted (p99_latency) that you want counted
    check_interval: Duration | None = None  # how often a pipeline re-checks a rollout (alpha spending)

    @model_validator(mode="after")
    def _baseline_is_complete(self) -> PolicyModel:
        if self.baseline is BaselinePolicy.PINNED and not self.pinned_version:
            raise ValueError("baseline: pinned needs pinned_version")
        if self.baseline is BaselinePolicy.TIME_SHIFTED and self.lookback < self.baseline_shift + 2 * self.window:
            raise ValueError(f"baseline: time-shifted by {self.baseline_shift} needs a longer lookback than {self.lookback}")
        return self

    @model_validator(mode="after")
    def _step_divides_window(self) -> PolicyModel:
        window, step = self.window, self.step
        if step.total_seconds() % 1 or window < 4 * step:
            raise ValueError(
                f"step ({promql.format_duration(step) if step.total_seconds() >= 1 else step}) must be whole seconds "
                f"and at most a quarter of the window ({promql.format_duration(window)})"
            )
        return self


class _MetricModel(_Strict):
    name: str
    kind: MetricKind
    unit: str
    queries: dict[str, str]
    direction: Direction = Direction.INCREASE
    tolerance: dict[str, float] = {"relative": 0.2, "absolute": 0.0}
    critical: bool = False
    group: str = "default"
    weight: float = Field(1.0, gt=0)
    quantile: float | None = Field(None, gt=0, lt=1)
    min_count: int = Field(100, ge=1)
    muted: bool = False  # a dry run: judged and shown, never counted (and it takes no alpha)
    optional: bool = False  # left out, unjudged, for a service that exposes none of it


class CustomMetricModel(_MetricModel):
    """A service's own metric: each query is the name of a template (the service's or its preset's) or
    PromQL itself, checked when the config is loaded."""

    bucket_unit: Literal["seconds", "milliseconds"] = "seconds"  # of a histogram's `le` bounds


class LabelsModel(_Strict):
    service: LabelName | None = None
    version: OptionalLabelName | None = None  # "": the metrics carry no version (see kubernetes)


class KubernetesModel(_Strict):
    """Versions from kube-state-metrics: the image tag of the Deployment's pods (or its ReplicaSet's
    pod-template-hash). With a version label on the metrics too, the label wins and any disagreement is
    reported on the release."""

    deployment: str | None = None  # default: the service's name
    namespace: str = ""
    container: str = ""  # default: every container but mesh sidecars (istio-proxy, linkerd-proxy, their init)
    version_from: Literal["image", "replicaset"] = "image"
    # time: cut the metrics at the deploys (any metrics); pod: give each series its pod's version (metrics
    # scraped from the pods, with their namespace and pod labels): canaries and slow rollouts then work.
    join: Literal["time", "pod"] = "time"
    pod_label: LabelName = "pod"
    namespace_label: LabelName = "namespace"


class ServiceModel(_Strict):
    name: str = Field(min_length=1)
    preset: str = "generic"
    labels: LabelsModel = LabelsModel()
    selector: dict[LabelName, str] = {}
    team: str = ""
    logs: ServiceLogsModel = ServiceLogsModel()
    muted: list[str] = []  # this service's metrics judged and shown but never counted
    kubernetes: KubernetesModel | None = None
    # Templates of this service's own (PromQL with ${by}, ${selector}, ${step}), shared by its metrics
    # by name; one named as a preset template replaces it for this service.
    templates: dict[str, str] = {}
    metrics: list[CustomMetricModel] = []  # custom metrics, judged beside the preset's (a same name replaces it)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str) -> str:
        if name not in preset_names():
            raise ValueError(f"unknown preset {name!r} (known: {', '.join(sorted(preset_names()))})")
        return name


class StoreModel(_Strict):
    # An SQLAlchemy URL: a SQLite file (relative to where release-health runs) or PostgreSQL
    # (postgresql+psycopg://user@host/db; a password goes in the environment variable password_env).
    url: str = "sqlite:///release-health.db"
    password_env: str | None = None


class ApiModel(_Strict):
    token_env: str = "RELEASE_HEALTH_API_TOKEN"  # the variable holding the token that POST /api/v1/deploys needs


class CatalogueModel(_Strict):
    sources: SourcesModel
    policy: PolicyModel = PolicyModel()
    services: list[ServiceModel] = Field(min_length=1)
    logs: LogsPolicyModel = LogsPolicyModel()
    rollback_command: str = "kubectl rollout undo deployment/{service}"
    store: StoreModel = StoreModel()
    api: ApiModel = ApiModel()

    @field_validator("rollback_command")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as exc:
            raise ValueError(f"invalid template: {exc}") from exc
        unknown = fields - ROLLBACK_PLACEHOLDERS
        if unknown:
            known = ", ".join("{" + p + "}" for p in sorted(ROLLBACK_PLACEHOLDERS))
            raise ValueError(f"unknown placeholder(s) {', '.join(sorted(unknown))} (known: {known})")
        return template

    @field_validator("services")
    @classmethod
    def _unique_names(cls, services: list[ServiceModel]) -> list[ServiceModel]:
        seen: set[str] = set()
        duplicates = [s.name for s in services if s.name in seen or seen.add(s.name)]
        if duplicates:
            raise ValueError(f"duplicate service name(s): {', '.join(sorted(set(duplicates)))}")
        return services


@dataclass(frozen=True)
class PrometheusSettings:
    url: str
    timeout: timedelta
    retries: int
    verify_tls: bool = True
    bearer_token_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    ca_file: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # static, non-secret (X-Scope-OrgID)


@dataclass(frozen=True)
class ElasticsearchSettings:
    url: str
    timeout: timedelta
    retries: int
    index: str = "logs-*"
    verify_tls: bool = True
    sample_size: int = 5000
    deploy_index: str | None = None
    fields: LogFields = LogFields()
    api_key_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    labels: LabelNames
    templates: Mapping[str, str]
    metrics: tuple[MetricSpec, ...]
    no_version: str = ""  # a version label value that means "no version" (Istio's "unknown")
    bucket_units: Mapping[str, str] = field(default_factory=dict)  # template -> unit of its `le` bounds


def metric_names(template: str) -> list[str]:
    """The metric names a template selects with the service's matchers (`name{${selector}...}`): what a
    "no data for preset X: expected metric Y" names."""
    return list(dict.fromkeys(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{\$\{selector\}", template)))


def templates_of(catalogue: Catalogue, service: Service) -> dict[str, str]:
    """The templates a service's metrics use: its preset's, with its own added or replacing them."""
    return {**catalogue.presets[service.preset].templates, **dict(service.templates)}


@dataclass(frozen=True)
class Catalogue:
    """The validated configuration: where the data is, which services, and how to judge them."""

    prometheus: PrometheusSettings | None
    policy: Policy
    services: tuple[Service, ...]
    rollback_command: str = "kubectl rollout undo deployment/{service}"
    path: str = "<memory>"
    presets: Mapping[str, Preset] = field(default_factory=dict)
    elasticsearch: ElasticsearchSettings | None = None
    not_a_risk: frozenset[str] = frozenset()  # log signature templates that are known not to be a risk
    store_url: str = ""  # the history store (SQLAlchemy URL, password not included); empty: none
    store_password_env: str | None = None
    api_token_env: str = "RELEASE_HEALTH_API_TOKEN"

    def service(self, name: str) -> Service:
        """Return the named service; raise NotFoundError listing the known ones."""
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services)
        raise NotFoundError(f"unknown service {name!r} in {self.path} (known: {known})")

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
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from exc
    return parse(raw, path)


def parse(raw: Any, path: str = "<memory>") -> Catalogue:
    """Return the catalogue for already-parsed YAML `raw`; raise ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(path, ["the top level must be a mapping with sources, policy and services"])
    try:
        model = CatalogueModel.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(path, [_describe(error) for error in exc.errors()]) from exc
    return _to_catalogue(model, path)


def _describe(error: Mapping[str, Any]) -> str:
    location = ""
    for part in error["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{location or '(top level)'}: {message}"


def _to_catalogue(model: CatalogueModel, path: str) -> Catalogue:
    presets = {name: load_preset(name) for name in {s.preset for s in model.services}}
    p = model.policy
    policy = Policy(
        window=p.window,
        warmup=p.warmup,
        step=p.step,
        lookback=p.lookback,
        min_window_share=p.min_window_share,
        baseline=p.baseline,
        thresholds=Thresholds(pass_score=p.thresholds.pass_, marginal_score=p.thresholds.marginal),
        alpha=p.alpha,
        group_weights={**DEFAULT_GROUP_WEIGHTS, **p.group_weights},
        check_interval=p.check_interval,
        judge=p.judge,
        baseline_shift=p.baseline_shift,
        pinned_version=p.pinned_version,
    )
    prom = model.sources.prometheus
    settings = PrometheusSettings(
        url=prom.url,
        timeout=prom.timeout,
        retries=prom.retries,
        verify_tls=prom.verify_tls,
        bearer_token_env=prom.bearer_token_env,
        username_env=prom.username_env,
        password_env=prom.password_env,
        ca_file=prom.ca_file,
        headers=tuple(sorted(prom.headers.items())),
    )
    es = _to_elasticsearch(model.sources.elasticsearch)
    log_specs = log_metrics(model.logs) if es and model.logs.enabled else ()
    customs = [_custom(s, presets[s.preset], f"services[{i}]") for i, s in enumerate(model.services)]
    services = tuple(
        _mute(_to_service(s, presets[s.preset], es, log_specs, c), set(p.muted) | set(s.muted), set(p.counted))
        for s, c in zip(model.services, customs, strict=True)
    )
    problems = [problem for c in customs for problem in c.problems] + _unknown_muted(model, services)
    problems += _versionless_problems(model, services)
    if problems:
        raise ConfigError(path, problems)
    return Catalogue(
        settings, policy, services, model.rollback_command, path, presets, es, frozenset(model.logs.not_a_risk),
        store_url=model.store.url, store_password_env=model.store.password_env, api_token_env=model.api.token_env,
    )


def store_password(password_env: str | None, where: str) -> str | None:
    """The history store's password from the environment variable the config names (None when it names
    none); raise ConfigError naming the variable when it is not set."""
    if not password_env:
        return None
    password = os.environ.get(password_env)
    if not password:
        raise ConfigError(where, [f"store.password_env: set the environment variable {password_env}"])
    return password


def _to_elasticsearch(model: ElasticsearchModel | None) -> ElasticsearchSettings | None:
    if model is None:
        return None
    return ElasticsearchSettings(
        url=model.url,
        timeout=model.timeout,
        retries=model.retries,
        index=model.index,
        verify_tls=model.verify_tls,
        ca_file=model.ca_file,
        sample_size=model.sample_size,
        deploy_index=model.deploy_index,
        fields=LogFields(**model.fields.model_dump()),
        api_key_env=model.api_key_env,
        username_env=model.username_env,
        password_env=model.password_env,
    )


def log_metrics(policy: LogsPolicyModel | None = None) -> tuple[MetricSpec, ...]:
    """The logs group: error-level log lines per request, and new or increased error signatures."""
    policy = policy or LogsPolicyModel()
    rate = policy.error_rate_tolerance
    return (
        MetricSpec(
            name="error_log_rate", kind=MetricKind.LOG_RATE, queries={"denominator": "requests"}, unit="ratio",
            tolerance=Tolerance(rate.relative, rate.absolute), group="logs", min_count=200,
        ),
        MetricSpec(
            name="log_signatures", kind=MetricKind.LOG_SIGNATURES, queries={}, unit="",
            tolerance=Tolerance(policy.increase_tolerance, 0.0), critical=policy.critical, group="logs",
            min_count=policy.min_new_count,
        ),
    )


def _to_service(
    model: ServiceModel, preset: Preset, es: ElasticsearchSettings | None, log_specs: tuple[MetricSpec, ...],
    custom: _Custom,
) -> Service:
    labels = LabelNames(
        service=model.labels.service or preset.labels.service,
        version=preset.labels.version if model.labels.version is None else model.labels.version,
    )
    own = {m.name for m in custom.metrics}
    metrics = tuple(m for m in preset.metrics if m.name not in own) + custom.metrics
    k8s = model.kubernetes
    if k8s and k8s.join == "pod":  # every series gets its pod's version under this name
        labels = LabelNames(labels.service, JOINED_VERSION)
    return Service(
        name=model.name,
        preset=preset.name,
        labels=labels,
        selector=tuple(sorted(model.selector.items())),
        team=model.team,
        metrics=metrics + (log_specs if model.logs.enabled else ()),
        logs=_service_logs(model.logs, es) if es and model.logs.enabled and log_specs else None,
        templates=tuple(sorted(custom.templates.items())),
        bucket_units=tuple(sorted({**preset.bucket_units, **custom.bucket_units}.items())),
        kubernetes=KubernetesSettings(
            k8s.deployment or model.name, k8s.namespace, k8s.container, k8s.version_from, k8s.join, k8s.pod_label,
            k8s.namespace_label,
        ) if k8s else None,
    )


def _versionless_problems(model: CatalogueModel, services: tuple[Service, ...]) -> list[str]:
    """Metrics without a version cannot tell two versions serving at once apart: no concurrent baseline."""
    if model.policy.baseline is not BaselinePolicy.CONCURRENT:
        return []
    return [
        f"services[{i}]: its metrics carry no version label (preset {s.preset}), {CONCURRENT_NEEDS_A_VERSION}"
        for i, s in enumerate(services) if not s.labels.version
    ]


def with_baseline(catalogue: Catalogue, choice: str) -> Catalogue:
    """The catalogue with another baseline policy: previous, last-good, concurrent, time-shifted[:SHIFT]
    (e.g. time-shifted:7d) or pinned:VERSION. Raises ConfigError on anything else."""
    name, _, argument = choice.partition(":")
    try:
        policy = BaselinePolicy(name)
    except ValueError:
        known = ", ".join(p.value for p in BaselinePolicy)
        raise ConfigError("--baseline", [f"unknown baseline {choice!r} (known: {known}; time-shifted:7d, pinned:1.2.3)"]) from None
    changes: dict[str, Any] = {"baseline": policy}
    try:
        if policy is BaselinePolicy.TIME_SHIFTED and argument:
            changes["baseline_shift"] = _duration(argument)
        elif policy is BaselinePolicy.PINNED:
            if not argument:
                raise ValueError("pinned needs a version: pinned:1.2.3")
            changes["pinned_version"] = argument
        elif argument:
            raise ValueError(f"{name} takes no argument")
    except ValueError as exc:
        raise ConfigError("--baseline", [str(exc)]) from None
    updated = dataclasses.replace(catalogue.policy, **changes)
    if updated.baseline is BaselinePolicy.TIME_SHIFTED and updated.lookback < updated.baseline_shift + 2 * updated.window:
        raise ConfigError("--baseline", [f"a shift of {argument or updated.baseline_shift} needs a lookback longer than it (policy.lookback)"])
    return dataclasses.replace(catalogue, policy=updated)


def _unknown_muted(model: CatalogueModel, services: tuple[Service, ...]) -> list[str]:
    """A muted name that is no metric would silently mute nothing: say so, with its path."""
    known = {m.name for s in services for m in s.metrics}
    problems = [
        f"policy.{key}: unknown metric {n!r} (known: {', '.join(sorted(known))})"
        for key, names in (("muted", model.policy.muted), ("counted", model.policy.counted))
        for n in names if n not in known
    ]
    for i, (service, built) in enumerate(zip(model.services, services, strict=True)):
        mine = {m.name for m in built.metrics}
        problems += [
            f"services[{i}].muted: unknown metric {n!r} (known: {', '.join(sorted(mine))})" for n in service.muted if n not in mine
        ]
    return problems


def _mute(service: Service, names: set[str], counted: set[str]) -> Service:
    """Mute the metrics named (a name in both lists stays muted: muting is the safe side)."""
    metrics = tuple(
        dataclasses.replace(m, muted=m.name in names or (m.muted and m.name not in counted)) for m in service.metrics
    )
    return dataclasses.replace(service, metrics=metrics)


def _service_logs(model: ServiceLogsModel, es: ElasticsearchSettings) -> LogSettings:
    fields = LogFields(**{**es.fields.__dict__, **model.fields})
    return LogSettings(index=model.index or es.index, fields=fields, service=model.service or "", sample_size=es.sample_size)


def catalogue_for(
    service_names: list[str], prometheus: PrometheusSettings | None = None, policy: Policy | None = None,
    logs: LogSettings | None = None, teams: dict[str, str] | None = None,
) -> Catalogue:
    """Return a catalogue of generic-preset services (used by the embedded demo fleet), with the logs
    group when `logs` is given and each service's team from `teams`."""
    preset = load_preset("generic")
    metrics = preset.metrics + (log_metrics() if logs else ())
    services = tuple(
        Service(name, preset.name, preset.labels, team=(teams or {}).get(name, ""), metrics=metrics, logs=logs)
        for name in service_names
    )
    return Catalogue(prometheus, policy or Policy(), services, path="<demo>", presets={preset.name: preset})


# ---- presets ---------------------------------------------------------------------------------


class _PresetModel(_Strict):
    name: str
    description: str = ""
    labels: LabelsModel
    no_version: str = ""  # a version label value meaning "unknown" (Istio's "unknown"): as if no label
    bucket_units: dict[str, Literal["seconds", "milliseconds"]] = {}  # template -> unit of its `le` bounds
    templates: dict[str, str]
    # The metrics of another preset (its names, kinds and tolerances) for every template this one defines
    # too, so a verdict means the same under any preset; `metrics` adds to them or replaces one by name.
    metrics_from: str | None = None
    metrics: list[_MetricModel] = []


@cache
def preset_names() -> frozenset[str]:
    folder = resources.files("releasehealth.queries.presets")
    return frozenset(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


@cache
def load_preset(name: str) -> Preset:
    """Return the named preset from queries/presets; raise NotFoundError or ConfigError."""
    if name not in preset_names():
        raise NotFoundError(f"unknown preset {name!r} (known: {', '.join(sorted(preset_names()))})")
    file = resources.files("releasehealth.queries.presets") / f"{name}.yaml"
    where = f"queries/presets/{name}.yaml"
    try:
        model = _PresetModel.model_validate(yaml.safe_load(file.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise ConfigError(where, [_describe(e) for e in exc.errors()]) from exc
    problems = list(_template_problems(model.templates))
    problems += [f"bucket_units.{t}: unknown template {t!r}" for t in model.bucket_units if t not in model.templates]
    problems += [
        f"metrics.{m.name}.queries.{role}: unknown template {t!r}"
        for m in model.metrics
        for role, t in m.queries.items()
        if t not in model.templates
    ]
    inherited: tuple[MetricSpec, ...] = ()
    if model.metrics_from in (None, name):
        problems += [] if model.metrics_from is None else ["metrics_from: a preset cannot take its metrics from itself"]
    elif model.metrics_from not in preset_names():
        problems.append(f"metrics_from: unknown preset {model.metrics_from!r} (known: {', '.join(sorted(preset_names()))})")
    else:
        inherited = load_preset(model.metrics_from).metrics
    if problems:
        raise ConfigError(where, problems)
    own = tuple(map(_to_spec, model.metrics))
    replaced = {m.name for m in own}
    metrics = tuple(
        m for m in inherited if m.name not in replaced and all(t in model.templates for t in m.queries.values())
    ) + own
    version = "version" if model.labels.version is None else model.labels.version
    labels = LabelNames(model.labels.service or "service", version)
    return Preset(
        model.name, model.description, labels, dict(model.templates), metrics,
        no_version=model.no_version, bucket_units=dict(model.bucket_units),
    )


def _template_problems(templates: Mapping[str, str]) -> list[str]:
    """Every template must use only known variables and render to PromQL that parses."""
    return [f"templates.{name}: {problem}" for name, text in templates.items() if (problem := _template_problem(name, text))]


def _template_problem(name: str, text: str, strict: bool = False, joined: bool = False) -> str:
    """What is wrong with one template ("" if nothing): unknown variables, PromQL that does not parse, or
    (`strict`, a service's own) no ${selector} or ${by}: it would read the whole fleet, or return series
    that cannot be told apart by service and version."""
    try:
        used = promql.template_variables(text)
    except ValueError as exc:
        return str(exc)
    unknown = used - TEMPLATE_VARIABLES
    if unknown:
        known = ", ".join("${" + v + "}" for v in sorted(TEMPLATE_VARIABLES))
        return f"unknown variable(s) {', '.join('${' + v + '}' for v in sorted(unknown))} (known: {known})"
    missing = ({"selector", "by"} | ({"join"} if joined else set())) - used if strict else set()
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


SAMPLE_VARIABLES = {"by": "service, version", "selector": 'service="x"', "step": "1m", "lookback": "1d"}
SAMPLE_JOIN = " * on (namespace, pod) group_left (version) max by (namespace, pod, version) (kube_pod_info)"


_TEMPLATE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class _Custom:
    templates: dict[str, str]
    bucket_units: dict[str, str]
    metrics: tuple[MetricSpec, ...]
    problems: list[str]


def _custom(model: ServiceModel, preset: Preset, where: str) -> _Custom:
    """A service's own templates and metrics, each query checked: a name of a template (its own or its
    preset's), or PromQL, named "<metric>.<role>" once it is a template. Every problem with its path."""
    templates = dict(model.templates)
    joined = model.kubernetes is not None and model.kubernetes.join == "pod"
    problems = [
        f"{where}.templates.{name}: {problem}" for name, text in model.templates.items()
        if (problem := _template_problem(name, text, strict=True, joined=joined))
    ]
    known = {**preset.templates, **templates}
    specs, units, names = [], {}, set()
    for j, metric in enumerate(model.metrics):
        if metric.name in names or metric.name in {m.name for m in log_metrics()}:
            problems.append(f"{where}.metrics[{j}].name: {metric.name!r} is already a metric of this service")
        names.add(metric.name)
        queries = {}
        for role, value in metric.queries.items():
            path = f"{where}.metrics[{j}].queries.{role}"
            if value in known:
                queries[role] = value
            elif _TEMPLATE_NAME.match(value.strip()):
                problems.append(f"{path}: unknown template {value.strip()!r} (known: {', '.join(sorted(known))})")
            elif problem := _template_problem(f"{metric.name}.{role}", value, strict=True, joined=joined):
                problems.append(f"{path}: {problem}")
            else:
                queries[role] = f"{metric.name}.{role}"
                templates[queries[role]] = value
        problems += [f"{where}.metrics[{j}]: {p}" for p in _roles_problems(metric)]
        if metric.bucket_unit != "seconds":
            units |= {template: metric.bucket_unit for template in queries.values()}
        specs.append(_to_spec(metric.model_copy(update={"queries": queries})))
    return _Custom(templates, units, tuple(specs), problems)


ROLES = {
    MetricKind.RATIO: {"numerator", "denominator"},
    MetricKind.HISTOGRAM_QUANTILE: {"buckets"},
    MetricKind.GAUGE: {"value"},
}


def _roles_problems(metric: _MetricModel) -> list[str]:
    """The queries a kind needs (a ratio: numerator and denominator...), and a quantile for a histogram."""
    expected = ROLES.get(metric.kind)
    if expected is None:
        return [f"kind {metric.kind.value} cannot be a custom metric (known: {', '.join(k.value for k in ROLES)})"]
    problems = []
    if set(metric.queries) != expected:
        got = ", ".join(sorted(metric.queries)) or "none"
        problems.append(f"queries: a {metric.kind.value} metric needs {', '.join(sorted(expected))}, got {got}")
    if metric.kind is MetricKind.HISTOGRAM_QUANTILE and metric.quantile is None:
        problems.append("quantile: a histogram_quantile metric needs one (e.g. 0.95)")
    return problems


def _to_spec(model: _MetricModel) -> MetricSpec:
    return MetricSpec(
        name=model.name,
        kind=model.kind,
        queries=dict(model.queries),
        unit=model.unit,
        direction=model.direction,
        tolerance=Tolerance(model.tolerance.get("relative", 0.0), model.tolerance.get("absolute", 0.0)),
        critical=model.critical,
        group=model.group,
        weight=model.weight,
        quantile=model.quantile,
        min_count=model.min_count,
        muted=model.muted,
        optional=model.optional,
    )


# ---- credentials -------------------------------------------------------------------------------


def _require(where: str, names: list[str | None], environ: Mapping[str, str]) -> None:
    missing = [v for v in names if v and not environ.get(v)]
    if missing:
        raise ConfigError(where, [f"environment variable {v} is named in the config but not set" for v in missing])


def elasticsearch_credentials(
    settings: ElasticsearchSettings, environ: Mapping[str, str] | None = None
) -> tuple[str | None, tuple[str, str] | None]:
    """Return (API key, basic auth) for Elasticsearch from the environment variables the config names.

    Raises ConfigError naming every variable that is configured but not set.
    """
    environ = os.environ if environ is None else environ
    _require("sources.elasticsearch", [settings.api_key_env, settings.username_env, settings.password_env], environ)
    api_key = environ[settings.api_key_env] if settings.api_key_env else None
    auth = None
    if settings.username_env and settings.password_env:
        auth = (environ[settings.username_env], environ[settings.password_env])
    return api_key, auth


def prometheus_credentials(
    settings: PrometheusSettings, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Return (headers, basic auth) for Prometheus from the environment variables the config names.

    Raises ConfigError naming every variable that is configured but not set.
    """
    environ = os.environ if environ is None else environ
    _require("sources.prometheus", [settings.bearer_token_env, settings.username_env, settings.password_env], environ)
    headers = dict(settings.headers)
    if settings.bearer_token_env:
        headers["Authorization"] = f"Bearer {environ[settings.bearer_token_env]}"
    auth = None
    if settings.username_env and settings.password_env:
        auth = (environ[settings.username_env], environ[settings.password_env])
    return headers, auth
