"""The shape of the config file (release-health.yaml) and of a preset file, as pydantic validates them.

Value types the rest of the code uses as they are (Policy, MetricSpec, Tolerance, KubernetesSettings,
LogFields) come from `releasehealth.model` and are validated in place; the models here are what only the
file has: sources and their settings, per-service overrides, the store and the API.
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
import typing
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.dataclasses import dataclass as config_type
from pydantic_core import ErrorDetails

from releasehealth.format import did_you_mean, redact_url
from releasehealth.model import (
    LABEL_NAME,
    STRICT,
    DerivedTemplate,
    Duration,
    KubernetesSettings,
    LabelName,
    LabelNames,
    LogFields,
    MetricSpec,
    Policy,
    Tolerance,
)

PRESETS_PACKAGE = "releasehealth.queries.presets"
ROLLBACK_PLACEHOLDERS = frozenset({"service", "version", "baseline"})
DEFAULT_ROLLBACK = "kubectl rollout undo deployment/{service}"


def _label_name_or_none(name: str) -> str:
    """A label name, or "" for "the metrics carry no such label" (a version taken from elsewhere)."""
    if name and not LABEL_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Prometheus label name")
    return name


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        # The URL may hold a password (https:/user:secret@host, a scheme mistyped): never echoed whole.
        raise ValueError(f"must start with http:// or https://, got {redact_url(url)!r}")
    if "@" in urlsplit(url).netloc:
        raise ValueError(
            f"carries credentials ({redact_url(url)!r} without them): name environment variables instead "
            "(bearer_token_env, username_env/password_env, api_key_env)"
        )
    return url.rstrip("/")


STORE_URL = re.compile(r"(sqlite|postgresql(\+[a-z0-9]+)?)://.*", re.DOTALL)


def _store_url(url: str) -> str:
    """A URL of a database the store supports, checked when the file is loaded (the store parses it whole
    when it opens it)."""
    if not STORE_URL.fullmatch(url):
        raise ValueError(
            f"not a database URL the store supports: {redact_url(url)!r} (sqlite:///FILE or postgresql+psycopg://USER@HOST/DB)"
        )
    return url


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
OptionalLabelName = Annotated[str, AfterValidator(_label_name_or_none)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrometheusSettings(_Strict):
    """Where the metrics are: any Prometheus-compatible HTTP API (Thanos, Mimir, VictoriaMetrics)."""

    url: HttpUrl
    timeout: Duration = timedelta(seconds=10)  # the whole budget of one query, retries included
    retries: int = Field(default=2, ge=0, le=10)
    # The largest answer read (a bigger one is an error naming the query, never an exhausted memory): its
    # size as it streams in, and its points, counted before decoding.
    max_answer_mb: int = Field(default=64, ge=1, le=4096)
    max_points: int = Field(default=2_000_000, ge=1_000)
    bearer_token_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    verify_tls: bool = True
    ca_file: ExistingFile | None = None  # a CA bundle to verify the server with (an internal CA)
    # Headers sent with every query, e.g. {X-Scope-OrgID: team-a} for Mimir, Cortex or Thanos tenants.
    # Never credentials: those go in environment variables (bearer_token_env, username_env/password_env).
    headers: dict[HeaderName, HeaderValue] = {}


class ElasticsearchSettings(_Strict):
    """Where the logs (and optionally the deploy events) are."""

    url: HttpUrl
    index: str = "logs-*"
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(default=2, ge=0, le=10)
    api_key_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    verify_tls: bool = True
    ca_file: ExistingFile | None = None
    sample_size: int = Field(default=5000, ge=10, le=10_000)  # error and warn messages pulled per window for mining
    info_sample_size: int = Field(default=2000, ge=0, le=10_000)  # info messages, for statements that vanish; 0: none
    deploy_index: str | None = None
    fields: LogFields = LogFields()


class SourcesSettings(_Strict):
    prometheus: PrometheusSettings
    elasticsearch: ElasticsearchSettings | None = None


class LogsPolicy(_Strict):
    """The logs group: how new and increased error signatures, and the error-log rate, are judged."""

    enabled: bool = True
    critical: bool = True  # a new or credibly increased error signature rolls back
    # A NEW error signature fails when the baseline's zero is credibly not chance (the power rule); this
    # floor of lines is an option on top, for teams that want a minimum (1: none).
    min_new_count: int = Field(default=1, ge=1)
    # A statement the baseline logged steadily and the candidate never does: hold the release (default),
    # roll it back, or only show it (a release may remove log lines on purpose).
    vanished: Literal["hold", "rollback", "show"] = "hold"
    # The service's own error vocabulary: its error and warn lines in this span before the baseline
    # window (any version) are sampled in the same multi-search; a signature seen there is never NEW.
    history: Duration = timedelta(hours=24)
    # Error lines of other services naming the candidate's service (its callers) in each window: the
    # release's blast radius, compared like its own; NEW or INCREASED ones hold the release (default),
    # roll it back, are only shown, or are not read at all (off).
    callers: Literal["hold", "rollback", "show", "off"] = "hold"
    increase_tolerance: float = Field(default=1.0, ge=0)  # INCREASED needs a credible rise beyond +100%
    error_rate_tolerance: Tolerance = Tolerance(relative=0.5, absolute=0.0005)
    not_a_risk: tuple[str, ...] = ()


LOG_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(LogFields))


class ServiceLogs(_Strict):
    enabled: bool = True
    index: str | None = None
    service: str | None = None  # the value of the service field, when it is not the service's name
    fields: dict[str, str] = {}  # overrides of sources.elasticsearch.fields for this service

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        unknown = set(fields) - set(LOG_FIELD_NAMES)
        if unknown:
            raise ValueError(f"unknown field name(s) {', '.join(sorted(unknown))} (known: {', '.join(LOG_FIELD_NAMES)})")
        return fields


class LabelOverrides(_Strict):
    """The labels a service's (or a preset's) metrics carry; None: as the preset (or generic) says."""

    service: LabelName | None = None
    version: OptionalLabelName | None = None  # "": the metrics carry no version (see kubernetes)


@config_type(frozen=True, kw_only=True, config=STRICT)
class CustomMetric(MetricSpec):
    """A service's own metric: each query is the name of a template (the service's or its preset's) or
    PromQL itself, checked when the config is loaded."""

    bucket_unit: Literal["seconds", "milliseconds"] = "seconds"  # of a histogram's `le` bounds


@cache
def preset_names() -> frozenset[str]:
    """The presets shipped in releasehealth/queries/presets."""
    folder = resources.files(PRESETS_PACKAGE)
    return frozenset(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


class ServiceEntry(_Strict):
    """One service as the file declares it; the catalogue resolves it against its preset."""

    name: str = Field(min_length=1)
    preset: str = "generic"
    labels: LabelOverrides = LabelOverrides()
    selector: dict[LabelName, str] = {}
    team: str = ""
    logs: ServiceLogs = ServiceLogs()
    muted: tuple[str, ...] = ()  # this service's metrics judged and shown but never counted
    kubernetes: KubernetesSettings | None = None
    # Templates of this service's own (PromQL with ${by}, ${selector}, ${step}), shared by its metrics
    # by name; one named as a preset template replaces it for this service.
    templates: dict[str, str] = {}
    derived: dict[str, DerivedTemplate] = {}  # templates that are part of another's answer (see the presets)
    metrics: tuple[CustomMetric, ...] = ()  # custom metrics, judged beside the preset's (a same name replaces it)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str) -> str:
        if name not in preset_names():
            raise ValueError(f"unknown preset {name!r}{did_you_mean(name, preset_names())} (known: {', '.join(sorted(preset_names()))})")
        return name


class StoreSettings(_Strict):
    # An SQLAlchemy URL: a SQLite file (relative to where release-health runs) or PostgreSQL
    # (postgresql+psycopg://user@host/db; a password goes in the environment variable password_env).
    url: Annotated[str, AfterValidator(_store_url)] = "sqlite:///release-health.db"
    password_env: str | None = None


class ApiSettings(_Strict):
    token_env: str = "RELEASE_HEALTH_API_TOKEN"  # the variable holding the token that POST /api/v1/deploys needs


class ChannelSettings(_Strict):
    """Where watch mode's messages go. The URL, and a webhook's signing secret, are read from the
    environment variables named here: a webhook's URL is a credential, and the file is not the place."""

    name: str = Field(min_length=1, max_length=255)
    kind: Literal["slack", "teams", "webhook", "alertmanager"]
    url_env: str = Field(min_length=1)
    secret_env: str = ""  # webhook: the variable holding the HMAC-SHA256 secret (required for kind webhook)
    teams: list[str] = []  # only these teams' releases (with `services`: either); none of both: every release
    services: list[str] = []

    @model_validator(mode="after")
    def _secret_for_webhooks_only(self) -> ChannelSettings:
        if self.kind == "webhook" and not self.secret_env:
            raise ValueError("a webhook is signed: name the variable holding its secret in secret_env")
        if self.secret_env and self.kind != "webhook":
            raise ValueError(f"secret_env: only a webhook is signed, not a {self.kind} channel")
        return self


