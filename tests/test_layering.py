"""The import rules between the layers (the pure core, scoring and queries; the collectors; the front ends), checked
by parsing every module of the product (and the benchmarks)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from testing.configs import ROOT

# Folder -> its place in the one import namespace (pyproject's package-dir).
PACKAGES = {
    "releasehealth": "releasehealth", "collectors": "releasehealth.collectors", "queries": "releasehealth.queries",
    "scoring": "releasehealth.scoring", "dashboard": "releasehealth.dashboard", "simulator": "releasehealth.simulator",
}
CLIENT_LIBRARIES = {"prometheus_api_client", "elasticsearch", "requests", "urllib3", "httpx"}
IO_MODULES = {"socket", "subprocess", "http", "urllib", "sqlalchemy", "shutil", "os", "pathlib"}
# What the pure layers may use of the core: its types, its errors, its formatting.
TYPES = {"releasehealth.model", "releasehealth.verdicts", "releasehealth.errors", "releasehealth.format"}
# The shells over the core (the CLI is a package of them; the dashboard is a layer of its own).
FRONT_ENDS = ("releasehealth.cli", "releasehealth.api")


def _imports(path: Path, name: str) -> set[str]:
    """The dotted names a module imports (relative imports resolved against its package)."""
    imports = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imports |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join(name.split(".")[: -node.level] + [node.module])
            # `from package import module` imports the module: count it, as well as the package.
            imports |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return imports


def _modules() -> dict[str, set[str]]:
    """Module name -> the dotted names it imports (absolute)."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))
            found[name] = _imports(path, name)
    return found


def _is_product(name: str) -> bool:
    return name == "releasehealth" or name.startswith("releasehealth.")


