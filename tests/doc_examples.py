"""The examples of README.md and docs/, for the tests that run them as written.

An **example** is a fenced block whose language is ``python`` or ``bash`` (``sh``, ``shell``,
``console`` are refused: write ``bash``). Output is fenced as ``text`` (or ``json``) and never run.
Marks are HTML comments on the lines right above a block (invisible on the rendered page):

* ``<!-- example: NAME -->`` names the block: a test of its own runs it (``run_doc_example``,
  ``doc_commands``) and checks what it computed; the generic runner leaves it to that test.
* ``<!-- not-run: REASON -->`` - the block cannot run in the suite (a 1.5B model, a long
  server, an install); ``<!-- not-run-page: REASON -->`` anywhere in a page does so for all of
  its blocks (the benchmark pages, whose commands take hours). Marks are counted: keep them few.
* ``<!-- slow: REASON -->`` - the block runs in ``pytest -m slow`` only (CI runs it once).

Rules of the runner (tests/test_docs_examples.py): the blocks of one page run in page order in
one fresh directory (a page is a session: a later block may read a file an earlier one wrote),
beside a ``shared`` link to the checkout's ``../shared`` and a ``bench`` link to its ``bench/``,
so ``../shared/data/...`` and ``bench/results/...`` resolve as in a checkout. Python blocks run
in-process in a fresh namespace; bash blocks run with ``bash -euo pipefail``, this checkout first
on ``PYTHONPATH`` and this interpreter's ``bin`` first on ``PATH``, in a process group that is
killed afterwards (a server started with ``&`` never outlives its block). A block that starts
``prp serve`` gets a free port in place of 8000.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = ("python", "bash")
REFUSED = ("sh", "shell", "console", "shell-session", "py", "python3", "pycon")
_FENCE = re.compile(r"^```([\w-]*)[^\n]*$")
_MARK = re.compile(r"^<!--\s*(example|not-run|not-run-page|slow)\s*:\s*(.*?)\s*-->\s*$")


def doc_files() -> list[Path]:
    """README.md and every page under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marks: dict[str, str]  # example / not-run / slow -> name or reason

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in RUNNABLE

    @property
    def name(self) -> str | None:
        return self.marks.get("example")


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with the marks right above it (a page mark on every block)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page_marks = {m.group(1): m.group(2) for line in lines if (m := _MARK.match(line))
                  and m.group(1) == "not-run-page"}
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"{path}:{start + 1}: a code fence that is never closed")
        marks = dict(page_marks)
        j = start - 1
        while j >= 0 and (m := _MARK.match(lines[j])):
            marks[m.group(1)] = m.group(2)
            j -= 1
        found.append(Block(path, start + 1, fence.group(1), "\n".join(lines[start + 1:end]) + "\n", marks))
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in blocks(path)]


def marks(path: Path) -> list[tuple[int, str, str]]:
    """``(line, kind, text)`` of every mark in ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(n, m.group(1), m.group(2)) for n, line in enumerate(lines, 1) if (m := _MARK.match(line))]


def named(name: str) -> Block:
    found = [b for b in all_blocks() if b.name == name]
    if len(found) != 1:
        raise LookupError(f"{len(found)} blocks marked <!-- example: {name} --> in README.md and docs/")
    return found[0]


def run_doc_example(name: str, monkeypatch) -> dict:
    """Execute the python example ``name`` from the checkout's root; return its global names."""
    block = named(name)
    assert block.lang == "python", f"{block.where}: example {name!r} is not a python block"
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": f"doc_{name}"}
    exec(compile(block.code, block.where, "exec"), namespace)
    return namespace


def doc_commands(name: str) -> list[list[str]]:
    """The command lines of the bash example ``name``: continuations joined, comments dropped,
    each split like a shell would."""
    block = named(name)
    assert block.lang == "bash", f"{block.where}: example {name!r} is not a bash block"
    joined = block.code.replace("\\\n", " ")
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]
