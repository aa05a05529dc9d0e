"""Verdict accuracy on the simulator's labelled releases: detection by fault and size, false alarms by good variant.

Runs the simulator's "accuracy" scenario (every fault at several sizes; good releases plain, on a traffic
ramp, with a traffic-mix change, or with noisy neighbours; every third service on low traffic) through
the embedded in-memory sources, so it measures the judge, not Prometheus. Each release's MetricInputs are
captured once and handed to every judge in `judges()` (ours, and Kayenta mode), so the columns compare
judges on the same data. Usage:
    .venv/bin/python benchmarks/accuracy.py [--seeds 16] [--scenario accuracy|default]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from releasehealth import evaluate
from releasehealth.model import Action, Classification, Policy
from releasehealth.scoring.judging import judge
from releasehealth.simulator import ReleaseLabel, SimulatedService, demo, simulate
from releasehealth.simulator.fleet import GOOD_LABELS
from releasehealth.verdicts import MetricInput, Recommendation, ReleaseScore

END = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
SERVICES, RELEASES = 10, 8  # per seed: 80 releases, 45% of them good
LOW_TRAFFIC = 5.0  # req/s in the candidate window; the error-ratio targets are stated at or above it
# A judge column: (the release's metric inputs, baseline version, candidate version, share of the window
# observed) -> (score with its verdicts, recommendation), as scoring.judge.judge and kayenta_judge return.
Judge = Callable[[Sequence[MetricInput], str, str, float], tuple[ReleaseScore, Recommendation]]
LOOSE_ALPHA = 0.1
# The metrics meant to catch each fault ("own metric HIGH"); nothing of ours measures traffic itself.
OWN_METRICS = {
    ReleaseLabel.ERROR_RATIO: {"error_ratio"},
    ReleaseLabel.LATENCY: {"p95_latency"},
    ReleaseLabel.MEMORY_LEAK: {"memory"},
    ReleaseLabel.CPU: {"cpu_per_request"},
    ReleaseLabel.NEW_EXCEPTION: {"log_signatures"},
    ReleaseLabel.ERROR_LOG_BURST: {"log_signatures"},
    ReleaseLabel.EPISODES: {"p95_latency", "p99_latency", "tail_latency", "cpu_per_request"},
    ReleaseLabel.TAIL_LATENCY: {"tail_latency", "p99_latency"},
    ReleaseLabel.LATE_STEP: {"p50_latency", "p95_latency"},
    ReleaseLabel.BASELINE_SPIKE: {"cpu_per_request"},
    ReleaseLabel.CONNECTIONS: {"connections"},
}
# Faults only hold-only metrics (saturation gauges) can see: a HOLD is their failure, a ROLLBACK cannot be.
HOLD_ONLY = {
    ReleaseLabel.MEMORY_LEAK, ReleaseLabel.CPU, ReleaseLabel.BASELINE_SPIKE, ReleaseLabel.CONNECTIONS, ReleaseLabel.EPISODES,
}


@dataclass(frozen=True, eq=False)
class Case:
    """One labelled release and what its judges need; `inputs` is None when no judge ran (too early...)."""

    label: ReleaseLabel
    size: str
    rps: float
    inputs: tuple[MetricInput, ...] | None
    baseline: str
    candidate: str
    information: float
    fallback: Recommendation  # what the analysis said when no judge ran


def judges(policy: Policy) -> dict[str, Judge]:
    """The columns of the table. Plug another judge in here: it sees exactly the inputs ours sees."""
    loose = dataclasses.replace(policy, alpha=LOOSE_ALPHA)
    columns: dict[str, Judge] = {
        "release-health": lambda i, b, c, info: judge(i, policy, b, c, info),
        # Ours at a looser alpha, whose false-rollback rate is near Kayenta mode's: detection compared at an
        # equal or lower false-rollback rate, not only at our default operating point.
        "release-health a=0.1": lambda i, b, c, info: judge(i, loose, b, c, info),
    }
    # Kayenta's classifier and scorer, through the same judge entry point (policy.judge: kayenta).
    kayenta = dataclasses.replace(policy, judge="kayenta")
    columns["Kayenta mode"] = lambda i, b, c, info: judge(i, kayenta, b, c, info)
    return columns


@contextmanager
def recording() -> Iterator[dict[str, tuple[tuple[MetricInput, ...], str, float]]]:
    """Capture, per candidate version, the inputs the evaluation hands to the judge (it has no judge
    parameter to pass ours through; the original is restored on exit)."""
    seen: dict[str, tuple[tuple[MetricInput, ...], str, float]] = {}
    real = evaluate.judge

    def record(
        inputs: Sequence[MetricInput], policy: Policy, baseline: str, candidate: str, information: float = 1.0
    ) -> tuple[ReleaseScore, Recommendation]:
        seen[candidate] = (tuple(inputs), baseline, information)
        return real(inputs, policy, baseline, candidate, information)

    evaluate.judge = record  # type: ignore[assignment]
    try:
        yield seen
    finally:
        evaluate.judge = real


def collect(seed: int, scenario: str) -> tuple[list[Case], Policy]:
    """Every evaluated release of one simulated fleet, with the inputs its judge saw."""
    fleet = simulate(seed=seed, end=END, services=SERVICES, releases_per_service=RELEASES, scenario=scenario)
    wired = demo.of_fleet(fleet).wire()
    catalogue, sources = wired.catalogue, wired.sources
    cases = []
    for service in fleet.services:
        with recording() as seen:
            evaluations = {
                e.candidate.version: e
                for e in evaluate.evaluate_releases(sources, catalogue.service(service.name), catalogue.policy, now=fleet.end)
                if e.candidate is not None
            }
        for release in service.releases[1:]:
            inputs, baseline, information = seen.get(release.version, (None, "", 1.0))
            rps = _window_rps(service, release.version, catalogue.policy)
            cases.append(Case(release.label, release.fault_size, rps, inputs, baseline, release.version, information,
                              evaluations[release.version].recommendation))
    return cases, catalogue.policy


def _window_rps(service: SimulatedService, version: str, policy: Policy) -> float:
    start = service.release(version).deployed_at + policy.warmup
    return service.counts(version, start, start + policy.window)["requests"] / policy.window.total_seconds()


@dataclass
class Outcomes:
    """Per judge: the action on each case, whether it was flagged (a regression: its fault's own metric
    HIGH or LOW; a good release: any metric HIGH or LOW, counted or not), and the seconds taken."""

    actions: dict[str, list[Action]] = field(default_factory=dict)
    flagged: dict[str, list[bool]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def decide(cases: Sequence[Case], columns: dict[str, Judge]) -> Outcomes:
    """Run every judge on every case's inputs (a case no judge could run keeps the analysis' answer)."""
    out = Outcomes()
    for name, column in columns.items():
        started = time.perf_counter()
        results = [column(c.inputs, c.baseline, c.candidate, c.information) if c.inputs is not None else None for c in cases]
        out.seconds[name] = time.perf_counter() - started
        out.actions[name] = [r[1].action if r else c.fallback.action for r, c in zip(results, cases, strict=True)]
        out.flagged[name] = [bool(r) and _flagged(r[0], c.label) for r, c in zip(results, cases, strict=True)]
    return out


def _flagged(score: ReleaseScore, label: ReleaseLabel) -> bool:
    failing = [v.metric for v in score.verdicts if v.classification in (Classification.HIGH, Classification.LOW)]
    return bool(OWN_METRICS.get(label, set()) & set(failing)) if label.is_regression else bool(failing)


# ---- the table ------------------------------------------------------------------------------------------


def _share(actions: list[Action], action: Action) -> str:
    return f"{actions.count(action) / len(actions):.1%}" if actions else "-"


def _traffic(case: Case) -> str:
    return f">={LOW_TRAFFIC:g}/s" if case.rps >= LOW_TRAFFIC else f"<{LOW_TRAFFIC:g}/s"


def _rows(cases: Sequence[Case], regression: bool, by_traffic: bool) -> dict[tuple[str, str, str], list[int]]:
    rows: dict[tuple[str, str, str], list[int]] = {}
    for k, case in enumerate(cases):
        if case.label.is_regression == regression:
            key = (case.label.value, case.size, _traffic(case) if by_traffic else "all")
            rows.setdefault(key, []).append(k)
    return dict(sorted(rows.items()))


def _cells(outcomes: Outcomes, members: list[int]) -> str:
    out = ""
    for name, actions in outcomes.actions.items():
        mine = [actions[k] for k in members]
        flagged = sum(outcomes.flagged[name][k] for k in members) / len(members)
        out += f" {_share(mine, Action.ROLLBACK):>8} {_share(mine, Action.HOLD):>6} {flagged:>6.0%}"
    return out


def print_table(cases: Sequence[Case], outcomes: Outcomes) -> None:
    names = list(outcomes.actions)
    print(f"\n{'':<15}{'':>8} {'':>8} {'':>4}" + "".join(f" {n[:22]:>22}" for n in names))
    print(f"{'fault':<15}{'size':>8} {'traffic':>8} {'n':>4}" + f" {'ROLLBACK':>8} {'HOLD':>6} {'metric':>6}" * len(names))
    for (label, size, traffic), members in _rows(cases, True, True).items():
        print(f"{label:<15}{size:>8} {traffic:>8} {len(members):>4}" + _cells(outcomes, members))
    print(f"\n{'good release':<15}{'':>8} {'traffic':>8} {'n':>4}" + f" {'false RB':>8} {'HOLD':>6} {'flag':>6}" * len(names))
    goods = _rows(cases, False, True)
    goods[("all good", "", "all")] = [k for m in goods.values() for k in m]
    for (label, _, traffic), members in goods.items():
        print(f"{label:<15}{'':>8} {traffic:>8} {len(members):>4}" + _cells(outcomes, members))
    print(
        "\nmetric: one of the fault's own metrics (OWN_METRICS: error_ratio, p95_latency, memory, ...) failed;"
        "\nflag (good releases): any metric failed, counted or not (a dry-run metric shows but holds nothing)."
    )


TARGETS = (  # (what, label, size, only at >= LOW_TRAFFIC req/s, action counted, bound, at least?)
    ("false ROLLBACK on good releases", None, None, False, Action.ROLLBACK, 0.01, False),
    ("false HOLD on good releases", None, None, False, Action.HOLD, 0.05, False),
    ("ROLLBACK on error ratio x2 (>=5 req/s)", ReleaseLabel.ERROR_RATIO, "x2", True, Action.ROLLBACK, 0.95, True),
    ("ROLLBACK on p95 +25% (>=5 req/s)", ReleaseLabel.LATENCY, "+25%", True, Action.ROLLBACK, 0.95, True),
    ("ROLLBACK on p95 +25% (any traffic)", ReleaseLabel.LATENCY, "+25%", False, Action.ROLLBACK, 0.95, True),
    ("ROLLBACK on error ratio x1.5 (>=5 req/s)", ReleaseLabel.ERROR_RATIO, "x1.5", True, Action.ROLLBACK, 0.80, True),
    ("ROLLBACK on p95 +10% (>=5 req/s)", ReleaseLabel.LATENCY, "+10%", True, Action.ROLLBACK, 0.80, True),
)
SHAPES = (  # issue 15: each fails (ROLLBACK, or HOLD when only hold-only metrics can see it) >= 90% at >= 5 req/s
    ReleaseLabel.EPISODES, ReleaseLabel.TAIL_LATENCY, ReleaseLabel.LATE_STEP, ReleaseLabel.MEMORY_LEAK,
    ReleaseLabel.BASELINE_SPIKE, ReleaseLabel.CONNECTIONS,
)
SHAPE_BOUND, GOOD_VARIANT_BOUND = 0.90, 0.02


def failed(label: ReleaseLabel, action: Action) -> bool:
    """Whether a regression's release was stopped: ROLLBACK, or HOLD for what only hold-only metrics see."""
    return action is Action.ROLLBACK or (label in HOLD_ONLY and action is Action.HOLD)


