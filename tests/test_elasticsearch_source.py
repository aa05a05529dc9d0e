"""ElasticsearchLogSource against noida-db's Elasticsearch API holding the simulated logs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from elasticsearch import Elasticsearch

from releasehealth.collectors.elasticsearch import MAX_MESSAGE, ElasticsearchLogSource
from releasehealth.errors import QueryRejected, SourceUnavailable
from releasehealth.model import LogFields, LogSettings, Window
from releasehealth.queries import elasticsearch as dsl
from releasehealth.queries.elasticsearch import WindowKey
from releasehealth.scoring.signatures import compare_callers
from releasehealth.simulator import Fleet
from releasehealth.simulator.logs import (
    INDEX_MAPPINGS,
    LEVELS,
    TEMPLATES,
    FleetLogs,
    index_name,
)
from releasehealth.verdicts import SideTotals
from testing.servers import ElasticsearchServer, free_port

STEP = timedelta(minutes=1)
SETTINGS = LogSettings(index="logs-{service}", info_sample_size=0)


def _windows(fleet: Fleet, service_index: int, release_index: int) -> tuple[WindowKey, WindowKey]:
    service = fleet.services[service_index]
    release, previous = service.releases[release_index], service.releases[release_index - 1]
    deploy = release.deployed_at
    baseline = Window(deploy - timedelta(minutes=30), deploy, STEP)
    candidate = Window(deploy + timedelta(minutes=5), deploy + timedelta(minutes=35), STEP)
    return (
        WindowKey("b", service.name, previous.version, baseline, index_name(service.name)),
        WindowKey("c", service.name, release.version, candidate, index_name(service.name)),
    )


@pytest.mark.parametrize(("service_index", "release_index"), [(0, 1), (2, 2), (5, 3), (7, 2)])
def test_level_counts_and_error_types_match_the_ground_truth_exactly(
    fleet: Fleet, fleet_logs: FleetLogs, elasticsearch: ElasticsearchServer, service_index: int, release_index: int
) -> None:
    keys = _windows(fleet, service_index, release_index)
    source = ElasticsearchLogSource(elasticsearch.url)
    data, queries = source.fetch(keys, SETTINGS, STEP)
    assert source.requests_made == 1 and [q.template for q in queries] == ["logs"]
    logs = fleet_logs.service(keys[0].service)
    for key, release in zip(keys, (release_index - 1, release_index), strict=True):
        window = data[key.name]
        truth = logs.counts(release, key.window.start.timestamp(), key.window.end.timestamp())
        assert {level: window.total(level) for level in LEVELS} == truth
        assert sum(window.error_types.values()) == truth["error"]
        assert window.sampled_from == truth["error"] + truth["warn"] == len(window.sample)
        known = {t.error_type for t in TEMPLATES if t.error_type}
        assert set(window.error_types) <= known


def test_a_window_without_a_version_counts_every_version_in_it(
    fleet: Fleet, fleet_logs: FleetLogs, elasticsearch: ElasticsearchServer
) -> None:
    # A service whose metrics carry no version is judged by time: its log window spans a deploy here.
    service = fleet.services[1]
    deploy = service.releases[2].deployed_at
    key = WindowKey("any", service.name, "", Window(deploy - timedelta(minutes=20), deploy + timedelta(minutes=20), STEP),
                    index_name(service.name))
    data, _ = ElasticsearchLogSource(elasticsearch.url).fetch([key], SETTINGS, STEP)
    logs = fleet_logs.service(service.name)
    start, end = key.window.start.timestamp(), key.window.end.timestamp()
    before, after = logs.counts(1, start, end), logs.counts(2, start, end)
    assert before["info"] and after["info"]  # both versions served in it
    assert {level: data["any"].total(level) for level in LEVELS} == {level: before[level] + after[level] for level in LEVELS}


def test_per_step_counts_are_stamped_at_the_end_of_each_step(fleet: Fleet, elasticsearch: ElasticsearchServer) -> None:
    keys = _windows(fleet, 1, 1)
    data, _ = ElasticsearchLogSource(elasticsearch.url).fetch(keys, SETTINGS, STEP)
    for key in keys:
        for series in data[key.name].levels.values():
            assert series.timestamps.min() > key.window.start.timestamp()
            assert series.timestamps.max() <= key.window.end.timestamp()
            assert all(t % 60 == 0 for t in series.timestamps)


def test_the_sample_is_capped_and_spread_over_the_window(fleet: Fleet, elasticsearch: ElasticsearchServer) -> None:
    keys = _windows(fleet, 2, 2)  # a busy service: more error lines than the cap
    settings = LogSettings(index="logs-{service}", sample_size=20)
    data, _ = ElasticsearchLogSource(elasticsearch.url).fetch(keys, settings, STEP)
    for key in keys:
        window = data[key.name]
        assert len(window.sample) == 20 < window.sampled_from
        times = sorted(line.timestamp for line in window.sample)
        span = key.window.end.timestamp() - key.window.start.timestamp()
        assert times[-1] - times[0] > 0.5 * span  # not the first 20 lines of the window
        assert {line.level for line in window.sample} <= {"error", "warn"}


def test_deploy_events_are_read_with_their_commits(fleet: Fleet, elasticsearch: ElasticsearchServer) -> None:
    source = ElasticsearchLogSource(elasticsearch.url, deploy_index="deploys")
    events, query = source.events([s.name for s in fleet.services], fleet.start, fleet.end)
    expected = {(s.name, r.version, r.deployed_at, r.commit) for s in fleet.services for r in s.releases[1:]}
    assert {(e.service, e.version, e.started_at, e.commit) for e in events} == expected
    assert query is not None and query.template == "deploy_events"


def test_a_missing_index_is_named(fleet: Fleet, elasticsearch: ElasticsearchServer) -> None:
    keys = [WindowKey(k.name, k.service, k.version, k.window, "logs-nope") for k in _windows(fleet, 0, 1)]
    with pytest.raises(QueryRejected, match="index logs-nope does not exist"):
        ElasticsearchLogSource(elasticsearch.url).fetch(keys, SETTINGS, STEP)


def test_elasticsearch_down_is_unavailable_naming_the_url(fleet: Fleet) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceUnavailable, match=url.replace(".", r"\.")):
        ElasticsearchLogSource(url, retries=0, timeout=timedelta(seconds=2)).fetch(_windows(fleet, 0, 1), SETTINGS, STEP)
    assert not ElasticsearchLogSource(url, retries=0).check().ok


HOSTILE = ['user-service" OR *', "*", "a\\b", "service.name:*", '{"match_all": {}}']
HOSTILE_INDEX = "logs-hostile-names"
# The names a hostile one would reach if it were read as query syntax (a wildcard, a field query, an
# escape, a JSON query) rather than as a literal: each has error lines in both windows.
TEMPTED = ("user-service", "a", "b", "service", "a\\\\b")


@pytest.fixture(scope="module")
def hostile_index(fleet: Fleet, elasticsearch: ElasticsearchServer) -> tuple[WindowKey, WindowKey]:
    """A small index of its own (searching every index would scan ~85,000 documents per search, seconds on
    noida-db): error lines of the tempted names in the first service's windows. Yields those windows."""
    keys = _windows(fleet, 0, 1)
    client = Elasticsearch(elasticsearch.url)
    client.indices.create(index=HOSTILE_INDEX, mappings=INDEX_MAPPINGS)
    docs = [
        {"@timestamp": (key.window.start + timedelta(minutes=minute)).isoformat(), "message": f"boom {minute}",
         "service": {"name": name, "version": key.version}, "log": {"level": "error"}}
        for key in keys for name in TEMPTED for minute in (1, 2)
    ]
    lines = "".join(json.dumps({"index": {"_index": HOSTILE_INDEX}}) + "\n" + json.dumps(d) + "\n" for d in docs)
    assert not client.bulk(operations=lines, refresh=True)["errors"]
    client.close()
    return keys


