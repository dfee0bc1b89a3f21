"""Budgets: ``max_inferences`` stops cleanly with the best ranking so far, losing nothing judged."""

from __future__ import annotations

import pytest
from conftest import CountingOracle, expected_order, score_docs

from prp import RankRequest, Reranker, ScoresOracle
from prp.cache import MemoryCache
from sorters import SORTERS, Cut, make_sorter

NINE = [f"d{i}" for i in range(9)]
NINE_SCORES = {d: (10.0 if d == "d4" else float(i)) for i, d in enumerate(NINE)}


def test_cut_in_the_middle_of_a_round_keeps_what_was_judged():
    # One partition of 9 needs 4 inferences at B=4 (tests/test_counts.py); a budget of 2 pays two
    # of them, caches their 8 prompts, and stops before the round is complete.
    cache = MemoryCache()
    oracle = CountingOracle(ScoresOracle(NINE_SCORES))
    rr = Reranker(oracle, sorter="quicksort", k=1, batch_size=4, cache=cache, max_inferences=2)
    res = rr.rank("q", NINE, NINE)
    assert res.cut and oracle.batches == [4, 4] and len(cache) == 8
    assert res.cost.inferences == 2 and res.cost.prompts == 8
    assert res.doc_ids == NINE  # the partition never completed: first-stage order
    full = Reranker(oracle, sorter="quicksort", k=1, batch_size=4, cache=cache).rank("q", NINE, NINE)
    assert not full.cut and full.doc_ids[0] == "d4" and full.cost.prompts == 8


@pytest.mark.parametrize("sorter", list(SORTERS))
@pytest.mark.parametrize("budget", [0, 1, 3, 7, 20])
def test_any_budget_gives_a_permutation_and_loses_nothing(sorter, budget):
    ids, scores = score_docs(24, seed=3)
    docs = [f"text {d}" for d in ids]
    unlimited = Reranker(ScoresOracle(scores), sorter=sorter, k=5, batch_size=3, cache=True)
    full = unlimited.rank("q", docs, ids)
    cache = MemoryCache()
    cut = Reranker(ScoresOracle(scores), sorter=sorter, k=5, batch_size=3, cache=cache,
                   max_inferences=budget).rank("q", docs, ids)
    assert sorted(cut.doc_ids) == sorted(ids)
    assert cut.cost.inferences <= budget
    assert cut.cut == (full.cost.inferences > budget)
    if not cut.cut:
        assert cut.doc_ids == full.doc_ids
    rest = Reranker(ScoresOracle(scores), sorter=sorter, k=5, batch_size=3, cache=cache).rank("q", docs, ids)
    assert rest.doc_ids == full.doc_ids == expected_order(ids, scores, 5)
    assert cut.cost.prompts + rest.cost.prompts == full.cost.prompts  # every paid prompt was reused


def test_queries_never_admitted_keep_first_stage_order_at_no_cost():
    ids, scores = score_docs(12, seed=1)
    reqs = [RankRequest(f"q{i}", ids, ids, qid=f"q{i}") for i in range(3)]
    rr = Reranker(ScoresOracle(scores), sorter="mergesort", k=3, batch_size=8, in_flight=1,
                  max_inferences=4)
    results = rr.rank_many(reqs)
    assert results[0].cut and results[-1].cut
    assert results[-1].doc_ids == ids and results[-1].cost.prompts == 0
    assert results[0].run_cost.inferences <= 4


def test_a_cached_run_needs_no_budget():
    cache = MemoryCache()
    first = Reranker(ScoresOracle(NINE_SCORES), sorter="heapsort", k=3, cache=cache).rank("q", NINE, NINE)
    again = Reranker(ScoresOracle(NINE_SCORES), sorter="heapsort", k=3, cache=cache,
                     max_inferences=0).rank("q", NINE, NINE)
    assert not again.cut and again.doc_ids == first.doc_ids and again.cost.inferences == 0


@pytest.mark.parametrize("value", [-1, 1.5, "3", True])
def test_bad_budget(value):
    with pytest.raises(ValueError, match="max_inferences"):
        Reranker(ScoresOracle(NINE_SCORES), max_inferences=value)


def settle(gen, rounds, compare):
    """Answer ``rounds`` rounds, then throw Cut; return the sorter's permutation."""
    batch = next(gen)
    for _ in range(rounds):
        batch = gen.send([compare(i, j) for i, j in batch])
    try:
        gen.throw(Cut())
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the sorter did not stop on Cut")


def by_index_desc(i, j):  # higher index is more relevant
    return (i > j) - (i < j)


def test_sorters_return_what_they_settled():
    # bubblesort, one full pass over 6 (5 rounds): the best (5) has bubbled to the top.
    assert settle(make_sorter("bubblesort", 6, 3), 5, by_index_desc)[0] == 5
    # heapsort on 3 with k=2: build = round (0,1),(0,2) where both children win, then round (1,2);
    # the first extraction settles 2; cut during the next sift: [2], then first-stage order.
    assert settle(make_sorter("heapsort", 3, 2), 1, by_index_desc) == [0, 1, 2]
    assert settle(make_sorter("heapsort", 3, 2), 2, by_index_desc) == [2, 0, 1]
    # quicksort on 5, middle pivot 2: after its partition, 4 and 3 sit above the pivot.
    assert settle(make_sorter("quicksort", 5, 2), 1, by_index_desc)[:2] == [3, 4]
    # allpair cut before any answer: first-stage order.
    assert settle(make_sorter("allpair", 4, 2), 0, by_index_desc) == [0, 1, 2, 3]


def test_a_cut_counts_only_what_was_sent_or_cached():
    # A query of 30, B=8, both orders: the first partition asks 29 comparisons (58 prompts) of
    # pivot d14. Packed by shared prefix (the scheduler's prefix order), they go (d0, d14) first
    # (d0 is asked first), then the 29 prompts that show d14 first, then the other orders. A
    # budget of 3 inferences pays 24 prompts: (d0, d14), (d14, d0) and 22 halves: one whole
    # comparison, and only that one is counted (the halves are cached, nothing is lost).
    ids, scores = score_docs(30, seed=2)
    oracle = CountingOracle(ScoresOracle(scores))
    cut = Reranker(oracle, sorter="quicksort", k=10, batch_size=8, max_inferences=3).rank("q", ids, ids)
    assert oracle.batches == [8, 8, 8] and cut.cut
    cost = cut.cost
    assert (cost.prompts, cost.virtual_prompts, cost.comparisons, cost.unique_comparisons) == (24, 24, 1, 1)
    assert (cost.inferences, cost.virtual_inferences, cost.saved_inferences, cost.rounds) == (3, 3, 0, 1)
    # a budget already spent (what prp rerank gives the groups after the one that spent it)
    none = Reranker(oracle, sorter="quicksort", k=10, batch_size=8, max_inferences=0).rank("q2", ids, ids)
    assert none.cut and none.doc_ids == ids and oracle.batches == [8, 8, 8]
    assert (none.cost.comparisons, none.cost.virtual_prompts, none.cost.virtual_inferences,
            none.cost.rounds) == (0, 0, 0, 0)
