"""The pipeline examples in examples/: they parse, call routes the API really has, with the methods the
tools use, and handle the gate's exit codes; their waits cover the default policy's window."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.routing import APIRoute

from releasehealth import api, config
from releasehealth.exposition import HELP
from releasehealth.store import Store
from releasehealth.wiring import Wiring
from tests import helpers

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
VERDICT = "/api/v1/services/{service}/releases/{version:path}/verdict"
GATE = "/api/v1/services/{service}/releases/{version:path}/gate"


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The API's route paths and their methods, from the application itself."""
    catalogue, sources, _ = helpers.demo(seed=7)
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('api') / 'history.db'}")
    app = api.create_app(Wiring(catalogue, dataclasses.replace(sources, store=store)), environ={})
    store.close()
    found: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.setdefault(route.path, set()).update(route.methods)
    return found


@pytest.fixture(scope="module")
def watched() -> timedelta:
    """How long the default policy watches a candidate before a PROMOTE is final: warm-up + window."""
    catalogue, _, _ = helpers.demo(seed=7)
    return catalogue.policy.warmup + catalogue.policy.window


def documents(name: str) -> list[dict]:
    found = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d is not None]
    assert found, f"{name} holds no YAML document"
    return found


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def route_of(url: str, routes: dict[str, set[str]]) -> str:
    """The API route whose path the URL's path matches, placeholders ({{args.x}}, ${X}) standing for a segment."""
    path = urlsplit(url).path
    matching = [r for r in routes if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(r)), path)]
    assert len(matching) == 1, f"{path} matches {matching or 'no route'} of the API"
    return matching[0]


def test_every_yaml_example_parses() -> None:
    names = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml"))
    assert names == ["argo-rollouts-analysis-template.yaml", "flagger-webhook.yaml", "github-actions.yml", "watch-alerts.yml"]
    for name in names:
        assert all(isinstance(d, dict) for d in documents(name))


def test_the_routes_the_examples_rely_on_exist(routes: dict[str, set[str]]) -> None:
    assert "GET" in routes[VERDICT]
    assert {"GET", "POST"} <= routes[GATE]


# ---- Argo Rollouts ----------------------------------------------------------------------------------


def test_argo_analysis_template_reads_the_verdict(routes: dict[str, set[str]], watched: timedelta) -> None:
    docs = documents("argo-rollouts-analysis-template.yaml")
    (template,) = of_kind(docs, "AnalysisTemplate")
    assert template["apiVersion"] == "argoproj.io/v1alpha1"
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    declared = {a["name"] for a in template["spec"]["args"]}

    defaults = {a["name"]: a["value"] for a in template["spec"]["args"] if "value" in a}
    for metric in metrics.values():
        web = metric["provider"]["web"]
        assert set(re.findall(r"\{\{\s*args\.([\w-]+)\s*\}\}", web["url"])) <= declared
        url = re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", lambda m: defaults.get(m.group(1), m.group(0)), web["url"])
        assert route_of(url, routes) == VERDICT and web.get("method", "GET") in routes[VERDICT]
        assert metric["failureCondition"] == 'result.action == "ROLLBACK"'
    verdict = metrics["verdict"]
    assert verdict["successCondition"].startswith('result.action == "PROMOTE"')
    assert "result.final" in verdict["successCondition"]  # an early all-pass is not a promotion
    assert config.parse_option_duration(verdict["initialDelay"], "initialDelay") >= watched
    guard = metrics["no-rollback"]
    assert guard["interval"] and guard["count"] and guard["failureLimit"] == 0 and "successCondition" not in guard


