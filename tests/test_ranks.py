"""The judge's own order statistics against numpy's and scipy's: ranks with ties, medians."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import rankdata

from releasehealth.scoring.ranks import average_ranks, median, row_medians, tie_term


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
