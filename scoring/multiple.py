"""False alarms under control: across a release's metrics, and across repeated checks of one release.

Across metrics: Holm's step-down procedure (Holm, "A simple sequentially rejective multiple test
procedure", Scandinavian Journal of Statistics 6, 1979) controls the family-wise error rate, the chance
that any metric of a good release fails, at alpha, whatever the dependence between metrics; it is
uniformly more powerful than Bonferroni. A rollback is costly and one false metric is enough to cause
it, so we control the family-wise rate rather than the false discovery rate (Benjamini-Hochberg).

Across checks: a pipeline that re-evaluates a rollout every few minutes gets several chances to see a
false regression. Each check at information fraction t (the share of the full window observed) may
spend only alpha*(t) - alpha*(t - d), where d is the fraction one check interval adds and
alpha*(t) = 2 - 2 Phi(z_{alpha/2} / sqrt(t)) is the O'Brien-Fleming-type spending function of Lan &
DeMets ("Discrete sequential boundaries for clinical trials", Biometrika 70, 1983). The increments
over all checks add up to alpha*(1) = alpha, so by the union bound the whole rollout's false-alarm
rate stays below alpha; early checks get little alpha, so only a large regression stops a rollout early.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.special import ndtr, ndtri


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values: p~_(i) = max over j <= i of min(1, (m - j + 1) p_(j)), in input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def spending(alpha: float, fraction: float) -> float:
    """alpha*(t): the alpha spent by information fraction t (O'Brien-Fleming-type, Lan-DeMets)."""
    if fraction <= 0:
        return 0.0
    if fraction >= 1:
        return alpha
    return float(2 - 2 * ndtr(ndtri(1 - alpha / 2) / fraction**0.5))


def check_alpha(alpha: float, fraction: float, interval: float | None) -> float:
    """The alpha one check may spend at information fraction `fraction`, when checks come every
    `interval` (a fraction of the full window); all of alpha when the release is checked once."""
    if interval is None or interval <= 0:
        return alpha
    fraction = min(1.0, max(0.0, fraction))
    return max(spending(alpha, fraction) - spending(alpha, fraction - interval), 0.0)
