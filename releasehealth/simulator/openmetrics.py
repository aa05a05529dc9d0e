"""Writes a simulated fleet as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.

Names follow the generic preset (prometheus_client conventions): the counter family `http_requests`
(`http_requests_total{service,version,code}`), the histogram `http_request_duration_seconds`, and the
process collector's counter `process_cpu_seconds_total` and gauge `process_resident_memory_bytes`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from releasehealth.simulator.fleet import BUCKETS, Fleet, SimulatedService


def escape_label_value(value: str) -> str:
    """OpenMetrics label-value escaping: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items()) + "}"


def _lines(name: str, labels: str, times: np.ndarray, values: np.ndarray) -> Iterator[str]:
    prefix = name + labels + " "
    for value, at in zip(values.tolist(), times.tolist(), strict=True):
        yield f"{prefix}{round(value, 6)} {at}\n"


def _counter_series(service: SimulatedService) -> Iterator[str]:
    for release in service.releases:
        times, cum = service.cumulative(release.version)
        ok = cum["requests"] - cum["errors"] - cum["client_errors"]
        for code, values in (("200", ok), ("404", cum["client_errors"]), ("500", cum["errors"])):
            labels = _labels(service=service.name, version=release.version, code=code)
            yield from _lines("http_requests_total", labels, times, values)


def _histogram_series(service: SimulatedService) -> Iterator[str]:
    bounds = [repr(b) for b in BUCKETS] + ["+Inf"]
    for release in service.releases:
        times, cum = service.cumulative(release.version)
        cumulative_buckets = np.cumsum(cum["buckets"], axis=1)
        base = dict(service=service.name, version=release.version)
        for column, le in enumerate(bounds):
            labels = _labels(**base, le=le)
            yield from _lines("http_request_duration_seconds_bucket", labels, times, cumulative_buckets[:, column])
        yield from _lines("http_request_duration_seconds_sum", _labels(**base), times, cum["latency_sum"])
        yield from _lines("http_request_duration_seconds_count", _labels(**base), times, cum["requests"])


def _cpu_series(service: SimulatedService) -> Iterator[str]:
    for release in service.releases:
        times, cum = service.cumulative(release.version)
        yield from _lines("process_cpu_seconds_total", _labels(service=service.name, version=release.version), times, cum["cpu_seconds"])


def _memory_series(service: SimulatedService) -> Iterator[str]:
    for release in service.releases:
        times, values = service.gauge(release.version)
        yield from _lines("process_resident_memory_bytes", _labels(service=service.name, version=release.version), times, values)


FAMILIES = (
    ("http_requests", "counter", "Requests served, by status code.", _counter_series),
    ("http_request_duration_seconds", "histogram", "Request latency.", _histogram_series),
    ("process_cpu_seconds", "counter", "Total user and system CPU time spent in seconds.", _cpu_series),
    ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", _memory_series),
)


def write_openmetrics(fleet: Fleet, out: TextIO) -> None:
    """Write every family (counters, histogram, gauge) with all its samples together, then `# EOF`."""
    for name, kind, help_text, series in FAMILIES:
        out.write(f"# TYPE {name} {kind}\n# HELP {name} {help_text}\n")
        for service in fleet.services:
            out.writelines(series(service))
    out.write("# EOF\n")


def write_files(fleet: Fleet, folder: Path) -> tuple[Path, Path]:
    """Write `fleet.om` (OpenMetrics) and `truth.json` (ground truth) into `folder`; return both paths."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    metrics, truth = folder / "fleet.om", folder / "truth.json"
    with metrics.open("w", encoding="utf-8") as out:
        write_openmetrics(fleet, out)
    truth.write_text(json.dumps(fleet.truth(), indent=2), encoding="utf-8")
    return metrics, truth
