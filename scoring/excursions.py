"""Excursions of counted ratios: steps whose count the baseline's rate cannot explain, counted.

A regression that comes in episodes (one minute in six at 3x latency, the rest as before) hides from a
test on window totals: the medians stay put, and the total dilutes the slow minutes into an increase
that the step-to-step spread (the quasi-binomial dispersion) explains. One step at a time it is plain:
a minute with 40% of its requests beyond the baseline's p99 bound is impossible at the baseline's rate.

Each step is tested on its own against the baseline's ratio widened by the tolerance margin, with the
exact binomial tail of its count scaled down by the dispersion of the baseline's steps (the quasi-
likelihood's effective sample size, McCullagh & Nelder, Generalized Linear Models, 2nd ed., §4.5; exact,
so that one slow request in a step of thirty at a rate near zero is no excursion, as a normal z would
call it). A step whose tail probability is below NOMINAL_RATE is an excursion: a control chart on counts
(Montgomery, Introduction to Statistical Quality Control, 7th ed., ch. 7). Real steps are burstier than
any model, so the chance of an excursion under H0 is taken as the larger of NOMINAL_RATE and the share of
the baseline's own steps that are bursts: beyond the binomial tail of its ordinary step (the median step's
ratio, no margin, no dispersion, the strictest reading), so that a baseline with bursts of its own, noisy
neighbours for instance, excuses bursts of another size in the candidate.

Episodes, not steps, are counted: a slow minute that straddles two steps (a one-minute event rarely
aligns with the evaluation's steps) is one run of consecutive excursion steps. One episode is never a
regression (MIN_EPISODES): a garbage collection, a noisy neighbour, a cold cache after the deploy, and no
count of one event tells it from a release's fault. The p-value of r episodes in n_c candidate steps is
the binomial tail P(K >= r), K ~ Binomial(n_c, rate), conservative because r never exceeds the number of
excursion steps K counts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from releasehealth.scoring.distributions import binomial_sf

NOMINAL_RATE = 1e-4  # the per-step chance that a step of an unchanged release is an excursion
MIN_EPISODES = 2


class Excursions(NamedTuple):
    """The candidate's episodes beyond the baseline's rate, and how surprising that many are."""

    p_value: float
    episodes: int  # runs of consecutive excursion steps in the candidate
    steps: int  # excursion steps in the candidate
    of: int  # candidate steps judged
    baseline_steps: int  # excursion steps in the baseline, against its own rate
    limit: float  # the ratio the steps are tested against: the baseline's widened by the margin
    sign: int  # +1: a rise is harmful, -1: a fall, 0: no harmful side


NONE = Excursions(1.0, 0, 0, 0, 0, float("nan"), 0)


def episodes_p_value(episodes: int, candidate_steps: int, baseline_excursions: int, baseline_steps: int) -> float:
    """P(K >= episodes) for K ~ Binomial(candidate_steps, rate), rate the larger of NOMINAL_RATE and the
    baseline's own share of excursion steps; 1 below MIN_EPISODES."""
    if episodes < MIN_EPISODES or candidate_steps <= 0:
        return 1.0
    rate = max(NOMINAL_RATE, baseline_excursions / baseline_steps) if baseline_steps > 0 else 1.0
    return binomial_sf(episodes - 1, candidate_steps, min(rate, 1.0))


def excursion_steps(numerator: np.ndarray, denominator: np.ndarray, limit: float, dispersion: float, sign: int) -> np.ndarray:
    """The steps whose count is beyond `limit` x requests with tail probability below NOMINAL_RATE: for
    sign +1, P(X >= x); for -1, P(X <= x); X ~ Binomial(requests, limit) on counts divided by the dispersion.
    Steps without requests are never excursions."""
    n = denominator / dispersion
    x = numerator / dispersion
    limit = min(max(limit, 0.0), 1.0)
    tail = np.ones(n.shape)
    used = (n > 0) & (sign * (x - n * limit) > 0)
    if limit <= 0 or limit >= 1:
        tail[used] = 0.0  # any count beyond a rate of 0 (or short of 1) is impossible under it
    elif sign > 0:  # P(X >= x) = I_limit(x, n - x + 1), the regularized incomplete beta, for real x and n
        tail[used] = special.betainc(x[used], n[used] - x[used] + 1, limit)
    else:  # P(X <= x) = I_(1 - limit)(n - x, x + 1)
        tail[used] = special.betainc(n[used] - x[used], x[used] + 1, 1 - limit)
    excursion: np.ndarray = tail < NOMINAL_RATE
    return excursion


def runs(mask: np.ndarray) -> int:
    """The number of runs of consecutive True values."""
    flags = np.asarray(mask, dtype=bool)
    return int(np.count_nonzero(flags[1:] & ~flags[:-1]) + (1 if flags.size and flags[0] else 0))
