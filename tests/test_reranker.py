"""The engine against references: sorted(), the plain driver, unbatched and uncached runs."""

from __future__ import annotations

import pytest
from conftest import CountingOracle, expected_order, score_docs

from prp import RankRequest, Reranker, ScoresOracle
from sorters import SORTERS, drive, make_sorter

VARIANTS = ["heapsort", "heapsort:sift=sequential", "bubblesort", "bubblesort:skip_tail=false",
            "quicksort", "quicksort:pivot=median-of-three", "quicksort:pivot=random,seed=3",
            "mergesort", "allpair", "tournament", "tournament:refill=knockout,ties=ask"]


def requests(count: int, n: int, levels: int | None = None) -> tuple[list[RankRequest], dict]:
    reqs, scores = [], {}
    for q in range(count):
        ids, s = score_docs(n, seed=q, levels=levels)
        ids = [f"q{q}-{d}" for d in ids]
        scores.update({f"q{q}-{d}": v for d, v in s.items()})
        reqs.append(RankRequest(f"query {q}", [f"text of {d}" for d in ids], ids, qid=f"q{q}"))
    return reqs, scores


@pytest.mark.parametrize("sorter", VARIANTS)
@pytest.mark.parametrize("levels", [None, 4])
def test_matches_stable_sort(sorter, levels):
    reqs, scores = requests(3, 40, levels)
    results = Reranker(ScoresOracle(scores), sorter=sorter, k=10).rank_many(reqs)
    for req, res in zip(reqs, results, strict=True):
        assert res.doc_ids == expected_order(list(req.doc_ids), scores, 10)
        assert [d.rank for d in res.docs] == list(range(1, 41))
        assert all(a.score > b.score for a, b in zip(res.docs, res.docs[1:], strict=False))


@pytest.mark.parametrize("sorter", VARIANTS)
def test_engine_equals_plain_driver(sorter):
    """With an inconsistent judge, the engine still follows the sorter exactly."""
    ids = [str(i) for i in range(30)]
    weird = {d: (int(d) * 7919) % 13 for d in ids}  # many ties, deterministic
    oracle = ScoresOracle(weird)
    res = Reranker(oracle, sorter=sorter, k=7, batch_size=5).rank("q", [f"t{d}" for d in ids], ids)
    name, _, opts = sorter.partition(":")
    from prp.spec import parse_spec
    gen = make_sorter(name, 30, 7, **parse_spec(sorter)[1])
    ref = drive(gen, lambda i, j: (weird[ids[i]] > weird[ids[j]]) - (weird[ids[i]] < weird[ids[j]]))
    assert res.doc_ids == [ids[i] for i in ref]


@pytest.mark.parametrize("sorter", VARIANTS)
def test_batch_size_cache_and_in_flight_do_not_change_rankings(sorter):
    reqs, scores = requests(4, 25, levels=3)
    base = Reranker(ScoresOracle(scores), sorter=sorter, k=5, batch_size=1, cache=False, in_flight=1)
    reference = [r.doc_ids for r in base.rank_many(reqs)]
    for batch_size in (2, 3, 7, 64):
        for cache in (False, True):
            for in_flight in (1, None):
                rr = Reranker(ScoresOracle(scores), sorter=sorter, k=5, batch_size=batch_size,
                              cache=cache, in_flight=in_flight)
                assert [r.doc_ids for r in rr.rank_many(reqs)] == reference


def test_ledger_inferences_equal_backend_calls():
    reqs, scores = requests(5, 30)
    for in_flight in (1, 2, None):
        oracle = CountingOracle(ScoresOracle(scores))
        rr = Reranker(oracle, sorter="quicksort", k=10, batch_size=6, in_flight=in_flight)
        results = rr.rank_many(reqs)
        total = results[0].run_cost
        assert total.inferences == pytest.approx(len(oracle.batches))
        assert total.prompts == sum(oracle.batches)
        assert sum(total.batch_sizes.values()) == len(oracle.batches)
        assert max(oracle.batches) <= 6
        assert sum(r.cost.inferences for r in results) == pytest.approx(len(oracle.batches))


