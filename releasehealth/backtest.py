"""Backtests: the current configuration replayed over a period of the team's own history.

Two kinds of trials, judged exactly as `evaluate` judges a release (releasehealth.evaluate.judge_targets):

- every **release** deployed in the period, against its baseline under the configured policy;
- **A/A pairs**: two windows of the configured length in the life of one version, with no deploy in or
  between them, so that nothing changed: every HOLD or ROLLBACK of such a pair is a false alarm. Adjacent
  pairs put the candidate window right after the baseline's; time-shifted pairs put the baseline the
  policy's `baseline_shift` (a day) earlier, the same clock time, as the time-shifted baseline does. The
  slots of a day are spread evenly over it and move by SLOT_DRIFT every day, so that a month of pairs
  covers every time of day (traffic at night is not traffic at noon).

Each trial also records, for each metric, the smallest multiple of its tolerance (TOLERANCE_STEPS) at which
it would have passed, and, for a release, what its recommendation would have been with that one metric's
tolerance at each step: what releasehealth.calibration turns into measured false-alarm rates and suggested
tolerances. The period is read one UTC day at a time (one query per template per span of the day: its
windows, and the day before for time-shifted baselines), each day stored as done in the history store
when there is one, so that an interrupted backtest resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import ValidationError

from releasehealth.calibration import (
    CONFIGURED,
    TOLERANCE_STEPS,
    Calibration,
    Skipped,
    Trial,
    TrialKind,
    calibration_to_dict,
    summarize,
    trial_from_dict,
    trial_to_dict,
)
from releasehealth.deploys import DeployScan, discover
from releasehealth.errors import ConfigError, NotFoundError
from releasehealth.evaluate import judge_targets, target_of
from releasehealth.fetch import Target
from releasehealth.format import duration_text, plural
from releasehealth.model import Action, Classification, Deploy, MetricKind, Policy, Service, Tolerance, Window
from releasehealth.scoring import FAILING, metric_shares, reclassify, recommend, score
from releasehealth.sources import Sources
from releasehealth.verdicts import Evaluation, MetricInput, MetricVerdict
from releasehealth.windows import WindowPlan, ceil_to

SLOT_DRIFT = timedelta(minutes=97)  # prime to an hour: a month of days puts the slots at every time of day
DAY = timedelta(days=1)


@dataclass(frozen=True)
class BacktestSettings:
    """What to replay: the period, the services (all when empty), how many A/A pairs of each kind per
    service and day, a step other than the policy's (coarser: fewer points to read), a query budget."""

    since: datetime
    until: datetime
    services: tuple[str, ...] = ()
    pairs_per_day: int = 4
    time_shifted: bool = True
    step: timedelta | None = None
    max_queries: int | None = None

    def days(self) -> list[date]:
        first, last = self.since.date(), (self.until - timedelta(microseconds=1)).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass
class DayPlan:
    day: date
    targets: list[tuple[TrialKind, Target]] = field(default_factory=list)


@dataclass
class Plan:
    """Every trial of the period by day, what was skipped, and the deploy scan they were planned on."""

    scan: DeployScan
    policy: Policy
    end: datetime  # of the period: the time the deploy scan and every evaluation are as of
    services: list[Service]
    days: list[DayPlan]
    skipped: list[Skipped]
    notes: list[str]
    reverted: list[Deploy]  # releases the deploy history shows rolled back: incidents


Progress = Callable[[date, int, int], None] | None  # (day done, days done, days in all)


def digest(settings: BacktestSettings, policy: Policy, services: Sequence[Service]) -> str:
    """What identifies a backtest for resuming: its settings (but the query budget, which only says how
    far one run goes) and the configuration it judges with."""
    text = repr((dataclasses.astuple(dataclasses.replace(settings, max_queries=None)), policy, [(s.name, s.metrics, s.templates, s.labels) for s in services]))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def selected(services: Sequence[Service], names: Sequence[str]) -> list[Service]:
    """The services named (all when none is), or NotFoundError naming every unknown one."""
    if not names:
        return list(services)
    known = {s.name: s for s in services}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise NotFoundError(f"unknown service(s): {', '.join(unknown)} (configured: {', '.join(known) or 'none'})")
    return [known[n] for n in dict.fromkeys(names)]


