"""A service's last day for its page: request rate, error ratio and a latency quantile per version, and its deploys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from releasehealth.deploys import discover
from releasehealth.fetch import Fetched, run
from releasehealth.model import Deploy, MetricKind, Policy, Series, Service
from releasehealth.queries.promql import QueryGroup
from releasehealth.scoring import quantile_per_step, ratio_per_step, sum_series
from releasehealth.sources import Sources
from releasehealth.verdicts import Timeline
from releasehealth.windows import floor_to

TIMELINE_SPAN = timedelta(hours=24)
TIMELINE_POINTS = 288  # per series: a point every 5 minutes over a day


def timeline(
    sources: Sources, service: Service, policy: Policy, now: datetime | None = None, span: timedelta = TIMELINE_SPAN
) -> Timeline:
    """A service's last `span`: request rate, error ratio and latency per version at a coarse step, and its
    deploys. A range query per template for the one service (its ratio metric's numerator and denominator,
    one when the numerator is derived from the denominator's answer; its p95 metric's buckets); a failing
    query leaves its quantity empty and says why. Raises SourceError if deploys cannot be read."""
    now = now or datetime.now(UTC)
    scan = discover(sources, [service], policy, now)
    target = scan.effective(service)
    step = timeline_step(span, policy.step)
    end = floor_to(now, step)
    start = end - span
    ratio = next((m for m in target.metrics if m.kind is MetricKind.RATIO), None)
    quantiles = [m for m in target.metrics if m.kind is MetricKind.HISTOGRAM_QUANTILE]
    latency = min(quantiles, key=lambda m: abs((m.quantile or 0.95) - 0.95), default=None)
    roles: dict[str, str] = {}
    if ratio:
        roles |= {"requests": ratio.queries["denominator"], "errors": ratio.queries["numerator"]}
    if latency:
        roles["buckets"] = latency.queries["buckets"]
    group = QueryGroup.of(target, sources.metrics.name)
    answers: dict[str, Fetched] = {}  # by the template that ran: a derived one reads its source's answer
    for template in dict.fromkeys(_source(target, t) for t in roles.values()):
        answers[template] = run(sources.metrics, template, [group.range(
            # Each step covers (t - step, t]: the first ends one step after `start`, so none reaches before it.
            template, target.templates[template], [target.name], start=start + step, end=end, step=step,
        )], target.bucket_units.get(template, "seconds"))
    fetched = {role: answers[_source(target, template)] for role, template in roles.items()}
    deploys = scan.by_service[target.name]
    requests, errors, buckets = (
        _by_version(fetched.get(role), target, roles.get(role, ""), deploys) for role in ("requests", "errors", "buckets")
    )
    seconds = step.total_seconds()
    errors_read = "errors" in fetched and not fetched["errors"].error and not fetched["errors"].partial
    return Timeline(
        service=target.name, start=start, end=end, step=step,
        request_rate={v: _scaled(sum_series(items), 1 / seconds) for v, items in requests.items()},
        error_ratio={v: ratio_per_step(errors.get(v, []), items) for v, items in requests.items()} if errors_read else {},
        latency={v: quantile_per_step(latency.quantile or 0.95, items) for v, items in buckets.items()} if latency else {},
        latency_name=latency.name if latency else "",
        deploys=tuple(d for d in deploys if d.started_at <= end),
        queries=tuple(f.query for f in answers.values()) + scan.queries.get(target.name, ()),
        errors=tuple(f.error or f.partial for f in answers.values() if f.error or f.partial) + scan.notes_of(target.name),
    )


def _source(service: Service, template: str) -> str:
    return service.derived[template].source if template in service.derived else template


def _by_version(result: Fetched | None, service: Service, template: str, deploys: Sequence[Deploy]) -> dict[str, list[Series]]:
    """The series of one quantity by version: their version label, or the deploys' times without one."""
    out: dict[str, list[Series]] = {}
    derived = service.derived.get(template)
    for s in result.series if result is not None and not result.error else []:
        if derived is not None and not derived.selects(s.labels):
            continue
        if service.labels.version:
            out.setdefault(s.labels.get(service.labels.version, ""), []).append(s)
        else:  # no version label: each deploy's version owns the steps from its deploy to the next
            for name, part in split_by_deploys(s, deploys):
                out.setdefault(name, []).append(part)
    return out


def split_by_deploys(series: Series, deploys: Sequence[Deploy]) -> list[tuple[str, Series]]:
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


def timeline_step(span: timedelta, step: timedelta) -> timedelta:
    """The policy's step, or a multiple of it that keeps a series under TIMELINE_POINTS points."""
    multiple = max(1, -(-int(span.total_seconds()) // (TIMELINE_POINTS * int(step.total_seconds()))))
    return step * multiple


def _scaled(series: Series, factor: float) -> Series:
    return Series(series.labels, series.timestamps, series.values * factor)
