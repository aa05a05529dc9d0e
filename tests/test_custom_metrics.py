"""Presets and a service's own metrics, as the config loads them: templates checked when the file is read,
every problem with its file and path, variables strict; versions from Kubernetes as configured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import promql_parser
import pytest

from releasehealth import config
from releasehealth.errors import ConfigError, TemplateError
from releasehealth.model import KubernetesSettings, LabelNames, MetricKind
from releasehealth.queries.promql import QueryGroup, metric_names
from testing.configs import ROOT, example_config

PRESETS = ("generic", "spring-boot", "istio", "linkerd", "opentelemetry", "nginx-ingress")
CHECKOUTS = 'sum by (${by}) (increase(checkout_total{${selector}}[${step}]))'
FAILED = 'sum by (${by}) (increase(checkout_total{${selector},result="failed"}[${step}]))'


def _with_service(**service: object) -> dict:
    raw = example_config("http://p:9090")
    raw["services"] = [{"name": "cart", **service}]
    return raw


def _problems(raw: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        config.parse(raw, "team.yaml")
    return str(caught.value)


def test_every_preset_the_issue_names_ships_with_the_roles_the_judge_needs() -> None:
    assert set(PRESETS) <= config.preset_names()
    for name in PRESETS:
        preset = config.load_preset(name)
        kinds = {m.kind for m in preset.metrics}
        assert {MetricKind.RATIO, MetricKind.HISTOGRAM_QUANTILE} <= kinds, name
        assert {"requests", "latency_buckets", "first_seen", "last_seen"} <= set(preset.templates), name
        assert "errors" in preset.derived, name
        assert metric_names(preset.templates["requests"]), name  # what "no data for preset X" names
        generic = {m.name: m for m in config.load_preset("generic").metrics}
        assert all(m == generic[m.name] for m in preset.metrics if m.name in generic), name  # one set of tolerances
        sample = LabelNames(preset.labels.service, preset.labels.version)
        for template, text in preset.templates.items():
            query = QueryGroup(sample).range(template, text, ["cart", 'we"ird'], start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 1, 1, tzinfo=UTC), step=timedelta(minutes=1))
            promql_parser.parse(query.text)


def test_nginx_has_no_version_label_and_mesh_latencies_are_read_in_seconds() -> None:
    assert config.load_preset("nginx-ingress").labels.version == ""
    for name in ("istio", "linkerd"):
        assert config.load_preset(name).bucket_units == {"latency_buckets": "milliseconds"}
    query = QueryGroup(LabelNames("service", "")).range("requests", config.load_preset("nginx-ingress").templates["requests"], ["cart"], start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 1, 1, tzinfo=UTC), step=timedelta(minutes=1))
    assert query.text.startswith("sum by (service, status) (")


def test_a_custom_metric_is_judged_beside_the_preset_and_rendered_with_the_service_labels() -> None:
    raw = _with_service(
        preset="istio",
        templates={"checkouts": CHECKOUTS},
        metrics=[{
            "name": "checkout_failures", "kind": "ratio", "unit": "ratio", "critical": True,
            "queries": {"numerator": FAILED, "denominator": "checkouts"},
            "tolerance": {"relative": 0.2, "absolute": 0.001}, "group": "errors",
        }],
    )
    service = config.parse(raw).services[0]
    spec = next(m for m in service.metrics if m.name == "checkout_failures")
    assert spec.critical and spec.queries == {"numerator": "checkout_failures.numerator", "denominator": "checkouts"}
    assert "error_ratio" in {m.name for m in service.metrics}  # the preset's stay
    templates = dict(service.templates)
    query = QueryGroup(service.labels).range("checkout_failures.numerator", templates["checkout_failures.numerator"], ["cart"], start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 1, 1, tzinfo=UTC), step=timedelta(minutes=1))
    assert query.text == (
        'sum by (destination_workload, destination_version) '
        '(increase(checkout_total{destination_workload="cart",result="failed"}[1m]))'
    )


def test_a_custom_metric_of_a_preset_name_replaces_it_for_that_service_only() -> None:
    raw = _with_service(metrics=[{
        "name": "p95_latency", "kind": "histogram_quantile", "quantile": 0.95, "unit": "seconds",
        "queries": {"buckets": 'sum by (${by}, le) (increase(rpc_latency_ms_bucket{${selector}}[${step}]))'},
        "bucket_unit": "milliseconds",
    }])
    raw["services"].append({"name": "other"})
    catalogue = config.parse(raw)
    mine, other = catalogue.services
    assert [m.queries for m in mine.metrics if m.name == "p95_latency"] == [{"buckets": "p95_latency.buckets"}]
    assert dict(mine.bucket_units) == {"p95_latency.buckets": "milliseconds"}
    assert [m.queries for m in other.metrics if m.name == "p95_latency"] == [{"buckets": "latency_buckets"}]


def test_malformed_custom_templates_fail_the_load_at_once_with_file_path_and_parser_message() -> None:
    raw = _with_service(
        templates={"checkouts": 'sum by (${by}) (increase(checkout_total{${selector}}[${step}])'},  # unclosed
        metrics=[
            {"name": "a", "kind": "ratio", "unit": "ratio",
             "queries": {"numerator": 'sum by (${by}) (increase(x{${selector}}[${stpe}]))', "denominator": "requets"}},
            {"name": "b", "kind": "gauge", "unit": "bytes", "queries": {"value": "sum(heap_bytes)"}},
            {"name": "c", "kind": "gauge", "unit": "", "queries": {
                "value": 'label_replace(sum by (${by}) (x{${selector}}), "v", "$1", "l", "(.*)")'}},
            {"name": "d", "kind": "histogram_quantile", "unit": "seconds", "queries": {"value": "requests"}},
        ],
    )
    text = _problems(raw)
    for fragment in (
        "team.yaml: services[0].templates.checkouts: not valid PromQL: unclosed left parenthesis",
        "team.yaml: services[0].metrics[0].queries.numerator: unknown variable(s) ${stpe}",
        "team.yaml: services[0].metrics[0].queries.denominator: unknown template 'requets' (known:",
        "team.yaml: services[0].metrics[1].queries.value: must use ${by} and ${selector}",
        "team.yaml: services[0].metrics[2].queries.value: Invalid placeholder",
        "write $$ for a literal $",
        "team.yaml: services[0].metrics[3]: queries: a histogram_quantile metric needs buckets, got value",
        "team.yaml: services[0].metrics[3]: quantile: a histogram_quantile metric needs one",
    ):
        assert fragment in text, (fragment, text)


def test_variables_are_strict_when_a_template_is_rendered() -> None:
    from releasehealth.queries.promql import render

    with pytest.raises(TemplateError, match=r"no value for variable \$\{selector\}"):
        render("checkouts", CHECKOUTS, {"by": "service", "step": "1m"})


def test_kubernetes_versions_are_configured_per_service_and_checked() -> None:
    raw = _with_service(preset="nginx-ingress", kubernetes={"namespace": "shop", "container": "app"})
    service = config.parse(raw).services[0]
    assert service.kubernetes == KubernetesSettings(deployment="cart", namespace="shop", container="app", version_from="image")
    assert service.labels.version == ""
    raw = _with_service(kubernetes={"deployment": "cart-v2", "version_from": "helm"})
    assert "services[0].kubernetes.version_from" in _problems(raw)


def test_a_version_label_can_be_switched_off_for_one_service() -> None:
    service = config.parse(_with_service(preset="linkerd", labels={"version": ""})).services[0]
    assert service.labels == LabelNames("deployment", "")


def test_metrics_without_a_version_cannot_use_a_concurrent_baseline() -> None:
    raw = _with_service(preset="nginx-ingress")
    raw["policy"]["baseline"] = "concurrent"
    assert "services[0]: its metrics carry no version label (preset nginx-ingress)" in _problems(raw)


def test_the_readme_table_lists_every_preset_with_its_metrics() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Presets"):readme.index("#### Versions from Kubernetes")]
    for name in config.preset_names():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
        preset = config.load_preset(name)
        assert f"`{metric_names(preset.templates['requests'])[0]}" in row, (name, row)
        assert f"`{preset.labels.service}`" in row, (name, row)


def test_the_commented_examples_in_the_shipped_config_are_valid() -> None:
    import yaml

    lines = (ROOT / "release-health.yaml").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if "- name: storefront" in line)
    block = [line.replace("  # ", "  ", 1) for line in lines[start:] if line.startswith("  # ")]
    raw = example_config("http://p:9090")
    raw["services"] = yaml.safe_load("\n".join(line[2:] for line in block))
    names = [s.name for s in config.parse(raw).services]
    assert names == ["storefront", "checkout"]


def test_a_custom_metric_cannot_take_a_name_twice() -> None:
    gauge = {"kind": "gauge", "unit": "", "queries": {"value": "memory"}}
    raw = _with_service(metrics=[{"name": "heap", **gauge}, {"name": "heap", **gauge}, {"name": "log_signatures", **gauge}])
    text = _problems(raw)
    assert "services[0].metrics[1].name: 'heap' is already a metric of this service" in text
    assert "services[0].metrics[2].name: 'log_signatures' is already a metric of this service" in text


def test_a_pod_join_needs_join_in_every_template_of_the_service_and_renames_pod_labels() -> None:
    raw = _with_service(
        preset="istio", kubernetes={"join": "pod", "pod_label": "kubernetes_pod_name"},
        metrics=[{"name": "queue", "kind": "gauge", "unit": "", "queries": {"value": "avg by (${by}) (queue{${selector}})"}}],
    )
    assert "services[0].metrics[0].queries.value: must use ${join} where the raw series are" in _problems(raw)
    raw["services"][0]["metrics"][0]["queries"]["value"] = "avg by (${by}) (queue{${selector}}${join})"
    service = config.parse(raw).services[0]
    assert service.labels == LabelNames("destination_workload", "version")
    from releasehealth.queries import kubernetes

    join = kubernetes.pod_join(service.kubernetes)
    assert join.startswith(" * on (namespace, kubernetes_pod_name) group_left (version) label_replace(")
    query = QueryGroup(service.labels, join=join).range("queue.value", dict(service.templates)["queue.value"], ["cart"], start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 1, 1, tzinfo=UTC), step=timedelta(minutes=1))
    promql_parser.parse(query.text)
