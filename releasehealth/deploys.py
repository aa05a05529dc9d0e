"""Deploy discovery: which versions of which services ran, and when each was deployed.

Versions come from the metrics' version label (two queries per group of services sharing labels,
matchers and pod join); from kube-state-metrics for services whose metrics carry none (their windows are
then cut by time alone), and compared with the label where both tell. Deploy events (Elasticsearch) and
deploys recorded in the history store win over both for the deploy time and commit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from releasehealth.collectors.deploys import Detection, MetricDeploySource, ScanMemory
from releasehealth.errors import SourceError
from releasehealth.format import format_time
from releasehealth.model import (
    Deploy,
    DeploySourceKind,
    KubernetesSettings,
    LabelNames,
    Policy,
    Query,
    Service,
)
from releasehealth.queries import kubernetes
from releasehealth.queries.promql import QueryGroup, format_duration
from releasehealth.sources import Sources

__all__ = ["ScanMemory", "deploys_of", "discover"]  # ScanMemory: for a front end to keep across wirings


@dataclass
class DeployScan:
    """The deploys of each service, the queries that found them, and what degraded on the way."""

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

    def effective(self, service: Service) -> Service:
        """The service as its metrics turned out: without a version label (nor a pod join) when they carry none."""
        if service.name in self.versionless and service.labels.version:
            return dataclasses.replace(service, labels=LabelNames(service.labels.service, ""), join="")
        return service


def discover(
    sources: Sources, services: Sequence[Service], policy: Policy, now: datetime, *, full_rescan: timedelta | None = None,
) -> DeployScan:
    """Detect the deploys of `services` in the policy's lookback: two queries per group from the metrics'
    version label, two per group from kube-state-metrics for the services that name a Deployment; raise
    SourceError if the metrics cannot be read. The label wins where both tell (a disagreement is noted
    on the service); services whose metrics carry no version take Kubernetes' deploys, and are cut by time.
    After a scan of the same sources, only the time since is read, and the whole lookback again once
    `full_rescan` (default FULL_RESCAN) has passed since the last whole read; `timedelta.max`: never again."""
    scan = DeployScan()
    groups: dict[tuple[QueryGroup, str, str, str], list[Service]] = {}
    for service in services:  # a service with first_seen/last_seen of its own is detected apart
        key = (QueryGroup.of(service, sources.metrics.name), service.templates["first_seen"],
               service.templates["last_seen"], service.no_version)
        groups.setdefault(key, []).append(service)
    for (group, first_template, last_template, no_version), members in groups.items():
        names = [s.name for s in members]
        found, queries = _detect(
            sources, group, (first_template, last_template), names, no_version, policy, now, full_rescan or FULL_RESCAN,
        )
        for service in members:
            mine = [d for d in found.deploys if d.service == service.name]
            scan.by_service[service.name] = mine
            scan.queries[service.name] = queries
            if mine or service.name in found.unversioned:
                scan.seen.add(service.name)
            if not service.labels.version or (service.name in found.unversioned and not mine):
                scan.versionless.add(service.name)
                if service.name in found.unversioned:
                    scan.unversioned_since[service.name] = found.unversioned[service.name]
    _merge_kubernetes(sources, services, policy, now, scan)
    _merge_events(sources, services, now - policy.lookback, now, scan)
    _merge_recorded(sources, services, now - policy.lookback, now, scan)
    _name_what_ran_before(scan, policy.step)
    return scan


# A front end that evaluates again and again reads the deploys since its last scan only (and a few steps
# before it: samples arrive late), and the whole lookback again at least this often: what a shorter read
# cannot see (a series backfilled, retention dropping the oldest deploys) is at most this old. Watch mode
# follows each service's newest release, which no such change of the past moves: it reads the whole
# lookback only when it starts (releasehealth.watch).
FULL_RESCAN = timedelta(hours=1)
OVERLAP_STEPS = 5


@dataclass(frozen=True)
class _Remembered:
    scanned_at: datetime  # the end of the last scan
    full_at: datetime  # the end of the last scan of the whole lookback
    detection: Detection


def _detect(
    sources: Sources, group: QueryGroup, templates: tuple[str, str], names: list[str], no_version: str, policy: Policy,
    now: datetime, full_rescan: timedelta,
) -> tuple[Detection, tuple[Query, ...]]:
    """The deploys of one group, and the queries that found them: the whole lookback (in two stages, see
    `_scan_in_two_stages`), or, after a scan of the same group whose last whole read is less than
    `full_rescan` ago, only the time since, merged with what that scan found."""
    key = (group, templates, tuple(names), no_version, policy.lookback, policy.step)
    deploys = sources.deploys
    known: _Remembered | None = deploys.memory.get(key)
    since_known = known is not None and known.scanned_at <= now and now - known.full_at < full_rescan
    lookback = policy.lookback
    if known is not None and since_known:
        steps = math.ceil((now - known.scanned_at) / policy.step) + OVERLAP_STEPS
        lookback = min(policy.lookback, steps * policy.step)
    try:
        if lookback >= TWO_STAGES_FROM and lookback >= 3 * COARSE_STEPS * policy.step:
            found, queries = _scan_in_two_stages(deploys, group, templates, names, no_version, policy.step, now, lookback)
        else:
            first, last = _seen_queries(group, templates, names, now, lookback, policy.step)
            found, queries = deploys.scan(first, last, no_version), (first, last)
    except SourceError as exc:
        raise exc.about("reading the deploys (queries 'first_seen' and 'last_seen')") from exc
    if known is not None and since_known and lookback < policy.lookback:
        found = _merged(known.detection, found, now - policy.lookback)
    full_at = known.full_at if known is not None and since_known and lookback < policy.lookback else now
    deploys.memory.put(key, _Remembered(now, full_at, found))
    return found, queries


def _seen_queries(
    group: QueryGroup, templates: tuple[str, str], names: Sequence[str], end: datetime, lookback: timedelta, step: timedelta
) -> tuple[Query, Query]:
    first, last = (
        group.instant(name, template, names, end=end, lookback=lookback, step=step)
        for name, template in zip(("first_seen", "last_seen"), templates, strict=True)
    )
    return first, last


# A scan of the whole lookback at the policy's step evaluates the template's subquery at every step of a
# week (10,080 for 1-minute steps) over every series: seconds of Prometheus's time for a fleet, on every
# cold start. Two stages find the same times for a tenth of that: a coarse scan at COARSE_STEPS steps
# tells in which coarse step each version was first and last seen, then one query per template reads
# only those coarse steps (and the lookback's two ends) at the policy's step.
COARSE_STEPS = 10
TWO_STAGES_FROM = timedelta(hours=6)  # shorter scans (the incremental ones) are cheap in one stage


def _scan_in_two_stages(
    deploys: MetricDeploySource, group: QueryGroup, templates: tuple[str, str], names: list[str], no_version: str,
    step: timedelta, now: datetime, lookback: timedelta,
) -> tuple[Detection, tuple[Query, ...]]:
    """The deploys a scan of the lookback at `step` finds, exactly, in two stages.

    The template's subquery looks at each step t for a sample in the step before it, and the first (or
    last) such step is the time. The coarse stage asks the same at coarse steps C = COARSE_STEPS x step,
    aligned on C, over the coarse steps inside the lookback: a version's first sample is in the coarse step
    before its first coarse step T. The fine stage evaluates the template at `step` over the C before each
    such T (`@ T`), over the head of the lookback before the first coarse step and over its tail after the
    last one, each for the services it concerns, and keeps each version's earliest (latest) answer: every
    term reads the very steps the one-stage scan reads there, never one outside the lookback, so the times
    are the same whether the server's ranges include their start (Prometheus 2) or not (3)."""
    now = now.replace(microsecond=0)  # whole seconds for PromQL's durations; no step lies in between
    coarse = step * COARSE_STEPS
    start = now - lookback
    tail_start = _floor(now, coarse)  # the last coarse step
    # The coarse steps' range starts here, after the lookback's start: a server whose ranges include their
    # start reads a step at the lookback's start, which the head term (of a positive span) then reads too.
    head_end = tail_start - coarse * (math.ceil((tail_start - start) / coarse) - 1)
    rough_queries = _seen_queries(group, templates, names, tail_start, tail_start - head_end, coarse)
    rough = deploys.scan(*rough_queries, no_version)
    first_steps: dict[datetime, set[str]] = {}
    last_steps: dict[datetime, set[str]] = {}
    for deploy in rough.deploys:
        first_steps.setdefault(deploy.started_at, set()).add(deploy.service)
        if deploy.last_seen is not None:
            last_steps.setdefault(deploy.last_seen, set()).add(deploy.service)
    for service, since in rough.unversioned.items():
        first_steps.setdefault(since, set()).add(service)
    fine = []
    for name, template, steps, keep in (
        ("first_seen", templates[0], first_steps, "min"), ("last_seen", templates[1], last_steps, "max"),
    ):
        terms = [(at, sorted(services), min(coarse, at - start)) for at, services in sorted(steps.items())]
        terms += [(head_end, names, head_end - start), (now, names, now - tail_start)]
        texts = [
            _term(group, name, template, members, at, span, step, now, number)
            for number, (at, members, span) in enumerate(t for t in terms if t[2] > timedelta(0))
        ]
        whole = group.instant(name, template, names, end=now, lookback=lookback, step=step)
        fine.append(dataclasses.replace(whole, text=f"{keep} without ({TERM_LABEL}) ({' or '.join(texts)})"))
    return deploys.scan(fine[0], fine[1], no_version), (*rough_queries, *fine)


