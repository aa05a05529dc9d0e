"""Pure statistics and decisions: no I/O, no client libraries.

`judge` is the one entry into the statistics (classify each metric, score the release, recommend); a
backtest also re-judges one metric with another tolerance (`reclassify`) and re-scores a release whose
verdicts that changes (`score`, `recommend`). The
per-step views (`ratio_per_step`, `quantile_per_step`, `sum_series`) are what the charts of a service's
timeline show, computed as the judge computes them.
"""

from releasehealth.scoring.judging import FAILING, judge, metric_shares, reclassify, recommend, score
from releasehealth.scoring.latency import quantile_per_step
from releasehealth.scoring.ratio import ratio_per_step
from releasehealth.scoring.series import sum_series

__all__ = [
    "FAILING", "judge", "metric_shares", "quantile_per_step", "ratio_per_step", "reclassify", "recommend", "score", "sum_series",
]
