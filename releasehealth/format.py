"""Human-readable numbers for reasons and front ends: ratios in percent, seconds in milliseconds, bytes
in MiB or GiB."""

from __future__ import annotations

import math

from releasehealth.model import Tolerance


def format_value(value: float | None, unit: str, sign: bool = False) -> str:
    """`value` in `unit`, signed (+/-) when `sign` (for shifts and slopes)."""
    if value is None or not math.isfinite(value):
        return "no data"
    plus = "+" if sign else ""
    if unit == "ratio":
        return f"{value * 100:{plus}.2f}%"
    if unit == "seconds":
        if abs(value) >= 10:
            return f"{value:{plus}.1f} s"
        # Three significant digits below 10 ms: CPU per request is a few ms, where whole ms say nothing.
        return f"{value * 1000:{plus}.0f} ms" if abs(value) >= 0.01 else f"{value * 1000:{plus}.3g} ms"
    if unit == "bytes":
        scaled, suffix = (value / 2**30, "GiB") if abs(value) >= 2**30 else (value / 2**20, "MiB")
        return f"{scaled:{plus}.3g} {suffix}"
    return f"{value:{plus}.4g} {unit}".rstrip()


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