def test_an_ordinary_name_finds_its_lines_in_the_hostile_names_index(
    elasticsearch: ElasticsearchServer, hostile_index: tuple[WindowKey, WindowKey]
) -> None:
    keys = [WindowKey(k.name, "user-service", k.version, k.window, HOSTILE_INDEX) for k in hostile_index]
    data, _ = ElasticsearchLogSource(elasticsearch.url).fetch(keys, SETTINGS, STEP)
    assert [data[k.name].sampled_from for k in keys] == [2, 2]  # so "finds nothing" below is no empty search


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_service_names_match_literally_and_find_nothing(
    elasticsearch: ElasticsearchServer, hostile_index: tuple[WindowKey, WindowKey], name: str
) -> None:
    keys = [WindowKey(k.name, name, k.version, k.window, HOSTILE_INDEX) for k in hostile_index]
    body = dsl.counts_body(LogFields(), keys, STEP)
    assert "query_string" not in json.dumps(body)
    data, _ = ElasticsearchLogSource(elasticsearch.url).fetch(keys, SETTINGS, STEP)
    assert all(window.sampled_from == 0 and not window.levels for window in data.values())


def test_untrusted_names_cannot_reach_an_index_pattern() -> None:
    with pytest.raises(Exception, match="cannot be used in the index pattern"):
        dsl.index_for("logs-{service}", "a,b")
    assert dsl.index_for("logs-{service}", "Order-Service") == "logs-order-service"


