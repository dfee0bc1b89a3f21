"""Every python and bash example of README.md and docs/ runs, as written (rules: doc_examples.py).

A page's examples run in page order in one fresh directory; a failing block fails its page's
test with the block's file and line, its output and its error. Named examples are run by their
own tests (which check what they compute); this file checks those tests exist. Marks that keep a
block out of the suite are counted, need a reason, and stay few.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port
from doc_examples import REFUSED, ROOT, Block, all_blocks, blocks, doc_files, marks

# Marks that keep an example out of the default suite: each needs a reason, and they stay few.
MAX_NOT_RUN = 12
BLOCK_SECONDS = 120

# What a block needs installed (extras), by what it contains: skipped with the module's name.
NEEDS = {"prp serve": ("fastapi", "uvicorn", "prometheus_client"), "import cohere": ("cohere",),
         "prp evaluate": ("ir_measures",), "prp.evaluate": ("ir_measures",), "prp bench": ("ir_measures",),
         "prp simulate": ("ir_measures",)}


def _pages() -> list[Path]:
    return [p for p in doc_files() if any(b.runnable for b in blocks(p))]


def _missing(block: Block) -> list[str]:
    wanted = {m for key, mods in NEEDS.items() if key in block.code for m in mods}
    return sorted(m for m in wanted if importlib.util.find_spec(m) is None)


def _workdir(tmp_path: Path) -> Path:
    """A fresh directory where ``../shared`` and ``bench/`` resolve as in the checkout."""
    work = tmp_path / "checkout"
    work.mkdir()
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared", target_is_directory=True)
    (work / "bench").symlink_to(ROOT / "bench", target_is_directory=True)
    return work


def _run_python(block: Block, work: Path) -> str:
    out = io.StringIO()
    old = Path.cwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, block.where, "exec"), {"__name__": "__doc_example__"})
    except Exception as exc:
        raise AssertionError(f"{block.where}: {type(exc).__name__}: {exc}\n--- output ---\n"
                             f"{out.getvalue()}") from exc
    finally:
        os.chdir(old)
    return out.getvalue()


def _run_bash(block: Block, work: Path) -> str:
    code = block.code
    if "prp serve" in code:
        port = str(free_port())
        code = code.replace("--port 8000", f"--port {port}").replace(":8000", f":{port}")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               COLUMNS="100")
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", code], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=BLOCK_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"{block.where}: still running after {BLOCK_SECONDS} s\n{stdout}\n"
                             f"{stderr}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # whatever the block left running (a server with &)
    if proc.returncode != 0:
        raise AssertionError(f"{block.where}: bash exited {proc.returncode}\n--- stdout ---\n{stdout}"
                             f"\n--- stderr ---\n{stderr}")
    return stdout


def _run(block: Block, work: Path) -> str:
    return _run_python(block, work) if block.lang == "python" else _run_bash(block, work)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_of_the_page_runs(page, tmp_path):
    work = _workdir(tmp_path)
    ran, skipped = 0, []
    for block in blocks(page):
        if not block.runnable or block.name or {"not-run", "not-run-page", "slow"} & set(block.marks):
            continue
        missing = _missing(block)
        if missing:
            skipped.append(f"{block.where} needs {', '.join(missing)}")
            break  # later blocks of the session may need what this one makes
        _run(block, work)
        ran += 1
    if skipped:
        pytest.skip("; ".join(skipped) + f" (ran {ran} blocks before it)")


SLOW = [b for b in all_blocks() if b.runnable and "slow" in b.marks and "not-run" not in b.marks]


@pytest.mark.slow
@pytest.mark.parametrize("block", SLOW, ids=lambda b: b.where)
def test_slow_example_runs(block, tmp_path):
    _run(block, _workdir(tmp_path))


def test_examples_are_fenced_to_run_or_as_output():
    """A shell or python block under another fence name would silently never run."""
    wrong = [f"{b.where}: ```{b.lang}" for b in all_blocks() if b.lang in REFUSED]
    assert not wrong, "write ```bash or ```python (or ```text for output): " + ", ".join(wrong)


def test_marks_that_skip_examples_have_reasons_and_are_few():
    found = [(path, line, kind, text) for path in doc_files() for line, kind, text in marks(path)
             if kind in ("not-run", "not-run-page", "slow")]
    vague = [f"{p.relative_to(ROOT)}:{line}" for p, line, _, text in found if len(text.split()) < 3]
    assert not vague, f"a not-run or slow mark must say why (three words at least): {vague}"
    not_run = [f for f in found if f[2] != "slow"]
    assert len(not_run) <= MAX_NOT_RUN, (f"{len(not_run)} not-run marks (at most {MAX_NOT_RUN}): make an "
                                         "example run on the simulated judges or tiny files instead")
    for path, line, kind, _ in found:  # a mark sits right above a runnable block
        if kind == "not-run-page":
            assert any(b.runnable for b in blocks(path)), f"{path}:{line}: a page mark, no examples"
        else:
            assert any(b.line > line and b.line - line <= 3 and b.runnable for b in blocks(path)), \
                f"{path.relative_to(ROOT)}:{line}: a {kind} mark with no python or bash block under it"


def test_named_examples_are_run_by_their_tests():
    names = {b.name for b in all_blocks() if b.name}
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    unused = sorted(n for n in names
                    if f'doc_example("{n}"' not in sources and f'doc_commands("{n}")' not in sources)
    assert not unused, f"named examples no test runs: {unused}"


def test_the_readme_shows_a_rerank_of_own_jsonl_and_stays_short():
    readme = ROOT / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 160
    code = [b for b in blocks(readme) if b.runnable and not b.marks]
    assert any("candidates.jsonl" in b.code and "prp rerank" in b.code for b in code)
    assert any(b.lang == "python" and "Reranker" in b.code for b in code)
