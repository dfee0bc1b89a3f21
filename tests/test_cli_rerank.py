"""``prp rerank`` through its real entry points: three input layouts, outputs, budget, dry run,
exit codes; on small fixtures and on the DL19 files with the perfect judge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CountingOracle

from prp.cli import main
from prp.cli import rerank as rerank_cli
from prp.data import load_qrels
from prp.oracles import PerfectOracle

# Two small queries in first-stage order, with their grades.
QUERIES = {
    "q1": ("apple pie recipe", [("a1", 0), ("a2", 3), ("a3", 1), ("a4", 2), ("a5", 0), ("a6", 3)]),
    "q2": ("rust borrow checker", [("b1", 1), ("b2", 0), ("b3", 2), ("b4", 0), ("b5", 3)]),
}
# Perfect judge, depth 4, k 2: top-2 of the first 4 by grade, the rest of the 4, then the tail.
EXPECTED = {"q1": ["a2", "a4", "a1", "a3", "a5", "a6"], "q2": ["b3", "b1", "b2", "b4", "b5"]}


def _text(docid: str) -> str:
    return f"passage {docid} about " + ("pies" if docid.startswith("a") else "lifetimes")


@pytest.fixture
def small(tmp_path: Path) -> dict[str, Path]:
    """The same two queries in all three input layouts, plus topics, docs and qrels."""
    files = {name: tmp_path / name for name in
             ("topics.tsv", "docs.jsonl", "first.run", "candidates.jsonl", "retrieve.json", "qrels.txt")}
    files["topics.tsv"].write_text("".join(f"{q}\t{text}\n" for q, (text, _) in QUERIES.items()))
    docs = [d for _, cands in QUERIES.values() for d, _ in cands]
    files["docs.jsonl"].write_text("".join(json.dumps({"docid": d, "text": _text(d)}) + "\n" for d in docs))
    files["qrels.txt"].write_text("".join(f"{q} 0 {d} {g}\n" for q, (_, c) in QUERIES.items() for d, g in c))
    files["first.run"].write_text("".join(f"{q} Q0 {d} {r} {10 - r}.5 bm25\n" for q, (_, c) in QUERIES.items()
                                          for r, (d, _) in enumerate(c, 1)))
    with files["candidates.jsonl"].open("w") as fh:  # shuffled, with scores: read by score
        for q, (text, c) in QUERIES.items():
            cands = [{"docid": d, "text": _text(d), "score": 10.0 - r} for r, (d, _) in enumerate(c, 1)]
            fh.write(json.dumps({"qid": q, "query": text, "candidates": cands[::-1]}) + "\n")
    files["retrieve.json"].write_text(json.dumps([
        {"query": text, "hits": [{"qid": q, "docid": d, "rank": r, "score": 10.0 - r, "content": _text(d)}
                                 for r, (d, _) in enumerate(c, 1)]} for q, (text, c) in QUERIES.items()]))
    return files


def layout_args(small: dict[str, Path], layout: str) -> list[str]:
    if layout == "run":
        return ["--run", str(small["first.run"]), "--topics", str(small["topics.tsv"]),
                "--docs", str(small["docs.jsonl"])]
    return ["--input", str(small["candidates.jsonl" if layout == "jsonl" else "retrieve.json"])]


def perfect(small: dict[str, Path]) -> list[str]:
    return ["--judge", "perfect", "--qrels", str(small["qrels.txt"])]


def rerank(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["rerank", *args])
    out, err = capsys.readouterr()
    return code, out, err


def read_trec(path: Path) -> dict[str, list[str]]:
    """A TREC run as ``{qid: [docid, ...]}``, checking ranks 1..n, decreasing scores, no repeats."""
    rows: dict[str, list[tuple[int, float, str]]] = {}
    for line in path.read_text().splitlines():
        qid, q0, docid, rank, score, tag = line.split()
        assert (q0, tag) == ("Q0", "prp")
        rows.setdefault(qid, []).append((int(rank), float(score), docid))
    out = {}
    for qid, lines in rows.items():
        ranks, scores, ids = zip(*lines, strict=True)
        assert list(ranks) == list(range(1, len(lines) + 1))
        assert all(a > b for a, b in zip(scores, scores[1:], strict=False))
        assert len(set(ids)) == len(ids)
        out[qid] = list(ids)
    return out


# --- the three layouts --------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["run", "jsonl", "retrieve"])
def test_each_layout_reranks_every_candidate(capsys, small, tmp_path, layout):
    out_path = tmp_path / f"{layout}.run"
    code, out, err = rerank(capsys, *layout_args(small, layout), *perfect(small), "--k", "2",
                            "--depth", "4", "--output", str(out_path))
    assert code == 0, err
    assert read_trec(out_path) == EXPECTED
    assert "reranked 2 queries (0 cut)" in out


def test_depth_one_keeps_first_stage_order_and_scores_order_candidates(capsys, small, tmp_path):
    out_path = tmp_path / "out.run"
    code, _, err = rerank(capsys, *layout_args(small, "jsonl"), *perfect(small), "--depth", "1",
                          "--output", str(out_path))
    assert code == 0, err
    assert read_trec(out_path) == {q: [d for d, _ in c] for q, (_, c) in QUERIES.items()}


def test_jsonl_output_and_stdout(capsys, small, tmp_path):
    code, out, err = rerank(capsys, *layout_args(small, "retrieve"), *perfect(small), "--k", "2",
                            "--depth", "4", "--output", "-", "--output-format", "jsonl", "--queries", "1")
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["qid"], row["query"], row["cut"]) == ("q1", "apple pie recipe", False)
    assert [r["docid"] for r in row["ranking"]] == EXPECTED["q1"]
    assert [r["rank"] for r in row["ranking"]] == [1, 2, 3, 4, 5, 6]
    assert [r["score"] for r in row["ranking"]] == [6, 5, 4, 3, 2, 1]
    assert "reranked 1 queries" in err  # with the run on stdout, the summary goes to stderr


def test_json_summary_counts_match_the_backend(capsys, monkeypatch, small, tmp_path):
    judge = CountingOracle(PerfectOracle(load_qrels(small["qrels.txt"])))
    monkeypatch.setattr(rerank_cli, "make_backend", lambda args: judge)
    out_path = tmp_path / "out.run"
    code, out, err = rerank(capsys, *layout_args(small, "run"), "--judge", "perfect", "--k", "3",
                            "--batch-size", "2", "--in-flight", "1", "--output", str(out_path),
                            "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["queries"] == 2 and summary["cut_queries"] == 0 and summary["output"] == str(out_path)
    assert summary["cost"]["inferences"] == pytest.approx(len(judge.batches)) and judge.batches
    assert summary["cost"]["prompts"] == sum(judge.batches)
    assert summary["per_query"]["inferences"] == pytest.approx(len(judge.batches) / 2)
    assert summary["settings"]["sorter"] == "quicksort" and summary["seconds"] >= 0


def test_persistent_cache_makes_a_rerun_free(capsys, small, tmp_path):
    args = [*layout_args(small, "jsonl"), *perfect(small), "--depth", "6", "--cache-dir",
            str(tmp_path / "cache"), "--format", "json"]
    first = json.loads(rerank(capsys, *args, "--output", str(tmp_path / "a.run"))[1])
    second = json.loads(rerank(capsys, *args, "--output", str(tmp_path / "b.run"))[1])
    assert first["cost"]["inferences"] > 0 and second["cost"]["inferences"] == 0
    assert second["cost"]["cache_hits"] == first["cost"]["unique_comparisons"]
    assert (tmp_path / "a.run").read_text() == (tmp_path / "b.run").read_text()


def test_sorter_spec_and_auto_pass_through(capsys, small, tmp_path):
    for sorter in ("quicksort:pivot=median-of-three", "heapsort:sift=sequential", "auto"):
        out_path = tmp_path / "out.run"
        code, _, err = rerank(capsys, *layout_args(small, "run"), *perfect(small), "--k", "2",
                              "--depth", "4", "--sorter", sorter, "--output", str(out_path))
        assert code == 0, (sorter, err)
        assert read_trec(out_path) == EXPECTED


# --- budget ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("budget, in_flight", [("0", "all"), ("3", "all"), ("3", "1"), ("9", "1")])
def test_budget_cuts_cleanly(capsys, small, tmp_path, budget, in_flight):
    out_path = tmp_path / "out.jsonl"
    code, out, err = rerank(capsys, *layout_args(small, "run"), *perfect(small), "--k", "3",
                            "--batch-size", "2", "--max-inferences", budget, "--output", str(out_path),
                            "--output-format", "jsonl", "--format", "json", "--in-flight", in_flight)
    assert code == 4, err
    assert "budget of" in err and "cut" in err
    summary = json.loads(out)
    assert summary["cost"]["inferences"] <= int(budget) and summary["cut_queries"] >= 1
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [r["qid"] for r in rows] == ["q1", "q2"]  # complete: every query, every candidate once
    for row in rows:
        assert sorted(r["docid"] for r in row["ranking"]) == sorted(d for d, _ in QUERIES[row["qid"]][1])
        assert [r["rank"] for r in row["ranking"]] == list(range(1, len(row["ranking"]) + 1))
    assert [r["qid"] for r in rows if r["cut"]] == summary["cut_qids"]


# --- dry run ----------------------------------------------------------------------------------------

def test_dry_run_never_builds_the_backend(capsys, monkeypatch, small, tmp_path):
    def boom(args):
        raise AssertionError("dry run built a backend")

    monkeypatch.setattr(rerank_cli, "make_backend", boom)
    code, out, err = rerank(capsys, *layout_args(small, "jsonl"), "--judge", "llama.cpp", "--model",
                            "/nonexistent.gguf", "--depth", "4", "--dry-run", "--format", "json",
                            "--output", str(tmp_path / "never.run"))
    assert code == 0, err
    report = json.loads(out)
    assert report["dry_run"] and report["queries"] == 2
    assert [(g["n"], g["queries"]) for g in report["groups"]] == [(4, 2)]
    for name in ("comparisons", "prompts", "inferences", "rounds", "predicted_seconds"):
        assert report["groups"][0][name] > 0
        assert report["total"][name] == pytest.approx(2 * report["groups"][0][name])
    assert not (tmp_path / "never.run").exists()


def test_dry_run_on_dl19_in_a_subprocess(dl19_dir):
    proc = subprocess.run([sys.executable, "-m", "prp.cli", "rerank", "--input",
                           str(dl19_dir / "bm25-top100.json"), "--model", "/nonexistent.gguf",
                           "--queries", "5", "--depth", "30", "--dry-run"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("dry run: 5 queries") and "n=30: 5 queries, quicksort" in proc.stdout
    assert "llama" not in proc.stderr.lower()


# --- DL19 -------------------------------------------------------------------------------------------

def test_dl19_perfect_rerank_evaluates_like_ir_measures(capsys, dl19_dir, tmp_path):
    import ir_measures

    out_path = tmp_path / "perfect.run"
    code, _, err = rerank(capsys, "--input", str(dl19_dir / "bm25-top100.json"), "--judge", "perfect",
                          "--qrels", str(dl19_dir / "qrels.txt"), "--queries", "5", "--depth", "30",
                          "--output", str(out_path))
    assert code == 0, err
    ranked = read_trec(out_path)
    data = json.loads((dl19_dir / "bm25-top100.json").read_text())[:5]
    for entry in data:
        ids = [str(h["docid"]) for h in sorted(entry["hits"], key=lambda h: h["rank"])]
        qid = str(entry["hits"][0]["qid"])
        assert sorted(ranked[qid]) == sorted(ids) and ranked[qid][30:] == ids[30:]
    assert main(["evaluate", str(out_path), "--qrels", str(dl19_dir / "qrels.txt"), "--format", "json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    measures = [ir_measures.parse_measure(m) for m in ("nDCG@10", "RR(rel=2)@10", "R(rel=2)@10")]
    # over the run's 5 queries (ir-measures' default would count the other 38 judged ones as 0)
    qrels = [q for q in ir_measures.read_trec_qrels(str(dl19_dir / "qrels.txt")) if q.query_id in ranked]
    direct = ir_measures.calc_aggregate(measures, qrels, ir_measures.read_trec_run(str(out_path)))
    assert ours["queries"] == 5
    for m in measures:
        assert ours["mean"][str(m)] == pytest.approx(direct[m], abs=1e-9)


def test_dl19_run_layout_in_a_subprocess(dl19_dir, tmp_path):
    data = json.loads((dl19_dir / "bm25-top100.json").read_text())
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"docid": h["docid"], "text": h["content"]}) + "\n"
                            for entry in data for h in entry["hits"]))
    out_path = tmp_path / "out.run"
    proc = subprocess.run([sys.executable, "-m", "prp.cli", "rerank", "--run", str(dl19_dir / "bm25.run"),
                           "--topics", str(dl19_dir / "topics.tsv"), "--docs", str(docs), "--judge",
                           "noisy:bias=1.5,noise=1.0,seed=0", "--qrels",
                           str(dl19_dir / "qrels.txt"), "--queries", "3", "--depth", "20",
                           "--aggregate", "margin", "--output", str(out_path), "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["queries"] == 3 and summary["settings"]["judge"].startswith("noisy:")
    ranked = read_trec(out_path)
    assert len(ranked) == 3 and all(len(ids) == 100 for ids in ranked.values())


# --- bad input ----------------------------------------------------------------------------------------

def _dup_candidates(small: dict[str, Path]) -> list[str]:
    path = small["candidates.jsonl"].with_name("dup.jsonl")
    cands = [{"docid": "x", "text": "one"}, {"docid": "x", "text": "two"}]
    path.write_text(json.dumps({"qid": "q1", "query": "q", "candidates": cands}) + "\n")
    return ["--input", str(path)]


def _dup_run(small: dict[str, Path]) -> list[str]:
    with small["first.run"].open("a") as fh:
        fh.write("q1 Q0 a2 7 0.1 bm25\n")
    return layout_args(small, "run")


def _dup_retrieve(small: dict[str, Path]) -> list[str]:
    data = json.loads(small["retrieve.json"].read_text())
    data[0]["hits"].append(dict(data[0]["hits"][0], rank=99))
    small["retrieve.json"].write_text(json.dumps(data))
    return layout_args(small, "retrieve")


def _missing_doc(small: dict[str, Path]) -> list[str]:
    with small["first.run"].open("a") as fh:
        fh.write("q2 Q0 zzz 6 0.1 bm25\n")
    return layout_args(small, "run")


def _missing_topic(small: dict[str, Path]) -> list[str]:
    small["topics.tsv"].write_text("q1\tapple pie recipe\n")
    return layout_args(small, "run")


def _bad_json(small: dict[str, Path]) -> list[str]:
    with small["candidates.jsonl"].open("a") as fh:
        fh.write('{"qid": "q3", "query": \n')
    return layout_args(small, "jsonl")


BAD = [
    ("missing input file", lambda s: ["--input", "/nonexistent/cands.jsonl"], "no such file"),
    ("missing docs file", lambda s: [*layout_args(s, "run")[:4], "--docs", "/nonexistent.jsonl"],
     "no such file"),
    ("docid not in docs", _missing_doc, "first.run:12: docid 'zzz' is not in"),
    ("qid without a query", _missing_topic, "query 'q2' has no text in"),
    ("duplicate docid, jsonl", _dup_candidates, "duplicate docid 'x'"),
    ("duplicate docid, run", _dup_run, "first.run:12: duplicate docid 'a2' for query 'q1' (first at line 2)"),
    ("duplicate docid, retrieve", _dup_retrieve, "duplicate docid 'a1' in query 'q1'"),
    ("malformed jsonl", _bad_json, "candidates.jsonl:3: not valid JSON"),
    ("k < 1", lambda s: [*layout_args(s, "jsonl"), "--k", "0"], "--k must be >= 1"),
    ("depth < 1", lambda s: [*layout_args(s, "jsonl"), "--depth", "0"], "--depth must be >= 1"),
    ("unknown sorter", lambda s: [*layout_args(s, "jsonl"), "--sorter", "bogosort"],
     "known sorters: heapsort, bubblesort, quicksort, mergesort, allpair"),
    ("bad sorter option", lambda s: [*layout_args(s, "jsonl"), "--sorter", "quicksort:pivot=psychic"],
     "pivot"),
    ("no input", lambda s: [], "no input"),
    ("run without docs", lambda s: layout_args(s, "run")[:4], "missing: --docs"),
    ("both inputs", lambda s: [*layout_args(s, "run"), *layout_args(s, "jsonl")], "not both"),
]


@pytest.mark.parametrize("make_args, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_exits_2(capsys, small, tmp_path, make_args, message):
    out_path = tmp_path / "out.run"
    code, _, err = rerank(capsys, *make_args(small), *perfect(small), "--output", str(out_path))
    assert code == 2 and message in err, err
    assert err.startswith("prp rerank: error:")
    assert not out_path.exists() and not list(tmp_path.glob(".out.run.*"))


@pytest.mark.parametrize("args, message", [
    (["--output", "-", "--format", "json"], "--format json prints the summary on stdout"),
    (["--output", "/nonexistent-dir/out.run"], "output directory /nonexistent-dir does not exist"),
    ([], "--output is required"),
])
def test_bad_output_exits_2(capsys, small, args, message):
    code, _, err = rerank(capsys, *layout_args(small, "jsonl"), *perfect(small), *args)
    assert code == 2 and message in err, err


@pytest.mark.parametrize("backend_args, message", [
    (["--judge", "perfect"], "judge perfect needs qrels"),
    (["--judge", "noisy:psychic=1", "--qrels", "QRELS"], "unknown option psychic; accepted: bias"),
    (["--judge", "transformers"], "judge transformers needs a model"),
    (["--judge", "llama.cpp", "--model", "/nonexistent.gguf"], "no GGUF model at /nonexistent.gguf"),
    (["--judge", "llama.cpp", "--model", "qwen-9000"], "neither a packaged model"),
])
def test_bad_backend_exits_2(capsys, small, tmp_path, backend_args, message):
    backend_args = [str(small["qrels.txt"]) if a == "QRELS" else a for a in backend_args]
    code, _, err = rerank(capsys, *layout_args(small, "jsonl"), *backend_args, "--output",
                          str(tmp_path / "out.run"))
    assert code == 2 and message in err, err


def test_unknown_backend_lists_the_known_ones(capsys, small):
    with pytest.raises(SystemExit) as exit_info:
        main(["rerank", *layout_args(small, "jsonl"), "--judge", "psychic", "--output", "-"])
    assert exit_info.value.code == 2
    assert "choose from perfect, noisy, llama.cpp, transformers, openai, replay" in capsys.readouterr().err


def test_missing_extra_names_it(capsys, monkeypatch, small, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    code, _, err = rerank(capsys, *layout_args(small, "jsonl"), "--model", str(model),
                          "--output", str(tmp_path / "out.run"))
    assert code == 2 and "prp[llama]" in err and "not available" in err, err


def test_backend_failure_exits_3_and_writes_nothing(capsys, monkeypatch, small, tmp_path):
    judge = CountingOracle(PerfectOracle(load_qrels(small["qrels.txt"])), fail_after=2)
    monkeypatch.setattr(rerank_cli, "make_backend", lambda args: judge)
    out_path = tmp_path / "out.run"
    code, _, err = rerank(capsys, *layout_args(small, "jsonl"), "--judge", "perfect",
                          "--batch-size", "1", "--output", str(out_path))
    assert code == 3 and "backend failure" in err and "no output written" in err, err
    assert not out_path.exists() and not list(tmp_path.glob(".out.run.*"))


def test_budget_per_query_caps_prompts_and_is_not_an_error(capsys, small, tmp_path):
    out_path = tmp_path / "budget.run"
    # quicksort's first rounds: 5 comparisons (q1) and 4 (q2), 10 and 8 prompts under orders=both
    code, out, err = rerank(capsys, *layout_args(small, "jsonl"), *perfect(small), "--k", "2", "--depth", "6",
                            "--budget", "7", "--format", "json", "--output", str(out_path))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["cut_queries"] == 2 and summary["cost"]["prompts"] == 0
    assert "reached the --budget of 7 prompts" in err
    code, out, err = rerank(capsys, *layout_args(small, "jsonl"), *perfect(small), "--k", "2", "--depth", "6",
                            "--sorter", "active", "--budget", "12", "--orders", "random", "--debias", "auto",
                            "--format", "json", "--output", str(out_path))
    assert code == 0, err
    assert json.loads(out)["cost"]["prompts"] <= 24
    with pytest.raises(SystemExit) as exit_:
        rerank(capsys, *layout_args(small, "jsonl"), *perfect(small), "--debias", "maybe",
               "--output", str(out_path))
    assert exit_.value.code == 2 and "--debias" in capsys.readouterr().err


def test_output_keeps_input_order_when_later_queries_finish_first(capsys, monkeypatch, tmp_path):
    """All queries in flight: the long first query finishes last, yet is written first."""
    sizes = {"long": 40, "s1": 3, "s2": 4, "s3": 2, "s4": 5}
    grades = {q: {f"{q}-{i}": (i * 7) % 4 for i in range(n)} for q, n in sizes.items()}
    cands, qrels = tmp_path / "c.jsonl", tmp_path / "qrels.txt"
    cands.write_text("".join(json.dumps({"qid": q, "query": f"query {q}", "candidates": [
        {"docid": d, "text": f"text {d}"} for d in docs]}) + "\n" for q, docs in grades.items()))
    qrels.write_text("".join(f"{q} 0 {d} {g}\n" for q, docs in grades.items() for d, g in docs.items()))
    finished = []
    real = rerank_cli._Run.on_result

    def spy(self, result):
        finished.append(result.qid)
        real(self, result)

    monkeypatch.setattr(rerank_cli._Run, "on_result", spy)
    out = tmp_path / "out.jsonl"
    assert main(["rerank", "--input", str(cands), "--judge", "perfect", "--qrels", str(qrels), "--k", "3",
                 "--batch-size", "4", "--in-flight", "all", "--sorter", "heapsort", "--quiet",
                 "--output-format", "jsonl", "--output", str(out)]) == 0
    capsys.readouterr()
    assert finished[-1] == "long" and sorted(finished) == sorted(sizes)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["qid"] for r in rows] == list(sizes)
    for row in rows:
        ranked = [e["docid"] for e in row["ranking"]]
        best = sorted(grades[row["qid"]], key=lambda d: -grades[row["qid"]][d])[:3]
        assert sorted(ranked) == sorted(grades[row["qid"]])
        assert [grades[row["qid"]][d] for d in ranked[:3]] == [grades[row["qid"]][d] for d in best]
