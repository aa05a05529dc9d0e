"""Core types shared by every layer: closed outcome sets (StrEnums), what is judged and the data it is
judged on. What judging produces is in releasehealth.verdicts.

The configuration's value types (Tolerance, MetricSpec, Thresholds, Policy, KubernetesSettings, LogFields)
are pydantic dataclasses: the config file is validated straight into them, so each is defined once, and
everywhere else they are frozen dataclasses like the rest (services, deploys, windows, queries, series).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

import numpy as np
import promql_parser
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass as config_type

# The settings of a config type: unknown keys are errors, and a field with a YAML alias ("pass") can
# still be set by its Python name in code.
STRICT = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class MetricKind(StrEnum):
    """How a metric is measured, which decides the test used on it."""

    RATIO = "ratio"  # a counter divided by a counter: errors / requests
    HISTOGRAM_QUANTILE = "histogram_quantile"  # a quantile of a Prometheus histogram
    LOG_RATE = "log_rate"  # error-level log lines per request (or per log line)
    LOG_SIGNATURES = "log_signatures"  # new or increased error signatures mined from log messages
    GAUGE = "gauge"  # a level sampled per step (memory, CPU): rank, excursion and trend tests
    HISTOGRAM_TAIL = "histogram_tail"  # the share of requests slower than the baseline's `quantile` of a histogram


class Direction(StrEnum):
    """Which change hurts: only a change in the harmful direction can fail a metric."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class Classification(StrEnum):
    PASS = "PASS"
    HIGH = "HIGH"
    LOW = "LOW"
    NODATA = "NODATA"
    ERROR = "ERROR"


class Action(StrEnum):
    PROMOTE = "PROMOTE"
    HOLD = "HOLD"
    ROLLBACK = "ROLLBACK"
    INCONCLUSIVE = "INCONCLUSIVE"


class BaselinePolicy(StrEnum):
    """Which release, over which window, the candidate is compared with (DESIGN §5)."""

    PREVIOUS = "previous"  # the release it replaced, just before the deploy
    LAST_GOOD = "last-good"  # the latest release whose stored verdict was PROMOTE (needs the history store)
    PINNED = "pinned"  # a named version
    TIME_SHIFTED = "time-shifted"  # whatever served the same clock window one day (or week) earlier
    CONCURRENT = "concurrent"  # the previous version while both serve (canary, rolling deploy)


class DeploySourceKind(StrEnum):
    DETECTED = "detected"  # first appearance of a version label in the metrics
    EVENT = "event"  # a deploy event recorded in an index (wins over a detected one)
    RECORDED = "recorded"  # told by a pipeline (record-deploy, POST /api/v1/deploys), kept in the history store
    KUBERNETES = "kubernetes"  # a new image tag (or ReplicaSet) of the Deployment, from kube-state-metrics


class SignatureStatus(StrEnum):
    """How a log signature (a mined message template) compares between the two windows."""

    NEW = "NEW"  # absent from the baseline
    VANISHED = "VANISHED"  # steady in the baseline, credibly absent from the candidate at its traffic
    INCREASED = "INCREASED"  # present in both, credibly more frequent beyond tolerance
    KNOWN = "KNOWN"  # present in both, no credible rise
    GONE = "GONE"  # present in the baseline only


# The statuses whose examples a reader needs to see (in the dashboard, the reports and the CLI).
NOTABLE_SIGNATURES = (SignatureStatus.NEW, SignatureStatus.INCREASED, SignatureStatus.VANISHED)


# ---- configuration value types (validated where the config file enters) --------------------------------


# Prometheus' duration units; each term of a duration, a number and a unit (1h30m has two).
DURATION_TERM = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# promql-parser counts in nanoseconds in an i64 and panics (a Rust panic, not an error) past 292 years:
# longer durations are refused before they reach it. Nothing here needs more than a few weeks.
MAX_DURATION = timedelta(days=36500)


