"""The simulator under every preset's naming: the same fleet, loaded into a real Prometheus under each
preset's names, gives exactly the fleet's own counts through that preset's templates; and the
kube-state-metrics view tells which image each deployment ran, from its deploy on."""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from typer.testing import CliRunner

from releasehealth import config
from releasehealth.cli import app
from releasehealth.queries.promql import QueryGroup
from releasehealth.simulator import Fleet, SimulatedService, simulate
from releasehealth.simulator.fleet import BUCKETS
from releasehealth.simulator.kubernetes import (
    ALPHABET,
    image,
    pod_name,
    replicaset_name,
)
from releasehealth.simulator.openmetrics import (
    PRESETS,
    split_by_status,
    tracks,
    write_openmetrics,
)
from testing.servers import backfill, require, start_prometheus

STEP = timedelta(minutes=1)
STEPS = 30
ALL_PRESETS = tuple(PRESETS)
MILLISECONDS = 1000.0
# (service, version) -> tag: one release whose image tag is not its version label.
TAG_OVERRIDE = "hotfix-7"


@dataclass(frozen=True)
class Loaded:
    fleet: Fleet
    url: str
    image_tags: dict[tuple[str, str], str]
    backfill_seconds: float


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    require("promtool")
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    fleet = simulate(seed=7, services=3, hours=8, end=end)
    first = fleet.services[0]
    tags = {(first.name, first.releases[1].version): TAG_OVERRIDE}
    folder = tmp_path_factory.mktemp("naming")
    started = time.monotonic()
    tsdb = backfill(fleet, folder, presets={s.name: ALL_PRESETS for s in fleet.services}, kubernetes=True, image_tags=tags)
    seconds = time.monotonic() - started
    print(f"\nwrite + promtool backfill of the test fleet under {len(ALL_PRESETS)} presets: {seconds:.1f} s")
    server = start_prometheus(tsdb, folder)
    try:
        yield Loaded(fleet, server.url, tags, seconds)
    finally:
        server.stop()


# ---- helpers ------------------------------------------------------------------------------------------