def backtest_policy(policy: Policy, settings: BacktestSettings) -> Policy:
    """The policy judged with (its step replaced when asked) and the deploy scan's lookback: the period
    and the windows before it a first release's baseline needs."""
    step = settings.step or policy.step
    if settings.until <= settings.since:
        raise ConfigError("--since", [f"the period is empty: {settings.since.isoformat()} is not before {settings.until.isoformat()}"])
    reach = settings.until - settings.since + policy.window + policy.warmup + (policy.baseline_shift if settings.time_shifted else timedelta())
    steps = int(reach / step) + 1
    try:
        return dataclasses.replace(policy, step=step, lookback=reach, max_lookback_steps=max(policy.max_lookback_steps, steps))
    except ValidationError as exc:  # the policy's own checks of the step against the window and the lookback
        raise ConfigError("--step", [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()]) from None


def plan(sources: Sources, services: Sequence[Service], policy: Policy, settings: BacktestSettings) -> Plan:
    """Find the period's deploys (one scan of it, in two stages) and lay out every trial day by day."""
    judged = backtest_policy(policy, settings)
    scan = discover(sources, services, judged, settings.until)
    days = {day: DayPlan(day) for day in settings.days()}
    skipped: list[Skipped] = []
    notes: list[str] = []
    reverted: list[Deploy] = []
    for service in services:
        deploys = scan.by_service.get(service.name, [])
        if service.name not in scan.seen:
            skipped.append(Skipped(service.name, None, "no data in the period (a service renamed, or not deployed yet)"))
            continue
        lives, reused, rolled_back = _lives(deploys, settings.until)
        notes += reused
        reverted += [d for d in rolled_back if settings.since <= d.started_at < settings.until]
        for deploy in deploys:
            if not settings.since <= deploy.started_at < settings.until:
                continue
            target = target_of(sources, judged, service, deploys, deploy.version, settings.until, scan)
            day = days[deploy.started_at.date()]
            if target.plan.problem:
                why = _general(target.plan.problem).replace(service.name, "the service")
                skipped.append(Skipped(service.name, day.day, f"release not judged: {why}"))
            else:
                day.targets.append((TrialKind.RELEASE, target))
        for day in days.values():
            for kind, target_or_why in _pairs(scan.effective(service), lives, judged, settings, day.day):
                if isinstance(target_or_why, str):
                    skipped.append(Skipped(service.name, day.day, target_or_why))
                else:
                    day.targets.append((kind, target_or_why))
    if judged.step != policy.step:
        notes.append(
            f"read at a step of {duration_text(judged.step)}, coarser than the policy's {duration_text(policy.step)}: "
            "fewer points a window, less power than a release judged live"
        )
    if not any(t for d in days.values() for k, t in d.targets if k is TrialKind.RELEASE):
        notes.append(f"no release was deployed in the period: {plural(len(services), 'service')} checked on A/A pairs only")
    return Plan(scan, judged, settings.until, list(services), list(days.values()), skipped, notes, reverted)


def _general(problem: str) -> str:
    """A window plan's problem without its particulars, to group like problems ("too early: ...")."""
    return problem.split(":", 1)[0] if problem.startswith(("too early", "the baseline")) else problem


@dataclass(frozen=True)
class _Life:
    """Where one version served without another deploy: its deploy, from after its warm-up to its end."""

    deploy: Deploy
    start: datetime
    end: datetime


def _lives(deploys: Sequence[Deploy], until: datetime) -> tuple[list[_Life], list[str], list[Deploy]]:
    """Each version's life between its deploy and the next one (or its last sample); a version seen again
    after a later deploy keeps only its first life, and is noted; and the deploys that were reverted: the
    version right after one seen again, once that one served again (a rollback, in the deploy history)."""
    ordered = sorted(deploys, key=lambda d: d.started_at)
    lives, notes, reverted = [], [], []
    for n, deploy in enumerate(ordered):
        later = ordered[n + 1].started_at if n + 1 < len(ordered) else until
        if deploy.last_seen is not None and n + 1 < len(ordered) and deploy.last_seen > later:
            notes.append(
                f"{deploy.service} {deploy.version} served again after {ordered[n + 1].version} was deployed (a rollback, "
                "or a version reused): only its first life is used for A/A pairs"
            )
            reverted.append(ordered[n + 1])
        lives.append(_Life(deploy, deploy.started_at, min(later, deploy.last_seen or until)))
    return lives, notes, reverted


