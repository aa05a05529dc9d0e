"""Fetching what the windows of many releases need, in as few queries as the sources allow.

Metrics: each template once per group of services (releasehealth.queries.promql.QueryGroup), over the
span covering all their windows, then cut per release and window. Logs: both windows of every release,
one multi-search per group of services sharing log settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import NamedTuple

from releasehealth.collectors.base import LogSource, MetricSource
from releasehealth.errors import PartialResponse, SourceError, TemplateError
from releasehealth.model import (
    Deploy,
    LogSettings,
    LogWindowData,
    Query,
    Series,
    Service,
    Window,
)
from releasehealth.queries.elasticsearch import WindowKey, callers_index, index_for
from releasehealth.queries.promql import QueryGroup
from releasehealth.windows import WindowPlan

# Windows closer than this share one range query; farther (a time-shifted baseline a day or a week back)
# they get one each, rather than one query reading the days between.
SPAN_GAP = timedelta(hours=6)
# A span's services are read in two queries when that reads at least this share fewer points (split_span).
SPLIT_SAVING = 0.2
FETCH_THREADS = 2  # queries in flight at once: a machine of two cores, Prometheus and us on it


class Target(NamedTuple):
    """A release to judge: the service (as its metrics turned out), its candidate deploy, its windows."""

    service: Service
    candidate: Deploy | None
    plan: WindowPlan


class FetchKey(NamedTuple):
    """What one fetch is shared by: services of one query group whose template of this name is the same
    PromQL read in the same unit (a service's own template of a preset's name is fetched apart)."""

    group: QueryGroup
    template: str
    text: str
    bucket_unit: str

    @classmethod
    def of(cls, service: Service, template: str, source: str) -> FetchKey:
        """The fetch of a service's template; a derived template is read from its source's answer."""
        name = service.derived[template].source if template in service.derived else template
        return cls(QueryGroup.of(service, source), name, service.templates[name], service.bucket_units.get(name, "seconds"))


class Fetched(NamedTuple):
    query: Query
    series: list[Series]
    error: str
    more: tuple[Query, ...] = ()  # further spans of the same template (a far time-shifted baseline)
    partial: str = ""  # the source answered with part of the data: what it says (its metrics are no data)
    # The series by (service label, version label) names, then by their values: built on first use, so
    # picking one release's series is a lookup, not a scan of the fleet's answer (None: not kept).
    by_labels: dict[tuple[str, str], dict[tuple[str, str], list[Series]]] | None = None

    @property
    def queries(self) -> tuple[Query, ...]:
        return (self.query, *self.more)


def fetch_metrics(source: MetricSource, targets: Sequence[Target], step: timedelta) -> dict[FetchKey, Fetched]:
    """Run each template the targets need once per group, over the span covering all their windows, on
    FETCH_THREADS connections: while one answer is decoded here Prometheus evaluates the next (200 services:
    the metric queries' raw time 1.2 s one after the other, 0.7 s two at a time)."""
    members: dict[FetchKey, list[Target]] = {}
    for target in targets:
        for template in {name for spec in target.service.metrics for name in spec.queries.values()}:
            members.setdefault(FetchKey.of(target.service, template, source.name), []).append(target)
    planned = {}
    for key, group in members.items():
        windows = [w for t in group for w in (t.plan.baseline_window, t.plan.candidate_window) if w is not None]
        planned[key] = [
            key.group.range(key.template, key.text, names, start=start, end=end, step=step)
            for cluster_start, cluster_end in spans(windows)
            for names, start, end in split_span(_service_spans(group, cluster_start, cluster_end))
        ]
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        done = pool.map(lambda key: run(source, key.template, planned[key], key.bucket_unit), planned)
        return dict(zip(planned, done, strict=True))


def _service_spans(group: Sequence[Target], start: datetime, end: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Per service, the time its windows inside (start, end) cover (from its first window's start to its
    last one's end)."""
    covered: dict[str, tuple[datetime, datetime]] = {}
    for target in group:
        for window in (target.plan.baseline_window, target.plan.candidate_window):
            if window is None or window.end < start or window.start > end:
                continue
            name = target.service.name
            first, last = covered.get(name, (window.start, window.end))
            covered[name] = (min(first, window.start), max(last, window.end))
    return covered


def split_span(covered: dict[str, tuple[datetime, datetime]]) -> list[tuple[list[str], datetime, datetime]]:
    """The services of one span, in one query or, when that reads far fewer points, in two: each of the
    earlier and the later services over its own span. A fleet's latest releases spread over hours while
    each needs its two windows: one span reading every service over all of them decodes up to twice the
    points the windows hold. The split is the one of least services x span (the points read) among the
    services ordered by their start; kept only when it saves SPLIT_SAVING of the single span's points."""
    if not covered:
        return []
    ordered = sorted(covered.items(), key=lambda item: (item[1][0], item[1][1], item[0]))
    starts = [span[0] for _, span in ordered]
    ends = [span[1] for _, span in ordered]
    whole = (len(ordered) * (max(ends) - starts[0]).total_seconds(), 0)
    # The latest end among the first k services and among the last n - k, for every k at once.
    head_end, tail_end = list(ends), list(ends)
    for k in range(1, len(ends)):
        head_end[k] = max(head_end[k - 1], ends[k])
    for k in range(len(ends) - 2, -1, -1):
        tail_end[k] = max(tail_end[k + 1], ends[k])
    best = whole
    for k in range(1, len(ordered)):  # the first k services in one query, the others in another
        cost = k * (head_end[k - 1] - starts[0]).total_seconds() + (len(ordered) - k) * (tail_end[k] - starts[k]).total_seconds()
        if cost < best[0]:
            best = (cost, k)
    names = [name for name, _ in ordered]
    if not best[1] or best[0] > (1 - SPLIT_SAVING) * whole[0]:
        return [(sorted(names), starts[0], max(ends))]
    k = best[1]
    return [(sorted(names[:k]), starts[0], head_end[k - 1]), (sorted(names[k:]), starts[k], tail_end[k])]


def spans(windows: Sequence[Window]) -> list[tuple[datetime, datetime]]:
    """The time ranges to query for `windows`: one covering them all unless they lie apart (a
    time-shifted baseline a day or a week back), then one per cluster, split where no window falls
    within SPAN_GAP."""
    ordered = sorted((w.start, w.end) for w in windows)
    merged: list[list[datetime]] = []
    for start, end in ordered:
        if merged and start - merged[-1][1] <= SPAN_GAP:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def run(source: MetricSource, template: str, queries: Sequence[Query], bucket_unit: str = "seconds") -> Fetched:
    """Run the queries of one template (one per span) as one result; an error fails the template.
    Histogram bounds in milliseconds (Istio, Linkerd) are turned into seconds here, once for every use."""
    series: list[Series] = []
    try:
        for query in queries:
            series += source.fetch(query)
    except PartialResponse as exc:
        return Fetched(queries[0], [], "", tuple(queries[1:]), partial=f"query {template!r}: {exc}")
    except SourceError as exc:
        return Fetched(queries[0], [], f"query {template!r} failed: {exc}", tuple(queries[1:]))
    if bucket_unit == "milliseconds":
        series = [_in_seconds(s) for s in series]
    return Fetched(queries[0], series, "", tuple(queries[1:]), by_labels={})


def _in_seconds(series: Series) -> Series:
    """A bucket series with its `le` bound from milliseconds to seconds (divided, so 5 ms is exactly the
    float 0.005, as a bound written in seconds would be)."""
    le = series.labels.get("le")
    if le is None or le in ("+Inf", "Inf", "inf"):
        return series
    try:
        bound = float(le) / 1000
    except ValueError:
        return series  # garbage stays garbage: scoring.latency leaves such a bound out and says so
    return Series({**series.labels, "le": repr(bound)}, series.timestamps, series.values)


def cut(service: Service, template: str, result: Fetched, version: str, window: Window) -> list[Series]:
    """The series of `template` of one version of one service, inside one window (a derived template's:
    those of its source's answer that it selects); without a version label on the metrics, the service's
    series inside the window (the window is when that version served)."""
    return [s.between(window) for s in of_version(service, template, result, version)]


def of_version(service: Service, template: str, result: Fetched, version: str) -> list[Series]:
    """The series of `template` of one version of one service in the whole answer (any time)."""
    labels, derived = service.labels, service.derived.get(template)
    mine = _by_labels(result, labels.service, labels.version).get((service.name, version if labels.version else ""), [])
    return [s for s in mine if derived is None or derived.selects(s.labels)]


def has_service(service: Service, result: Fetched) -> bool:
    """Whether the answer holds any series of the service (any version, any time): a lookup."""
    return (service.name, "") in _by_labels(result, service.labels.service, "")


def _by_labels(result: Fetched, service_label: str, version_label: str) -> dict[tuple[str, str], list[Series]]:
    """The answer's series by their (service, version) values (version "" when `version_label` is ""),
    indexed on first use and kept with the answer."""
    names = (service_label, version_label)
    by_value = result.by_labels.get(names) if result.by_labels is not None else None
    if by_value is None:
        by_value = {}
        for s in result.series:
            by_value.setdefault((s.labels.get(service_label, ""), s.labels.get(version_label, "") if version_label else ""), []).append(s)
        if result.by_labels is not None:
            result.by_labels[names] = by_value
    return by_value


class LogData(NamedTuple):
    """Both windows' log data of one release, the queries that read them, or why they could not be read."""

    baseline: LogWindowData | None
    candidate: LogWindowData | None
    queries: tuple[Query, ...]
    error: str
    history: LogWindowData | None = None  # the service's own lines before the baseline: its vocabulary
    # Other services' error and warn lines naming this one, in the baseline and the candidate window.
    callers: tuple[LogWindowData | None, LogWindowData | None] = (None, None)


def fetch_logs(source: LogSource | None, targets: Sequence[Target], step: timedelta) -> dict[int, LogData]:
    """Both windows of every target whose service reads logs, and the span of its history before the
    baseline (settings.history), by the target's position in `targets`: one multi-search per group of
    services sharing log settings."""
    out: dict[int, LogData] = {}
    groups: dict[LogSettings, list[tuple[int, list[WindowKey | None]]]] = {}
    reading = [(position, t) for position, t in enumerate(targets) if t.service.logs is not None]
    for n, (position, target) in enumerate(reading):
        settings, plan, candidate = target.service.logs, target.plan, target.candidate
        if settings is None or candidate is None or plan.baseline is None:
            continue
        if source is None:
            out[position] = LogData(None, None, (), "no log source is configured")
            continue
        value = settings.service or target.service.name
        try:
            index = index_for(settings.index, value)
        except TemplateError as exc:
            out[position] = LogData(None, None, (), str(exc))
            continue
        assert plan.baseline_window is not None and plan.candidate_window is not None
        # Metrics without a version are cut by time: so are the logs (their version, if any, is not asked).
        versions = (plan.baseline.version, candidate.version) if target.service.labels.version else ("", "")
        baseline = WindowKey(f"t{n}b", value, versions[0], plan.baseline_window, index)
        candidate_key = WindowKey(f"t{n}c", value, versions[1], plan.candidate_window, index)
        start = plan.baseline_window.start
        # Any version: the vocabulary is what the service logged, whichever release logged it.
        span = Window(start - settings.history, start, plan.baseline_window.step)
        history = WindowKey(f"t{n}h", value, "", span, index, sample_only=True) if settings.history else None
        # Callers name a service, not a version: only windows apart in time tell the releases apart.
        apart = plan.baseline_window.end <= plan.candidate_window.start
        callers = [
            WindowKey(f"t{n}{side}", value, "", window, callers_index(settings.index), sample_only=True, callers=True)
            if settings.callers and apart else None
            for side, window in (("xb", plan.baseline_window), ("xc", plan.candidate_window))
        ]
        groups.setdefault(settings, []).append((position, [baseline, candidate_key, history, *callers]))
    for settings, members in groups.items():
        assert source is not None
        keys = [key for _, planned in members for key in planned if key is not None]
        try:
            data, queries = source.fetch(keys, settings, step)
        except SourceError as exc:
            indexes = ", ".join(sorted({key.index for key in keys}))
            error = f"logs could not be read: query 'logs' (a multi-search of {indexes}) failed: {exc}"
            out.update({n: LogData(None, None, (), error) for n, _ in members})
            continue
        for n, planned in members:
            b, c, h, xb, xc = (data.get(key.name) if key is not None else None for key in planned)
            out[n] = LogData(b, c, queries, "", h, (xb, xc))
    return out
