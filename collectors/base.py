"""The source protocols every collector implements; "no data" is an empty result, never an exception."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from releasehealth.model import Deploy, LogSettings, LogWindowData, Query, Series
from releasehealth.queries.elasticsearch import WindowKey
from releasehealth.verdicts import SourceHealth


class MetricSource(Protocol):
    """Runs rendered metric queries. Raises SourceUnavailable, QueryRejected or InvalidResponse."""

    name: str  # shown with every query that ran: the URL, or "simulated"

    def fetch(self, query: Query) -> list[Series]:
        """Return one Series per label set: a range over (start, end] at `step`, or one point at `end`
        when `query.step` is None."""
        ...

    def check(self) -> SourceHealth:
        """Return whether the source answers a trivial query, and how fast. Never raises."""
        ...


class LogSource(Protocol):
    """Reads log counts, message samples and deploy events. Raises SourceUnavailable, QueryRejected or
    InvalidResponse."""

    name: str

    def fetch(
        self, keys: Sequence[WindowKey], settings: LogSettings, step: timedelta
    ) -> tuple[dict[str, LogWindowData], tuple[Query, ...]]:
        """Return each window's data, keyed by `WindowKey.name`, and the queries that ran."""
        ...

    def events(self, services: Sequence[str], start: datetime, end: datetime) -> tuple[list[Deploy], Query | None]:
        """Return the recorded deploy events of `services` in [start, end] (none without a deploy index)."""
        ...

    def check(self) -> SourceHealth:
        ...