def test_argo_rollout_runs_the_template_with_every_required_argument() -> None:
    docs = documents("argo-rollouts-analysis-template.yaml")
    (template,) = of_kind(docs, "AnalysisTemplate")
    (rollout,) = of_kind(docs, "Rollout")
    steps = [s["analysis"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in s]

    assert [t["templateName"] for s in steps for t in s["templates"]] == [template["metadata"]["name"]]
    required = {a["name"] for a in template["spec"]["args"] if "value" not in a and "valueFrom" not in a}
    assert required <= {a["name"] for a in steps[0]["args"]}


# ---- Flagger ------------------------------------------------------------------------------------------


def test_flagger_canary_waits_for_the_gate_before_promotion(routes: dict[str, set[str]]) -> None:
    (canary,) = of_kind(documents("flagger-webhook.yaml"), "Canary")
    assert canary["apiVersion"] == "flagger.app/v1beta1"
    (hook,) = canary["spec"]["analysis"]["webhooks"]

    assert route_of(hook["url"], routes) == GATE and "POST" in routes[GATE]  # Flagger's webhooks POST
    # 412 until a final PROMOTE: only confirm-promotion waits on it; other types count it as a failed check.
    assert hook["type"] == "confirm-promotion"


def test_flagger_metric_template_reads_a_metric_the_api_exposes() -> None:
    docs = documents("flagger-webhook.yaml")
    (canary,) = of_kind(docs, "Canary")
    (template,) = of_kind(docs, "MetricTemplate")
    (metric,) = canary["spec"]["analysis"]["metrics"]
    query = template["spec"]["query"]

    assert metric["templateRef"]["name"] == template["metadata"]["name"]
    assert re.search(r"\b(release_health_\w+)\{", query).group(1) in HELP
    assert 'action="ROLLBACK"' in query and metric["thresholdRange"] == {"max": 0}
    assert set(re.findall(r"\{\{\s*variables\.(\w+)\s*\}\}", query)) == set(metric["templateVariables"])


# ---- command-line pipelines ---------------------------------------------------------------------------


def gate_commands(text: str) -> list[str]:
    return re.findall(r"release-health gate --[^\n']*", text)


@pytest.mark.parametrize("name", ["Jenkinsfile", "github-actions.yml"])
def test_pipelines_record_the_deploy_and_gate_with_wait_and_interval(name: str, watched: timedelta) -> None:
    text = (EXAMPLES / name).read_text()
    (command,) = gate_commands(text)

    assert "release-health record-deploy --service" in text
    assert text.index("release-health record-deploy") < text.index("release-health gate")
    wait, interval = re.search(r"--wait (\S+)", command).group(1), re.search(r"--interval (\S+)", command).group(1)
    assert config.parse_option_duration(wait, "--wait") >= watched  # or a good release would end as HOLD
    assert config.parse_option_duration(interval, "--interval") < config.parse_option_duration(wait, "--wait")


def test_jenkinsfile_rolls_back_on_3_holds_on_4_fails_otherwise() -> None:
    text = (EXAMPLES / "Jenkinsfile").read_text()
    cases = dict(re.findall(r"(case \d+|default):(.*?)(?=case \d+:|default:|\n\s*}\n)", text, re.DOTALL))

    assert "returnStatus: true" in text
    assert "rollout undo" in cases["case 3"] and "error(" in cases["case 3"]
    assert "unstable(" in cases["case 4"] and "rollout undo" not in cases["case 4"]
    assert "error(" in cases["default"] and "rollout undo" not in cases["default"]
    assert "rollout undo" not in cases["case 0"]


def test_github_workflow_rolls_back_on_3() -> None:
    (workflow,) = documents("github-actions.yml")
    trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert trigger and workflow["jobs"]
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    (gate,) = [s for s in steps if "release-health gate" in s.get("run", "")]
    script = gate["run"]

    assert "set +e" in script  # the exit code is read, not fatal at once
    branches = dict(re.findall(r"^\s*(\d|\*)\)(.*?)(?=^\s*(?:\d|\*)\)|^\s*esac)", script, re.DOTALL | re.MULTILINE))
    assert "rollout undo" in branches["3"] and "exit 3" in branches["3"]
    assert "rollout undo" not in branches["4"] and "exit" not in branches["4"]
    assert "exit" in branches["*"] and "rollout undo" not in branches["*"]


def test_the_watch_alert_rules_are_valid_and_read_metrics_the_watcher_exposes() -> None:
    import subprocess

    from prometheus_client import generate_latest

    from releasehealth.exposition import WATCH_HELP, watch_registry
    from releasehealth.watch import WatchStats
    from testing.servers import require

    path = EXAMPLES / "watch-alerts.yml"
    checked = subprocess.run([require("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = yaml.safe_load(path.read_text())["groups"][0]["rules"]
    used = {name for rule in rules for name in re.findall(r"release_health_\w+", rule["expr"])}
    exposed = set(WATCH_HELP) | {"release_health_verdict", "release_health_score"}
    assert used <= exposed, used - exposed
    text = generate_latest(watch_registry(WatchStats(), list)).decode()
    assert all(f"# TYPE {name.removesuffix('_total')}" in text for name in used - {"release_health_verdict"})
