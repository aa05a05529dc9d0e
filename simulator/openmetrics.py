"""Writes a simulated fleet as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.

By default names follow the generic preset (prometheus_client conventions): the counter family
`http_requests` (`http_requests_total{service,version,code}`), the histogram `http_request_duration_seconds`,
and the process collector's counter `process_cpu_seconds_total` and gauge `process_resident_memory_bytes`.
Each service can also be emitted under the naming of any other preset in queries/presets (Spring Boot,
Istio, Linkerd, OpenTelemetry, NGINX ingress), several at once, with or without its version label, and the
fleet's deploys as kube-state-metrics see them. Every naming carries the same counts: `increase()` over
aligned steps gives the fleet's own numbers under any of them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from releasehealth.simulator import kubernetes as ksm
from releasehealth.simulator.fleet import BUCKETS, Fleet, SimulatedService

GENERIC = "generic"
SPLIT_STREAM = 5  # the status split's random stream: (fleet seed, service position, SPLIT_STREAM)
NAMESPACE = ksm.NAMESPACE
# (status code, Micrometer's outcome); the per-scrape arrays are split between these three.
STATUSES = (("200", "SUCCESS"), ("404", "CLIENT_ERROR"), ("500", "SERVER_ERROR"))
SECONDS_BOUNDS = [repr(b) for b in BUCKETS] + ["+Inf"]
MILLISECONDS_BOUNDS = [f"{b * 1000:g}" for b in BUCKETS] + ["+Inf"]


def escape_label_value(value: str) -> str:
    """OpenMetrics label-value escaping: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items()) + "}"


def _lines(name: str, labels: str, times: np.ndarray, values: np.ndarray) -> Iterator[str]:
    prefix = name + labels + " "
    for value, at in zip(values.tolist(), times.tolist(), strict=True):
        yield f"{prefix}{round(value, 6)} {at}\n"


# ---- what each process exposes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """What one process exposed: one version's counters, or the whole service's (`version` None) when
    it is emitted without a version label. Counters are cumulative, as SimulatedService.cumulative."""

    version: str | None
    times: np.ndarray
    totals: dict[str, np.ndarray]
    gauge_times: np.ndarray
    memory: np.ndarray
    statuses: dict[str, dict[str, np.ndarray]]  # code -> cumulative requests, buckets, latency_sum
    pod: str | None = None  # the pod it ran in, when Kubernetes' service discovery labels the series with it

    def pod_labels(self) -> dict[str, str]:
        """namespace and pod, as a Prometheus scraping pods through Kubernetes service discovery adds them."""
        return {} if self.pod is None else {"namespace": NAMESPACE, "pod": self.pod}

    def buckets(self, code: str) -> np.ndarray:
        """Cumulative over time and over `le`, of one status code: the `_bucket` series' values."""
        return np.cumsum(self.statuses[code]["buckets"], axis=1)


def split_by_status(service: SimulatedService, seed: int, position: int) -> dict[str, SimulatedService]:
    """The service's scrapes split by status code ("200", "404", "500"): each a SimulatedService whose
    `requests`, `buckets` and `latency_sum` are that status's share, for presets that label the latency
    histogram with the status.

    Per scrape, the 5xx requests are drawn from its latency buckets without replacement (multivariate
    hypergeometric), then the 4xx from what is left; the rest answered 200. So each status's +Inf bucket is
    its count and the three add up to the service's buckets. The latency sum is shared in proportion to
    the counts. Deterministic from (seed, position).
    """
    rng = np.random.default_rng([seed, position, SPLIT_STREAM])
    server, client = np.zeros_like(service.buckets), np.zeros_like(service.buckets)
    for i, row in enumerate(service.buckets):
        server[i] = rng.multivariate_hypergeometric(row, int(service.errors[i]))
        client[i] = rng.multivariate_hypergeometric(row - server[i], int(service.client_errors[i]))
    zeros = np.zeros(service.requests.size)
    per_request = np.divide(service.latency_sum, service.requests, out=zeros, where=service.requests > 0)
    server_sum, client_sum = per_request * service.errors, per_request * service.client_errors
    ok = service.requests - service.errors - service.client_errors
    parts = (
        ("200", ok, service.buckets - server - client, service.latency_sum - server_sum - client_sum),
        ("404", service.client_errors, client, client_sum),
        ("500", service.errors, server, server_sum),
    )
    return {
        code: dataclasses.replace(service, requests=count, buckets=buckets, latency_sum=total)
        for code, count, buckets, total in parts
    }


