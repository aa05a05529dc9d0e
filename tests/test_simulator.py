"""The simulated fleet: deterministic, realistic enough, and honest about its ground truth."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from releasehealth.simulator import ReleaseLabel, simulate
from releasehealth.simulator.fleet import FAULTS as FAULTS_OF_THE_DEMO
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
    types = [k for k, line in enumerate(lines) if line.startswith("# TYPE ")]
    assert [lines[k] for k in types] == [
        "# TYPE http_requests counter",
        "# TYPE http_request_duration_seconds histogram",
        "# TYPE process_cpu_seconds counter",
        "# TYPE process_resident_memory_bytes gauge",
    ]
    prefixes = ("http_requests_total{", "http_request_duration_seconds_", "process_cpu_seconds_total{",
                "process_resident_memory_bytes{")
    for prefix, first, after in zip(prefixes, types, types[1:] + [len(lines) - 1], strict=True):
        assert all(line.startswith(prefix) for line in lines[first + 2:after]), prefix


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


# ---- resources (memory, CPU) and the accuracy scenario ------------------------------------------------


def test_every_version_exposes_memory_near_its_level_and_cpu_that_follows_traffic() -> None:
    service = simulate(seed=7, end=END).services[0]
    for release in service.releases:
        times, memory = service.gauge(release.version)
        settled = memory[times > release.deployed_at.timestamp() + 600]  # after the caches refill
        assert np.median(settled) == pytest.approx(release.memory_bytes, rel=0.06)
    _, counters = service.cumulative(service.releases[1].version)
    cpu, requests = np.diff(counters["cpu_seconds"]), np.diff(counters["requests"])
    assert np.corrcoef(cpu, requests)[0, 1] > 0.9


def test_a_new_version_exposes_memory_only_from_its_own_first_scrape() -> None:
    service = simulate(seed=7, end=END).services[1]
    for before, after in zip(service.releases, service.releases[1:], strict=False):
        assert service.gauge(before.version)[0][-1] == after.deployed_at.timestamp()
        assert service.gauge(after.version)[0][0] == after.deployed_at.timestamp() + 30


def test_the_default_scenario_has_no_resource_faults_and_good_releases_keep_their_level() -> None:
    for service in simulate(seed=7, end=END).services:
        assert all(r.leak_per_hour == 0 and r.traffic == 1.0 for r in service.releases)
        levels = [r.memory_bytes for r in service.releases]
        assert max(levels) / min(levels) < 1.11


def _accuracy(seed: int = 5):
    return simulate(seed=seed, end=END, services=10, releases_per_service=8, scenario="accuracy")


def test_the_accuracy_scenario_has_every_fault_at_every_size_and_every_good_variant() -> None:
    from releasehealth.simulator.fleet import FAULT_SIZES, GOOD_LABELS

    releases = [r for s in _accuracy().services for r in s.releases[1:]]
    cells = {(r.label, r.factor) for r in releases}
    assert {(label, size) for label, sizes in FAULT_SIZES.items() for size in sizes} <= cells
    assert set(GOOD_LABELS) <= {r.label for r in releases}
    assert {r.fault_size for r in releases if r.label is ReleaseLabel.LATENCY} == {"+10%", "+25%", "+50%"}
    assert {r.fault_size for r in releases if r.label is ReleaseLabel.ERROR_RATIO} == {"x1.5", "x2", "x5"}
    assert 0.4 <= sum(not r.label.is_regression for r in releases) / len(releases) <= 0.5


def test_good_variants_are_not_regressions_and_new_faults_are() -> None:
    assert not any(label.is_regression for label in (ReleaseLabel.GOOD_RAMP, ReleaseLabel.GOOD_MIX, ReleaseLabel.GOOD_NOISY))
    assert all(label.is_regression for label in (ReleaseLabel.MEMORY_LEAK, ReleaseLabel.CPU, ReleaseLabel.TRAFFIC_DROP))
    assert not ReleaseLabel.INITIAL.is_regression and not ReleaseLabel.GOOD.is_regression


def test_the_accuracy_scenario_has_low_traffic_services() -> None:
    rates = [s.base_rps for s in _accuracy().services]
    assert sum(0.5 <= r <= 3 for r in rates) == 3 and sum(r >= 4 for r in rates) == 7


def test_the_accuracy_scenario_is_deterministic_from_the_seed() -> None:
    a, b = _accuracy(), _accuracy()
    assert a.truth() == b.truth()
    for x, y in zip(a.services, b.services, strict=True):
        assert np.array_equal(x.requests, y.requests) and np.array_equal(x.memory, y.memory)
        assert np.array_equal(x.cpu_seconds, y.cpu_seconds) and np.array_equal(x.buckets, y.buckets)
    assert _accuracy(6).truth() != a.truth()


def test_faults_have_their_labelled_size_in_the_data() -> None:
    fleet = _accuracy()
    for service in fleet.services:
        for before, after in zip(service.releases, service.releases[1:], strict=False):
            if after.label is ReleaseLabel.MEMORY_LEAK:
                # Linear growth: the medians of minutes 5-10 and 60-65 after the deploy, at 7.5 and 62.5 min.
                times, memory = service.gauge(after.version)
                age = (times - after.deployed_at.timestamp()) / 3600
                early, late = (np.median(memory[(age > a) & (age <= a + 5 / 60)]) for a in (5 / 60, 1.0))
                leak = after.leak_per_hour
                assert late / early == pytest.approx((1 + leak * 62.5 / 60) / (1 + leak * 7.5 / 60), rel=0.05)
                assert leak >= after.factor - 1  # on top of any leak of the release it replaces
            if after.label is ReleaseLabel.CPU:
                assert after.cpu_per_request == pytest.approx(before.cpu_per_request * after.factor)
            if after.label is ReleaseLabel.TRAFFIC_DROP:
                assert after.traffic == after.factor == 0.6


def test_the_truth_carries_label_and_fault_size() -> None:
    releases = [r for s in _accuracy().truth()["services"] for r in s["releases"]]
    leak = next(r for r in releases if r["label"] == "memory_leak")
    assert leak["fault_size"].endswith("%/h") and leak["regression"] is True and leak["leak_per_hour"] > 0
    assert {"memory_bytes", "cpu_seconds_per_request", "traffic", "factor"} <= set(leak)


def test_an_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'chaos'"):
        simulate(seed=1, end=END, scenario="chaos")


def test_good_variants_change_the_workload_alike_in_both_windows() -> None:
    fleet = _accuracy()
    ramps = spikes = 0
    for service in fleet.services:
        mean_latency = service.latency_sum / np.maximum(service.requests, 1)
        for release in service.releases[1:]:
            at = release.deployed_at.timestamp()
            before = (service.times > at - 1800) & (service.times <= at)
            after = (service.times > at + 300) & (service.times <= at + 2100)
            if release.label is ReleaseLabel.GOOD_RAMP:
                ramps += 1
                # +24% from the ramp; the diurnal cycle can take back at most ~12% over 40 minutes.
                assert service.requests[after].sum() > service.requests[before].sum()
            if release.label is ReleaseLabel.GOOD_NOISY and service.base_rps >= 4:
                spikes += 1
                for window in (before, after):  # a spike at least doubles the typical latency, in each window
                    assert mean_latency[window].max() > 1.8 * np.median(mean_latency[window])
    assert ramps and spikes


def test_the_new_shapes_have_their_labelled_form_in_the_data() -> None:
    from releasehealth.simulator.fleet import EPISODE_FACTOR, JUDGED, LONE_SPIKE, SPIKE_CPU

    fleet = _accuracy()
    seen = set()
    for service in fleet.services:
        mean_latency = service.latency_sum / np.maximum(service.requests, 1)
        cost = service.cpu_seconds / np.maximum(service.requests, 1)
        for before, release in zip(service.releases, service.releases[1:], strict=False):
            at = release.deployed_at.timestamp()
            judged = (service.times > at + JUDGED[0]) & (service.times <= at + JUDGED[1])
            baseline = (service.times > at - 1800) & (service.times <= at)
            if release.label is ReleaseLabel.EPISODES and service.base_rps >= 4:
                seen.add(release.label)
                # round(share x 30) minutes of the judged window run slow: two scrapes each.
                slow = mean_latency[judged] > 0.6 * EPISODE_FACTOR * np.median(mean_latency[judged])
                assert slow.sum() == 2 * round(release.factor * 30)
            if release.label is ReleaseLabel.TAIL_LATENCY:
                seen.add(release.label)
                # The median bucket does not move; the slowest buckets fill.
                rows = service.buckets[judged].sum(axis=0), service.buckets[baseline].sum(axis=0)
                tails = [row[-6:].sum() / row.sum() for row in rows]
                assert tails[0] > tails[1]
            if release.label is ReleaseLabel.BASELINE_SPIKE and service.base_rps >= 4:
                seen.add(release.label)
                assert cost[baseline].max() > 0.3 * SPIKE_CPU * np.median(cost[baseline])
                assert release.cpu_per_request == pytest.approx(before.cpu_per_request * release.factor)
            if release.label is ReleaseLabel.GOOD_SPIKE and service.base_rps >= 4:
                seen.add(release.label)
                spikes = mean_latency[judged] > 0.6 * LONE_SPIKE * np.median(mean_latency[judged])
                assert spikes.sum() == 2  # one minute
            if release.label is ReleaseLabel.CONNECTIONS:
                seen.add(release.label)
                held = [np.median(service.connections[w]) for w in (judged, baseline)]
                assert held[0] > held[1]
    assert {ReleaseLabel.EPISODES, ReleaseLabel.TAIL_LATENCY, ReleaseLabel.CONNECTIONS} <= seen


def test_connections_are_small_integers_with_ties() -> None:
    service = _accuracy().services[0]
    values = service.connections
    assert np.all(values == np.round(values)) and values.min() >= 0
    assert np.unique(values).size < values.size / 100  # ties everywhere


def test_the_default_fleet_has_none_of_the_accuracy_shapes() -> None:
    from releasehealth.simulator.fleet import GOOD_LABELS

    labels = {r.label for s in simulate(seed=7, end=END).services for r in s.releases}
    assert labels <= {ReleaseLabel.INITIAL, ReleaseLabel.GOOD, *FAULTS_OF_THE_DEMO}
    assert not labels & (set(GOOD_LABELS) - {ReleaseLabel.GOOD})
