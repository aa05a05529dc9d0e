"""Aligning and summing per-step series (pure numpy)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np

from releasehealth.model import Series
from releasehealth.scoring.ranks import median


def sum_by_time(series: Iterable[Series]) -> tuple[np.ndarray, np.ndarray]:
    """Return (timestamps, values): the union of all steps, each value the sum over the series.
    A NaN or infinite value makes its step's sum NaN or infinite, for `valid_steps` to drop."""
    series = list(series)
    if not series:
        return np.array([], dtype=np.float64), np.array([], dtype=np.float64)
    if len(series) == 1:  # the usual case: the template already aggregates a version to one series
        return _one_series(series[0])
    first = np.asarray(series[0].timestamps, dtype=np.float64)
    if in_order(first) and all(np.array_equal(first, s.timestamps) for s in series[1:]):
        # Series of one range query share its steps (a ratio's numerator by status code): no sort needed.
        return first, np.sum([np.asarray(s.values, dtype=np.float64) for s in series], axis=0)
    times = np.concatenate([np.asarray(s.timestamps, dtype=np.float64) for s in series])
    values = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in series])
    timestamps, index = np.unique(times, return_inverse=True)
    return timestamps, _summed(index, values, timestamps.size)


def in_order(times: np.ndarray) -> bool:
    """Whether the steps are in order without repeats, as the sources answer them (no sort needed)."""
    return times.size < 2 or bool(np.all(times[1:] > times[:-1]))


def _one_series(series: Series) -> tuple[np.ndarray, np.ndarray]:
    times, values = np.asarray(series.timestamps, dtype=np.float64), np.asarray(series.values, dtype=np.float64)
    if in_order(times):
        return times, values
    timestamps, index = np.unique(times, return_inverse=True)
    return timestamps, _summed(index, values, timestamps.size)


def _summed(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Per slot of `index`, the sum of its values; bincount is fast but turns inf - inf into NaN, as a sum
    of an inf and a -inf is: both are dropped by `valid_steps` all the same."""
    return np.bincount(index, weights=values, minlength=size)


def sum_series(series: Iterable[Series]) -> Series:
    """The series summed step by step into one (labels dropped)."""
    timestamps, values = sum_by_time(series)
    return Series({}, timestamps, values)


def on_steps(series: Iterable[Series], steps: np.ndarray) -> np.ndarray:
    """Return the summed values at `steps`; a step absent from every series is 0 (no increase)."""
    timestamps, values = sum_by_time(series)
    out = np.zeros(steps.size)
    if not timestamps.size:
        return out
    index = np.searchsorted(timestamps, steps)
    found = (index < timestamps.size) & (timestamps[np.minimum(index, timestamps.size - 1)] == steps)
    out[found] = values[index[found]]
    return out


def by_label(series: Iterable[Series], label: str) -> dict[str, list[Series]]:
    """Group series by the value of `label` (e.g. histogram buckets by `le`)."""
    groups: dict[str, list[Series]] = {}
    for s in series:
        groups.setdefault(s.labels.get(label, ""), []).append(s)
    return groups


@functools.lru_cache(maxsize=256)
def block_starts(size: int, count: int) -> np.ndarray:
    """The first step of each of `count` contiguous blocks of near-equal length that split `size`
    consecutive steps (fewer blocks when there are fewer steps), for np.add.reduceat. Kept (read-only):
    windows come in a handful of sizes, and every latency verdict asks for two."""
    edges = np.linspace(0, size, min(count, size) + 1).round().astype(int)
    starts = edges[:-1][edges[1:] > edges[:-1]]
    starts.flags.writeable = False
    return starts


# A step counting this many times the window's median step is no traffic that happened: it is the
# artefact of a counter reset (increase() extrapolating a restarted counter) or a garbled answer. Real
# bursts within one step are far smaller against a window of them; the step is left out and counted.
SPIKE_FACTOR = 100.0


def plausible_steps(counts: np.ndarray) -> np.ndarray:
    """A mask of the steps whose count is at most SPIKE_FACTOR times the median of the steps with traffic."""
    counts = np.asarray(counts, dtype=np.float64)
    busy = counts[counts > 0]
    if busy.size < 3:
        return np.ones(counts.size, dtype=bool)
    return counts <= SPIKE_FACTOR * median(busy)


def valid_steps(*columns: np.ndarray) -> np.ndarray:
    """A mask of the steps where every column is finite and not negative (counts and levels cannot be:
    such a step is a scrape gap artefact or garbage, and is left out rather than trusted)."""
    if not columns or len(columns[0]) == 0:
        return np.zeros(0, dtype=bool)
    mask = np.ones(len(columns[0]), dtype=bool)
    for column in columns:
        rows = np.asarray(column, dtype=np.float64).reshape(len(mask), -1)
        mask &= np.isfinite(rows).all(axis=1) & (rows >= 0).all(axis=1)
    return mask
