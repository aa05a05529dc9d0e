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