def _pairs(
    service: Service, lives: Sequence[_Life], policy: Policy, settings: BacktestSettings, day: date,
) -> Iterator[tuple[TrialKind, Target | str]]:
    """The day's A/A pairs of one service: settings.pairs_per_day slots spread over the day, each an
    adjacent pair and (when asked) a time-shifted one; a slot that cannot hold one is skipped, saying why."""
    if settings.pairs_per_day <= 0:
        return
    spacing = DAY / settings.pairs_per_day
    midnight = datetime.combine(day, time(), UTC)
    drift = (SLOT_DRIFT * (day - settings.since.date()).days) % spacing
    length, warmup, step = policy.window, policy.warmup, policy.step
    kinds = [TrialKind.ADJACENT] + ([TrialKind.SHIFTED] if settings.time_shifted else [])
    for slot in range(settings.pairs_per_day):
        candidate_start = ceil_to(midnight + slot * spacing + drift, step)
        for kind in kinds:
            baseline_start = candidate_start - length if kind is TrialKind.ADJACENT else candidate_start - policy.baseline_shift
            if baseline_start < settings.since or candidate_start + length > settings.until:
                continue  # outside the period: not a trial at all
            life = next((x for x in lives if x.start + warmup <= baseline_start and candidate_start + length <= x.end), None)
            if life is None:
                yield kind, _why_no_pair(lives, baseline_start, candidate_start + length, warmup)
                continue
            deploy = life.deploy
            windows = Window(baseline_start, baseline_start + length, step), Window(candidate_start, candidate_start + length, step)
            described = f"A/A: {deploy.version} {duration_text(candidate_start - baseline_start)} earlier"
            yield kind, Target(service, deploy, WindowPlan(deploy, *windows, description=described))


def _why_no_pair(lives: Sequence[_Life], start: datetime, end: datetime, warmup: timedelta) -> str:
    inside = [x for x in lives if start < x.start + warmup < end or start < x.start < end]
    if inside:
        return "A/A slot not used: a deploy (or its warm-up) falls in or between the windows"
    return "A/A slot not used: no version was seen serving there (a gap in the history)"


def run_day(sources: Sources, work: Plan, day: DayPlan) -> tuple[list[Trial], int]:
    """Judge one day's trials in one batch; the trials and the number of queries they took."""
    if not day.targets:
        return [], 0
    judged = judge_targets(sources, work.policy, [t for _, t in day.targets], work.scan, work.end)
    scanned = {q for qs in work.scan.queries.values() for q in qs}
    queries = {q for evaluation, _ in judged for q in evaluation.queries if q not in scanned}
    trials = [_trial(kind, e, inputs, work.policy) for (kind, _), (e, inputs) in zip(day.targets, judged, strict=True)]
    return trials, len(queries)


def _trial(kind: TrialKind, evaluation: Evaluation, inputs: Sequence[MetricInput], policy: Policy) -> Trial:
    assert evaluation.candidate is not None and evaluation.baseline_window is not None and evaluation.candidate_window is not None
    verdicts = evaluation.score.verdicts if evaluation.score is not None else ()
    counted = [v for v in verdicts if not v.muted]
    failing = tuple(v.metric for v in counted if v.classification in FAILING)
    unjudged = tuple(v.metric for v in counted if v.classification in (Classification.NODATA, Classification.ERROR))
    shares = metric_shares([i.spec for i in inputs], policy)
    by_name = {i.spec.name: i for i in inputs}
    quiet_from, stepped = {}, {}
    for verdict in counted:
        item = by_name.get(verdict.metric)
        if item is None or verdict.metric in unjudged or item.spec.kind is MetricKind.LOG_SIGNATURES or not _scalable(item.spec.tolerance):
            continue  # log signatures are judged on counts and novelty, not against a tolerance
        quiet_from[verdict.metric], stepped[verdict.metric] = _quiet_from(item, verdict, policy, shares[verdict.metric])
    actions = {}
    if kind is TrialKind.RELEASE and evaluation.score is not None:
        weights = {i.spec.name: i.spec.weight for i in inputs}
        for metric, at_steps in stepped.items():
            actions[metric] = tuple(_action_with(evaluation, metric, v, policy, weights) for v in at_steps)
    return Trial(
        kind, evaluation.service, evaluation.candidate.version, evaluation.recommendation.baseline,
        evaluation.baseline_window.start, evaluation.candidate_window.start, evaluation.candidate_window.duration,
        evaluation.recommendation.action, evaluation.recommendation.reason[:500], failing, unjudged, quiet_from,
        {m: a for m, a in actions.items() if any(x is not evaluation.recommendation.action for x in a)},
        sum(v.baseline.invalid + v.candidate.invalid for v in counted),
    )


