"""Log signatures: the statements and message templates of both windows' samples, compared.

Messages are grouped into templates by scoring.mining (Drain, He et al., "Drain: An Online Log Parsing
Approach with Fixed Depth Tree", ICWS 2017, with the masking and tokenising rules that module explains;
code locations and the catalogue's service names are never masked). When a document names the statement
that wrote it (ECS log.logger, log.origin.function, log.origin.file.name and .line), the statement is part
of the signature, "[logger#function (file:line)] template": two statements around a fault that log the same
words stay two. Both windows are mined by one miner, so a signature means the same thing on both sides.

Counts are scaled up from the sample when the window held more lines than were sampled; rates are per
1,000 requests (or per 1,000 log lines when request counts are unknown); info lines are sampled apart
from error and warn lines and scaled by their own sample. A signature is NEW when the baseline sample has
none of it, INCREASED when its rate rose credibly beyond the tolerance, KNOWN otherwise; one the baseline
logged steadily (STEADY_STEPS minutes or more, across half its window) and the candidate never does is
VANISHED when that silence is credible at the candidate's traffic: a statement that stops is often the
only trace of a fault in a service that logs no error (a request path that no longer completes).
Otherwise, and when a NEW statement of the same logger and level took over its rate (a reworded line),
it is GONE.

Credibility is the exact conditional test for two Poisson rates (Przyborowski & Wilenski, Biometrika
31, 1940): given n = x_b + x_c sampled lines of a signature, under H0 "candidate rate = R x baseline
rate" the baseline's share is Binomial(n, pi), pi = E_b / (E_b + R E_c), E the exposures behind the
sampled counts; p = P(X_b <= x_b). R = 1 + tolerance for INCREASED; R = 1 for NEW, where the question
is only whether the baseline's zero could be chance. It stays exact at zero and small counts, where
a Wald test breaks down. Tests are Bonferroni-corrected over the signatures that could fail at all
(Tarone, Biometrics 46, 1990): with an exact test, a signature of a line or two can never reach a small
p-value, so a window full of one-off messages does not dilute the test of the one that matters.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from releasehealth.model import LogLine, SignatureStatus
from releasehealth.scoring.distributions import binomial_cdf
from releasehealth.scoring.mining import WILDCARD, Miner
from releasehealth.verdicts import LogSignature, SideTotals

EXAMPLES = 3
STEADY_STEPS = 3  # distinct minutes a statement's baseline lines need before its absence can be VANISHED
QUIET_IS_GOOD = ("error", "warn")  # levels whose statements stopping is good news (GONE, never VANISHED)
RENAMED_SHARE = 0.5  # a NEW statement taking over this share of a stopped one's rate is its rewording


@dataclass
class _Cluster:
    baseline: list[LogLine]
    candidate: list[LogLine]
    history: list[LogLine] = field(default_factory=list)


def mine(
    baseline: Sequence[LogLine], candidate: Sequence[LogLine], protected: Collection[str] = (), history: Sequence[LogLine] = ()
) -> dict[str, _Cluster]:
    """Group the messages of both samples by statement and template; return signature -> the lines on each
    side. A line whose document names the statement that wrote it (logger, function, file:line) keeps it in
    its signature, "[origin] template": two statements with one text are two signatures."""
    miner = Miner(protected)
    assigned: list[tuple[int, str, LogLine]] = []
    for side, lines in (("baseline", baseline), ("candidate", candidate), ("history", history)):
        for line in lines:
            assigned.append((miner.add(line.message), side, line))
    clusters: dict[str, _Cluster] = {}
    for cluster_id, side, line in assigned:
        # A template keeps generalising while messages arrive: read the final one.
        template = miner.template(cluster_id)
        signature = f"[{line.origin}] {template}" if line.origin else template
        getattr(clusters.setdefault(signature, _Cluster([], [])), side).append(line)
    return {signature: c for signature, c in clusters.items() if c.baseline or c.candidate}


def compare(
    baseline: Sequence[LogLine],
    candidate: Sequence[LogLine],
    totals: tuple[SideTotals, SideTotals],
    *,
    tolerance: float,
    alpha: float,
    not_a_risk: Collection[str] = (),
    protected: Collection[str] = (),
    history: Sequence[LogLine] = (),
) -> tuple[LogSignature, ...]:
    """Return every signature of either window with its status, NEW first, then by candidate count. A
    signature the service logged in its `history` is part of its vocabulary: never NEW, INCREASED only
    when its rate credibly rose beyond the tolerance from the baseline's none."""
    b_totals, c_totals = totals
    clusters = mine(baseline, candidate, protected, history)
    # Bonferroni over the signatures that could fail at all (Tarone's rule): a signature of one or two
    # lines can never reach a small p-value with an exact test, so it takes no share of alpha.
    floors = [_least_p_value(c, b_totals, c_totals, tolerance) for c in clusters.values() if c.candidate or _steady(c.baseline, baseline)]
    # (a stopped error statement's floor is 1: it cannot fail, so it takes no share of alpha)
    alpha /= tarone_divisor(floors, alpha)
    signatures = [
        _signature(template, cluster, b_totals, c_totals, tolerance, alpha, template in not_a_risk, _steady(cluster.baseline, baseline))
        for template, cluster in clusters.items()
    ]
    order = {status: rank for rank, status in enumerate(ORDER)}
    return tuple(sorted(_renamed(signatures), key=lambda s: (order[s.status], -s.candidate_count, s.template)))


