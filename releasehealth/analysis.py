"""Orchestration: render -> fetch -> judge -> recommend. The one module that uses collectors and scoring.

Queries are batched: services that share a preset, labels and extra matchers are fetched together, one
query per template for the whole group (deploy detection included), never one per service. Versions come
from the metrics' version label; from kube-state-metrics for services whose metrics carry none (their
windows are then cut by time alone); deploy events and recorded deploys win over both for the deploy time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np

from releasehealth.collectors.base import LogSource, MetricSource
from releasehealth.collectors.deploys import MetricDeploySource
from releasehealth.collectors.elasticsearch import ElasticsearchLogSource
from releasehealth.collectors.prometheus import PrometheusMetricSource
from releasehealth.simulator.sources import SimulatedLogSource, SimulatedMetricSource
from releasehealth.queries.elasticsearch import WindowKey, index_for
from releasehealth.queries import kubernetes, promql
from releasehealth.queries.promql import build_query
from releasehealth import config
from releasehealth.config import Catalogue
from releasehealth.errors import NotFoundError, SourceError, TemplateError
from releasehealth.model import (
    Action,
    BaselinePolicy,
    Deploy,
    DeploySourceKind,
    Evaluation,
    KubernetesSettings,
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
from releasehealth.scoring.judge import judge, metric_alpha, release_alpha
from releasehealth.scoring.latency import quantile_per_step
from releasehealth.scoring.ratio import ratio_per_step
from releasehealth.scoring.series import sum_series
from releasehealth.scoring.logs import fails
from releasehealth.scoring.signatures import SideTotals, compare

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
    join: str  # what ${join} renders to: a pod join to kube-state-metrics' versions, or nothing


def _group_key(service: Service) -> _GroupKey:
    return _GroupKey(service.preset, service.labels, service.selector, _join(service))


def _join(service: Service) -> str:
    k8s = service.kubernetes
    return kubernetes.pod_join(k8s) if k8s is not None and k8s.join == "pod" and service.labels.version else ""


@dataclass
class _DeployScan:
    by_service: dict[str, list[Deploy]] = field(default_factory=dict)
    queries: dict[str, tuple[Query, ...]] = field(default_factory=dict)  # per service: the queries that found them
    notes: list[str] = field(default_factory=list)  # what degraded without failing the evaluation
    service_notes: dict[str, list[str]] = field(default_factory=dict)  # the same, for one service (a conflict)
    seen: set[str] = field(default_factory=set)  # services whose preset metrics exist at all
    versionless: set[str] = field(default_factory=set)  # services whose metrics carry no version: cut by time
    unversioned_since: dict[str, datetime] = field(default_factory=dict)  # their metrics' first step

    def note(self, service: str, text: str) -> None:
        self.service_notes.setdefault(service, []).append(text)

    def notes_of(self, service: str) -> tuple[str, ...]:
        return tuple(self.notes) + tuple(self.service_notes.get(service, ()))


def scan_deploys(catalogue: Catalogue, sources: Sources, services: Sequence[Service], now: datetime) -> _DeployScan:
    """Detect the deploys of `services`: two queries per group from the metrics' version label, two per
    group from kube-state-metrics for the services that name a Deployment; raise SourceError if the
    metrics cannot be read. The label wins where both tell (a disagreement is noted on the service);
    services whose metrics carry no version take Kubernetes' deploys, and are cut by time."""
    scan = _DeployScan()
    policy = catalogue.policy
    groups: dict[tuple, list[Service]] = {}
    for service in services:  # a service with first_seen/last_seen of its own is detected apart
        templates = config.templates_of(catalogue, service)
        groups.setdefault((_group_key(service), templates["first_seen"], templates["last_seen"]), []).append(service)
    for (key, *_), members in groups.items():
        templates = config.templates_of(catalogue, members[0])
        names = [s.name for s in members]
        first, last = (
            build_query(
                name, templates[name], names, key.labels, extra=key.selector, step=policy.step, start=now - policy.lookback,
                end=now, lookback=policy.lookback, instant=True, source=sources.metrics.name, join=key.join,
            )
            for name in ("first_seen", "last_seen")
        )
        found = sources.deploys.scan(first, last, catalogue.presets[key.preset].no_version)
        for service in members:
            scan.by_service[service.name] = [d for d in found.deploys if d.service == service.name]
            scan.queries[service.name] = (first, last)
            if scan.by_service[service.name] or service.name in found.unversioned:
                scan.seen.add(service.name)
            if not service.labels.version or (service.name in found.unversioned and not scan.by_service[service.name]):
                scan.versionless.add(service.name)
                if service.name in found.unversioned:
                    scan.unversioned_since[service.name] = found.unversioned[service.name]
    _merge_kubernetes(catalogue, sources, services, now, scan)
    _merge_events(sources, services, now - policy.lookback, now, scan)
    _merge_recorded(sources, services, now - policy.lookback, now, scan)
    _name_what_ran_before(scan, policy.step)
    return scan


