"""The PyTerrier adapter against the real PyTerrier: pt.Experiment on DL19 (the README example),
reranked frames against Reranker.rank_many, first-stage order, cost columns, options, bad input;
the packaged judge (slow) inside pt.Experiment."""

from __future__ import annotations

import pytest
from conftest import packaged_llama
from doc_examples import run_doc_example

pt = pytest.importorskip("pyterrier")
pd = pytest.importorskip("pandas")

from prp import MemoryCache, PerfectOracle, Reranker, ScoresOracle  # noqa: E402
from prp.adapters.pyterrier import PRPReranker, qrels_frame, results_frame, topics_frame  # noqa: E402
from prp.data import load_dataset  # noqa: E402
from prp.evaluate import mean_measure  # noqa: E402
from prp.reranker import RankRequest  # noqa: E402

GRADES = {"q1": {"a": 0, "b": 3, "c": 1, "d": 2, "e": 0}, "q2": {"x": 1, "y": 0, "z": 2, "w": 3}}


def small_frame() -> pd.DataFrame:
    """Two queries, rows shuffled, first-stage rank given, with an extra column."""
    rows = []
    for qid, grades in GRADES.items():
        for rank, docno in enumerate(grades):
            rows.append({"qid": qid, "query": f"query {qid}", "docno": docno, "text": f"text of {docno}",
                         "score": 10.0 - rank, "rank": rank, "extra": f"{qid}/{docno}"})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)


def ranking(frame: pd.DataFrame, qid: str) -> list[str]:
    rows = frame[frame["qid"] == qid]
    return list(rows.sort_values("rank")["docno"])


def test_docs_example_reproduces_the_project_ndcg_on_dl19(dl19_dir, monkeypatch):
    ns = run_doc_example("pyterrier", monkeypatch)
    table = ns["table"].set_index("name")["nDCG@10"]
    assert table["BM25"] == pytest.approx(0.506, abs=0.0005)
    assert table["prp perfect"] == pytest.approx(0.892, abs=0.0005)
    assert table["prp noisy"] == pytest.approx(0.860, abs=0.0005)
    # The project's own evaluation of the same rerankings: same rankings, same nDCG, same cost.
    requests, qrels = ns["requests"], ns["qrels"]
    for name, adapter in (("prp perfect", ns["perfect"]), ("prp noisy", ns["noisy"])):
        direct = Reranker(adapter.reranker.oracle, sorter="quicksort", k=10, batch_size=8)
        results = direct.rank_many(requests)
        assert [r.doc_ids for r in adapter.last_results] == [r.doc_ids for r in results]
        own = mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels)
        assert table[name] == pytest.approx(own, abs=1e-9)
        assert adapter.cost.inferences == pytest.approx(results[0].run_cost.inferences)
        assert adapter.cost.queries == len(requests) == 43
    assert ns["perfect"].cost.per_query()["inferences"] == pytest.approx(61.3, abs=0.05)


def test_cost_columns_carry_each_query_ledger(dl19_dir):
    requests, qrels = load_dataset(dl19_dir, depth=20)
    frame = results_frame(requests[:3])
    out = PRPReranker(PerfectOracle(qrels), k=5, batch_size=8, cost_columns=True).transform(frame)
    plain = PRPReranker(PerfectOracle(qrels), k=5, batch_size=8)
    reference = plain.transform(frame)
    assert list(out["docno"]) == list(reference["docno"])
    for result in plain.last_results:
        rows = out[out["qid"] == result.qid]
        assert set(rows["prp_inferences"]) == {result.cost.inferences}
        assert set(rows["prp_prompts"]) == {float(result.cost.prompts)}
        assert set(rows["prp_comparisons"]) == {float(result.cost.comparisons)}
        assert not rows["prp_cut"].any()
    per_query = out.drop_duplicates("qid")["prp_inferences"].sum()
    assert per_query == pytest.approx(plain.cost.inferences)


def test_transform_matches_rank_many_and_keeps_every_row_and_column():
    frame = small_frame()
    before = frame.copy()
    judge = PerfectOracle(GRADES)
    out = PRPReranker(judge, sorter="heapsort", k=2, batch_size=2).transform(frame)
    pd.testing.assert_frame_equal(frame, before)  # the input is not modified
    assert len(out) == len(frame) and set(out.columns) == set(frame.columns)
    expected = Reranker(judge, sorter="heapsort", k=2, batch_size=2).rank_many(
        [RankRequest(f"query {q}", [f"text of {d}" for d in g], list(g), q) for q, g in GRADES.items()])
    for result in expected:
        assert ranking(out, result.qid) == result.doc_ids
        rows = out[out["qid"] == result.qid]
        n = len(rows)
        assert list(rows["rank"]) == list(range(n))
        assert list(rows["score"]) == [float(n - i) for i in range(n)]
        assert all(e == f"{result.qid}/{d}" for e, d in zip(rows["extra"], rows["docno"], strict=True))
    assert ranking(out, "q1")[:2] == ["b", "d"] and ranking(out, "q2")[:2] == ["w", "z"]
    assert list(dict.fromkeys(out["qid"])) == list(dict.fromkeys(frame["qid"]))  # query order kept


