"""Evaluating releases: deploys -> windows -> fetch -> judge -> Evaluation, for one release or a fleet.

Each step is one module entered once, downward: releasehealth.deploys finds the releases,
releasehealth.windows plans each one's windows, releasehealth.fetch reads them in as few queries as the
sources allow, releasehealth.scoring.judge decides. What a release's metrics need is assembled here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import NamedTuple

from releasehealth.config import CONCURRENT_NEEDS_A_VERSION
from releasehealth.deploys import DeployScan, discover
from releasehealth.errors import NotFoundError
from releasehealth.fetch import (
    Fetched,
    FetchKey,
    LogData,
    Target,
    cut,
    fetch_logs,
    fetch_metrics,
    has_service,
    of_version,
)
from releasehealth.format import duration_text, plural, unknown_version_text
from releasehealth.model import Action, BaselinePolicy, Deploy, MetricKind, MetricSpec, Policy, Series, Service, Window
from releasehealth.queries import promql
from releasehealth.scoring import judge
from releasehealth.sources import Sources
from releasehealth.verdicts import Evaluation, LogEvidence, LogSamples, MetricInput, Recommendation, SideTotals
from releasehealth.windows import WindowPlan, plan

LOG_KINDS = (MetricKind.LOG_RATE, MetricKind.LOG_SIGNATURES)
# Told each step of a long evaluation as it starts ("querying the metrics of 8 release(s)"), for a progress display.
Progress = Callable[[str], None] | None
# The roles whose series must exist when the metric is exposed at all (a service that never failed has
# no 5xx series, so a ratio's numerator may well be empty).
EXPOSED_ROLES = ("denominator", "buckets", "value")


def evaluate_release(
    sources: Sources, service: Service, policy: Policy, version: str | None = None, *, now: datetime | None = None,
    progress: Progress = None, discovered: DeployScan | None = None,
) -> Evaluation:
    """Evaluate one release of a service (the latest if `version` is None) against its baseline; on the
    deploys `discovered` (at `now`, of a scan that covers the service) when the caller has read them.

    Raises NotFoundError for an unknown version, SourceError if deploys cannot be read; a metric whose
    data cannot be fetched becomes an ERROR verdict instead.
    """
    now = now or datetime.now(UTC)
    _say(progress, f"reading the deploys of {service.name}")
    scan = discovered if discovered is not None else discover(sources, [service], policy, now)
    deploys = scan.by_service[service.name]
    if version is not None and version not in {d.version for d in deploys}:
        raise NotFoundError(unknown_version_text(service.name, version, [d.version for d in deploys], policy.lookback))
    return _evaluate_all(sources, policy, [(service, deploys, version)], scan, now, progress)[0]


def evaluate_fleet(
    sources: Sources, services: Sequence[Service], policy: Policy, *, now: datetime | None = None, progress: Progress = None,
    discovered: DeployScan | None = None,
) -> list[Evaluation]:
    """Evaluate the latest release of every service, with one query per template per group; on the
    deploys `discovered` (by `discover` at `now`) when the caller has already read them (a page shows them
    while the releases are judged)."""
    now = now or datetime.now(UTC)
    _say(progress, f"reading the deploys of {len(services)} services")
    scan = discovered if discovered is not None else discover(sources, services, policy, now)
    requests: list[tuple[Service, list[Deploy], str | None]] = [(s, scan.by_service[s.name], None) for s in services]
    return _evaluate_all(sources, policy, requests, scan, now, progress)


def evaluate_releases(
    sources: Sources, service: Service, policy: Policy, *, now: datetime | None = None, progress: Progress = None
) -> list[Evaluation]:
    """Evaluate every release of one service seen in the lookback, newest first, in one batch."""
    now = now or datetime.now(UTC)
    _say(progress, f"reading the deploys of {service.name}")
    scan = discover(sources, [service], policy, now)
    deploys = scan.by_service[service.name]
    requests: list[tuple[Service, list[Deploy], str | None]] = [(service, deploys, d.version) for d in reversed(deploys)]
    requests = requests or [(service, deploys, None)]
    return _evaluate_all(sources, policy, requests, scan, now, progress)


def _say(progress: Progress, step: str) -> None:
    if progress is not None:
        progress(step)


def _evaluate_all(
    sources: Sources,
    policy: Policy,
    requests: Sequence[tuple[Service, list[Deploy], str | None]],
    scan: DeployScan,
    now: datetime,
    progress: Progress = None,
) -> list[Evaluation]:
    targets = [_target(sources, policy, scan.effective(service), deploys, version, now, scan) for service, deploys, version in requests]
    return [evaluation for evaluation, _ in judge_targets(sources, policy, targets, scan, now, progress)]


def target_of(sources: Sources, policy: Policy, service: Service, deploys: list[Deploy], version: str, now: datetime, scan: DeployScan) -> Target:
    """The release `version` of `service` with its windows, as an evaluation plans them (for a backtest)."""
    return _target(sources, policy, scan.effective(service), deploys, version, now, scan)


def judge_targets(
    sources: Sources, policy: Policy, targets: Sequence[Target], scan: DeployScan, now: datetime, progress: Progress = None,
) -> list[tuple[Evaluation, tuple[MetricInput, ...]]]:
    """Read and judge releases whose windows are planned (`targets`: releases, or the A/A pairs of a
    backtest), in one batch: each one's evaluation and the inputs its metrics were judged on."""
    judgeable = [t for t in targets if t.plan.candidate_window]
    not_a_risk = sources.marked_not_a_risk() if any(t.service.logs for t in judgeable) else frozenset()
    # The metrics and the logs are two servers: read at once, the logs cost no time beside the metrics.
    with_logs = any(t.service.logs is not None for t in judgeable)
    _say(progress, f"querying the metrics{' and the logs' if with_logs else ''} of {plural(len(judgeable), 'release')}")
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading_logs = pool.submit(fetch_logs, sources.logs, judgeable, policy.step)
        fetched = fetch_metrics(sources.metrics, judgeable, policy.step)
        logs = reading_logs.result()
    read = _Read(
        fetched, {id(t): logs[n] for n, t in enumerate(judgeable) if n in logs}, not_a_risk, sources.metrics.name,
        sources.service_names | {t.service.name for t in judgeable},
    )
    _say(progress, f"judging {plural(len(targets), 'release')}")
    return [_evaluation(t, policy, read, scan, now) for t in targets]


