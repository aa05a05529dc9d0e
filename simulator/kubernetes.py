"""The kube-state-metrics view of a simulated fleet: each release is a ReplicaSet of its service's
Deployment (namespace "shop"), running one pod with the app and an Istio sidecar.

Names are deterministic from (service, version), in the alphabet Kubernetes uses for generated names, so
a test can compute what to expect. ReplicaSets are kept after a rollout (as Kubernetes keeps its history);
a pod lives from its release's deploy until a minute after the next deploy (a rolling update's overlap).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta

import numpy as np

from releasehealth.simulator.fleet import Fleet, SimulatedService

NAMESPACE = "shop"
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString: no vowels, no look-alikes
REGISTRY = "registry.example.com/shop"
SIDECAR_IMAGE = "docker.io/istio/proxyv2:1.22.0"
OVERLAP = timedelta(seconds=60)  # a rolling update keeps the old pod this long after the new one starts

ImageTags = Mapping[tuple[str, str], str]
Series = Iterator[tuple[dict[str, str], np.ndarray]]  # (labels, scrape times at which the gauge is 1)


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


def _safe(digest: bytes, length: int) -> str:
    return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:length])


def replicaset_name(service: str, version: str) -> str:
    """The ReplicaSet of a release: the Deployment's name and a 10-character pod-template hash."""
    return f"{service}-{_safe(_digest('replicaset', service, version), 10)}"


def pod_name(service: str, version: str) -> str:
    """The release's one pod: its ReplicaSet's name and 5 random-looking characters."""
    return f"{replicaset_name(service, version)}-{_safe(_digest('pod', service, version), 5)}"


def image(service: str, version: str, tag: str | None = None) -> str:
    """The app container's image: tagged with the version unless `tag` says otherwise."""
    return f"{REGISTRY}/{service}:{tag or version}"


def _between(service: SimulatedService, start: datetime, end: datetime) -> np.ndarray:
    return service.times[(service.times >= start.timestamp()) & (service.times <= end.timestamp())]


def _pod_lifetimes(fleet: Fleet, service: SimulatedService) -> Iterator[tuple[str, np.ndarray]]:
    """(version, scrape times its pod exists): from its deploy to a minute after the next one."""
    releases = service.releases
    for release, following in zip(releases, [*releases[1:], None], strict=True):
        end = fleet.end if following is None else min(fleet.end, following.deployed_at + OVERLAP)
        yield release.version, _between(service, release.deployed_at, end)


def replicaset_owner(fleet: Fleet, image_tags: ImageTags) -> Series:
    for service in fleet.services:
        for release in service.releases:
            labels = {
                "namespace": NAMESPACE, "replicaset": replicaset_name(service.name, release.version),
                "owner_kind": "Deployment", "owner_name": service.name, "owner_is_controller": "true",
            }
            yield labels, _between(service, release.deployed_at, fleet.end)


def _uid(service: str, version: str) -> str:
    return str(uuid.UUID(bytes=_digest("uid", service, version)[:16]))


def pod_owner(fleet: Fleet, image_tags: ImageTags) -> Series:
    for service in fleet.services:
        for version, times in _pod_lifetimes(fleet, service):
            labels = {
                "namespace": NAMESPACE, "pod": pod_name(service.name, version), "uid": _uid(service.name, version),
                "owner_kind": "ReplicaSet", "owner_name": replicaset_name(service.name, version),
                "owner_is_controller": "true",
            }
            yield labels, times


def pod_container_info(fleet: Fleet, image_tags: ImageTags) -> Series:
    for service in fleet.services:
        for version, times in _pod_lifetimes(fleet, service):
            app = image(service.name, version, image_tags.get((service.name, version)))
            for container, reference in (("app", app), ("istio-proxy", SIDECAR_IMAGE)):
                repository = reference.rsplit(":", 1)[0]
                pod = pod_name(service.name, version)
                yield {
                    "namespace": NAMESPACE, "pod": pod, "uid": _uid(service.name, version),
                    "container": container, "image": reference, "image_spec": reference,
                    "image_id": f"{repository}@sha256:{_digest('image', reference).hex()}",
                    "container_id": f"containerd://{_digest('container', pod, container).hex()}",
                }, times


# (family, help, series): every one a gauge of value 1 while the object exists.
FAMILIES: tuple[tuple[str, str, Callable[[Fleet, ImageTags], Series]], ...] = (
    ("kube_replicaset_owner", "Information about the ReplicaSet's owner.", replicaset_owner),
    ("kube_pod_owner", "Information about the Pod's owner.", pod_owner),
    ("kube_pod_container_info", "Information about a container in a pod.", pod_container_info),
)