def _whole(service: SimulatedService) -> SimulatedService:
    """The service as one process that never restarts: a single "release" serving every scrape, so its
    counters run on across deploys (for an exposition without a version label)."""
    return dataclasses.replace(service, releases=service.releases[:1], release_index=np.zeros_like(service.release_index))


def tracks(
    service: SimulatedService, seed: int, position: int, versionless: bool, by_status: bool, pods: bool = False
) -> tuple[Track, ...]:
    """What the service exposed, per version (or as one track when `versionless`); with the status
    split when `by_status` (it costs a draw per scrape, so only the presets that need it ask); each
    version in a pod of its own (`pods`, the kube-state-metrics view's names) unless versionless."""
    views = split_by_status(service, seed, position) if by_status else {}
    if versionless:
        service, views = _whole(service), {code: _whole(view) for code, view in views.items()}
    out = []
    for release in service.releases:
        times, totals = service.cumulative(release.version)
        gauge_times, memory = service.gauge(release.version)
        statuses = {code: view.cumulative(release.version)[1] for code, view in views.items()}
        pod = ksm.pod_name(service.name, release.version) if pods and not versionless else None
        out.append(Track(None if versionless else release.version, times, totals, gauge_times, memory, statuses, pod))
    return tuple(out)


# ---- families: (service name, track) -> sample lines --------------------------------------------------

Series = Callable[[str, Track], Iterator[str]]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter, gauge, histogram or unknown
    help: str
    series: Series


def _identity(service_label: str, service: str, version_label: str, version: str | None, **more: str) -> dict[str, str]:
    """A series' labels: the service, then the version unless the track has none, then `more`."""
    labels = {service_label: service}
    if version is not None:
        labels[version_label] = version
    return {**labels, **more}


def _identity_of(service_label: str, service: str, version_label: str, track: Track, **more: str) -> dict[str, str]:
    """_identity for a track, with its pod's labels when it ran in a known pod."""
    return _identity(service_label, service, version_label, track.version, **track.pod_labels(), **more)


def _histogram(
    name: str, labels: dict[str, str], times: np.ndarray, buckets: np.ndarray, total: np.ndarray, count: np.ndarray,
    bounds: Sequence[str], scale: float = 1.0,
) -> Iterator[str]:
    """`_bucket` series per bound (cumulative `buckets` [scrape, bound]), then `_sum` (× `scale`) and `_count`."""
    for column, le in enumerate(bounds):
        yield from _lines(f"{name}_bucket", _labels(**labels, le=le), times, buckets[:, column])
    yield from _lines(f"{name}_sum", _labels(**labels), times, total * scale if scale != 1.0 else total)
    yield from _lines(f"{name}_count", _labels(**labels), times, count)


def _status_histogram(
    name: str, labels: Callable[[str], dict[str, str]], track: Track, bounds: Sequence[str], scale: float = 1.0
) -> Iterator[str]:
    """A histogram per status code; `labels(code)` names each."""
    for code, _ in STATUSES:
        cum = track.statuses[code]
        yield from _histogram(
            name, labels(code), track.times, track.buckets(code), cum["latency_sum"], cum["requests"], bounds, scale
        )


def _status_counter(name: str, labels: Callable[[str], dict[str, str]], track: Track) -> Iterator[str]:
    for code, _ in STATUSES:
        yield from _lines(name, _labels(**labels(code)), track.times, track.statuses[code]["requests"])


# generic: prometheus_client


def _generic(service: str, track: Track, **more: str) -> dict[str, str]:
    return _identity_of("service", service, "version", track, **more)


def _generic_requests(service: str, track: Track) -> Iterator[str]:
    cum = track.totals
    ok = cum["requests"] - cum["errors"] - cum["client_errors"]
    for code, values in (("200", ok), ("404", cum["client_errors"]), ("500", cum["errors"])):
        yield from _lines("http_requests_total", _labels(**_generic(service, track, code=code)), track.times, values)


