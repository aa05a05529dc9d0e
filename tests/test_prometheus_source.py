"""PrometheusMetricSource and deploy detection against a real Prometheus holding the simulated fleet."""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import promql_parser
import pytest

from releasehealth import config, deploys, fetch, wiring
from releasehealth.collectors.deploys import MetricDeploySource
from releasehealth.collectors.prometheus import PrometheusMetricSource
from releasehealth.config import Catalogue, load_preset
from releasehealth.errors import InvalidResponse, QueryRejected, SourceUnavailable
from releasehealth.model import Deploy, LabelNames, Window
from releasehealth.queries.promql import QueryGroup
from releasehealth.scoring.latency import bucket_matrix, smooth_quantile
from releasehealth.simulator import Fleet
from releasehealth.simulator.fleet import BUCKETS
from releasehealth.sources import Sources
from releasehealth.wiring import Wiring
from testing.configs import example_config
from testing.faults import FaultProxy
from testing.servers import PrometheusServer, free_port
from tests import helpers

STEP = timedelta(minutes=1)
TEMPLATES = load_preset("generic").templates
LABELS = LabelNames()
# Scrapes and steps are aligned and each version's counters start at zero at its deploy, so increase()
# over 1-minute steps should give the simulated counts exactly; 0.5% leaves room for float rounding.
COUNT_TOLERANCE = 0.005


def _range(template: str, services: list[str], start: datetime, end: datetime, url: str):
    return QueryGroup(LABELS, source=url).range(template, TEMPLATES[template], services, start=start, end=end, step=STEP)


def _candidate_window(release, minutes: int = 30) -> Window:
    start = release.deployed_at + timedelta(minutes=5)
    return Window(start, start + timedelta(minutes=minutes), STEP)


def test_every_simulated_deploy_is_detected_at_its_time(fleet: Fleet, catalogue: Catalogue, sources) -> None:
    for service in fleet.services:
        detected = helpers.deploys(Wiring(catalogue, sources), service.name)
        assert [d.version for d in detected] == [r.version for r in service.releases]
        for deploy, release in zip(detected, service.releases, strict=True):
            assert abs(deploy.started_at - release.deployed_at) <= STEP, (deploy, release)


def test_deploy_detection_is_one_query_pair_for_the_whole_fleet(fleet: Fleet, prometheus: PrometheusServer) -> None:
    source = PrometheusMetricSource(prometheus.url)
    names = [s.name for s in fleet.services]
    now = datetime.now(UTC)
    first, last = (
        QueryGroup(LABELS, source=prometheus.url).instant(t, TEMPLATES[t], names, end=now, lookback=timedelta(days=2), step=STEP)
        for t in ("first_seen", "last_seen")
    )
    deploys = MetricDeploySource(source).detect(first, last)
    assert source.queries_run == 2
    assert len(deploys) == sum(len(s.releases) for s in fleet.services)


@pytest.mark.parametrize("index", [0, 3, 6])
def test_window_counts_match_the_simulated_ground_truth(fleet: Fleet, prometheus: PrometheusServer, index: int) -> None:
    service = fleet.services[index]
    release = service.releases[-1]
    window = _candidate_window(release)
    truth = service.counts(release.version, window.start, window.end)
    source = PrometheusMetricSource(prometheus.url)
    series = source.fetch(_range("requests", [service.name], window.start, window.end, prometheus.url))
    by_code = {s.labels["code"]: s.between(window).values.sum() for s in series if s.labels["version"] == release.version}
    assert set(by_code) == {"200", "404", "500"}  # by status code: the errors are the 5xx part of this answer
    assert sum(by_code.values()) == pytest.approx(truth["requests"], rel=COUNT_TOLERANCE)
    assert by_code["500"] == pytest.approx(truth["errors"], rel=COUNT_TOLERANCE)
    buckets = source.fetch(_range("latency_buckets", [service.name], window.start, window.end, prometheus.url))
    _, bounds, counts = bucket_matrix([s.between(window) for s in buckets if s.labels["version"] == release.version])
    assert list(bounds[:-1]) == list(BUCKETS) and np.isinf(bounds[-1])
    np.testing.assert_allclose(counts.sum(axis=0), np.cumsum(truth["buckets"]), rtol=COUNT_TOLERANCE)


