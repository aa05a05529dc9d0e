"""Fetching a fleet's windows: which spans are read, in how many queries, and that the way they are split
changes no verdict (in-memory sources behind the one wiring; the real Prometheus in test_prometheus_source)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from releasehealth import fetch
from releasehealth.evaluate import evaluate_fleet
from releasehealth.fetch import split_span
from releasehealth.simulator import demo, simulate

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_services_whose_windows_lie_apart_are_read_in_two_queries_each_over_its_own_span() -> None:
    covered = {"a": (_at(0), _at(60)), "b": (_at(10), _at(70)), "c": (_at(90), _at(150)), "d": (_at(95), _at(152))}
    assert split_span(covered) == [(["a", "b"], _at(0), _at(70)), (["c", "d"], _at(90), _at(152))]


def test_services_whose_windows_overlap_are_read_in_one_query() -> None:
    covered = {"a": (_at(0), _at(60)), "b": (_at(10), _at(70)), "c": (_at(20), _at(75))}
    assert split_span(covered) == [(["a", "b", "c"], _at(0), _at(75))]


def test_every_service_is_read_once_over_all_its_windows_whatever_the_split() -> None:
    covered = {f"s{k}": (_at(7 * k), _at(7 * k + 45 + (k % 3) * 20)) for k in range(40)}
    parts = split_span(covered)
    assert 1 <= len(parts) <= 2
    names = [name for part, _, _ in parts for name in part]
    assert sorted(names) == sorted(covered)
    for part, start, end in parts:
        assert all(start <= covered[name][0] and covered[name][1] <= end for name in part)


def test_splitting_the_span_changes_no_verdict_and_reads_fewer_points(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = simulate(seed=3, end=T0, services=12, hours=30, releases_per_service=4)
    wired = demo.of_fleet(fleet).wire()
    services, policy = wired.catalogue.services, wired.catalogue.policy
    split = evaluate_fleet(wired.sources, services, policy, now=fleet.end)
    monkeypatch.setattr(fetch, "SPLIT_SAVING", 1.0)  # never split
    whole = evaluate_fleet(wired.sources, services, policy, now=fleet.end)

    def outcome(evaluations: list) -> list[tuple[str, str, float | None]]:
        return [(e.service, e.recommendation.action.value, e.score.score if e.score else None) for e in evaluations]

    assert outcome(split) == outcome(whole)
    spans = {(q.start, q.end, q.services) for e in split for q in e.queries if q.step is not None}
    single = {(q.start, q.end, q.services) for e in whole for q in e.queries if q.step is not None}
    read = sum((end - start).total_seconds() * len(names) for start, end, names in spans if start and end)
    read_whole = sum((end - start).total_seconds() * len(names) for start, end, names in single if start and end)
    assert read < read_whole
