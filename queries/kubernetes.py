"""PromQL over kube-state-metrics: which versions of a Deployment ran, and when each first and last ran;
and the join that gives a pod's series that pod's version (`kubernetes: {join: pod}`).

A version is the image tag of a container of the Deployment's pods (or the pod-template-hash of the pods'
ReplicaSet), found by joining three kube-state-metrics series on their keys:

    kube_pod_container_info{namespace, pod, container, image}   the image of each container of each pod
    kube_pod_owner{namespace, pod, owner_kind="ReplicaSet", owner_name}   the pod's ReplicaSet
    kube_replicaset_owner{namespace, replicaset, owner_kind="Deployment", owner_name}   its Deployment

The result is grouped by (owner_name = the Deployment, version), and `first_seen`/`last_seen` take the
first and last step each pair existed at, as the presets' deploy detection does with a version label.
Deployment names are untrusted like any label value: they enter only as escaped matchers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from releasehealth.model import KubernetesSettings, LabelNames, Query
from releasehealth.queries import promql

# Mesh sidecars and their init containers: their image tag is the mesh's version, not the service's.
SIDECARS = ("istio-proxy", "istio-init", "istio-validation", "linkerd-proxy", "linkerd-init", "linkerd-network-validator")
# The tag of an image reference: after the last ":" that is not part of a registry's host:port, before any
# "@sha256:" digest. "registry:5000/shop/cart:1.4.2@sha256:..." -> 1.4.2. An image with a digest only, or
# no tag (an implicit "latest"), has none: use version_from: replicaset for it.
IMAGE_TAG = r"^[^@]*:([^:/@]+)(@.*)?$"
LABELS = LabelNames(service="owner_name", version="version")  # what the result is grouped by

_IMAGE_VERSIONS = (
    'label_replace(max by (namespace, pod, image) (kube_pod_container_info{${containers}}), '
    '"version", "$$1", "image", ${tag})'
)
_PODS_BY_IMAGE = (
    _IMAGE_VERSIONS + ' * on (namespace, pod) group_left (replicaset) '
    'max by (namespace, pod, replicaset) (label_replace(kube_pod_owner{${owners}}, "replicaset", "$$1", "owner_name", "(.+)"))'
)
_PODS_BY_REPLICASET = (
    'max by (namespace, pod, replicaset, version) (label_replace(label_replace(kube_pod_owner{${owners}}, '
    '"replicaset", "$$1", "owner_name", "(.+)"), "version", "$$1", "owner_name", "^.*-([^-]+)$$"))'
)
_VERSIONS = (
    'group by (owner_name, version) (${pods} * on (namespace, replicaset) group_left (owner_name) '
    'max by (namespace, replicaset, owner_name) (kube_replicaset_owner{${deployments}}))'
)
_SEEN = '${aggregate}(timestamp(${versions})[${lookback}:${step}])'


def _pods(settings: KubernetesSettings, replicaset: bool = True) -> str:
    """(namespace, pod, replicaset, version) of every pod in `settings`' namespace (any, if none); without
    `replicaset`, (namespace, pod, version) from the image alone (any pod, a StatefulSet's too)."""
    namespace = [f"namespace={promql.quote(settings.namespace)}"] if settings.namespace else []
    if settings.container:
        containers = [f"container={promql.quote(settings.container)}"]
    else:
        containers = [f"container!~{promql.quote('|'.join(SIDECARS))}"]
    owners = ",".join(['owner_kind="ReplicaSet"', *namespace])
    variables = {
        "containers": ",".join(containers + namespace),
        "owners": owners,
        "tag": promql.quote(IMAGE_TAG),
    }
    if settings.version_from != "image":
        template = _PODS_BY_REPLICASET
    else:
        template = _PODS_BY_IMAGE if replicaset else _IMAGE_VERSIONS
    return promql.render("kubernetes pods", template, variables)


def pod_join(settings: KubernetesSettings) -> str:
    """What `${join}` becomes for a service whose series carry their pod's `namespace` and `pod` labels:
    each raw series multiplied (by 1) by its pod's `version`, so `sum by (service, version)` groups by it.
    A pod unknown to kube-state-metrics at a step drops out of that step."""
    pods = f"max by (namespace, pod, version) ({_pods(settings, replicaset=False)})"
    for ours, theirs in ((settings.pod_label, "pod"), (settings.namespace_label, "namespace")):
        if ours != theirs:  # the metrics name them otherwise: copy kube-state-metrics' onto those names
            pods = f'label_replace({pods}, {promql.quote(ours)}, "$1", {promql.quote(theirs)}, "(.*)")'
    on = f"{promql.check_label_name(settings.namespace_label)}, {promql.check_label_name(settings.pod_label)}"
    return f" * on ({on}) group_left (version) {pods}"


def versions_expression(deployments: Sequence[str], settings: KubernetesSettings) -> str:
    """The (owner_name, version) pairs running now among `deployments`, all sharing `settings`'
    namespace, container and version source."""
    pods = _pods(settings)
    selector = promql.selector("owner_name", deployments, [("owner_kind", "Deployment")] + (
        [("namespace", settings.namespace)] if settings.namespace else []
    ))
    return promql.render("kubernetes versions", _VERSIONS, {"pods": pods, "deployments": selector})


def seen_query(
    template: str, deployments: Sequence[str], settings: KubernetesSettings, *, step: timedelta, lookback: timedelta,
    end: datetime, source: str,
) -> Query:
    """The instant query giving, per (Deployment, version), the first (`template` "first_seen") or last
    ("last_seen") step it ran at within `lookback` before `end`."""
    aggregate = "min_over_time" if template == "first_seen" else "max_over_time"
    text = promql.render(f"kubernetes {template}", _SEEN, {
        "aggregate": aggregate, "versions": versions_expression(deployments, settings),
        "lookback": promql.format_duration(lookback), "step": promql.format_duration(step),
    })
    return Query(
        template=f"kubernetes_{template}", text=text, services=tuple(deployments), labels=LABELS, source=source,
        start=end - lookback, end=end, step=None,
    )
