"""A preset whose metrics are not in Prometheus says so, naming the metric it expected, in the CLI and on
the dashboard, and never promotes (the session's real Prometheus holds the fleet under generic names)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
import yaml
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from releasehealth import config, wiring
from releasehealth.cli import app
from releasehealth.model import Action, Classification
from releasehealth.simulator import Fleet
from testing.configs import ROOT, example_config
from testing.servers import PrometheusServer
from tests import helpers

runner = CliRunner()


def _raw(prometheus: PrometheusServer, fleet: Fleet) -> dict:
    raw = example_config(prometheus.url)
    first, second = (s.name for s in fleet.services[:2])
    raw["services"] = [
        {"name": first, "preset": "istio"},  # the fleet has no istio_requests_total at all
        {"name": second, "metrics": [{  # a custom gauge over a metric nobody exposes
            "name": "queue_depth", "kind": "gauge", "unit": "", "min_count": 10,
            "queries": {"value": "avg by (${by}) (queue_depth{${selector}})"},
            "tolerance": {"relative": 0.2},
        }]},
    ]
    return raw


@pytest.fixture
def config_path(prometheus: PrometheusServer, fleet: Fleet, tmp_path: Path) -> Path:
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(_raw(prometheus, fleet)), encoding="utf-8")
    return path


def test_a_preset_with_no_metrics_in_prometheus_is_inconclusive_naming_the_metric(prometheus, fleet) -> None:
    catalogue = config.parse(_raw(prometheus, fleet))
    evaluation = helpers.evaluate(wiring.connect(catalogue), fleet.services[0].name)
    assert evaluation.recommendation.action is Action.INCONCLUSIVE
    assert evaluation.recommendation.reason == (
        f'no data for preset istio: expected metric istio_requests_total with destination_workload="{fleet.services[0].name}"'
        " in the last 7 d"
    )


def test_a_custom_metric_nobody_exposes_is_no_data_naming_it_and_holds_the_release(prometheus, fleet) -> None:
    catalogue = config.parse(_raw(prometheus, fleet))
    service = fleet.services[1]
    good = next(r for r in service.releases[1:] if not r.label.is_regression)
    evaluation = helpers.evaluate(wiring.connect(catalogue), service.name, good.version)
    verdict = next(v for v in evaluation.score.verdicts if v.metric == "queue_depth")
    assert verdict.classification is Classification.NODATA
    assert verdict.reason == (
        f"queue_depth no data for template 'queue_depth.value': expected metric queue_depth with service=\"{service.name}\""
    )
    assert evaluation.recommendation.action is Action.HOLD  # it would have promoted without the custom metric
    assert "queue_depth no data for template" in evaluation.recommendation.reason


def test_the_cli_says_which_metric_the_preset_expected(config_path: Path, fleet) -> None:
    result = runner.invoke(app, ["--config", str(config_path), "evaluate", fleet.services[0].name])
    assert "no data for preset istio: expected metric istio_requests_total" in result.output
    assert "INCONCLUSIVE" in result.output and "PROMOTE" not in result.output
    assert result.exit_code != 0


@pytest.fixture
def dashboard_config(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(config_path))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def test_the_dashboard_overview_says_which_metric_the_preset_expected(dashboard_config: None, fleet) -> None:
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
    assert not at.exception
    table = next(frame.value for frame in at.dataframe if "reason" in frame.value.columns)
    row = table[table["service"] == fleet.services[0].name].iloc[0]
    assert "no data for preset istio: expected metric istio_requests_total" in row["reason"]
    assert row["action"] == "INCONCLUSIVE"
