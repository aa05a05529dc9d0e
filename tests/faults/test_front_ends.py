"""The fault matrix through every front end: the CLI's evaluate and gate, the API's verdict and gate, and
the dashboard's data layer, each on the configuration a user would write (sources behind the fault
proxies, a history store). Whatever a fault does, a front end answers with its own error or a verdict
that is not a PROMOTE the data cannot support: no traceback, no 500, no gate passing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from typer.testing import CliRunner

from releasehealth import api, wiring
from releasehealth.cli import app
from releasehealth.dashboard import data
from releasehealth.model import Action
from releasehealth.simulator import ReleaseLabel
from testing import faults
from testing.faults import FaultProxy
from tests import helpers
from tests.faults.matrix import Case, Release, check, raw_config
from tests.faults.test_prometheus import PARTIAL, candidate_missing

ACTIONS = {0: Action.PROMOTE, 3: Action.ROLLBACK}  # the CLI's exit codes; 4 is HOLD or INCONCLUSIVE


@pytest.fixture
def config_file(
    tmp_path: Path, prometheus_proxy: FaultProxy, elasticsearch_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The example configuration through both proxies, with its own history store."""
    raw = raw_config(prometheus_proxy.url, elasticsearch_proxy.url)
    raw["store"] = {"url": f"sqlite:///{tmp_path / 'history.db'}"}
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(path))
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.delenv("RELEASE_HEALTH_STORE", raising=False)
    return path


Outcome = tuple[Action | None, list[str]]  # the action (None: the front end's error) and what it said went wrong


def cli_evaluate(path: Path, release: Release) -> Outcome:
    result = CliRunner().invoke(app, ["--config", str(path), "evaluate", release.service, "--version", release.version,
                                      "--format", "json"])
    return _cli_outcome(result)


def cli_gate(path: Path, release: Release) -> Outcome:
    result = CliRunner().invoke(app, ["--config", str(path), "gate", "--service", release.service,
                                      "--version", release.version, "--wait", "1s", "--interval", "1m"])
    return _cli_outcome(result)


def _cli_outcome(result: Any) -> Outcome:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 3, 4), (result.exit_code, result.output)
    said = [result.output]
    if result.exit_code == 1:
        return None, said
    return ACTIONS.get(result.exit_code, Action.HOLD), said


def api_verdict(path: Path, release: Release) -> Outcome:
    return _api(path, release, "verdict")


def api_gate(path: Path, release: Release) -> Outcome:
    return _api(path, release, "gate")


def _api(path: Path, release: Release, route: str) -> Outcome:
    served_app = api.create_app(wiring.from_file(path, create_store=True), environ={})
    with helpers.served(served_app) as url:
        answer = requests.get(f"{url}/api/v1/services/{release.service}/releases/{release.version}/{route}", timeout=120)
    assert answer.status_code != 500, answer.text
    body = answer.json()
    if answer.status_code not in (200, 412):
        return None, [json.dumps(body)]
    if route == "gate" and answer.status_code == 200:
        assert body["action"] == "PROMOTE" and body["final"], body
    elif route == "gate":
        assert not (body["action"] == "PROMOTE" and body["final"]), body
    return Action(body["action"]), [body["reason"], *body["reasons"]]


def dashboard_release(path: Path, release: Release) -> Outcome:
    data.refresh()
    loaded = data.release(release.service, release.version)
    if loaded.value is None:
        return None, [loaded.error]
    evaluation = loaded.value
    reasons = [v.reason for v in (evaluation.score.verdicts if evaluation.score else ())]
    return evaluation.recommendation.action, [evaluation.recommendation.reason, *reasons]


FRONT_ENDS: dict[str, Callable[[Path, Release], Outcome]] = {
    "cli evaluate": cli_evaluate, "cli gate": cli_gate, "api verdict": api_verdict, "api gate": api_gate,
    "dashboard": dashboard_release,
}

# (which proxy, the fault, the regression it must not let through): a sample of the faults of each source,
# one of each way they fail (an error answer, a hang, partial data, missing series, too few steps).
PROMETHEUS_FAULTS = [
    Case("500 json", faults.on_queries(faults.status(500, b'{"status":"error","errorType":"internal","error":"boom"}')),
         names_the_query=True),
    Case("hang", faults.on_queries(faults.hang(3)), names_the_query=True),
    Case("warnings on the metrics", faults.on_range_queries(faults.warnings(PARTIAL)), names_the_query=True, shows=PARTIAL),
]
ELASTICSEARCH_FAULTS = [
    Case("a shard failed", faults.on_searches(faults.status(
        200, b'{"took":1,"responses":[{"timed_out":false,"_shards":{"total":2,"successful":1,"failed":1},'
             b'"hits":{"hits":[]}}]}'))),
]


@pytest.fixture
def injected(prometheus_proxy: FaultProxy, elasticsearch_proxy: FaultProxy) -> Iterator[Callable[[str], FaultProxy]]:
    yield {"prometheus": prometheus_proxy, "elasticsearch": elasticsearch_proxy}.__getitem__
    prometheus_proxy.fault = elasticsearch_proxy.fault = None


MATRIX = (
    [("prometheus", case, ReleaseLabel.ERROR_RATIO) for case in PROMETHEUS_FAULTS]
    + [("elasticsearch", case, ReleaseLabel.NEW_EXCEPTION) for case in ELASTICSEARCH_FAULTS]
)


@pytest.mark.parametrize("front_end", FRONT_ENDS, ids=list(FRONT_ENDS))
@pytest.mark.parametrize(("source", "case", "regression"), MATRIX, ids=[f"{s} {c.name}" for s, c, _ in MATRIX])
def test_no_front_end_promotes_what_a_fault_hides(
    front_end: str, source: str, case: Case, regression: ReleaseLabel, config_file: Path,
    releases: dict[ReleaseLabel, Release], injected: Callable[[str], FaultProxy],
) -> None:
    proxy = injected(source)
    for release in (releases[ReleaseLabel.GOOD], releases[regression]):
        with proxy.injecting(case.fault):
            action, said = FRONT_ENDS[front_end](config_file, release)
        check(case, release, action, said, proxy.url)


@pytest.mark.parametrize("front_end", FRONT_ENDS, ids=list(FRONT_ENDS))
def test_no_front_end_promotes_a_release_whose_series_are_missing(
    front_end: str, config_file: Path, releases: dict[ReleaseLabel, Release], prometheus_proxy: FaultProxy
) -> None:
    release = releases[ReleaseLabel.ERROR_RATIO]
    case = Case("candidate missing", candidate_missing(release.version))
    with prometheus_proxy.injecting(case.fault):
        action, said = FRONT_ENDS[front_end](config_file, release)
    check(case, release, action, said, prometheus_proxy.url)