TERM_LABEL = "release_health_term"  # tells the fine stage's terms apart, so that `or` keeps every answer


def _term(
    group: QueryGroup, name: str, template: str, services: Sequence[str], at: datetime, span: timedelta, step: timedelta,
    now: datetime, number: int,
) -> str:
    """The template over the `span` before `at` for `services`, labelled with its `number`: evaluated at
    `at` by a one-step subquery `@ at` (PromQL's @ applies to selectors and subqueries, not to a whole
    expression); at `now`, as it is."""
    text = group.instant(name, template, services, end=at, lookback=span, step=step).text
    if at != now:
        text = f"last_over_time(({text})[{format_duration(step)}:{format_duration(step)}] @ {at.timestamp():.0f})"
    return f'label_replace({text}, "{TERM_LABEL}", "{number}", "", "")'


def _floor(moment: datetime, step: timedelta) -> datetime:
    """`moment` down to a multiple of `step` since the epoch (where Prometheus aligns subquery steps)."""
    seconds = step.total_seconds()
    return datetime.fromtimestamp(math.floor(moment.timestamp() / seconds) * seconds, moment.tzinfo)



def _merged(earlier: Detection, recent: Detection, since: datetime) -> Detection:
    """The deploys of a scan of the whole lookback from an earlier one and a scan of the time since: a
    version's first sample is the earlier of the two (never before the lookback), its last the later;
    a version last seen before the lookback is gone, as a whole scan would not see it."""
    by_version = {(d.service, d.version): d for d in earlier.deploys}
    for deploy in recent.deploys:
        was = by_version.get((deploy.service, deploy.version))
        if was is not None:
            last_seen = max((t for t in (was.last_seen, deploy.last_seen) if t is not None), default=None)
            deploy = dataclasses.replace(deploy, started_at=min(was.started_at, deploy.started_at), last_seen=last_seen)
        by_version[(deploy.service, deploy.version)] = deploy
    kept = [
        dataclasses.replace(d, started_at=max(d.started_at, since)) for d in by_version.values() if (d.last_seen or d.started_at) >= since
    ]
    unversioned = dict(earlier.unversioned)
    for service, at in recent.unversioned.items():
        unversioned[service] = min(at, unversioned.get(service, at))
    unversioned = {service: max(at, since) for service, at in unversioned.items()}
    return Detection(sorted(kept, key=lambda d: (d.service, d.started_at, d.version)), unversioned)


