"""Human-readable numbers for reasons and front ends: ratios in percent, seconds in milliseconds."""

from __future__ import annotations

import math

from releasehealth.model import Tolerance


def format_value(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "seconds":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    return f"{value:.4g} {unit}".rstrip()


def format_absolute(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.2f} pp"
    if unit == "seconds":
        return f"{value * 1000:.0f} ms"
    return f"{value:.4g}"


def change_text(change: float | None) -> str:
    if change is None or math.isnan(change):
        return "no change computed"
    if math.isinf(change):
        return "new, from zero" if change > 0 else "-100%"
    return f"{change * 100:+.1f}%"


def tolerance_text(tolerance: Tolerance, unit: str) -> str:
    return f"+{tolerance.relative * 100:g}% and +{format_absolute(tolerance.absolute, unit)}"


def p_text(p_value: float) -> str:
    return f"p={p_value:.2g}"