def _name_what_ran_before(scan: _DeployScan, step: timedelta) -> None:
    """Metrics without a version, and deploys known only from events or records: what served before the
    first deploy known is a release too (the baseline of that deploy), named "(before <version>)"."""
    for service in scan.versionless:
        deploys, since = scan.by_service.get(service, []), scan.unversioned_since.get(service)
        if deploys and since is not None and deploys[0].started_at - since >= step:
            earlier = Deploy(service, f"(before {deploys[0].version})", since, DeploySourceKind.DETECTED, deploys[0].started_at)
            scan.by_service[service] = [earlier, *deploys]


def _merge_kubernetes(catalogue: Catalogue, sources: Sources, services: Sequence[Service], now: datetime, scan: _DeployScan) -> None:
    """Deploys from kube-state-metrics, two queries per group of services sharing namespace, container and
    version source: they are the deploys of a service whose metrics carry no version; beside a version
    label, they are compared with it and any disagreement is noted (the label wins)."""
    groups: dict[KubernetesSettings, list[Service]] = {}
    for service in services:  # a pod join gives the metrics their versions: detection by label finds them
        if service.kubernetes is not None and not _join(service):
            key = dataclasses.replace(service.kubernetes, deployment="")
            groups.setdefault(key, []).append(service)
    policy = catalogue.policy
    for settings, members in groups.items():
        deployments = sorted({s.kubernetes.deployment for s in members})
        first, last = (
            kubernetes.seen_query(
                template, deployments, settings, step=policy.step, lookback=policy.lookback, end=now,
                source=sources.metrics.name,
            )
            for template in ("first_seen", "last_seen")
        )
        try:
            found = sources.deploys.scan(first, last, kind=DeploySourceKind.KUBERNETES).deploys
        except SourceError as exc:
            for service in members:
                scan.note(service.name, f"versions could not be read from kube-state-metrics: {exc}")
            continue
        for service in members:
            mine = [
                dataclasses.replace(d, service=service.name) for d in found if d.service == service.kubernetes.deployment
            ]
            scan.queries[service.name] = scan.queries.get(service.name, ()) + (first, last)
            if service.name in scan.versionless:
                scan.by_service[service.name] = mine
            else:
                for conflict in version_conflicts(scan.by_service[service.name], mine, policy.step, service):
                    scan.note(service.name, conflict)


def version_conflicts(labelled: Sequence[Deploy], k8s: Sequence[Deploy], step: timedelta, service: Service) -> list[str]:
    """Where the version label and Kubernetes disagree: a rollout at the same time (within two steps)
    to another version, or a rollout one of them saw and the other did not. The label wins."""
    if not labelled:  # the metrics are not there at all: that is what the release says, not a conflict
        return []
    tolerance = 2 * step
    k8s_left = list(k8s)
    out = []
    if k8s and labelled[0].version == k8s[0].version:
        # The version running when each source's data begins: their histories may start at different times.
        labelled, k8s_left = labelled[1:], k8s_left[1:]
    deployment = service.kubernetes.deployment if service.kubernetes else service.name
    for deploy in labelled:
        match = min(k8s_left, key=lambda d: abs(d.started_at - deploy.started_at), default=None)
        if match is None or abs(match.started_at - deploy.started_at) > tolerance:
            out.append(
                f"version conflict: the {service.labels.version} label turned {deploy.version} at {_hhmm(deploy.started_at)} "
                f"but Kubernetes saw no rollout of deployment {deployment} then; the label is used"
            )
            continue
        k8s_left.remove(match)
        if match.version != deploy.version:
            out.append(
                f"version conflict at {_hhmm(deploy.started_at)}: the {service.labels.version} label says {deploy.version}, "
                f"Kubernetes (deployment {deployment}) says {match.version}; the label is used"
            )
    out += [
        f"version conflict: Kubernetes rolled deployment {deployment} out to {d.version} at {_hhmm(d.started_at)} "
        f"but the {service.labels.version} label shows no new version then; the label is used"
        for d in k8s_left
    ]
    return out


