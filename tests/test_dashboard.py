"""Dashboard pages through Streamlit's AppTest, on the embedded demo fleet and on a Prometheus that is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import tables
from dashboard.components import escape_markdown
from releasehealth import analysis
from releasehealth.model import Action

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
TIMEOUT = 60
DEMO_SERVICES = 8
DOWN_URL = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _clear_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASE_HEALTH_DEMO", "1")
    monkeypatch.setenv("RELEASE_HEALTH_SEED", "7")
    monkeypatch.delenv("RELEASE_HEALTH_CONFIG", raising=False)


@pytest.fixture
def down_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "release-health.yaml"
    path.write_text(
        f'sources: {{prometheus: {{url: "{DOWN_URL}", timeout: "2s", retries: 0}}}}\n'
        "services: [{name: user-service}]\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(path))


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _open(page: str, **params: str) -> AppTest:
    """Run the app once (st.navigation registers its pages), then open `page` with query parameters."""
    at = _app().run()
    at.query_params.update(params)
    return at.switch_page(page).run()


def _unescaped(text: str) -> str:
    return text.replace("\\", "")


def _failing_demo_release() -> tuple[str, str]:
    catalogue, sources, _ = analysis.demo(seed=7)
    failing = next(
        e for e in analysis.evaluate_fleet(catalogue, sources)
        if e.recommendation.action is Action.ROLLBACK and e.candidate is not None
    )
    return failing.service, failing.candidate.version


def test_escape_markdown_makes_script_and_bold_inert() -> None:
    assert escape_markdown("<script>alert(1)</script>") == r"\<script\>alert\(1\)\<\/script\>"
    assert escape_markdown("**x**") == r"\*\*x\*\*"
    assert escape_markdown("[x](javascript:alert(1))") == r"\[x\]\(javascript\:alert\(1\)\)"
    assert escape_markdown("user-service 1.2.3") == r"user\-service 1\.2\.3"


def test_overview_lists_every_demo_service_riskiest_first(demo_env: None) -> None:
    at = _app().run()

    assert not at.exception
    table = at.dataframe[0].value
    catalogue, _, _ = analysis.demo(seed=7)
    assert sorted(table["service"]) == sorted(s.name for s in catalogue.services)
    assert len(table) == DEMO_SERVICES
    assert table["action"].iloc[0] == Action.ROLLBACK.value
    ranks = [tables.RISK_ORDER[Action(a)] for a in table["action"]]
    assert ranks == sorted(ranks)
    counts = {m.label: int(m.value) for m in at.metric}
    assert counts[Action.ROLLBACK.value] >= 1
    assert sum(counts.values()) == DEMO_SERVICES
    assert {"error_ratio", "error_ratio change", "p95_latency", "p95_latency change"} <= set(table.columns)


def test_overview_links_to_the_riskiest_release(demo_env: None) -> None:
    at = _app().run()

    table = at.dataframe[0].value
    link = at.get("page_link")[0]
    assert _unescaped(link.value) == f"Open {table['service'].iloc[0]} {table['version'].iloc[0]}"
    assert link.proto.page.endswith("release")
    assert f"service={table['service'].iloc[0]}" in link.proto.query_string


def test_overview_selecting_a_row_opens_its_release(demo_env: None) -> None:
    at = _app().run()
    first = at.dataframe[0].value.iloc[0]

    # What the browser sends when the first row is clicked (AppTest cannot click a table row).
    at.session_state["fleet_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()

    assert not at.exception
    assert at.query_params == {"service": first["service"], "version": first["version"]}
    assert at.title[0].value == "Release"


def test_release_deep_link_shows_rollback_banner_charts_and_queries(demo_env: None) -> None:
    service, version = _failing_demo_release()

    at = _open("pages/release.py", service=service, version=version)

    assert not at.exception
    banner = _unescaped(at.error[0].value)
    assert banner.startswith(f"**ROLLBACK** {service} {version}")
    codes = [c.value for c in at.code]
    assert f"kubectl rollout undo deployment/{service}" in codes
    assert any("http_requests_total" in code and service in code for code in codes)
    assert len(at.get("plotly_chart")) == 2
    verdicts = at.dataframe[1].value
    assert list(verdicts["metric"]) == ["error_ratio", "p95_latency"]
    assert "HIGH" in set(verdicts["classification"])
    assert len(at.get("download_button")) == 1
    assert at.query_params == {"service": service, "version": version}


def test_release_page_defaults_to_latest_version_and_writes_it_to_the_url(demo_env: None) -> None:
    catalogue, sources, _ = analysis.demo(seed=7)
    latest = analysis.list_deploys(catalogue, sources, "user-service")[-1].version

    at = _open("pages/release.py", service="user-service")

    assert not at.exception
    assert at.query_params == {"service": "user-service", "version": latest}
    older = at.selectbox[1].options[-1]
    at.selectbox[1].select(older).run()
    assert at.query_params["version"] == older
    assert _unescaped(at.subheader[0].value) == f"user-service {older}"


def test_release_page_unknown_service_shows_error(demo_env: None) -> None:
    at = _open("pages/release.py", service="no-such-service")

    assert not at.exception
    assert "unknown service 'no-such-service'" in _unescaped(at.error[0].value)


def test_release_page_unknown_version_shows_error(demo_env: None) -> None:
    at = _open("pages/release.py", service="user-service", version="9.9.9")

    assert not at.exception
    assert "no version '9.9.9'" in _unescaped(at.error[0].value)


def test_release_history_lists_every_release(demo_env: None) -> None:
    at = _open("pages/release.py", service="user-service")
    at.toggle[0].set_value(True).run()

    assert not at.exception
    history = at.dataframe[-1].value
    catalogue, sources, _ = analysis.demo(seed=7)
    versions = [d.version for d in reversed(analysis.list_deploys(catalogue, sources, "user-service"))]
    assert list(history["version"]) == versions


def test_sources_page_shows_the_simulated_source_ok(demo_env: None) -> None:
    at = _open("pages/sources.py")

    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["url"]) == ["simulated"]
    assert list(table["status"]) == ["ok"]
    assert not at.error


def test_prometheus_down_shows_error_with_url_on_overview(down_env: None) -> None:
    at = _app().run()

    assert not at.exception
    assert len(at.error) == 1
    assert DOWN_URL in _unescaped(at.error[0].value)
    assert not at.dataframe


def test_prometheus_down_shows_error_on_release_and_sources_pages(down_env: None) -> None:
    release = _open("pages/release.py", service="user-service")
    sources = _open("pages/sources.py")

    for at in (release, sources):
        assert not at.exception
        assert DOWN_URL in _unescaped(at.error[0].value)
    assert list(sources.dataframe[0].value["status"]) == ["DOWN"]


def test_missing_config_file_shows_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(tmp_path / "absent.yaml"))

    at = _app().run()

    assert not at.exception
    assert "cannot read the file" in _unescaped(at.error[0].value)


def test_banner_renders_untrusted_labels_and_reason_literally() -> None:
    def script() -> None:
        from datetime import UTC, datetime

        from dashboard import components
        from releasehealth.model import Action, BaselinePolicy, Evaluation, Recommendation

        recommendation = Recommendation(
            Action.ROLLBACK, "p95 HIGH [x](javascript:alert(1)) $x$", "**b**", "<script>alert(1)</script>"
        )
        evaluation = Evaluation(
            ":red[svc]", None, None, BaselinePolicy.PREVIOUS, None, None, None, recommendation, datetime.now(UTC)
        )
        components.banner(evaluation, "kubectl rollout undo deployment/x")

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()

    assert not at.exception
    body = at.error[0].value
    assert body == (
        r"**ROLLBACK** \:red\[svc\] \<script\>alert\(1\)\<\/script\> (baseline \*\*b\*\*)  "
        "\n"
        r"p95 HIGH \[x\]\(javascript\:alert\(1\)\) \$x\$"
    )


def test_overview_and_release_on_the_real_prometheus(monkeypatch: pytest.MonkeyPatch, config_file: Path, fleet) -> None:
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(config_file))
    overview = _app().run()
    assert not overview.exception and not overview.error
    listed = list(overview.dataframe[0].value["service"])
    assert sorted(listed) == sorted(s.name for s in fleet.services)
    failing = next(s for s in fleet.services if s.releases[-1].label.is_regression)
    release = _open("pages/release.py", service=failing.name, version=failing.releases[-1].version)
    assert not release.exception
    assert release.error[0].value.startswith("**ROLLBACK**")