def test_p95_from_buckets_is_close_to_the_true_latency_quantile(fleet: Fleet, prometheus: PrometheusServer) -> None:
    # The histogram only knows 15 buckets: the estimate must be within 10% of the true lognormal p95.
    source = PrometheusMetricSource(prometheus.url)
    for service in fleet.services:
        release = service.releases[-1]
        window = _candidate_window(release)
        series = source.fetch(_range("latency_buckets", [service.name], window.start, window.end, prometheus.url))
        _, bounds, counts = bucket_matrix([s.between(window) for s in series if s.labels["version"] == release.version])
        assert smooth_quantile(0.95, bounds, counts.sum(axis=0)) == pytest.approx(release.p95_latency, rel=0.10)


def test_a_long_range_is_split_into_chunks_and_joined(fleet: Fleet, prometheus: PrometheusServer) -> None:
    service = fleet.services[0]
    source = PrometheusMetricSource(prometheus.url)
    step = timedelta(seconds=5)  # 26 h at 5 s is 18,720 points: over Prometheus' 11,000 limit
    query = QueryGroup(LABELS, source=prometheus.url).range("requests", TEMPLATES["requests"], [service.name], start=fleet.start, end=fleet.end, step=step)
    series = source.fetch(query)
    assert source.queries_run == 2
    for s in series:
        assert np.all(np.diff(s.timestamps) > 0)


HOSTILE_NAMES = ['a"} or vector(1) or x{y="', "back\\slash", "br{ac}es", "new\nline", "quote'single", ".*"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_service_names_stay_inside_one_matcher(name: str) -> None:
    query = _range("requests", [name], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), "x")
    selectors = _selectors(promql_parser.parse(query.text))
    assert [(s.name, _matchers(s)) for s in selectors] == [("http_requests_total", [("service", "MatchOp.Equal", name)])]


def test_hostile_names_in_one_fleet_query_are_regex_escaped() -> None:
    query = _range("requests", ["a.b", "c|d"], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), "x")
    assert query.text == 'sum by (service, version, code) (increase(http_requests_total{service=~"a\\\\.b|c\\\\|d"}[1m]))'


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_service_names_run_on_prometheus_and_match_nothing(name: str, prometheus: PrometheusServer, fleet: Fleet) -> None:
    source = PrometheusMetricSource(prometheus.url)
    assert source.fetch(_range("requests", [name], fleet.start, fleet.end, prometheus.url)) == []


def _selectors(node) -> list[promql_parser.VectorSelector]:
    """Every vector selector of a parsed PromQL expression."""
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, promql_parser.VectorSelector):
            found.append(current)
            continue
        for attribute in ("expr", "param", "lhs", "rhs", "args", "vector_selector"):
            child = getattr(current, attribute, None)
            if child is not None:
                stack.extend(child if isinstance(child, list) else [child])
    return found


def _matchers(selector: promql_parser.VectorSelector) -> list[tuple[str, str, str]]:
    return [(m.name, str(m.op), m.value) for m in selector.matchers.matchers]


def test_prometheus_down_is_unavailable_naming_the_url_retried_within_the_budget() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    source = PrometheusMetricSource(url, timeout=timedelta(seconds=3), retries=2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=url.replace(".", r"\.")):
        source.fetch(_range("requests", ["user-service"], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), url))
    assert source.queries_run == 3  # connection refused is retried, within the budget
    assert time.monotonic() - started < 30  # a limit against a hang, not a speed: the count above is the check


def test_a_rejected_query_is_not_retried(prometheus: PrometheusServer) -> None:
    source = PrometheusMetricSource(prometheus.url, retries=3)
    query = _range("requests", ["x"], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), prometheus.url)
    broken = type(query)(**{**query.__dict__, "text": "sum(rate(x[5m])"})
    with pytest.raises(QueryRejected, match="HTTP 400"):
        source.fetch(broken)
    assert source.queries_run == 1


