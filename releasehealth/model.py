"""Core types shared by every layer: frozen dataclasses and closed outcome sets (StrEnums)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np


class MetricKind(StrEnum):
    """How a metric is measured, which decides the test used on it."""

    RATIO = "ratio"  # a counter divided by a counter: errors / requests
    HISTOGRAM_QUANTILE = "histogram_quantile"  # a quantile of a Prometheus histogram
    LOG_RATE = "log_rate"  # error-level log lines per request (or per log line)
    LOG_SIGNATURES = "log_signatures"  # new or increased error signatures mined from log messages
    GAUGE = "gauge"  # a level sampled per step (memory, CPU): rank test and trend test


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
    INCREASED = "INCREASED"  # present in both, credibly more frequent beyond tolerance
    KNOWN = "KNOWN"  # present in both, no credible rise
    GONE = "GONE"  # present in the baseline only


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
class Tolerance:
    """A change must exceed both to fail: relative (0.2 = +20%) and absolute (in the metric's unit)."""

    relative: float
    absolute: float


@dataclass(frozen=True)
class MetricSpec:
    """One metric judged for every release of a service.

    `queries` maps the role of each input ("numerator", "denominator", "buckets") to the name of a
    query template of the service's preset.
    """

    name: str
    kind: MetricKind
    queries: dict[str, str]
    unit: str
    direction: Direction = Direction.INCREASE
    tolerance: Tolerance = Tolerance(relative=0.2, absolute=0.0)
    critical: bool = False
    group: str = "default"
    weight: float = 1.0
    quantile: float | None = None
    min_count: int = 100
    muted: bool = False  # judged and shown, but never counted in the score or the recommendation
    optional: bool = False  # a service that exposes none of it (no resilience4j) leaves it out, unjudged


@dataclass(frozen=True)
class KubernetesSettings:
    """Where a service's versions come from in kube-state-metrics: its Deployment's pods, their
    ReplicaSet, and the image tag of one container (or the ReplicaSet's pod-template-hash)."""

    deployment: str
    namespace: str = ""  # empty: any namespace
    container: str = ""  # empty: every container but the mesh sidecars (istio-proxy, linkerd-proxy, ...)
    version_from: str = "image"  # "image": the container's image tag; "replicaset": the pod-template-hash
    # "time": the metrics of the Deployment are cut at its deploys; "pod": each series takes the version of
    # the pod it was scraped from (its `namespace` and `pod` labels, named by the two fields below).
    join: str = "time"
    pod_label: str = "pod"
    namespace_label: str = "namespace"


@dataclass(frozen=True)
class Service:
    name: str
    preset: str
    labels: LabelNames
    selector: tuple[tuple[str, str], ...] = ()
    team: str = ""
    metrics: tuple[MetricSpec, ...] = ()
    logs: LogSettings | None = None  # None: this service's logs are not read
    # The service's own PromQL templates (custom metrics, or a preset template redefined), by name;
    # they win over the preset's of the same name.
    templates: tuple[tuple[str, str], ...] = ()
    bucket_units: tuple[tuple[str, str], ...] = ()  # template -> unit of its `le` bounds, when not seconds
    kubernetes: KubernetesSettings | None = None  # versions from kube-state-metrics (with or without a label)


@dataclass(frozen=True)
class Deploy:
    service: str
    version: str
    started_at: datetime
    source: DeploySourceKind = DeploySourceKind.DETECTED
    last_seen: datetime | None = None
    commit: str = ""


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class LogSettings:
    """How to find a service's logs. `index` may contain {service}; `service` is the value of the
    service field when it differs from the service's name."""

    index: str = "logs-*"
    fields: LogFields = LogFields()
    service: str = ""
    sample_size: int = 5000  # error and warn messages pulled per window for template mining


@dataclass(frozen=True)
class LogLine:
    """One sampled log message (already sanitised and truncated by the collector)."""

    timestamp: float
    level: str  # normalised: error, warn, info, debug
    message: str
    error_type: str = ""


@dataclass(frozen=True, eq=False)
class LogWindowData:
    """What a log source returns for one version in one window."""

    levels: dict[str, Series]  # normalised level -> lines per step (a step without lines is absent: zero)
    error_types: dict[str, int]  # error.type -> lines
    sample: tuple[LogLine, ...]  # error and warn messages, spread over the window
    sampled_from: int  # error and warn lines in the window: the sample's population
    skipped: int = 0  # sampled documents without a usable message
    truncated: int = 0  # sampled messages cut to the maximum length

    def total(self, level: str) -> float:
        series = self.levels.get(level)
        return float(series.values.sum()) if series is not None else 0.0


@dataclass(frozen=True)
class LogSignature:
    """A message template mined from the samples, compared between the windows."""

    template: str
    level: str
    error_type: str
    status: SignatureStatus
    baseline_count: float  # estimated lines in the window (scaled up from the sample when sampled)
    candidate_count: float
    baseline_rate: float | None  # per 1,000 requests (or per 1,000 log lines when requests are unknown)
    candidate_rate: float | None
    examples: tuple[str, ...] = ()
    ignored: bool = False  # on the "not a risk" list
    p_value: float | None = None  # of the rise (NEW: that the baseline's absence is chance)
    credible: bool = False  # p_value below the corrected alpha
    failing: bool = False  # fails the release (the judge's rule: error level, credible, enough lines, not ignored)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    step: timedelta

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class Query:
    """A query as it actually ran (or would run): shown with every result in the UI, CLI and reports."""

    template: str  # name of the template in the preset, e.g. "errors"
    text: str  # the rendered PromQL
    services: tuple[str, ...]
    labels: LabelNames
    source: str  # the URL it ran against, or "simulated"
    start: datetime | None = None
    end: datetime | None = None
    step: timedelta | None = None


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


@dataclass(frozen=True)
class Summary:
    """One window's value of a metric, with what it was computed from."""

    value: float | None
    count: float  # requests behind the value
    detail: str = ""


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    classification: Classification
    reason: str
    baseline: Summary
    candidate: Summary
    unit: str = ""  # of the summaries' values: "ratio", "seconds"...
    change: float | None = None  # relative change, candidate vs baseline
    p_value: float | None = None
    test: str = ""
    tolerance: Tolerance | None = None
    critical: bool = False
    group: str = "default"
    muted: bool = False
    alpha: float | None = None  # the level the p-value was held to (after the corrections of scoring.multiple)
    queries: tuple[Query, ...] = ()
    # The per-step evidence behind the summaries (e.g. error ratio per step), for charts.
    baseline_series: Series | None = None
    candidate_series: Series | None = None
    distribution: Distribution | None = None  # a latency histogram's requests per bucket in each window


@dataclass(frozen=True, eq=False)
class Distribution:
    """Requests per histogram bucket (not cumulative) over each window; `bounds` are the buckets' upper
    bounds, ascending, the last +Inf."""

    bounds: np.ndarray
    baseline: np.ndarray
    candidate: np.ndarray


@dataclass(frozen=True, eq=False)
class MetricInput:
    """What scoring needs for one metric: per role ("numerator", "buckets"...) the series inside each
    window, already cut to it; or the error that stopped the fetch."""

    spec: MetricSpec
    baseline: dict[str, list[Series]]
    candidate: dict[str, list[Series]]
    queries: tuple[Query, ...] = ()
    error: str = ""
    signatures: tuple[LogSignature, ...] = ()  # for LOG_SIGNATURES metrics: the diff to judge
    absent: str = ""  # why the metric has no data at all ("no data for preset istio: expected metric ...")


@dataclass(frozen=True)
class GroupScore:
    group: str
    score: float | None
    weight: float


@dataclass(frozen=True)
class ReleaseScore:
    score: float | None  # None when no metric could be judged
    groups: tuple[GroupScore, ...]
    verdicts: tuple[MetricVerdict, ...]


@dataclass(frozen=True)
class Recommendation:
    action: Action
    reason: str
    baseline: str
    candidate: str


@dataclass(frozen=True)
class Evaluation:
    """Everything behind one release's recommendation: inputs, windows, verdicts, queries."""

    service: str
    candidate: Deploy | None  # None when no version of the service was seen at all
    baseline: Deploy | None
    policy: BaselinePolicy
    candidate_window: Window | None
    baseline_window: Window | None
    score: ReleaseScore | None
    recommendation: Recommendation
    evaluated_at: datetime
    queries: tuple[Query, ...] = ()
    logs: LogEvidence | None = None
    notes: tuple[str, ...] = ()
    baseline_description: str = ""  # how the baseline was chosen: "the previous release: 1.2.0", "pinned 1.1.0"...  # what degraded without failing the evaluation (e.g. deploy events unreadable)


@dataclass(frozen=True, eq=False)
class Timeline:
    """A service's recent history for its page: per version, requests per second, error ratio and a
    latency quantile at a coarse step, with the deploys that changed versions. A quantity whose query
    failed is absent, its error in `errors`."""

    service: str
    start: datetime
    end: datetime
    step: timedelta
    request_rate: dict[str, Series]  # version -> requests per second
    error_ratio: dict[str, Series]  # version -> errors / requests per step
    latency: dict[str, Series]  # version -> the latency quantile per step, in seconds
    latency_name: str  # which quantile metric `latency` shows, e.g. "p95_latency"
    deploys: tuple[Deploy, ...]
    queries: tuple[Query, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class LogEvidence:
    """The log side of an evaluation: both windows' data, the signature diff, the queries, or the error."""

    baseline: LogWindowData | None
    candidate: LogWindowData | None
    signatures: tuple[LogSignature, ...] = ()
    rate_basis: str = "requests"  # what signature rates are per: "requests" or "log lines"
    queries: tuple[Query, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds: >= pass promotes, >= marginal holds, below rolls back."""

    pass_score: float = 95.0
    marginal_score: float = 75.0


# Saturation gauges (memory, CPU) weigh half a group: one failing alone scores 86 and holds a release,
# while a failing latency group with them passing scores 71 and rolls it back.
DEFAULT_GROUP_WEIGHTS = {"saturation": 0.5}


@dataclass(frozen=True)
class Policy:
    window: timedelta = timedelta(minutes=30)
    warmup: timedelta = timedelta(minutes=5)
    step: timedelta = timedelta(minutes=1)
    lookback: timedelta = timedelta(days=7)
    # A candidate window shorter than this share of `window` is too early to judge.
    min_window_share: float = 0.5
    baseline: BaselinePolicy = BaselinePolicy.PREVIOUS
    thresholds: Thresholds = Thresholds()
    alpha: float = 0.01  # false-alarm budget of one release, shared among its metrics
    # group -> weight in the score (1 for a group not named)
    group_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GROUP_WEIGHTS))
    # How often a pipeline re-checks a rollout (None: each release is judged once); see scoring.multiple.
    check_interval: timedelta | None = None
    judge: str = "release-health"  # or "kayenta": Kayenta's classifier and scorer, for comparison and migration
    baseline_shift: timedelta = timedelta(days=1)  # for time-shifted baselines
    pinned_version: str | None = None  # for pinned baselines


@dataclass(frozen=True)
class SourceHealth:
    """Whether a source answered a trivial query, how fast, and its last error."""

    name: str
    url: str
    ok: bool
    latency_seconds: float | None
    error: str = ""
    checked_at: datetime | None = None
