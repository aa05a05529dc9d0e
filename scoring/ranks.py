"""Average ranks, as scipy.stats.rankdata(method="average"), with the sizes of the groups of ties; medians.

The rank-sum tests rank two pooled windows for every p-value, and Kayenta's shift interval ranks them
again at every step of its root search: scipy's rankdata costs 0.2 ms a call in argument handling, this
a few microseconds beyond the sort. np.median likewise spends most of a call on a window of 200 steps in
its own checks and dispatch; `median` and `row_medians` partition or sort and read the middle.
"""

from __future__ import annotations

import math

import numpy as np


def average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the 1-based rank of each value, tied values sharing the mean of their ranks; the size of each group
    of equal values, in ascending order of value)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    edges = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1], [True])))
    sizes = np.diff(edges)
    ranks = np.empty(values.size)
    ranks[order] = np.repeat((edges[:-1] + edges[1:] + 1) / 2, sizes)  # ranks start + 1 .. end: their mean
    return ranks, sizes


def tie_term(sizes: np.ndarray) -> float:
    """sum(t^3 - t) over the groups of ties: the tie correction of the rank-sum variance."""
    t = sizes.astype(np.float64)
    return float((t**3 - t).sum())


def median(values: np.ndarray) -> float:
    """np.median of a 1-d array of finite values (NaN when empty): a partition around the middle."""
    size = values.size
    if size == 0:
        return math.nan
    half = size // 2
    if size % 2:
        return float(np.partition(values, half)[half])
    low, high = np.partition(values, (half - 1, half))[half - 1: half + 1]
    return float((low + high) / 2)


def row_medians(matrix: np.ndarray) -> np.ndarray:
    """np.median(matrix, axis=1) of a 2-d array of finite values with at least one column."""
    ordered = np.sort(matrix, axis=1)
    half = matrix.shape[1] // 2
    if matrix.shape[1] % 2:
        return ordered[:, half]
    middle: np.ndarray = (ordered[:, half - 1] + ordered[:, half]) / 2
    return middle


# Pairwise differences: the Hodges-Lehmann shift and its interval are order statistics of the n x m
# differences x_i - y_j (40,000 for two windows of 200 steps), whose sort took most of a gauge's verdict.
# The differences of two sorted samples form a matrix sorted along its rows and columns, so a thinned grid
# of it (every stride-th x and y) tells near which values each wanted order statistic lies: only the
# differences between two grid values around it are made and sorted, and the count of those below the
# lower one gives the rank. A bracket that turns out to miss it is widened; the whole sort is the last resort.
THINNED = 48  # the most points of each sample kept in the grid
BRACKET = 12  # grid ranks on each side of the estimate, at first
SMALL_PRODUCT = 4096  # up to this many differences, sorting them all is as fast


def difference_order_statistics(x: np.ndarray, y: np.ndarray, ranks: list[int]) -> np.ndarray:
    """np.sort(np.subtract.outer(x, y).ravel())[ranks] for finite x and y, without the whole sort."""
    size = x.size * y.size
    if size <= SMALL_PRODUCT:
        return np.sort(np.subtract.outer(x, y).ravel())[ranks]
    xs, ys = np.sort(x), np.sort(y)
    stride = -(-max(xs.size, ys.size) // THINNED)
    grid = np.sort(np.subtract.outer(xs[stride // 2:: stride], ys[stride // 2:: stride]).ravel())
    if np.count_nonzero(grid[1:] == grid[:-1]) > grid.size // 4:
        # Counts (connections, queue lengths) tie heavily: brackets then hold whole groups of ties, and
        # numpy sorts such differences fast (measured at 200 x 200 steps: 0.14 ms, brackets 0.27).
        return np.sort(np.subtract.outer(x, y).ravel())[ranks]
    # A difference is rounded by at most this much, and so is a bound compared with it.
    slack = 8 * np.finfo(np.float64).eps * max(float(np.abs(xs).max()), float(np.abs(ys).max()), 1e-300)
    found = []
    for rank in ranks:
        at, width, value = rank * grid.size // size, BRACKET, None
        while value is None and width < grid.size:
            low, high = _around(grid, at - width, at + width)
            value = _in_bracket(xs, ys, rank, low, high, slack)
            width *= 4
        if value is None:  # the bracket held it at every width tried: never seen, exact all the same
            return np.sort(np.subtract.outer(x, y).ravel())[ranks]
        found.append(value)
    return np.array(found)


def _around(grid: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """The grid's largest value below grid[first] and smallest above grid[last] (strictly: ties of a bound
    fall inside), -inf and inf past its ends."""
    below = int(np.searchsorted(grid, grid[first], side="left")) - 1 if first > 0 else -1
    above = int(np.searchsorted(grid, grid[last], side="right")) if last < grid.size - 1 else grid.size
    return (float(grid[below]) if below >= 0 else -math.inf), (float(grid[above]) if above < grid.size else math.inf)


def _differences(xs: np.ndarray, ys: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """x_i - y_j for every i and first_i <= j < last_i."""
    counts = np.maximum(last - first, 0)
    rows = np.repeat(np.arange(xs.size), counts)
    offsets = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    differences: np.ndarray = xs[rows] - ys[first[rows] + offsets]
    return differences


def _in_bracket(xs: np.ndarray, ys: np.ndarray, rank: int, low: float, high: float, slack: float) -> float | None:
    """The difference of 0-based `rank` when it lies inside (low, high), else None. Row i's differences
    inside are those with y in [x_i - high, x_i - low]: a contiguous run of the sorted y. A difference
    within `slack` of a bound may be classed on either side of it, so the answer must lie clear of both:
    then everything classed below is smaller and everything above larger, whichever side it fell on."""
    first = np.searchsorted(ys, xs - high, side="left")
    last = np.searchsorted(ys, xs - low, side="right")
    below = int((ys.size - last).sum())
    inside = np.sort(_differences(xs, ys, first, last))
    at = rank - below
    if not 0 <= at < inside.size:
        return None
    value = float(inside[at])
    return value if low + slack < value < high - slack else None
