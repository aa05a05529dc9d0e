"""Latency quantiles from Prometheus histograms: window quantiles from summed bucket deltas, and
their uncertainty from time blocks.

The window's quantile comes from the bucket counts summed across the whole window, so every request
weighs the same; inside the bucket holding the rank it is interpolated on a probit-log scale (see
`smooth_quantile`), and Prometheus' linear value is reported beside it. Steps within a window are autocorrelated, so instead of treating each step as
an independent sample we cut each window into contiguous time blocks, take the quantile of each block,
and compare the log block quantiles with Welch's t-test (the non-overlapping batch-means method:
Schmeiser, "Batch size effects in the analysis of simulation output", Operations Research 30(3), 1982).
The confidence interval of the ratio candidate/baseline is exp of the interval of the log difference.
As for ratios, a rise fails when it is credible (H0: no rise) and the measured quantile rises beyond
the tolerance margin. The candidate window's second half is also tested on its own, in as many blocks
(Bonferroni over the two tests): a slowdown that starts mid-window makes the whole window's blocks
bimodal, and their spread would hide it; one that recovers by the second half is not held against a
release.

The tail (`classify_tail`, kind histogram_tail) is counted instead of interpolated: the share of requests
slower than the smallest bucket bound at or above the baseline's quantile, in each window, compared as
the error ratio is (scoring.ratio: window totals, quasi-binomial with the dispersion the steps show). A
regression confined to the tail (1% of requests ten times slower) leaves p50 and p95 in place and is a
guess in a coarse p99; as a share of exact counts it is a doubled or tripled ratio.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats
from scipy.special import ndtri

from releasehealth.format import format_value
from releasehealth.model import MetricSpec, Series
from releasehealth.scoring.ratio import classify_ratio
from releasehealth.scoring.series import (
    blocks,
    by_label,
    on_steps,
    plausible_steps,
    sum_by_time,
    valid_steps,
)
from releasehealth.scoring.verdict import (
    VerdictBuilder,
    harmful_change_p_value,
    harmful_sign,
)
from releasehealth.verdicts import Distribution, MetricVerdict, Summary

TEST_NAME = "Welch t-test on log quantiles of time blocks, the whole window and its second half"
BLOCKS = 6
MIN_TAIL = 20  # requests on each side of a bucket bound for its share to anchor the fit


def histogram_quantile(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> float | None:
    """Return the q-quantile of a histogram, as Prometheus' histogram_quantile; None when empty.

    `bounds` are the upper bounds in ascending order, the last +Inf; `cumulative` the counts <= bound.
    A rank in the +Inf bucket returns the highest finite bound.
    """
    cumulative = np.maximum.accumulate(np.asarray(cumulative, dtype=np.float64))
    total: float = cumulative[-1] if cumulative.size else 0.0  # numpy's stubs type the element as Any
    if total <= 0:
        return None
    rank = q * total
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if math.isinf(bounds[index]):
        return float(bounds[-2]) if bounds.size > 1 else None
    lower = 0.0 if index == 0 else float(bounds[index - 1])
    below = 0.0 if index == 0 else float(cumulative[index - 1])
    in_bucket: float = cumulative[index] - below
    if in_bucket <= 0:
        return float(bounds[index])
    return lower + (float(bounds[index]) - lower) * (rank - below) / in_bucket


def smooth_quantile(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> float | None:
    """Return the q-quantile of a histogram from a local lognormal fit of its cumulative counts.

    Prometheus' linear interpolation assumes requests spread evenly inside a bucket; with the usual
    coarse buckets (0.1 s to 0.25 s) that hides a 50% slowdown or inflates a 6% drift several-fold.
    Latency is close to lognormal locally, for which probit(F) is linear in log(latency), so we draw
    that line through the two bucket bounds nearest the quantile whose counts on both sides are large
    enough (MIN_TAIL) to give a stable probit, and read the quantile off it, kept inside the bucket that
    holds the rank. With fewer than two such bounds we fall back to Prometheus' rule.
    """
    cumulative = np.maximum.accumulate(np.asarray(cumulative, dtype=np.float64))
    total = cumulative[-1] if cumulative.size else 0.0
    if total <= 0:
        return None
    finite = np.isfinite(bounds) & (bounds > 0)
    usable = np.flatnonzero(finite & (np.minimum(cumulative, total - cumulative) >= MIN_TAIL))
    if usable.size < 2:
        return histogram_quantile(q, bounds, cumulative)
    shares = cumulative / total
    below = usable[shares[usable] < q]
    above = usable[shares[usable] >= q]
    if below.size and above.size:
        pair = (below[-1], above[0])
    else:
        nearest = usable[np.argsort(np.abs(shares[usable] - q))[:2]]
        pair = (min(nearest), max(nearest))
    # ndtri is the standard normal quantile (norm.ppf) without scipy.stats' per-call overhead: this runs
    # for every step of every latency chart.
    z_low, z_high, z_q = ndtri(np.array([shares[pair[0]], shares[pair[1]], q]))
    if z_high <= z_low:
        return histogram_quantile(q, bounds, cumulative)
    low, high = math.log(bounds[pair[0]]), math.log(bounds[pair[1]])
    estimate = math.exp(low + (high - low) * (z_q - z_low) / (z_high - z_low))
    index = int(np.searchsorted(cumulative, q * total, side="left"))
    floor = float(bounds[index - 1]) if index > 0 else 0.0
    ceiling = float(bounds[index]) if math.isfinite(bounds[index]) else math.inf
    return min(max(estimate, floor), ceiling)


def bucket_matrix(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, bounds, counts[step, bucket]) from `le`-labelled bucket series, bounds ascending; a step
    with a NaN, infinite or negative count, or one no traffic explains, is left out (see `invalid_rows`)."""
    return _matrix(series)[:3]


