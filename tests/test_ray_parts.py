"""The parts of the Ray executor that need no Ray (default suite, fast): the shard cache many
writers share, row grouping, ledgers as JSON, the checkpoint, Parquet in and out, and the
options that need --executor ray. The Ray jobs themselves are in tests/test_ray.py (slow)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from conftest import CountingOracle, score_docs

from cost.ledger import Ledger
from prp import Judgment, RankRequest, Reranker, ScoresOracle
from prp.cache import CacheError
from prp.cli import main
from prp.ray.checkpoint import Checkpoint
from prp.ray.rows import RowError, explode, group_rows, layout, ledger_from_json, ledger_json, total_ledger
from prp.ray.shards import ShardCache, shard_cache

KEY = ("judge", b"q" * 16, b"a" * 16, b"b" * 16)


def test_shard_cache_round_trip_layout_and_bad_files(tmp_path):
    cache = ShardCache(tmp_path / "c")
    assert cache.get(KEY) is None
    cache.set(KEY, Judgment("A", 1.25))
    cache.set(KEY[:3] + (b"c" * 16,), Judgment(None, None))
    assert cache.get(KEY) == Judgment("A", 1.25)
    assert cache.get(KEY[:3] + (b"c" * 16,)) == Judgment(None, None)
    path = cache.path(KEY)
    assert path.relative_to(tmp_path / "c").parts[:2] == (path.parent.parent.name, path.parent.name)
    assert len(path.parent.parent.name) == 2 and len(path.parent.name) == 2 and len(path.name) == 36
    assert len(cache) == 2 and not list((tmp_path / "c").rglob(".*.tmp"))  # no temp file left
    for junk in (b"", b"[\"C\", 1]", b"[\"A\", NaN]", b"\xff\xfe", b"{\"A\": 1}"):  # a miss, never an answer
        path.write_bytes(junk)
        assert cache.get(KEY) is None


def test_shard_cache_on_an_unusable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match=str(blocker)):
        ShardCache(blocker / "sub")
    with pytest.warns(RuntimeWarning, match="going on without"):
        cache = ShardCache(blocker / "sub", on_error="warn")
    cache.set(KEY, Judgment("A", 1.0))
    assert cache.get(KEY) is None and len(cache) == 0


def _writer(directory: str, start: int) -> None:
    cache = ShardCache(directory)
    for i in range(start, start + 300):  # overlapping ranges: the same keys from several writers
        key = ("w", i.to_bytes(16, "big"), b"a" * 16, b"b" * 16)
        cache.set(key, Judgment("A" if i % 2 else "B", float(i)))


def test_many_writer_processes_share_one_directory(tmp_path):
    procs = [multiprocessing.get_context("fork").Process(target=_writer, args=(str(tmp_path), start))
             for start in (0, 100, 200, 250)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    cache = ShardCache(tmp_path)
    for i in range(550):
        assert cache.get(("w", i.to_bytes(16, "big"), b"a" * 16, b"b" * 16)) == \
            Judgment("A" if i % 2 else "B", float(i))
    assert len(cache) == 550 and not list(tmp_path.rglob(".*.tmp"))


def test_a_second_reranker_on_the_shards_pays_only_for_new_prompts(tmp_path):
    ids, scores = score_docs(30, seed=3)
    req = RankRequest("q", [f"text {d}" for d in ids], ids, "q1")
    first = CountingOracle(ScoresOracle(scores))
    Reranker(first, sorter="quicksort", k=5, cache=shard_cache(tmp_path)).rank_many([req])
    again = CountingOracle(ScoresOracle(scores))
    result = Reranker(again, sorter="quicksort", k=5, cache=shard_cache(tmp_path)).rank_many([req])[0]
    assert sum(first.batches) > 0 and again.batches == [] and result.cost.cache_hits > 0
    other = CountingOracle(ScoresOracle(scores))
    heap = Reranker(other, sorter="heapsort", k=5, cache=shard_cache(tmp_path)).rank_many([req])[0]
    assert heap.cost.cache_hits > 0 and sum(other.batches) == heap.cost.prompts
    assert heap.cost.prompts < heap.cost.virtual_prompts  # shared pairs came from the shards


ROWS = [{"qid": "q1", "query": "apple", "docid": d, "text": f"t{d}", "rank": r}
        for d, r in (("c", 3), ("a", 1), ("b", 2))]


def test_group_rows_orders_by_rank_and_names_bad_rows():
    assert group_rows(ROWS) == {"qid": "q1", "query": "apple", "docids": ["a", "b", "c"],
                                "texts": ["ta", "tb", "tc"]}
    assert layout(ROWS[0]) == "rows" and layout(["qid", "query", "docids", "texts", "x"]) == "queries"
    with pytest.raises(RowError, match="needs the columns"):
        layout(["qid", "docid"])
    bad = [({**ROWS[1], "docid": "c"}, "docid 'c' is given twice"),
           ({**ROWS[1], "rank": 3}, "both have rank 3"),
           ({**ROWS[1], "query": "pear"}, "two query texts"),
           ({**ROWS[1], "rank": 1.5}, "not an integer"),
           ({**ROWS[1], "text": None}, "has no text"),
           ({**ROWS[1], "qid": "q2"}, "grouped together")]
    for row, message in bad:
        with pytest.raises(RowError, match=message):
            group_rows([ROWS[0], row, ROWS[2]])


def test_ledgers_survive_json_and_add_up():
    a = Ledger(prompts=10, inferences=1.5, comparisons=5, virtual_prompts=10)
    a.batch_sizes.update({8: 1, 2: 1})
    b = Ledger(prompts=4, inferences=0.5, cache_hits=2)
    back = ledger_from_json(ledger_json(a))
    assert back == a and back.batch_sizes == a.batch_sizes
    total = total_ledger([ledger_json(a), b])
    assert (total.queries, total.prompts, total.inferences, total.cache_hits) == (2, 14, 2.0, 2)
    rows = explode([{"qid": "q", "query": "x", "docids": ["b", "a"], "texts": ["tb", "ta"],
                     "first_stage_ranks": [2, 1], "scores": [2.0, 1.0], "cut": False, "ledger": "{}"}])
    assert [(r["docid"], r["rank"], r["first_stage_rank"], r["score"]) for r in rows] == \
        [("b", 1, 2, 2.0), ("a", 2, 1, 1.0)]


def test_checkpoint_resumes_and_refuses_another_job(tmp_path):
    ck = Checkpoint(tmp_path / "ck")
    assert ck.open({"job": 1}) == {}
    ck.write([{"qid": "q1", "docids": ["a"]}, {"qid": "q2", "docids": ["b"]}])
    ck.write([])
    again = Checkpoint(tmp_path / "ck")
    done = again.open({"job": 1})
    assert set(done) == {"q1", "q2"}
    again.write([{"qid": "q1", "docids": ["other"]}, {"qid": "q3", "docids": ["c"]}])  # a retried block
    done = Checkpoint(tmp_path / "ck").open({"job": 1})
    assert done["q1"]["docids"] == ["a"] and set(done) == {"q1", "q2", "q3"}  # the first record stays
    assert len(list((tmp_path / "ck").glob("block-*.jsonl"))) == 2
    assert not list((tmp_path / "ck").glob(".tmp-*"))
    with pytest.raises(ValueError, match="belongs to another job"):
        Checkpoint(tmp_path / "ck").open({"job": 2})


def test_parquet_input_in_both_layouts_and_parquet_errors(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from prp.data import DataError
    from prp.parquet import load_parquet_candidates, write_parquet_run

    pq.write_table(pa.Table.from_pylist(ROWS + [{**ROWS[0], "qid": "q0", "docid": "z", "rank": 1}]),
                   tmp_path / "rows.parquet")
    reqs = load_parquet_candidates(tmp_path / "rows.parquet")
    assert [(r.qid, list(r.doc_ids)) for r in reqs] == [("q1", ["a", "b", "c"]), ("q0", ["z"])]
    one = {"qid": "q9", "query": "x", "docids": ["a", "b"], "texts": ["1", "2"]}
    pq.write_table(pa.Table.from_pylist([one]), tmp_path / "queries.parquet")
    assert list(load_parquet_candidates(tmp_path / "queries.parquet")[0].docs) == ["1", "2"]
    pq.write_table(pa.Table.from_pylist(ROWS + [ROWS[0]]), tmp_path / "dup.parquet")
    with pytest.raises(DataError, match="dup.parquet: query 'q1': docid 'c' is given twice"):
        load_parquet_candidates(tmp_path / "dup.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="bad.parquet: not a readable Parquet file"):
        load_parquet_candidates(tmp_path / "bad.parquet")
    write_parquet_run(tmp_path / "run.parquet", [("q1", ["b", "a"])])
    assert pq.read_table(tmp_path / "run.parquet").to_pylist() == [
        {"qid": "q1", "docid": "b", "rank": 1, "score": 2.0},
        {"qid": "q1", "docid": "a", "rank": 2, "score": 1.0}]


def test_parquet_input_reranks_in_process_like_jsonl(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    grades = {"a": 0, "b": 2, "c": 1}
    (tmp_path / "qrels.txt").write_text("".join(f"q1 0 {d} {g}\n" for d, g in grades.items()))
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "in.parquet")
    code = main(["rerank", "--input", str(tmp_path / "in.parquet"), "--judge", "perfect", "--qrels",
                 str(tmp_path / "qrels.txt"), "--k", "3", "--output", str(tmp_path / "out.trec"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert [line.split()[2] for line in (tmp_path / "out.trec").read_text().splitlines()] == ["b", "c", "a"]


@pytest.mark.parametrize("extra, message", [
    (["--ray-actors", "3"], "--ray-actors needs --executor ray"),
    (["--checkpoint", "x"], "--checkpoint needs --executor ray"),
    (["--output-format", "parquet"], "--output-format parquet needs --executor ray"),
    (["--executor", "ray", "--max-inferences", "5"], "give a per-query --budget instead"),
    (["--executor", "ray", "--ray-actors", "0"], "--ray-actors must be >= 1"),
    (["--executor", "ray", "--ray-cpus", "-1"], "--ray-cpus must be >= 0"),
])
def test_ray_options_are_checked_before_anything_runs(tmp_path, capsys, extra, message):
    (tmp_path / "in.jsonl").write_text(json.dumps({"qid": "q", "query": "x", "candidates": [
        {"docid": "a", "text": "t"}]}) + "\n")
    code = main(["rerank", "--input", str(tmp_path / "in.jsonl"), "--judge", "perfect", "--qrels",
                 str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o"), *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert not Path(tmp_path / "o").exists()


def test_executor_ray_without_ray_names_the_extra(tmp_path):
    import subprocess
    import sys

    (tmp_path / "in.jsonl").write_text(json.dumps({"qid": "q", "query": "x", "candidates": [
        {"docid": "a", "text": "t"}]}) + "\n")
    (tmp_path / "qrels.txt").write_text("q 0 a 1\n")
    code = ("import sys; sys.modules['ray'] = None\nfrom prp.cli import main\n"
            f"sys.exit(main(['rerank', '--input', {str(tmp_path / 'in.jsonl')!r}, '--judge', 'perfect', "
            f"'--qrels', {str(tmp_path / 'qrels.txt')!r}, '--executor', 'ray', '--output', "
            f"{str(tmp_path / 'o')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "pip install 'prp[ray]'" in out.stderr, out.stderr
    assert not (tmp_path / "o.checkpoint").exists()
