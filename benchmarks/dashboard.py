"""Dashboard: time to a fully rendered overview in headless Chromium, and Prometheus queries per render.

Simulates 50 services with 5 releases each, backfills them into a real Prometheus (promtool, as the
tests do), serves the dashboard on them (`release-health --config FILE dashboard`) and opens the overview
in Debian's Chromium driven by Playwright: cold (the first load after the server started: empty caches,
new browser profile), warm (reloads within the cache TTL, and a new browser session), and uncached on a
warm server (after the Refresh button). Queries are counted by Prometheus itself: its
prometheus_http_requests_total (and the time it spent, prometheus_http_request_duration_seconds_sum) for
the /api/v1/query* handlers, read from its /metrics before and after each render. The config is the
shipped example's except for the services and the Prometheus timeout (see --prometheus-timeout). Usage:
    .venv/bin/python benchmarks/dashboard.py [--services 50] [--releases 5] [--warm 5] [--prometheus-timeout 120s]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Browser, Page, sync_playwright

from releasehealth import config
from releasehealth.simulator import Fleet, simulate
from testing.configs import example_config
from testing.servers import (
    CHROMIUM_ARGS,
    STREAMLIT_RENDERED,
    PrometheusLoad,
    PrometheusServer,
    Server,
    backfill,
    prometheus_load,
    require,
    start_dashboard,
    start_prometheus,
)

# The same time of day on every run (the fleet depends on it, not on the date): the same verdicts.
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
PRESET = "generic"
WARM_TARGET, COLD_TARGET = 1.0, 5.0  # seconds
RSS_TARGET_MB = 400
TTL_SECONDS = 60  # dashboard.data.TTL_SECONDS (not imported: importing it outside Streamlit logs warnings)
TIMEOUT_MS = 300_000
VIEWPORT = {"width": 1400, "height": 1000}
# Counts each run of the page's script, so a rerun triggered in place (Refresh) can be awaited.
COUNT_RUNS = """() => {
    window.__runs = 0;
    const app = document.querySelector('[data-testid="stApp"]');
    new MutationObserver(() => { if (app.dataset.testScriptState === "running") window.__runs += 1; })
        .observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
}"""
# The overview's fleet table has data once one of its cells names a service (it is drawn on a canvas;
# the cells are also in the DOM, for accessibility). Without it, the overview shows an error instead.
TABLE_FILLED = """(services) => Array.from(
    document.querySelectorAll('[data-testid="stDataFrame"] [role="gridcell"]')
).some((cell) => services.includes(cell.textContent))"""
TABLE_OR_ERROR = f"""(services) => ({STREAMLIT_RENDERED})()
    && (({TABLE_FILLED})(services) || document.querySelector('[data-testid="stAlert"]') !== null)"""


@dataclass(frozen=True)
class Render:
    """One overview render: wall time until fully rendered, the Prometheus load it caused, and the
    overview's error message if it showed one instead of the fleet."""

    seconds: float
    load: PrometheusLoad
    error: str = ""


def write_config(prometheus: PrometheusServer, fleet: Fleet, timeout: str, folder: Path) -> Path:
    """The shipped example config pointed at `prometheus`, listing every simulated service (no logs)."""
    raw = example_config(prometheus.url, timeout=timeout)
    raw["services"] = [{"name": s.name, "preset": PRESET, "team": f"team-{i % 7}"} for i, s in enumerate(fleet.services)]
    path = folder / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw))
    config.load(str(path))  # fail here, not in the dashboard, if it is invalid
    return path


def wait_overview(page: Page, services: list[str]) -> str:
    """Wait until the overview is fully rendered; return its error message if it shows no fleet table."""
    page.get_by_role("heading", name="Fleet overview").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(TABLE_OR_ERROR, arg=services, timeout=TIMEOUT_MS)
    if page.evaluate(TABLE_FILLED, services):
        return ""
    # The alert's text also holds its icon's name (a ligature); the message is its Markdown.
    messages = page.locator('[data-testid="stAlert"] [data-testid="stMarkdownContainer"]').all_inner_texts()
    return " / ".join(" ".join(m.split()) for m in messages) or "no fleet table"


def measure(prometheus: PrometheusServer, action: Callable[[], str]) -> Render:
    before = prometheus_load(prometheus)
    started = time.perf_counter()
    error = action()
    seconds = time.perf_counter() - started
    return Render(seconds, prometheus_load(prometheus) - before, error)


def load(page: Page, url: str, services: list[str]) -> Callable[[], str]:
    def action() -> str:
        page.goto(url + "/")
        return wait_overview(page, services)

    return action


def reload(page: Page, services: list[str]) -> Callable[[], str]:
    def action() -> str:
        page.reload()
        return wait_overview(page, services)

    return action


def refresh(page: Page, services: list[str]) -> Callable[[], str]:
    """Click the header's Refresh (it clears every cache) and wait for the rerun it starts to finish."""

    def action() -> str:
        page.evaluate(COUNT_RUNS)
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_function("() => window.__runs > 0", timeout=TIMEOUT_MS)
        return wait_overview(page, services)

    return action


def verdict_counts(page: Page) -> str:
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    return ", ".join(f"{label.strip()} {value.strip()}" for label, value in zip(labels, values, strict=False))


