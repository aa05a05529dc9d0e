"""`release-health report`: HTML and Markdown rebuilt from the stored evaluation alone, hostile text inert."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser
from typer.testing import CliRunner

from releasehealth import report
from releasehealth.cli import app
from releasehealth.format import value_text
from releasehealth.serialize import evaluation_from_dict
from releasehealth.simulator.sources import SimulatedLogSource, SimulatedMetricSource
from releasehealth.store import Store

runner = CliRunner()
SERVICE = "inventory-service"
HOSTILE = "<script>"
# At last midnight minus 2 h the seed-7 demo's latest inventory-service release logs a new TypeError that
# echoes user input ("... of input <script>alert('…')</script> in field **comment** at ..."): a NEW signature.
DEMO_END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=2)
OTHER_DAY = DEMO_END - timedelta(days=3)  # a different demo history: its sources cannot give the same report
SECTIONS = ("Verdict", "Timeline", "Metric comparisons", "Log signatures", "Queries that ran", "Baseline", "Configuration fingerprint")
TRAP_DIALOGS = """
for (const name of ["alert", "confirm", "prompt"]) {
    const original = window[name].bind(window);
    window[name] = (...args) => { window.__xss = `${name}(${args.join(", ")})`; return original(...args); };
}
"""


def _cli(store: str, end: datetime, *args: str) -> Any:
    return runner.invoke(app, ["--demo", "--demo-end", end.strftime("%Y-%m-%dT%H:%M:%S"), "--store", store, *args])


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """A store holding one saved evaluation of inventory-service's latest release, and its document."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'store.db'}"
    result = _cli(url, DEMO_END, "evaluate", SERVICE, "--save")
    assert result.exit_code in (0, 3, 4), result.output
    document = Store(url).latest(SERVICE).document
    return url, document


@pytest.fixture
def no_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to evaluate or query the live sources fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the report read a live source")

    for source, names in ((SimulatedMetricSource, ("fetch",)), (SimulatedLogSource, ("fetch", "events"))):
        for name in names:
            monkeypatch.setattr(source, name, refuse)


def _report(stored: tuple[str, dict[str, Any]], tmp_path: Path, fmt: str) -> str:
    url, document = stored
    path = tmp_path / f"report.{fmt}"
    result = _cli(url, OTHER_DAY, "report", "--service", SERVICE, "--version", document["candidate"]["version"],
                  "--format", fmt, "-o", str(path))
    assert result.exit_code == 0, result.output
    return path.read_text(encoding="utf-8")


def _hostile_signature(document: dict[str, Any]) -> dict[str, Any]:
    signatures = (document.get("logs") or {}).get("signatures") or []
    return next(s for s in signatures if s["status"] in ("NEW", "INCREASED") and any(HOSTILE in e for e in s["examples"]))


def test_html_report_has_every_section_and_the_stored_numbers_from_the_store_alone(
    stored: tuple[str, dict[str, Any]], tmp_path: Path, no_sources: None
) -> None:
    _, document = stored
    html = _report(stored, tmp_path, "html")

    for section in SECTIONS:
        assert f"<h2>{section}" in html
    assert f"<strong>{document['recommendation']['action']}</strong>" in html
    for verdict in document["verdicts"]:
        assert value_text(verdict["candidate"]["value"], verdict["unit"]) in html
        assert value_text(verdict["baseline"]["value"], verdict["unit"]) in html
    charts = sum(1 for v in document["verdicts"] if v["series"]["candidate"])
    assert html.count('class="chart"') == charts
    assert html.count("<script") >= 1 + charts  # plotly.js once (its code holds the word too), then one per chart
    assert "<script>alert(" not in html and "&lt;script&gt;alert(" in html  # the log text, escaped
    # The stored queries' time ranges: from the evaluated day, not from --demo-end's (other) day.
    assert document["queries"][0]["promql"].replace('"', "&#34;") in html
    assert OTHER_DAY.strftime("%Y-%m-%d %H") not in html
    # Numbers as people read them, from the one formatter: no raw floats, no 9.24856e+08 bytes, no ISO times
    # or microseconds (p-values keep their exponents: p=2.7e-55 is how a p-value reads).
    text = re.sub(r"<script.*?</script>|<pre.*?</pre>|<[^>]+>", " ", html, flags=re.DOTALL)
    assert _raw_numbers(text) == []