class _Read(NamedTuple):
    """What was read for a batch of releases: each template's series, each release's logs (by the target's
    id), the signatures marked not a risk, the name of the metric source (part of every fetch's key), and
    the service names log templates keep."""

    metrics: dict[FetchKey, Fetched]
    logs: dict[int, LogData]
    not_a_risk: frozenset[str]
    source: str
    service_names: frozenset[str] = frozenset()  # the catalogue's: never masked in a log template


def _target(
    sources: Sources, policy: Policy, service: Service, deploys: list[Deploy], version: str | None, now: datetime,
    scan: DeployScan,
) -> Target:
    if not deploys:
        return Target(service, None, WindowPlan(None, None, None, _why_no_version(service, policy, scan)))
    candidate = deploys[-1] if version is None else next(d for d in deploys if d.version == version)
    if not service.labels.version and policy.baseline is BaselinePolicy.CONCURRENT:
        problem = f"the metrics of {service.name} carry no version label, {CONCURRENT_NEEDS_A_VERSION}"
        return Target(service, candidate, WindowPlan(None, None, None, problem))
    return Target(service, candidate, plan(deploys, candidate, policy, now, _last_good(sources, candidate)))


def _last_good(sources: Sources, candidate: Deploy) -> str | None:
    """The newest earlier version the store judged PROMOTE (for the last-good baseline); None without a store."""
    if sources.store is None:
        return None
    return sources.store.last_good(candidate.service, before=candidate.started_at, excluding=candidate.version)


