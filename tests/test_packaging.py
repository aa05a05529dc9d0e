"""The wheel: built from exactly what the Dockerfile copies, it installs one import package, releasehealth,
holding every layer (the top-level folders mapped into it), the presets and the dashboard, and it works
installed (not only editable)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from testing.configs import ROOT

LAYERS = ("collectors", "queries", "scoring", "dashboard", "simulator", "config")


def _copied_by_the_dockerfile() -> list[str]:
    """The sources the Dockerfile copies into the image before `pip install .`."""
    copied = []
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if match := re.match(r"COPY\s+(.+?)\s+\S+$", line.strip()):
            copied += match.group(1).split()
    return copied


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built, without the network, from a copy of what the Dockerfile copies."""
    context = tmp_path_factory.mktemp("context")
    for name in _copied_by_the_dockerfile():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet", "-w", str(out), str(context)],
        check=True, timeout=600, capture_output=True,
    )
    (built,) = out.glob("release_health-*.whl")
    return built


def test_the_wheel_adds_exactly_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        declared = archive.read(info).decode().split()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"releasehealth"}
    assert declared == ["releasehealth"]
    for layer in LAYERS:
        assert f"releasehealth/{layer}/__init__.py" in names, layer
    assert "releasehealth/queries/presets/istio.yaml" in names
    assert "releasehealth/dashboard/app.py" in names and "releasehealth/dashboard/server.py" in names
    assert "releasehealth/dashboard/views/release.py" in names
    assert not [n for n in names if n.startswith(("tests/", "testing/", "benchmarks/"))]


def test_the_installed_wheel_runs_apart_from_the_repository(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        check=True, timeout=600, capture_output=True,
    )
    probe = (
        "import releasehealth, releasehealth.cli, releasehealth.dashboard.data\n"
        "from releasehealth.config import load_preset\n"
        "from releasehealth.simulator import demo\n"
        "assert load_preset('istio').bucket_units == {'latency_buckets': 'milliseconds'}\n"
        "wired = demo.build(7).wire()\n"
        "print(releasehealth.__file__, len(wired.catalogue.services))\n"
    )
    # Run from elsewhere, the wheel's folder first: the repository's sources must not be what is imported.
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    location, services = done.stdout.split()
    assert Path(location).is_relative_to(target) and int(services) == 8