def test_source_health_reports_up_and_down(prometheus: PrometheusServer) -> None:
    up = PrometheusMetricSource(prometheus.url).check()
    assert up.ok and up.latency_seconds is not None and up.error == ""
    down = PrometheusMetricSource(f"http://127.0.0.1:{free_port()}", retries=0).check()
    assert not down.ok and "unreachable" in down.error


# ---- misbehaving servers: not Prometheus mocks, but the failures a proxy or a hung host produces ----


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"<html>login page</html>"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(status: int, body: bytes) -> Iterator[tuple[str, http.server.HTTPServer]]:
    handler = type("Handler", (_Handler,), {"status": status, "body": body})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


@pytest.fixture
def html_server() -> Iterator[tuple[str, http.server.HTTPServer]]:
    yield from _serve(200, b"<html>login page</html>")


@pytest.fixture
def failing_server() -> Iterator[tuple[str, http.server.HTTPServer]]:
    yield from _serve(503, b'{"status":"error","error":"overloaded"}')


def _instant(url: str):
    now = datetime.now(UTC)
    return QueryGroup(LABELS, source=url).instant("first_seen", TEMPLATES["first_seen"], ["s"], end=now, lookback=timedelta(hours=1), step=STEP)


def test_a_garbage_answer_is_an_invalid_response_not_a_crash(html_server) -> None:
    url, _ = html_server
    with pytest.raises(InvalidResponse, match="malformed response"):
        PrometheusMetricSource(url).fetch(_instant(url))


def test_a_503_is_retried_a_bounded_number_of_times(failing_server) -> None:
    url, server = failing_server
    source = PrometheusMetricSource(url, retries=2, sleep=lambda _: None)
    with pytest.raises(SourceUnavailable, match="HTTP 503: overloaded"):
        source.fetch(_instant(url))
    assert server.hits == 3


def test_a_hung_server_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        started = time.monotonic()
        source = PrometheusMetricSource(url, timeout=timedelta(seconds=1), retries=3)
        with pytest.raises(SourceUnavailable, match="no answer within"):
            source.fetch(_instant(url))
        assert source.queries_run == 1  # the first attempt spent the whole budget: no retry after it
        assert time.monotonic() - started < 30  # a limit against a hang, not a speed
        query = _range("requests", ["s"], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), url)
        fetched = fetch.run(PrometheusMetricSource(url, timeout=timedelta(seconds=0.5), retries=0), "requests", [query])
        assert fetched.error.startswith("query 'requests' failed:")  # the query, its span, what happened
        assert "range 2026-01-01 00:00..01:00 UTC: no answer within" in fetched.error
    finally:
        listener.close()


def _matrix_body(series: int, points: int) -> bytes:
    values = ",".join(f'[{1_700_000_000 + 60 * k},"{k}.5"]' for k in range(points))
    result = ",".join(f'{{"metric":{{"service":"s{n}"}},"values":[{values}]}}' for n in range(series))
    return f'{{"status":"success","data":{{"resultType":"matrix","result":[{result}]}}}}'.encode()


@pytest.fixture
def huge_server() -> Iterator[tuple[str, http.server.HTTPServer]]:
    yield from _serve(200, _matrix_body(series=40, points=2_000))  # 80,000 points, about 2 MB


def test_an_answer_larger_than_the_limit_is_refused_naming_the_query_and_its_span(huge_server) -> None:
    url, _ = huge_server
    query = _range("requests", ["s"], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), url)
    with pytest.raises(InvalidResponse) as caught:
        PrometheusMetricSource(url, max_answer_mb=1).fetch(query)
    assert "larger than 1 MB (prometheus.max_answer_mb)" in str(caught.value)
    assert "2026-01-01 00:00..01:00 UTC" in str(caught.value)
    fetched = fetch.run(PrometheusMetricSource(url, max_answer_mb=1), "requests", [query])
    assert fetched.error.startswith("query 'requests' failed:") and "max_answer_mb" in fetched.error


def test_an_answer_of_more_points_than_the_limit_is_refused_before_it_is_decoded(huge_server) -> None:
    url, _ = huge_server
    query = _range("requests", ["s"], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), url)
    with pytest.raises(InvalidResponse, match=r"more than 50,000 points \(prometheus.max_points\)"):
        PrometheusMetricSource(url, max_points=50_000).fetch(query)
    assert sum(s.values.size for s in PrometheusMetricSource(url, max_points=100_000).fetch(query)) == 80_000


