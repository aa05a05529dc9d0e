"""Orchestration: render -> fetch -> judge -> recommend. The one module that uses collectors and scoring.

Queries are batched: services that share a preset, labels and extra matchers are fetched together, one
query per template for the whole group (deploy detection included), never one per service.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from collectors.base import LogSource, MetricSource
from collectors.deploys import MetricDeploySource
from collectors.elasticsearch import ElasticsearchLogSource
from collectors.prometheus import PrometheusMetricSource
from collectors.simulated import SimulatedLogSource, SimulatedMetricSource
from queries.elasticsearch import WindowKey, index_for
from queries.promql import build_query
from releasehealth import config
from releasehealth.config import Catalogue
from releasehealth.errors import NotFoundError, SourceError, TemplateError
from releasehealth.model import (
    Action,
    Deploy,
    Evaluation,
    LabelNames,
    LogEvidence,
    LogSettings,
    LogWindowData,
    MetricInput,
    MetricKind,
    MetricSpec,
    Query,
    Recommendation,
    Series,
    Service,
    SourceHealth,
    Timeline,
    Window,
)
from releasehealth.simulator import Fleet, simulate
from releasehealth.simulator.logs import simulate_logs
from releasehealth.store import Store
from releasehealth.windows import WindowPlan, floor_to, plan
from scoring.judge import judge, metric_alpha, release_alpha
from scoring.latency import quantile_per_step
from scoring.ratio import ratio_per_step
from scoring.series import sum_series
from scoring.logs import fails
from scoring.signatures import SideTotals, compare

LOG_KINDS = (MetricKind.LOG_RATE, MetricKind.LOG_SIGNATURES)
# Told each step of a long evaluation as it starts ("querying the metrics of 8 release(s)"), for a progress display.
Progress = Callable[[str], None] | None
DEMO_LOG_INDEX = "logs-{service}"
# The demo fleet's owners, as in the shipped release-health.yaml, so the dashboard's team filter has teams.
DEMO_TEAMS = {
    "user-service": "identity", "order-service": "checkout", "payment-service": "checkout", "inventory-service": "supply",
    "cart-service": "checkout", "search-service": "discovery", "shipping-service": "supply",
    "notification-service": "messaging", "catalog-service": "discovery", "review-service": "discovery",
}


@dataclass(frozen=True)
class Sources:
    metrics: MetricSource
    deploys: MetricDeploySource
    logs: LogSource | None = None
    store: Store | None = None  # the history store: recorded deploys and verdicts (last-good baselines)


def connect(catalogue: Catalogue) -> Sources:
    """Return the real sources the catalogue names; raise ConfigError if a credential is missing,
    NotFoundError if no Prometheus is configured."""
    if catalogue.prometheus is None:
        raise NotFoundError(f"{catalogue.path}: no Prometheus source is configured")
    settings = catalogue.prometheus
    headers, auth = config.prometheus_credentials(settings)
    metrics = PrometheusMetricSource(
        settings.url,
        timeout=settings.timeout,
        retries=settings.retries,
        headers=headers,
        auth=auth,
        verify_tls=settings.verify_tls,
        ca_file=settings.ca_file,
    )
    return Sources(metrics, MetricDeploySource(metrics), _connect_logs(catalogue.elasticsearch))


def _connect_logs(settings: config.ElasticsearchSettings | None) -> LogSource | None:
    if settings is None:
        return None
    api_key, auth = config.elasticsearch_credentials(settings)
    return ElasticsearchLogSource(
        settings.url,
        timeout=settings.timeout,
        retries=settings.retries,
        api_key=api_key,
        basic_auth=auth,
        verify_tls=settings.verify_tls,
        ca_file=settings.ca_file,
        deploy_index=settings.deploy_index,
        deploy_fields=settings.fields,
    )


def demo(seed: int = 7, end: datetime | None = None) -> tuple[Catalogue, Sources, Fleet]:
    """Return the embedded demo: a simulated fleet with its logs, its catalogue and in-memory sources."""
    fleet = simulate(seed=seed, end=end)
    catalogue = config.catalogue_for(
        [s.name for s in fleet.services], logs=LogSettings(index=DEMO_LOG_INDEX), teams=DEMO_TEAMS
    )
    metrics = SimulatedMetricSource(fleet)
    return catalogue, Sources(metrics, MetricDeploySource(metrics), SimulatedLogSource(simulate_logs(fleet))), fleet


def check_sources(sources: Sources) -> list[SourceHealth]:
    return [sources.metrics.check()] + ([sources.logs.check()] if sources.logs else [])


class _GroupKey(NamedTuple):
    preset: str
    labels: LabelNames
    selector: tuple


def _group_key(service: Service) -> _GroupKey:
    return _GroupKey(service.preset, service.labels, service.selector)


def _groups(services: Sequence[Service]) -> dict[_GroupKey, list[Service]]:
    groups: dict[_GroupKey, list[Service]] = {}
    for service in services:
        groups.setdefault(_group_key(service), []).append(service)
    return groups


@dataclass
class _DeployScan:
    by_service: dict[str, list[Deploy]] = field(default_factory=dict)
    queries: dict[str, tuple[Query, ...]] = field(default_factory=dict)  # per service: the queries that found them
    notes: list[str] = field(default_factory=list)  # what degraded without failing the evaluation


def scan_deploys(catalogue: Catalogue, sources: Sources, services: Sequence[Service], now: datetime) -> _DeployScan:
    """Detect the deploys of `services`, two queries per group; raise SourceError if the source fails."""
    scan = _DeployScan()
    policy = catalogue.policy
    for key, members in _groups(services).items():
        templates = catalogue.presets[key.preset].templates
        names = [s.name for s in members]
        first, last = (
            build_query(
                name, templates[name], names, key.labels, extra=key.selector, step=policy.step, start=now - policy.lookback,
                end=now, lookback=policy.lookback, instant=True, source=sources.metrics.name,
            )
            for name in ("first_seen", "last_seen")
        )
        found = sources.deploys.detect(first, last)
        for service in members:
            scan.by_service[service.name] = [d for d in found if d.service == service.name]
            scan.queries[service.name] = (first, last)
    _merge_events(sources, services, now - policy.lookback, now, scan)
    _merge_recorded(sources, services, now - policy.lookback, now, scan)
    return scan


def _merge_recorded(sources: Sources, services: Sequence[Service], start: datetime, end: datetime, scan: _DeployScan) -> None:
    """Deploys a pipeline recorded in the history store win over detected ones, as events do."""
    if sources.store is None:
        return
    for service in services:
        recorded = {d.version: d for d in sources.store.deploys(service.name) if start <= d.started_at <= end}
        merged = [_with_event(d, recorded.pop(d.version, None)) for d in scan.by_service.get(service.name, [])]
        scan.by_service[service.name] = sorted(merged + list(recorded.values()), key=lambda d: (d.started_at, d.version))


def _merge_events(sources: Sources, services: Sequence[Service], start: datetime, end: datetime, scan: _DeployScan) -> None:
    """Recorded deploy events win over detected ones (their time and commit); a version known only
    from an event is added. Without events (none configured, or the index failing) detection stands."""
    if sources.logs is None:
        return
    try:
        events, query = sources.logs.events([s.name for s in services], start, end)
    except SourceError as exc:
        scan.notes.append(f"deploy events could not be read, deploys are detected from metrics only: {exc}")
        return
    for service in services:
        mine = {e.version: e for e in events if e.service == service.name}
        merged = [_with_event(d, mine.pop(d.version, None)) for d in scan.by_service.get(service.name, [])]
        scan.by_service[service.name] = sorted(merged + list(mine.values()), key=lambda d: (d.started_at, d.version))
        if query is not None:
            scan.queries[service.name] = scan.queries.get(service.name, ()) + (query,)


def _with_event(detected: Deploy, event: Deploy | None) -> Deploy:
    """The deploy as an event (or a record) tells it, keeping what detection knows of its last sample."""
    if event is None:
        return detected
    return Deploy(detected.service, detected.version, event.started_at, event.source, detected.last_seen, event.commit)


def list_deploys(catalogue: Catalogue, sources: Sources, service: str, now: datetime | None = None) -> list[Deploy]:
    """Return the detected deploys of one service, oldest first."""
    target = catalogue.service(service)
    return scan_deploys(catalogue, sources, [target], now or datetime.now(UTC)).by_service[target.name]


def evaluate(
    catalogue: Catalogue, sources: Sources, service: str, version: str | None = None, now: datetime | None = None,
    progress: Progress = None,
) -> Evaluation:
    """Evaluate one release of a service (the latest if `version` is None) against its baseline.

    Raises NotFoundError for an unknown service or version, SourceError if deploys cannot be read;
    a metric whose data cannot be fetched becomes an ERROR verdict instead.
    """
    now = now or datetime.now(UTC)
    target = catalogue.service(service)
    _say(progress, f"reading the deploys of {service}")
    scan = scan_deploys(catalogue, sources, [target], now)
    deploys = scan.by_service[target.name]
    if version is not None and version not in {d.version for d in deploys}:
        known = ", ".join(d.version for d in deploys) or "none"
        raise NotFoundError(
            f"{service} has no version {version!r} in the last {catalogue.policy.lookback} (seen: {known})"
        )
    return _evaluate_all(catalogue, sources, [(target, deploys, version)], scan, now, progress)[0]


def evaluate_fleet(
    catalogue: Catalogue, sources: Sources, now: datetime | None = None, progress: Progress = None
) -> list[Evaluation]:
    """Evaluate the latest release of every service, with one query per template per group."""
    now = now or datetime.now(UTC)
    _say(progress, f"reading the deploys of {len(catalogue.services)} services")
    scan = scan_deploys(catalogue, sources, catalogue.services, now)
    targets = [(s, scan.by_service[s.name], None) for s in catalogue.services]
    return _evaluate_all(catalogue, sources, targets, scan, now, progress)


def evaluate_releases(
    catalogue: Catalogue, sources: Sources, service: str, now: datetime | None = None, progress: Progress = None
) -> list[Evaluation]:
    """Evaluate every release of one service seen in the lookback, newest first, in one batch."""
    now = now or datetime.now(UTC)
    target = catalogue.service(service)
    _say(progress, f"reading the deploys of {service}")
    scan = scan_deploys(catalogue, sources, [target], now)
    deploys = scan.by_service[target.name]
    targets = [(target, deploys, d.version) for d in reversed(deploys)] or [(target, deploys, None)]
    return _evaluate_all(catalogue, sources, targets, scan, now, progress)


def _say(progress: Progress, step: str) -> None:
    if progress is not None:
        progress(step)


TIMELINE_SPAN = timedelta(hours=24)
TIMELINE_POINTS = 288  # per series: a point every 5 minutes over a day


def timeline(
    catalogue: Catalogue, sources: Sources, service: str, now: datetime | None = None, span: timedelta = TIMELINE_SPAN
) -> Timeline:
    """A service's last `span`: request rate, error ratio and latency per version at a coarse step, and its
    deploys. Three range queries for the one service (its critical ratio metric's numerator and
    denominator, its p95 metric's buckets, as the preset names them); a failing query leaves its
    quantity empty and says why. Raises NotFoundError for an unknown service, SourceError if deploys
    cannot be read."""
    now = now or datetime.now(UTC)
    target = catalogue.service(service)
    scan = scan_deploys(catalogue, sources, [target], now)
    step = _timeline_step(span, catalogue.policy.step)
    end = floor_to(now, step)
    start = end - span
    ratio = next((m for m in target.metrics if m.kind is MetricKind.RATIO), None)
    quantiles = [m for m in target.metrics if m.kind is MetricKind.HISTOGRAM_QUANTILE]
    latency = min(quantiles, key=lambda m: abs((m.quantile or 0.95) - 0.95), default=None)
    roles = {}
    if ratio:
        roles |= {"requests": ratio.queries["denominator"], "errors": ratio.queries["numerator"]}
    if latency:
        roles["buckets"] = latency.queries["buckets"]
    preset = catalogue.presets[target.preset]
    fetched = {
        role: _run(sources, template, [build_query(
            template, preset.templates[template], [target.name], target.labels, extra=target.selector,
            # Each step covers (t - step, t]: the first ends one step after `start`, so none reaches before it.
            step=step, start=start + step, end=end, source=sources.metrics.name,
        )])
        for role, template in roles.items()
    }
    version = target.labels.version

    def by_version(role: str) -> dict[str, list[Series]]:
        out: dict[str, list[Series]] = {}
        for s in fetched[role].series if role in fetched and not fetched[role].error else []:
            out.setdefault(s.labels.get(version, ""), []).append(s)
        return out

    requests, errors, buckets = by_version("requests"), by_version("errors"), by_version("buckets")
    seconds = step.total_seconds()
    return Timeline(
        service=target.name, start=start, end=end, step=step,
        request_rate={v: _scaled(sum_series(items), 1 / seconds) for v, items in requests.items()},
        error_ratio={v: ratio_per_step(errors.get(v, []), items) for v, items in requests.items()} if "errors" in fetched
        and not fetched["errors"].error else {},
        latency={v: quantile_per_step(latency.quantile or 0.95, items) for v, items in buckets.items()} if latency else {},
        latency_name=latency.name if latency else "",
        deploys=tuple(d for d in scan.by_service[target.name] if d.started_at <= end),
        queries=tuple(f.query for f in fetched.values()) + scan.queries.get(target.name, ()),
        errors=tuple(f.error for f in fetched.values() if f.error) + tuple(scan.notes),
    )


def _timeline_step(span: timedelta, step: timedelta) -> timedelta:
    """The policy's step, or a multiple of it that keeps a series under TIMELINE_POINTS points."""
    multiple = max(1, -(-int(span.total_seconds()) // (TIMELINE_POINTS * int(step.total_seconds()))))
    return step * multiple


def _scaled(series: Series, factor: float) -> Series:
    return Series(series.labels, series.timestamps, series.values * factor)


class _Target(NamedTuple):
    service: Service
    candidate: Deploy | None
    plan: WindowPlan


def _evaluate_all(
    catalogue: Catalogue,
    sources: Sources,
    requests: Sequence[tuple[Service, list[Deploy], str | None]],
    scan: _DeployScan,
    now: datetime,
    progress: Progress = None,
) -> list[Evaluation]:
    if sources.store is not None:  # signatures marked "not a risk" in the store count like the config's
        catalogue = dataclasses.replace(catalogue, not_a_risk=catalogue.not_a_risk | sources.store.not_a_risk())
    targets = [_target(catalogue, sources, service, deploys, version, now) for service, deploys, version in requests]
    judgeable = [t for t in targets if t.plan.candidate_window]
    _say(progress, f"querying the metrics of {len(judgeable)} release(s)")
    fetched = _fetch(catalogue, sources, judgeable)
    if any(t.service.logs is not None for t in judgeable):
        _say(progress, "reading the logs")
    logs = _fetch_logs(catalogue, sources, judgeable)
    _say(progress, f"judging {len(targets)} release(s)")
    return [
        _evaluation(catalogue, t, fetched, logs.get(id(t)), scan.queries.get(t.service.name, ()), tuple(scan.notes), now)
        for t in targets
    ]


def _target(
    catalogue: Catalogue, sources: Sources, service: Service, deploys: list[Deploy], version: str | None, now: datetime
) -> _Target:
    if not deploys:
        lookback = catalogue.policy.lookback
        return _Target(service, None, WindowPlan(None, None, None, f"no version of {service.name} was seen in the last {lookback}"))
    candidate = deploys[-1] if version is None else next(d for d in deploys if d.version == version)
    return _Target(service, candidate, plan(deploys, candidate, catalogue.policy, now, _last_good(sources, candidate)))


def _last_good(sources: Sources, candidate: Deploy) -> str | None:
    """The newest earlier version the store judged PROMOTE (for the last-good baseline); None without a store."""
    if sources.store is None:
        return None
    return sources.store.last_good(candidate.service, before=candidate.started_at, excluding=candidate.version)


def open_store(catalogue: Catalogue) -> Store:
    """The history store the configuration names (raises StoreError or ConfigError)."""
    return Store(catalogue.store_url, password=config.store_password(catalogue.store_password_env, catalogue.path))


class _Fetched(NamedTuple):
    query: Query
    series: list[Series]
    error: str
    more: tuple[Query, ...] = ()  # further spans of the same template (a far time-shifted baseline)


def _fetch(catalogue: Catalogue, sources: Sources, targets: Sequence[_Target]) -> dict[tuple, _Fetched]:
    """Run each template the targets need once per group, over the span covering all their windows.
    One at a time: run concurrently on two cores, the 50-service overview got slower (2.1 s, not 1.9 s),
    Prometheus' evaluation and our decoding competing for the same CPUs."""
    jobs: dict[tuple, tuple[str, list[Query]]] = {}
    by_group: dict[_GroupKey, list[_Target]] = {}
    for target in targets:
        by_group.setdefault(_group_key(target.service), []).append(target)
    for key, members in by_group.items():
        preset = catalogue.presets[key.preset]
        names = sorted({t.service.name for t in members})
        templates = sorted({name for t in members for spec in t.service.metrics for name in spec.queries.values()})
        windows = [w for t in members for w in (t.plan.baseline_window, t.plan.candidate_window)]
        for template in templates:
            queries = [
                build_query(
                    template, preset.templates[template], names, key.labels, extra=key.selector,
                    step=catalogue.policy.step, start=start, end=end, source=sources.metrics.name,
                )
                for start, end in spans(windows)
            ]
            jobs[(key, template)] = (template, queries)
    return {job: _run(sources, *arguments) for job, arguments in jobs.items()}


SPAN_GAP = timedelta(hours=6)


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


def _run(sources: Sources, template: str, queries: list[Query]) -> _Fetched:
    """Run the queries of one template (one per span) as one result; an error fails the template."""
    series: list[Series] = []
    try:
        for query in queries:
            series += sources.metrics.fetch(query)
    except SourceError as exc:
        return _Fetched(queries[0], [], f"query {template!r} failed: {exc}")
    return _Fetched(queries[0], series, "", tuple(queries[1:]))


def _evaluation(
    catalogue: Catalogue,
    target: _Target,
    fetched: dict[tuple, _Fetched],
    logs: _Logs | None,
    deploy_queries: tuple[Query, ...],
    notes: tuple[str, ...],
    now: datetime,
) -> Evaluation:
    plan, service = target.plan, target.service
    candidate_version = target.candidate.version if target.candidate else "(none)"
    baseline_version = plan.baseline.version if plan.baseline else "(none)"
    if plan.problem:
        recommendation = Recommendation(Action.INCONCLUSIVE, plan.problem, baseline_version, candidate_version)
        return Evaluation(
            service.name, target.candidate, plan.baseline, catalogue.policy.baseline, None, None, None,
            recommendation, now, deploy_queries, notes=notes, baseline_description=plan.description,
        )
    inputs = [_metric_input(service, spec, target, fetched) for spec in service.metrics if spec.kind not in LOG_KINDS]
    evidence = _log_evidence(catalogue, target, fetched, logs) if service.logs else None
    inputs += [_log_input(spec, target, fetched, evidence) for spec in service.metrics if spec.kind in LOG_KINDS]
    release_score, recommendation = judge(
        inputs, catalogue.policy, baseline_version, candidate_version, _information(catalogue, target)
    )
    queries = tuple(dict.fromkeys(q for i in inputs for q in i.queries))
    return Evaluation(
        service.name, target.candidate, plan.baseline, catalogue.policy.baseline, plan.candidate_window,
        plan.baseline_window, release_score, recommendation, now, deploy_queries + queries, evidence, notes,
        plan.description,
    )


def _information(catalogue: Catalogue, target: _Target) -> float:
    """The share of the full window the candidate has been observed for."""
    window = target.plan.candidate_window
    return min(1.0, window.duration / catalogue.policy.window) if window else 0.0


def _metric_input(service: Service, spec: MetricSpec, target: _Target, fetched: dict[tuple, _Fetched]) -> MetricInput:
    results = {role: fetched[(_group_key(service), template)] for role, template in spec.queries.items()}
    errors = [r.error for r in results.values() if r.error]
    queries = tuple(q for r in results.values() for q in (r.query, *r.more))
    if errors:
        return MetricInput(spec, {}, {}, queries, "; ".join(errors))
    plan = target.plan
    return MetricInput(
        spec,
        {role: _cut(service, r, plan.baseline.version, plan.baseline_window) for role, r in results.items()},
        {role: _cut(service, r, target.candidate.version, plan.candidate_window) for role, r in results.items()},
        queries,
    )


def _cut(service: Service, result: _Fetched, version: str, window: Window) -> list[Series]:
    """The series of one version of one service, inside one window."""
    labels = service.labels
    return [
        s.between(window) for s in result.series
        if s.labels.get(labels.service) == service.name and s.labels.get(labels.version) == version
    ]


# ---- logs ---------------------------------------------------------------------------------------------


class _Logs(NamedTuple):
    baseline: LogWindowData | None
    candidate: LogWindowData | None
    queries: tuple[Query, ...]
    error: str


def _fetch_logs(catalogue: Catalogue, sources: Sources, targets: Sequence[_Target]) -> dict[int, _Logs]:
    """Both windows of every target, two requests per group of services sharing log settings."""
    out: dict[int, _Logs] = {}
    groups: dict[LogSettings, list[tuple[_Target, WindowKey, WindowKey]]] = {}
    for n, target in enumerate(t for t in targets if t.service.logs is not None):
        if sources.logs is None:
            out[id(target)] = _Logs(None, None, (), "no log source is configured")
            continue
        settings, plan = target.service.logs, target.plan
        value = settings.service or target.service.name
        try:
            index = index_for(settings.index, value)
        except TemplateError as exc:
            out[id(target)] = _Logs(None, None, (), str(exc))
            continue
        baseline = WindowKey(f"t{n}b", value, plan.baseline.version, plan.baseline_window, index)
        candidate = WindowKey(f"t{n}c", value, target.candidate.version, plan.candidate_window, index)
        groups.setdefault(settings, []).append((target, baseline, candidate))
    for settings, members in groups.items():
        keys = [key for _, b, c in members for key in (b, c)]
        try:
            data, queries = sources.logs.fetch(keys, settings, catalogue.policy.step)
        except SourceError as exc:
            out.update({id(t): _Logs(None, None, (), f"logs could not be read: {exc}") for t, _, _ in members})
            continue
        out.update({id(t): _Logs(data.get(b.name), data.get(c.name), queries, "") for t, b, c in members})
    return out


def _log_evidence(catalogue: Catalogue, target: _Target, fetched: dict[tuple, _Fetched], logs: _Logs | None) -> LogEvidence:
    """Both windows' log data and the signature diff, with rates per request when requests are known."""
    if logs is None or logs.error or logs.baseline is None or logs.candidate is None:
        return LogEvidence(None, None, queries=logs.queries if logs else (), error=(logs.error if logs else "") or "no log data")
    requests = _requests(target, fetched)
    basis = "requests" if requests and all(sum(s.values.sum() for s in side) > 0 for side in requests) else "log lines"
    sides = (logs.baseline, logs.candidate)
    if basis == "requests":
        exposures = [float(sum(s.values.sum() for s in side)) for side in requests]
    else:
        exposures = [sum(d.total(level) for level in d.levels) for d in sides]
    totals = tuple(SideTotals(len(d.sample), d.sampled_from, e, basis) for d, e in zip(sides, exposures, strict=True))
    spec = next(m for m in target.service.metrics if m.kind is MetricKind.LOG_SIGNATURES)
    signatures = compare(
        logs.baseline.sample, logs.candidate.sample, totals,
        tolerance=spec.tolerance.relative,
        alpha=metric_alpha(
            release_alpha(catalogue.policy, _information(catalogue, target)), target.service.metrics, catalogue.policy, spec.name
        ),
        not_a_risk=catalogue.not_a_risk,
    )
    marked = tuple(dataclasses.replace(s, failing=fails(s, spec)) for s in signatures)
    return LogEvidence(logs.baseline, logs.candidate, marked, basis, logs.queries)


def _requests(target: _Target, fetched: dict[tuple, _Fetched]) -> tuple[list[Series], list[Series]] | None:
    """The requests per step of both windows, from the metrics already fetched; None if they failed."""
    result = fetched.get((_group_key(target.service), "requests"))
    if result is None or result.error:
        return None
    plan = target.plan
    return (
        _cut(target.service, result, plan.baseline.version, plan.baseline_window),
        _cut(target.service, result, target.candidate.version, plan.candidate_window),
    )


def _log_input(spec: MetricSpec, target: _Target, fetched: dict[tuple, _Fetched], evidence: LogEvidence | None) -> MetricInput:
    if evidence is None or evidence.error:
        return MetricInput(spec, {}, {}, evidence.queries if evidence else (), evidence.error if evidence else "no log source")
    sides = (evidence.baseline, evidence.candidate)
    lines = [{"lines": list(d.levels.values())} for d in sides]
    if spec.kind is MetricKind.LOG_SIGNATURES:
        return MetricInput(spec, lines[0], lines[1], evidence.queries, signatures=evidence.signatures)
    requests = _requests(target, fetched)
    queries = evidence.queries
    if evidence.rate_basis == "requests" and requests is not None:
        denominators = requests
        queries += (fetched[(_group_key(target.service), "requests")].query,)
    else:
        denominators = (lines[0]["lines"], lines[1]["lines"])
    numerators = [[d.levels["error"]] if "error" in d.levels else [] for d in sides]
    return MetricInput(
        spec,
        {"numerator": numerators[0], "denominator": denominators[0]},
        {"numerator": numerators[1], "denominator": denominators[1]},
        queries,
    )