def compare_callers(
    baseline: Sequence[LogLine],
    candidate: Sequence[LogLine],
    totals: tuple[SideTotals, SideTotals],
    callee: str,
    *,
    tolerance: float,
    alpha: float,
    not_a_risk: Collection[str] = (),
    protected: Collection[str] = (),
) -> tuple[LogSignature, ...]:
    """The signatures of other services' lines that name `callee` as a whole word (the search matched
    its words anywhere: "search service", "ts-search-service"), per caller: NEW or INCREASED is the
    release's blast radius. The populations shrink with the share of sampled lines that name it exactly."""
    kept = [tuple(_naming(lines, callee)) for lines in (baseline, candidate)]
    scaled = tuple(
        dataclasses.replace(t, sampled=len(k), population=round(t.population * len(k) / len(lines)) if lines else 0)
        for t, k, lines in zip(totals, kept, (baseline, candidate), strict=True)
    )
    as_origin = [tuple(dataclasses.replace(line, origin=_caller_origin(line)) for line in k) for k in kept]
    signatures = compare(
        as_origin[0], as_origin[1], (scaled[0], scaled[1]), tolerance=tolerance, alpha=alpha, not_a_risk=not_a_risk,
        protected=protected,
    )
    return tuple(dataclasses.replace(s, caller=s.origin.split(" ")[0]) for s in signatures)


def _naming(lines: Sequence[LogLine], name: str) -> Iterator[LogLine]:
    pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.IGNORECASE)
    return (line for line in lines if line.service and pattern.search(line.message))


def _caller_origin(line: LogLine) -> str:
    """A caller's line is known by its service, then its own statement if the document names one."""
    return f"{line.service} {line.origin}" if line.origin else line.service


def _renamed(signatures: Sequence[LogSignature]) -> list[LogSignature]:
    """A statement that stopped while a NEW one of the same level and logger took over at least
    RENAMED_SHARE of its rate was reworded or moved, not lost: it is GONE, replaced_by the new one.
    Several at once pair by likeness (shared words first, then the closer rate), each NEW taken once."""
    new = [s for s in signatures if s.status is SignatureStatus.NEW]
    vanished = [s for s in signatures if s.status is SignatureStatus.VANISHED]
    pairs = sorted(
        ((_likeness(v, n), i, j) for i, v in enumerate(vanished) for j, n in enumerate(new) if _may_succeed(v, n)),
        reverse=True,
    )
    successors: dict[str, str] = {}
    taken: set[int] = set()
    for _, i, j in pairs:
        if vanished[i].template not in successors and j not in taken:
            successors[vanished[i].template] = new[j].template
            taken.add(j)
    return [
        dataclasses.replace(s, status=SignatureStatus.GONE, credible=False, replaced_by=successors[s.template])
        if s.status is SignatureStatus.VANISHED and s.template in successors else s
        for s in signatures
    ]


def _may_succeed(vanished: LogSignature, new: LogSignature) -> bool:
    return (
        new.level == vanished.level
        and logger_of(new.origin) == logger_of(vanished.origin)
        and (new.candidate_rate or 0.0) >= RENAMED_SHARE * (vanished.baseline_rate or 0.0)
    )


def _likeness(vanished: LogSignature, new: LogSignature) -> tuple[float, float]:
    """(the share of words the two templates have in common, minus the distance of their rates in log
    scale): the reworded statement keeps most words and its rate."""
    before, after = set(vanished.template.split()) - {WILDCARD}, set(new.template.split()) - {WILDCARD}
    shared = len(before & after) / max(1, len(before | after))
    rates = (vanished.baseline_rate or 0.0, new.candidate_rate or 0.0)
    return shared, -abs(math.log(max(rates[0], 1e-12) / max(rates[1], 1e-12)))


def logger_of(origin: str) -> str:
    """The logger part of a statement's origin "logger#function (file:line)" ("" without one)."""
    return origin.split("#")[0].split(" (")[0]


ORDER = (SignatureStatus.NEW, SignatureStatus.INCREASED, SignatureStatus.VANISHED, SignatureStatus.KNOWN, SignatureStatus.GONE)