def _generic_latency(service: str, track: Track) -> Iterator[str]:
    cum = track.totals
    yield from _histogram(
        "http_request_duration_seconds", _generic(service, track), track.times,
        np.cumsum(cum["buckets"], axis=1), cum["latency_sum"], cum["requests"], SECONDS_BOUNDS,
    )


def _generic_cpu(service: str, track: Track) -> Iterator[str]:
    labels = _labels(**_generic(service, track))
    yield from _lines("process_cpu_seconds_total", labels, track.times, track.totals["cpu_seconds"])


def _generic_memory(service: str, track: Track) -> Iterator[str]:
    yield from _lines("process_resident_memory_bytes", _labels(**_generic(service, track)), track.gauge_times, track.memory)


# spring-boot: Micrometer's Prometheus registry

EDEN_SHARE = 0.3
BREAKER_STATES = ("closed", "open", "half_open", "forced_open")


def _spring(service: str, track: Track, **more: str) -> dict[str, str]:
    return _identity_of("application", service, "version", track, **more)


def _spring_latency(service: str, track: Track) -> Iterator[str]:
    outcomes = dict(STATUSES)

    def labels(code: str) -> dict[str, str]:
        return _spring(
            service, track, method="GET", uri="/api/items", status=code, outcome=outcomes[code], exception="None"
        )

    yield from _status_histogram("http_server_requests_seconds", labels, track, SECONDS_BOUNDS)


def _spring_memory(service: str, track: Track) -> Iterator[str]:
    """The heap as two pools that add up to the resident memory exactly."""
    eden = np.round(track.memory * EDEN_SHARE)
    for pool, values in (("G1 Eden Space", eden), ("G1 Old Gen", track.memory - eden)):
        labels = _labels(**_spring(service, track, area="heap", id=pool))
        yield from _lines("jvm_memory_used_bytes", labels, track.gauge_times, values)


def _spring_cpu(service: str, track: Track) -> Iterator[str]:
    nanoseconds = track.totals["cpu_seconds"] * 1e9
    yield from _lines("process_cpu_time_ns_total", _labels(**_spring(service, track)), track.times, nanoseconds)


def _spring_breakers(service: str, track: Track) -> Iterator[str]:
    for state in BREAKER_STATES:
        values = np.full(track.times.size, 1 if state == "closed" else 0)
        labels = _labels(**_spring(service, track, name="inventory", state=state))
        yield from _lines("resilience4j_circuitbreaker_state", labels, track.times, values)


# istio: standard metrics, reported by both sidecars


GATEWAY_POD = {"namespace": "istio-system", "pod": "istio-ingressgateway-6c8b9d7f4-q2w8z"}


def _istio(service: str, track: Track, reporter: str, code: str) -> dict[str, str]:
    # Scraped from the reporting sidecar: the destination's pod, or the calling gateway's.
    scraped = track.pod_labels() if reporter == "destination" or not track.pod else GATEWAY_POD
    return {
        "reporter": reporter, "source_workload": "istio-ingressgateway", "destination_workload": service,
        "destination_workload_namespace": NAMESPACE,
        **({} if track.version is None else {"destination_version": track.version}),
        "response_code": code, **scraped,
    }


def _istio_requests(service: str, track: Track) -> Iterator[str]:
    for reporter in ("destination", "source"):  # the same requests, seen from each side
        yield from _status_counter("istio_requests_total", functools.partial(_istio, service, track, reporter), track)


def _istio_latency(service: str, track: Track) -> Iterator[str]:
    def labels(code: str) -> dict[str, str]:
        return _istio(service, track, "destination", code)

    yield from _status_histogram("istio_request_duration_milliseconds", labels, track, MILLISECONDS_BOUNDS, 1000.0)


# linkerd: the proxy's inbound and outbound views


def _linkerd(service: str, track: Track, direction: str, **more: str) -> dict[str, str]:
    version = {} if track.version is None else {"version": track.version}
    return {"direction": direction, "deployment": service, "namespace": NAMESPACE, **version, **track.pod_labels(), **more}


def _linkerd_response(service: str, track: Track, direction: str, code: str) -> dict[str, str]:
    classification = "failure" if code.startswith("5") else "success"
    return _linkerd(service, track, direction, status_code=code, classification=classification, tls="true")