def _hhmm(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


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
    scan = scan_deploys(catalogue, sources, [catalogue.service(service)], now)
    target = _effective(catalogue.service(service), scan)
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
    templates = config.templates_of(catalogue, target)
    fetched = {
        role: _run(sources, template, [build_query(
            template, templates[template], [target.name], target.labels, extra=target.selector,
            # Each step covers (t - step, t]: the first ends one step after `start`, so none reaches before it.
            step=step, start=start + step, end=end, source=sources.metrics.name, join=_join(target),
        )], dict(target.bucket_units).get(template, "seconds"))
        for role, template in roles.items()
    }
    version = target.labels.version
    deploys = scan.by_service[target.name]

    def by_version(role: str) -> dict[str, list[Series]]:
        out: dict[str, list[Series]] = {}
        for s in fetched[role].series if role in fetched and not fetched[role].error else []:
            if version:
                out.setdefault(s.labels.get(version, ""), []).append(s)
            else:  # no version label: each deploy's version owns the steps from its deploy to the next
                for name, part in _split_by_deploys(s, deploys):
                    out.setdefault(name, []).append(part)
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
        deploys=tuple(d for d in deploys if d.started_at <= end),
        queries=tuple(f.query for f in fetched.values()) + scan.queries.get(target.name, ()),
        errors=tuple(f.error for f in fetched.values() if f.error) + scan.notes_of(target.name),
    )


def _split_by_deploys(series: Series, deploys: Sequence[Deploy]) -> list[tuple[str, Series]]:
    """A series of a service whose metrics carry no version, cut into the versions that served it: the
    step ending at t goes to the version deployed last before t (a step ending at a deploy instant is the
    old version's), a step before the first deploy known to "" (unknown)."""
    if not deploys:
        return [("", series)]
    starts = np.array([d.started_at.timestamp() for d in deploys])
    owner = np.searchsorted(starts, series.timestamps, side="left") - 1  # a step ending at a deploy is the old one's
    out = []
    for index in np.unique(owner):
        mask = owner == index
        name = deploys[index].version if index >= 0 else ""
        out.append((name, Series(series.labels, series.timestamps[mask], series.values[mask])))
    return out


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
    targets = [
        _target(catalogue, sources, _effective(service, scan), deploys, version, now, scan)
        for service, deploys, version in requests
    ]
    judgeable = [t for t in targets if t.plan.candidate_window]
    _say(progress, f"querying the metrics of {len(judgeable)} release(s)")
    fetched = _fetch(catalogue, sources, judgeable)
    if any(t.service.logs is not None for t in judgeable):
        _say(progress, "reading the logs")
    logs = _fetch_logs(catalogue, sources, judgeable)
    _say(progress, f"judging {len(targets)} release(s)")
    return [
        _evaluation(
            catalogue, t, fetched, logs.get(id(t)), scan.queries.get(t.service.name, ()), scan.notes_of(t.service.name), now
        )
        for t in targets
    ]


def _effective(service: Service, scan: _DeployScan) -> Service:
    """The service as its metrics turned out: without a version label when they carry none."""
    if service.name in scan.versionless and service.labels.version:
        return dataclasses.replace(service, labels=LabelNames(service.labels.service, ""))
    return service


def _target(
    catalogue: Catalogue, sources: Sources, service: Service, deploys: list[Deploy], version: str | None, now: datetime,
    scan: _DeployScan,
) -> _Target:
    if not deploys:
        return _Target(service, None, WindowPlan(None, None, None, _why_no_version(catalogue, service, scan)))
    candidate = deploys[-1] if version is None else next(d for d in deploys if d.version == version)
    if not service.labels.version and catalogue.policy.baseline is BaselinePolicy.CONCURRENT:
        problem = f"the metrics of {service.name} carry no version label, {config.CONCURRENT_NEEDS_A_VERSION}"
        return _Target(service, candidate, WindowPlan(None, None, None, problem))
    return _Target(service, candidate, plan(deploys, candidate, catalogue.policy, now, _last_good(sources, candidate)))


