"""The package layering: ``cost`` is a leaf (it imports nothing from ``prp``), and ``sorters``
imports neither ``prp`` nor ``cost``."""

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
