"""Bad configurations: whatever the file holds, loading it gives a catalogue or a ConfigError naming the
file, the path and every problem at once, with no secret and no control character in the message; the CLI
then exits 1 with that message. Fuzzed (mutations of the example, arbitrary bytes) and literal cases."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from releasehealth import config
from releasehealth.cli import app
from releasehealth.errors import ConfigError
from testing.configs import example_config
from tests.bad_input.values import FUZZ, HOSTILE, SECRET, documents, unprintable_in

NAME = "fuzzed.yaml"


def base() -> dict[str, Any]:
    """The example configuration with logs, a store, and a service of every kind of custom setting, so
    that mutations reach every part of the schema."""
    raw = example_config("http://127.0.0.1:9090", "http://127.0.0.1:9200")
    raw["sources"]["elasticsearch"]["fields"] = {"level": "log.level", "message": "message"}
    raw["policy"].update(muted=["cpu_per_request"], group_weights={"errors": 2, "latency": 1}, check_interval="5m")
    raw["services"].append({
        "name": "custom-service", "preset": "generic", "team": "platform", "selector": {"namespace": "prod"},
        "labels": {"service": "app", "version": "release"},
        "logs": {"index": "logs-custom", "service": "custom", "fields": {"message": "msg"}},
        "templates": {
            "queue": "sum by (${by}) (rate(queue_depth{${selector}}[${step}]))",
            "calls": "sum by (${by}, status) (increase(calls_total{${selector}}[${step}]))",
        },
        "derived": {"failed_calls": {"from": "calls", "where": {"status": "fail.*"}}},
        "metrics": [
            {"name": "queue_depth", "kind": "gauge", "queries": {"value": "queue"}, "unit": "count",
             "valid_min": 0, "tolerance": {"relative": 0.5, "absolute": 1}},
            {"name": "call_failures", "kind": "ratio", "queries": {"numerator": "failed_calls", "denominator": "calls"},
             "unit": "ratio", "critical": True},
        ],
        "kubernetes": {"namespace": "shop", "container": "web"},
    })
    return raw


def parsed_or_refused(raw: Any, name: str = NAME) -> ConfigError | None:
    """Parse `raw`; the ConfigError it raised (checked to be a good one), None when it loaded."""
    try:
        config.parse(raw, name)
    except ConfigError as exc:
        return good_error(exc, name)
    return None


def good_error(exc: ConfigError, name: str) -> ConfigError:
    text = str(exc)
    assert name in text, text
    assert exc.problems and all(problem.strip() for problem in exc.problems), text
    assert SECRET not in text, text
    assert not unprintable_in(text), text
    return exc


def paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a document: the keys and indexes leading to each node."""
    yield at
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*at, index))


BASE = base()
PLACES = list(paths(BASE))[1:]


def mutated(place: tuple[Any, ...], change: str, value: Any) -> Any:
    raw = copy.deepcopy(BASE)
    parent = raw
    for key in place[:-1]:
        parent = parent[key]
    last = place[-1]
    if change == "replace":
        parent[last] = value
    elif change == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[str(value)[:20] or "unknown"] = value  # an unknown key beside a known one
    else:
        parent.append(value)
    return raw


@FUZZ
@given(
    st.sampled_from(PLACES), st.sampled_from(["replace", "replace", "delete", "add"]), documents,
)
def test_a_mutated_config_loads_or_says_what_is_wrong(place: tuple[Any, ...], change: str, value: Any) -> None:
    parsed_or_refused(mutated(place, change, value))


@FUZZ
@given(documents)
def test_any_document_as_a_whole_config_loads_or_says_what_is_wrong(document: Any) -> None:
    parsed_or_refused(document)


