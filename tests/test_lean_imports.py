"""The core install stays lean: importing prp, its command line, the adapters package and the
ir_datasets reader imports none of the framework extras (checked in a fresh interpreter); an
adapter imports only its own framework, and a missing one is an error naming the extra. Nor do
they import numpy or a judge's libraries: numpy loads when something computes with it (the
active ranker's first round, a latency or judge fit), a judge's libraries when it is built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("pyterrier", "jnius", "pandas", "langchain_core", "langchain_classic", "llama_index",
              "ir_datasets", "fastapi", "uvicorn", "prometheus_client", "redis",  # prp[serve]
              "ray", "pyarrow")  # prp[ray]: imported when a Ray job runs, never by prp.ray's import
HEAVY = ("numpy", "threadpoolctl", "httpx", "torch", "transformers", "llama_cpp", "tokenizers",
         "pytrec_eval", "scipy")  # computing libraries and the LLM judges' own

PROBE = """
import json, sys
import prp, prp.cli, prp.cli.rerank, prp.cli.serve, prp.engine, prp.adapters, prp.adapters._common
import prp.ray, prp.parquet, prp.cli.rerank_ray
import prp.cli.calibrate, prp.cli.calibrate_oracle, prp.latency, cost.calibrate
import prp.datasets
prp.cli.build_parser()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter on this checkout."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def loaded_after(code: str) -> set[str]:
    out = python(code)
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


@pytest.mark.parametrize("adapter, blocked, extra", [("pyterrier", "pyterrier", "pyterrier"),
                                                     ("langchain", "langchain_core", "langchain"),
                                                     ("llamaindex", "llama_index", "llamaindex")])
def test_a_missing_framework_names_the_extra(adapter, blocked, extra):
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            f"try:\n    import prp.adapters.{adapter}\nexcept ImportError as exc:\n    print(exc)\n")
    out = python(code)
    assert f"pip install 'prp[{extra}]'" in out.stdout, out.stdout + out.stderr


def test_dataset_input_without_ir_datasets_names_the_extra():
    code = ("import sys; sys.modules['ir_datasets'] = None\nfrom prp.cli import main\n"
            "sys.exit(main(['rerank', '--dataset', 'msmarco-passage/trec-dl-2019/judged', '--output', '-']))")
    out = python(code)
    assert out.returncode == 2 and "pip install 'prp[datasets]'" in out.stderr, out.stderr


@pytest.mark.parametrize("code", ["import prp", "import sorters", "import prp.engine, prp.cli.serve",
                                  PROBE.rsplit("print", 1)[0]])
def test_imports_load_no_numpy_nor_judge_libraries(code):
    loaded = loaded_after(code + "\nimport json, sys\n"
                          "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_help_loads_no_numpy():
    code = ("import json, sys\nfrom prp.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    pass\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    assert loaded_after(code).isdisjoint(HEAVY)


def test_numpy_loads_on_the_active_rankers_first_round():
    code = ("import json, sys\nfrom sorters import make_sorter, active\n"
            "gen = make_sorter('active', 5, 2)  # options checked: still no numpy\n"
            "before = 'numpy' in sys.modules\nnext(gen)\n"
            "print(json.dumps([before, 'numpy' in sys.modules]))")
    out = python(code)
    assert json.loads(out.stdout) == [False, True], out.stderr  # not before the first round, then loaded