def _scalable(tolerance: Tolerance | None) -> bool:
    return tolerance is not None and (tolerance.relative > 0 or tolerance.absolute > 0)


def _quiet_from(item: MetricInput, verdict: MetricVerdict, policy: Policy, share: float) -> tuple[int, list[MetricVerdict]]:
    """The first step of TOLERANCE_STEPS the metric passes at, and its verdict at every step: judged at
    the configured step, by `reclassify` at the others until the answer is known (a larger tolerance
    never fails what a smaller one passes: a pass at half the tolerance settles the smaller steps, and a
    failure is bisected over the larger ones)."""
    tolerance = item.spec.tolerance
    at: dict[int, MetricVerdict] = {CONFIGURED: verdict}

    def verdict_at(index: int) -> MetricVerdict:
        if index not in at:
            multiple = TOLERANCE_STEPS[index]
            at[index] = reclassify(item, policy, share, Tolerance(relative=tolerance.relative * multiple, absolute=tolerance.absolute * multiple))
        return at[index]

    if verdict.classification in FAILING:  # bisect the steps above: fails at `low`, passes at `high` (or none)
        low, high = CONFIGURED, len(TOLERANCE_STEPS)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if verdict_at(middle).classification in FAILING else (low, middle)
        first = high
    elif verdict_at(0).classification not in FAILING:
        first = 0
    else:
        first = next((i for i in range(1, CONFIGURED) if verdict_at(i).classification not in FAILING), CONFIGURED)
    failed = next((at[i] for i in sorted(at) if at[i].classification in FAILING), verdict)
    passed = next((at[i] for i in sorted(at) if at[i].classification not in FAILING), verdict)
    return first, [failed if i < first else passed for i in range(len(TOLERANCE_STEPS))]


def _action_with(evaluation: Evaluation, metric: str, replaced: MetricVerdict, policy: Policy, weights: dict[str, float]) -> Action:
    """The release's recommendation had `metric` been judged `replaced` (the others as they were)."""
    assert evaluation.score is not None
    verdicts = [replaced if v.metric == metric else v for v in evaluation.score.verdicts]
    rescored = score(verdicts, weights, policy.group_weights)
    return recommend(rescored, policy, evaluation.recommendation.baseline, evaluation.recommendation.candidate).action


@dataclass
class Replay:
    """What a backtest run judged: its trials (the days resumed included), its plan, the queries the days
    took, and whether every day is done (False: the query budget stopped it; run it again to go on)."""

    trials: list[Trial]
    plan: Plan
    queries: int
    days_done: int
    complete: bool
    backtest_id: int | None = None


def replay(
    sources: Sources, services: Sequence[Service], policy: Policy, settings: BacktestSettings, *,
    progress: Progress = None, now: datetime | None = None, keep: bool = True,
) -> Replay:
    """Plan the period's trials and judge them day by day; with a history store (and `keep`), each day is
    stored as it is done, and a run of the same settings and configuration that stopped before the end is
    resumed. settings.max_queries bounds the queries of this run (the days resumed cost none)."""
    work = plan(sources, services, policy, settings)
    store = sources.store if keep else None
    backtest_id: int | None = None
    done: dict[str, tuple[list[Any], int]] = {}
    if store is not None:
        backtest_id, done = store.start_backtest(
            digest(settings, work.policy, services), settings_to_dict(settings), now or datetime.now(UTC)
        )
    trials: list[Trial] = []
    queries, spent, days_done, complete = 0, 0, 0, True
    for day in work.days:
        if day.day.isoformat() in done:
            stored, ran = done[day.day.isoformat()]
            trials += [trial_from_dict(t) for t in stored]
        else:
            if settings.max_queries is not None and spent >= settings.max_queries:
                complete = False
                break
            judged, ran = run_day(sources, work, day)
            spent += ran
            trials += judged
            if store is not None and backtest_id is not None:
                store.save_backtest_day(backtest_id, day.day.isoformat(), [trial_to_dict(t) for t in judged], ran, now or datetime.now(UTC))
        queries += ran
        days_done += 1
        if progress is not None:
            progress(day.day, days_done, len(work.days))
    return Replay(trials, work, queries, days_done, complete, backtest_id)


