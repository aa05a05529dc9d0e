"""The live simulator end to end: `simulate --serve` scraped by a real Prometheus, shipping its logs to
noida-db, judged by the product's own evaluation before and after a scheduled bad release."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from elasticsearch import Elasticsearch

from releasehealth import config, wiring
from releasehealth.model import Action
from releasehealth.simulator.fleet import ReleaseLabel
from releasehealth.simulator.live import LiveFleet, parse_schedule, prometheus_config
from releasehealth.sources import Sources
from releasehealth.verdicts import Evaluation
from releasehealth.wiring import Wiring
from testing.configs import example_config
from testing.servers import PrometheusServer, free_port, start_elasticsearch, start_scraping_prometheus
from tests import helpers

# The simulator serves SPEED simulated seconds of traffic per real second: windows of a few real seconds
# hold as many requests as minutes would. Prometheus' time is real, so the windows are short in real time:
# a baseline of up to 8 s before the deploy, a candidate judged from 4 s after its warm-up, 2-s steps over
# 1-s scrapes (each step's increase() sees two or three samples). About 17 s, after the 6 s Prometheus
# and noida-db take to start.
SPEED = 10
BAD_AFTER = 16  # real seconds after the simulator starts: the deploys are scheduled SPEED times later in its time
# Six steps a window (the baseline's fits in the BAD_AFTER s before the deploy): the error ratio's dispersion
# is estimated from the windows' steps and the test then reads Student's t with their degrees of freedom;
# with four steps (two of them sometimes empty) even a fivefold rise was not credible.
SHORT_POLICY = {"window": "12s", "warmup": "1s", "step": "2s", "lookback": "5m", "min_window_share": 0.5}
POLL_SECONDS = 1


def test_parse_schedule_reads_offsets_labels_and_factors() -> None:
    plan = parse_schedule(["order-service@2m:latency:1.5", "user-service@90s:error_ratio"])
    assert [(r.service, r.offset, r.label, r.factor) for r in plan] == [
        ("user-service", timedelta(seconds=90), ReleaseLabel.ERROR_RATIO, 3.0),
        ("order-service", timedelta(minutes=2), ReleaseLabel.LATENCY, 1.5),
    ]


def test_parse_schedule_reports_every_bad_entry() -> None:
    with pytest.raises(ValueError, match=r"user-service@soon:good.*x@1m:oops"):
        parse_schedule(["user-service@soon:good", "x@1m:oops", "user-service@1m:good"])


def test_serve_rejects_a_schedule_naming_a_service_not_simulated() -> None:
    from typer.testing import CliRunner

    from releasehealth.cli import app

    result = CliRunner().invoke(app, ["simulate", "--serve", "--services", "1", "--schedule", "cart-service@1m:good"])
    assert result.exit_code == 1
    assert "schedule names services not simulated: ['cart-service']" in result.output


def test_bad_release_multiplies_the_error_ratio_and_deploys_with_counters_at_zero() -> None:
    live = LiveFleet(1, parse_schedule(["user-service@10s:error_ratio:5"]), speed=1.0)
    service = live.services[0]
    initial, bad = service.releases
    assert bad.error_ratio == pytest.approx(initial.error_ratio * 5)
    live.tick(live.start + 5)
    assert sum(service.counters.requests.values()) > 0
    live.tick(live.start + 10.5)  # just past the deploy (datetimes keep microseconds only)
    assert service.release.version == bad.version
    deploys = [doc for index, doc in live.take() if index == "deploys"]
    assert deploys == [{"@timestamp": deploys[0]["@timestamp"], "service": {"name": "user-service", "version": bad.version}, "commit": bad.commit}]


def test_prometheus_config_scrapes_the_target() -> None:
    raw = yaml.safe_load(prometheus_config("sim:9100", "2s"))
    job = raw["scrape_configs"][0]
    assert job["scrape_interval"] == "2s"
    assert job["static_configs"][0]["targets"] == ["sim:9100"]


@dataclass(frozen=True)
class Live:
    metrics_url: str
    prometheus: PrometheusServer
    elasticsearch_url: str
    started: float  # time.monotonic() when the simulator first served: its deploys are scheduled from then
    written_config: Path  # the prometheus.yml the simulator wrote


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """noida-db, a real Prometheus already scraping where the simulator will serve, then `release-health
    simulate --serve` (user-service turns bad BAD_AFTER s in). Prometheus first, the simulator once it has
    tried a first scrape: Prometheus takes up its targets 5 s after it starts, seconds that would otherwise
    come out of the baseline's window."""
    port = free_port()
    scraping = tmp_path / "scrape.yml"
    scraping.write_text(prometheus_config(f"127.0.0.1:{port}", "1s"), encoding="utf-8")
    (tmp_path / "prometheus").mkdir()
    prometheus = start_scraping_prometheus(scraping, tmp_path / "prometheus")
    es = start_elasticsearch(tmp_path / "noida")
    _wait_for(lambda: _scraped(prometheus.url), 60, f"Prometheus did not scrape; see {prometheus.folder}")
    command = [
        str(Path(sys.executable).parent / "release-health"), "simulate", "--serve", "--services", "2",
        "--host", "127.0.0.1", "--port", str(port), "--elasticsearch", es.url,
        "--schedule", f"user-service@{BAD_AFTER * SPEED}s:error_ratio:20", "--schedule", f"order-service@{BAD_AFTER * SPEED}s:good",
        "--speed", str(SPEED), "--prometheus-config", str(tmp_path / "prometheus.yml"), "--scrape-interval", "1s",
    ]
    log = (tmp_path / "simulator.log").open("w")
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its schedule in the log as soon as it starts
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        _wait_for(lambda: _answers(url), 30, f"the simulator did not serve {url}; see {log.name}")
        yield Live(url, prometheus, es.url, time.monotonic(), tmp_path / "prometheus.yml")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        prometheus.stop()
        es.stop()


