"""Coverage: a window is judged on the steps that hold valid data, and only when they are enough.

A window's span says nothing of its data: a source that answers a quarter of the steps (a scrape gap, a
partial answer, a proxy dropping points), or answers garbage (NaN, infinite or negative counts, more
errors than requests, a gauge outside its valid range), leaves the other steps out. A metric judged on
fewer valid steps than policy.min_window_share of the window is NO DATA, with the counts in the reason,
never a verdict on a sliver of the window.
"""

from __future__ import annotations

import dataclasses
import math

from releasehealth.model import MetricKind, Series
from releasehealth.scoring.gauge import in_range, per_step
from releasehealth.scoring.latency import bucket_matrix
from releasehealth.scoring.ratio import valid_ratio_steps
from releasehealth.verdicts import MetricInput


def valid_steps(item: MetricInput, side: dict[str, list[Series]]) -> int | None:
    """The steps of one window with valid data for this metric's kind; None when steps do not apply."""
    kind = item.spec.kind
    if kind in (MetricKind.RATIO, MetricKind.LOG_RATE):
        return int(valid_ratio_steps(side).size)
    if kind in (MetricKind.HISTOGRAM_QUANTILE, MetricKind.HISTOGRAM_TAIL):
        return int(bucket_matrix(side.get("buckets", []))[0].size)
    if kind is MetricKind.GAUGE:
        return int(in_range(per_step(side.get("value", [])), item.spec)[0].times.size)
    return None


def with_coverage(item: MetricInput, min_share: float) -> MetricInput:
    """The input, or the same marked absent (NO DATA) when a window holds valid data on fewer steps than
    `min_share` of the steps it spans (item.expected_steps; 0: not checked)."""
    if not item.expected_steps or item.error or item.absent:
        return item
    needed = math.ceil(min_share * item.expected_steps)
    counts = [valid_steps(item, side) for side in (item.baseline, item.candidate)]
    short = [(role, n) for role, n in zip(("baseline", "candidate"), counts, strict=True) if n is not None and n < needed]
    if not short:
        return item
    what = " and ".join(f"the {role} window {n}" for role, n in short)
    why = (
        f"too little valid data: {what} of {item.expected_steps} steps ({needed} needed; missing, partial or "
        "invalid answers leave steps out)"
    )
    return dataclasses.replace(item, absent=why)
