"""What a backtest's trials say about a configuration: measured false-alarm rates, suggested tolerances,
the incidents it would have caught, and the releases another configuration would judge otherwise.

An A/A pair compares a version with itself, so every HOLD or ROLLBACK it gets on its data (a metric failing)
is a false alarm; a pair held only because data was missing is no measurement, and is counted apart. The
rate comes with its Clopper-Pearson interval (exact for a binomial count: Clopper & Pearson, Biometrika 26,
1934), next to what the configuration promises: a release's false ROLLBACKs are kept under policy.alpha
and its false HOLDs, by the metrics that can only hold it, under policy.hold_alpha (scoring.judging), each
metric getting its Bonferroni share of its family's budget. Pairs of one service and day share traffic
and history, so the interval, which takes them as independent, is the narrowest the data allows, not a
guarantee.

A metric's suggested tolerance is the smallest multiple of its configured one (backtest.TOLERANCE_STEPS)
whose A/A false-alarm rate is at most the metric's share: a larger tolerance buys quiet with power, so the
smallest that is quiet enough is the one to take, and what it would have changed on the period's real
releases is shown beside it. A tolerance tighter than the configured one is suggested only when the pairs
show it quiet with confidence (the interval's upper end within the share): a handful of quiet pairs
proves nothing about a rate of 0.2%, and tightening on them would trade the configuration's promise for
power nobody measured.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from scipy.stats import beta

from releasehealth.errors import ConfigError
from releasehealth.model import Action, Tolerance

CONFIDENCE = 0.95
# The multiples of each metric's tolerance tried (CONFIGURED: as configured): fine steps around it, and
# up to a hundredfold for a tolerance set far too tight (0.1% on a gauge that drifts 5% in an hour).
TOLERANCE_STEPS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
CONFIGURED = TOLERANCE_STEPS.index(1.0)


class TrialKind(StrEnum):
    RELEASE = "release"
    ADJACENT = "A/A adjacent"
    SHIFTED = "A/A time-shifted"


@dataclass(frozen=True)
class Trial:
    """One judged window pair and what each tolerance would have made of it."""

    kind: TrialKind
    service: str
    version: str
    baseline_version: str
    baseline_start: datetime
    candidate_start: datetime
    window: timedelta
    action: Action
    reason: str
    failing: tuple[str, ...] = ()  # the counted metrics that failed
    unjudged: tuple[str, ...] = ()  # the counted metrics without a verdict (no data, error)
    # Per counted metric judged: the index in TOLERANCE_STEPS from which on it passes (0: at every step
    # tried; len(TOLERANCE_STEPS): at none). A larger tolerance never fails what a smaller one passes.
    quiet_from: dict[str, int] = field(default_factory=dict)
    # Releases only: per metric whose verdict a step changes, the recommendation at each step.
    actions: dict[str, tuple[Action, ...]] = field(default_factory=dict)
    dropped: int = 0  # steps left out of its windows (counter resets, NaN, negative or out-of-range values)

    @property
    def is_pair(self) -> bool:
        return self.kind is not TrialKind.RELEASE

    @property
    def judged(self) -> bool:
        """Judged on its data: not INCONCLUSIVE, and not held for missing data alone."""
        return self.action is not Action.INCONCLUSIVE and (bool(self.failing) or not self.unjudged)


@dataclass(frozen=True)
class Skipped:
    """A trial not run, and why (grouped by `why` in the output)."""

    service: str
    day: date | None
    why: str




@dataclass(frozen=True)
class Rate:
    """`events` of `trials`, with its Clopper-Pearson interval at CONFIDENCE."""

    events: int
    trials: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        return self.events / self.trials if self.trials else None


def rate(events: int, trials: int, confidence: float = CONFIDENCE) -> Rate:
    if trials <= 0:
        return Rate(0, 0, 0.0, 1.0)
    tail = (1 - confidence) / 2
    low = float(beta.ppf(tail, events, trials - events + 1)) if events > 0 else 0.0
    high = float(beta.ppf(1 - tail, events + 1, trials - events)) if events < trials else 1.0
    return Rate(events, trials, low, high)


@dataclass(frozen=True)
class ReleaseChange:
    service: str
    version: str
    before: Action
    after: Action


@dataclass(frozen=True)
class MetricCalibration:
    """One metric's A/A false alarms at each tolerance tried, the suggestion, and what it would change."""

    metric: str
    share: float  # its share of the false-alarm budget: the target of its A/A rate
    tolerance: Tolerance  # as configured
    rates: tuple[Rate, ...]  # at each of TOLERANCE_STEPS
    suggested: int | None  # index of the smallest step whose rate is within the share (None: none is)
    changes: tuple[ReleaseChange, ...] = ()  # real releases the suggested tolerance would judge otherwise

    @property
    def configured(self) -> Rate:
        return self.rates[CONFIGURED]

    @property
    def noisy(self) -> bool:
        """Credibly above its share at the configured tolerance: its interval lies above it."""
        return self.configured.trials > 0 and self.configured.low > self.share

    def tolerance_at(self, index: int) -> Tolerance:
        multiple = TOLERANCE_STEPS[index]
        return Tolerance(relative=self.tolerance.relative * multiple, absolute=self.tolerance.absolute * multiple)


