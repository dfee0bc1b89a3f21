"""The package layering (docs/design.md): ``cost`` is a leaf (it imports nothing from ``prp``),
``sorters`` imports neither ``prp`` nor ``cost``, and no cycle runs through the imports of the
product code (``prp``, ``sorters``, ``cost``): every import counts, at the top of a module, inside
a function (a lazy one) or under ``if TYPE_CHECKING:``. No module imports another module's
private (underscore) names. The layers, top down: the facade (``Reranker``) over the engine,
the engine over the configuration, the configuration over the cost planner, the planner over
the scheduler, the scheduler over the sans-IO sorters and ``cost``."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("prp", "sorters", "cost")


def module_files() -> dict[str, Path]:
    """Every product module by dotted name (a package by its ``__init__``)."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            modules[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = path
    return modules


def imports_of(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """Every import in the module (any depth): (imported module, names taken, line)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Each product module's imports of other product modules: ``from a import b`` is an import
    of the module ``a.b`` when there is one, else of ``a``."""
    files = module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for module, names, _ in imports_of(name, path):
            subs = {f"{module}.{n}" for n in names} & files.keys()
            targets = subs if names and len(subs) == len(names) else subs | {module}
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """One closed path for every back edge found by a depth-first walk (none: no cycle)."""
    state: dict[str, str] = {}
    found: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                found.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module not in seen:
            seen.add(module)
            todo += graph.get(module, ())
    return False


@pytest.mark.parametrize(("package", "forbidden"),
                         [("cost", {"prp", "sorters"}), ("sorters", {"prp", "cost"})])
def test_lower_layers_import_nothing_above_them(package, forbidden):
    files = {name: path for name, path in module_files().items() if name.split(".")[0] == package}
    taken = {(name, module, line) for name, path in files.items()
             for module, _, line in imports_of(name, path) if module.split(".")[0] in forbidden}
    assert taken == set()


#: Cycles left on purpose, each with its reason; a cycle not listed here fails, and so does an
#: entry that no longer is one (strike it when its cycle is opened). None runs through the
#: ranking layers (facade, engine, configuration, planner, scheduler, sorters, cost).
LEFT: dict[frozenset[str], str] = {}


def test_no_import_cycle_in_the_product_code():
    found = {frozenset(cycle) for cycle in cycles_in(import_graph())}
    assert found - LEFT.keys() == set()  # a new cycle
    assert LEFT.keys() - found == set()  # opened: strike it from LEFT


def test_the_cycle_finder_finds_a_cycle():
    """The walk itself, on a graph with one cycle two steps from its start (a -> b -> c -> b)."""
    assert cycles_in({"a": {"b"}, "b": {"c"}, "c": {"b", "d"}, "d": set()}) == [["b", "c", "b"]]
    assert cycles_in({"a": {"b"}, "b": set()}) == []


def test_the_walk_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "prp.planner" in graph["prp.config"]  # imported inside Config.sorter_for
    assert "sorters._base" in graph["sorters"]  # from ._base import ...


@pytest.mark.parametrize(("upper", "lower"), [
    ("prp.reranker", "prp.engine"), ("prp.engine", "prp.config"), ("prp.config", "prp.planner"),
    ("prp.planner", "prp.scheduler"), ("prp.scheduler", "sorters"), ("prp.scheduler", "cost.ledger")])
def test_the_layers_point_down(upper, lower):
    """Each layer uses the one below it, and nothing below reaches back up."""
    graph = import_graph()
    assert reaches(graph, upper, lower)
    assert not reaches(graph, lower, upper)


def test_the_planner_never_runs_the_public_api():
    """The planner predicts through the scheduler and the sans-IO sorters, never through a
    Reranker, an Engine or the grid (which run engines)."""
    graph = import_graph()
    for above in ("prp.reranker", "prp.engine", "prp.grid", "prp"):
        assert not reaches(graph, "prp.planner", above)


#: Private names still taken across modules (strike an entry when it goes).
PRIVATE_LEFT: set[tuple[str, str, str]] = set()


def test_no_module_imports_private_names_of_another():
    files = module_files()
    taken = {(name, module, n) for name, path in files.items()
             for module, names, _ in imports_of(name, path)
             for n in names if n.startswith("_") and not n.startswith("__") and module in files}
    assert taken == PRIVATE_LEFT
    assert not any(name.startswith(("prp.engine", "prp.reranker", "prp.planner", "prp.grid", "prp.config"))
                   for name, _, _ in taken)