def parse_duration(value: object) -> timedelta:
    """A positive duration such as 30s, 5m, 1h30m or 7d, at most 100 years (Prometheus' syntax, read by
    promql-parser); a timedelta passes through. Raises ValueError."""
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, str) and _duration_terms(value.strip()):
        if sum(int(n) * DURATION_UNITS[u] for n, u in _duration_terms(value.strip())) > MAX_DURATION.total_seconds():
            raise ValueError(f"duration {value!r} is too long (at most {MAX_DURATION.days}d)")
        try:
            parsed = promql_parser.parse_duration(value.strip())
        except ValueError:
            raise ValueError(f"invalid duration {value!r} (expected e.g. 30s, 5m, 1h30m, 7d)") from None
        # promql-parser 0.11 hands back an unnormalised timedelta (7d as 604800 seconds and 0 days, which is
        # not equal to timedelta(days=7)) and reads "500ms" as 500 microseconds: the sub-second part of its
        # answer is then below a millisecond, which no duration written in ms can mean.
        micros = parsed.microseconds * 1000 if 0 < parsed.microseconds < 1000 else parsed.microseconds
        delta = timedelta(days=parsed.days, seconds=parsed.seconds, microseconds=micros)
    else:
        raise ValueError(f"invalid duration {value!r} (expected e.g. 30s, 5m, 1h30m, 7d)")
    if delta <= timedelta():
        raise ValueError("duration must be positive")
    if delta > MAX_DURATION:
        raise ValueError(f"duration {value!r} is too long (at most {MAX_DURATION.days}d)")
    return delta


def _duration_terms(text: str) -> list[tuple[str, str]]:
    """The (number, unit) terms of a duration, or [] when the text is not one (a unit is required)."""
    terms = DURATION_TERM.findall(text)
    return terms if terms and "".join(n + u for n, u in terms) == text else []


def _label_name(name: str) -> str:
    if not LABEL_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Prometheus label name")
    return name


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
LabelName = Annotated[str, AfterValidator(_label_name)]  # after: a list is refused as not a string first


@config_type(frozen=True, config=STRICT)
class Tolerance:
    """A change must exceed both to fail: relative (0.2 = +20%) and absolute (in the metric's unit)."""

    relative: float = Field(default=0.0, ge=0)
    absolute: float = Field(default=0.0, ge=0)


@config_type(frozen=True, kw_only=True, config=STRICT)
class MetricSpec:
    """One metric judged for every release of a service.

    `queries` maps the role of each input ("numerator", "denominator", "buckets") to the name of a
    query template of the service's.
    """

    name: str
    kind: MetricKind
    queries: dict[str, str]
    unit: str
    direction: Direction = Direction.INCREASE
    tolerance: Tolerance = Tolerance(relative=0.2, absolute=0.0)
    critical: bool = False
    group: str = "default"
    weight: float = Field(default=1.0, gt=0)
    quantile: float | None = Field(default=None, gt=0, lt=1)
    min_count: int = Field(default=100, ge=1)
    muted: bool = False  # judged and shown, but never counted in the score or the recommendation
    optional: bool = False  # a service that exposes none of it (no resilience4j) leaves it out, unjudged
    # A gauge's valid range: a step outside it is garbage (a negative memory), left out and counted.
    valid_min: float | None = None
    valid_max: float | None = None
    # A gauge's leak tolerance: growth per hour, relative to its level, that the candidate may add to the
    # baseline's own trend (None: the level tolerance over the window, as a level shift).
    trend_tolerance: float | None = Field(default=None, ge=0)
    # Log signatures only: what a statement that vanished does to the release (hold, rollback or show).
    vanished: Literal["hold", "rollback", "show"] = "hold"
    # Log signatures only: what error lines of other services naming this one (callers) do to the release.
    callers: Literal["hold", "rollback", "show"] = "hold"

    @model_validator(mode="after")
    def _valid_range(self) -> MetricSpec:
        if self.valid_min is not None and self.valid_max is not None and self.valid_min > self.valid_max:
            raise ValueError(f"valid_min ({self.valid_min}) must not exceed valid_max ({self.valid_max})")
        return self