@pytest.mark.parametrize("columns", [("rank", "score"), ("score",), ()])
def test_first_stage_order_is_rank_else_score_else_frame_order(columns):
    """A judge that ties everything keeps first-stage order: the order the adapter read."""
    frame = small_frame().drop(columns=[c for c in ("rank", "score") if c not in columns])
    if not columns:  # frame order is the first-stage order
        frame = frame.sort_values(["qid", "extra"], key=lambda s: s.map(_position)).reset_index(drop=True)
    out = PRPReranker(ScoresOracle(lambda qid, doc: 0.0), k=5).transform(frame)
    assert ranking(out, "q1") == list(GRADES["q1"]) and ranking(out, "q2") == list(GRADES["q2"])


def _position(value: str) -> int:
    """Sort key: a query id, or a qid/docno's first-stage position within its query."""
    qid, _, docno = value.partition("/")
    return list(GRADES[qid]).index(docno) if docno else int(qid[1:])


def test_every_reranker_option_is_settable_and_a_budget_cuts():
    judge = PerfectOracle(GRADES)
    adapter = PRPReranker(judge, sorter="quicksort:pivot=median-of-three", k=3, batch_size=2, orders="one",
                          aggregate="consistent", cache=False, in_flight=1, max_inferences=1,
                          cost_columns=True)
    r = adapter.reranker
    assert (r.sorter_spec, r.k, r.settings.batch_size, r.settings.orders, r.settings.aggregate,
            r.cache, r.settings.in_flight, r.settings.max_inferences) == (
        "quicksort:pivot=median-of-three", 3, 2, "one", "consistent", None, 1, 1)
    out = adapter.transform(small_frame())
    assert out["prp_cut"].any() and adapter.cost.inferences == 1
    ready = Reranker(judge, k=2)
    assert PRPReranker(ready).reranker is ready
    with pytest.raises(TypeError, match="batch_size"):
        PRPReranker(ready, batch_size=4)
    with pytest.raises(TypeError):
        PRPReranker(judge, sortr="quicksort")
    with pytest.raises(ValueError, match="unknown sorter"):
        PRPReranker(judge, sorter="nosuchsort")


def test_bad_frames_fail_clearly_and_empty_frames_pass():
    adapter = PRPReranker(PerfectOracle(GRADES))
    with pytest.raises(pt.validate.InputValidationError, match="text"):
        adapter.transform(small_frame().drop(columns=["text"]))
    missing = small_frame()
    missing.loc[2, "text"] = None
    with pytest.raises(ValueError, match=rf"'text' of qid '{missing.loc[2, 'qid']}' docno "
                                         rf"'{missing.loc[2, 'docno']}' must be a string"):
        adapter.transform(missing)
    dupe = pd.concat([small_frame(), small_frame().iloc[:1]])
    with pytest.raises(ValueError, match="twice for qid"):
        adapter.transform(dupe)
    empty = PRPReranker(PerfectOracle(GRADES), cost_columns=True).transform(small_frame().iloc[:0])
    assert empty.empty and {"score", "rank", "prp_inferences"} <= set(empty.columns)


def test_frames_from_requests_and_qrels():
    requests = [RankRequest("q text", ["t1", "t2"], ["d1", "d2"], "7")]
    run = results_frame(requests)
    assert run.to_dict("records") == [
        {"qid": "7", "query": "q text", "docno": "d1", "text": "t1", "score": 2.0, "rank": 0},
        {"qid": "7", "query": "q text", "docno": "d2", "text": "t2", "score": 1.0, "rank": 1}]
    assert topics_frame(requests).to_dict("records") == [{"qid": "7", "query": "q text"}]
    assert qrels_frame({"7": {"d1": 2}}).to_dict("records") == [{"qid": "7", "docno": "d1", "label": 2}]


@pytest.mark.slow
def test_packaged_judge_in_a_pt_experiment(dl19_dir):
    pytest.importorskip("llama_cpp")
    judge = packaged_llama("smollm2-135m", passage_tokens=48)
    requests, qrels = load_dataset(dl19_dir, depth=4)
    requests = requests[:1]
    cache = MemoryCache()
    bm25 = pt.Transformer.from_df(results_frame(requests))
    adapter = PRPReranker(judge, sorter="quicksort", k=2, batch_size=8, cache=cache)
    table = pt.Experiment([bm25, bm25 >> adapter], topics_frame(requests), qrels_frame(qrels),
                          eval_metrics=[pt.measures.nDCG @ 10], names=["bm25", "prp"])
    assert table["nDCG@10"].between(0, 1).all()
    assert adapter.cost.inferences > 0 and adapter.cost.unparsed == 0
    # The same query straight through the engine: every comparison is already cached, and the
    # ranking is the adapter's.
    direct = Reranker(judge, sorter="quicksort", k=2, batch_size=8, cache=cache)
    results = direct.rank_many(requests)
    assert results[0].run_cost.inferences == 0
    assert [r.doc_ids for r in results] == [r.doc_ids for r in adapter.last_results]
