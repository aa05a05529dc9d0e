"""Dashboard pages through Streamlit's AppTest, on the embedded demo fleet and on a Prometheus that is down."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from releasehealth.config import Catalogue
from releasehealth.dashboard import charts, data, tables
from releasehealth.dashboard.components import escape_markdown
from releasehealth.model import Action, Deploy, DeploySourceKind, LogWindowData, MetricKind, Series, SignatureStatus, Window
from releasehealth.simulator import Fleet, ReleaseLabel, demo
from releasehealth.sources import Sources
from releasehealth.verdicts import Evaluation, LogEvidence, LogSignature, MetricVerdict
from releasehealth.wiring import Wiring
from tests import helpers

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
TIMEOUT = 60
DEMO_SERVICES = 8
DOWN_URL = "http://127.0.0.1:9"
# The demo logs carry warn messages like "Rejected input <script>alert('123')</script> in field **comment**".
HOSTILE = ("<script>", "**comment**")
# Elements whose text Streamlit renders as Markdown: log text must never reach them unescaped.
MARKDOWN_KINDS = ("markdown", "caption", "title", "header", "subheader", "error", "warning", "info", "success")
# The demo fleet ends at the current minute and its logs differ from one minute to the next: pinning its end
# makes what a test evaluates exactly what the app under test shows.
DEMO_END = datetime.now(UTC).replace(second=0, microsecond=0)


def _pinned_demo(seed: int = 7, end: datetime | None = None) -> tuple[Catalogue, Sources, Fleet]:
    return helpers.demo(seed=seed, end=end or DEMO_END)


@pytest.fixture(autouse=True)
def _clear_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RELEASE_HEALTH_DEMO", "1")
    monkeypatch.setenv("RELEASE_HEALTH_SEED", "7")
    monkeypatch.setenv("RELEASE_HEALTH_DEMO_END", DEMO_END.isoformat())
    # A store of this test's own (none yet): what another run of the demo saved must not change its verdicts.
    monkeypatch.setenv("RELEASE_HEALTH_STORE", f"sqlite:///{tmp_path / 'store.db'}")
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


def _demo_with(monkeypatch: pytest.MonkeyPatch, names: Callable[[list[str]], list[str]]) -> None:
    """The pinned demo fleet and sources, behind a catalogue of the services `names` makes of the fleet's."""
    from releasehealth import config

    build = demo.build

    def built(seed: int = 7, end: datetime | None = None, *, store: str | None = None) -> demo.Demo:
        real = build(seed, end, store=store)
        services = names([s.name for s in real.catalogue.services])
        catalogue = config.catalogue_for(services, logs=real.catalogue.services[0].logs)
        return dataclasses.replace(real, catalogue=dataclasses.replace(catalogue, store=real.catalogue.store))

    monkeypatch.setattr(demo, "build", built)


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _open(page: str, **params: str) -> AppTest:
    """Run the app once (st.navigation registers its pages), then open `page` with query parameters."""
    at = _app().run()
    at.query_params.update(params)
    return at.switch_page(page).run()


def _unescaped(text: str) -> str:
    return text.replace("\\", "")


@functools.cache
def _demo_fleet() -> tuple[Evaluation, ...]:
    catalogue, sources, _ = _pinned_demo(seed=7)
    return tuple(helpers.fleet(Wiring(catalogue, sources)))


def _demo_release(matches: Callable[[Evaluation], bool]) -> Evaluation:
    return next(e for e in _demo_fleet() if e.candidate is not None and matches(e))


def _evaluate_like_the_release_page(service: str, version: str) -> Evaluation:
    """The release page evaluates one service, so its queries cover that service only (the fleet's cover all)."""
    catalogue, sources, _ = _pinned_demo(seed=7)
    return helpers.evaluate(Wiring(catalogue, sources), service, version)


def _failing_demo_release() -> tuple[str, str]:
    failing = _demo_release(lambda e: e.recommendation.action is Action.ROLLBACK)
    return failing.service, failing.candidate.version


def _signatures(evaluation: Evaluation) -> tuple[LogSignature, ...]:
    return evaluation.logs.signatures if evaluation.logs else ()


def _is_new_credible(signature: LogSignature) -> bool:
    return signature.status is SignatureStatus.NEW and signature.credible


def _has_series(verdict: MetricVerdict) -> bool:
    return any(s is not None and s.timestamps.size for s in (verdict.baseline_series, verdict.candidate_series))


def _markdown_texts(at: AppTest) -> list[str]:
    texts = [element.value for kind in MARKDOWN_KINDS for element in getattr(at, kind)]
    texts += [e.label for e in at.expander] + [m.label for m in at.metric] + [str(m.value) for m in at.metric]
    return texts