def _resolved(found: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each imported name as the longest module of the product it names (`from releasehealth.model import
    Series` imports releasehealth.model; `from releasehealth.queries import promql`, releasehealth.queries.promql)."""
    def module_of(name: str) -> str:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in found:
                return ".".join(parts[:end])
        return name if not _is_product(name) else parts[0]

    return {module: {module_of(i) for i in imports} for module, imports in found.items()}


MODULES = _resolved(_modules())


def _importers(prefix: str) -> set[str]:
    return {m for m, imports in MODULES.items() if any(i == prefix or i.startswith(prefix + ".") for i in imports)}


def layer(name: str) -> str:
    """The layer a module belongs to: types, config, collectors, queries, scoring, core, frontends, dashboard,
    simulator; a library's top-level name for anything else."""
    parts = name.split(".")
    if parts[0] != "releasehealth":
        return parts[0]
    if len(parts) == 1 or name in TYPES:
        return "types"
    if parts[1] in ("collectors", "queries", "scoring", "dashboard", "simulator", "config"):
        return parts[1]
    return "frontends" if name in FRONT_ENDS or name.startswith(("releasehealth.cli.", "releasehealth.api.")) else "core"


def test_the_layout_has_every_layer() -> None:
    for package in PACKAGES.values():
        assert any(m.startswith(package) for m in MODULES), package


@pytest.mark.parametrize("pure", ["scoring", "queries"])
def test_pure_layers_do_no_io_use_no_client_library_and_only_the_core_types(pure: str) -> None:
    for module, imports in MODULES.items():
        if layer(module) != pure:
            continue
        libraries = {i.split(".")[0] for i in imports if not _is_product(i)}
        assert not libraries & (CLIENT_LIBRARIES | IO_MODULES | {"streamlit", "typer", "rich"}), module
        product = {layer(i) for i in imports if _is_product(i)}
        assert product <= {"types", pure}, (module, product)  # scoring and queries do not import each other
        path = ROOT / pure / module.removeprefix(f"releasehealth.{pure}").lstrip(".").replace(".", "/")
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        assert "open(" not in path.read_text(), module


# The live simulator writes logs into Elasticsearch, as the services it plays would: a producer of data,
# not a reader of it, so it is the one module outside the collectors allowed a client library.
PRODUCERS = {"releasehealth.simulator.live"}


def test_only_collectors_import_client_libraries() -> None:
    for library in CLIENT_LIBRARIES:
        assert {layer(m) for m in _importers(library) - PRODUCERS} <= {"collectors"}, library


def test_only_the_wiring_opens_the_real_collectors() -> None:
    for adapter in ("releasehealth.collectors.prometheus", "releasehealth.collectors.elasticsearch"):
        assert {m for m in _importers(adapter) if layer(m) != "collectors"} <= {"releasehealth.wiring"}, adapter


def test_the_statistics_are_entered_through_the_scoring_package_only() -> None:
    outside = {m: imports for m, imports in MODULES.items() if layer(m) != "scoring"}
    for module, imports in outside.items():
        deep = {i for i in imports if i.startswith("releasehealth.scoring.")}
        assert not deep, (module, deep)
    # The backtest re-judges one metric of a judged release with other tolerances (scoring.reclassify).
    assert {m for m, imports in outside.items() if "releasehealth.scoring" in imports} <= {
        "releasehealth.evaluate", "releasehealth.timeline", "releasehealth.backtest",
    }


def test_nothing_in_the_core_or_the_collectors_imports_the_simulator() -> None:
    importers = _importers("releasehealth.simulator")
    assert {layer(m) for m in importers} <= {"simulator", "frontends", "dashboard"}, importers
    assert all(m.startswith("releasehealth.cli") for m in importers if layer(m) == "frontends"), importers


def test_only_the_dashboard_imports_streamlit() -> None:
    assert {layer(m) for m in _importers("streamlit")} <= {"dashboard"}


def test_only_the_cli_imports_typer_and_rich() -> None:
    assert all(m.startswith("releasehealth.cli") for m in _importers("typer") | _importers("rich"))


def test_the_dashboard_goes_through_the_core_only() -> None:
    for module, imports in MODULES.items():
        if layer(module) == "dashboard":
            assert not {layer(i) for i in imports} & {"collectors", "scoring", "queries"}, module


def test_only_the_store_talks_sql_and_only_the_api_serves_http() -> None:
    assert _importers("sqlalchemy") <= {"releasehealth.store"}
    assert all(m.startswith("releasehealth.api") for m in _importers("fastapi") | _importers("uvicorn"))
    # Streamlit serves the dashboard as a Starlette app; its one middleware is the dashboard's server module.
    assert _importers("starlette") <= {"releasehealth.dashboard.server"} | {m for m in MODULES if m.startswith("releasehealth.api")}


def _cycle(edges: dict[str, set[str]]) -> list[str]:
    """A cycle in the directed graph `edges`, as the list of its nodes; [] when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for following in sorted(edges.get(node, ())):
            if state.get(following) == 1:
                return stack[stack.index(following):] + [following]
            if following not in state and (found := visit(following)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_cycle_between_the_layers() -> None:
    edges: dict[str, set[str]] = {}
    for module, imports in MODULES.items():
        edges.setdefault(layer(module), set()).update(layer(i) for i in imports if _is_product(i) and layer(i) != layer(module))
    assert _cycle(edges) == []


def test_no_import_cycle_between_modules() -> None:
    known = set(MODULES)
    edges = {m: {i for i in imports if i in known and i != m} for m, imports in MODULES.items()}
    # A package imports its own modules in its __init__ (the public names): that is no cycle of design.
    edges = {m: {i for i in targets if not i.startswith(m + ".")} for m, targets in edges.items()}
    assert _cycle(edges) == []


def test_the_test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) == []


def test_benchmarks_import_no_test_module() -> None:
    for path in (ROOT / "benchmarks").glob("*.py"):
        imports = _imports(path, f"benchmarks.{path.stem}")
        assert not {i for i in imports if i == "tests" or i.startswith("tests.")}, path.name


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    """`release-health --help` and a typo's usage error must come back at once: the libraries of the
    commands that judge, serve or store are imported by those commands when they run."""
    heavy = ("scipy", "elasticsearch", "sqlalchemy", "streamlit", "plotly", "fastapi", "uvicorn", "drain3", "pandas")
    probe = f"import sys, releasehealth.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_judging_a_release_does_not_load_scipy_stats() -> None:
    """scipy.stats takes most of a second to import and builds docstrings for every distribution: the
    judge reads its tails from scipy.special (scoring.distributions), so `evaluate` starts without it."""
    probe = "import sys, releasehealth.evaluate, releasehealth.scoring.kayenta; print('scipy.stats' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"