def test_oversized_binary_and_missing_messages_are_truncated_or_skipped(
    fleet: Fleet, elasticsearch: ElasticsearchServer
) -> None:
    client = Elasticsearch(elasticsearch.url)
    index = "logs-garbage-service"
    client.indices.create(index=index, mappings=INDEX_MAPPINGS)
    key = _windows(fleet, 0, 1)[1]
    at = key.window.start + timedelta(minutes=1)
    base = {"@timestamp": at.isoformat(), "service": {"name": "garbage-service", "version": key.version}, "log": {"level": "error"}}
    docs = [
        {**base, "message": "x" * 1_000_000},
        {**base, "message": "bin\x00\x01\x02ary \ufffd garbage"},
        {**base, "message": 12345},
        dict(base),
        {**base, "message": "   "},
    ]
    lines = "".join(json.dumps({"index": {"_index": index}}) + "\n" + json.dumps(d) + "\n" for d in docs)
    assert not client.bulk(operations=lines, refresh=True)["errors"]
    garbage = WindowKey("g", "garbage-service", key.version, key.window, index)
    data, _ = ElasticsearchLogSource(elasticsearch.url).fetch([garbage], SETTINGS, STEP)
    window = data["g"]
    assert window.sampled_from == 5
    assert window.skipped == 3 and window.truncated == 1
    assert sorted(line.message for line in window.sample) == ["bin   ary \ufffd garbage", "x" * MAX_MESSAGE + "…"]
    assert all("\x00" not in line.message for line in window.sample)


def test_statements_and_info_lines_are_read_with_their_origin(fleet: Fleet, elasticsearch: ElasticsearchServer) -> None:
    client = Elasticsearch(elasticsearch.url)
    index = "logs-origin-service"
    client.indices.create(index=index, mappings=INDEX_MAPPINGS)
    key = _windows(fleet, 0, 1)[1]
    at = key.window.start + timedelta(minutes=1)
    base = {"@timestamp": at.isoformat(), "service": {"name": "origin-service", "version": key.version}}
    origin = {"function": "queryInfo", "file": {"name": "TravelServiceImpl.java", "line": 451}}
    docs = [
        {**base, "log": {"level": "INFO", "logger": "ts.TravelServiceImpl", "origin": origin}, "message": "Query trip 7"},
        {**base, "log": {"level": "info", "logger": "<b>markup</b>"}, "message": "Query trip 8"},
        {**base, "log": {"level": "ERROR", "logger": ["a", "list"], "origin": {"file": {"line": 3}}}, "message": "boom"},
        {**base, "log": {"level": "debug"}, "message": "not sampled"},
    ]
    lines = "".join(json.dumps({"index": {"_index": index}}) + "\n" + json.dumps(d) + "\n" for d in docs)
    assert not client.bulk(operations=lines, refresh=True)["errors"]
    window = WindowKey("o", "origin-service", key.version, key.window, index)
    data, _ = ElasticsearchLogSource(elasticsearch.url).fetch([window], LogSettings(info_sample_size=10), STEP)
    read = data["o"]
    assert [(line.level, line.message, line.origin) for line in read.sample] == [("error", "boom", "line 3")]
    assert sorted((line.message, line.origin) for line in read.info_sample) == [
        ("Query trip 7", "ts.TravelServiceImpl#queryInfo (TravelServiceImpl.java:451)"), ("Query trip 8", "<b>markup</b>"),
    ]
    assert read.info_sampled_from == 2 and read.sampled_from == 1