def test_the_answer_limits_are_settings_of_the_prometheus_source(huge_server) -> None:
    url, _ = huge_server
    raw = {"sources": {"prometheus": {"url": url, "max_points": 50_000}}, "services": [{"name": "s", "preset": "generic"}]}
    source = wiring.connect(config.parse(raw)).sources.metrics
    query = _range("requests", ["s"], datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), url)
    with pytest.raises(InvalidResponse, match="max_points"):
        source.fetch(query)


def test_credentials_in_the_url_never_appear_in_names_or_errors() -> None:
    port = free_port()
    source = PrometheusMetricSource(f"http://admin:s3cret@127.0.0.1:{port}", retries=0)
    assert source.name == f"http://127.0.0.1:{port}"
    with pytest.raises(SourceUnavailable) as caught:
        source.fetch(_instant(source.name))
    assert "s3cret" not in str(caught.value)


# ---- gauges: memory and CPU -----------------------------------------------------------------------------

# A gauge step reads the sample at that step and the CPU counter's 1-minute rate needs no extrapolation
# (samples sit on the range's ends), so Prometheus should give the simulator's values; 1e-6 relative
# covers the six decimals the OpenMetrics file keeps.
GAUGE_TOLERANCE = 1e-6


def _mine(series: list, release, window: Window) -> list:
    return [s.between(window) for s in series if s.labels["version"] == release.version]


@pytest.mark.parametrize("index", [0, 3, 6])
def test_the_in_memory_source_answers_as_prometheus_does(fleet: Fleet, prometheus: PrometheusServer, index: int) -> None:
    from releasehealth.simulator.sources import SimulatedMetricSource

    service = fleet.services[index]
    release = service.releases[-1]
    window = _candidate_window(release)
    source, simulated = PrometheusMetricSource(prometheus.url), SimulatedMetricSource(fleet)
    gauge_times, memory = service.gauge(release.version)
    counter_times, counters = service.cumulative(release.version)

    def at(times: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.searchsorted(times, t)  # scrapes are aligned with the steps

    query = _range("requests", [service.name], window.start, window.end, prometheus.url)
    real_by_code, answered_by_code = (
        {s.labels["code"]: s for s in _mine(answer, release, window)} for answer in (source.fetch(query), simulated.fetch(query))
    )
    assert set(real_by_code) == set(answered_by_code) == {"200", "404", "500"}
    for code, real in real_by_code.items():
        assert np.array_equal(real.timestamps, answered_by_code[code].timestamps)
        np.testing.assert_allclose(real.values, answered_by_code[code].values, rtol=GAUGE_TOLERANCE)
    counts = service.counts(release.version, window.start, window.end)
    assert sum(s.values.sum() for s in answered_by_code.values()) == counts["requests"]
    assert answered_by_code["500"].values.sum() == counts["errors"]
    for template in ("memory", "cpu", "cpu_per_request"):
        query = _range(template, [service.name], window.start, window.end, prometheus.url)
        (real,), (answered,) = _mine(source.fetch(query), release, window), _mine(simulated.fetch(query), release, window)
        steps = real.timestamps
        # The in-memory source (the demo's) answers Prometheus' steps, the last one included.
        assert len(steps) == 30 and np.array_equal(steps, answered.timestamps)
        np.testing.assert_allclose(real.values, answered.values, rtol=GAUGE_TOLERANCE)
        if template == "memory":
            truth = memory[at(gauge_times, steps)]
        else:
            cpu = counters["cpu_seconds"][at(counter_times, steps)] - counters["cpu_seconds"][at(counter_times, steps - 60)]
            requests = counters["requests"][at(counter_times, steps)] - counters["requests"][at(counter_times, steps - 60)]
            truth = cpu / 60 if template == "cpu" else cpu / requests
        np.testing.assert_allclose(real.values, truth, rtol=GAUGE_TOLERANCE)


# ---- backends at scale: tenants and credentials through a proxy in front of the real Prometheus


def test_tenant_headers_and_the_bearer_token_reach_the_backend(
    fleet: Fleet, prometheus: PrometheusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from releasehealth import config
    from testing.configs import example_config

    proxy = FaultProxy(prometheus.url)  # with no fault: it forwards, and keeps the headers it was sent
    try:
        raw = example_config(proxy.url, bearer_token_env="PROM_TOKEN", headers={"X-Scope-OrgID": "team-a"})
        monkeypatch.setenv("PROM_TOKEN", "s3cr3t-token")
        catalogue = config.parse(raw)
        evaluation = helpers.evaluate(wiring.connect(catalogue), fleet.services[0].name)
    finally:
        proxy.stop()

    assert evaluation.score is not None and proxy.seen
    assert all(h.get("X-Scope-OrgID") == "team-a" and h.get("Authorization") == "Bearer s3cr3t-token" for h in proxy.seen)
    assert "s3cr3t-token" not in repr(evaluation.queries) and "s3cr3t-token" not in repr(catalogue)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Authorization": "Bearer x"}, "carries credentials: name an environment variable instead"),
        ({"X Scope": "a"}, "is not a valid HTTP header name"),
        ({"X-Scope-OrgID": "a\nb"}, "printable ASCII on one line"),
    ],
)
def test_header_problems_are_config_errors(headers: dict[str, str], problem: str) -> None:
    from releasehealth import config
    from releasehealth.errors import ConfigError
    from testing.configs import example_config

    with pytest.raises(ConfigError, match=problem):
        config.parse(example_config("http://p:9090", headers=headers))


