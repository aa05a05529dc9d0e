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
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from releasehealth.format import confidence_text, format_value, plural
from releasehealth.model import DeferredSeries, MetricSpec, Series
from releasehealth.scoring.distributions import StudentT
from releasehealth.scoring.ratio import classify_ratio
from releasehealth.scoring.series import (
    block_starts,
    by_label,
    in_order,
    plausible_steps,
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
    return _one(linear_quantiles(q, bounds, np.asarray(cumulative, dtype=np.float64)[np.newaxis, :]))


def smooth_quantile(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> float | None:
    """Return the q-quantile of a histogram from a local lognormal fit of its cumulative counts; None
    when empty (see `smooth_quantiles`)."""
    return _one(smooth_quantiles(q, bounds, np.asarray(cumulative, dtype=np.float64)[np.newaxis, :]))


def _one(values: np.ndarray) -> float | None:
    return None if not values.size or math.isnan(values[0]) else float(values[0])


def linear_quantiles(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """Prometheus' histogram_quantile of each row of `cumulative` (rows: histograms, columns: the counts
    at or below each of `bounds`); NaN for an empty row."""
    cumulative = np.maximum.accumulate(cumulative, axis=1)
    with np.errstate(invalid="ignore"):  # a rank in the +Inf bucket: inf x 0, replaced by the highest bound
        return _linear(q, bounds, cumulative, _rank_bucket(q, cumulative))


def _rank_bucket(q: float, cumulative: np.ndarray) -> np.ndarray:
    """Per row, the bucket holding the rank q x total: searchsorted(row, rank, side="left") of every row at
    once, the count of cumulative values below the rank (never past the last bucket)."""
    if not cumulative.size:
        return np.zeros(cumulative.shape[0], dtype=np.intp)
    below: np.ndarray = np.count_nonzero(cumulative < q * cumulative[:, -1:], axis=1)
    index: np.ndarray = np.minimum(below, cumulative.shape[1] - 1)
    return index


def _linear(q: float, bounds: np.ndarray, cumulative: np.ndarray, index: np.ndarray) -> np.ndarray:
    """linear_quantiles of a non-decreasing `cumulative` whose rank buckets are `index`."""
    out = np.full(cumulative.shape[0], np.nan)
    if not cumulative.size:
        return out
    total = cumulative[:, -1]
    rows_at = np.arange(cumulative.shape[0])
    previous = np.maximum(index - 1, 0)
    first = index == 0
    lower = np.where(first, 0.0, bounds[previous])
    below = np.where(first, 0.0, cumulative[rows_at, previous])
    in_bucket = cumulative[rows_at, index] - below
    upper = bounds[index]
    spread = np.divide(q * total - below, in_bucket, out=np.zeros_like(in_bucket), where=in_bucket > 0)
    values = np.where(in_bucket > 0, lower + (upper - lower) * spread, upper)
    highest = float(bounds[-2]) if bounds.size > 1 else np.nan  # a rank in the +Inf bucket
    values = np.where(np.isinf(upper), highest, values)
    filled = total > 0
    out[filled] = values[filled]
    return out


def smooth_quantiles(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """The q-quantile of each row of `cumulative` from a local lognormal fit; NaN for an empty row.

    Prometheus' linear interpolation assumes requests spread evenly inside a bucket; with the usual
    coarse buckets (0.1 s to 0.25 s) that hides a 50% slowdown or inflates a 6% drift several-fold.
    Latency is close to lognormal locally, for which probit(F) is linear in log(latency), so we draw
    that line through the two bucket bounds nearest the quantile whose counts on both sides are large
    enough (MIN_TAIL) to give a stable probit, and read the quantile off it, kept inside the bucket that
    holds the rank. With fewer than two such bounds we fall back to Prometheus' rule. All rows at once:
    the charts ask for one quantile per step of every window.
    """
    return _quantiles(q, bounds, cumulative)[0]


def _quantiles(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(smooth_quantiles, linear_quantiles) of the rows of `cumulative`: the linear ones are the fallback.
    Rows left to the fallback compute garbage (logs of 0, inf - inf) that np.where then discards."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _quantiles_of(q, bounds, cumulative)


def _quantiles_of(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cumulative = np.maximum.accumulate(cumulative, axis=1)
    index = _rank_bucket(q, cumulative)
    linear = _linear(q, bounds, cumulative, index)
    if not cumulative.size:
        return linear, linear
    rows, columns = cumulative.shape
    rows_at = np.arange(rows)
    total = cumulative[:, -1:]
    usable = (np.isfinite(bounds) & (bounds > 0)) & (np.minimum(cumulative, total - cumulative) >= MIN_TAIL)
    fitted = np.count_nonzero(usable, axis=1) >= 2  # MIN_TAIL >= 1: a fitted row has requests
    if not fitted.any():
        return linear, linear
    shares = cumulative / np.where(total > 0, total, 1.0)
    columns_at = np.arange(columns)
    low_at = np.where(usable & (shares < q), columns_at, -1).max(axis=1)  # the last usable bound below q
    high_at = np.where(usable & (shares >= q), columns_at, columns).min(axis=1)  # the first at or above
    lonely = fitted & ((low_at < 0) | (high_at >= columns))
    if lonely.any():  # q not between two usable bounds: the two usable bounds nearest it (ties: the lower)
        distance = np.where(usable[lonely], np.abs(shares[lonely] - q), np.inf)
        nearest = np.sort(np.argsort(distance, axis=1, kind="stable")[:, :2], axis=1)
        low_at[lonely], high_at[lonely] = nearest[:, 0], nearest[:, 1]
    low_at, high_at = np.where(fitted, low_at, 0), np.where(fitted, high_at, 0)
    # ndtri is the standard normal quantile (norm.ppf) without scipy.stats' per-call overhead.
    z_low, z_high = ndtri(shares[rows_at, low_at]), ndtri(shares[rows_at, high_at])
    fitted &= z_high > z_low
    log_low, log_high = np.log(bounds[low_at]), np.log(bounds[high_at])
    slope = np.divide(ndtri(q) - z_low, z_high - z_low, out=np.zeros(rows), where=fitted)
    estimate = np.exp(log_low + (log_high - log_low) * slope)
    floor = np.where(index > 0, bounds[np.maximum(index - 1, 0)], 0.0)
    return np.where(fitted, np.minimum(np.maximum(estimate, floor), bounds[index]), linear), linear


def bucket_matrix(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, bounds, counts[step, bucket]) from `le`-labelled bucket series, bounds ascending; a step
    with a NaN, infinite or negative count, or one no traffic explains, is left out (see `invalid_rows`)."""
    return _matrix(series)[:3]


def invalid_rows(series: list[Series]) -> int:
    """How many steps `bucket_matrix` leaves out."""
    return _matrix(series)[3]


def _matrix(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """`bucket_matrix` and `invalid_rows` from one pass over the series, built once per window: a release's
    quantile and tail metrics and their coverage all read the same window's buckets (evaluate cuts each
    window once), so the matrix is kept, read-only, for the same series objects (see `_MatrixCache`)."""
    return MATRICES.get(series)


def _built_matrix(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    steps, bounds, counts = _raw_buckets(series)
    keep = _kept(counts, len(steps))
    invalid = int((~keep).sum()) if counts.size else 0
    built = (steps, bounds, counts) if keep.all() else (steps[keep], bounds, counts[keep] if counts.size else counts)
    for array in built:
        array.flags.writeable = False  # shared by every reader of the window
    return (*built, invalid)


class _MatrixCache:
    """The last CACHEDMATRICES bucket matrices, by the identity of the series they were built from. The
    entry holds the series themselves, so their ids cannot be reused by other objects while it lives."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[int, ...], tuple[tuple[Series, ...], tuple[np.ndarray, np.ndarray, np.ndarray, int]]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        key = tuple(map(id, series))
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found[1]
        built = _built_matrix(series)
        with self.lock:
            self.entries[key] = (tuple(series), built)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return built

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


CACHEDMATRICES = 64  # a release reads at most a few histogram windows; a fleet's evaluation goes release by release
MATRICES = _MatrixCache(CACHEDMATRICES)


def _kept(counts: np.ndarray, steps: int) -> np.ndarray:
    """The valid rows of a bucket matrix whose request count (the +Inf bucket) some traffic explains."""
    if not counts.size:
        return np.zeros(steps, dtype=bool)
    keep = valid_steps(counts)
    keep[keep] &= plausible_steps(counts[keep][:, -1])
    return keep


def _raw_buckets(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, bounds, counts[step, bucket]): each bucket's series summed at every step any of them has (0
    where a bucket has none)."""
    groups = by_label(series, "le")
    parsed = sorted((float(le), items) for le, items in groups.items() if _is_bound(le))
    if not parsed or parsed[-1][0] != math.inf:
        return np.array([]), np.array([]), np.zeros((0, 0))
    aligned = _aligned([items[0] for _, items in parsed]) if all(len(items) == 1 for _, items in parsed) else None
    if aligned is not None:  # the usual answer: one series per bucket, all on the same steps
        return aligned.copy(), np.array([b for b, _ in parsed]), np.column_stack([items[0].values for _, items in parsed]).astype(np.float64)
    members = [(column, s) for column, (_, items) in enumerate(parsed) for s in items]
    times = np.concatenate([np.asarray(s.timestamps, dtype=np.float64) for _, s in members])
    values = np.concatenate([np.asarray(s.values, dtype=np.float64) for _, s in members])
    columns = np.repeat([column for column, _ in members], [len(s.timestamps) for _, s in members])
    steps, rows = np.unique(times, return_inverse=True)
    width = len(parsed)
    counts = np.bincount(rows * width + columns, weights=values, minlength=steps.size * width).reshape(steps.size, width)
    return steps, np.array([b for b, _ in parsed]), counts


def _aligned(series: list[Series]) -> np.ndarray | None:
    """The steps the series all share, in order without repeats; None when they do not."""
    steps = np.asarray(series[0].timestamps, dtype=np.float64)
    if not in_order(steps) or any(len(s.timestamps) != steps.size for s in series[1:]):
        return None
    if len(series) == 1:
        return steps
    # One comparison of the stacked steps instead of one call per bucket (a histogram has a dozen or more).
    return steps if bool((np.vstack([s.timestamps for s in series[1:]]) == steps).all()) else None


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
    b_side, c_side = window_quantiles(q, b_bounds, b_counts), window_quantiles(q, c_bounds, c_counts)
    b, c = _summary(q, b_side, b_counts, b_invalid), _summary(q, c_side, c_counts, c_invalid)
    verdict = VerdictBuilder(
        spec, TEST_NAME, b, c, _deferred_steps(q, b_steps, b_bounds, b_counts), _deferred_steps(q, c_steps, c_bounds, c_counts),
        distribution=_distribution(b_bounds, b_counts, c_bounds, c_counts),
    )
    if b.count < spec.min_count or c.count < spec.min_count:
        return verdict.nodata(
            f"too few requests to judge: baseline {b.count:.0f} and candidate {c.count:.0f}, "
            f"at least {spec.min_count} needed in each window"
        )
    if b.value is None or c.value is None:
        return verdict.nodata("the histogram has no finite bucket to interpolate in")
    b_blocks, c_blocks = b_side.blocks, c_side.blocks
    if len(b_blocks) < 2 or len(c_blocks) < 2:
        return verdict.nodata(f"too few time blocks with traffic ({len(b_blocks)} and {len(c_blocks)}; 2 needed)")
    ci_alpha = ci_alpha or alpha
    p_whole, low, high = _welch_log(c_blocks, b_blocks, ci_alpha, spec)
    # The window's second half on its own too (in as many blocks): a slowdown that starts mid-window (a
    # cache expiring, a job starting) splits the whole window's blocks in two groups, whose spread then
    # hides it. Two tests: each at half the alpha (Bonferroni).
    late = c_side.late
    p_late, late_low, late_high = _welch_log(late, b_blocks, ci_alpha, spec) if len(late) >= 2 else (1.0, low, high)
    if len(late) >= 2 and not _beyond(float(np.exp(np.log(late).mean() - np.log(b_blocks).mean())), spec):
        p_late = 1.0  # the second half's own rise must matter too, not only the whole window's

    p_value = min(1.0, 2 * min(p_whole, p_late))
    interval = f"{confidence_text(ci_alpha)} CI {(low - 1) * 100:+.0f}..{(high - 1) * 100:+.0f}%"
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


def _summary(q: float, side: WindowQuantiles, counts: np.ndarray, invalid: int) -> Summary:
    if not counts.size:
        return Summary(None, 0.0, "no usable histogram buckets (a histogram needs an le=\"+Inf\" bucket)", invalid)
    requests = float(counts[:, -1].sum())
    detail = f"p{q * 100:g} of {requests:.0f} requests"
    if side.linear is not None:
        detail += f"; Prometheus' linear histogram_quantile gives {side.linear * 1000:.0f} ms"
    if invalid:
        detail += f"; {plural(invalid, 'invalid step')} left out"
    return Summary(side.whole, requests, detail, invalid)


class WindowQuantiles(NamedTuple):
    """Everything the quantile verdict reads of one window's buckets, from one vectorised pass."""

    blocks: np.ndarray  # of each of the window's BLOCKS time blocks, those with a positive quantile
    late: np.ndarray  # the same of the window's second half
    whole: float | None  # of the whole window, smooth_quantile's
    linear: float | None  # of the whole window, Prometheus' linear interpolation


def window_quantiles(q: float, bounds: np.ndarray, counts: np.ndarray) -> WindowQuantiles:
    """The q-quantile of the time blocks of the window and of its second half, and of the whole window:
    the rows of one stacked matrix, so that one pass computes them all."""
    empty = np.array([], dtype=np.float64)
    if not counts.size:
        return WindowQuantiles(empty, empty, None, None)
    whole_blocks, late_blocks = _block_sums(counts), _block_sums(counts[len(counts) // 2:])
    smooth, linear = _quantiles(q, bounds, np.vstack([whole_blocks, late_blocks, counts.sum(axis=0)[np.newaxis, :]]))
    blocks_q, late_q = smooth[: len(whole_blocks)], smooth[len(whole_blocks): -1]
    return WindowQuantiles(blocks_q[blocks_q > 0], late_q[late_q > 0], _finite_or_none(smooth[-1]), _finite_or_none(linear[-1]))


def _deferred_steps(q: float, steps: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> Series:
    """The quantile at every step, for the charts: computed when one reads it (most of the verdict's cost)."""
    return DeferredSeries(lambda: _step_quantiles(q, steps, bounds, counts))


def _block_sums(counts: np.ndarray) -> np.ndarray:
    """The bucket counts summed over each of BLOCKS contiguous time blocks (series.blocks)."""
    starts = block_starts(len(counts), BLOCKS)
    if not starts.size:
        return np.zeros((0, counts.shape[1]))
    return np.add.reduceat(counts, starts, axis=0)


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def quantile_per_step(q: float, buckets: list[Series]) -> Series:
    """The q-quantile at each valid step of `le`-labelled bucket series (NaN where a step is empty)."""
    return _step_quantiles(q, *bucket_matrix(buckets))


def _step_quantiles(q: float, steps: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> Series:
    return Series({}, steps, smooth_quantiles(q, bounds, counts) if counts.size else np.array([], dtype=np.float64))


def _welch_log(
    candidate: np.ndarray, baseline: np.ndarray, alpha: float, spec: MetricSpec
) -> tuple[float, float, float]:
    """(p-value of H0: no harmful change, CI low, CI high) of candidate/baseline.

    On logs: d = mean log c - mean log b, se = sqrt(s_c^2/n_c + s_b^2/n_b), Welch-Satterthwaite
    degrees of freedom.
    """
    lc, lb = np.log(candidate), np.log(baseline)
    mean_c, mean_b = float(lc.sum()) / lc.size, float(lb.sum()) / lb.size
    diff = mean_c - mean_b
    # The sample variances over n - 1, as ndarray.var(ddof=1), without its per-call overhead.
    var_c, var_b = (float((d * d).sum()) / (d.size - 1) / d.size for d in (lc - mean_c, lb - mean_b))
    se = math.sqrt(var_c + var_b)
    dof = (var_c + var_b) ** 2 / (var_c**2 / (lc.size - 1) + var_b**2 / (lb.size - 1)) if se > 0 else 1.0
    sign = harmful_sign(spec.direction, diff)
    p_value = harmful_change_p_value(sign * diff, se, spec.direction, StudentT(dof)) if sign else 1.0
    half = StudentT(dof).ppf(1 - alpha / 2) * se
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