def invalid_rows(series: list[Series]) -> int:
    """How many steps `bucket_matrix` leaves out."""
    return _matrix(series)[3]


def _matrix(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """`bucket_matrix` and `invalid_rows` from one pass over the series."""
    steps, bounds, counts = _raw_buckets(series)
    keep = _kept(counts, len(steps))
    invalid = int((~keep).sum()) if counts.size else 0
    return steps[keep], bounds, counts[keep] if counts.size else counts, invalid


def _kept(counts: np.ndarray, steps: int) -> np.ndarray:
    """The valid rows of a bucket matrix whose request count (the +Inf bucket) some traffic explains."""
    if not counts.size:
        return np.zeros(steps, dtype=bool)
    keep = valid_steps(counts)
    keep[keep] &= plausible_steps(counts[keep][:, -1])
    return keep


def _raw_buckets(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    groups = by_label(series, "le")
    parsed = sorted((float(le), items) for le, items in groups.items() if _is_bound(le))
    if not parsed or parsed[-1][0] != math.inf:
        return np.array([]), np.array([]), np.zeros((0, 0))
    steps, _ = sum_by_time(s for _, items in parsed for s in items)
    counts = np.column_stack([on_steps(items, steps) for _, items in parsed])
    return steps, np.array([b for b, _ in parsed]), counts


def _is_bound(text: str) -> bool:
    """A histogram bound: a number or +Inf; a NaN bound is garbage."""
    try:
        value = float(text)
    except ValueError:
        return False
    return not math.isnan(value) and value > 0


def classify_quantile(
    spec: MetricSpec,
    baseline: dict[str, list[Series]],
    candidate: dict[str, list[Series]],
    alpha: float,
    ci_alpha: float | None = None,
) -> MetricVerdict:
    """Return the verdict on a latency quantile; inputs map "buckets" to the `le`-labelled series. The
    change is credible when p < alpha; the confidence interval shown is at 1 - ci_alpha (default alpha)."""
    q = spec.quantile or 0.95
    b_steps, b_bounds, b_counts, b_invalid = _matrix(baseline.get("buckets", []))
    c_steps, c_bounds, c_counts, c_invalid = _matrix(candidate.get("buckets", []))
    b = _summary(q, b_bounds, b_counts, b_invalid)
    c = _summary(q, c_bounds, c_counts, c_invalid)
    verdict = VerdictBuilder(
        spec, TEST_NAME, b, c, _per_step(q, b_steps, b_bounds, b_counts), _per_step(q, c_steps, c_bounds, c_counts),
        distribution=_distribution(b_bounds, b_counts, c_bounds, c_counts),
    )
    if b.count < spec.min_count or c.count < spec.min_count:
        return verdict.nodata(
            f"too few requests to judge: baseline {b.count:.0f} and candidate {c.count:.0f}, "
            f"at least {spec.min_count} needed in each window"
        )
    if b.value is None or c.value is None:
        return verdict.nodata("the histogram has no finite bucket to interpolate in")
    b_blocks = _block_quantiles(q, b_bounds, b_counts)
    c_blocks = _block_quantiles(q, c_bounds, c_counts)
    if len(b_blocks) < 2 or len(c_blocks) < 2:
        return verdict.nodata(f"too few time blocks with traffic ({len(b_blocks)} and {len(c_blocks)}; 2 needed)")
    ci_alpha = ci_alpha or alpha
    p_whole, low, high = _welch_log(c_blocks, b_blocks, ci_alpha, spec)
    # The window's second half on its own too (in as many blocks): a slowdown that starts mid-window (a
    # cache expiring, a job starting) splits the whole window's blocks in two groups, whose spread then
    # hides it. Two tests: each at half the alpha (Bonferroni).
    late = _block_quantiles(q, c_bounds, c_counts[len(c_counts) // 2:])
    p_late, late_low, late_high = _welch_log(late, b_blocks, ci_alpha, spec) if len(late) >= 2 else (1.0, low, high)
    if len(late) >= 2 and not _beyond(float(np.exp(np.log(late).mean() - np.log(b_blocks).mean())), spec):
        p_late = 1.0  # the second half's own rise must matter too, not only the whole window's

    p_value = min(1.0, 2 * min(p_whole, p_late))
    interval = f"{(1 - ci_alpha) * 100:g}% CI {(low - 1) * 100:+.0f}..{(high - 1) * 100:+.0f}%"
    detail = f"{len(b_blocks)}+{len(c_blocks)} blocks"
    if p_late < p_whole:
        interval += f", its second half {(late_low - 1) * 100:+.0f}..{(late_high - 1) * 100:+.0f}%"
        detail += f", second half in {len(late)} blocks"
    return verdict.decide(p_value, alpha, interval, detail)


def _beyond(ratio: float, spec: MetricSpec) -> bool:
    """Whether a candidate/baseline ratio of a quantile is beyond the relative tolerance, in the harmful direction."""
    return bool(harmful_sign(spec.direction, ratio - 1)) and abs(ratio - 1) > spec.tolerance.relative


def _distribution(b_bounds: np.ndarray, b_counts: np.ndarray, c_bounds: np.ndarray, c_counts: np.ndarray) -> Distribution | None:
    """Requests per bucket in each window, when both windows have the same buckets (else None)."""
    if not (b_counts.size and c_counts.size) or not np.array_equal(b_bounds, c_bounds):
        return None
    per_bucket = [np.diff(np.maximum.accumulate(counts.sum(axis=0)), prepend=0.0) for counts in (b_counts, c_counts)]
    return Distribution(b_bounds, *per_bucket)


def _summary(q: float, bounds: np.ndarray, counts: np.ndarray, invalid: int) -> Summary:
    if not counts.size:
        return Summary(None, 0.0, "no usable histogram buckets (a histogram needs an le=\"+Inf\" bucket)")
    totals = counts.sum(axis=0)
    linear = histogram_quantile(q, bounds, totals)
    detail = f"p{q * 100:g} of {totals[-1]:.0f} requests"
    if linear is not None:
        detail += f"; Prometheus' linear histogram_quantile gives {linear * 1000:.0f} ms"
    if invalid:
        detail += f"; {invalid} invalid step(s) left out"
    return Summary(smooth_quantile(q, bounds, totals), float(totals[-1]), detail)


def quantile_per_step(q: float, buckets: list[Series]) -> Series:
    """The q-quantile at each valid step of `le`-labelled bucket series (NaN where a step is empty)."""
    steps, bounds, counts = bucket_matrix(buckets)
    return _per_step(q, steps, bounds, counts)


def _per_step(q: float, steps: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> Series:
    values = [smooth_quantile(q, bounds, row) for row in counts] if counts.size else []
    return Series({}, steps, np.array([np.nan if v is None else v for v in values], dtype=np.float64))


def _block_quantiles(q: float, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    values = [smooth_quantile(q, bounds, counts[part].sum(axis=0)) for part in blocks(len(counts), BLOCKS)]
    return np.array([v for v in values if v is not None and v > 0])


def _welch_log(
    candidate: np.ndarray, baseline: np.ndarray, alpha: float, spec: MetricSpec
) -> tuple[float, float, float]:
    """(p-value of H0: no harmful change, CI low, CI high) of candidate/baseline.

    On logs: d = mean log c - mean log b, se = sqrt(s_c^2/n_c + s_b^2/n_b), Welch-Satterthwaite
    degrees of freedom.
    """
    lc, lb = np.log(candidate), np.log(baseline)
    diff = float(lc.mean() - lb.mean())
    var_c, var_b = lc.var(ddof=1) / lc.size, lb.var(ddof=1) / lb.size
    se = math.sqrt(var_c + var_b)
    dof = (var_c + var_b) ** 2 / (var_c**2 / (lc.size - 1) + var_b**2 / (lb.size - 1)) if se > 0 else 1.0
    sign = harmful_sign(spec.direction, diff)
    p_value = harmful_change_p_value(sign * diff, se, spec.direction, stats.t(dof)) if sign else 1.0
    half = float(stats.t.ppf(1 - alpha / 2, dof)) * se
    return p_value, math.exp(diff - half), math.exp(diff + half)


# ---- the tail: the share of requests slower than the baseline's quantile ----------------------------------


def classify_tail(
    spec: MetricSpec,
    baseline: dict[str, list[Series]],
    candidate: dict[str, list[Series]],
    alpha: float,
    ci_alpha: float | None = None,
) -> MetricVerdict:
    """The verdict on the latency tail: the share of requests slower than T, the smallest bucket bound at
    or above the baseline's `quantile`, in each window, compared as the error ratio is (window totals,
    a quasi-binomial test with the dispersion the steps show, the tolerance on the share).

    A regression confined to the tail (1% of requests ten times slower) leaves p50 and p95 where they
    were and reads as a coarse-bucket guess in p99; counted against a bound the histogram has, the slow
    requests are exact counts: 1% more of them is a doubled or tripled share. Bursty slowness (a few
    slow minutes in both windows) shows as overdispersion and is not taken for a regression."""
    q = spec.quantile or 0.99
    b_steps, b_bounds, b_counts = bucket_matrix(baseline.get("buckets", []))
    c_steps, c_bounds, c_counts = bucket_matrix(candidate.get("buckets", []))
    bound = _tail_bound(q, b_bounds, b_counts)
    if bound is None:
        verdict = VerdictBuilder(spec, TAIL_TEST, Summary(None, 0.0), Summary(None, 0.0), None, None)
        return verdict.nodata(f"no finite bucket bound at or above the baseline's p{q * 100:g} to count slower requests against")
    b_column = int(np.flatnonzero(b_bounds == bound)[0])
    c_found = np.flatnonzero(c_bounds == bound) if c_counts.size else np.array([], dtype=int)
    if not c_found.size:
        verdict = VerdictBuilder(spec, TAIL_TEST, Summary(None, 0.0), Summary(None, 0.0), None, None)
        return verdict.nodata(f"the candidate's histogram has no bucket bound {bound:g} s to count slower requests against")
    judged = classify_ratio(
        spec, _slow_side(b_steps, b_counts, b_column), _slow_side(c_steps, c_counts, int(c_found[0])), alpha, ci_alpha
    )
    head = f"{spec.name} {judged.classification.value}: "
    slower = f"requests slower than {format_value(float(bound), 'seconds')} (the baseline's p{q * 100:g} bucket bound): "
    reason = head + slower + judged.reason.removeprefix(head) if judged.reason.startswith(head) else judged.reason
    return dataclasses.replace(judged, reason=reason, test=f"{TAIL_TEST}: {judged.test}")


TAIL_TEST = "share of requests beyond the baseline's tail quantile"


def _tail_bound(q: float, bounds: np.ndarray, counts: np.ndarray) -> float | None:
    """The smallest finite bucket bound holding at least q of the baseline's requests (None: none does)."""
    if not counts.size:
        return None
    totals = np.maximum.accumulate(counts.sum(axis=0))
    if totals[-1] <= 0:
        return None
    reaching = np.flatnonzero((totals >= q * totals[-1]) & np.isfinite(bounds))
    return float(bounds[reaching[0]]) if reaching.size else None


def _slow_side(steps: np.ndarray, counts: np.ndarray, column: int) -> dict[str, list[Series]]:
    """Per step, the requests above the bound of `column` (numerator) and all requests (denominator)."""
    total = counts[:, -1]
    return {
        "numerator": [Series({}, steps, np.maximum(total - counts[:, column], 0.0))],
        "denominator": [Series({}, steps, total)],
    }
