"""The judge's own order statistics against numpy's and scipy's: ranks with ties, medians, order statistics
of pairwise differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import rankdata

from releasehealth.scoring import ranks
from releasehealth.scoring.ranks import average_ranks, difference_order_statistics, median, row_medians, tie_term


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 50, 199, 200])
def test_medians_are_numpys(size: int) -> None:
    rng = np.random.default_rng(size)
    for values in (rng.normal(size=size), rng.integers(0, 4, size).astype(np.float64)):  # ties included
        assert median(values) == np.median(values)
        matrix = np.vstack([values, values[::-1] * 2, np.sort(values)])
        assert np.array_equal(row_medians(matrix), np.median(matrix, axis=1))


def test_the_median_of_nothing_is_nan() -> None:
    assert math.isnan(median(np.array([], dtype=np.float64)))


def test_average_ranks_are_scipys_with_the_sizes_of_ties() -> None:
    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    ranks, sizes = average_ranks(values)
    assert np.array_equal(ranks, rankdata(values))
    assert sizes.tolist() == [2, 1, 3]
    assert tie_term(sizes) == (8 - 2) + 0 + (27 - 3)


def _samples(rng: np.random.Generator, kind: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == 0:  # a shifted level
        return rng.normal(size=n), rng.normal(size=m) + rng.normal()
    if kind == 1:  # memory in bytes: large values, differences rounded
        return rng.lognormal(size=n) * 1e9, rng.lognormal(size=m) * 1e9
    if kind == 2:  # random walks: trends, far from any distribution
        return np.cumsum(rng.normal(size=n)), np.cumsum(rng.normal(size=m))
    if kind == 3:  # counts: heavy ties
        return rng.poisson(6, size=n).astype(np.float64), rng.poisson(7, size=m).astype(np.float64)
    # values a few ulps apart, where rounding decides which side of a bound a difference falls
    return 1 + rng.integers(0, 5, size=n) * np.finfo(np.float64).eps, 1 + rng.integers(0, 5, size=m) * np.finfo(np.float64).eps


def test_order_statistics_of_pairwise_differences_are_those_of_the_whole_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    bracketed: list[bool] = []
    in_bracket = ranks._in_bracket

    def seen(*args: object) -> float | None:
        found = in_bracket(*args)  # type: ignore[arg-type]
        bracketed.append(found is not None)
        return found

    monkeypatch.setattr(ranks, "_in_bracket", seen)
    for trial in range(400):
        n, m = (int(v) for v in rng.integers(1, 260, size=2))
        x, y = _samples(rng, trial % 5, n, m)
        size = n * m
        wanted = sorted({0, size - 1, (size - 1) // 2, size // 2, int(rng.integers(0, size))})
        assert np.array_equal(difference_order_statistics(x, y, wanted), np.sort(np.subtract.outer(x, y).ravel())[wanted]), (trial, n, m)
    assert sum(bracketed) > 0.8 * len(bracketed)  # the brackets, not the fallback, answered
