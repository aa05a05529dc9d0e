"""One wiring: the CLI, the API and the dashboard's data layer give the same evaluation of the same
release, all honouring what the history store holds (a recorded deploy, signatures marked not a risk);
and the API's gate spends alpha across its polls as the CLI's gate does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from releasehealth import api, gate
from releasehealth.cli import app
from releasehealth.dashboard import data
from releasehealth.model import Classification, Deploy, DeploySourceKind
from releasehealth.serialize import evaluation_to_dict
from releasehealth.simulator import demo
from releasehealth.store import Store
from releasehealth.verdicts import Evaluation
from releasehealth.wiring import Wiring
from tests import helpers

SEED = 7
# Every front end evaluates "now", which for a pinned demo is its end: the same instant for all three.
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
SHIFT = timedelta(minutes=3)  # the recorded deploy is this much later than the detected one


def _failing_release() -> Evaluation:
    """A release whose log signatures fail it, evaluated without a store."""
    catalogue, sources, fleet = helpers.demo(seed=SEED, end=END)
    for service in fleet.services:
        for evaluation in helpers.releases(Wiring(catalogue, sources), service.name, now=END):
            verdicts = {v.metric: v for v in (evaluation.score.verdicts if evaluation.score else ())}
            if "log_signatures" in verdicts and verdicts["log_signatures"].classification is Classification.HIGH:
                return evaluation
    raise AssertionError("the demo fleet has no release failing on its log signatures")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Evaluation]:
    """A store holding a recorded deploy of a release that fails on its logs, and its failing signatures
    marked not a risk; the release as judged without the store."""
    before = _failing_release()
    assert before.candidate is not None and before.logs is not None
    url = f"sqlite:///{tmp_path_factory.mktemp('wiring') / 'store.db'}"
    store = Store(url)
    recorded = before.candidate.started_at + SHIFT
    store.record_deploy(Deploy(before.service, before.candidate.version, recorded, DeploySourceKind.RECORDED, commit="c0ffee"))
    for signature in before.logs.signatures:
        if signature.failing:
            store.mark_not_a_risk(signature.template, "known")
    store.close()
    return url, before


def _cli(url: str, release: Evaluation) -> dict[str, Any]:
    assert release.candidate is not None
    result = CliRunner().invoke(app, [
        "--demo", "--seed", str(SEED), "--demo-end", END.strftime("%Y-%m-%dT%H:%M:%S"), "--store", url,
        "evaluate", release.service, "--version", release.candidate.version, "--format", "json",
    ])
    assert result.exit_code in (0, 3, 4), result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def _api(url: str, release: Evaluation, route: str = "verdict") -> dict[str, Any]:
    """The API as `release-health --demo --store URL serve` builds it, asked over HTTP in-process."""
    assert release.candidate is not None
    wired = demo.build(SEED, END, store=url).wire(create_store=True)
    with helpers.served(api.create_app(wired, environ={})) as served:
        path = f"/api/v1/services/{release.service}/releases/{release.candidate.version}/{route}"
        answer = requests.get(served + path, timeout=120)
    assert answer.status_code in (200, 412), answer.text
    document: dict[str, Any] = answer.json()["evaluation"]
    return document


def _dashboard(url: str, release: Evaluation, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the release page shows, from the dashboard's data layer as `release-health --demo --store URL demo` sets it up."""
    assert release.candidate is not None
    for name, value in {
        "RELEASE_HEALTH_DEMO": "1", "RELEASE_HEALTH_SEED": str(SEED), "RELEASE_HEALTH_DEMO_END": END.isoformat(),
        "RELEASE_HEALTH_STORE": url,
    }.items():
        monkeypatch.setenv(name, value)
    data.refresh()
    loaded = data.release(release.service, release.candidate.version)
    assert loaded.value is not None, loaded.error
    return evaluation_to_dict(loaded.value)


def _without_deploy_scan(document: dict[str, Any]) -> dict[str, Any]:
    scan = {"first_seen", "last_seen"}
    return {**document, "queries": [q for q in document["queries"] if q["template"] not in scan]}


def test_cli_api_and_dashboard_give_the_same_evaluation_honouring_the_store(
    prepared: tuple[str, Evaluation], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, before = prepared
    from_cli, from_api, from_dashboard = _cli(url, before), _api(url, before), _dashboard(url, before, monkeypatch)

    # The API asked for the service's versions first: its deploy scan then reads only the minutes since.
    scans = [_without_deploy_scan(document) for document in (from_cli, from_api, from_dashboard)]
    assert scans[0] == scans[1] == scans[2]
    assert from_cli == from_dashboard
    # ... and all three read the store: the recorded deploy's time and commit, the not-a-risk marks.
    assert before.candidate is not None
    candidate = from_cli["candidate"]
    assert candidate["source"] == "recorded" and candidate["commit"] == "c0ffee"
    assert datetime.fromisoformat(candidate["deployed_at"]) == before.candidate.started_at + SHIFT
    signatures = next(v for v in from_cli["verdicts"] if v["metric"] == "log_signatures")
    assert signatures["classification"] == "PASS" and "on the not-a-risk list" in signatures["reason"]


def test_the_api_gate_spends_alpha_across_polls_as_the_cli_gate_does(
    prepared: tuple[str, Evaluation],
) -> None:
    url, before = prepared
    assert before.candidate is not None
    wired = demo.build(SEED, END, store=url).wire()
    checked = gate.run(
        wired.sources, wired.catalogue.service(before.service), wired.catalogue.policy, before.candidate.version,
        timedelta(), timedelta(seconds=api.TTL_SECONDS), clock=lambda: END, sleep=lambda _: None,
    )
    from_gate = _api(url, before, "gate")
    from_verdict = _api(url, before, "verdict")

    alphas = [v["alpha"] for v in from_gate["verdicts"]]
    assert alphas == [v["alpha"] for v in evaluation_to_dict(checked.evaluation)["verdicts"]]
    # A poll spends a share of the release's alpha; a single verdict spends all of it.
    assert all(g < v for g, v in zip(alphas, [v["alpha"] for v in from_verdict["verdicts"]], strict=True) if g is not None)
