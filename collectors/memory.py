"""In-memory sources of literal data, behind the same protocols as the real collectors: for the tests of the
layers above the collectors (the collectors themselves are tested against a real Prometheus and noida-db).

MemoryMetricSource answers a query with the series given for its template: those of the services the
query asks for, cut to its range ((start, end] at the query's step) or, for an instant query, as given.
MemoryLogSource counts, per window, the literal log lines given, as an Elasticsearch aggregation would,
samples their error and warn lines, and answers deploy events from a list.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from releasehealth.model import Deploy, LogLine, LogSettings, LogWindowData, Query, Series, Window
from releasehealth.queries.elasticsearch import WindowKey
from releasehealth.verdicts import SourceHealth

SAMPLED = ("error", "warn")


class MemoryMetricSource:
    """A MetricSource over literal series, by template name; every query it answered is kept in `queries`."""

    name = "memory"

    def __init__(self, series: Mapping[str, Sequence[Series]]) -> None:
        self.series = {template: list(items) for template, items in series.items()}
        self.queries: list[Query] = []

    def fetch(self, query: Query) -> list[Series]:
        self.queries.append(query)
        mine = [s for s in self.series.get(query.template, []) if s.labels.get(query.labels.service) in query.services]
        if query.step is None or query.start is None or query.end is None:
            return mine
        window = Window(query.start, query.end, query.step)
        return [cut for s in mine if (cut := s.between(window)).timestamps.size]

    def check(self) -> SourceHealth:
        return SourceHealth("prometheus", self.name, True, 0.0, "", datetime.now(UTC))


@dataclass(frozen=True)
class LoggedLine:
    """One log line of a service's version, as the log source holds it."""

    service: str
    version: str
    line: LogLine


class MemoryLogSource:
    """A LogSource over literal log lines and deploy events."""

    name = "memory"

    def __init__(self, lines: Sequence[LoggedLine], events: Sequence[Deploy] = ()) -> None:
        self.lines = list(lines)
        self.deploy_events = list(events)

    def fetch(
        self, keys: Sequence[WindowKey], settings: LogSettings, step: timedelta
    ) -> tuple[dict[str, LogWindowData], tuple[Query, ...]]:
        data = {key.name: self._window(key, settings.sample_size, step, settings.info_sample_size) for key in keys}
        return data, (Query(template="logs", text="(in memory)", source=self.name),)

    def events(self, services: Sequence[str], start: datetime, end: datetime) -> tuple[list[Deploy], Query | None]:
        found = [d for d in self.deploy_events if d.service in services and start <= d.started_at <= end]
        return sorted(found, key=lambda d: (d.service, d.started_at)), None

    def check(self) -> SourceHealth:
        return SourceHealth("elasticsearch", self.name, True, 0.0, "", datetime.now(UTC))

    def _window(self, key: WindowKey, sample_size: int, step: timedelta, info_sample_size: int = 0) -> LogWindowData:
        start, end = key.window.start.timestamp(), key.window.end.timestamp()
        if key.callers:
            return self._callers(key, sample_size)
        lines = [
            logged.line for logged in self.lines
            if logged.service == key.service and (not key.version or logged.version == key.version)
            and start <= logged.line.timestamp < end
        ]
        seconds = step.total_seconds()
        levels = {}
        for level in sorted({line.level for line in lines}):
            # Each step covers (t - step, t]: a line is counted at the end of its step, as the collector does.
            stamps = [np.floor(line.timestamp / seconds) * seconds + seconds for line in lines if line.level == level]
            at, counts = np.unique(np.array(stamps), return_counts=True)
            levels[level] = Series({"level": level}, at.astype(np.float64), counts.astype(np.float64))
        sampled = [line for line in lines if line.level in SAMPLED]
        error_types = Counter(line.error_type for line in lines if line.error_type)
        info = [line for line in lines if line.level == "info"]
        return LogWindowData(
            levels, dict(error_types), tuple(sampled[:sample_size]), len(sampled),
            info_sample=tuple(info[:info_sample_size]), info_sampled_from=len(info),
        )

    def _callers(self, key: WindowKey, sample_size: int) -> LogWindowData:
        """Other services' error and warn lines with every word of the key's service name, as the
        collector's `match` (operator and) finds them; each line says which service logged it."""
        start, end = key.window.start.timestamp(), key.window.end.timestamp()
        words = set(_words(key.service))
        lines = [
            dataclasses.replace(logged.line, service=logged.service) for logged in self.lines
            if logged.service != key.service and logged.line.level in SAMPLED and start <= logged.line.timestamp < end
            and words <= set(_words(logged.line.message))
        ]
        return LogWindowData({}, {}, tuple(lines[:sample_size]), len(lines))


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"\W+", text.lower()) if w]
