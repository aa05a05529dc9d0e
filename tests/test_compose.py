"""docker-compose.yml and the Dockerfile, checked for structure (no Docker engine runs here): every service
can start, is reachable and reports its health, and every file they name exists and is valid."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from releasehealth import config
from releasehealth.simulator.live import DEFAULT_SCHEDULE, parse_schedule

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
EXPECTED = {"elasticsearch", "prometheus", "simulator", "api", "dashboard", "watch"}
PUBLISHED = {"api", "dashboard"}  # what a user opens; the sources stay on compose's own network


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _published(service: dict) -> set[int]:
    """The container ports a service publishes ("[ADDRESS:]HOST:CONTAINER")."""
    return {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}


def _bind_sources(service: dict) -> list[Path]:
    mounts = [str(v).split(":")[0] for v in service.get("volumes", [])]
    return [ROOT / m for m in mounts if m.startswith((".", "/"))]


def test_compose_runs_the_whole_stack() -> None:
    assert set(SERVICES) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_service_has_an_image_and_a_healthcheck(name: str) -> None:
    service = SERVICES[name]
    assert service.get("image") or service.get("build")
    check = service["healthcheck"]
    assert check["test"] and check["interval"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_file_a_service_names_exists(name: str) -> None:
    service = SERVICES[name]
    for source in _bind_sources(service):
        assert source.exists(), f"{name} mounts {source}, which does not exist"
    build = service.get("build")
    if build:
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()
    for dependency in service.get("depends_on", {}):
        assert dependency in SERVICES


def test_dockerfile_copies_what_exists_and_runs_as_a_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    assert re.search(r"^USER (?!root)\S+", text, re.MULTILINE)
    assert "pip install ." in text


def test_the_config_mounted_into_the_app_loads() -> None:
    for name in ("api", "dashboard"):
        command = SERVICES[name]["command"]
        mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES[name]["volumes"] if v.startswith(".")}
        catalogue = config.load(ROOT / mounted[_option(command, "-c")])
        assert catalogue.prometheus.url == "http://prometheus:9090"
        assert catalogue.elasticsearch.url == "http://elasticsearch:9200"


def test_the_config_lists_every_service_the_simulator_runs_and_the_schedule_fits() -> None:
    command = SERVICES["simulator"]["command"]
    catalogue = config.load(ROOT / "deploy" / "release-health.yaml")
    count = int(_option(command, "--services"))
    assert len(catalogue.services) == count
    scheduled = {r.service for r in parse_schedule(DEFAULT_SCHEDULE)}
    assert scheduled <= {s.name for s in catalogue.services}


def test_only_the_dashboard_and_the_api_are_published_and_on_loopback_by_default() -> None:
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == PUBLISHED
    for name in PUBLISHED:
        for port in SERVICES[name]["ports"]:
            address = str(port).rsplit(":", 2)[0]
            assert address == "${RELEASE_HEALTH_BIND:-127.0.0.1}", f"{name} publishes {port}"


def test_the_api_token_has_no_default() -> None:
    token = SERVICES["api"]["environment"]["RELEASE_HEALTH_API_TOKEN"]
    # ${VAR:?message}: compose refuses to start without it, instead of serving writes behind a known token.
    assert re.fullmatch(r"\$\{RELEASE_HEALTH_API_TOKEN:\?[^}]+\}", token), token


def test_the_simulator_keeps_off_node_exporters_port() -> None:
    assert _option(SERVICES["simulator"]["command"], "--port") != "9100"


def test_prometheus_scrapes_the_simulator_service_on_its_port() -> None:
    mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["prometheus"]["volumes"] if v.startswith(".")}
    path = ROOT / mounted["/etc/prometheus/prometheus.yml"]
    raw = yaml.safe_load(path.read_text())
    targets = [t for job in raw["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    simulator, watch = SERVICES["simulator"], SERVICES["watch"]
    port, metrics = int(_option(simulator["command"], "--port")), int(_option(watch["command"], "--metrics-port"))
    assert targets == [f"simulator:{port}", f"watch:{metrics}"]
    assert f"localhost:{metrics}/metrics" in " ".join(watch["healthcheck"]["test"])
    assert _option(watch["command"], "--metrics-host") == "0.0.0.0" and "ports" not in watch


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run the tests with ./dev test, which installs it")
    result = subprocess.run([promtool, "check", "config", str(ROOT / "deploy" / "prometheus.yml")], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_app_ports_match_their_commands_and_healthchecks() -> None:
    for name in ("api", "dashboard", "simulator"):
        service = SERVICES[name]
        port = int(_option(service["command"], "--port"))
        assert name not in PUBLISHED or port in _published(service), name
        assert f"localhost:{port}/" in " ".join(service["healthcheck"]["test"]), name
    assert _option(SERVICES["api"]["command"], "--host") == "0.0.0.0"
    assert SERVICES["dashboard"]["environment"]["STREAMLIT_SERVER_ADDRESS"] == "0.0.0.0"


def test_elasticsearch_is_single_node_with_security_documented() -> None:
    environment = SERVICES["elasticsearch"]["environment"]
    assert "discovery.type=single-node" in environment
    assert "xpack.security.enabled=false" in environment
    assert "api_key_env" in (ROOT / "docker-compose.yml").read_text()
