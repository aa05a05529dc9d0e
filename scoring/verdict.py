"""Builds a MetricVerdict with a one-sentence reason that carries the numbers, the test and the tolerance."""

from __future__ import annotations

import math
from typing import Protocol

from releasehealth.format import change_text, format_value, p_text, tolerance_text
from releasehealth.model import Classification, Direction, MetricSpec, Series
from releasehealth.verdicts import Distribution, MetricVerdict, Summary


class NullDistribution(Protocol):
    """A null distribution (scoring.distributions.NORMAL, StudentT(dof), or a frozen scipy one): the tests
    only read its survival function."""

    def sf(self, x: float, /) -> float: ...


def relative_change(baseline: float, candidate: float) -> float:
    """(candidate - baseline) / baseline; infinite when a zero baseline becomes positive."""
    if baseline:
        return (candidate - baseline) / baseline
    return math.inf if candidate > baseline else 0.0


def harmful_sign(direction: Direction, difference: float) -> int:
    """+1 if the change is a harmful rise, -1 a harmful fall, 0 if it is harmless (or nil)."""
    if difference == 0:
        return 0
    sign = 1 if difference > 0 else -1
    allowed = {Direction.INCREASE: 1, Direction.DECREASE: -1}.get(direction, sign)
    return sign if sign == allowed else 0


def tolerance_margin(spec: MetricSpec, baseline: float) -> float:
    """How far the metric may move in the harmful direction: the larger of the relative and absolute
    tolerances, in the metric's unit."""
    return max(spec.tolerance.relative * abs(baseline), spec.tolerance.absolute)


def beyond_margin_p_value(excess: float, se: float, direction: Direction, distribution: NullDistribution) -> float:
    """P-value of the one-sided test H0: the harmful change is at most the tolerance margin.

    `excess` is the harmful change minus the margin; `se` its standard error; `distribution` the
    frozen scipy null distribution of excess/se. When both directions hurt, the observed direction
    was chosen after looking, so the p-value is doubled (Bonferroni over the two directions).
    """
    if se <= 0:
        return 0.0 if excess > 0 else 1.0
    p_value = float(distribution.sf(excess / se))
    return min(1.0, 2 * p_value) if direction is Direction.EITHER else p_value


def harmful_change_p_value(change: float, se: float, direction: Direction, distribution: NullDistribution) -> float:
    """P-value of the one-sided test H0: no harmful change; `change` is the harmful change (>= 0)."""
    return beyond_margin_p_value(change, se, direction, distribution)


class VerdictBuilder:
    """Builds the MetricVerdict of one comparison with a one-sentence reason carrying the numbers."""

    def __init__(
        self, spec: MetricSpec, test: str, baseline: Summary, candidate: Summary,
        b_series: Series | None, c_series: Series | None, distribution: Distribution | None = None,
    ) -> None:
        self.spec, self.test, self.baseline, self.candidate = spec, test, baseline, candidate
        self.b_series, self.c_series, self.distribution = b_series, c_series, distribution

    def values_text(self) -> str:
        unit = self.spec.unit
        return f"{format_value(self.candidate.value, unit)} vs {format_value(self.baseline.value, unit)}"

    def make(
        self, classification: Classification, why: str, change: float | None = None, p_value: float | None = None
    ) -> MetricVerdict:
        prefix = f"{self.spec.name} {classification.value}: "
        if self.candidate.value is not None and self.baseline.value is not None:
            prefix += f"{self.values_text()} ({change_text(change)}), "
        suffix = "; critical" if self.spec.critical and classification in (Classification.HIGH, Classification.LOW) else ""
        if self.spec.muted:
            # A dry-run HIGH beside a PROMOTE must not read as an oversight.
            suffix += "; muted: shown, not counted"
        return MetricVerdict(
            metric=self.spec.name,
            classification=classification,
            reason=prefix + why + suffix,
            baseline=self.baseline,
            candidate=self.candidate,
            unit=self.spec.unit,
            change=change,
            p_value=p_value,
            test=self.test,
            tolerance=self.spec.tolerance,
            critical=self.spec.critical,
            group=self.spec.group,
            baseline_series=self.b_series,
            candidate_series=self.c_series,
            distribution=self.distribution,
        )

    def nodata(self, why: str) -> MetricVerdict:
        return self.make(Classification.NODATA, why)

    def decide(self, p_value: float, alpha: float, interval: str, detail: str) -> MetricVerdict:
        """HIGH/LOW only for a harmful change that is both credible (p < alpha) and beyond the tolerance
        margin (the measured change exceeds it); PASS otherwise, saying which condition failed."""
        b, c = self.baseline.value, self.candidate.value
        # Every classifier returns NODATA before deciding when a window has no value (gauge: no finite step;
        # quantile: checked; ratio: fewer requests than min_count >= 1), so both are set here.
        assert b is not None and c is not None
        change = relative_change(b, c)
        tolerance = tolerance_text(self.spec.tolerance, self.spec.unit)
        sign = harmful_sign(self.spec.direction, c - b)
        beyond = abs(c - b) > tolerance_margin(self.spec, b)
        if sign and beyond and p_value < alpha:
            label = Classification.HIGH if sign > 0 else Classification.LOW
            why = f"{interval}, beyond tolerance {tolerance}; credible ({p_text(p_value)}, {detail}, {self.test})"
            return self.make(label, why, change, p_value)
        if not sign:
            why = "no change in the harmful direction" if c == b else "a change in the harmless direction"
        elif not beyond:
            why = f"within tolerance {tolerance}"
        else:
            why = f"beyond tolerance {tolerance} but not credible ({p_text(p_value)} >= {alpha:.2g})"
        return self.make(Classification.PASS, f"{why}; {interval}, {detail}", change, p_value)
