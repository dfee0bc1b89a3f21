"""The package layering: ``cost`` is a leaf (it imports nothing from ``prp``), ``sorters``
imports neither ``prp`` nor ``cost``, and no cycle runs through the modules' top-level imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_packages(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(("package", "forbidden"),
                         [("cost", {"prp", "sorters"}), ("sorters", {"prp", "cost"})])
def test_lower_layers_import_nothing_above_them(package, forbidden):
    assert imported_packages(package) & forbidden == set()


def top_level_imports() -> dict[str, set[str]]:
    """Each ``prp`` module's imports of other ``prp`` modules made at import time (module top
    level; imports inside functions and ``if TYPE_CHECKING:`` blocks are deferred)."""
    modules: dict[str, set[str]] = {}
    for path in (ROOT / "prp").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        modules[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = set()
    for name in modules:
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                found = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
                found = subs if len(subs) == len(node.names) else subs | {node.module}
            else:
                continue
            modules[name] |= {m for m in found if m in modules and m != name}
    return modules


def test_no_import_cycle_among_prp_modules():
    graph, state, cycles = top_level_imports(), {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
    assert "prp.planner" not in graph["prp.reranker"]  # the planner is imported when "auto" asks
