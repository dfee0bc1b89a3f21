"""A replay set cut short (a copy interrupted, a disk filled) is bad input: one line naming the
file, exit 2, never a traceback (prp.oracles.replay.read_replay)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prp.oracles.replay import read_replay

REAL = Path(__file__).resolve().parents[1] / "bench" / "results" / "replay-qwen1.5b-dl19-d20.json.gz"


@pytest.fixture(scope="module")
def whole() -> bytes:
    data = REAL.read_bytes()
    assert read_replay(REAL)["queries"]  # the real set reads whole
    return data


def test_every_cut_of_a_real_replay_set_is_one_value_error_naming_the_file(tmp_path, whole):
    """Cut at every 17th byte offset and at each of the last 40 (the gzip trailer): each read
    fails the same clear way."""
    path = tmp_path / "cut.json.gz"
    kinds = set()
    for offset in sorted(set(range(0, len(whole), 17)) | set(range(len(whole) - 40, len(whole)))):
        path.write_bytes(whole[:offset])
        with pytest.raises(ValueError) as caught:
            read_replay(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: not a replay set") and "\n" not in message, (offset, message)
        kinds.add(type(caught.value.__cause__).__name__)
    assert "EOFError" in kinds  # the cut that used to escape as a traceback


@pytest.fixture
def data_dir(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    hits = [{"qid": "q", "docid": d, "rank": r + 1, "score": 9.0 - r, "content": f"text {d}"}
            for r, d in enumerate(["d0", "d1", "d2"])]
    (data / "bm25-top100.json").write_text(json.dumps([{"query": "the query", "hits": hits}]))
    (data / "qrels.txt").write_text("q 0 d0 1\n")
    return data


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.25, 0.5, 0.9, 0.999])
def test_prp_simulate_on_a_cut_replay_set_exits_2_naming_the_file(tmp_path, capsys, whole, data_dir,
                                                                   fraction):
    from prp.cli import main

    path = tmp_path / "cut.json.gz"
    path.write_bytes(whole[: int(len(whole) * fraction)])
    assert main(["simulate", "--data", str(data_dir), "--judge", f"replay:path={path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "not a replay set" in err


def test_prp_rerank_on_a_cut_replay_set_in_a_real_process_prints_no_traceback(tmp_path, whole):
    path = tmp_path / "cut.json.gz"
    path.write_bytes(whole[: len(whole) // 2])
    queries = tmp_path / "q.jsonl"
    candidates = [{"docid": d, "text": f"text {d}"} for d in ("a", "b")]
    queries.write_text(json.dumps({"qid": "q", "query": "x", "candidates": candidates}) + "\n")
    done = subprocess.run([sys.executable, "-m", "prp.cli", "rerank", "--judge", f"replay:path={path}",
                           "--input", str(queries), "--output", "-"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and str(path) in done.stderr
    assert done.stderr.count("\n") == 1
