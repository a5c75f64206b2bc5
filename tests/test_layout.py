"""The package's layout: no import circles among razn's modules, the version in one place,
type hints shipped."""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path

import razn

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("razn", "envs")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, module: str) -> set[str]:
    """Modules ``path`` imports when it is loaded: module-level statements only (an import
    inside a function runs on call), ``if TYPE_CHECKING:`` blocks skipped."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for statement in node.body if isinstance(node, ast.Try) else [node]:
            if isinstance(statement, ast.Import):
                names |= {alias.name for alias in statement.names}
            elif isinstance(statement, ast.ImportFrom):
                base = package[: len(package) - statement.level + 1] if statement.level else []
                source = ".".join([*base, *([statement.module] if statement.module else [])])
                names.add(source)
                names |= {f"{source}.{alias.name}" for alias in statement.names}
    return names


def import_graph() -> dict[str, set[str]]:
    """Module → the first-party modules loading it loads, parent packages included (importing
    ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first)."""
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        loaded = set()
        for name in imported_names(path, module):
            parts = name.split(".")
            loaded |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        graph[module] = {
            other
            for other in loaded
            if other in modules and other != module and not module.startswith(other + ".")
        }
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_among_the_packages_modules():
    assert circles(import_graph()) == []


def test_the_circle_finder_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_the_graph_sees_parent_packages_and_the_moved_modules():
    graph = import_graph()
    assert "razn.training_config" in graph["razn.run_config"]
    assert "razn.train" not in graph["razn.run_config"]  # the training code stays out
    assert "razn.benchmark.segment" in graph["razn.benchmark.runner"]
    assert "razn.benchmark.runner" not in graph["razn.benchmark.segment"]


def test_the_version_is_written_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("razn") == razn.__version__


def test_type_hints_are_shipped():
    assert (Path(razn.__file__).parent / "py.typed").is_file()
