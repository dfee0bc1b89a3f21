"""Reranking and benchmarking your own data: the loaders exported from ``prp``, and ``prp bench``
/ ``prp simulate`` on any candidates file with qrels (``--input FILE --qrels FILE``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import prp
from prp.cli import main

ROOT = Path(__file__).resolve().parents[1]
LOADERS = {"load_candidates": ('"candidates"', "retrieve_results", "DataError"),
           "load_qrels": ("qid iteration docid grade", "DataError"),
           "load_run_candidates": ("qid Q0 docid rank score tag", "qid<TAB>query", '"docid"'),
           "trec_run_lines": ("qid Q0 docid rank score tag",),
           "mean_measure": ("nDCG@10",), "evaluate_run": ("per_query",)}


def write_own_data(tmp_path, queries: int = 4, docs: int = 12):
    """A candidates JSONL (first stage: worst first) and qrels grading docs by their number."""
    lines, qrels = [], []
    for q in range(queries):
        cands = [{"docid": f"q{q}d{d}", "text": f"passage {d} of query {q}"} for d in range(docs)]
        lines.append(json.dumps({"qid": f"q{q}", "query": f"query {q}", "candidates": cands}))
        qrels += [f"q{q} 0 q{q}d{d} {d * 4 // docs}" for d in range(docs)]
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "qrels.txt").write_text("\n".join(qrels) + "\n")
    return str(tmp_path / "c.jsonl"), str(tmp_path / "qrels.txt")


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_loaders_are_exported_with_their_formats_documented(name):
    assert name in prp.__all__
    doc = getattr(prp, name).__doc__
    for words in LOADERS[name]:
        assert words in doc, (name, words)
    assert "DataError" in prp.__all__ and issubclass(prp.DataError, ValueError)


def test_own_data_reranked_and_scored_with_the_top_level_api(tmp_path):
    candidates, qrels_path = write_own_data(tmp_path)
    requests = prp.load_candidates(candidates)
    qrels = prp.load_qrels(qrels_path)
    first = prp.mean_measure("nDCG@10", {r.qid: list(r.doc_ids) for r in requests}, qrels)
    results = prp.Reranker(prp.PerfectOracle(qrels), k=3).rank_many(requests)
    assert prp.mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels) > first
    assert [prp.load_qrels(qrels_path)[r.qid][r.doc_ids[0]] for r in results] == [3] * 4
    lines = list(prp.trec_run_lines(results[0].qid, results[0].doc_ids))
    assert lines[0].split()[:4] == ["q0", "Q0", results[0].doc_ids[0], "1"] and len(lines) == 12
    with pytest.raises(prp.DataError, match=r"qrels.txt:2: expected 'qid 0 docid grade'"):
        (tmp_path / "qrels.txt").write_text("q0 0 q0d1 1\nq0 q0d2 x\n")
        prp.load_qrels(tmp_path / "qrels.txt")


@pytest.mark.parametrize("command", ["simulate", "bench"])
def test_grid_commands_take_a_candidates_file_with_qrels(tmp_path, capsys, command):
    candidates, qrels = write_own_data(tmp_path)
    out = tmp_path / "report"
    extra = ["--out", str(out)] if command == "bench" else ["--format", "jsonl", "--cache", "on"]
    assert main([command, "--input", candidates, "--qrels", qrels, "--judge", "perfect", "--sorters",
                 "quicksort", "--batch-sizes", "4", "--queries", "3", "--depth", "8", *extra]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    if command == "simulate":
        rows = [json.loads(line) for line in captured.out.splitlines()]
    else:
        data = json.loads((out / "results.json").read_text())
        rows = data["rows"]
        assert data["settings"]["input"] == candidates and data["settings"]["qrels"] == qrels
        assert data["command"].startswith(f"prp bench --input {candidates}")
        assert data["baseline"]["ndcg@10"] < rows[0]["ndcg@10"]
    # 3 queries, the first 8 candidates each: a perfect judge's top 10 is their best order
    qrels_map = prp.load_qrels(qrels)
    best = {f"q{q}": sorted((f"q{q}d{d}" for d in range(8)), key=lambda d: -qrels_map[d[:2]][d])
            for q in range(3)}
    assert len(rows) == 1 and rows[0]["queries"] == 3
    assert rows[0]["ndcg@10"] == round(prp.mean_measure("nDCG@10", best, qrels_map), 4) < 1


@pytest.mark.parametrize("argv, message", [
    (["--sorters", "quicksort"], "give --data DIR (the TREC DL layout), or --input FILE with --qrels QRELS"),
    (["--data", "d", "--input", "c.jsonl"], "not both"),
    (["--input", "c.jsonl"], "--input needs --qrels QRELS"),
])
def test_grid_input_mistakes_are_bad_input(capsys, argv, message):
    assert main(["simulate", *argv]) == 2
    assert message in capsys.readouterr().err


def test_an_empty_candidates_file_is_bad_input(tmp_path, capsys):
    (tmp_path / "c.jsonl").write_text("\n")
    (tmp_path / "q.txt").write_text("q 0 d 1\n")
    assert main(["bench", "--input", str(tmp_path / "c.jsonl"), "--qrels", str(tmp_path / "q.txt"),
                 "--judge", "perfect", "--out", str(tmp_path / "r")]) == 2
    assert "no queries in" in capsys.readouterr().err


def test_dl19_as_a_candidates_file_gives_what_the_dl_layout_gives(dl19_dir, capsys):
    common = ["--queries", "5", "--depth", "30", "--sorters", "quicksort,heapsort", "--batch-sizes", "8",
              "--judge", "noisy", "--format", "jsonl", "--cache", "on"]
    assert main(["simulate", "--data", str(dl19_dir), *common]) == 0
    layout = capsys.readouterr().out
    assert main(["simulate", "--input", str(dl19_dir / "bm25-top100.json"), "--qrels",
                 str(dl19_dir / "qrels.txt"), *common]) == 0
    assert capsys.readouterr().out == layout and len(layout.splitlines()) == 2


def test_a_judge_that_reads_no_qrels_takes_input_and_qrels_too(dl19_dir, capsys):
    """--qrels scores the runs; a recorded real judge (replay) is not handed them."""
    replay = ROOT / "bench" / "results" / "replay-qwen1.5b-dl19-d20.json.gz"
    common = ["--depth", "20", "--queries", "3", "--sorters", "quicksort", "--batch-sizes", "8",
              "--cache", "on", "--judge", f"replay:path={replay}", "--format", "jsonl"]
    assert main(["simulate", "--input", str(dl19_dir / "bm25-top100.json"), "--qrels",
                 str(dl19_dir / "qrels.txt"), *common]) == 0
    row = json.loads(capsys.readouterr().out)
    assert main(["simulate", "--data", str(dl19_dir), *common]) == 0
    assert json.loads(capsys.readouterr().out) == row and 0 < row["ndcg@10"] < 1