def test_cross_query_batching_shares_inferences():
    reqs, scores = requests(8, 30)
    alone = Reranker(ScoresOracle(scores), sorter="quicksort", batch_size=64, in_flight=1)
    together = Reranker(ScoresOracle(scores), sorter="quicksort", batch_size=64, in_flight=None)
    c_alone = alone.rank_many(reqs)[0].run_cost
    c_together = together.rank_many(reqs)[0].run_cost
    assert c_together.prompts == c_alone.prompts
    assert c_together.inferences < c_alone.inferences


def test_cache_saves_repeated_pairs_and_reports_virtual_cost():
    reqs, scores = requests(3, 40)
    off = Reranker(ScoresOracle(scores), sorter="bubblesort:skip_tail=false", k=5, cache=False)
    on = Reranker(ScoresOracle(scores), sorter="bubblesort:skip_tail=false", k=5, cache=True)
    r_off, r_on = off.rank_many(reqs), on.rank_many(reqs)
    assert [r.doc_ids for r in r_off] == [r.doc_ids for r in r_on]
    c_off, c_on = r_off[0].run_cost, r_on[0].run_cost
    assert c_off.cache_hits == 0 and c_off.prompts == c_off.virtual_prompts
    assert c_on.cache_hits > 0
    assert c_on.prompts == c_off.prompts - 2 * c_on.cache_hits
    assert c_on.virtual_prompts == c_off.prompts
    assert c_on.virtual_inferences == c_off.inferences
    assert c_on.saved_inferences > 0


def test_second_run_over_the_same_cache_pays_nothing():
    reqs, scores = requests(2, 20)
    oracle = CountingOracle(ScoresOracle(scores))
    rr = Reranker(oracle, sorter="heapsort", k=5)
    first = rr.rank_many(reqs)
    calls = len(oracle.batches)
    second = rr.rank_many(reqs)
    assert len(oracle.batches) == calls
    assert [r.doc_ids for r in first] == [r.doc_ids for r in second]
    for r1, r2 in zip(first, second, strict=True):
        assert r2.cost.prompts == 0 and r2.cost.inferences == 0
        assert r2.cost.cache_hits == r2.cost.unique_comparisons
        assert r2.cost.virtual_prompts == r1.cost.virtual_prompts
        assert r2.cost.virtual_inferences == pytest.approx(r1.cost.virtual_inferences)


@pytest.mark.parametrize("sorter", list(SORTERS))
def test_deterministic(sorter):
    reqs, scores = requests(3, 30, levels=3)
    runs = [Reranker(ScoresOracle(scores), sorter=sorter, orders="random", seed=5).rank_many(reqs)
            for _ in range(2)]
    assert [r.doc_ids for r in runs[0]] == [r.doc_ids for r in runs[1]]
    assert [r.cost.to_dict() | {"wall_seconds": 0} for r in runs[0]] == \
           [r.cost.to_dict() | {"wall_seconds": 0} for r in runs[1]]


def test_inputs_are_not_mutated():
    docs = ["b text", "a text", "c text"]
    ids = ["b", "a", "c"]
    Reranker(ScoresOracle({"a": 3, "b": 2, "c": 1}), k=3).rank("q", docs, ids)
    assert docs == ["b text", "a text", "c text"] and ids == ["b", "a", "c"]


def test_result_fields():
    res = Reranker(ScoresOracle({"a": 3, "b": 2, "c": 1}), k=2).rank("q", ["tb", "ta", "tc"],
                                                                      ["b", "a", "c"])
    assert res.doc_ids == ["a", "b", "c"]
    assert [d.original_rank for d in res.docs] == [2, 1, 3]
    assert [d.text for d in res.top_k()] == ["ta", "tb"]
    assert len(res) == 3 and res.k == 2