@dataclass(frozen=True)
class Incident:
    """A release known to have gone wrong, and what the configuration made of it."""

    service: str
    version: str
    source: str  # where it is known from: "incidents file", "rolled back by watch mode", "reverted"
    action: Action | None  # None: not judged in the period (not deployed in it, or skipped)
    why: str = ""

    @property
    def caught(self) -> bool:
        return self.action is Action.ROLLBACK

    @property
    def held(self) -> bool:
        return self.action is Action.HOLD


@dataclass(frozen=True)
class Calibration:
    """Everything a backtest reports."""

    since: datetime
    until: datetime
    services: tuple[str, ...]
    alpha: float
    hold_alpha: float
    false_alarms: Rate  # judged A/A pairs held or rolled back
    false_rollbacks: Rate
    by_kind: Mapping[TrialKind, Rate]
    unjudged_pairs: int  # pairs held or inconclusive for missing data alone
    metrics: tuple[MetricCalibration, ...]
    releases: tuple[Trial, ...]
    skipped: Mapping[str, int]  # why -> how many
    notes: tuple[str, ...] = ()
    incidents: tuple[Incident, ...] = ()
    compared: tuple[ReleaseChange, ...] | None = None  # None: no other configuration compared
    queries: int = 0
    days: int = 0
    complete: bool = True  # False: stopped by the query budget; run again to go on
    tuned_false_alarms: Rate | None = None  # the A/A rate had every metric its suggested tolerance


def summarize(
    trials: Sequence[Trial],
    *,
    since: datetime,
    until: datetime,
    services: Sequence[str],
    alpha: float,
    hold_alpha: float,
    shares: Mapping[str, float],
    tolerances: Mapping[str, Tolerance],
    skipped: Iterable[Skipped] = (),
    notes: Sequence[str] = (),
    incidents: Sequence[tuple[str, str, str]] = (),
    compared: Sequence[Trial] | None = None,
    queries: int = 0,
    days: int = 0,
    complete: bool = True,
) -> Calibration:
    """The calibration of one backtest from its trials; `compared`: the same period's releases under
    another configuration; `incidents`: (service, version, where it is known from)."""
    pairs = [t for t in trials if t.is_pair]
    judged = [t for t in pairs if t.judged]
    releases = tuple(sorted((t for t in trials if not t.is_pair), key=lambda t: (t.candidate_start, t.service)))
    metrics = tuple(
        _metric(name, pairs, releases, shares[name], tolerances[name]) for name in sorted(shares) if name in tolerances
    )
    quiet = {m.metric: m.suggested for m in metrics}
    tuned = sum(
        any(t.quiet_from.get(name, 0) > (index if index is not None else len(TOLERANCE_STEPS) - 1) for name, index in quiet.items())
        for t in judged
    )
    return Calibration(
        since=since, until=until, services=tuple(services), alpha=alpha, hold_alpha=hold_alpha,
        false_alarms=rate(sum(bool(t.failing) for t in judged), len(judged)),
        false_rollbacks=rate(sum(t.action is Action.ROLLBACK for t in judged), len(judged)),
        by_kind={kind: rate(sum(bool(t.failing) for t in judged if t.kind is kind), sum(t.kind is kind for t in judged))
                 for kind in (TrialKind.ADJACENT, TrialKind.SHIFTED) if any(t.kind is kind for t in pairs)},
        unjudged_pairs=len(pairs) - len(judged), metrics=metrics, releases=releases,
        skipped=dict(Counter(s.why for s in skipped).most_common()), notes=tuple(notes) + _dropped_note(trials),
        incidents=tuple(_incident(service, version, source, releases) for service, version, source in incidents),
        compared=None if compared is None else _changes(releases, compared), queries=queries, days=days, complete=complete,
        tuned_false_alarms=rate(tuned, len(judged)) if metrics else None,
    )


def _dropped_note(trials: Sequence[Trial]) -> tuple[str, ...]:
    """What the windows lost to bad data: each trial was judged on the rest of its steps."""
    touched = [t for t in trials if t.dropped]
    if not touched:
        return ()
    steps = sum(t.dropped for t in touched)
    return (
        f"{steps} step(s) left out of the windows of {len(touched)} trial(s) (counter resets, NaN, negative or "
        "out-of-range values): each judged on the rest of its steps",
    )


def _metric(name: str, pairs: Sequence[Trial], releases: Sequence[Trial], share: float, tolerance: Tolerance) -> MetricCalibration:
    steps = [t.quiet_from[name] for t in pairs if t.judged and name in t.quiet_from]
    rates = tuple(rate(sum(step > index for step in steps), len(steps)) for index in range(len(TOLERANCE_STEPS)))
    suggested = next((i for i, r in enumerate(rates) if r.trials and (r.high if i < CONFIGURED else r.events / r.trials) <= share), None)
    changes: tuple[ReleaseChange, ...] = ()
    if suggested is not None and suggested != CONFIGURED:
        changes = tuple(
            ReleaseChange(t.service, t.version, t.action, t.actions[name][suggested])
            for t in releases if name in t.actions and t.actions[name][suggested] is not t.action
        )
    return MetricCalibration(name, share, tolerance, rates, suggested if steps else None, changes)