def settings_to_dict(settings: BacktestSettings) -> dict[str, Any]:
    return {
        "since": settings.since.isoformat(), "until": settings.until.isoformat(), "services": list(settings.services),
        "pairs_per_day": settings.pairs_per_day, "time_shifted": settings.time_shifted,
        "step_seconds": settings.step.total_seconds() if settings.step else None, "max_queries": settings.max_queries,
    }


def calibrate(
    sources: Sources, services: Sequence[Service], policy: Policy, settings: BacktestSettings, *,
    progress: Progress = None, now: datetime | None = None, incidents: Sequence[tuple[str, str, str]] = (),
    compare: tuple[Sources, Sequence[Service], Policy] | None = None,
) -> tuple[Calibration, Replay]:
    """Replay the period (resuming a stopped run of the same settings) and summarize it: false-alarm
    rates, suggested tolerances, the incidents given (and those the history shows: releases watch mode
    rolled back, versions reverted in the deploy history), and with `compare` (another configuration's
    sources, services and policy) the releases it would judge otherwise. A finished run is stored."""
    done = replay(sources, services, policy, settings, progress=progress, now=now)
    compared = None
    if compare is not None:
        other_sources, other_services, other_policy = compare
        releases_only = dataclasses.replace(settings, pairs_per_day=0)
        compared = replay(other_sources, other_services, other_policy, releases_only, now=now, keep=False).trials
    shares: dict[str, float] = {}
    tolerances: dict[str, Tolerance] = {}
    for service in services:
        counted = {spec.name for spec in service.metrics if not spec.muted}  # muted ones are shown, never judged on
        for name, share in metric_shares(service.metrics, done.plan.policy).items():
            if name in counted:
                shares[name] = min(share, shares.get(name, share))
        for spec in service.metrics:
            if spec.name in counted and spec.kind is not MetricKind.LOG_SIGNATURES and _scalable(spec.tolerance):
                tolerances.setdefault(spec.name, spec.tolerance)
    summary = summarize(
        done.trials, since=settings.since, until=settings.until, services=[s.name for s in services],
        alpha=done.plan.policy.alpha, hold_alpha=done.plan.policy.hold_alpha, shares=shares, tolerances=tolerances,
        skipped=done.plan.skipped, notes=done.plan.notes, incidents=_known_incidents(sources, done.plan, settings, incidents),
        compared=compared, queries=done.queries, days=done.days_done, complete=done.complete,
    )
    if sources.store is not None and done.backtest_id is not None and done.complete:
        sources.store.finish_backtest(done.backtest_id, calibration_to_dict(summary), now or datetime.now(UTC))
    return summary, done


def _known_incidents(
    sources: Sources, work: Plan, settings: BacktestSettings, given: Sequence[tuple[str, str, str]],
) -> list[tuple[str, str, str]]:
    """The incidents given, then the releases watch mode rolled back in the period, then those the deploy
    history shows reverted; each release once, named by the first that knows it."""
    names = {s.name for s in work.services}
    known = list(given)
    if sources.store is not None:
        known += [(s, v, "rolled back by watch mode") for s, v, at, _, _ in sources.store.rollbacks()
                  if s in names and settings.since <= at < settings.until]
    known += [(d.service, d.version, "reverted in the deploy history") for d in work.reverted]
    first: dict[tuple[str, str], tuple[str, str, str]] = {}
    for service, version, source in known:
        first.setdefault((service, version), (service, version, source))
    return list(first.values())
