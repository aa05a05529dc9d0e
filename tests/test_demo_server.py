"""The README's run command: `release-health demo` serves the dashboard; its health endpoint answers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests

from testing.servers import free_port


def test_release_health_demo_serves_the_dashboard(tmp_path: Path) -> None:
    port = free_port()
    script = Path(sys.executable).parent / "release-health"
    log = (tmp_path / "demo.log").open("w")
    process = subprocess.Popen([str(script), "demo", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, health = time.monotonic() + 60, ""
        while time.monotonic() < deadline and health != "ok":
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                health = requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).text
            except requests.RequestException:
                time.sleep(0.3)
        assert health == "ok"
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        process.terminate()  # by PID: `demo` execs Streamlit in place, so this is the server itself
        process.wait(timeout=15)