@config_type(frozen=True, kw_only=True, config=STRICT)
class Thresholds:
    """Score thresholds: >= pass promotes, >= marginal holds, below rolls back."""

    pass_score: float = Field(default=95.0, validation_alias="pass", ge=0, le=100)
    marginal_score: float = Field(default=75.0, validation_alias="marginal", ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.marginal_score > self.pass_score:
            raise ValueError(f"marginal ({self.marginal_score}) must not exceed pass ({self.pass_score})")
        return self


# Saturation gauges (memory, CPU) weigh half a group: one failing alone scores 86 and holds a release,
# while a failing latency group with them passing scores 71 and rolls it back.
DEFAULT_GROUP_WEIGHTS = {"saturation": 0.5}


def _duration_text(delta: timedelta) -> str:
    return promql_parser.display_duration(delta) if delta.total_seconds() >= 1 else str(delta)


@config_type(frozen=True, kw_only=True, config=STRICT)
class Policy:
    """How releases are judged: windows, baseline, false-alarm budget, thresholds and weights."""

    window: Duration = timedelta(minutes=30)
    warmup: Duration = timedelta(minutes=5)
    step: Duration = timedelta(minutes=1)
    lookback: Duration = timedelta(days=7)
    # A candidate window shorter than this share of `window` is too early to judge.
    min_window_share: float = Field(default=0.5, gt=0, le=1)
    baseline: BaselinePolicy = BaselinePolicy.PREVIOUS
    thresholds: Thresholds = Thresholds()
    alpha: float = Field(default=0.01, gt=0, lt=0.5)  # false-alarm budget of one release, shared among its metrics
    # The budget of false HOLDs the metrics that can only hold a release (saturation gauges) share: a HOLD
    # costs a look, not a rollback, so they may spend more than `alpha` and keep their power.
    hold_alpha: float = Field(default=0.05, gt=0, lt=0.5)
    # group -> weight in the score (1 for a group not named)
    group_weights: dict[str, Annotated[float, Field(gt=0)]] = field(default_factory=lambda: dict(DEFAULT_GROUP_WEIGHTS))
    # How often a pipeline re-checks a rollout (None: each release is judged once); see scoring.multiple.
    check_interval: Duration | None = None
    # Kayenta's classifier and scorer instead of ours, for comparison and migration.
    judge: Literal["release-health", "kayenta"] = "release-health"
    baseline_shift: Duration = timedelta(days=1)  # for time-shifted baselines: how far back (1d, 7d)
    pinned_version: str | None = None  # for pinned baselines: the version every release is compared with
    muted: tuple[str, ...] = ()  # metrics judged and shown but never counted, for every service
    counted: tuple[str, ...] = ()  # metrics a preset ships muted (p99_latency) that you want counted
    # Deploy detection asks Prometheus for lookback / step points per series ([7d:1m] is 10,080): a bound,
    # so that a typo (lookback: 3650d, step: 1s) cannot make it evaluate hundreds of millions of points.
    max_lookback_steps: int = Field(default=20_160, ge=1)

    @model_validator(mode="after")
    def _baseline_is_complete(self) -> Policy:
        if self.baseline is BaselinePolicy.PINNED and not self.pinned_version:
            raise ValueError("baseline: pinned needs pinned_version")
        if self.baseline is BaselinePolicy.TIME_SHIFTED and self.lookback < self.baseline_shift + 2 * self.window:
            raise ValueError(
                f"baseline: time-shifted by {_duration_text(self.baseline_shift)} needs a longer lookback "
                f"than {_duration_text(self.lookback)}"
            )
        return self

    @model_validator(mode="after")
    def _lookback_is_bounded(self) -> Policy:
        points = self.lookback / self.step
        if points > self.max_lookback_steps:
            raise ValueError(
                f"lookback ({_duration_text(self.lookback)}) at a step of {_duration_text(self.step)} is {points:,.0f} "
                f"points per series, more than max_lookback_steps ({self.max_lookback_steps:,}): a longer step or "
                "a shorter lookback"
            )
        return self

    @model_validator(mode="after")
    def _step_divides_window(self) -> Policy:
        if self.step.total_seconds() % 1 or self.window < 4 * self.step:
            raise ValueError(
                f"step ({_duration_text(self.step)}) must be whole seconds and at most a quarter of the "
                f"window ({_duration_text(self.window)})"
            )
        return self


def _full_match_pattern(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression {pattern!r}: {exc}") from None
    return pattern


@config_type(frozen=True, kw_only=True, config=STRICT)
class DerivedTemplate:
    """A template that is part of another's answer: the series of `source` whose labels fully match the
    patterns in `where` (as PromQL's =~ does). The errors as the 5xx part of the requests: one response
    then gives both numbers, so the errors cannot go missing while the requests are there, and an absent
    5xx series means there were none."""

    source: str = Field(validation_alias="from")
    where: dict[LabelName, Annotated[str, AfterValidator(_full_match_pattern)]]

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a series of the source's answer is part of this template's."""
        return all(re.fullmatch(pattern, labels.get(label, "")) is not None for label, pattern in self.where.items())


@config_type(frozen=True, kw_only=True, config=STRICT)
class KubernetesSettings:
    """Where a service's versions come from in kube-state-metrics: its Deployment's pods, their
    ReplicaSet, and the image tag of one container (or the ReplicaSet's pod-template-hash). With a version
    label on the metrics too, the label wins and any disagreement is reported on the release."""

    deployment: str = ""  # empty: the service's name
    namespace: str = ""  # empty: any namespace
    container: str = ""  # empty: every container but the mesh sidecars (istio-proxy, linkerd-proxy, ...)
    version_from: Literal["image", "replicaset"] = "image"  # the image tag, or the pod-template-hash
    # "time": the metrics of the Deployment are cut at its deploys (any metrics); "pod": each series takes
    # the version of the pod it was scraped from (its `namespace` and `pod` labels, named by the two
    # fields below): canaries and slow rollouts then work.
    join: Literal["time", "pod"] = "time"
    pod_label: LabelName = "pod"
    namespace_label: LabelName = "namespace"


@config_type(frozen=True, kw_only=True, config=STRICT)
class LogFields:
    """Where each part of a log document lives: Elastic Common Schema names by default."""

    timestamp: str = "@timestamp"
    service: str = "service.name"
    version: str = "service.version"
    level: str = "log.level"
    message: str = "message"
    error_type: str = "error.type"
    error_message: str = "error.message"
    trace_id: str = "trace.id"
    # Statement identity: which logger, function and source line wrote a line (ECS log.*). When present
    # they are part of a signature, so two statements with the same text stay two.
    logger: str = "log.logger"
    origin_function: str = "log.origin.function"
    origin_file: str = "log.origin.file.name"
    origin_line: str = "log.origin.file.line"


# ---- the resolved catalogue --------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelNames:
    """The metric labels that identify a service and its version. An empty `version`: the metrics carry
    no version (an ingress controller, a mesh without pod version labels); versions and deploy times then
    come from elsewhere (Kubernetes, deploy events, recorded deploys) and each window is cut by time."""

    service: str = "service"
    version: str = "version"

    @property
    def by(self) -> tuple[str, ...]:
        """The labels a query groups by: the service's, and the version's when the metrics have one."""
        return (self.service, self.version) if self.version else (self.service,)


@dataclass(frozen=True)
class LogSettings:
    """How to find a service's logs. `index` may contain {service}; `service` is the value of the
    service field when it differs from the service's name."""

    index: str = "logs-*"
    fields: LogFields = LogFields()
    service: str = ""
    sample_size: int = 5000  # error and warn messages pulled per window for template mining
    info_sample_size: int = 2000  # info messages pulled per window, for statements that vanish (0: none)
    # How far back before the baseline window the service's own error and warn lines are sampled: a
    # signature seen there is part of its vocabulary, never NEW (it may be INCREASED). 0: not read.
    history: timedelta = timedelta(hours=24)
    # Whether other services' error and warn lines naming this one in each window are sampled too: the
    # release's blast radius, as its callers see it.
    callers: bool = True


@dataclass(frozen=True, kw_only=True)
class Service:
    """A service as the catalogue resolved it: its preset's templates merged with its own, the units of
    its histograms' bounds, its metrics (muting applied), where its versions and logs come from."""

    name: str
    preset: str = "generic"
    labels: LabelNames = LabelNames()
    selector: tuple[tuple[str, str], ...] = ()  # exact matchers added to every query
    team: str = ""
    metrics: tuple[MetricSpec, ...] = ()
    logs: LogSettings | None = None  # None: this service's logs are not read
    templates: dict[str, str] = field(default_factory=dict)  # every PromQL template its metrics use, by name
    derived: dict[str, DerivedTemplate] = field(default_factory=dict)  # templates that are part of another's answer
    own_templates: frozenset[str] = frozenset()  # the names among them the service defines itself
    bucket_units: dict[str, str] = field(default_factory=dict)  # template -> unit of its `le` bounds, when not seconds
    no_version: str = ""  # a version label value that means "no version" (Istio's "unknown")
    kubernetes: KubernetesSettings | None = None  # versions from kube-state-metrics (with or without a label)
    join: str = ""  # what ${join} renders to: a pod join giving each raw series its pod's version, or nothing


# ---- what the pipeline computes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Deploy:
    service: str
    version: str
    started_at: datetime
    source: DeploySourceKind = DeploySourceKind.DETECTED
    last_seen: datetime | None = None
    commit: str = ""


@dataclass(frozen=True)
class LogLine:
    """One sampled log message (already sanitised and truncated by the collector)."""

    timestamp: float
    level: str  # normalised: error, warn, info, debug
    message: str
    error_type: str = ""
    origin: str = ""  # the statement that wrote it (logger, function, file:line), when the document says
    service: str = ""  # the service that logged it, when the sample reads several (callers)


@dataclass(frozen=True, eq=False)
class LogWindowData:
    """What a log source returns for one version in one window."""

    levels: dict[str, Series]  # normalised level -> lines per step (a step without lines is absent: zero)
    error_types: dict[str, int]  # error.type -> lines
    sample: tuple[LogLine, ...]  # error and warn messages, spread over the window
    sampled_from: int  # error and warn lines in the window: the sample's population
    skipped: int = 0  # sampled documents without a usable message
    truncated: int = 0  # sampled messages cut to the maximum length
    sampled_count: int | None = None  # lines in the sample when the sample is not kept (a stored evaluation)
    info_sample: tuple[LogLine, ...] = ()  # info messages, spread over the window, sampled on their own
    info_sampled_from: int = 0  # info lines in the window: that sample's population

    @property
    def sampled(self) -> int:
        """Lines in the sample."""
        return len(self.sample) if self.sampled_count is None else self.sampled_count

    def total(self, level: str) -> float:
        series = self.levels.get(level)
        return float(series.values.sum()) if series is not None else 0.0


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    step: timedelta

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, kw_only=True)
class Query:
    """A query as it actually ran (or would run): shown with every result in the UI, CLI and reports."""

    template: str  # name of the template, e.g. "errors"
    text: str  # the rendered PromQL (or the Elasticsearch request)
    services: tuple[str, ...] = ()
    labels: LabelNames = LabelNames()
    source: str = ""  # the URL it ran against, or "simulated"
    start: datetime | None = None
    end: datetime | None = None
    step: timedelta | None = None  # None: an instant query (or a search)


@dataclass(frozen=True, eq=False)
class Series:
    """Values of one labelled series at regular steps; `timestamps` are UNIX seconds (float64)."""

    labels: dict[str, str]
    timestamps: np.ndarray
    values: np.ndarray

    def between(self, window: Window) -> Series:
        """The points inside the window (start exclusive, end inclusive: each step covers (t-step, t])."""
        start, end = window.start.timestamp(), window.end.timestamp()
        keep = (self.timestamps > start) & (self.timestamps <= end)
        return Series(self.labels, self.timestamps[keep], self.values[keep])


class DeferredSeries(Series):
    """A Series computed on its first read. A latency quantile at every step of both windows is most of a
    quantile verdict's cost, and only a chart or a stored record reads it: a fleet's overview never does.
    Pickled or copied, it is the plain Series it computes."""

    _compute: Callable[[], Series] | None
    _computed: Series | None
    _lock: threading.Lock

    def __init__(self, compute: Callable[[], Series]) -> None:  # no super().__init__: the fields are properties
        object.__setattr__(self, "_compute", compute)
        object.__setattr__(self, "_computed", None)
        object.__setattr__(self, "_lock", threading.Lock())

    def _series(self) -> Series:
        with self._lock:
            if self._computed is None:
                assert self._compute is not None  # dropped only once computed
                object.__setattr__(self, "_computed", self._compute())
                object.__setattr__(self, "_compute", None)  # what it read (a bucket matrix) can go
            assert self._computed is not None
            return self._computed

    @property
    def labels(self) -> dict[str, str]:
        return self._series().labels

    @property
    def timestamps(self) -> np.ndarray:
        return self._series().timestamps

    @property
    def values(self) -> np.ndarray:
        return self._series().values

    def __reduce__(self) -> tuple[type[Series], tuple[dict[str, str], np.ndarray, np.ndarray]]:
        series = self._series()
        return Series, (series.labels, series.timestamps, series.values)

    def __repr__(self) -> str:
        return repr(self._series())