def _why_no_version(catalogue: Catalogue, service: Service, scan: _DeployScan) -> str:
    """Why a service has no release to judge, saying what to fix: its preset's metrics are not there at
    all, or they carry no version and nothing else told one."""
    lookback = promql.format_duration(catalogue.policy.lookback)
    if service.name not in scan.seen:
        expected = config.metric_names(config.templates_of(catalogue, service).get("first_seen", "")) or ["(none)"]
        joined = (
            f", from pods kube-state-metrics knows (joined on {service.kubernetes.namespace_label}, "
            f"{service.kubernetes.pod_label})" if _join(service) else ""
        )
        return (
            f"no data for preset {service.preset}: expected metric {expected[0]} with "
            f"{service.labels.service}={promql.quote(service.name)}{joined} in the last {lookback}"
        )
    if service.name in scan.versionless:
        where = "kube-state-metrics showed no version of its Deployment" if service.kubernetes else (
            "configure kubernetes: for it, send deploy events or record its deploys"
        )
        return f"the metrics of {service.name} (preset {service.preset}) carry no version label: {where}"
    return f"no version of {service.name} was seen in the last {lookback}"


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
    jobs: dict[tuple, tuple[str, list[Query], str]] = {}
    by_job: dict[tuple, list[_Target]] = {}
    for target in targets:
        for template in {name for spec in target.service.metrics for name in spec.queries.values()}:
            by_job.setdefault(_job(catalogue, target.service, template), []).append(target)
    for job, members in by_job.items():
        key, template, text, bucket_unit = job
        names = sorted({t.service.name for t in members})
        windows = [w for t in members for w in (t.plan.baseline_window, t.plan.candidate_window)]
        queries = [
            build_query(
                template, text, names, key.labels, extra=key.selector, step=catalogue.policy.step, start=start, end=end,
                source=sources.metrics.name, join=key.join,
            )
            for start, end in spans(windows)
        ]
        jobs[job] = (template, queries, bucket_unit)
    return {job: _run(sources, *arguments) for job, arguments in jobs.items()}


def _job(catalogue: Catalogue, service: Service, template: str) -> tuple[_GroupKey, str, str, str]:
    """What one fetch is shared by: services of one group whose template of this name is the same PromQL
    read in the same unit (a service's own template of a preset's name is fetched apart)."""
    unit = dict(service.bucket_units).get(template, "seconds")
    return _group_key(service), template, config.templates_of(catalogue, service)[template], unit


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


def _run(sources: Sources, template: str, queries: list[Query], bucket_unit: str = "seconds") -> _Fetched:
    """Run the queries of one template (one per span) as one result; an error fails the template.
    Histogram bounds in milliseconds (Istio, Linkerd) are turned into seconds here, once for every use."""
    series: list[Series] = []
    try:
        for query in queries:
            series += sources.metrics.fetch(query)
    except SourceError as exc:
        return _Fetched(queries[0], [], f"query {template!r} failed: {exc}")
    if bucket_unit == "milliseconds":
        series = [_in_seconds(s) for s in series]
    return _Fetched(queries[0], series, "", tuple(queries[1:]))


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
    inputs = [
        _metric_input(catalogue, service, spec, target, fetched) for spec in service.metrics if spec.kind not in LOG_KINDS
    ]
    evidence = _log_evidence(catalogue, target, fetched, logs) if service.logs else None
    inputs += [_log_input(catalogue, spec, target, fetched, evidence) for spec in service.metrics if spec.kind in LOG_KINDS]
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


# The roles whose series must exist when the metric is exposed at all (a service that never failed has
# no 5xx series, so a ratio's numerator may well be empty).
EXPOSED_ROLES = ("denominator", "buckets", "value")