def _name_what_ran_before(scan: DeployScan, step: timedelta) -> None:
    """Metrics without a version, and deploys known only from events or records: what served before the
    first deploy known is a release too (the baseline of that deploy), named "(before <version>)"."""
    for service in scan.versionless:
        deploys, since = scan.by_service.get(service, []), scan.unversioned_since.get(service)
        if deploys and since is not None and deploys[0].started_at - since >= step:
            earlier = Deploy(service, f"(before {deploys[0].version})", since, DeploySourceKind.DETECTED, deploys[0].started_at)
            scan.by_service[service] = [earlier, *deploys]


def _merge_kubernetes(sources: Sources, services: Sequence[Service], policy: Policy, now: datetime, scan: DeployScan) -> None:
    """Deploys from kube-state-metrics, two queries per group of services sharing namespace, container and
    version source: they are the deploys of a service whose metrics carry no version; beside a version
    label, they are compared with it and any disagreement is noted (the label wins)."""
    groups: dict[KubernetesSettings, list[tuple[Service, KubernetesSettings]]] = {}
    for service in services:  # a pod join gives the metrics their versions: detection by label finds them
        if service.kubernetes is not None and not service.join:
            key = dataclasses.replace(service.kubernetes, deployment="")
            groups.setdefault(key, []).append((service, service.kubernetes))
    for settings, members in groups.items():
        deployments = sorted({k8s.deployment for _, k8s in members})
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
            for service, _ in members:
                scan.note(service.name, f"versions could not be read from kube-state-metrics: {exc}")
            continue
        for service, k8s in members:
            mine = [dataclasses.replace(d, service=service.name) for d in found if d.service == k8s.deployment]
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
    label = service.labels.version
    for deploy in labelled:
        match = min(k8s_left, key=lambda d: abs(d.started_at - deploy.started_at), default=None)
        if match is None or abs(match.started_at - deploy.started_at) > tolerance:
            out.append(
                f"version conflict: the {label} label turned {deploy.version} at {format_time(deploy.started_at)} "
                f"but Kubernetes saw no rollout of deployment {deployment} then; the label is used"
            )
            continue
        k8s_left.remove(match)
        if match.version != deploy.version:
            out.append(
                f"version conflict at {format_time(deploy.started_at)}: the {label} label says {deploy.version}, "
                f"Kubernetes (deployment {deployment}) says {match.version}; the label is used"
            )
    out += [
        f"version conflict: Kubernetes rolled deployment {deployment} out to {d.version} at {format_time(d.started_at)} "
        f"but the {label} label shows no new version then; the label is used"
        for d in k8s_left
    ]
    return out


