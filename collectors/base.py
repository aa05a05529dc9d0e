"""The source protocols every collector implements; "no data" is an empty result, never an exception."""

from __future__ import annotations

from typing import Protocol

from releasehealth.model import Query, Series, SourceHealth


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
