"""The import rules of DESIGN §2, checked by parsing every module of the product."""

from __future__ import annotations

import ast

import pytest

from testing.configs import ROOT

# Folder -> its place in the one import namespace (pyproject's package-dir).
PACKAGES = {
    "releasehealth": "releasehealth", "collectors": "releasehealth.collectors", "queries": "releasehealth.queries",
    "scoring": "releasehealth.scoring", "dashboard": "releasehealth.dashboard", "simulator": "releasehealth.simulator",
}
LAYERS = ("collectors", "queries", "scoring", "dashboard", "simulator")
CLIENT_LIBRARIES = {"prometheus_api_client", "elasticsearch", "requests", "urllib3", "httpx"}
IO_MODULES = {"socket", "subprocess", "http", "urllib", "sqlalchemy", "shutil", "os", "pathlib"}


def _modules() -> dict[str, set[str]]:
    """Module name -> the dotted names it imports (absolute)."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            name = ".".join((package, *path.relative_to(ROOT / folder).with_suffix("").parts))
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imports = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imports |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imports.add(node.module)
            found[name] = imports
    return found


MODULES = _modules()


def _importers(prefix: str) -> set[str]:
    return {m for m, imports in MODULES.items() if any(i == prefix or i.startswith(prefix + ".") for i in imports)}


def _top(name: str) -> str:
    """The layer of a module: a mapped folder's name, "releasehealth" for the core, else the top package."""
    parts = name.split(".")
    if parts[0] == "releasehealth" and len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return parts[0]


def test_the_layout_has_every_layer() -> None:
    for package in PACKAGES.values():
        assert any(m.startswith(package) for m in MODULES), package


@pytest.mark.parametrize("layer", ["scoring", "queries"])
def test_pure_layers_do_no_io_and_use_no_client_library(layer: str) -> None:
    allowed_core = {"releasehealth.model", "releasehealth.errors", "releasehealth.format"}
    for module, imports in MODULES.items():
        if _top(module) != layer:
            continue
        tops = {_top(i) for i in imports}
        assert not tops & (CLIENT_LIBRARIES | IO_MODULES | {"streamlit", "typer", "rich", "collectors", "dashboard"}), module
        core = {i for i in imports if _top(i) == "releasehealth"}
        assert core <= allowed_core, (module, core - allowed_core)
        source = (ROOT / (module.removeprefix("releasehealth.").replace(".", "/") + ".py")).read_text()
        assert "open(" not in source, module


# The live simulator writes logs into Elasticsearch, as the services it plays would: a producer of data,
# not a reader of it, so it is the one module outside the collectors allowed a client library.
PRODUCERS = {"releasehealth.simulator.live"}


def test_only_collectors_import_client_libraries() -> None:
    for library in CLIENT_LIBRARIES:
        assert {_top(m) for m in _importers(library) - PRODUCERS} <= {"collectors"}, library


def test_only_the_dashboard_imports_streamlit() -> None:
    assert {_top(m) for m in _importers("streamlit")} <= {"dashboard"}


def test_only_the_cli_imports_typer_and_rich() -> None:
    assert _importers("typer") | _importers("rich") <= {"releasehealth.cli"}


def test_analysis_is_the_one_place_that_touches_collectors_and_scoring() -> None:
    outside = lambda layer, importers: {m for m in importers if _top(m) != layer}  # noqa: E731
    assert outside("collectors", _importers("releasehealth.collectors")) <= {"releasehealth.analysis"}
    assert outside("scoring", _importers("releasehealth.scoring")) <= {"releasehealth.analysis"}


def test_the_dashboard_goes_through_the_core_only() -> None:
    for module, imports in MODULES.items():
        if _top(module) == "dashboard":
            assert not {_top(i) for i in imports} & {"collectors", "scoring", "queries"}, module


def test_only_the_store_talks_sql_and_only_the_api_serves_http() -> None:
    assert _importers("sqlalchemy") <= {"releasehealth.store"}
    assert _importers("fastapi") | _importers("uvicorn") <= {"releasehealth.api"}
