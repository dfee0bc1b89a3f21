"""The core install stays lean: importing prp, its command line, the adapters package and the
ir_datasets reader imports none of the framework extras (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("pyterrier", "jnius", "pandas", "langchain_core", "langchain_classic", "llama_index",
              "ir_datasets")

PROBE = """
import json, sys
import prp, prp.cli, prp.cli.rerank, prp.adapters, prp.adapters._common, prp.datasets
prp.cli.build_parser()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_prp_and_its_cli_import_no_framework():
    assert loaded_after(PROBE).isdisjoint(FRAMEWORKS)


@pytest.mark.parametrize("adapter, framework", [("pyterrier", "pyterrier"), ("langchain", "langchain_core"),
                                                ("llamaindex", "llama_index")])
def test_an_adapter_imports_its_own_framework_only(adapter, framework):
    pytest.importorskip(framework)
    code = PROBE.replace("prp.datasets\n", f"prp.datasets, prp.adapters.{adapter}\n")
    loaded = loaded_after(code)
    assert framework in loaded
    others = {"pyterrier": {"pyterrier", "jnius"}, "langchain_core": {"langchain_core", "langchain_classic"},
              "llama_index": {"llama_index"}}
    assert loaded.isdisjoint(set().union(*(v for k, v in others.items() if k != framework)))