def _known_placeholders(template: str) -> str:
    """A rollback command template naming only {service}, {version} and {baseline}."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"invalid template: {exc}") from exc
    unknown = fields - ROLLBACK_PLACEHOLDERS
    if unknown:
        known = ", ".join("{" + p + "}" for p in sorted(ROLLBACK_PLACEHOLDERS))
        raise ValueError(f"unknown placeholder(s) {', '.join(sorted(unknown))} (known: {known})")
    return template


class RollbackHookSettings(_Strict):
    """A command watch mode runs when a release turns ROLLBACK: only when `enabled`, and only printed and
    recorded while `dry_run` (the default). Its {service}, {version} and {baseline} are shell-quoted."""

    command: str = DEFAULT_ROLLBACK
    enabled: bool = False
    dry_run: bool = True
    timeout: Duration = timedelta(minutes=2)

    @field_validator("command")
    @classmethod
    def _placeholders(cls, template: str) -> str:
        return _known_placeholders(template)


class WatchSettings(_Strict):
    """`release-health watch`: how often it scans, how often it checks each release, where it announces."""

    interval: Duration = timedelta(seconds=30)
    check_interval: Duration = timedelta(minutes=5)
    settle: Duration = timedelta(hours=2)  # a release still HOLD after its window is watched this much longer
    dashboard_url: str = ""  # the dashboard's address, for the deep links in the messages
    channels: list[ChannelSettings] = []
    rollback: RollbackHookSettings = RollbackHookSettings()

    @field_validator("dashboard_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("channels")
    @classmethod
    def _unique_channel_names(cls, channels: list[ChannelSettings]) -> list[ChannelSettings]:
        names = [c.name for c in channels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate channel name(s): {', '.join(duplicates)}")
        return channels


class CatalogueFile(_Strict):
    """The whole file."""

    sources: SourcesSettings
    policy: Policy = Policy()
    services: list[ServiceEntry] = Field(min_length=1)
    logs: LogsPolicy = LogsPolicy()
    rollback_command: str = DEFAULT_ROLLBACK
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    watch: WatchSettings = WatchSettings()

    @field_validator("store")
    @classmethod
    def _no_password_in_the_file(cls, store: StoreSettings) -> StoreSettings:
        # --store and RELEASE_HEALTH_STORE may carry one (they have no password_env); the file never does.
        try:
            password = urlsplit(store.url).password
        except ValueError:
            password = None
        if password is not None:
            raise ValueError("url carries a password: name an environment variable in store.password_env instead")
        return store

    @field_validator("rollback_command")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        return _known_placeholders(template)

    @field_validator("services")
    @classmethod
    def _unique_names(cls, services: list[ServiceEntry]) -> list[ServiceEntry]:
        seen: set[str] = set()
        duplicates = [s.name for s in services if s.name in seen or seen.add(s.name)]  # type: ignore[func-returns-value]
        if duplicates:
            raise ValueError(f"duplicate service name(s): {', '.join(sorted(set(duplicates)))}")
        return services


class Preset(_Strict):
    """A preset file (queries/presets/NAME.yaml): the labels and PromQL templates of one ecosystem, and the
    metrics judged on them. Loaded, `metrics` holds what `metrics_from` gives it too."""

    name: str
    description: str = ""
    labels: LabelOverrides
    no_version: str = ""  # a version label value meaning "unknown" (Istio's "unknown"): as if no label
    bucket_units: dict[str, Literal["seconds", "milliseconds"]] = {}  # template -> unit of its `le` bounds
    templates: dict[str, str]
    # Templates that are part of another's answer: `errors: {from: requests, where: {code: "5.."}}`.
    derived: dict[str, DerivedTemplate] = {}
    # The metrics of another preset (its names, kinds and tolerances) for every template this one defines
    # too, so a verdict means the same under any preset; `metrics` adds to them or replaces one by name.
    metrics_from: str | None = None
    metrics: tuple[MetricSpec, ...] = ()

    @property
    def label_names(self) -> LabelNames:
        version = "version" if self.labels.version is None else self.labels.version
        return LabelNames(self.labels.service or "service", version)


def describe_error(error: ErrorDetails, model: type | None = None) -> str:
    """One validation error as "path.to[0].field: message", the path as the file writes it; an unknown
    field of `model` (the validated root) with the known field closest to it."""
    location = ""
    for part in error["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        *parent, name = error["loc"] or ("",)
        message = "unknown field" + (did_you_mean(str(name), _field_names(model, parent)) if model else "")
    return f"{location or '(top level)'}: {message}"


def _field_names(model: Any, path: list[int | str]) -> list[str]:
    """The field names (and aliases) of the model at `path` under `model`; [] where the path leaves the
    models (a mapping of user names, a list of scalars)."""
    for part in path:
        if isinstance(part, int):  # an item of a list: its type was taken with the list's field
            continue
        field = _fields(model).get(str(part))
        if field is None:
            return []
        model = _model_in(field.annotation)
    return list(_fields(model))  # names and aliases


def _fields(model: Any) -> dict[str, Any]:
    """A pydantic model's or pydantic dataclass's fields by name, aliases too ({} for anything else)."""
    fields = getattr(model, "model_fields", None) or getattr(model, "__pydantic_fields__", None) or {}
    return {**fields, **{f.alias: f for f in fields.values() if getattr(f, "alias", None)}}


def _model_in(annotation: Any) -> Any:
    """The model a field holds, through Optional, unions, lists, tuples and mappings' values; None if none."""
    if _fields(annotation):
        return annotation
    for argument in reversed(typing.get_args(annotation)):  # a mapping's value type comes last
        found = _model_in(argument)
        if found is not None:
            return found
    return None