def _raw_numbers(text: str) -> list[str]:
    """Numbers with a decimal point and more than 5 significant digits, exponents of large numbers, times
    in ISO form or with fractions of a second."""
    raw = [n for n in re.findall(r"\d+\.\d+", text) if len(n.replace(".", "").lstrip("0")) > 5]
    raw += re.findall(r"\d(?:\.\d+)?e\+\d+|\d{4}-\d\d-\d\dT\d\d:\d\d|\d\d:\d\d:\d\d\.\d+", text)
    return raw


def test_html_report_loads_nothing_from_the_network(stored: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    html = _report(stored, tmp_path, "html")
    # plotly.js, inlined, mentions map-tile URLs in its code: look at the markup outside the scripts.
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.DOTALL | re.IGNORECASE)
    assert re.search(r"<link\b", markup, re.IGNORECASE) is None
    assert re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", markup, re.IGNORECASE) is None
    assert re.search(r"<script\b[^>]*\bsrc\s*=", html, re.IGNORECASE) is None
    assert html.count("plotly.js v") <= 2  # the bundle's banner: embedded once, not per chart


def test_markdown_report_escapes_untrusted_text_and_fences_examples(
    stored: tuple[str, dict[str, Any]], tmp_path: Path, no_sources: None
) -> None:
    _, document = stored
    md = _report(stored, tmp_path, "md")

    for section in SECTIONS:
        assert re.search(rf"^## {section}", md, re.MULTILINE)
    for verdict in document["verdicts"]:
        assert value_text(verdict["candidate"]["value"], verdict["unit"]) in md
    hostile = _hostile_signature(document)
    assert f"```text\n{hostile['examples'][0]}\n```" in md  # the example verbatim, inside a fence
    row = next(line for line in md.splitlines() if line.startswith(f"| {hostile['status']} |") and "script" in line)
    assert "\\<script\\>" in row and "\\*\\*comment\\*\\*" in row and HOSTILE not in row
    # Its callers' lines naming it (the demo's caller logs a warn per 503 of its callee): the blast radius.
    callers = [s for s in document["logs"]["signatures"] if s.get("caller")]
    assert callers and all(f"caller {s['caller']}" in md for s in callers)
    assert re.search(r"^Blast radius: \d+ error and warn lines of 1 caller \(\S+\) name this service", md, re.MULTILINE)


def test_markdown_fence_is_longer_than_any_backtick_run() -> None:
    assert report.fenced("a ```` b") == "`````text\na ```` b\n`````"
    assert report.md_escape("a|b`c\nd") == "a\\|b\\`c d"


def test_report_of_a_release_never_evaluated_says_how_to_evaluate_it(stored: tuple[str, dict[str, Any]]) -> None:
    url, _ = stored

    result = _cli(url, DEMO_END, "report", "--service", SERVICE, "--version", "0.0.0-never", "--format", "md")

    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert f"no stored evaluation of {SERVICE} 0.0.0-never" in message
    assert f"evaluate {SERVICE} --version 0.0.0-never --save` (or the gate) first" in message
    assert f"run `release-health --demo --demo-end {DEMO_END.replace(tzinfo=None).isoformat()} --store {url} evaluate" in message


def test_html_report_in_chromium_shows_hostile_log_line_as_text_and_charts_offline(
    stored: tuple[str, dict[str, Any]], tmp_path: Path, browser: Browser
) -> None:
    _, document = stored
    hostile = _hostile_signature(document)  # the stored document itself holds the hostile line (NEW)
    path = tmp_path / "report.html"
    path.write_text(report.render_html(evaluation_from_dict(document), "0123456789abcdef"), encoding="utf-8")
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))
    page.add_init_script(TRAP_DIALOGS)
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20_000)

        assert page.locator(".js-plotly-plot").count() == len([v for v in document["verdicts"] if v["series"]["candidate"]])
        example = page.locator("pre.example").filter(has_text=hostile["examples"][0])
        assert example.first.is_visible()
        assert HOSTILE in example.first.inner_text() and "**comment**" in example.first.inner_text()
        assert page.evaluate("() => window.__xss") is None
        assert dialogs == []
        assert [url for url in requests if not url.startswith("file:")] == []
    finally:
        context.close()
