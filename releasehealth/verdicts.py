"""What judging works on and produces: the judge's inputs (MetricInput, LogSamples), each metric's verdict,
the release's score and recommendation, the log evidence, the whole Evaluation; and the views of a service
(Timeline) and of a source (SourceHealth). Frozen dataclasses."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from releasehealth.format import plural
from releasehealth.model import (
    Action,
    BaselinePolicy,
    Classification,
    Deploy,
    LogLine,
    LogWindowData,
    MetricSpec,
    Query,
    Series,
    SignatureStatus,
    Tolerance,
    Window,
)


@dataclass(frozen=True)
class SideTotals:
    """What the signature rates of one window are computed against."""

    sampled: int  # lines in the sample
    population: int  # error and warn lines in the window
    exposure: float  # requests (or log lines) in the window
    per: str = "requests"
    info_sampled: int = 0  # info lines in their own sample
    info_population: int = 0  # info lines in the window

    @property
    def scale(self) -> float:
        """Lines in the window per error or warn line in the sample."""
        return self.population / self.sampled if self.sampled else 1.0

    def scale_for(self, level: str) -> float:
        """Lines in the window per sampled line of `level`: info lines are sampled apart."""
        if level == "info":
            return self.info_population / self.info_sampled if self.info_sampled else 1.0
        return self.scale


@dataclass(frozen=True, kw_only=True)
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
    replaced_by: str = ""  # a statement that stopped: the new one of its logger and level that took its place
    in_history: bool = False  # the service logged it before the baseline window: its vocabulary, never NEW
    origin: str = ""  # the statement that logs it (logger#function (file:line)), when the documents say
    caller: str = ""  # another service's line naming this one (its blast radius): the service that logged it


@dataclass(frozen=True)
class Summary:
    """One window's value of a metric, with what it was computed from."""

    value: float | None
    count: float  # requests behind the value
    detail: str = ""
    invalid: int = 0  # steps left out: NaN, negative, a counter reset's artefact, outside the valid range


@dataclass(frozen=True, eq=False)
class Distribution:
    """Requests per histogram bucket (not cumulative) over each window; `bounds` are the buckets' upper
    bounds, ascending, the last +Inf."""

    bounds: np.ndarray
    baseline: np.ndarray
    candidate: np.ndarray


@dataclass(frozen=True, kw_only=True)
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
    signatures: tuple[LogSignature, ...] = ()  # log_signatures: every signature, compared at this verdict's alpha


@dataclass(frozen=True, eq=False, kw_only=True)
class LogSamples:
    """What the log-signature comparison needs: both windows' sampled messages, what their rates are per,
    and the signatures marked not a risk (in the config and in the history store)."""

    baseline: tuple[LogLine, ...]  # error and warn lines, then info lines (sampled apart: SideTotals)
    candidate: tuple[LogLine, ...]
    totals: tuple[SideTotals, SideTotals]
    not_a_risk: frozenset[str] = frozenset()
    protected: frozenset[str] = frozenset()  # words never masked in a template: the catalogue's service names
    history: tuple[LogLine, ...] = ()  # the service's own error and warn lines before the baseline window
    # Other services' error and warn lines that name this service (its callers), per window, and what
    # their rates are per (the same exposure as the service's own; population: lines of the `match`).
    callee: str = ""  # the name they are searched for
    callers: tuple[tuple[LogLine, ...], tuple[LogLine, ...]] = ((), ())
    caller_totals: tuple[SideTotals, SideTotals] | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class MetricInput:
    """What scoring needs for one metric: per role ("numerator", "buckets"...) the series inside each
    window, already cut to it; or the error that stopped the fetch."""

    spec: MetricSpec
    baseline: dict[str, list[Series]] = field(default_factory=dict)
    candidate: dict[str, list[Series]] = field(default_factory=dict)
    queries: tuple[Query, ...] = ()
    error: str = ""
    samples: LogSamples | None = None  # for LOG_SIGNATURES metrics: the messages to mine and compare
    absent: str = ""  # why the metric has no data at all ("no data for preset istio: expected metric ...")
    expected_steps: int = 0  # the steps each window spans: coverage is counted in steps with valid data


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


@dataclass(frozen=True, eq=False)
class LogEvidence:
    """The log side of an evaluation: both windows' data, the signature diff, the queries, or the error."""

    baseline: LogWindowData | None
    candidate: LogWindowData | None
    signatures: tuple[LogSignature, ...] = ()
    rate_basis: str = "requests"  # what signature rates are per: "requests" or "log lines"
    queries: tuple[Query, ...] = ()
    error: str = ""

    @property
    def blast_radius(self) -> str:
        """What the callers' lines naming the service say, in one sentence ("" when none was read)."""
        return blast_radius(self.signatures)


def blast_radius(signatures: Sequence[LogSignature]) -> str:
    """The callers' side in one sentence, e.g. "Blast radius: 42 lines of 2 callers (cart-service, gateway) name this service in the candidate
    window, 1 in the baseline window; 1 signature NEW, 1 INCREASED." or "" without callers' lines."""
    called = [s for s in signatures if s.caller]
    if not called:
        return ""
    callers = sorted({s.caller for s in called if s.candidate_count})
    candidate, baseline = sum(s.candidate_count for s in called), sum(s.baseline_count for s in called)
    rising = Counter(s.status.value for s in called if s.status.value in ("NEW", "INCREASED"))
    change = "; " + ", ".join(f"{plural(n, 'signature')} {status}" for status, n in sorted(rising.items())) if rising else "; no rise"
    who = f" of {plural(len(callers), 'caller')} ({', '.join(callers)})" if callers else ""
    return (
        f"Blast radius: {candidate:.0f} error and warn lines{who} name this service in the candidate window, "
        f"{baseline:.0f} in the baseline window{change}."
    )


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """Everything behind one release's recommendation: inputs, windows, verdicts, queries."""

    service: str
    candidate: Deploy | None  # None when no version of the service was seen at all
    baseline: Deploy | None
    policy: BaselinePolicy
    recommendation: Recommendation
    evaluated_at: datetime
    candidate_window: Window | None = None
    baseline_window: Window | None = None
    score: ReleaseScore | None = None
    queries: tuple[Query, ...] = ()
    logs: LogEvidence | None = None
    notes: tuple[str, ...] = ()  # what degraded without failing the evaluation (e.g. deploy events unreadable)
    baseline_description: str = ""  # how the baseline was chosen: "the previous release: 1.2.0", "pinned 1.1.0"...


@dataclass(frozen=True, eq=False, kw_only=True)
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


@dataclass(frozen=True)
class SourceHealth:
    """Whether a source answered a trivial query, how fast, and its last error."""

    name: str
    url: str
    ok: bool
    latency_seconds: float | None
    error: str = ""
    checked_at: datetime | None = None
