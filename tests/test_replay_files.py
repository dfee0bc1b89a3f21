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


def test_replay_sets_hold_set_and_list_answers(tmp_path):
    """A replay set with the k-wise answers a run asked replays that run: the same rankings and
    prompts at no judge cost; a question it does not hold is a ReplayMiss naming it, and a set
    without such answers refuses k-wise rankers before any prompt."""
    import pytest

    from prp import PerfectOracle, Reranker
    from prp.oracles.base import BackendError
    from prp.oracles.replay import ReplayOracle, with_shaped, write_replay
    from prp.types import ShapedPrompt

    ids = [f"d{i}" for i in range(12)]
    grades = {"q1": {d: (i * 7) % 4 for i, d in enumerate(ids)}}
    docs = [f"passage {i}" for i in range(12)]
    recorded = []

    def keep(inference):
        for p, c in zip(inference.prompts, inference.result.judgments, strict=True):
            recorded.append({"qid": p.qid, "shape": p.shape, "ids": list(p.ids), "order": list(c.order),
                             "probs": None, "parsed": c.parsed})

    from prp.engine import SyncEngine
    for sorter in ("setwise:k=3", "listwise:window=5,step=2"):
        recorded.clear()
        with SyncEngine(Reranker(PerfectOracle(grades), sorter=sorter, k=4), on_inference=keep) as engine:
            live = engine.rank_many([{"qid": "q1", "query": "q", "docs": docs, "doc_ids": ids}])[0]
        pairs = {"model": "perfect", "depth": 12,
                 "queries": [{"qid": "q1", "doc_ids": ids, "margins": [[None] * 12 for _ in ids]}]}
        path = tmp_path / f"{sorter.partition(':')[0]}.json.gz"
        write_replay(path, with_shaped(pairs, recorded))
        replay = ReplayOracle(path)
        assert replay.shapes == ("pair", recorded[0]["shape"])
        again = Reranker(replay, sorter=sorter, k=4).rank_many(
            [{"qid": "q1", "query": "q", "docs": docs, "doc_ids": ids}])[0]
        assert again.doc_ids == live.doc_ids and again.cost.prompts == live.cost.prompts
        shown = tuple(reversed(recorded[0]["ids"]))
        with pytest.raises(BackendError, match="has no .* answer for query 'q1'"):
            replay.choose(ShapedPrompt("q1", "q", recorded[0]["shape"], "t", shown, ("",) * len(shown)))
        write_replay(tmp_path / "pairs.json.gz", pairs)
    with pytest.raises(ValueError, match="does not answer set questions"):
        Reranker(ReplayOracle(tmp_path / "pairs.json.gz"), sorter="setwise:k=3", k=4).rank("q", docs, ids)
    bad = dict(pairs, shaped=[{"qid": "q1", "shape": "set", "ids": ["d1", "d2"], "order": [0, 1]}])
    write_replay(tmp_path / "bad.json.gz", bad)
    with pytest.raises(ValueError, match="shaped answer 1 is not"):
        ReplayOracle(tmp_path / "bad.json.gz")