def window(service: SimulatedService) -> tuple[datetime, datetime]:
    """30 one-minute steps around the service's last deploy, so both versions (and the deploy instant,
    where the versionless series must count nothing twice) are in it."""
    deployed = service.releases[-1].deployed_at
    return deployed - STEP * (STEPS // 2), deployed + STEP * (STEPS // 2)


def query(preset: str, template: str, service: str, start: datetime, end: datetime) -> str:
    """The preset's template for one service, as the product renders it (a preset without a version label,
    nginx-ingress, grouped by the service label alone)."""
    spec = config.load_preset(preset)
    return QueryGroup(spec.label_names).range(template, spec.templates[template], [service], start=start, end=end, step=STEP).text


def query_range(url: str, text: str, start: datetime, end: datetime, step: float = 60) -> list[dict]:
    """Prometheus' range query over the steps (start, end]: the first step one `step` after `start`."""
    params = {"query": text, "start": start.timestamp() + step, "end": end.timestamp(), "step": step}
    response = requests.get(f"{url}/api/v1/query_range", params=params, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def observed(result: list[dict], version_label: str, by_le: bool = False) -> dict[tuple, float]:
    """{(version or None, step time, le bound or None): value}, summed over any other label (the requests'
    status codes); `le` as a float rounded to µ."""
    out: dict[tuple, float] = {}
    for series in result:
        labels = series["metric"]
        le = round(float(labels["le"]), 6) if by_le else None
        for at, value in series["values"]:
            key = (labels.get(version_label) if version_label else None, int(at), le)
            out[key] = out.get(key, 0.0) + float(value)
    return out


def steps(start: datetime) -> list[int]:
    return [int((start + STEP * k).timestamp()) for k in range(1, STEPS + 1)]


def truth(service: SimulatedService, versioned: bool, start: datetime, what: str, scale: float = 1.0) -> dict[tuple, float]:
    """The fleet's own counts per step (per version, or summed over versions), as `observed` keys them."""
    out: dict[tuple, float] = {}
    for at in steps(start):
        begin, end = datetime.fromtimestamp(at - 60, UTC), datetime.fromtimestamp(at, UTC)
        for release in service.releases:
            counts = service.counts(release.version, begin, end)
            version = release.version if versioned else None
            if what == "buckets":
                cumulative = np.cumsum(counts["buckets"])
                for bound, value in zip([*BUCKETS, np.inf], cumulative.tolist(), strict=True):
                    key = (version, at, round(bound * scale, 6))
                    out[key] = out.get(key, 0.0) + value
            else:
                out[(version, at, None)] = out.get((version, at, None), 0.0) + counts[what]
    return out


def assert_same(seen: dict[tuple, float], expected: dict[tuple, float]) -> None:
    """Every expected count is what Prometheus returned (a missing step is no count); nothing else came."""
    assert set(seen) <= set(expected), sorted(set(seen) - set(expected))[:5]
    wrong = {k: (seen.get(k, 0.0), v) for k, v in expected.items() if seen.get(k, 0.0) != v}
    assert not wrong, sorted(wrong.items())[:5]
    assert sum(expected.values()) > 0


# ---- every preset's templates give the fleet's own counts -------------------------------------------------


@pytest.mark.parametrize("preset", ALL_PRESETS)
@pytest.mark.parametrize("template", ["requests", "errors", "latency_buckets"])
def test_increase_per_step_is_the_fleets_own_count_under_every_preset(loaded: Loaded, preset: str, template: str) -> None:
    spec = config.load_preset(preset)
    what = {"requests": "requests", "errors": "errors", "latency_buckets": "buckets"}[template]
    scale = MILLISECONDS if spec.bucket_units.get(template) == "milliseconds" else 1.0
    derived = spec.derived.get(template)  # the errors: the part of the requests' answer its filter selects
    for service in loaded.fleet.services:
        start, end = window(service)
        text = query(preset, derived.source if derived else template, service.name, start, end)
        result = [s for s in query_range(loaded.url, text, start, end) if derived is None or derived.selects(s["metric"])]
        seen = observed(result, spec.labels.version, by_le=what == "buckets")
        assert_same(seen, truth(service, bool(spec.labels.version), start, what, scale))


@pytest.mark.parametrize(("preset", "copy"), [("istio", ',reporter="destination"'), ("linkerd", ',direction="inbound"')])
def test_the_other_sides_copy_is_there_and_not_counted(loaded: Loaded, preset: str, copy: str) -> None:
    service = loaded.fleet.services[1]
    start, end = window(service)
    text = query(preset, "requests", service.name, start, end)
    assert copy in text
    counted = observed(query_range(loaded.url, text, start, end), config.load_preset(preset).labels.version)
    both = observed(query_range(loaded.url, text.replace(copy, ""), start, end), config.load_preset(preset).labels.version)
    assert both == {k: 2 * v for k, v in counted.items()} and sum(counted.values()) > 0


def gauge_truth(service: SimulatedService, start: datetime) -> dict[tuple, float]:
    """Memory of each version at the steps where it has a sample of its own at that very instant."""
    out = {}
    for release in service.releases:
        times, values = service.gauge(release.version)
        at_step = dict(zip(times.tolist(), values.tolist(), strict=True))
        out.update({(release.version, t, None): at_step[t] for t in steps(start) if t in at_step})
    return out


@pytest.mark.parametrize("preset", [p for p in ALL_PRESETS if "memory" in config.load_preset(p).templates])
def test_memory_is_the_resident_memory_under_every_preset(loaded: Loaded, preset: str) -> None:
    spec = config.load_preset(preset)
    for service in loaded.fleet.services:
        start, end = window(service)
        text = query(preset, "memory", service.name, start, end)
        seen = observed(query_range(loaded.url, text, start, end), spec.labels.version)
        expected = gauge_truth(service, start)
        assert expected and {k: seen[k] for k in expected} == pytest.approx(expected, rel=1e-12)


def cpu_per_request_truth(service: SimulatedService, start: datetime) -> dict[tuple, float]:
    """CPU seconds per request of each version at each step both its counters cover fully."""
    out = {}
    for release in service.releases:
        times, cum = service.cumulative(release.version)
        at = {t: i for i, t in enumerate(times.tolist())}
        for t in steps(start):
            if t in at and t - 60 in at:
                i, j = at[t], at[t - 60]
                cpu, served = (cum[name][i] - cum[name][j] for name in ("cpu_seconds", "requests"))
                out[(release.version, t, None)] = cpu / served
    return out


@pytest.mark.parametrize("preset", [p for p in ALL_PRESETS if "cpu_per_request" in config.load_preset(p).templates])
def test_cpu_per_request_is_the_fleets_under_every_preset(loaded: Loaded, preset: str) -> None:
    spec = config.load_preset(preset)
    for service in loaded.fleet.services:
        start, end = window(service)
        text = query(preset, "cpu_per_request", service.name, start, end)
        seen = observed(query_range(loaded.url, text, start, end), spec.labels.version)
        expected = cpu_per_request_truth(service, start)
        # The writer keeps counters to 6 decimals: a few µs of CPU a step.
        assert set(seen) == set(expected) and seen == pytest.approx(expected, rel=1e-4)


# ---- kube-state-metrics -------------------------------------------------------------------------------

# The app container's image per deployment: container -> pod -> ReplicaSet -> Deployment.
IMAGES_BY_DEPLOYMENT = """
max by (namespace, deployment, image) (
  label_replace(
    max by (namespace, replicaset, image) (
      label_replace(
        max by (namespace, pod, image) (kube_pod_container_info{container="app"})
        * on (namespace, pod) group_left (owner_name)
        max by (namespace, pod, owner_name) (kube_pod_owner{owner_kind="ReplicaSet"}),
        "replicaset", "$1", "owner_name", "(.*)"
      )
    )
    * on (namespace, replicaset) group_left (owner_name)
    max by (namespace, replicaset, owner_name) (kube_replicaset_owner{owner_kind="Deployment"}),
    "deployment", "$1", "owner_name", "(.*)"
  )
)
"""


def test_kubernetes_join_gives_each_deployments_images_from_each_deploy(loaded: Loaded) -> None:
    fleet = loaded.fleet
    step = fleet.scrape_interval.total_seconds()
    result = query_range(loaded.url, IMAGES_BY_DEPLOYMENT, fleet.start - fleet.scrape_interval, fleet.end, step)
    first_seen = {(r["metric"]["deployment"], r["metric"]["image"]): float(r["values"][0][0]) for r in result}
    expected = {
        (s.name, image(s.name, r.version, loaded.image_tags.get((s.name, r.version)))): r.deployed_at.timestamp()
        for s in fleet.services
        for r in s.releases
    }
    assert set(first_seen) == set(expected)
    assert all(expected[k] <= first_seen[k] <= expected[k] + step for k in expected), (first_seen, expected)
    assert {i.rsplit(":", 1)[1] for _, i in first_seen} >= set(loaded.image_tags.values())


def test_the_simulator_names_every_preset_the_product_ships() -> None:
    assert set(PRESETS) == config.preset_names()


def test_kubernetes_names_are_deterministic_and_kubernetes_like() -> None:
    rs, pod = replicaset_name("user-service", "1.2.3"), pod_name("user-service", "1.2.3")
    assert rs == replicaset_name("user-service", "1.2.3") != replicaset_name("user-service", "1.2.4")
    assert re.fullmatch(rf"user-service-[{ALPHABET}]{{9,10}}", rs)
    assert re.fullmatch(rf"{re.escape(rs)}-[{ALPHABET}]{{5}}", pod)
    assert image("user-service", "1.2.3") == "registry.example.com/shop/user-service:1.2.3"
    assert image("user-service", "1.2.3", "hotfix") == "registry.example.com/shop/user-service:hotfix"


# ---- the exposition itself, without Prometheus -----------------------------------------------------------

SMALL_END = datetime(2026, 1, 1, tzinfo=UTC)


def small_fleet() -> Fleet:
    return simulate(seed=3, services=2, hours=4, end=SMALL_END)


def exposition(fleet: Fleet, **options: object) -> str:
    out = io.StringIO()
    write_openmetrics(fleet, out, **options)  # type: ignore[arg-type]
    return out.getvalue()


def test_default_output_is_byte_for_byte_what_it_was_before_presets() -> None:
    # sha256 of the generic writer's output for this fleet before presets existed.
    before = "b69f36193f82d3c044e04ee26831faabf5fe8646141240df493b3aa834c562aa"
    fleet = small_fleet()
    assert hashlib.sha256(exposition(fleet).encode()).hexdigest() == before
    assert exposition(fleet, presets={s.name: "generic" for s in fleet.services}) == exposition(fleet)


SUFFIXES = {"counter": ("_total",), "gauge": ("",), "unknown": ("",), "histogram": ("_bucket", "_sum", "_count")}


def families(text: str) -> Iterator[tuple[str, str, str]]:
    """(family, type, sample name) of every sample line, the family being the last `# TYPE` seen."""
    family, kind = "", ""
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
        elif not line.startswith("#"):
            yield family, kind, line.split("{", 1)[0].split(" ", 1)[0]


def test_every_family_is_contiguous_with_type_and_help_under_all_presets() -> None:
    fleet = small_fleet()
    text = exposition(fleet, presets={s.name: ALL_PRESETS for s in fleet.services}, kubernetes=True)
    types = re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)
    assert len(types) == len(set(types)) == len(re.findall(r"^# HELP ", text, re.MULTILINE))
    assert set(types) >= {f.name for fs in PRESETS.values() for f in fs} | {"kube_pod_owner"}
    assert text.endswith("# EOF\n")
    for family, kind, sample in families(text):
        assert sample in {family + s for s in SUFFIXES[kind]}, (family, kind, sample)


def test_nginx_ingress_has_no_version_and_istio_ms_bounds() -> None:
    fleet = small_fleet()
    text = exposition(fleet, presets={fleet.services[0].name: ["nginx-ingress", "istio"]})
    nginx = [line for line in text.splitlines() if line.startswith("nginx_ingress_controller_request")]
    assert nginx and not any("version" in line for line in nginx)
    bounds = re.findall(r'^istio_request_duration_milliseconds_bucket\{[^}]*le="([^"]+)"', text, re.MULTILINE)
    expected = ["5", "10", "25", "50", "75", "100", "250", "500", "750", "1000", "2500", "5000", "7500", "10000", "+Inf"]
    assert list(dict.fromkeys(bounds)) == expected


def test_status_split_adds_up_to_the_services_buckets_and_counts() -> None:
    fleet = small_fleet()
    service = fleet.services[1]
    views = split_by_status(service, fleet.seed, 1)
    assert np.array_equal(sum(v.buckets for v in views.values()), service.buckets)
    for code, count in (("500", service.errors), ("404", service.client_errors)):
        assert np.array_equal(views[code].buckets.sum(axis=1), count)
    assert np.array_equal(views["200"].buckets.sum(axis=1), service.requests - service.errors - service.client_errors)
    assert np.allclose(sum(v.latency_sum for v in views.values()), service.latency_sum)
    again = split_by_status(service, fleet.seed, 1)
    assert all(np.array_equal(views[c].buckets, again[c].buckets) for c in views)


def test_versionless_series_counts_every_request_once_across_deploys() -> None:
    fleet = small_fleet()
    service = fleet.services[0]
    (whole,) = tracks(service, fleet.seed, 0, versionless=True, by_status=True)
    assert whole.version is None and np.array_equal(whole.times, service.times)
    for release in service.releases[1:]:
        at = int(release.deployed_at.timestamp())
        i = int(np.searchsorted(service.times, at))
        for begin, end in ((i - 4, i + 4), (i - 2, i), (i, i + 2)):
            window_start = datetime.fromtimestamp(int(service.times[begin]), UTC)
            window_end = datetime.fromtimestamp(int(service.times[end]), UTC)
            expected = sum(service.counts(r.version, window_start, window_end)["requests"] for r in service.releases)
            assert whole.totals["requests"][end] - whole.totals["requests"][begin] == expected
            by_status = [status["requests"][end] - status["requests"][begin] for status in whole.statuses.values()]
            assert sum(by_status) == expected
    assert np.array_equal(whole.memory, service.memory)


# ---- the command line ---------------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--preset", "nope"], "unknown preset(s) nope"),
        (["--service-preset", "no-such-service=istio"], "unknown service(s) no-such-service"),
        (["--service-preset", "user-service"], "expected SERVICE=PRESET"),
        (["--versionless", "no-such-service"], "unknown service(s) no-such-service"),
    ],
)
def test_simulate_rejects_unknown_presets_and_services(tmp_path: Path, arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--hours", "6", "--services", "1", *arguments])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_simulate_writes_a_mixed_fleet(tmp_path: Path) -> None:
    mixed = ["--service-preset", "order-service=spring-boot", "--versionless", "user-service", "--kubernetes"]
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--hours", "6", "--services", "2", *mixed])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "fleet.om").read_text()
    assert 'http_requests_total{service="user-service",code="200"}' in text
    assert 'http_server_requests_seconds_count{application="order-service",version=' in text
    assert "order-service" not in "".join(re.findall(r"^http_requests_total.*$", text, re.MULTILINE))
    assert "# TYPE kube_pod_container_info gauge" in text