def print_targets(cases: Sequence[Case], actions: list[Action]) -> None:
    print("\ntargets (release-health):")
    for what, label, size, busy, action, bound, at_least in TARGETS:
        members = [
            k for k, c in enumerate(cases)
            if (c.label is label and c.size == size if label else c.label in GOOD_LABELS) and (not busy or c.rps >= LOW_TRAFFIC)
        ]
        if not members:
            print(f"  {what}: no such releases in this scenario")
            continue
        share = sum(actions[k] is action for k in members) / len(members)
        met = share >= bound if at_least else share <= bound
        print(f"  {what}: {share:.1%} of {len(members)} ({'>=' if at_least else '<='} {bound:.0%}: {'met' if met else 'NOT met'})")
    for variant in GOOD_LABELS:
        members = [k for k, c in enumerate(cases) if c.label is variant]
        if members:
            share = sum(actions[k] is Action.ROLLBACK for k in members) / len(members)
            print(f"  false ROLLBACK on {variant.value}: {share:.1%} of {len(members)} "
                  f"(<= {GOOD_VARIANT_BOUND:.0%}: {'met' if share <= GOOD_VARIANT_BOUND else 'NOT met'})")
    cells = sorted({(c.label, c.size) for c in cases if c.label in SHAPES}, key=lambda cell: (cell[0].value, cell[1]))
    for label, size in cells:
        members = [k for k, c in enumerate(cases) if c.label is label and c.size == size and c.rps >= LOW_TRAFFIC]
        if members:
            share = sum(failed(label, actions[k]) for k in members) / len(members)
            how = "ROLLBACK or HOLD" if label in HOLD_ONLY else "ROLLBACK"
            print(f"  {how} on {label.value} {size} (>=5 req/s): {share:.1%} of {len(members)} "
                  f"(>= {SHAPE_BOUND:.0%}: {'met' if share >= SHAPE_BOUND else 'NOT met'})")