@FUZZ
@given(st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.sampled_from(HOSTILE).map(lambda text: f"sources:\n  prometheus:\n    url: {text}\nservices: [{{name: x}}]\n".encode()),
))
def test_any_file_loads_or_says_what_is_wrong(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.getbasetemp() / NAME
    path.write_bytes(content)
    try:
        config.load(path)
    except ConfigError as exc:
        good_error(exc, str(path))


# ---- literal cases: (what is wrong, the change, what the message must say) -----------------------------

Change = Callable[[dict[str, Any]], Any]  # gives the changed document (edited in place, or a new one)


def _set(*place: Any, value: Any) -> Change:
    def change(raw: dict[str, Any]) -> None:
        node = raw
        for key in place[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        node[place[-1]] = value
        return raw
    return change


def _delete(*place: Any) -> Change:
    def change(raw: dict[str, Any]) -> None:
        node = raw
        for key in place[:-1]:
            node = node[key]
        del node[place[-1]]
        return raw
    return change


def _custom(**settings: Any) -> Change:
    """A change to the custom service (the last one)."""
    def change(raw: dict[str, Any]) -> None:
        raw["services"][-1].update(settings)
        return raw
    return change


def _metric(**settings: Any) -> Change:
    def change(raw: dict[str, Any]) -> None:
        raw["services"][-1]["metrics"][0].update(settings)
        return raw
    return change


def _whole(document: Any) -> Change:
    return lambda raw: document


LITERAL: list[tuple[str, Change, str]] = [
    ("the top level is a list", _whole([1, 2]), "top level must be a mapping"),
    ("the file is empty", _whole(None), "top level must be a mapping"),
    ("no sources", _delete("sources"), "sources"),
    ("no services", _delete("services"), "services"),
    ("an empty service list", _set("services", value=[]), "services"),
    ("a URL without a scheme", _set("sources", "prometheus", "url", value="localhost:9090"), "sources.prometheus.url"),
    ("a mistyped scheme with credentials", _set("sources", "prometheus", "url", value=f"htp://admin:{SECRET}@prom:9090"),
     "sources.prometheus.url"),
    ("credentials in the URL", _set("sources", "prometheus", "url", value=f"http://admin:{SECRET}@prom:9090"),
     "credentials"),
    ("a duration in words", _set("sources", "prometheus", "timeout", value="ten seconds"), "sources.prometheus.timeout"),
    ("an enormous duration", _set("sources", "prometheus", "timeout", value="99999999999d"), "sources.prometheus.timeout"),
    ("a negative duration", _set("sources", "prometheus", "timeout", value="-5s"), "sources.prometheus.timeout"),
    ("a duration as a list", _set("policy", "window", value=["30m"]), "policy.window"),
    ("too many retries", _set("sources", "prometheus", "retries", value=99), "sources.prometheus.retries"),
    ("retries in words", _set("sources", "prometheus", "retries", value="two"), "sources.prometheus.retries"),
    ("verify_tls maybe", _set("sources", "prometheus", "verify_tls", value="maybe"), "sources.prometheus.verify_tls"),
    ("a CA file that is not there", _set("sources", "prometheus", "ca_file", value="/nonexistent/ca.pem"),
     "sources.prometheus.ca_file"),
    ("a zero window", _set("policy", "window", value="0s"), "policy.window"),
    ("a lookback of 2,700 years", _set("policy", "lookback", value="999999d"), "policy.lookback"),
    ("3650d at 1s steps", lambda raw: _set("policy", "step", value="1s")(_set("policy", "lookback", value="3650d")(raw)),
     "max_lookback_steps"),
    ("alpha of zero", _set("policy", "alpha", value=0), "policy.alpha"),
    ("alpha above one half", _set("policy", "alpha", value=1.5), "policy.alpha"),
    ("thresholds upside down", _set("policy", "thresholds", value={"pass": 50, "marginal": 90}), "policy.thresholds"),
    ("an unknown baseline", _set("policy", "baseline", value="yesterday"), "policy.baseline"),
    ("a pinned baseline without a version", _set("policy", "baseline", value="pinned"), "pinned_version"),
    ("a window share of two", _set("policy", "min_window_share", value=2), "policy.min_window_share"),
    ("an unknown judge", _set("policy", "judge", value="netflix"), "policy.judge"),
    ("a negative group weight", _set("policy", "group_weights", value={"errors": -1}), "policy.group_weights"),
    ("muting an unknown metric", _set("policy", "muted", value=["cpuu"]), "cpuu"),
    ("a misspelt top-level key", _set("polcy", value={}), "polcy"),
    ("a misspelt service key", _custom(prest="generic"), "prest"),
    ("an unknown preset", _custom(preset="nginx"), "nginx"),
    ("two services of one name", lambda raw: {**raw, "services": [*raw["services"], raw["services"][0]]}, "duplicate service name"),
    ("a service without a name", _custom(name=""), "services[8].name"),
    ("a label name with a space", _custom(labels={"service": "bad label"}), "services[8].labels.service"),
    ("a selector label name with a dash", _custom(selector={"name-space": "prod"}), "services[8].selector"),
    ("${selector} only in a comment", _custom(templates={"queue": "sum(queue_depth) # ${selector} ${by} ${step}"}),
     "selector"),
    ("a template that is not PromQL", _custom(templates={"queue": "sum by (${by}) (rate(queue_depth{${selector}}[${step}]"}),
     "queue"),
    ("a metric of an unknown kind", _metric(kind="histogramm"), "services[8].metrics[0].kind"),
    ("a negative tolerance", _metric(tolerance={"relative": -0.5}), "services[8].metrics[0].tolerance"),
    ("a metric reading an unknown template", _metric(queries={"value": "nowhere"}), "nowhere"),
    ("a gauge whose valid range is empty", _metric(valid_min=10, valid_max=1), "valid_m"),
    ("a derived template from an unknown one", _custom(derived={"failed_calls": {"from": "nowhere", "where": {"status": "x"}}}),
     "nowhere"),
    ("a derived template with a broken pattern", _custom(derived={"failed_calls": {"from": "calls", "where": {"status": "5.("}}}),
     "services[8].derived"),
    ("an unknown rollback placeholder", _set("rollback_command", value="kubectl rollout undo {cluster}"), "cluster"),
    ("a rollback command with a lone brace", _set("rollback_command", value="echo {"), "rollback_command"),
    ("a sample size of zero", _set("sources", "elasticsearch", "sample_size", value=0), "sources.elasticsearch.sample_size"),
    ("an unknown log field", _custom(logs={"fields": {"msg": "message"}}), "msg"),
    ("a new-signature count of zero", _set("logs", "min_new_count", value=0), "logs.min_new_count"),
    ("a store URL that is no URL", _set("store", "url", value="not a url"), "store.url"),
    ("a store URL with a password", _set("store", "url", value=f"postgresql://rh:{SECRET}@db/rh"), "carries a password"),
    ("a store of an unsupported database", _set("store", "url", value="mysql://db/rh"), "store.url"),
    ("a token variable as a number", _set("api", "token_env", value=42), "api.token_env"),
    ("control characters in a value", _set("policy", "baseline", value="\x1b[2J\x1b[Hprevious\u202e"), "policy.baseline"),
]


@pytest.mark.parametrize(("change", "says"), [(c, s) for _, c, s in LITERAL], ids=[name for name, _, _ in LITERAL])
def test_a_bad_config_is_refused_naming_the_path_and_the_problem(change: Change, says: str) -> None:
    refused = parsed_or_refused(change(copy.deepcopy(BASE)))
    assert refused is not None, "the config loaded"
    assert says in str(refused), str(refused)


def test_every_problem_is_reported_at_once() -> None:
    raw = copy.deepcopy(BASE)
    raw["policy"].update(alpha=2, window="soon")
    raw["sources"]["prometheus"]["retries"] = -1
    raw["services"][-1]["preset"] = "nginx"
    refused = parsed_or_refused(raw)
    assert refused is not None
    text = str(refused)
    for place in ("policy.alpha", "policy.window", "sources.prometheus.retries", "nginx"):
        assert place in text, text


def test_the_cli_exits_1_with_the_message_on_a_bad_config(tmp_path: Path) -> None:
    raw = copy.deepcopy(BASE)
    raw["sources"]["prometheus"]["url"] = f"htp://admin:{SECRET}@prom:9090"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["--config", str(path), "services"])
    assert result.exit_code == 1, result.output
    assert str(path) in result.output and "sources.prometheus.url" in result.output
    assert SECRET not in result.output and "Traceback" not in result.output
