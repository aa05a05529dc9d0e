"""Orchestration: render -> fetch -> judge -> recommend. The one module that uses collectors and scoring.

Queries are batched: services that share a preset, labels and extra matchers are fetched together, one
query per template for the whole group (deploy detection included), never one per service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from collectors.base import MetricSource
from collectors.deploys import MetricDeploySource
from collectors.prometheus import PrometheusMetricSource
from collectors.simulated import SimulatedMetricSource
from queries.promql import build_query
from releasehealth import config
from releasehealth.config import Catalogue
from releasehealth.errors import NotFoundError, SourceError
from releasehealth.model import (
    Action,
    Deploy,
    Evaluation,
    LabelNames,
    MetricInput,
    MetricSpec,
    Query,
    Recommendation,
    Series,
    Service,
    SourceHealth,
    Window,
)
from releasehealth.simulator import Fleet, simulate
from releasehealth.windows import WindowPlan, plan_previous
from scoring.judge import judge


@dataclass(frozen=True)
class Sources:
    metrics: MetricSource
    deploys: MetricDeploySource


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
    )
    return Sources(metrics, MetricDeploySource(metrics))


def demo(seed: int = 7, end: datetime | None = None) -> tuple[Catalogue, Sources, Fleet]:
    """Return the embedded demo: a simulated fleet, its catalogue and in-memory sources."""
    fleet = simulate(seed=seed, end=end)
    catalogue = config.catalogue_for([s.name for s in fleet.services])
    metrics = SimulatedMetricSource(fleet)
    return catalogue, Sources(metrics, MetricDeploySource(metrics)), fleet


def check_sources(sources: Sources) -> list[SourceHealth]:
    return [sources.metrics.check()]


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
    return scan


def list_deploys(catalogue: Catalogue, sources: Sources, service: str, now: datetime | None = None) -> list[Deploy]:
    """Return the detected deploys of one service, oldest first."""
    target = catalogue.service(service)
    return scan_deploys(catalogue, sources, [target], now or datetime.now(UTC)).by_service[target.name]


def evaluate(
    catalogue: Catalogue, sources: Sources, service: str, version: str | None = None, now: datetime | None = None
) -> Evaluation:
    """Evaluate one release of a service (the latest if `version` is None) against its baseline.

    Raises NotFoundError for an unknown service or version, SourceError if deploys cannot be read;
    a metric whose data cannot be fetched becomes an ERROR verdict instead.
    """
    now = now or datetime.now(UTC)
    target = catalogue.service(service)
    scan = scan_deploys(catalogue, sources, [target], now)
    deploys = scan.by_service[target.name]
    if version is not None and version not in {d.version for d in deploys}:
        known = ", ".join(d.version for d in deploys) or "none"
        raise NotFoundError(
            f"{service} has no version {version!r} in the last {catalogue.policy.lookback} (seen: {known})"
        )
    return _evaluate_all(catalogue, sources, [(target, deploys, version)], scan, now)[0]


def evaluate_fleet(catalogue: Catalogue, sources: Sources, now: datetime | None = None) -> list[Evaluation]:
    """Evaluate the latest release of every service, with one query per template per group."""
    now = now or datetime.now(UTC)
    scan = scan_deploys(catalogue, sources, catalogue.services, now)
    targets = [(s, scan.by_service[s.name], None) for s in catalogue.services]
    return _evaluate_all(catalogue, sources, targets, scan, now)


def evaluate_releases(
    catalogue: Catalogue, sources: Sources, service: str, now: datetime | None = None
) -> list[Evaluation]:
    """Evaluate every release of one service seen in the lookback, newest first, in one batch."""
    now = now or datetime.now(UTC)
    target = catalogue.service(service)
    scan = scan_deploys(catalogue, sources, [target], now)
    deploys = scan.by_service[target.name]
    targets = [(target, deploys, d.version) for d in reversed(deploys)] or [(target, deploys, None)]
    return _evaluate_all(catalogue, sources, targets, scan, now)


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
) -> list[Evaluation]:
    targets = [_target(catalogue, service, deploys, version, now) for service, deploys, version in requests]
    fetched = _fetch(catalogue, sources, [t for t in targets if t.plan.candidate_window], now)
    return [_evaluation(catalogue, t, fetched, scan.queries.get(t.service.name, ()), now) for t in targets]


def _target(
    catalogue: Catalogue, service: Service, deploys: list[Deploy], version: str | None, now: datetime
) -> _Target:
    if not deploys:
        lookback = catalogue.policy.lookback
        return _Target(service, None, WindowPlan(None, None, None, f"no version of {service.name} was seen in the last {lookback}"))
    candidate = deploys[-1] if version is None else next(d for d in deploys if d.version == version)
    return _Target(service, candidate, plan_previous(deploys, candidate, catalogue.policy, now))


class _Fetched(NamedTuple):
    query: Query
    series: list[Series]
    error: str


def _fetch(catalogue: Catalogue, sources: Sources, targets: Sequence[_Target], now: datetime) -> dict[tuple, _Fetched]:
    """Run each template the targets need once per group, over the span covering all their windows."""
    out: dict[tuple, _Fetched] = {}
    by_group: dict[_GroupKey, list[_Target]] = {}
    for target in targets:
        by_group.setdefault(_group_key(target.service), []).append(target)
    for key, members in by_group.items():
        preset = catalogue.presets[key.preset]
        start = min(t.plan.baseline_window.start for t in members)
        end = max(t.plan.candidate_window.end for t in members)
        names = sorted({t.service.name for t in members})
        templates = sorted({name for t in members for spec in t.service.metrics for name in spec.queries.values()})
        for template in templates:
            query = build_query(
                template, preset.templates[template], names, key.labels, extra=key.selector,
                step=catalogue.policy.step, start=start, end=end, source=sources.metrics.name,
            )
            try:
                out[(key, template)] = _Fetched(query, sources.metrics.fetch(query), "")
            except SourceError as exc:
                out[(key, template)] = _Fetched(query, [], f"query {template!r} failed: {exc}")
    return out


def _evaluation(
    catalogue: Catalogue, target: _Target, fetched: dict[tuple, _Fetched], deploy_queries: tuple[Query, ...], now: datetime
) -> Evaluation:
    plan, service = target.plan, target.service
    candidate_version = target.candidate.version if target.candidate else "(none)"
    baseline_version = plan.baseline.version if plan.baseline else "(none)"
    if plan.problem:
        recommendation = Recommendation(Action.INCONCLUSIVE, plan.problem, baseline_version, candidate_version)
        return Evaluation(
            service.name, target.candidate, plan.baseline, catalogue.policy.baseline, None, None, None,
            recommendation, now, deploy_queries,
        )
    inputs = [_metric_input(service, spec, target, fetched) for spec in service.metrics]
    release_score, recommendation = judge(inputs, catalogue.policy, baseline_version, candidate_version)
    metric_queries = tuple(dict.fromkeys(q for i in inputs for q in i.queries))
    return Evaluation(
        service.name, target.candidate, plan.baseline, catalogue.policy.baseline, plan.candidate_window,
        plan.baseline_window, release_score, recommendation, now, deploy_queries + metric_queries,
    )


def _metric_input(service: Service, spec: MetricSpec, target: _Target, fetched: dict[tuple, _Fetched]) -> MetricInput:
    key = _group_key(service)
    results = {role: fetched[(key, template)] for role, template in spec.queries.items()}
    errors = [r.error for r in results.values() if r.error]
    queries = tuple(r.query for r in results.values())
    if errors:
        return MetricInput(spec, {}, {}, queries, "; ".join(errors))
    labels = service.labels
    plan = target.plan

    def cut(version: str, window: Window) -> dict[str, list[Series]]:
        return {
            role: [
                s.between(window) for s in r.series
                if s.labels.get(labels.service) == service.name and s.labels.get(labels.version) == version
            ]
            for role, r in results.items()
        }

    return MetricInput(
        spec, cut(plan.baseline.version, plan.baseline_window), cut(target.candidate.version, plan.candidate_window), queries
    )
