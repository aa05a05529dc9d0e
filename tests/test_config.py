"""The YAML catalogue: the shipped example is valid; bad input is reported all at once, with paths."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from releasehealth import config
from releasehealth.config.credentials import prometheus_credentials
from releasehealth.errors import ConfigError, NotFoundError
from testing.configs import ROOT, example_config


def test_the_shipped_example_config_is_valid() -> None:
    catalogue = config.load(ROOT / "release-health.yaml")
    assert [s.name for s in catalogue.services][:2] == ["user-service", "order-service"]
    assert len(catalogue.services) == 8
    assert catalogue.policy.window == timedelta(minutes=30)
    assert catalogue.policy.thresholds.pass_score == 95 and catalogue.policy.thresholds.marginal_score == 75
    assert {m.name for m in catalogue.services[0].metrics} == {
        "error_ratio", "p50_latency", "p95_latency", "p99_latency", "tail_latency", "memory", "cpu_per_request"
    }


def test_label_overrides_replace_the_preset_labels() -> None:
    raw = example_config("http://p:9090")
    raw["services"] = [{"name": "a", "labels": {"service": "app", "version": "release"}, "selector": {"env": "prod"}}]
    service = config.parse(raw).services[0]
    assert (service.labels.service, service.labels.version) == ("app", "release")
    assert service.selector == (("env", "prod"),)


def test_every_problem_is_reported_at_once_with_file_and_path() -> None:
    raw = {
        "sources": {"prometheus": {"url": "ftp://x", "retries": 99, "tokn": "x"}},
        "policy": {"window": "soon"},
        "services": [{"name": ""}, {"name": "b", "preset": "istio-typo"}],
    }
    with pytest.raises(ConfigError) as caught:
        config.parse(raw, "team.yaml")
    problems = caught.value.problems
    assert len(problems) == 6, problems
    text = str(caught.value)
    for fragment in (
        "team.yaml: sources.prometheus.url:",
        "team.yaml: sources.prometheus.retries:",
        "team.yaml: sources.prometheus.tokn: unknown field",
        "team.yaml: policy.window: invalid duration 'soon'",
        "team.yaml: services[0].name:",
        "team.yaml: services[1].preset: unknown preset 'istio-typo' (did you mean 'istio'?)",
    ):
        assert fragment in text


def test_a_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("services: [a, b\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        config.load(path)


def test_duplicate_service_names_are_rejected() -> None:
    raw = example_config("http://p:9090")
    raw["services"] = [{"name": "a"}, {"name": "a"}]
    with pytest.raises(ConfigError, match=r"services: duplicate service name\(s\): a"):
        config.parse(raw)


def test_a_step_too_coarse_for_the_window_is_rejected() -> None:
    raw = example_config("http://p:9090")
    raw["policy"] = {"window": "2m", "step": "1m"}
    with pytest.raises(ConfigError, match="at most a quarter of the window"):
        config.parse(raw)


def test_unknown_rollback_placeholders_are_rejected() -> None:
    raw = example_config("http://p:9090")
    raw["rollback_command"] = "undo {servce}"
    with pytest.raises(ConfigError, match=r"rollback_command: unknown placeholder\(s\) servce"):
        config.parse(raw)


def test_rollback_command_is_filled_in() -> None:
    raw = example_config("http://p:9090")
    raw["rollback_command"] = "argo rollouts undo {service} --to {baseline}  # from {version}"
    catalogue = config.parse(raw)
    assert catalogue.rollback("a", "1.1", "1.0") == "argo rollouts undo a --to 1.0  # from 1.1"


def test_credentials_come_from_the_environment_variables_named() -> None:
    raw = example_config("http://p:9090", bearer_token_env="PROM_TOKEN")
    settings = config.parse(raw).prometheus
    headers, auth = prometheus_credentials(settings, {"PROM_TOKEN": "s3cret"})
    assert headers == {"Authorization": "Bearer s3cret"} and auth is None
    with pytest.raises(ConfigError, match="environment variable PROM_TOKEN is named in the config but not set"):
        prometheus_credentials(settings, {})


def test_unknown_service_lists_the_known_ones() -> None:
    catalogue = config.parse(example_config("http://p:9090"))
    with pytest.raises(NotFoundError, match="unknown service 'nope'.*user-service"):
        catalogue.service("nope")


def test_every_preset_template_parses_and_uses_known_variables() -> None:
    for name in config.preset_names():
        preset = config.load_preset(name)
        assert {"requests", "first_seen", "last_seen"} <= set(preset.templates)
        # The errors are part of the requests' answer, never a query of their own (an absent series is not zero).
        assert preset.derived["errors"].source == "requests"


def test_rollback_command_shell_quotes_untrusted_label_values() -> None:
    catalogue = config.parse(example_config("http://p:9090"))
    assert catalogue.rollback("a", "1.1; rm -rf /", "$(reboot)") == "kubectl rollout undo deployment/a"
    raw = example_config("http://p:9090")
    raw["rollback_command"] = "deploy {service}={baseline}"
    assert config.parse(raw).rollback("a b", "x", "$(reboot)") == "deploy 'a b'='$(reboot)'"


def test_muted_metrics_and_check_interval_are_read_and_typos_rejected() -> None:
    raw = example_config("http://p:9090")
    raw["policy"] = {"muted": ["p95_latency"], "check_interval": "5m"}
    raw["services"] = [{"name": "a", "muted": ["error_ratio"]}, {"name": "b"}]
    catalogue = config.parse(raw)
    shipped_muted = {"p99_latency"}  # the generic preset's dry run
    assert {m.name for m in catalogue.services[0].metrics if m.muted} == {"error_ratio", "p95_latency"} | shipped_muted
    assert {m.name for m in catalogue.services[1].metrics if m.muted} == {"p95_latency"} | shipped_muted
    assert catalogue.policy.group_weights == {"saturation": 0.5}  # the default, kept when none are given
    assert catalogue.policy.check_interval == timedelta(minutes=5)
    raw["policy"]["counted"] = ["p99_latency", "p95_latency"]
    counted = config.parse(raw)
    assert {m.name for m in counted.services[1].metrics if m.muted} == {"p95_latency"}  # muting wins
    raw["policy"]["counted"] = ["p99_latncy"]
    with pytest.raises(ConfigError, match=r"policy\.counted: unknown metric 'p99_latncy'"):
        config.parse(raw)
    raw["policy"]["counted"] = []
    raw["services"][1]["muted"] = ["p59_latency"]
    with pytest.raises(ConfigError, match=r"services\[1\]\.muted: unknown metric 'p59_latency'"):
        config.parse(raw)


def test_a_misspelt_field_gets_the_closest_known_one_at_its_own_place() -> None:
    raw = {
        "sources": {"prometheus": {"url": "http://localhost:9090", "timeot": "5s"}},
        "polcy": {"window": "30m"},
        "services": [{"name": "a", "lables": {"service": "svc"}, "logs": {"indx": "logs-{service}"}}],
    }
    with pytest.raises(ConfigError) as caught:
        config.parse(raw, "team.yaml")
    text = str(caught.value)
    for fragment in (
        "sources.prometheus.timeot: unknown field (did you mean 'timeout'?)",
        "polcy: unknown field (did you mean 'policy'?)",
        "services[0].lables: unknown field (did you mean 'labels'?)",
        "services[0].logs.indx: unknown field (did you mean 'index'?)",
    ):
        assert fragment in text
