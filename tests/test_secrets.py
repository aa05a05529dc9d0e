"""A token in the environment reaches the backend and nowhere else: CLI output, logs, reports, the dashboard."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from releasehealth.cli import app
from releasehealth.dashboard import data
from releasehealth.format import redact_secrets, redact_url
from releasehealth.simulator import Fleet
from testing.configs import example_config

TOKEN = "tok-6f1e9c2b8a7d4e53-secret"
PASSWORD = "pw-0d9c8b7a6f5e-secret"
APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
runner = CliRunner()


@pytest.fixture
def secret_config(tmp_path: Path, prometheus, logs_replay: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    raw = example_config(prometheus.url, logs_replay, bearer_token_env="PROM_TOKEN")
    raw["sources"]["elasticsearch"].update(username_env="ES_USER", password_env="ES_PASSWORD")
    raw["services"] = raw["services"][:2]  # every page of two services shows what a credential could leak into
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv("PROM_TOKEN", TOKEN)
    monkeypatch.setenv("ES_USER", "elastic")
    monkeypatch.setenv("ES_PASSWORD", PASSWORD)
    return path


def _assert_clean(text: str) -> None:
    assert TOKEN not in text and PASSWORD not in text


def test_no_cli_output_shows_a_credential(secret_config: Path, fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service = fleet.services[0].name
    store = f"sqlite:///{secret_config.parent / 'store.db'}"
    for arguments in (
        ["check"], ["services"], ["deploys", service], ["evaluate", service], ["evaluate", service, "-f", "json", "--save"],
        ["history", service], ["history", service, "-f", "json"], ["report", "--service", service, "--format", "md"],
    ):
        result = runner.invoke(app, ["-c", str(secret_config), "--store", store, *arguments])
        assert result.exit_code in (0, 3, 4), (arguments, result.output)
        _assert_clean(result.output)
    _assert_clean(caplog.text)


def test_a_source_that_refuses_names_its_url_not_the_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = example_config("http://127.0.0.1:9", "http://127.0.0.1:9", bearer_token_env="PROM_TOKEN", retries=0)
    raw["sources"]["elasticsearch"].update(username_env="ES_USER", password_env="ES_PASSWORD", retries=0)
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv("PROM_TOKEN", TOKEN)
    monkeypatch.setenv("ES_USER", "elastic")
    monkeypatch.setenv("ES_PASSWORD", PASSWORD)

    for arguments in (["check"], ["evaluate", "user-service"]):
        result = runner.invoke(app, ["-c", str(path), *arguments])
        assert result.exit_code == 1 and "http://127.0.0.1:9" in result.output, result.output
        _assert_clean(result.output)


def test_the_dashboard_shows_no_credential(secret_config: Path, fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(secret_config))
    pages = []
    for page, params in (
        ("views/overview.py", {}), ("views/sources.py", {}), ("views/service.py", {"service": fleet.services[0].name}),
        ("views/release.py", {"service": fleet.services[0].name}),
    ):
        at = AppTest.from_file(APP, default_timeout=60).run()
        at.query_params.update(params)
        at = at.switch_page(page).run()
        assert not at.exception
        pages.append(at)
    for at in pages:
        texts = [str(node.value) for kind in ("markdown", "caption", "code", "error", "warning", "info") for node in getattr(at, kind)]
        texts += [frame.value.to_csv() for frame in at.dataframe]
        _assert_clean("\n".join(texts))
    st.cache_data.clear()
    st.cache_resource.clear()


def test_a_missing_elasticsearch_api_key_names_the_variable_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = example_config("http://127.0.0.1:9", "http://127.0.0.1:9")
    raw["sources"]["elasticsearch"]["api_key_env"] = "ES_API_KEY"
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.delenv("ES_API_KEY", raising=False)

    result = runner.invoke(app, ["-c", str(path), "evaluate", "user-service"])

    assert result.exit_code == 1
    assert "environment variable ES_API_KEY is named in the config but not set" in " ".join(result.output.split())


# ---- credentials typed where they do not belong: never echoed -------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    (f"https://admin:{PASSWORD}@prom:9090/api", "https://prom:9090/api"),
    (f"htp://admin:{PASSWORD}@prom:9090", "htp://prom:9090"),
    (f"https:/admin:{PASSWORD}@prom", "https:/prom"),
    (f"admin:{PASSWORD}@prom:9090", "prom:9090"),
    (f"http://prom:9090/?token={TOKEN}&tenant=a", "http://prom:9090/?token=***&tenant=a"),
    ("http://prom:9090/query?x=a@b", "http://prom:9090/query?x=a@b"),
])
def test_a_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_secrets(f"cannot reach '{url}': refused") == f"cannot reach '{shown}': refused"


def test_a_mistyped_url_with_credentials_is_refused_without_showing_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = example_config(f"htp://admin:{PASSWORD}@prom:9090")
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = runner.invoke(app, ["-c", str(path), "services"])
    assert result.exit_code == 1 and "sources.prometheus.url" in result.output and "htp://prom:9090" in result.output
    _assert_clean(result.output)
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(path))
    data.refresh()
    loaded = data.catalogue()
    assert loaded.value is None and "sources.prometheus.url" in loaded.error
    _assert_clean(loaded.error + data.describe())