def test_live_fleet_turns_rollback_after_the_scheduled_bad_release(live: Live) -> None:
    assert 'http_requests_total{code="500",service="user-service"' in requests.get(live.metrics_url, timeout=30).text
    written = yaml.safe_load(live.written_config.read_text(encoding="utf-8"))
    assert written["scrape_configs"][0]["static_configs"][0]["targets"] == [live.metrics_url.split("/")[2]]
    raw = example_config(live.prometheus.url, live.elasticsearch_url)
    raw["policy"].update(SHORT_POLICY)
    catalogue = config.parse(raw, "live.yaml")
    wired = wiring.connect(catalogue)
    sources = wired.sources

    time.sleep(max(0.0, live.started + BAD_AFTER - 2 - time.monotonic()))
    before = helpers.evaluate(Wiring(catalogue, sources), "user-service")
    assert before.recommendation.action is not Action.ROLLBACK, before.recommendation.reason

    after = _poll_until_rollback(catalogue, sources, deadline=live.started + BAD_AFTER + 90)  # a limit against a hang
    assert after.recommendation.action is Action.ROLLBACK, [v.reason for v in after.score.verdicts] if after.score else after.recommendation.reason
    assert after.recommendation.candidate != before.recommendation.candidate
    assert after.recommendation.baseline == before.recommendation.candidate
    # The good release deployed at the same instant is judged on the same windows, and passes them.
    good = helpers.evaluate(Wiring(catalogue, sources), "order-service")
    assert good.recommendation.action is not Action.ROLLBACK, good.recommendation.reason
    assert good.recommendation.baseline != good.recommendation.candidate

    client = Elasticsearch(live.elasticsearch_url)
    deploys = client.search(index="deploys", query={"term": {"service.name": "user-service"}})["hits"]["hits"]
    assert [d["_source"]["service"]["version"] for d in deploys] == [after.recommendation.candidate]
    assert client.count(index="logs-user-service")["count"] > 0
    client.close()


def _poll_until_rollback(catalogue: config.Catalogue, sources: Sources, deadline: float) -> Evaluation:
    while True:
        evaluation = helpers.evaluate(Wiring(catalogue, sources), "user-service")
        if evaluation.recommendation.action is Action.ROLLBACK or time.monotonic() > deadline:
            return evaluation
        time.sleep(POLL_SECONDS)


def _scraped(prometheus_url: str) -> bool:
    """Whether Prometheus has tried its target at least once (it answers "down" until the simulator serves)."""
    try:  # polled by _wait_for: a slow or refused answer is "not yet", and the wait's own limit decides
        targets = requests.get(prometheus_url + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    except requests.RequestException:
        return False
    return bool(targets) and not targets[0]["lastScrape"].startswith("0001-")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _wait_for(condition, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.2)