def _incident(service: str, version: str, source: str, releases: Sequence[Trial]) -> Incident:
    found = next((t for t in releases if t.service == service and t.version == version), None)
    if found is None:
        return Incident(service, version, source, None, "not deployed in the period, or not judged (see skipped)")
    return Incident(service, version, source, found.action, found.reason)


def _changes(releases: Sequence[Trial], other: Sequence[Trial]) -> tuple[ReleaseChange, ...]:
    theirs = {(t.service, t.version): t.action for t in other if not t.is_pair}
    return tuple(
        ReleaseChange(t.service, t.version, t.action, theirs[(t.service, t.version)])
        for t in releases if (t.service, t.version) in theirs and theirs[(t.service, t.version)] is not t.action
    )


def trial_to_dict(trial: Trial) -> dict[str, Any]:
    return {
        "kind": trial.kind.value, "service": trial.service, "version": trial.version, "baseline_version": trial.baseline_version,
        "baseline_start": trial.baseline_start.isoformat(), "candidate_start": trial.candidate_start.isoformat(),
        "window_seconds": trial.window.total_seconds(), "action": trial.action.value, "reason": trial.reason,
        "failing": list(trial.failing), "unjudged": list(trial.unjudged), "quiet_from": trial.quiet_from,
        "actions": {metric: [a.value for a in actions] for metric, actions in trial.actions.items()},
        "dropped": trial.dropped,
    }


def trial_from_dict(d: dict[str, Any]) -> Trial:
    """A trial as trial_to_dict wrote it (the store's days of a backtest being resumed)."""
    return Trial(
        TrialKind(d["kind"]), d["service"], d["version"], d["baseline_version"],
        datetime.fromisoformat(d["baseline_start"]), datetime.fromisoformat(d["candidate_start"]),
        timedelta(seconds=float(d["window_seconds"])), Action(d["action"]), d["reason"],
        tuple(d["failing"]), tuple(d["unjudged"]), {k: int(v) for k, v in d["quiet_from"].items()},
        {k: tuple(Action(a) for a in v) for k, v in d["actions"].items()}, int(d.get("dropped", 0)),
    )


def read_incidents(path: str) -> list[tuple[str, str, str]]:
    """(service, version, "incidents file") of each row of a CSV file of service,version (a header row of
    those names is optional; further columns, a note, are left alone); ConfigError naming every bad line."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(path, [f"cannot read the incidents: {exc}"]) from None
    incidents, problems = [], []
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and [c.lower() for c in cells[:2]] == ["service", "version"]:
            continue
        if len(cells) < 2 or not cells[0] or not cells[1]:
            problems.append(f"line {number}: expected service,version, got {','.join(row)!r}")
            continue
        incidents.append((cells[0], cells[1], "incidents file"))
    if problems:
        raise ConfigError(path, problems)
    return incidents


def _rate_dict(r: Rate) -> dict[str, Any]:
    return {"events": r.events, "trials": r.trials, "rate": r.value, "low": r.low, "high": r.high}


def calibration_to_dict(c: Calibration) -> dict[str, Any]:
    """The calibration as JSON: what `backtest --format json` prints and the history store keeps."""
    return {
        "since": c.since.isoformat(), "until": c.until.isoformat(), "services": list(c.services), "days": c.days,
        "complete": c.complete, "queries": c.queries, "alpha": c.alpha, "hold_alpha": c.hold_alpha,
        "confidence": CONFIDENCE, "false_alarms": _rate_dict(c.false_alarms), "false_rollbacks": _rate_dict(c.false_rollbacks),
        "by_kind": {kind.value: _rate_dict(r) for kind, r in c.by_kind.items()}, "unjudged_pairs": c.unjudged_pairs,
        "tuned_false_alarms": _rate_dict(c.tuned_false_alarms) if c.tuned_false_alarms else None,
        "metrics": [
            {
                "metric": m.metric, "share": m.share, "tolerance": asdict(m.tolerance), "noisy": m.noisy,
                "rates": [{"multiple": TOLERANCE_STEPS[i], **_rate_dict(r)} for i, r in enumerate(m.rates)],
                "suggested": None if m.suggested is None else {"multiple": TOLERANCE_STEPS[m.suggested], **asdict(m.tolerance_at(m.suggested))},
                "changes": [_change_dict(x) for x in m.changes],
            }
            for m in c.metrics
        ],
        "releases": [trial_to_dict(t) for t in c.releases],
        "incidents": [
            {"service": i.service, "version": i.version, "source": i.source, "action": i.action.value if i.action else None, "why": i.why}
            for i in c.incidents
        ],
        "compared": None if c.compared is None else [_change_dict(x) for x in c.compared],
        "skipped": dict(c.skipped), "notes": list(c.notes),
    }


def _change_dict(change: ReleaseChange) -> dict[str, str]:
    return {"service": change.service, "version": change.version, "before": change.before.value, "after": change.after.value}