def test_callers_lines_naming_the_service_are_read_from_every_other_service(
    fleet: Fleet, elasticsearch: ElasticsearchServer
) -> None:
    client = Elasticsearch(elasticsearch.url)
    baseline_key, candidate_key = _windows(fleet, 0, 1)
    docs = []
    for service, level, message, window in (
        ("gateway", "ERROR", "No instances available for basket-service", candidate_key.window),
        ("gateway", "ERROR", "No instances available for basket-service", candidate_key.window),
        ("checkout", "WARN", "connection refused basket-service:8080 (attempt 2)", candidate_key.window),
        ("checkout", "ERROR", "Retry the basket service later", candidate_key.window),  # its words, not its name
        ("checkout", "ERROR", "ts-basket-service is down", candidate_key.window),  # another service's name
        ("checkout", "INFO", "called basket-service in 12 ms", candidate_key.window),  # not an error
        ("basket-service", "ERROR", "basket-service failed to start", candidate_key.window),  # its own line
        ("gateway", "ERROR", "No instances available for basket-service", baseline_key.window),
    ):
        at = window.start + timedelta(minutes=2)
        docs.append((f"callers-{service}", {
            "@timestamp": at.isoformat(), "service": {"name": service, "version": "1"}, "log": {"level": level},
            "message": message, "trace": {"id": f"{len(docs):032x}"},
        }))
    for index in sorted({index for index, _ in docs}):
        client.indices.create(index=index, mappings=INDEX_MAPPINGS)
    lines = "".join(json.dumps({"index": {"_index": index}}) + "\n" + json.dumps(d) + "\n" for index, d in docs)
    assert not client.bulk(operations=lines, refresh=True)["errors"]
    keys = [
        WindowKey(name, "basket-service", "", key.window, "callers-*", sample_only=True, callers=True)
        for name, key in (("xb", baseline_key), ("xc", candidate_key))
    ]

    data, _ = ElasticsearchLogSource(elasticsearch.url).fetch(keys, LogSettings(info_sample_size=0, history=timedelta(0)), STEP)

    read = sorted((line.service, line.message) for line in data["xc"].sample)
    assert read == [
        ("checkout", "Retry the basket service later"),
        ("checkout", "connection refused basket-service:8080 (attempt 2)"),
        ("checkout", "ts-basket-service is down"),
        ("gateway", "No instances available for basket-service"),
        ("gateway", "No instances available for basket-service"),
    ]
    assert data["xc"].sampled_from == 5 and data["xb"].sampled_from == 1
    totals = (SideTotals(1, 1, 1000.0), SideTotals(5, 5, 1000.0))
    signatures = compare_callers(data["xb"].sample, data["xc"].sample, totals, "basket-service", tolerance=1.0, alpha=0.05)
    # Only the lines naming it exactly count, each kept apart by the caller that logged it.
    assert sorted((s.caller, s.template, s.baseline_count, s.candidate_count) for s in signatures) == [
        ("checkout", "[checkout] connection refused basket-service:<*> (attempt <*>)", 0.0, 1.0),
        ("gateway", "[gateway] No instances available for basket-service", 1.0, 2.0),
    ]
