"""The simulated fleet: deterministic, realistic enough, and honest about its ground truth."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np

from releasehealth.simulator import ReleaseLabel, simulate
from releasehealth.simulator.openmetrics import write_openmetrics

END = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def test_the_same_seed_and_end_give_the_same_fleet() -> None:
    a, b = simulate(seed=3, end=END), simulate(seed=3, end=END)
    assert a.truth() == b.truth()
    assert all(np.array_equal(x.requests, y.requests) for x, y in zip(a.services, b.services, strict=True))
    assert simulate(seed=4, end=END).truth() != a.truth()


def test_the_fleet_has_eight_services_a_day_and_three_releases_each() -> None:
    fleet = simulate(seed=7, end=END)
    names = [s.name for s in fleet.services]
    assert len(names) == 8 and {"user-service", "order-service"} <= set(names)
    assert fleet.end - fleet.start >= timedelta(hours=24)
    labels = [r.label for s in fleet.services for r in s.releases[1:]]
    assert all(len(s.releases) >= 4 for s in fleet.services)  # the initial release and three deploys
    assert {ReleaseLabel.GOOD, ReleaseLabel.ERROR_RATIO, ReleaseLabel.LATENCY} <= set(labels)


def test_traffic_is_diurnal_and_noisy() -> None:
    service = simulate(seed=7, end=END).services[0]
    hours = (service.times % 86400) // 3600
    by_hour = np.array([service.requests[hours == h].mean() for h in range(24)])
    assert by_hour.max() > 2 * by_hour.min()  # a day and a night
    assert np.std(np.diff(service.requests)) > 0


def test_regressions_are_relative_to_the_release_they_replace() -> None:
    for service in simulate(seed=7, end=END).services:
        for before, after in zip(service.releases, service.releases[1:], strict=False):
            if after.label is ReleaseLabel.ERROR_RATIO:
                assert after.error_ratio == before.error_ratio * after.factor
            if after.label is ReleaseLabel.LATENCY:
                assert after.p95_latency == before.p95_latency * after.factor


def test_counts_of_a_window_are_what_the_counters_grew_by() -> None:
    service = simulate(seed=7, end=END).services[2]
    release = service.releases[2]
    start, end = release.deployed_at + timedelta(minutes=5), release.deployed_at + timedelta(minutes=35)
    times, counters = service.cumulative(release.version)
    at = lambda t: counters["requests"][np.searchsorted(times, t.timestamp())]  # noqa: E731
    assert service.counts(release.version, start, end)["requests"] == at(end) - at(start)


def test_a_new_version_starts_at_zero_at_its_deploy_instant() -> None:
    service = simulate(seed=7, end=END).services[0]
    for release in service.releases[1:]:
        times, counters = service.cumulative(release.version)
        assert times[0] == release.deployed_at.timestamp()
        assert counters["requests"][0] == 0


def test_openmetrics_groups_each_family_and_ends_with_eof() -> None:
    out = io.StringIO()
    write_openmetrics(simulate(seed=7, end=END, services=1, hours=25), out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "# TYPE http_requests counter" and lines[-1] == "# EOF"
    histogram_at = lines.index("# TYPE http_request_duration_seconds histogram")
    assert all(line.startswith("http_requests_total{") for line in lines[2:histogram_at])
    assert all(line.startswith("http_request_duration_seconds_") for line in lines[histogram_at + 2:-1])
