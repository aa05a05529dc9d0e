"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, on the embedded demo fleet."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from releasehealth.model import Action, SignatureStatus
from releasehealth.verdicts import Evaluation, LogSignature
from releasehealth.wiring import Wiring
from testing.servers import (
    STREAMLIT_RENDERED,
    DashboardServer,
    start_pinned_demo,
)
from tests import helpers

SEED = 7
# The demo fleet depends on the time of day its history ends at, not on the date: ending at the same time
# of day on every run gives the same verdicts on every run. At 22:00 UTC a ROLLBACK release of seed 7 logs
# a new TypeError echoing user input ("... of input <script>alert('…')</script> in field **comment** ..."),
# a NEW signature, so its example messages are on the page as text (the warn line with the same markup is
# only KNOWN, in the signature table, which the browser draws on a canvas).
DEMO_END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=2)
TIMEOUT_MS = 90_000  # a limit against hangs, never an expectation of speed: pages render in seconds, slower under load
# Records any dialog-opening call the page's scripts make (the hostile line calls alert()).
TRAP_DIALOGS = """
for (const name of ["alert", "confirm", "prompt"]) {
    const original = window[name].bind(window);
    window[name] = (...args) => { window.__xss = `${name}(${args.join(", ")})`; return original(...args); };
}
"""
# Markup the hostile line would create if it were parsed as HTML or Markdown rather than shown as text.
PARSED_HOSTILE_MARKUP = """() => ({
    scripts: Array.from(document.scripts).filter((s) => s.textContent.includes("alert(")).length,
    bold: Array.from(document.querySelectorAll("strong, b, em")).filter((e) => e.textContent.trim() === "comment").length,
})"""
TABLE_LISTS = """(services) => {
    const cells = new Set(Array.from(document.querySelectorAll('[data-testid="stDataFrame"] [role="gridcell"]'), (c) => c.textContent));
    return services.every((s) => cells.has(s));
}"""
# Every grid on the page that is shown (those in closed expanders are not): [scrollWidth, clientWidth] of each.
GRID_WIDTHS = """() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller'))
    .filter((s) => s.offsetParent !== null && s.clientWidth > 0)
    .map((s) => [s.scrollWidth, s.clientWidth])"""
OPEN_LINK = re.compile(r"^Open (\S+) (\S+)", re.MULTILINE)
HOSTILE = "<script>"


@dataclass(frozen=True)
class Expected:
    """What the pinned demo fleet evaluates to, computed in this process the way the dashboard does."""

    rollbacks: tuple[tuple[str, str], ...]  # (service, version) of each latest release judged ROLLBACK
    hostile: tuple[Evaluation, LogSignature] | None  # a release whose page shows the hostile line as text


def _flagged_hostile(evaluation: Evaluation) -> LogSignature | None:
    """The hostile signature if the release page shows its example messages (NEW and INCREASED ones)."""
    signatures = evaluation.logs.signatures if evaluation.logs else ()
    flagged = (SignatureStatus.NEW, SignatureStatus.INCREASED)
    return next((s for s in signatures if s.status in flagged and any(HOSTILE in e for e in s.examples)), None)