def test_a_missing_ca_file_is_a_config_error() -> None:
    from releasehealth import config
    from releasehealth.errors import ConfigError
    from testing.configs import example_config

    with pytest.raises(ConfigError, match=r"sources\.prometheus\.ca_file: .*no such file: /nowhere/ca\.pem"):
        config.parse(example_config("https://p:9090", ca_file="/nowhere/ca.pem"))


@pytest.mark.parametrize(("before_end", "lookback"), [
    (timedelta(minutes=-7, seconds=-23), timedelta(days=7)),  # past the data's end, between two coarse steps
    (timedelta(hours=3, minutes=4, seconds=5), timedelta(hours=9, minutes=13)),  # the lookback starts mid-release
    (timedelta(hours=10), timedelta(hours=6)),  # the shortest lookback scanned in two stages, on coarse steps
    (timedelta(hours=5, minutes=59, seconds=59), timedelta(hours=20, seconds=1)),
])
def test_a_scan_in_two_stages_finds_the_times_a_scan_at_every_step_finds(
    fleet: Fleet, prometheus: PrometheusServer, before_end: timedelta, lookback: timedelta,
) -> None:
    catalogue = config.parse(example_config(prometheus.url), "release-health.yaml")
    catalogue = dataclasses.replace(catalogue, policy=dataclasses.replace(catalogue.policy, lookback=lookback))
    metrics = PrometheusMetricSource(prometheus.url)
    sources = Sources(metrics=metrics, deploys=MetricDeploySource(metrics))
    now = fleet.end - before_end
    scan = deploys.discover(sources, catalogue.services, catalogue.policy, now)
    # The reference: the preset's templates over the whole lookback at every step, in one query each.
    names = [s.name for s in catalogue.services]
    first, last = (
        QueryGroup(LABELS, source=prometheus.url).instant(t, TEMPLATES[t], names, end=now, lookback=lookback, step=STEP)
        for t in ("first_seen", "last_seen")
    )
    reference = MetricDeploySource(metrics).scan(first, last)
    def key(deploy: Deploy) -> tuple[str, str]:
        return deploy.service, deploy.version

    found = sorted((d for service in names for d in scan.by_service[service]), key=key)
    assert found == sorted(reference.deploys, key=key) and len(found) >= len(names)
    # Two queries per template, whatever the fleet: a coarse one, and one reading the coarse steps found.
    assert [q.template for q in scan.queries[names[0]]] == ["first_seen", "last_seen", "first_seen", "last_seen"]
    assert " or " in scan.queries[names[0]][2].text and "@ " in scan.queries[names[0]][2].text