def browse(browser: Browser, url: str, prometheus: PrometheusServer, services: list[str], warm: int) -> dict[str, list[Render]]:
    """Time the overview: cold, `warm` reloads, a new browser session, and an uncached rerun (Refresh)."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    try:
        results = {"cold: first load after start": [measure(prometheus, load(page, url, services))]}
        cached_at = time.monotonic()
        print(f"overview verdicts: {verdict_counts(page) or '-'}")
        results[f"warm reload, {warm} times"] = [measure(prometheus, reload(page, services)) for _ in range(warm)]
        if time.monotonic() - cached_at > TTL_SECONDS:
            print(f"warning: the warm reloads ended after the cache TTL ({TTL_SECONDS} s): some were not warm")
        fresh = browser.new_context(viewport=VIEWPORT).new_page()
        results["warm, new browser session"] = [measure(prometheus, load(fresh, url, services))]
        results["uncached: after Refresh"] = [measure(prometheus, refresh(page, services))]
        return results
    except Exception:
        shot = Path(tempfile.gettempdir()) / "dashboard-benchmark-failure.png"
        page.screenshot(path=str(shot))
        print(f"failed; the page is in {shot}", file=sys.stderr)
        raise


def report(results: dict[str, list[Render]], templates: int) -> None:
    limit = 2 * templates
    print(f"\nmetric templates in the {PRESET} preset: {templates}; target: <= {limit} queries per uncached render")
    print(f"\n{'render':<31} {'seconds':>8} {'queries':>8} {'(instant+range)':>15} {'Prometheus s':>13}  {'target':<8} met")
    targets = {"cold": COLD_TARGET, "warm reload": WARM_TARGET}
    for name, renders in results.items():
        target = next((t for prefix, t in targets.items() if name.startswith(prefix)), None)
        rows = [(name, renders[0])] if len(renders) == 1 else [
            (f"{name[:name.index(',')]}: median", _median(renders)), (f"{name[:name.index(',')]}: max", _max(renders)),
        ]
        for label, r in rows:
            split = f"{r.load.requests['/api/v1/query']}+{r.load.requests['/api/v1/query_range']}"
            met = "" if target is None else "yes" if r.seconds <= target and not r.error else "NO"
            goal = "" if target is None else f"<= {target:g} s"
            print(f"{label:<31} {r.seconds:>8.2f} {r.load.queries:>8} {split:>15} {r.load.seconds:>13.2f}  {goal:<8} {met}")
    for name, renders in results.items():
        for r in renders:
            if r.error:
                print(f"{name}: the overview showed an error instead of the fleet: {r.error}")
    warm = next(renders for name, renders in results.items() if name.startswith("warm reload"))
    print(f"warm reloads, seconds each: {', '.join(f'{r.seconds:.2f}' for r in warm)}")
    uncached = [results["cold: first load after start"][0], results["uncached: after Refresh"][0]]
    most = max(r.load.queries for r in uncached)
    met = "not measured: the overview failed" if any(r.error for r in uncached) else "yes" if most <= limit else "NO"
    print(f"queries per uncached render: at most {most}; target <= {limit} (2 x {templates} templates): met {met}")


def _median(renders: list[Render]) -> Render:
    """The median seconds, with the Prometheus load of the middle render by time."""
    ordered = sorted(renders, key=lambda r: r.seconds)[len(renders) // 2]
    seconds = statistics.median(r.seconds for r in renders)
    return Render(seconds, ordered.load, next((r.error for r in renders if r.error), ""))


def _max(renders: list[Render]) -> Render:
    """The slowest render, with the most queries any render made."""
    slowest = max(renders, key=lambda r: r.seconds)
    busiest = max(renders, key=lambda r: r.load.queries)
    return Render(slowest.seconds, busiest.load, next((r.error for r in renders if r.error), ""))


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--releases", type=int, default=5, help="deploys per service")
    parser.add_argument("--warm", type=int, default=5, help="warm reloads to time")
    parser.add_argument(
        "--prometheus-timeout", default="120s",
        help="sources.prometheus.timeout; the shipped 10s is too short for the deploy scan of 50 services",
    )
    args = parser.parse_args()
    print(f"dashboard benchmark: {args.services} services x {args.releases} releases, seed 7, history ending "
          f"{END:%Y-%m-%d %H:%M} UTC, Prometheus timeout {args.prometheus_timeout}")
    print("set-up:")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with timed("simulate"):
            fleet = simulate(seed=7, end=END, services=args.services, releases_per_service=args.releases)
        with timed("backfill (OpenMetrics + promtool)"):
            tsdb = backfill(fleet, folder)
        with timed("Prometheus ready"):
            prometheus = start_prometheus(tsdb, folder)
        with running(prometheus):
            path = write_config(prometheus, fleet, args.prometheus_timeout, folder)
            with timed("Streamlit healthy"):
                dashboard = start_dashboard(["--config", str(path), "dashboard"], folder)
            with running(dashboard), sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=require("chromium"), args=list(CHROMIUM_ARGS))
                try:
                    rss_before = server_rss_mb(dashboard)
                    results = browse(browser, dashboard.url, prometheus, [s.name for s in fleet.services], args.warm)
                    rss_after = server_rss_mb(dashboard)
                except Exception:
                    print((folder / "streamlit.log").read_text()[-3000:], file=sys.stderr)
                    raise
                finally:
                    browser.close()
    report(results, len(config.load_preset(PRESET).templates))
    met = "yes" if rss_after <= RSS_TARGET_MB else "NO"
    print(
        f"dashboard server RSS: {rss_before:.0f} MB started, {rss_after:.0f} MB after the cold load, {args.warm} warm reloads, "
        f"a new session and a Refresh (target <= {RSS_TARGET_MB} MB after 20 reloads; --warm 20): met {met}"
    )


def server_rss_mb(server: Server) -> float:
    """The resident memory of the dashboard's server process (Streamlit runs the pages in it)."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
