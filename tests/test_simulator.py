"""The simulated fleet: deterministic, realistic enough, and honest about its ground truth."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

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
                assert after.error_ratio == pytest.approx(before.error_ratio * after.factor)
            if after.label is ReleaseLabel.LATENCY:
                assert after.p95_latency == pytest.approx(before.p95_latency * after.factor)


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


def test_logs_follow_traffic_and_carry_the_labelled_faults() -> None:
    from releasehealth.simulator.logs import NEW_EXCEPTIONS, TEMPLATES, simulate_logs

    fleet = simulate(seed=7, end=END)
    logs = simulate_logs(fleet)
    for service in fleet.services:
        lines = logs.service(service.name)
        assert np.all(np.diff(lines.times) >= 0)
        hours = (lines.times % 86400) // 3600
        assert np.bincount(hours.astype(int), minlength=24).max() > 2 * max(1, np.bincount(hours.astype(int), minlength=24).min())
        new_types = {t.error_type for t in NEW_EXCEPTIONS}
        for index, release in enumerate(service.releases):
            mine = lines.template[lines.release == index]
            types = {TEMPLATES[t].error_type for t in mine.tolist()}
            assert bool(types & new_types) == (release.label is ReleaseLabel.NEW_EXCEPTION), (service.name, release)
    truth = logs.truth()
    assert any(v["label"] == "new_exception" and v["error_type"] in {t.error_type for t in NEW_EXCEPTIONS} for v in truth.values())


def test_logs_are_written_as_bulk_ndjson(tmp_path) -> None:
    import json

    from releasehealth.simulator.logs import simulate_logs, write_ndjson

    logs = simulate_logs(simulate(seed=7, end=END, services=1, hours=25))
    lines = write_ndjson(logs, tmp_path).read_text().splitlines()
    actions, docs = lines[0::2], [json.loads(line) for line in lines[1::2]]
    assert json.loads(actions[0]) == {"index": {"_index": "logs-user-service"}}
    first = docs[0]
    assert {"@timestamp", "service", "log", "message", "trace"} <= set(first)
    assert first["service"]["name"] == "user-service" and first["log"]["level"] in ("error", "warn", "info")
    assert json.loads(actions[-1]) == {"index": {"_index": "deploys"}} and "commit" in docs[-1]