def _linkerd_requests(service: str, track: Track) -> Iterator[str]:
    for direction in ("inbound", "outbound"):  # the same requests, from the server's and the client's proxy
        yield from _status_counter("response_total", functools.partial(_linkerd_response, service, track, direction), track)


def _linkerd_latency(service: str, track: Track) -> Iterator[str]:
    def labels(code: str) -> dict[str, str]:
        return _linkerd(service, track, "inbound", status_code=code)

    yield from _status_histogram("response_latency_ms", labels, track, MILLISECONDS_BOUNDS, 1000.0)


# opentelemetry: HTTP semantic conventions and process metrics, resource attributes copied onto them

USER_SHARE = 0.7


def _otel(service: str, track: Track, **more: str) -> dict[str, str]:
    return _identity_of("service_name", service, "service_version", track, **more)


def _otel_latency(service: str, track: Track) -> Iterator[str]:
    def labels(code: str) -> dict[str, str]:
        return _otel(
            service, track, http_request_method="GET", http_route="/api/items", url_scheme="http",
            http_response_status_code=code,
        )

    yield from _status_histogram("http_server_request_duration_seconds", labels, track, SECONDS_BOUNDS)


def _otel_cpu(service: str, track: Track) -> Iterator[str]:
    user = track.totals["cpu_seconds"] * USER_SHARE
    for mode, values in (("user", user), ("system", track.totals["cpu_seconds"] - user)):
        labels = _labels(**_otel(service, track, cpu_mode=mode))
        yield from _lines("process_cpu_time_seconds_total", labels, track.times, values)


def _otel_memory(service: str, track: Track) -> Iterator[str]:
    yield from _lines("process_memory_usage_bytes", _labels(**_otel(service, track)), track.gauge_times, track.memory)


# nginx-ingress: the controller, which does not know the backend's version


def _nginx(service: str, code: str) -> dict[str, str]:
    return {
        "controller_class": "k8s.io/ingress-nginx", "controller_namespace": "ingress-nginx",
        "controller_pod": "ingress-nginx-controller-7f9c6d5b8-x2x4q", "exported_namespace": NAMESPACE,
        "ingress": service, "service": service, "method": "GET", "path": "/", "status": code,
    }


def _nginx_requests(service: str, track: Track) -> Iterator[str]:
    yield from _status_counter("nginx_ingress_controller_requests", lambda code: _nginx(service, code), track)


def _nginx_latency(service: str, track: Track) -> Iterator[str]:
    yield from _status_histogram(
        "nginx_ingress_controller_request_duration_seconds", lambda code: _nginx(service, code), track, SECONDS_BOUNDS
    )


PRESETS: dict[str, tuple[Family, ...]] = {
    GENERIC: (
        Family("http_requests", "counter", "Requests served, by status code.", _generic_requests),
        Family("http_request_duration_seconds", "histogram", "Request latency.", _generic_latency),
        Family("process_cpu_seconds", "counter", "Total user and system CPU time spent in seconds.", _generic_cpu),
        Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", _generic_memory),
    ),
    "spring-boot": (
        Family("http_server_requests_seconds", "histogram", "Duration of HTTP server request handling.", _spring_latency),
        Family("jvm_memory_used_bytes", "gauge", "The amount of used memory.", _spring_memory),
        Family("process_cpu_time_ns", "counter", "The CPU time used by the Java Virtual Machine process.", _spring_cpu),
        Family("resilience4j_circuitbreaker_state", "gauge", "The states of the circuit breaker.", _spring_breakers),
    ),
    "istio": (
        Family("istio_requests", "counter", "Requests, by response code and reporter.", _istio_requests),
        Family("istio_request_duration_milliseconds", "histogram", "Request duration in milliseconds.", _istio_latency),
    ),
    "linkerd": (
        Family("response", "counter", "Total count of HTTP responses.", _linkerd_requests),
        Family("response_latency_ms", "histogram", "Elapsed time from request to response end.", _linkerd_latency),
    ),
    "opentelemetry": (
        Family("http_server_request_duration_seconds", "histogram", "Duration of HTTP server requests.", _otel_latency),
        Family("process_cpu_time_seconds", "counter", "Total CPU seconds broken down by different CPU modes.", _otel_cpu),
        Family("process_memory_usage_bytes", "gauge", "The amount of physical memory in use.", _otel_memory),
    ),
    # A counter without the _total suffix: OpenMetrics only allows that for the "unknown" type.
    "nginx-ingress": (
        Family("nginx_ingress_controller_requests", "unknown", "The total number of client requests.", _nginx_requests),
        Family(
            "nginx_ingress_controller_request_duration_seconds", "histogram", "The request processing time in seconds.",
            _nginx_latency,
        ),
    ),
}
ALWAYS_VERSIONLESS = frozenset({"nginx-ingress"})