def _merge_events(sources: Sources, services: Sequence[Service], start: datetime, end: datetime, scan: DeployScan) -> None:
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
        _merge(scan, service.name, mine)
        if query is not None:
            scan.queries[service.name] = scan.queries.get(service.name, ()) + (query,)


def _merge_recorded(sources: Sources, services: Sequence[Service], start: datetime, end: datetime, scan: DeployScan) -> None:
    """Deploys a pipeline recorded in the history store win over detected ones, as events do."""
    if sources.store is None:
        return
    for service in services:
        _merge(scan, service.name, {d.version: d for d in sources.store.deploys(service.name) if start <= d.started_at <= end})


def _merge(scan: DeployScan, service: str, told: dict[str, Deploy]) -> None:
    """The deploys of `service` as events or records tell them, the versions known only from them added."""
    merged = [_with_event(d, told.pop(d.version, None)) for d in scan.by_service.get(service, [])]
    scan.by_service[service] = sorted(merged + list(told.values()), key=lambda d: (d.started_at, d.version))


def _with_event(detected: Deploy, event: Deploy | None) -> Deploy:
    """The deploy as an event (or a record) tells it, keeping what detection knows of its last sample."""
    if event is None:
        return detected
    return Deploy(detected.service, detected.version, event.started_at, event.source, detected.last_seen, event.commit)


def deploys_of(sources: Sources, service: Service, policy: Policy, now: datetime) -> list[Deploy]:
    """The deploys of one service in the lookback, oldest first."""
    return discover(sources, [service], policy, now).by_service[service.name]
