"""The shipped example configuration, pointed at the servers a test or a benchmark started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def example_config(
    url: str, elasticsearch_url: str | None = None, callers: str = "off", **prometheus: object
) -> dict[str, Any]:
    """The shipped example config, pointed at `url` (and at `elasticsearch_url` for logs, if given).

    Callers' lines are not read unless asked (`callers`: hold, rollback or show): noida-db answers a
    full-text `match` across every service's index by scanning each document (about 3.6 s a search on
    the test fleet's 82,000 lines, where Elasticsearch answers from its inverted index in milliseconds),
    so only the tests about callers pay for it."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "release-health.yaml").read_text())
    raw["sources"]["prometheus"].update(url=url, **prometheus)
    if elasticsearch_url:
        raw["sources"]["elasticsearch"] = {
            "url": elasticsearch_url, "index": "logs-{service}", "deploy_index": "deploys", "timeout": "60s",
        }
        raw.setdefault("logs", {})["callers"] = callers
    else:
        raw["sources"].pop("elasticsearch", None)
    return raw


def write_fleet_config(url: str, names: list[str], folder: Path, *, timeout: str, store: bool = False) -> Path:
    """`folder`/release-health.yaml: the example config at `url` with the services `names` on the generic
    preset (and a history store beside it when `store`), as the benchmarks over a backfilled fleet use it."""
    raw = example_config(url, timeout=timeout)
    raw["services"] = [{"name": name, "preset": "generic"} for name in names]
    if store:
        raw["store"] = {"url": f"sqlite:///{folder / 'history.db'}"}
    path = folder / "release-health.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