@pytest.fixture(scope="module")
def expected() -> Expected:
    catalogue, sources, _ = helpers.demo(seed=SEED, end=DEMO_END)
    fleet = helpers.fleet(Wiring(catalogue, sources))
    rollbacks = tuple(
        (e.service, e.candidate.version) for e in fleet if e.candidate and e.recommendation.action is Action.ROLLBACK
    )
    hostile = None
    for latest in (e for e in fleet if e.candidate):
        # The release page evaluates the one service, as here (the fleet's evaluation covers them all).
        evaluation = helpers.evaluate(Wiring(catalogue, sources), latest.service, latest.candidate.version)
        if signature := _flagged_hostile(evaluation):
            hostile = evaluation, signature
            break
    return Expected(rollbacks, hostile)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    server = start_pinned_demo(SEED, DEMO_END, tmp_path_factory.mktemp("dashboard"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: $RELEASE_HEALTH_ARTIFACTS (CI keeps it), else the test's temporary folder."""
    folder = Path(os.environ.get("RELEASE_HEALTH_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait_rendered(page: Page) -> None:
    page.wait_for_function(STREAMLIT_RENDERED, timeout=TIMEOUT_MS)


def _open_overview(page: Page, dashboard: DashboardServer, expected: Expected) -> None:
    """Open the overview and wait until its script has run and its fleet table lists the failing services."""
    page.goto(dashboard.url + "/")
    expect(page.get_by_role("heading", name="Fleet overview")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=TIMEOUT_MS)
    # The table is drawn on a canvas once its data arrived; its cells are also in the DOM, for accessibility.
    page.wait_for_function(TABLE_LISTS, arg=[service for service, _ in expected.rollbacks], timeout=TIMEOUT_MS)
    _wait_rendered(page)


def _release_links(page: Page) -> dict[tuple[str, str], int]:
    """(service, version) of each "Open {service} {version}" link on the page, with the link's index."""
    found: dict[tuple[str, str], int] = {}
    for index, text in enumerate(page.locator("a").all_inner_texts()):
        if match := OPEN_LINK.search(text):
            found.setdefault((match[1], match[2]), index)
    return found


def _expect_rollback_banner(page: Page, service: str, version: str) -> None:
    # The alert's text also holds its icon's name (a ligature); the message is its Markdown.
    banner = page.locator('[data-testid="stAlert"]').filter(has_text=f"ROLLBACK {service} {version}")
    expect(banner).to_be_visible(timeout=TIMEOUT_MS)
    _wait_rendered(page)
    text = banner.first.locator('[data-testid="stMarkdownContainer"]').inner_text()
    assert text.startswith(f"ROLLBACK {service} {version} (baseline ")


def _screenshot(page: Page, folder: Path, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    with capsys.disabled():
        print(f"\nscreenshot: {path}")
    return path


def test_overview_link_opens_a_failing_release_with_a_rollback_banner(
    page: Page, dashboard: DashboardServer, expected: Expected, artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected.rollbacks, "the pinned demo fleet has no ROLLBACK release to open"
    _open_overview(page, dashboard, expected)
    links = _release_links(page)
    service, version = next((r for r in links if r in expected.rollbacks), (None, None))  # in page order
    assert service, f"no 'Open <service> <version>' link for a ROLLBACK release {expected.rollbacks}; links: {links}"

    page.locator("a").nth(links[service, version]).click()

    page.wait_for_url(re.compile(r"/release\?"))
    _expect_rollback_banner(page, service, version)
    assert f"service={service}" in page.url and f"version={version}" in page.url
    assert _screenshot(page, artifacts, f"browser-rollback-{service}-{version}", capsys).stat().st_size > 0


def test_release_deep_link_shows_the_rollback_banner(page: Page, dashboard: DashboardServer, expected: Expected) -> None:
    # Separate from the click above: the release page's own URL works even if the overview changes.
    service, version = expected.rollbacks[0]

    page.goto(f"{dashboard.url}/release?service={service}&version={version}")

    _expect_rollback_banner(page, service, version)


def test_hostile_log_line_shows_as_text_and_runs_no_script(
    page: Page, dashboard: DashboardServer, expected: Expected, artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected.hostile, f"no release of the demo fleet ending {DEMO_END} shows the hostile log line"
    evaluation, signature = expected.hostile
    service, version = evaluation.service, evaluation.candidate.version
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(TRAP_DIALOGS)

    page.goto(f"{dashboard.url}/release?service={service}&version={version}")

    example = signature.examples[0]  # e.g. "Rejected input <script>alert('70751')</script> in field **comment** from …"
    code = page.locator('[data-testid="stCode"]').filter(has_text=example)
    expect(code.first).to_be_visible(timeout=TIMEOUT_MS)  # a limit against hangs, not a speed
    _wait_rendered(page)
    expect(page.get_by_text(HOSTILE, exact=False).filter(visible=True).first).to_be_visible(timeout=TIMEOUT_MS)
    assert "**comment**" in code.first.inner_text()
    assert page.evaluate("() => window.__xss") is None
    assert dialogs == []
    assert page.evaluate(PARSED_HOSTILE_MARKUP) == {"scripts": 0, "bold": 0}
    code.first.scroll_into_view_if_needed()  # Streamlit scrolls its main block, not the document
    _screenshot(page, artifacts, f"browser-hostile-log-{service}-{version}", capsys)


def test_every_page_stays_on_the_dashboards_origin_names_itself_and_offers_no_deploy(
    page: Page, dashboard: DashboardServer, expected: Expected, artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also the README's screenshots, at 1280 px: `./dev screenshots` runs this test into docs/screenshots."""
    page.set_viewport_size({"width": 1280, "height": 900})
    requested: list[str] = []
    failed: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    # A deep link's page used to ask /release/_stcore/health before the root: a 404 in the console each time.
    page.on("response", lambda response: response.status >= 400 and failed.append(f"{response.status} {response.url}"))
    # A release with log signatures: its page has the release, metric and signature tables.
    hostile = expected.hostile[0] if expected.hostile and expected.hostile[0].candidate else None
    service, version = (hostile.service, hostile.candidate.version) if hostile and hostile.candidate else expected.rollbacks[0]
    for path, title, grids in (
        ("/", "Overview", 1), (f"/release?service={service}&version={version}", "Release", 3),
        (f"/service?service={service}", "Service", 1), ("/calibration", "Calibration", 0), ("/sources", "Sources", 1),
    ):
        page.goto(dashboard.url + path)
        _wait_rendered(page)
        expect(page).to_have_title(f"{title} · release-health", timeout=TIMEOUT_MS)
        # Every table shown holds its key columns whole at 1280 px (none scrolls sideways).
        page.wait_for_function(f"() => ({GRID_WIDTHS})().length >= {grids}", timeout=TIMEOUT_MS)
        widths = page.evaluate(GRID_WIDTHS)
        assert all(scroll <= client + 1 for scroll, client in widths), f"{path}: a table scrolls sideways: {widths}"
        # client.toolbarMode "viewer": a page for release decisions has no Deploy button or developer menu.
        assert page.get_by_role("button", name="Deploy").count() == 0, path
        _screenshot(page, artifacts, title.lower(), capsys)
    elsewhere = sorted({u for u in requested if not u.startswith((dashboard.url + "/", "data:", "blob:"))})
    assert elsewhere == []  # the favicon and every font included: the dashboard works offline
    assert failed == []
    icons = page.locator('link[rel~="icon"]').evaluate_all("(links) => links.map((l) => l.href)")
    assert icons and all(href.startswith(dashboard.url + "/") for href in icons)


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_overviews_key_columns_are_on_screen_without_scrolling(
    browser: Browser, dashboard: DashboardServer, expected: Expected, width: int, artifacts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        _open_overview(page, dashboard, expected)
        grid = page.locator('[data-testid="stDataFrame"]').first
        box = grid.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width
        # The grid draws on a canvas inside a scroller: wider columns than the grid would scroll sideways.
        scroller = grid.locator(".dvn-scroller").first
        widths = scroller.evaluate("(s) => [s.scrollWidth, s.clientWidth]")
        assert widths[0] <= widths[1] + 1, f"the overview scrolls sideways at {width} px: {widths}"
        _screenshot(page, artifacts, f"browser-overview-{width}px", capsys)
    finally:
        context.close()