def _why_no_version(service: Service, policy: Policy, scan: DeployScan) -> str:
    """Why a service has no release to judge, saying what to fix: its preset's metrics are not there at
    all, or they carry no version and nothing else told one."""
    lookback = duration_text(policy.lookback)
    if service.name not in scan.seen:
        expected = promql.metric_names(service.templates.get("first_seen", "")) or ["(none)"]
        joined = (
            f", from pods kube-state-metrics knows (joined on {service.kubernetes.namespace_label}, "
            f"{service.kubernetes.pod_label})" if service.join and service.kubernetes else ""
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


def _evaluation(target: Target, policy: Policy, read: _Read, scan: DeployScan, now: datetime) -> tuple[Evaluation, tuple[MetricInput, ...]]:
    """One release's evaluation (INCONCLUSIVE with the reason when it has no windows, else judged) and
    the inputs judged."""
    plan, service = target.plan, target.service
    candidate_version = target.candidate.version if target.candidate else "(none)"
    baseline_version = plan.baseline.version if plan.baseline else "(none)"
    unjudged = Evaluation(
        service=service.name, candidate=target.candidate, baseline=plan.baseline, policy=policy.baseline,
        recommendation=Recommendation(Action.INCONCLUSIVE, plan.problem, baseline_version, candidate_version),
        evaluated_at=now, queries=scan.queries.get(service.name, ()), notes=scan.notes_of(service.name),
        baseline_description=plan.description,
    )
    if plan.problem or target.candidate is None or plan.baseline is None:
        return unjudged, ()
    requests = _requests(target, read.metrics, read.source)
    cuts: _Cuts = {}  # one cut per template, version and window: the latency metrics share their buckets
    inputs = [_metric_input(target, spec, read.metrics, read.source, cuts) for spec in service.metrics if spec.kind not in LOG_KINDS]
    logs = read.logs.get(id(target))
    protected = read.service_names | {service.name}
    evidence, samples = _log_side(target, logs, requests, read.not_a_risk, protected) if service.logs else (None, None)
    inputs += [_log_input(spec, evidence, samples, requests) for spec in service.metrics if spec.kind in LOG_KINDS]
    release_score, recommendation = judge(inputs, policy, baseline_version, candidate_version, _information(target, policy))
    if evidence is not None and not evidence.error:
        signatures = next((v.signatures for v in release_score.verdicts if v.metric in _signature_metrics(service)), ())
        evidence = dataclasses.replace(evidence, signatures=signatures)
    queries = tuple(dict.fromkeys(q for i in inputs for q in i.queries))
    return dataclasses.replace(
        unjudged, recommendation=recommendation, candidate_window=plan.candidate_window,
        baseline_window=plan.baseline_window, score=release_score, queries=unjudged.queries + queries, logs=evidence,
    ), tuple(inputs)


def _signature_metrics(service: Service) -> set[str]:
    return {m.name for m in service.metrics if m.kind is MetricKind.LOG_SIGNATURES}


def _information(target: Target, policy: Policy) -> float:
    """The share of the full window the candidate has been observed for."""
    window = target.plan.candidate_window
    return min(1.0, window.duration / policy.window) if window else 0.0


_Cuts = dict[tuple[str, str, Window], list[Series]]


def _metric_input(
    target: Target, spec: MetricSpec, fetched: dict[FetchKey, Fetched], source: str, cuts: _Cuts | None = None
) -> MetricInput:
    service, plan = target.service, target.plan
    results = {role: fetched[FetchKey.of(service, template, source)] for role, template in spec.queries.items()}
    errors = list(dict.fromkeys(r.error for r in results.values() if r.error))
    # The queries that read this service (a fleet's span may be split between two: fetch.split_span).
    queries = tuple(dict.fromkeys(q for r in results.values() for q in r.queries if not q.services or service.name in q.services))
    if errors:
        return MetricInput(spec=spec, queries=queries, error="; ".join(errors))
    partial = list(dict.fromkeys(r.partial for r in results.values() if r.partial))
    if partial:  # part of the data is no data: judged, it could pass a release on what was left
        return MetricInput(spec=spec, queries=queries, absent="no data, the source answered partly: " + "; ".join(partial))
    absent = _absent(service, spec, results)
    if absent and spec.optional:
        muted = dataclasses.replace(spec, muted=True)
        return MetricInput(spec=muted, queries=queries, absent=f"left out: {absent} (optional)")
    assert target.candidate is not None and plan.baseline is not None
    assert plan.baseline_window is not None and plan.candidate_window is not None
    absent = absent or _unproven_zero(service, spec, results, (plan.baseline.version, target.candidate.version))
    if absent:
        return MetricInput(spec=spec, queries=queries, absent=absent)
    sides = ((plan.baseline.version, plan.baseline_window), (target.candidate.version, plan.candidate_window))
    cuts = {} if cuts is None else cuts

    def window_of(role: str, result: Fetched, version: str, window: Window) -> list[Series]:
        key = (spec.queries[role], version, window)
        if key not in cuts:
            cuts[key] = cut(service, spec.queries[role], result, version, window)
        return cuts[key]

    baseline, candidate = (
        {role: window_of(role, r, version, window) for role, r in results.items()} for version, window in sides
    )
    window = plan.candidate_window  # the baseline window has the same length
    steps = round(window.duration / window.step)
    return MetricInput(spec=spec, baseline=baseline, candidate=candidate, queries=queries, expected_steps=steps)


def _unproven_zero(service: Service, spec: MetricSpec, results: dict[str, Fetched], versions: tuple[str, str]) -> str:
    """Why a ratio's numerator cannot be taken as zero: an absent series is no data unless the source shows
    it is zero. A numerator derived from the denominator's answer shows it (the same answer lists every
    status); one of a query of its own shows it only where that query has series of the version at all."""
    template = spec.queries.get("numerator")
    if spec.kind is not MetricKind.RATIO or template is None or template in service.derived:
        return ""
    unseen = [version for version in versions if not of_version(service, template, results["numerator"], version)]
    if not unseen:
        return ""
    return (
        f"no {template!r} series of {' or '.join(dict.fromkeys(unseen))} in the answer: an absent series is not "
        f"zero unless the source shows it (derive {template!r} from {spec.queries.get('denominator', 'the requests')!r}'s "
        "answer: derived:, as the presets do)"
    )


def _absent(service: Service, spec: MetricSpec, results: dict[str, Fetched]) -> str:
    """"no data for preset X: expected metric Y" when a query the metric needs returned no series of the
    service at all (in either window, any version): the metric is not exposed as the preset expects."""
    for role, result in results.items():
        if role not in EXPOSED_ROLES or has_service(service, result):
            continue
        template = spec.queries[role]
        source = service.derived[template].source if template in service.derived else template
        names = promql.metric_names(service.templates[source]) or [template]
        whose = f"template {template!r}" if template in service.own_templates else f"preset {service.preset}"
        return f"no data for {whose}: expected metric {' and '.join(names)} with {service.labels.service}={promql.quote(service.name)}"
    return ""


# ---- logs ---------------------------------------------------------------------------------------------


def _requests(target: Target, fetched: dict[FetchKey, Fetched], source: str) -> tuple[list[Series], list[Series], Fetched] | None:
    """The requests per step of both windows, from the metrics already fetched; None if they failed."""
    service, plan = target.service, target.plan
    if "requests" not in service.templates or target.candidate is None or plan.baseline is None:
        return None
    result = fetched.get(FetchKey.of(service, "requests", source))
    if result is None or result.error or plan.baseline_window is None or plan.candidate_window is None:
        return None
    return (
        cut(service, "requests", result, plan.baseline.version, plan.baseline_window),
        cut(service, "requests", result, target.candidate.version, plan.candidate_window),
        result,
    )


def _log_side(
    target: Target, logs: LogData | None, requests: tuple[list[Series], list[Series], Fetched] | None,
    not_a_risk: frozenset[str],
    protected: frozenset[str] = frozenset(),
) -> tuple[LogEvidence, LogSamples | None]:
    """Both windows' log data (its signatures come from the judge), and what the signature comparison needs."""
    if logs is None or logs.error or logs.baseline is None or logs.candidate is None:
        error = (logs.error if logs else "") or "no log data"
        return LogEvidence(None, None, queries=logs.queries if logs else (), error=error), None
    sides = (logs.baseline, logs.candidate)
    per_request = requests is not None and all(sum(s.values.sum() for s in side) > 0 for side in requests[:2])
    if per_request:
        assert requests is not None
        exposures = [float(sum(s.values.sum() for s in side)) for side in requests[:2]]
    else:
        exposures = [sum(d.total(level) for level in d.levels) for d in sides]
    basis = "requests" if per_request else "log lines"
    totals = tuple(
        SideTotals(len(d.sample), d.sampled_from, e, basis, len(d.info_sample), d.info_sampled_from)
        for d, e in zip(sides, exposures, strict=True)
    )
    callers = (logs.callers[0], logs.callers[1]) if logs.callers[0] and logs.callers[1] else None
    caller_totals = (
        (SideTotals(len(callers[0].sample), callers[0].sampled_from, exposures[0], basis),
         SideTotals(len(callers[1].sample), callers[1].sampled_from, exposures[1], basis))
        if callers is not None else None
    )
    samples = LogSamples(
        baseline=logs.baseline.sample + logs.baseline.info_sample, candidate=logs.candidate.sample + logs.candidate.info_sample,
        totals=(totals[0], totals[1]), not_a_risk=not_a_risk, protected=protected,
        history=logs.history.sample if logs.history is not None else (),
        callee=(target.service.logs.service if target.service.logs else "") or target.service.name,
        callers=(callers[0].sample, callers[1].sample) if callers is not None else ((), ()), caller_totals=caller_totals,
    )
    return LogEvidence(logs.baseline, logs.candidate, (), basis, logs.queries), samples


def _log_input(
    spec: MetricSpec, evidence: LogEvidence | None, samples: LogSamples | None,
    requests: tuple[list[Series], list[Series], Fetched] | None,
) -> MetricInput:
    if evidence is None or evidence.error or evidence.baseline is None or evidence.candidate is None:
        return MetricInput(
            spec=spec, queries=evidence.queries if evidence else (), error=evidence.error if evidence else "no log source"
        )
    sides = (evidence.baseline, evidence.candidate)
    lines = [{"lines": list(d.levels.values())} for d in sides]
    if spec.kind is MetricKind.LOG_SIGNATURES:
        return MetricInput(spec=spec, baseline=lines[0], candidate=lines[1], queries=evidence.queries, samples=samples)
    queries = evidence.queries
    if evidence.rate_basis == "requests" and requests is not None:
        denominators = (requests[0], requests[1])
        queries += (requests[2].query,)
    else:
        denominators = (lines[0]["lines"], lines[1]["lines"])
    numerators = [[d.levels["error"]] if "error" in d.levels else [] for d in sides]
    return MetricInput(
        spec=spec,
        baseline={"numerator": numerators[0], "denominator": denominators[0]},
        candidate={"numerator": numerators[1], "denominator": denominators[1]},
        queries=queries,
    )