def print_versus_kayenta(cases: Sequence[Case], outcomes: Outcomes) -> None:
    """Issue target: at least as good as Kayenta mode on every row at an equal or lower false-rollback
    rate. Our columns are compared with Kayenta's where our false-rollback rate is not higher; a row
    counts the releases stopped (`failed`: ROLLBACK, or HOLD for what only hold-only metrics see)."""
    if "Kayenta mode" not in outcomes.actions:
        return
    goods = [k for k, c in enumerate(cases) if c.label in GOOD_LABELS]
    rate = {n: sum(a[k] is Action.ROLLBACK for k in goods) / len(goods) for n, a in outcomes.actions.items()}
    kayenta = outcomes.actions["Kayenta mode"]

    def stopped(actions: list[Action], members: list[int]) -> int:
        return sum(failed(cases[k].label, actions[k]) for k in members)

    print(f"\nversus Kayenta mode (false ROLLBACK {rate['Kayenta mode']:.1%}), share stopped per row:")
    for name in (n for n in outcomes.actions if n != "Kayenta mode" and rate[n] <= rate["Kayenta mode"]):
        ours = outcomes.actions[name]
        worse = [
            f"{label} {size} {traffic} ({stopped(ours, m) / len(m):.1%} vs {stopped(kayenta, m) / len(m):.1%})"
            for (label, size, traffic), m in _rows(cases, True, True).items()
            if stopped(ours, m) < stopped(kayenta, m)
        ]
        print(f"  {name} (false ROLLBACK {rate[name]:.1%}): "
              + ("at least as good on every row" if not worse else "behind on " + "; ".join(worse)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--scenario", choices=("accuracy", "default"), default="accuracy")
    args = parser.parse_args()
    started = time.perf_counter()
    cases: list[Case] = []
    for seed in range(args.seeds):
        found, policy = collect(seed, args.scenario)
        cases += found
    collected = time.perf_counter() - started
    outcomes = decide(cases, judges(policy))
    regressions = sum(c.label.is_regression for c in cases)
    print(
        f"{args.scenario} scenario, {args.seeds} seeds: {len(cases)} releases ({regressions} regressions, "
        f"{len(cases) - regressions} good); simulated and evaluated in {collected:.1f} s; judging alone: "
        + ", ".join(f"{name} {s:.1f} s" for name, s in outcomes.seconds.items())
    )
    print_table(cases, outcomes)
    print_targets(cases, outcomes.actions["release-health"])
    print_versus_kayenta(cases, outcomes)


if __name__ == "__main__":
    main()
