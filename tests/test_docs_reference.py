"""Every public name of ``prp``, ``sorters`` and ``cost`` has a docstring and a reference entry.

Public means: the ``__all__`` of the packages ``prp``, ``prp.oracles``, ``sorters`` and ``cost``,
and the classes and functions defined in the modules the guides send users to (``PUBLIC_MODULES``).
A class's public methods need docstrings too (one inherited from a documented base counts). The
reference pages (docs/reference/*.md) name each of them in a ``::: path`` directive: the public
path (``prp.Reranker``) or the defining one (``prp.reranker.Reranker``), or their module's
directive with the name in its ``members:`` list. Docstrings are read with griffe, as
mkdocstrings renders them (so an attribute's docstring is the string under its assignment).
"""

from __future__ import annotations

import importlib
import re

import pytest

griffe = pytest.importorskip("griffe")

from doc_examples import ROOT  # noqa: E402

PACKAGES_ALL = ("prp", "prp.oracles", "sorters", "cost")
PUBLIC_MODULES = ("prp.engine", "prp.data", "prp.evaluate", "prp.datasets", "prp.adapters.pyterrier",
                  "prp.adapters.langchain", "prp.adapters.llamaindex", "cost.calibrate", "prp.shape_text")
# Framework plumbing a subclass must define but a user never calls.
INTERNAL_METHODS = {"PRPRerank.class_name"}


@pytest.fixture(scope="module")
def loader():
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    for package in ("prp", "sorters", "cost"):
        loader.load(package)
    loader.resolve_aliases(external=False, implicit=False)
    return loader


def _get(loader, path: str):
    return loader.modules_collection.get_member(path)


def _target(obj):
    return obj.final_target if obj.is_alias else obj


def public_names(loader) -> dict[str, object]:
    """``public path -> griffe object`` of every public name."""
    names: dict[str, object] = {}
    for package in PACKAGES_ALL:
        module = _get(loader, package)
        exported = module.exports
        assert exported, f"{package} has no __all__"
        for name in exported:
            if name not in module.members:  # imported on first use (prp.oracles' LLM backends)
                lazy = importlib.import_module(package).LLM_BACKENDS[name][0]
                names[f"{package}.{name}"] = _get(loader, f"{lazy}.{name}")
                continue
            names[f"{package}.{name}"] = _target(module.members[name])
    for path in PUBLIC_MODULES:
        module = _get(loader, path)
        for name, member in module.members.items():
            if name.startswith("_") or member.is_alias or not (member.is_class or member.is_function):
                continue
            names[f"{path}.{name}"] = member
    return names


def _documented(obj) -> bool:
    return bool(obj.docstring and obj.docstring.value.strip())


def _inherited_doc(cls, name: str) -> bool:
    for base in cls.mro():
        member = base.members.get(name)
        if member is not None and _documented(_target(member)):
            return True
    return False


def test_every_public_name_and_method_has_a_docstring(loader):
    missing = []
    for path, obj in public_names(loader).items():
        if not _documented(obj):
            missing.append(path)
        if obj.is_class:
            for name, member in obj.members.items():
                if (name.startswith("_") or member.is_alias or not member.is_function
                        or f"{obj.name}.{name}" in INTERNAL_METHODS):
                    continue
                if not _documented(member) and not _inherited_doc(obj, name):
                    missing.append(f"{path}.{name}")
    assert not missing, f"public names without a docstring: {missing}"


def _directives() -> tuple[set[str], dict[str, set[str]]]:
    """``::: path`` directives of the reference pages, and the ``members:`` listed under each."""
    objects: set[str] = set()
    members: dict[str, set[str]] = {}
    for page in sorted((ROOT / "docs" / "reference").glob("*.md")):
        current = None
        in_members = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if m := re.match(r"^::: ([\w.]+)\s*$", line):
                current, in_members = m.group(1), False
                objects.add(current)
                members.setdefault(current, set())
            elif current and re.match(r"^\s+members:\s*$", line):
                in_members = True
            elif current and in_members and (m := re.match(r"^\s+- (\w+)\s*$", line)):
                members[current].add(m.group(1))
            elif line.strip() and not line.startswith(" "):
                current, in_members = None, False
    return objects, members


def test_every_public_name_is_in_the_reference(loader):
    objects, members = _directives()
    paths: dict[str, set[str]] = {}  # one object, exported under several paths, is documented once
    for path, obj in public_names(loader).items():
        paths.setdefault(obj.path, {obj.path}).add(path)
    missing = []
    for canonical, named in paths.items():
        listed = any(p.rsplit(".", 1)[1] in members.get(p.rsplit(".", 1)[0], set()) for p in named)
        if not (named & objects or listed):
            missing.append(sorted(named - {canonical})[0] if named - {canonical} else canonical)
    assert not missing, f"public names missing from docs/reference/*.md (add a '::: path' line): {missing}"


def test_reference_directives_name_real_objects(loader):
    objects, members = _directives()
    for path in objects:
        obj = _get(loader, path)
        for name in members[path]:
            assert name in obj.members, f"docs/reference: {path} has no member {name!r}"


@pytest.mark.parametrize("module", sorted({*PACKAGES_ALL, *PUBLIC_MODULES, "cost.model", "cost.ledger",
                                           "prp.result", "prp.reranker", "prp.types", "sorters._base"}))
def test_docstring_examples_run(module):
    """The ``>>>`` examples the reference shows are executed too."""
    import doctest

    if module.startswith("prp.adapters.") or module == "prp.datasets":
        pytest.importorskip({"pyterrier": "pyterrier", "langchain": "langchain_core", "llamaindex":
                             "llama_index.core", "datasets": "ir_datasets"}[module.rsplit(".", 1)[1]])
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