def _signature(
    template: str, cluster: _Cluster, b: SideTotals, c: SideTotals, tolerance: float, alpha: float, ignored: bool,
    steady: bool,
) -> LogSignature:
    x_b, x_c = len(cluster.baseline), len(cluster.candidate)
    lines = cluster.candidate or cluster.baseline
    level = Counter(line.level for line in lines).most_common(1)[0][0]
    b_scale, c_scale = b.scale_for(level), c.scale_for(level)
    # An error or warn statement that stops is a fix, not a fault: only the others can vanish.
    steady = steady and level not in QUIET_IS_GOOD
    status, p_value = _status(x_b, x_c, b.exposure / b_scale, c.exposure / c_scale, tolerance, alpha, steady, bool(cluster.history))
    return LogSignature(
        template=template,
        level=level,
        error_type=Counter(line.error_type for line in lines).most_common(1)[0][0],
        status=status,
        baseline_count=x_b * b_scale,
        candidate_count=x_c * c_scale,
        baseline_rate=_rate(x_b * b_scale, b.exposure),
        candidate_rate=_rate(x_c * c_scale, c.exposure),
        examples=tuple(dict.fromkeys(line.message for line in lines))[:EXAMPLES],
        ignored=ignored,
        p_value=p_value,
        credible=p_value is not None and p_value < alpha,
        in_history=bool(cluster.history),
        origin=lines[0].origin,
    )


def _status(
    x_b: int, x_c: int, exposure_b: float, exposure_c: float, tolerance: float, alpha: float, steady: bool,
    known: bool = False,
) -> tuple[SignatureStatus, float | None]:
    """The status of a signature of x_b and x_c sampled lines, exposures per sampled line of its level;
    `known`: the service logged it before the baseline (its vocabulary), so it cannot be NEW."""
    if x_c == 0:
        p_value = vanish_p_value(x_b, exposure_b, exposure_c) if steady else None
        vanished = p_value is not None and p_value < alpha
        return (SignatureStatus.VANISHED if vanished else SignatureStatus.GONE), p_value
    p_value = rise_p_value(x_b, x_c, exposure_b, exposure_c, 1.0 if x_b == 0 and not known else 1 + tolerance)
    if x_b == 0 and not known:
        return SignatureStatus.NEW, p_value
    return (SignatureStatus.INCREASED if p_value is not None and p_value < alpha else SignatureStatus.KNOWN), p_value


def vanish_p_value(x_b: int, exposure_b: float, exposure_c: float) -> float | None:
    """P-value of H0: the candidate logs the statement at the baseline's rate, given that none of its
    x_b sampled lines fell in the candidate: P(X_c = 0 | n = x_b) = (1 - pi_c)^x_b, pi_c the candidate's
    share of the exposure (the same exact conditional test as a rise, the other way round)."""
    if exposure_b <= 0 or exposure_c <= 0:
        return None
    return float((exposure_b / (exposure_b + exposure_c)) ** x_b)


def _steady(lines: Sequence[LogLine], window: Sequence[LogLine]) -> bool:
    """Whether a statement ran through the baseline rather than in one burst: its sampled lines fall in at
    least STEADY_STEPS distinct minutes, and from its first to its last span at least half of the time
    the window's sample spans."""
    stamps = [line.timestamp for line in lines if math.isfinite(line.timestamp)]
    if len({int(t // 60) for t in stamps}) < STEADY_STEPS:
        return False
    everything = [line.timestamp for line in window if math.isfinite(line.timestamp)]
    return max(stamps) - min(stamps) >= 0.5 * (max(everything) - min(everything))


def _least_p_value(cluster: _Cluster, b: SideTotals, c: SideTotals, tolerance: float) -> float:
    """The smallest p-value a signature of these many lines could get: all of them in the candidate (a
    rise), or, for one in the baseline only, its vanishing."""
    x_b, x_c = len(cluster.baseline), len(cluster.candidate)
    lines = cluster.candidate or cluster.baseline
    level = Counter(line.level for line in lines).most_common(1)[0][0]
    exposure_b, exposure_c = b.exposure / b.scale_for(level), c.exposure / c.scale_for(level)
    if exposure_b <= 0 or exposure_c <= 0:
        return 1.0
    if x_c == 0:
        return (vanish_p_value(x_b, exposure_b, exposure_c) or 1.0) if level not in QUIET_IS_GOOD else 1.0
    ratio = 1.0 if x_b == 0 and not cluster.history else 1 + tolerance
    return float((ratio * exposure_c / (exposure_b + ratio * exposure_c)) ** (x_b + x_c))


def tarone_divisor(floors: Sequence[float], alpha: float) -> int:
    """The divisor of alpha by Tarone's modified Bonferroni procedure for discrete tests (Tarone,
    "A modified Bonferroni method for discrete data", Biometrics 46, 1990): the smallest K such that at
    most K of the hypotheses could reach a p-value below alpha / K. Always valid; never larger than the
    number of hypotheses."""
    for k in range(1, len(floors) + 1):
        if sum(floor <= alpha / k for floor in floors) <= k:
            return k
    return max(1, len(floors))


def rise_p_value(x_b: int, x_c: int, exposure_b: float, exposure_c: float, ratio: float) -> float | None:
    """P-value of H0: candidate rate <= ratio x baseline rate, by the exact conditional binomial test."""
    if exposure_b <= 0 or exposure_c <= 0:
        return None
    share = exposure_b / (exposure_b + ratio * exposure_c)
    return binomial_cdf(x_b, x_b + x_c, share)


def _rate(count: float, exposure: float) -> float | None:
    return 1000 * count / exposure if exposure > 0 else None
