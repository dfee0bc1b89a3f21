"""The README's runnable examples, for the tests that run them as written.

An example is the first ```python block after a ``<!-- example: NAME -->`` line in README.md;
it runs from the checkout's root (so ``../shared/data/...`` paths resolve as in the README).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_example(name: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    marker = f"<!-- example: {name} -->"
    if marker not in text:
        raise LookupError(f"README.md has no {marker!r}")
    block = re.search(r"```python\n(.*?)```", text.split(marker, 1)[1], re.S)
    if block is None:
        raise LookupError(f"README.md: no python block after {marker!r}")
    return block.group(1)


def run_readme_example(name: str, monkeypatch) -> dict:
    """Execute example ``name`` from the checkout's root; return its global names."""
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": f"readme_{name}"}
    exec(compile(readme_example(name), f"README.md[{name}]", "exec"), namespace)
    return namespace


def readme_commands(name: str) -> list[list[str]]:
    """The command lines of example ``name`` (a ```bash block): continuations joined, comments
    dropped, each split like a shell would."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text.split(f"<!-- example: {name} -->", 1)[1], re.S)
    if block is None:
        raise LookupError(f"README.md: no bash block after example {name!r}")
    joined = block.group(1).replace("\\\n", " ")
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]
