"""Log signatures: message templates mined with drain3 from both windows' samples, then compared.

Drain (He et al., "Drain: An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017) groups
messages into templates; variable parts are masked first (UUIDs, IPs, paths, durations, hex, numbers)
so that "Timeout after 812ms" and "Timeout after 9000ms" are one signature. Both windows are mined by
one miner, so a signature means the same thing on both sides.

Counts are scaled up from the sample when the window held more lines than were sampled; rates are per
1,000 requests (or per 1,000 log lines when request counts are unknown). A signature is NEW when the
baseline sample has none of it, GONE when only the baseline has it, INCREASED when its rate rose
credibly beyond the tolerance, KNOWN otherwise.

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

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig
from scipy import stats

from releasehealth.model import LogLine, SignatureStatus
from releasehealth.verdicts import LogSignature, SideTotals

# Order matters: the most specific shapes first, numbers last.
MASKS = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])", "IP"),
    (r"(?<![\w<])/[A-Za-z_][\w.\-]*(?:/[\w.\-]+)*/?", "PATH"),
    (r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|m|h)\b", "DURATION"),
    (r"\b0x[0-9a-fA-F]+\b|(?<![\w.])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}(?![\w.])", "HEX"),
    (r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])", "NUM"),
)
EXAMPLES = 3


def _miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.masking_instructions = [MaskingInstruction(pattern, name) for pattern, name in MASKS]
    config.drain_sim_th = 0.4
    config.parametrize_numeric_tokens = True
    config.profiling_enabled = False
    return TemplateMiner(config=config)


@dataclass
class _Cluster:
    baseline: list[LogLine]
    candidate: list[LogLine]


def mine(baseline: Sequence[LogLine], candidate: Sequence[LogLine]) -> dict[str, _Cluster]:
    """Group the messages of both samples by template; return template -> the lines on each side."""
    miner = _miner()
    assigned: list[tuple[int, str, LogLine]] = []
    for side, lines in (("baseline", baseline), ("candidate", candidate)):
        for line in lines:
            assigned.append((miner.add_log_message(line.message)["cluster_id"], side, line))
    clusters: dict[str, _Cluster] = {}
    for cluster_id, side, line in assigned:
        # A template keeps generalising while messages arrive: read the final one.
        template = miner.drain.id_to_cluster[cluster_id].get_template()
        getattr(clusters.setdefault(template, _Cluster([], [])), side).append(line)
    return clusters


def compare(
    baseline: Sequence[LogLine],
    candidate: Sequence[LogLine],
    totals: tuple[SideTotals, SideTotals],
    *,
    tolerance: float,
    alpha: float,
    not_a_risk: Collection[str] = (),
) -> tuple[LogSignature, ...]:
    """Return every signature of either window with its status, NEW first, then by candidate count."""
    b_totals, c_totals = totals
    clusters = mine(baseline, candidate)
    # Bonferroni over the signatures that could fail at all (Tarone's rule): a signature of one or two
    # lines can never reach a small p-value with an exact test, so it takes no share of alpha.
    floors = [_least_p_value(len(c.baseline), len(c.candidate), b_totals, c_totals, tolerance) for c in clusters.values() if c.candidate]
    alpha /= tarone_divisor(floors, alpha)
    signatures = [
        _signature(template, cluster, b_totals, c_totals, tolerance, alpha, template in not_a_risk)
        for template, cluster in clusters.items()
    ]
    order = {SignatureStatus.NEW: 0, SignatureStatus.INCREASED: 1, SignatureStatus.KNOWN: 2, SignatureStatus.GONE: 3}
    return tuple(sorted(signatures, key=lambda s: (order[s.status], -s.candidate_count, s.template)))


def _signature(
    template: str, cluster: _Cluster, b: SideTotals, c: SideTotals, tolerance: float, alpha: float, ignored: bool
) -> LogSignature:
    x_b, x_c = len(cluster.baseline), len(cluster.candidate)
    status, p_value = _status(x_b, x_c, b, c, tolerance, alpha)
    lines = cluster.candidate or cluster.baseline
    return LogSignature(
        template=template,
        level=Counter(line.level for line in lines).most_common(1)[0][0],
        error_type=Counter(line.error_type for line in lines).most_common(1)[0][0],
        status=status,
        baseline_count=x_b * b.scale,
        candidate_count=x_c * c.scale,
        baseline_rate=_rate(x_b * b.scale, b.exposure),
        candidate_rate=_rate(x_c * c.scale, c.exposure),
        examples=tuple(dict.fromkeys(line.message for line in lines))[:EXAMPLES],
        ignored=ignored,
        p_value=p_value,
        credible=p_value is not None and p_value < alpha,
    )


def _status(
    x_b: int, x_c: int, b: SideTotals, c: SideTotals, tolerance: float, alpha: float
) -> tuple[SignatureStatus, float | None]:
    if x_c == 0:
        return SignatureStatus.GONE, None
    p_value = rise_p_value(x_b, x_c, b.exposure / b.scale, c.exposure / c.scale, 1.0 if x_b == 0 else 1 + tolerance)
    if x_b == 0:
        return SignatureStatus.NEW, p_value
    return (SignatureStatus.INCREASED if p_value is not None and p_value < alpha else SignatureStatus.KNOWN), p_value


def _least_p_value(x_b: int, x_c: int, b: SideTotals, c: SideTotals, tolerance: float) -> float:
    """The smallest p-value `rise_p_value` could give a signature of x_b + x_c lines: all of them in the candidate."""
    ratio = 1.0 if x_b == 0 else 1 + tolerance
    exposure_b, exposure_c = b.exposure / b.scale, c.exposure / c.scale
    if exposure_b <= 0 or exposure_c <= 0:
        return 1.0
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
    return float(stats.binom.cdf(x_b, x_b + x_c, share))


def _rate(count: float, exposure: float) -> float | None:
    return 1000 * count / exposure if exposure > 0 else None
