"""``prp evaluate`` through its real entry points: hand-computed values, DL19 BM25, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from prp.cli import main


def evaluate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """q1 ranks grades 0, 2, 1 and misses a grade-3 passage; q2 ranks its one relevant first;
    q3 has no judgments."""
    run = tmp_path / "tiny.run"
    run.write_text("q1 Q0 d1 1 3.0 x\nq1 Q0 d2 2 2.0 x\nq1 Q0 d3 3 1.0 x\n"
                   "q2 Q0 e1 1 5.0 x\nq2 Q0 e2 2 4.0 x\nq3 Q0 f1 1 1.0 x\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 0\nq1 0 d2 2\nq1 0 d3 1\nq1 0 d4 3\nq2 0 e1 2\nq2 0 e2 0\n")
    return run, qrels


def test_hand_computed_values(capsys, tiny):
    run, qrels = tiny
    code, out, err = evaluate(capsys, str(run), "--qrels", str(qrels), "--format", "json", "--per-query")
    assert code == 0, err
    result = json.loads(out)
    assert result["measures"] == ["nDCG@10", "RR(rel=2)@10", "R(rel=2)@10"] and result["queries"] == 2
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    ideal = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    q1 = result["per_query"]["q1"]
    assert q1["nDCG@10"] == pytest.approx(dcg / ideal)
    assert q1["RR(rel=2)@10"] == pytest.approx(0.5) and q1["R(rel=2)@10"] == pytest.approx(0.5)
    assert result["per_query"]["q2"] == pytest.approx(dict.fromkeys(result["measures"], 1.0))
    assert result["mean"]["nDCG@10"] == pytest.approx((dcg / ideal + 1) / 2)
    assert "1 queries without judgments (skipped)" in err and "q3" in err


def test_rel_and_k_options(capsys, tiny):
    run, qrels = tiny
    code, out, _ = evaluate(capsys, str(run), "--qrels", str(qrels), "--format", "json", "--rel", "1",
                            "--k", "2", "--per-query")
    assert code == 0
    result = json.loads(out)
    assert result["measures"] == ["nDCG@10", "RR(rel=1)@10", "R(rel=1)@2"]
    assert result["per_query"]["q1"]["R(rel=1)@2"] == pytest.approx(1 / 3)  # d2 of d2, d3, d4
    assert result["per_query"]["q1"]["RR(rel=1)@10"] == pytest.approx(0.5)


def test_table_with_per_query_rows(capsys, tiny):
    run, qrels = tiny
    code, out, _ = evaluate(capsys, str(run), "--qrels", str(qrels), "--per-query")
    assert code == 0
    head, q1, q2, mean = out.splitlines()
    assert head.split() == ["query", "nDCG@10", "RR(rel=2)@10", "R(rel=2)@10"]
    assert q1.split()[0] == "q1" and q2.split()[1:] == ["1.0000"] * 3 and mean.startswith("mean (2)")


def test_dl19_bm25(capsys, dl19_dir):
    import ir_measures

    run, qrels = dl19_dir / "bm25.run", dl19_dir / "qrels.txt"
    code, out, err = evaluate(capsys, str(run), "--qrels", str(qrels), "--format", "json", "--k", "100")
    assert code == 0, err
    result = json.loads(out)
    assert result["queries"] == 43
    assert result["mean"]["nDCG@10"] == pytest.approx(0.5058, abs=1e-4)
    measures = [ir_measures.parse_measure(m) for m in result["measures"]]
    direct = ir_measures.calc_aggregate(measures, ir_measures.read_trec_qrels(str(qrels)),
                                        ir_measures.read_trec_run(str(run)))
    for m in measures:
        assert result["mean"][str(m)] == pytest.approx(direct[m], abs=1e-9)


def test_dl19_bm25_in_a_subprocess(dl19_dir):
    proc = subprocess.run([sys.executable, "-m", "prp.cli", "evaluate", str(dl19_dir / "bm25.run"),
                           "--qrels", str(dl19_dir / "qrels.txt")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    head, mean = proc.stdout.splitlines()
    assert mean.split()[:3] == ["mean", "(43)", "0.5058"]


@pytest.mark.parametrize("run_text, qrels_text, args, message", [
    (None, "q1 0 d1 1\n", [], "no such file"),
    ("q1 Q0 d1 1 1.0 x\n", None, [], "no such file"),
    ("q1 Q0 d1 one 1.0 x\n", "q1 0 d1 1\n", [], "tiny.run:1: expected 'qid Q0 docid rank score tag'"),
    ("q1 Q0 d1 1 2.0 x\nq1 Q0 d1 2 1.0 x\n", "q1 0 d1 1\n", [], "tiny.run:2: duplicate docid 'd1'"),
    ("q1 Q0 d1 1 1.0 x\n", "q1 0 d1\n", [], "qrels.txt:1: expected 'qid 0 docid grade'"),
    ("q1 Q0 d1 1 1.0 x\n", "q2 0 d1 1\n", [], "no query of"),
    ("q1 Q0 d1 1 1.0 x\n", "q1 0 d1 1\n", ["--k", "0"], "--k must be >= 1"),
    ("q1 Q0 d1 1 1.0 x\n", "q1 0 d1 1\n", ["--rel", "0"], "--rel must be >= 1"),
])
def test_bad_input_exits_2(capsys, tmp_path, run_text, qrels_text, args, message):
    run, qrels = tmp_path / "tiny.run", tmp_path / "qrels.txt"
    for path, text in ((run, run_text), (qrels, qrels_text)):
        if text is not None:
            path.write_text(text)
    code, _, err = evaluate(capsys, str(run), "--qrels", str(qrels), *args)
    assert code == 2 and message in err, err


def test_qrels_is_required(capsys, tiny):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tiny[0])])
    assert exit_info.value.code == 2 and "--qrels" in capsys.readouterr().err