def _metric_input(
    catalogue: Catalogue, service: Service, spec: MetricSpec, target: _Target, fetched: dict[tuple, _Fetched]
) -> MetricInput:
    results = {role: fetched[_job(catalogue, service, template)] for role, template in spec.queries.items()}
    errors = [r.error for r in results.values() if r.error]
    queries = tuple(q for r in results.values() for q in (r.query, *r.more))
    if errors:
        return MetricInput(spec, {}, {}, queries, "; ".join(errors))
    absent = _absent(catalogue, service, spec, results)
    if absent and spec.optional:
        return MetricInput(dataclasses.replace(spec, muted=True), {}, {}, queries, absent=f"left out: {absent} (optional)")
    if absent:
        return MetricInput(spec, {}, {}, queries, absent=absent)
    plan = target.plan
    return MetricInput(
        spec,
        {role: _cut(service, r, plan.baseline.version, plan.baseline_window) for role, r in results.items()},
        {role: _cut(service, r, target.candidate.version, plan.candidate_window) for role, r in results.items()},
        queries,
    )


def _absent(catalogue: Catalogue, service: Service, spec: MetricSpec, results: dict[str, _Fetched]) -> str:
    """"no data for preset X: expected metric Y" when a query the metric needs returned no series of the
    service at all (in either window, any version): the metric is not exposed as the preset expects."""
    for role, result in results.items():
        if role not in EXPOSED_ROLES or any(s.labels.get(service.labels.service) == service.name for s in result.series):
            continue
        template = spec.queries[role]
        names = config.metric_names(config.templates_of(catalogue, service)[template]) or [template]
        whose = f"preset {service.preset}" if template not in dict(service.templates) else f"template {template!r}"
        return f"no data for {whose}: expected metric {' and '.join(names)} with {service.labels.service}={promql.quote(service.name)}"
    return ""


def _cut(service: Service, result: _Fetched, version: str, window: Window) -> list[Series]:
    """The series of one version of one service, inside one window; without a version label on the
    metrics, the service's series inside the window (the window is when that version served)."""
    labels = service.labels
    return [
        s.between(window) for s in result.series
        if s.labels.get(labels.service) == service.name and (not labels.version or s.labels.get(labels.version) == version)
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
        # Metrics without a version are cut by time: so are the logs (their version, if any, is not asked).
        versions = (plan.baseline.version, target.candidate.version) if target.service.labels.version else ("", "")
        baseline = WindowKey(f"t{n}b", value, versions[0], plan.baseline_window, index)
        candidate = WindowKey(f"t{n}c", value, versions[1], plan.candidate_window, index)
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
    requests = _requests(catalogue, target, fetched)
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


def _requests(catalogue: Catalogue, target: _Target, fetched: dict[tuple, _Fetched]) -> tuple[list[Series], list[Series]] | None:
    """The requests per step of both windows, from the metrics already fetched; None if they failed."""
    if "requests" not in config.templates_of(catalogue, target.service):
        return None
    result = fetched.get(_job(catalogue, target.service, "requests"))
    if result is None or result.error:
        return None
    plan = target.plan
    return (
        _cut(target.service, result, plan.baseline.version, plan.baseline_window),
        _cut(target.service, result, target.candidate.version, plan.candidate_window),
    )


def _log_input(
    catalogue: Catalogue, spec: MetricSpec, target: _Target, fetched: dict[tuple, _Fetched], evidence: LogEvidence | None
) -> MetricInput:
    if evidence is None or evidence.error:
        return MetricInput(spec, {}, {}, evidence.queries if evidence else (), evidence.error if evidence else "no log source")
    sides = (evidence.baseline, evidence.candidate)
    lines = [{"lines": list(d.levels.values())} for d in sides]
    if spec.kind is MetricKind.LOG_SIGNATURES:
        return MetricInput(spec, lines[0], lines[1], evidence.queries, signatures=evidence.signatures)
    requests = _requests(catalogue, target, fetched)
    queries = evidence.queries
    if evidence.rate_basis == "requests" and requests is not None:
        denominators = requests
        queries += (fetched[_job(catalogue, target.service, "requests")].query,)
    else:
        denominators = (lines[0]["lines"], lines[1]["lines"])
    numerators = [[d.levels["error"]] if "error" in d.levels else [] for d in sides]
    return MetricInput(
        spec,
        {"numerator": numerators[0], "denominator": denominators[0]},
        {"numerator": numerators[1], "denominator": denominators[1]},
        queries,
    )
