"""Deploy detection, again and again: a front end that evaluates repeatedly (dashboard, watch mode, API)
reads only the time since its last scan, and finds what a whole scan would (simulated fleet, in-memory
metrics behind the one wiring)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from releasehealth import deploys
from releasehealth.deploys import discover
from releasehealth.simulator import demo, simulate

END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _fleet():
    return simulate(seed=5, end=END, services=6, hours=20, releases_per_service=4)


def _scan(wired, now: datetime):
    return discover(wired.sources, wired.catalogue.services, wired.catalogue.policy, now)


def _deploys(scan) -> dict[str, list[tuple[str, datetime, datetime | None]]]:
    return {name: [(d.version, d.started_at, d.last_seen) for d in found] for name, found in scan.by_service.items()}


def test_a_second_scan_reads_only_the_time_since_and_finds_what_a_whole_scan_finds() -> None:
    fleet = _fleet()
    latest = max(r.deployed_at for s in fleet.services for r in s.releases)
    before, after = latest - timedelta(minutes=20), latest + timedelta(minutes=25)
    wired = demo.of_fleet(fleet).wire()
    first = _scan(wired, before)
    again = _scan(wired, after)
    lookback = wired.catalogue.policy.lookback
    scanned = {q.end - q.start for qs in again.queries.values() for q in qs if q.template in ("first_seen", "last_seen")}
    assert scanned and max(scanned) < timedelta(hours=1) < lookback  # the time since, not the whole lookback
    whole = _scan(demo.of_fleet(fleet).wire(), after)  # a fresh wiring: no scan before
    assert _deploys(again) == _deploys(whole)
    newest = {name: found[-1][0] for name, found in _deploys(again).items()}
    assert _deploys(first) != _deploys(again) and any(  # the deploy between the two scans is found
        r.version == newest[s.name] for s in fleet.services for r in s.releases if before < r.deployed_at <= after
    )


def test_the_whole_lookback_is_read_again_after_full_rescan() -> None:
    wired = demo.of_fleet(_fleet()).wire()
    _scan(wired, END - deploys.FULL_RESCAN - timedelta(minutes=1))
    again = _scan(wired, END)
    lookback = wired.catalogue.policy.lookback
    # In two stages: a coarse scan of the lookback's whole coarse steps, then the lookback at every step.
    spans = {q.end - q.start for qs in again.queries.values() for q in qs if q.template == "first_seen"}
    assert max(spans) == lookback and len(spans) == 2 and min(spans) > lookback - 2 * deploys.COARSE_STEPS * wired.catalogue.policy.step


def test_a_scan_of_an_earlier_time_reads_the_whole_lookback() -> None:
    wired = demo.of_fleet(_fleet()).wire()
    _scan(wired, END)
    earlier = _scan(wired, END - timedelta(hours=3))
    whole = _scan(demo.of_fleet(_fleet()).wire(), END - timedelta(hours=3))
    assert _deploys(earlier) == _deploys(whole)


def test_a_scan_told_never_to_read_the_whole_lookback_again_reads_only_the_time_since() -> None:
    """Watch mode's scans: after the first, one query per template over the time since, hours later too."""
    fleet = _fleet()
    wired = demo.of_fleet(fleet).wire()
    start = END - timedelta(hours=3)
    discover(wired.sources, wired.catalogue.services, wired.catalogue.policy, start, full_rescan=timedelta.max)
    for minutes in range(30, 181, 30):
        now = start + timedelta(minutes=minutes)
        scan = discover(wired.sources, wired.catalogue.services, wired.catalogue.policy, now, full_rescan=timedelta.max)
        ran = {q for qs in scan.queries.values() for q in qs if q.template in ("first_seen", "last_seen")}
        assert sorted(q.template for q in ran) == ["first_seen", "last_seen"]
        assert max(q.end - q.start for q in ran) < timedelta(minutes=40)
        assert _deploys(scan) == _deploys(_scan(demo.of_fleet(fleet).wire(), now))  # what a whole scan finds