def _table_with(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _chart_keys(at: AppTest) -> list[str]:
    return [chart.key for chart in at.get("plotly_chart")]


def test_escape_markdown_makes_script_and_bold_inert() -> None:
    assert escape_markdown("<script>alert(1)</script>") == r"\<script\>alert\(1\)\<\/script\>"
    assert escape_markdown("**x**") == r"\*\*x\*\*"
    assert escape_markdown("[x](javascript:alert(1))") == r"\[x\]\(javascript\:alert\(1\)\)"
    assert escape_markdown("user-service 1.2.3") == r"user\-service 1\.2\.3"


def test_overview_lists_every_demo_service_riskiest_first(demo_env: None) -> None:
    at = _app().run()

    assert not at.exception
    table = at.dataframe[0].value
    catalogue, _, _ = helpers.demo(seed=7)
    # The releases shown while they were judged (a cold start) are gone once the verdicts are there.
    assert "judging…" not in set(table["action"]) and not [c for c in at.caption if "being judged" in c.value]
    assert sorted(table["service"]) == sorted(s.name for s in catalogue.services)
    assert len(table) == DEMO_SERVICES
    assert table["action"].iloc[0] == Action.ROLLBACK.value
    ranks = [tables.RISK_ORDER[Action(a)] for a in table["action"]]
    assert ranks == sorted(ranks)
    counts = {m.label: int(m.value) for m in at.metric}
    assert counts[Action.ROLLBACK.value] >= 1
    assert sum(counts.values()) == DEMO_SERVICES
    # Each metric's change in a table of its own: the overview stays narrow enough to show its reasons.
    changes = _table_with(at, "error_ratio change")
    assert {"error_ratio", "error_ratio change", "p95_latency", "p95_latency change"} <= set(changes.columns)
    assert list(changes["service"]) == list(table["service"])


def test_overview_counts_the_failing_log_signatures(demo_env: None) -> None:
    at = _app().run()

    assert not at.exception
    counts = dict(zip(at.dataframe[0].value["service"], at.dataframe[0].value["failing log signatures"], strict=True))
    expected = {e.service: str(sum(s.failing for s in _signatures(e))) for e in _demo_fleet()}
    assert counts == expected
    assert any(count != "0" for count in counts.values())


def test_overview_links_to_every_release_that_needs_a_look_riskiest_first(demo_env: None) -> None:
    at = _app().run()

    table = at.dataframe[0].value
    needs_look = table[table["action"] != "PROMOTE"]
    links = [link for link in at.get("page_link") if link.proto.page.endswith("release")]
    expected = [f"Open {r.service} {r.version} ({r.action})" for r in needs_look.itertuples()]
    assert [_unescaped(link.value) for link in links[: len(expected)]] == expected
    assert f"service={needs_look['service'].iloc[0]}" in links[0].proto.query_string
    # and a link from the picked release to its service's history
    assert any(link.proto.page.endswith("service") for link in at.get("page_link"))


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

    at = _open("views/release.py", service=service, version=version)

    assert not at.exception
    banner = _unescaped(at.error[0].value)
    assert banner.startswith(f"**ROLLBACK** {service} {version}")
    codes = [c.value for c in at.code]
    assert f"kubectl rollout undo deployment/{service}" in codes
    assert any("http_requests_total" in code and service in code for code in codes)
    evaluation = _demo_release(lambda e: e.service == service)
    metric_charts = sorted(k for k in _chart_keys(at) if k.startswith("chart-"))
    assert metric_charts == sorted(f"chart-{v.metric}" for v in evaluation.score.verdicts if _has_series(v))
    assert {"chart-error_ratio", "chart-p95_latency", "chart-error_log_rate"} <= set(metric_charts)
    verdicts = at.dataframe[1].value
    assert list(verdicts["metric"]) == [v.metric for v in evaluation.score.verdicts]
    assert {"error_ratio", "p95_latency", "error_log_rate", "log_signatures"} <= set(verdicts["metric"])
    assert "HIGH" in set(verdicts["classification"])
    assert len(at.get("download_button")) == 3  # the evaluation as JSON, the report as HTML and Markdown
    assert at.query_params == {"service": service, "version": version}
    assert "latency-distribution" in _chart_keys(at)  # the p50/p95/p99 histogram, compared once
    assert at.get("status")[0].proto.label.startswith(escape_markdown(f"Evaluated {service} {version} in "))


def test_an_evaluation_reports_each_step_as_it_starts() -> None:
    catalogue, sources, _ = _pinned_demo(seed=7)
    heard: list[str] = []
    helpers.fleet(Wiring(catalogue, sources), progress=heard.append)
    assert heard == [
        "reading the deploys of 8 services", "querying the metrics and the logs of 8 releases", "judging 8 releases",
    ]


def test_the_baseline_selector_re_evaluates_and_lives_in_the_url(demo_env: None) -> None:
    catalogue, sources, _ = _pinned_demo(seed=7)
    versions = [d.version for d in helpers.deploys(Wiring(catalogue, sources), "user-service")]
    latest, oldest = versions[-1], versions[0]
    at = _open("views/release.py", service="user-service", version=latest)
    assert "pinned:" + oldest in at.selectbox[2].options

    at.selectbox[2].set_value("pinned:" + oldest).run()

    assert not at.exception
    assert at.query_params == {"service": "user-service", "version": latest, "baseline": "pinned:" + oldest}
    assert at.metric[2].value == escape_markdown(oldest)  # the baseline compared with
    # The same URL opened afresh shows the same comparison.
    again = _open("views/release.py", service="user-service", version=latest, baseline="pinned:" + oldest)
    assert again.metric[2].value == escape_markdown(oldest) and again.selectbox[2].value == "pinned:" + oldest


def test_overview_filters_by_verdict_team_and_text(demo_env: None) -> None:
    at = _app().run()
    everything = at.dataframe[0].value
    assert set(everything["team"]) <= set(demo.TEAMS.values())
    assert all(len(v) >= 30 for v in everything["error ratio trend"])  # the sparklines: both windows, per step

    at.multiselect(key="filter_action").set_value(["ROLLBACK"]).run()
    assert set(at.dataframe[0].value["action"]) == {"ROLLBACK"}
    at.multiselect(key="filter_action").set_value([]).run()
    at.multiselect(key="filter_team").set_value(["checkout"]).run()
    assert set(at.dataframe[0].value["team"]) == {"checkout"}
    at.multiselect(key="filter_team").set_value([]).run()
    at.text_input(key="filter_text").set_value("PAYMENT").run()
    assert list(at.dataframe[0].value["service"]) == ["payment-service"]
    at.text_input(key="filter_text").set_value("no such thing").run()
    assert not at.dataframe and "No service matches the filters." in [i.value for i in at.info]


def test_switching_pages_does_not_query_the_sources_again_within_the_ttl(demo_env: None) -> None:
    from releasehealth.dashboard import data

    service, version = _failing_demo_release()
    at = _app().run()
    at.query_params.update(service=service, version=version)
    at.switch_page("views/release.py").run()
    at.switch_page("views/service.py").run()
    metrics = data._demo(7, DEMO_END, os.environ["RELEASE_HEALTH_STORE"]).metrics  # the app's, from its cache
    asked = metrics.queries_run
    for page in ("views/overview.py", "views/release.py", "views/service.py", "views/overview.py"):
        at.query_params.update(service=service, version=version)
        at.switch_page(page).run()
        assert not at.exception
    assert metrics.queries_run == asked


def test_a_reopened_wiring_keeps_the_deploy_scans_so_the_next_overview_reads_only_what_is_new(demo_env: None) -> None:
    from releasehealth.dashboard import data

    first = data._open(data.settings()).value
    data._open.clear()  # what the TTL does every minute
    again = data._open(data.settings()).value
    assert first is not None and again is not None and again is not first
    assert again.sources.deploys.memory is first.sources.deploys.memory


def test_the_fleet_is_shared_between_reruns_not_copied(demo_env: None) -> None:
    from releasehealth.dashboard import data

    assert data.fleet().value is data.fleet().value  # no 23 MB pickle round trip per rerun at 200 services


def test_release_table_shows_commit_and_deploy_source(demo_env: None) -> None:
    evaluation = _demo_release(lambda e: bool(e.candidate.commit))

    at = _open("views/release.py", service=evaluation.service, version=evaluation.candidate.version)

    assert not at.exception
    candidate = _table_with(at, "commit").set_index("role").loc["candidate"]
    assert candidate["commit"] == evaluation.candidate.commit
    assert candidate["deploy source"] == evaluation.candidate.source.value


def test_release_page_logs_section_lists_a_new_signature_with_its_examples(demo_env: None) -> None:
    chosen = _demo_release(lambda e: any(_is_new_credible(s) for s in _signatures(e)))
    evaluation = _evaluate_like_the_release_page(chosen.service, chosen.candidate.version)
    new = next(s for s in evaluation.logs.signatures if _is_new_credible(s))

    at = _open("views/release.py", service=evaluation.service, version=evaluation.candidate.version)

    assert not at.exception
    assert "Logs" in [h.value for h in at.subheader]
    signatures = _table_with(at, "template")
    assert list(signatures["status"]) == [s.status.value for s in evaluation.logs.signatures]
    assert signatures["status"].iloc[0] == SignatureStatus.NEW.value
    assert new.template in list(signatures.loc[signatures["status"] == "NEW", "template"])
    unit = f"per 1k {evaluation.logs.rate_basis}"
    assert {f"baseline ({unit})", f"candidate ({unit})", "p-value", "credible"} <= set(signatures.columns)
    details = _table_with(at, "caller")
    assert list(details["template"]) == [s.template for s in evaluation.logs.signatures]
    assert {"baseline count", "candidate count", "not a risk", "notes"} <= set(details.columns)
    codes = [c.value for c in at.code]
    assert any(c.startswith(new.template) and all(x in c for x in new.examples) for c in codes)
    assert "log-levels-chart" in _chart_keys(at)
    assert new.error_type in set(_table_with(at, "error type")["error type"])
    assert any("error/warn lines sampled" in _unescaped(c.value) for c in at.caption)
    # The Elasticsearch queries that ran are shown with the metric queries, as code.
    assert evaluation.logs.queries
    assert {q.text for q in evaluation.logs.queries} <= set(codes)
    _assert_log_text_inert(at, evaluation.logs.signatures)


def _assert_log_text_inert(at: AppTest, signatures: tuple[LogSignature, ...]) -> None:
    """Log text is in the signature table (templates) and in code blocks (examples of NEW and INCREASED
    signatures), and no element rendering Markdown holds it unescaped."""
    templates = set(_table_with(at, "template")["template"])
    codes = "\n".join(c.value for c in at.code)
    for signature in signatures:
        assert signature.template in templates
        if signature.status in tables.FLAGGED:
            assert all(example in codes for example in signature.examples)
    assert not [t for t in _markdown_texts(at) if any(h in t for h in HOSTILE)]


def test_release_page_shows_hostile_log_text_only_in_code_and_tables() -> None:
    def script() -> None:
        import dataclasses

        from releasehealth.dashboard import components
        from releasehealth.model import SignatureStatus
        from releasehealth.verdicts import LogSignature

        # What the demo's warn messages look like, NEW so that its examples are shown too.
        from releasehealth.wiring import Wiring
        from tests import helpers

        hostile = LogSignature(
            template="Rejected input <script>alert('<NUM>')</script> in field **comment** from <IP>", level="warn",
            error_type="<b>Err</b>", status=SignatureStatus.NEW, baseline_count=0, candidate_count=3,
            baseline_rate=0.0, candidate_rate=0.1,
            examples=("Rejected input <script>alert('123')</script> in field **comment** from 1.2.3.4",),
        )
        catalogue, sources, _ = helpers.demo(seed=7)
        evaluation = helpers.evaluate(Wiring(catalogue, sources), "user-service")
        logs = dataclasses.replace(evaluation.logs, signatures=(hostile, *evaluation.logs.signatures))
        components.release(dataclasses.replace(evaluation, logs=logs), catalogue)

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()

    assert not at.exception
    signatures = _table_with(at, "template")
    assert signatures["template"].iloc[0].startswith("Rejected input <script>alert('<NUM>')</script>")
    assert _table_with(at, "error type")["error type"].iloc[0] == "<b>Err</b>"
    assert any("Rejected input <script>alert('123')</script> in field **comment**" in c.value for c in at.code)
    assert not [t for t in _markdown_texts(at) if any(h in t for h in (*HOSTILE, "<b>"))]


def test_release_with_unreadable_logs_shows_the_error_notes_and_verdicts() -> None:
    def script() -> None:
        import dataclasses

        from releasehealth.dashboard import components
        from releasehealth.verdicts import LogEvidence
        from releasehealth.wiring import Wiring
        from tests import helpers

        catalogue, sources, _ = helpers.demo(seed=7)
        evaluation = helpers.evaluate(Wiring(catalogue, sources), "user-service")
        broken = dataclasses.replace(
            evaluation,
            logs=LogEvidence(None, None, error="logs could not be read: <script>alert(1)</script> **down**"),
            notes=("deploy events could not be read: <b>timeout</b>",),
        )
        components.release(broken, catalogue)

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()

    assert not at.exception
    errors = [e.value for e in at.error if "Logs could not be used" in _unescaped(e.value)]
    assert errors == [
        r"Logs could not be used\: logs could not be read\: \<script\>alert\(1\)\<\/script\> \*\*down\*\*"
    ]
    assert [w.value for w in at.warning if "deploy events" in w.value] == [
        r"deploy events could not be read\: \<b\>timeout\<\/b\>"
    ]
    verdicts = _table_with(at, "classification")
    assert {"error_ratio", "p95_latency", "error_log_rate", "log_signatures"} <= set(verdicts["metric"])
    assert {"chart-error_ratio", "chart-p95_latency"} <= set(_chart_keys(at))
    assert "log-levels-chart" not in _chart_keys(at)
    assert not [d for d in at.dataframe if "template" in d.value.columns]
    assert len(at.get("download_button")) == 3  # the evaluation as JSON, the report as HTML and Markdown


def test_release_without_logs_says_they_are_not_configured() -> None:
    def script() -> None:
        import dataclasses

        from releasehealth.dashboard import components
        from releasehealth.wiring import Wiring
        from tests import helpers

        catalogue, sources, _ = helpers.demo(seed=7)
        components.logs(dataclasses.replace(helpers.evaluate(Wiring(catalogue, sources), "user-service"), logs=None))

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()

    assert not at.exception
    assert [i.value for i in at.info] == ["Logs are not configured for this service."]


def test_release_page_defaults_to_latest_version_and_writes_it_to_the_url(demo_env: None) -> None:
    catalogue, sources, _ = helpers.demo(seed=7)
    latest = helpers.deploys(Wiring(catalogue, sources), "user-service")[-1].version

    at = _open("views/release.py", service="user-service")

    assert not at.exception
    assert at.query_params == {"service": "user-service", "version": latest}
    older = at.selectbox[1].options[-1]
    at.selectbox[1].select(older).run()
    assert at.query_params["version"] == older
    assert _unescaped(at.subheader[0].value) == f"user-service {older}"


def _says_not_found_with_a_way_back(at: AppTest, expected: str) -> None:
    assert not at.exception and not at.error
    assert expected in _unescaped(at.warning[0].value)
    assert at.get("page_link")[-1].label == "Back to the fleet overview"


@pytest.mark.parametrize("page", ["views/release.py", "views/service.py"])
def test_an_unknown_service_in_the_url_says_so_with_a_way_back(demo_env: None, page: str) -> None:
    at = _open(page, service="no-such-service")
    _says_not_found_with_a_way_back(at, "No service named 'no-such-service' is configured (known: user-service,")


def test_an_unknown_version_in_the_url_says_so_with_a_way_back(demo_env: None) -> None:
    at = _open("views/release.py", service="user-service", version="9.9.9")
    _says_not_found_with_a_way_back(at, "user-service has no version '9.9.9' in the last 7 d (seen: ")


def test_an_unknown_baseline_in_the_url_says_so_with_a_way_back(demo_env: None) -> None:
    at = _open("views/release.py", service="user-service", baseline="yesterday")
    _says_not_found_with_a_way_back(at, "Unknown baseline 'yesterday'")


def test_service_page_shows_the_timeline_score_history_and_every_release(demo_env: None) -> None:
    at = _open("views/service.py", service="user-service")

    assert not at.exception and not at.error
    assert {"service-timeline", "score-history"} <= set(_chart_keys(at))
    history = at.dataframe[0].value
    catalogue, sources, _ = helpers.demo(seed=7)
    versions = [d.version for d in reversed(helpers.deploys(Wiring(catalogue, sources), "user-service"))]
    assert list(history["version"]) == versions
    # Selecting a release opens it.
    at.session_state["history_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert at.title[0].value == "Release" and at.query_params["version"] == versions[0]


def test_a_service_without_deploys_yet_is_inconclusive_on_every_page(demo_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _demo_with(monkeypatch, lambda names: [*names, "ghost-service"])

    overview = _app().run()
    row = overview.dataframe[0].value.set_index("service").loc["ghost-service"]
    assert row["action"] == "INCONCLUSIVE" and "no data for preset generic: expected metric http_requests_total with service=\"ghost-service\"" in row["reason"]
    release = _open("views/release.py", service="ghost-service")
    assert not release.exception
    assert "no data for preset generic: expected metric http_requests_total with service=\"ghost-service\"" in _unescaped(release.warning[0].value)
    service = _open("views/service.py", service="ghost-service")
    assert not service.exception and not service.error
    infos = [_unescaped(i.value) for i in service.info]
    assert "No traffic of ghost-service in the last 24 h 00 min." in infos
    assert "No release of ghost-service was seen yet." in infos


def test_a_service_with_a_single_release_says_there_is_nothing_to_compare_with(
    demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from releasehealth.simulator import simulate

    def built(seed: int = 7, end: datetime | None = None, *, store: str | None = None) -> demo.Demo:
        fleet = simulate(seed=seed, end=end or DEMO_END, services=1, releases_per_service=0)
        return demo.of_fleet(fleet, store=store or "")

    monkeypatch.setattr(demo, "build", built)
    only = "no earlier release of user-service was seen to compare with"
    overview = _app().run()
    assert not overview.exception and overview.dataframe[0].value["action"].tolist() == ["INCONCLUSIVE"]
    release = _open("views/release.py", service="user-service")
    assert not release.exception and only in _unescaped(release.warning[0].value)
    service = _open("views/service.py", service="user-service")
    assert not service.exception and not service.error
    assert "service-timeline" in _chart_keys(service) and len(service.dataframe[0].value) == 1


@pytest.mark.parametrize("page", ["views/overview.py", "views/release.py", "views/service.py"])
def test_an_empty_fleet_says_so_on_every_page(demo_env: None, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    _demo_with(monkeypatch, lambda names: [])

    at = _open(page)

    assert not at.exception and not at.error
    expected = {"views/overview.py": "No service is configured.", "views/release.py": "Choose a service",
                "views/service.py": "Choose a service"}[page]
    assert any(i.value.startswith(expected) for i in at.info)


def test_sources_page_shows_the_simulated_source_ok(demo_env: None) -> None:
    at = _open("views/sources.py")

    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["source"]) == ["prometheus", "elasticsearch"]
    assert list(table["url"]) == ["simulated", "simulated"]
    assert list(table["status"]) == ["ok", "ok"]
    assert not at.error


def test_prometheus_down_shows_error_with_url_on_overview(down_env: None) -> None:
    at = _app().run()

    assert not at.exception
    banner, page_error = (_unescaped(e.value) for e in at.error)
    assert banner.startswith(f"Source prometheus ({DOWN_URL}) does not answer")
    assert DOWN_URL in page_error
    assert not at.dataframe


def test_prometheus_down_shows_error_on_release_and_sources_pages(down_env: None) -> None:
    release = _open("views/release.py", service="user-service")
    sources = _open("views/sources.py")

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

        from releasehealth.dashboard import components
        from releasehealth.model import Action, BaselinePolicy
        from releasehealth.verdicts import Evaluation, Recommendation

        recommendation = Recommendation(
            Action.ROLLBACK, "p95 HIGH [x](javascript:alert(1)) $x$", "**b**", "<script>alert(1)</script>"
        )
        evaluation = Evaluation(service=":red[svc]", candidate=None, baseline=None, policy=BaselinePolicy.PREVIOUS, candidate_window=None, baseline_window=None, score=None, recommendation=recommendation, evaluated_at=datetime.now(UTC))
        components.banner(evaluation, "kubectl rollout undo deployment/x")

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()

    assert not at.exception
    body = at.error[0].value
    assert body == (
        r"**ROLLBACK** \:red\[svc\] \<script\>alert\(1\)\<\/script\> (baseline \*\*b\*\*)  "
        "\n"
        r"p95 HIGH \[x\]\(javascript\:alert\(1\)\) \$x\$"
    )


def test_overview_and_release_on_the_real_prometheus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prometheus, logs_replay: str, fleet
) -> None:
    import yaml

    from testing.configs import example_config

    # Three of the fleet's services, one of them failing: each service's logs cost noida-db a few seconds.
    failing = next(s for s in fleet.services if s.releases[-1].label.is_regression)
    chosen = [s.name for s in fleet.services if s is not failing][:2] + [failing.name]
    raw = example_config(prometheus.url, logs_replay)
    raw["services"] = [s for s in raw["services"] if s["name"] in chosen]
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(path))
    overview = _app().run()
    assert not overview.exception and not overview.error
    listed = list(overview.dataframe[0].value["service"])
    assert sorted(listed) == sorted(chosen)
    release = _open("views/release.py", service=failing.name, version=failing.releases[-1].version)
    assert not release.exception
    assert release.error[0].value.startswith("**ROLLBACK**")


def test_elasticsearch_down_puts_a_banner_on_every_page_and_the_metrics_still_judge(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prometheus, fleet
) -> None:
    import yaml

    from testing.configs import example_config

    raw = example_config(prometheus.url, DOWN_URL)
    raw["sources"]["elasticsearch"]["timeout"] = "2s"
    path = tmp_path / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.delenv("RELEASE_HEALTH_DEMO", raising=False)
    monkeypatch.setenv("RELEASE_HEALTH_CONFIG", str(path))

    overview = _app().run()
    assert not overview.exception
    assert _unescaped(overview.error[0].value).startswith(f"Source elasticsearch ({DOWN_URL}) does not answer")
    assert sorted(overview.dataframe[0].value["service"]) == sorted(s.name for s in fleet.services)
    failing = next(s for s in fleet.services if s.releases[-1].label is ReleaseLabel.ERROR_RATIO)
    release = _open("views/release.py", service=failing.name, version=failing.releases[-1].version)
    assert not release.exception
    texts = [_unescaped(e.value) for e in release.error]
    assert texts[0].startswith("Source elasticsearch") and texts[1].startswith("**ROLLBACK**")
    assert any(t.startswith("Logs could not be used") for t in texts)
    assert "chart-error_ratio" in _chart_keys(release)


# ---- pure builders ---------------------------------------------------------------------------------


def _window_data(levels: dict[str, Series], *, skipped: int = 0, truncated: int = 0) -> LogWindowData:
    return LogWindowData(levels, {"TimeoutError": 3}, (), 40, skipped=skipped, truncated=truncated)


def test_per_step_fills_steps_without_lines_with_zero() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    window = Window(start, start + timedelta(minutes=5), timedelta(minutes=1))
    t0 = start.timestamp()
    # Points at the end of steps 2 and 5 only, as Elasticsearch returns them (min_doc_count: 1).
    series = Series({"level": "error"}, np.array([t0 + 120, t0 + 300]), np.array([4.0, 1.0]))

    minutes, counts = charts.per_step(series, window)

    assert minutes.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert counts.tolist() == [0.0, 4.0, 0.0, 0.0, 1.0]


def test_sampling_text_names_skipped_and_truncated_only_when_nonzero() -> None:
    assert tables.sampling_text("baseline", "1.0", _window_data({})) == "baseline 1.0: 0 of 40 error/warn lines sampled"
    assert tables.sampling_text("candidate", "1.1", _window_data({}, skipped=2, truncated=1)) == (
        "candidate 1.1: 0 of 40 error/warn lines sampled; 2 skipped (no message), 1 truncated"
    )


def test_failing_signature_count_is_a_dash_when_logs_were_not_read() -> None:
    evaluation = _demo_fleet()[0]
    for logs in (None, LogEvidence(None, None, error="logs could not be read: timeout")):
        assert tables.failing_signature_count(dataclasses.replace(evaluation, logs=logs)) == tables.NONE


def test_signature_table_labels_rates_with_their_basis() -> None:
    signature = LogSignature(template="Timeout after <*>", level="error", error_type="TimeoutError", status=SignatureStatus.NEW, baseline_count=0, candidate_count=12, baseline_rate=0.0, candidate_rate=1.5)
    logs = LogEvidence(None, None, (signature,), rate_basis="log lines")

    table, details = tables.signature_table(logs), tables.signature_detail_table(logs)

    assert table.loc[0, "candidate (per 1k log lines)"] == 1.5
    assert table.loc[0, "p-value"] == tables.NONE
    assert not details.loc[0, "not a risk"] and details.loc[0, "candidate count"] == 12


def test_timeline_figure_escapes_versions_and_marks_each_deploy_in_range() -> None:
    from releasehealth.model import Deploy
    from releasehealth.verdicts import Timeline

    start = datetime(2026, 11, 26, tzinfo=UTC)
    steps = np.array([(start + timedelta(minutes=5 * k)).timestamp() for k in range(1, 13)])
    hostile = "<img src=x onerror=alert(1)>"
    series = {v: Series({}, steps, np.full(steps.size, 0.5)) for v in ("1.0", hostile)}
    deploys = (
        Deploy("s", "1.0", start - timedelta(hours=3)),  # before the range: no marker
        Deploy("s", hostile, start + timedelta(minutes=30)),
    )
    line = Timeline(service="s", start=start, end=start + timedelta(hours=1), step=timedelta(minutes=5), request_rate=series, error_ratio=series, latency=series, latency_name="p95_latency", deploys=deploys)

    figure = charts.timeline_figure(line)

    names = {trace.name for trace in figure.data}
    assert names == {"1.0", "&lt;img src=x onerror=alert(1)&gt;"}
    assert [a.text for a in figure.layout.annotations] == ["&lt;img src=x onerror=alert(1)&gt;"]
    assert len(figure.layout.shapes) == 3  # the one deploy in range, marked on each of the three panels


def test_baseline_choices_start_with_the_configured_one() -> None:
    from releasehealth.model import BaselinePolicy, Policy

    shifted = Policy(baseline=BaselinePolicy.TIME_SHIFTED, baseline_shift=timedelta(days=7), lookback=timedelta(days=8))
    assert tables.baseline_spec(shifted) == "time-shifted:7d"
    assert tables.baseline_spec(Policy(baseline=BaselinePolicy.PINNED, pinned_version="1.0")) == "pinned:1.0"
    options = tables.baseline_options("time-shifted:7d", ["1.0", "1.1", "1.2"], "1.2")
    assert options[:2] == ["time-shifted:7d", "previous"] and options.count("time-shifted:7d") == 1
    assert options[-2:] == ["pinned:1.0", "pinned:1.1"]


def test_actions_are_coloured_badges_and_scores_take_their_actions_colour() -> None:
    table = pd.DataFrame({"service": ["a", "b", "c", "d"], "action": ["ROLLBACK", "HOLD", "INCONCLUSIVE", "PROMOTE"],
                          "score": [57.0, 80.0, None, 100.0]})
    styles = tables.styled_overview(table)._compute().ctx  # (row, column) -> [(property, value), ...]
    action, score = list(table.columns).index("action"), list(table.columns).index("score")
    backgrounds = [dict(styles[(row, action)])["background-color"] for row in range(4)]
    assert backgrounds == ["#c62828", "#f9a825", "#757575", "#2e7d32"]  # red, amber, grey, green
    assert all(styles[(row, score)] == styles[(row, action)] for row in range(4))
    assert (0, list(table.columns).index("service")) not in styles


def test_each_error_ratio_sparkline_is_on_the_shade_of_its_own_verdict() -> None:
    table = pd.DataFrame({
        "action": ["ROLLBACK", "ROLLBACK", "PROMOTE", "INCONCLUSIVE"], "score": [50.0, 60.0, 100.0, None],
        "error ratio trend": [[1.0, 3.0]] * 4, "error ratio classification": ["HIGH", "PASS", "PASS", ""],
    })
    styles = tables.styled_overview(table)._compute().ctx
    trend = list(table.columns).index("error ratio trend")
    shades = [dict(styles.get((row, trend), [])).get("background-color") for row in range(4)]
    # A release rolled back for its latency keeps a green error ratio; a row without one has no shade.
    red, green = tables.ACTION_TINTS[Action.ROLLBACK], tables.ACTION_TINTS[Action.PROMOTE]
    assert shades == [red, green, green, None]


def test_each_page_tells_streamlits_frontend_where_the_server_is() -> None:
    from releasehealth.dashboard import server

    html = server.page_html("<html><head><title>Streamlit</title></head></html>", "")
    assert html.startswith("<html><head><script>window.__streamlit = {BACKEND_BASE_URL: new URL(\"/\", ")
    assert html.count("<script>") == 1 and html.endswith("<title>Streamlit</title></head></html>")
    # A configured base path (server.baseUrlPath) is the server's address; it cannot close the script.
    assert 'new URL("/health</script>"' not in server.backend_script("health</script>")
    assert '"/health\\u003c/script>"' in server.backend_script("health</script>")
    assert [server.page_path(p, "") for p in ("/", "/release", "/sources/", "/_stcore/health", "/static/x.js")] == [
        "", "release", "sources", None, None,
    ]
    assert [server.page_path(p, "/rh/") for p in ("/rh", "/rh/release", "/release", "/rhx/release")] == [
        "", "release", None, None,
    ]
    with pytest.raises(ValueError, match="index.html"):
        server.page_html("<html></html>", "")


def test_the_dashboards_pages_are_the_paths_its_server_answers() -> None:
    from releasehealth.dashboard import server

    views = {p.stem for p in (APP.parent / "views").glob("*.py") if p.stem != "__init__"}
    assert views <= server.PAGE_PATHS


def test_the_fleets_releases_are_shown_before_they_are_judged_and_judged_on_that_scan() -> None:
    from releasehealth.deploys import discover
    from releasehealth.evaluate import evaluate_fleet

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    catalogue, sources, fleet = helpers.demo(seed=7, end=end)
    scan = discover(sources, catalogue.services, catalogue.policy, end)
    evaluations = evaluate_fleet(sources, catalogue.services, catalogue.policy, now=end, discovered=scan)
    assert not [q for e in evaluations for q in e.queries if q.template in ("first_seen", "last_seen") and q not in scan.queries[e.service]]
    _, fresh, _ = helpers.demo(seed=7, end=end)
    from releasehealth.serialize import evaluation_to_dict

    again = evaluate_fleet(fresh, catalogue.services, catalogue.policy, now=end)
    assert [evaluation_to_dict(e) for e in again] == [evaluation_to_dict(e) for e in evaluations]
    assert fresh.metrics.queries_run == sources.metrics.queries_run  # the scan was not read again
    assert [e.candidate.version for e in evaluations if e.candidate] == [s.releases[-1].version for s in fleet.services]
    deploys = {s.name: [Deploy(s.name, r.version, r.deployed_at, DeploySourceKind.DETECTED) for r in s.releases] for s in fleet.services}
    deploys["silent-service"] = []
    table = tables.pending_table(deploys, end, {"cart-service": "checkout"})
    assert list(table.columns) == ["service", "version", "team", "age", "action"]
    newest = max(fleet.services, key=lambda s: s.releases[-1].deployed_at)
    assert table["service"].iloc[0] == newest.name and table["service"].iloc[-1] == "silent-service"
    assert set(table["action"]) == {"judging…"} and table.loc[table["service"] == "silent-service", "version"].item() == tables.NONE


def test_the_overview_reruns_from_its_cache_without_drawing_the_pending_releases_again(demo_env: None) -> None:
    first = _app().run()
    again = _app().run()  # the fleet is cached now: nothing is drawn from inside the cached evaluation
    assert not first.exception and not again.exception
    assert again.dataframe[0].value["action"].iloc[0] == Action.ROLLBACK.value


def test_the_sources_page_shows_what_watch_mode_follows_and_what_it_could_not_deliver(demo_env: None, tmp_path: Path) -> None:
    from releasehealth.store import Store
    from releasehealth.watch import Channel, ChannelKind, Watcher, WatchOptions

    url = os.environ["RELEASE_HEALTH_STORE"]
    wired = demo.build(7, DEMO_END, store=url).wire(create_store=True)
    store = wired.sources.store
    assert store is not None

    def refuse(channel: Channel, notice: object) -> None:
        from releasehealth.errors import DeliveryError

        raise DeliveryError("slack: HTTP 500")

    options = WatchOptions(channels=(Channel("chat", ChannelKind.SLACK, "https://hooks.example.com/x"),))
    report = Watcher(wired.sources, wired.catalogue, store, options, "watcher-1", refuse).step(datetime.now(UTC))
    assert report.send_failures >= 1
    store.close()

    at = _open("views/sources.py")

    assert not at.exception
    assert "Watch" in [h.value for h in at.subheader]
    table = _table_with(at, "announced")
    assert len(table) == DEMO_SERVICES and set(table["state"]) <= {"final", "watching"}
    assert "ROLLBACK" in set(table["verdict"])
    assert any("watcher-1 holds the store" in _unescaped(c.value) for c in at.caption)
    assert any("not delivered yet" in _unescaped(e.value) and "slack: HTTP 500" in _unescaped(e.value) for e in at.error)
    again = Store(url)
    try:
        assert again.unsent() == report.queued
    finally:
        again.close()


def test_the_calibration_page_shows_the_stored_backtests(demo_env: None) -> None:
    from releasehealth import backtest

    empty = _open("views/calibration.py")
    assert not empty.exception and any("No backtest has been run" in _unescaped(i.value) for i in empty.info), [i.value for i in empty.info]
    wired = demo.build(7, DEMO_END, store=os.environ["RELEASE_HEALTH_STORE"]).wire(create_store=True)
    settings = backtest.BacktestSettings(since=DEMO_END - timedelta(hours=8), until=DEMO_END, pairs_per_day=24)
    services = [dataclasses.replace(s, logs=None, metrics=tuple(m for m in s.metrics if m.kind not in (MetricKind.LOG_RATE, MetricKind.LOG_SIGNATURES)))
                for s in wired.catalogue.services]
    stopped = dataclasses.replace(settings, services=("cart-service",), max_queries=1)
    backtest.calibrate(wired.sources, services[:1], wired.catalogue.policy, stopped, now=DEMO_END)
    calibration, _ = backtest.calibrate(wired.sources, services, wired.catalogue.policy, settings, now=DEMO_END)
    data.refresh()  # as the page's Refresh button does: the empty answer above is cached

    at = _open("views/calibration.py")

    assert not at.exception
    assert at.selectbox[0].options[0].startswith("#2:") and "(not finished)" in at.selectbox[0].options[1]
    assert any("A/A false alarms" in _unescaped(m) for m in _markdown_texts(at)), _markdown_texts(at)
    metrics = _table_with(at, "suggested tolerance")
    assert set(metrics["metric"]) == {m.metric for m in calibration.metrics}
    releases = _table_with(at, "candidate from (UTC)")
    assert len(releases) == len(calibration.releases) > 0
    unfinished = at.selectbox[0].set_value("1").run()
    assert any("has not finished" in _unescaped(w.value) for w in unfinished.warning)