# ---- writing ------------------------------------------------------------------------------------------


def _preset_plan(fleet: Fleet, presets: Mapping[str, str | Sequence[str]] | None) -> dict[str, list[str]]:
    """Preset -> the services emitted under it, in fleet order; raise ValueError on an unknown name."""
    names = [s.name for s in fleet.services]
    chosen = {name: [GENERIC] for name in names} if presets is None else {
        service: [wanted] if isinstance(wanted, str) else list(wanted) for service, wanted in presets.items()
    }
    problems = [f"unknown service {s!r}" for s in chosen if s not in names]
    problems += [f"unknown preset {p!r}" for wanted in chosen.values() for p in wanted if p not in PRESETS]
    if problems:
        raise ValueError(f"{'; '.join(problems)} (services: {', '.join(names)}; presets: {', '.join(PRESETS)})")
    return {preset: [n for n in names if preset in chosen.get(n, ())] for preset in PRESETS}


def write_openmetrics(
    fleet: Fleet,
    out: TextIO,
    presets: Mapping[str, str | Sequence[str]] | None = None,
    versionless: Collection[str] = (),
    kubernetes: bool = False,
    image_tags: ksm.ImageTags | None = None,
) -> None:
    """Write every family with all its samples together (as OpenMetrics requires), then `# EOF`.

    `presets` maps a service to the preset(s) naming it (default: every service under "generic"; a service
    left out is not written); `versionless` services, and every service under nginx-ingress, are written
    without a version label, as one series run on across deploys. `kubernetes` adds the kube-state-metrics
    view of the deploys (`image_tags` overrides the app image's tag of some (service, version)), and the
    `namespace` and `pod` labels of each version's pod to its series. Raises ValueError on an unknown
    service or preset.
    """
    plan = _preset_plan(fleet, presets)
    unknown = set(versionless) - {s.name for s in fleet.services}
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(sorted(unknown))} in versionless")
    cache: dict[tuple[str, bool, bool], tuple[Track, ...]] = {}

    def tracks_of(position: int, service: SimulatedService, preset: str) -> tuple[Track, ...]:
        flat = service.name in versionless or preset in ALWAYS_VERSIONLESS
        key = (service.name, flat, preset != GENERIC)
        if key not in cache:
            cache[key] = tracks(service, fleet.seed, position, flat, by_status=preset != GENERIC, pods=kubernetes)
        return cache[key]

    for preset, families in PRESETS.items():
        emitted = [(i, s) for i, s in enumerate(fleet.services) if s.name in plan[preset]]
        for family in families if emitted else ():
            out.write(f"# TYPE {family.name} {family.kind}\n# HELP {family.name} {family.help}\n")
            for position, service in emitted:
                for track in tracks_of(position, service, preset):
                    out.writelines(family.series(service.name, track))
    if kubernetes:
        _write_kubernetes(fleet, out, image_tags or {})
    out.write("# EOF\n")


def _write_kubernetes(fleet: Fleet, out: TextIO, image_tags: ksm.ImageTags) -> None:
    for name, help_text, series in ksm.FAMILIES:
        out.write(f"# TYPE {name} gauge\n# HELP {name} {help_text}\n")
        for labels, times in series(fleet, image_tags):
            out.writelines(_lines(name, _labels(**labels), times, np.ones(times.size, dtype=np.int64)))


def write_files(fleet: Fleet, folder: Path, **options: Any) -> tuple[Path, Path]:
    """Write `fleet.om` (OpenMetrics, named as `options` say: see write_openmetrics) and `truth.json`
    (ground truth) into `folder`; return both paths."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    metrics, truth = folder / "fleet.om", folder / "truth.json"
    with metrics.open("w", encoding="utf-8") as out:
        write_openmetrics(fleet, out, **options)
    truth.write_text(json.dumps(fleet.truth(), indent=2), encoding="utf-8")
    return metrics, truth
