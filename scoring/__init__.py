"""Pure statistics and decisions: no I/O, no client libraries.

`judge` is the one entry into the statistics (classify each metric, score the release, recommend). The
per-step views (`ratio_per_step`, `quantile_per_step`, `sum_series`) are what the charts of a service's
timeline show, computed as the judge computes them.
"""

from releasehealth.scoring.judging import judge
from releasehealth.scoring.latency import quantile_per_step
from releasehealth.scoring.ratio import ratio_per_step
from releasehealth.scoring.series import sum_series

__all__ = ["judge", "quantile_per_step", "ratio_per_step", "sum_series"]
