"""Hand-computed cost counts on small cases (the arithmetic is in each test's comment)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import CountingOracle, FixedTokensOracle

from cost.model import LatencyModel
from prp import RankRequest, Reranker, ScoresOracle
from prp import scheduler as sched
from prp.cache import MemoryCache

NINE = [f"d{i}" for i in range(9)]
# d4 sits in the middle (quicksort's default pivot) and is the best: one partition settles k=1.
NINE_SCORES = {d: (10.0 if d == "d4" else float(i)) for i, d in enumerate(NINE)}


def rank_nine(**kw):
    oracle = CountingOracle(ScoresOracle(NINE_SCORES))
    res = Reranker(oracle, **kw).rank("q", [f"text {d}" for d in NINE], NINE)
    return res, oracle


def test_one_quicksort_partition_of_nine():
    # 8 comparisons against the pivot, x2 orders = 16 prompts, in batches of 4 = 4 inferences,
    # all in 1 round; the pivot wins all, lands at position 0 = k-1: no recursion.
    res, oracle = rank_nine(sorter="quicksort", k=1, batch_size=4, orders="both")
    c = res.cost
    assert (c.comparisons, c.unique_comparisons, c.prompts, c.inferences, c.rounds) == (8, 8, 16, 4, 1)
    assert oracle.batches == [4, 4, 4, 4] and dict(c.batch_sizes) == {4: 4}
    assert res.doc_ids[0] == "d4"


def test_one_order_halves_the_prompts():
    # orders="one": 8 prompts -> ceil(8/4) = 2 inferences.
    res, _ = rank_nine(sorter="quicksort", k=1, batch_size=4, orders="one")
    assert (res.cost.prompts, res.cost.inferences) == (8, 2)


def test_allpair_five():
    # C(5,2) = 10 comparisons, 20 prompts, B=3 -> ceil(20/3) = 7 inferences (six of 3, one of 2).
    oracle = CountingOracle(ScoresOracle({str(i): i for i in range(5)}))
    res = Reranker(oracle, sorter="allpair", k=5, batch_size=3).rank("q", list("abcde"))
    c = res.cost
    assert (c.comparisons, c.prompts, c.inferences, c.rounds) == (10, 20, 7, 1)
    assert dict(c.batch_sizes) == {3: 6, 2: 1}
    assert res.doc_ids == ["4", "3", "2", "1", "0"]


def test_mergesort_four():
    # Leaves d0..d3; round 1: merges (d0,d1) and (d2,d3) one comparison each; k=1 so each merge
    # is done after one output; round 2: the two winners. 3 comparisons, 2 rounds, 6 prompts;
    # B=2 -> 3 inferences, B=4 -> 2 (one per round).
    for batch_size, inferences in ((2, 3), (4, 2)):
        oracle = CountingOracle(ScoresOracle({str(i): i for i in range(4)}))
        c = Reranker(oracle, sorter="mergesort", k=1, batch_size=batch_size).rank("q", list("abcd")).cost
        assert (c.comparisons, c.rounds, c.prompts, c.inferences) == (3, 2, 6, inferences)


def test_heapsort_three():
    # Heapify the root: (0,1) and (0,2) in one round; d0 is best so nothing moves; k=1 -> done.
    c = Reranker(ScoresOracle({"0": 9, "1": 1, "2": 2}), sorter="heapsort", k=1,
                 batch_size=4).rank("q", list("abc")).cost
    assert (c.comparisons, c.rounds, c.prompts, c.inferences) == (2, 1, 4, 1)


def test_bubblesort_four_textbook():
    # One pass from the bottom: (2,3), (1,2), (0,1): 3 rounds of 1 comparison = 3 inferences.
    c = Reranker(ScoresOracle({"0": 0, "1": 1, "2": 2, "3": 3}), sorter="bubblesort:skip_tail=false",
                 k=1, batch_size=8).rank("q", list("abcd")).cost
    assert (c.comparisons, c.rounds, c.prompts, c.inferences) == (3, 3, 6, 3)


def test_two_queries_share_batches():
    # Two 9-item partitions = 32 prompts, B=5 -> ceil(32/5) = 7 inferences in all. Query 0 owns
    # prompts 0-15: batches 0-2 whole, 1 of 5 in batch 3 -> 3.2; query 1 the rest -> 3.8.
    oracle = CountingOracle(ScoresOracle(lambda qid, d: NINE_SCORES[d]))
    reqs = [RankRequest(f"q{n}", [f"text {d}" for d in NINE], NINE, qid=f"q{n}") for n in range(2)]
    rr = Reranker(oracle, sorter="quicksort", k=1, batch_size=5)
    r0, r1 = rr.rank_many(reqs)
    assert oracle.batches == [5, 5, 5, 5, 5, 5, 2]
    assert r0.cost.inferences == pytest.approx(3.2) and r1.cost.inferences == pytest.approx(3.8)
    assert r0.run_cost is r1.run_cost and r0.run_cost.inferences == pytest.approx(7)
    assert r0.run_cost.prompts == 32
    assert (r0.cost.rounds, r1.cost.rounds) == (1, 1)


@pytest.mark.parametrize("concurrency, seconds", [(1, 13.6), (2, 6.8), (3, 6.8), (4, 3.4)])
def test_predicted_seconds(concurrency, seconds):
    # 4 inferences of 4 prompts x 10 tokens: t = 1 + 0.5*4 + 0.01*40 = 3.4 s each;
    # run `concurrency` at a time: makespan 4, 2, 2 (3 workers: 2+1+1), 1 inferences deep.
    rr = Reranker(FixedTokensOracle(NINE_SCORES), sorter="quicksort", k=1, batch_size=4,
                  concurrency=concurrency, latency=LatencyModel(1.0, 0.5, 0.01))
    c = rr.rank("q", [f"text {d}" for d in NINE], NINE).cost
    assert c.predicted_seconds == pytest.approx(seconds)
    assert c.input_tokens == 160


def scripted(rounds):
    """A sorter that asks fixed rounds and returns the identity order."""
    def factory():
        def gen():
            for round_ in rounds:
                yield list(round_)
            return [0, 1, 2]
        return gen()
    return factory


def run_script(rounds, cache):
    job = sched.Job("q", "q", ("a", "b", "c"), ("ta", "tb", "tc"), scripted(rounds))
    settings = sched.Settings(batch_size=8, orders="both", aggregate="auto", tie_band=0.0,
                              in_flight=None, concurrency=1, max_inferences=None, seed=0,
                              latency=LatencyModel())
    asyncio.run(sched.run([job], ScoresOracle({"a": 1, "b": 2, "c": 3}), cache, settings))
    return job.ledger


def test_duplicates_within_a_round_are_one_comparison():
    # (0,1), (1,0), (0,1) in one round: 3 asked, 1 unique, 2 prompts.
    c = run_script([[(0, 1), (1, 0), (0, 1)]], cache=None)
    assert (c.comparisons, c.unique_comparisons, c.prompts, c.inferences) == (3, 1, 2, 1)


def test_a_pair_met_again_is_a_cache_hit():
    # Round 1 pays (0,1); round 2 asks (1,0): with a cache 1 hit and 2 prompts (virtual 4);
    # without, 4 prompts.
    on = run_script([[(0, 1)], [(1, 0)]], cache=MemoryCache())
    off = run_script([[(0, 1)], [(1, 0)]], cache=None)
    assert (on.cache_hits, on.prompts, on.virtual_prompts, on.inferences, on.virtual_inferences) == \
        (1, 2, 4, 1, 2)
    assert (off.cache_hits, off.prompts, off.virtual_prompts) == (0, 4, 4)
