"""Issue 8, library side: no silent wrong ranking from a judge's unusable answers (NaN or
infinite margins, unknown sides, wrong types), the unparsed policy (retry once, warn,
``max_unparsed``), checks at construction, the memory cache's LRU bound."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import CountingOracle, expected_order, score_docs

from prp import (
    BackendError,
    BatchResult,
    DiskCache,
    Judgment,
    MemoryCache,
    NoisyOracle,
    Reranker,
    ScoresOracle,
)
from prp.judgment import UNPARSED, UnparsedError, UnparsedWarning, check_judgment

NAN, INF = math.nan, math.inf


def rank(oracle, ids, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnparsedWarning)
        return Reranker(oracle, **kwargs).rank("q", [f"text {d}" for d in ids], ids)


# --- NaN and infinite margins ------------------------------------------------------------------

def test_nan_margins_are_unparsed_never_cached_and_never_a_decided_tie(tmp_path):
    scores = {"a": 1.0, "b": NAN, "c": 3.0}
    memory, disk = MemoryCache(), DiskCache(tmp_path / "judgments")
    for cache in (memory, disk):
        with pytest.warns(UnparsedWarning, match="stayed unparsed after one retry"):
            res = Reranker(ScoresOracle(scores), sorter="allpair", k=3, cache=cache).rank(
                "q", ["x", "y", "z"], ["a", "b", "c"])
        # (a, b) and (b, c) in both orders are unreadable: 4 prompts, each asked twice
        assert res.cost.unparsed == 4 and res.cost.unparsed_retries == 4 and res.cost.prompts == 10
        assert len(cache) == 2  # only (a, c) and (c, a): finite margins
        assert res.doc_ids.index("c") < res.doc_ids.index("a")  # the one decided comparison holds
    disk.close()


def test_nan_only_in_one_order_is_unparsed_not_a_tie():
    # The judge answers NaN whenever the best passage is shown first; before, orders="both"
    # summed the margins into NaN: a silent tie.
    class HalfNaN(ScoresOracle):
        async def judge(self, prompts):
            result = await super().judge(prompts)
            return BatchResult([Judgment("A", NAN) if p.first_id == "best" else j
                                for p, j in zip(prompts, result.judgments, strict=True)])

    ids = ["d1", "d2", "best"]
    res = rank(HalfNaN({"d1": 1, "d2": 2, "best": 9}), ids, sorter="allpair", k=3)
    assert res.cost.unparsed == 2  # (best, d1) and (best, d2), after their retries


def test_a_nan_margin_in_an_old_disk_cache_is_a_miss(tmp_path):
    import diskcache

    cache = DiskCache(tmp_path / "c")
    key = ("simulated/scores", b"q" * 16, b"a" * 16, b"b" * 16)
    with diskcache.Cache(str(tmp_path / "c")) as raw:  # as an older version wrote it
        raw.set(DiskCache._disk_key(key), ("A", NAN))
    assert cache.get(key) is None
    cache.set(key, Judgment("A", 2.0))
    assert cache.get(key) == Judgment("A", 2.0)
    cache.close()


@pytest.mark.parametrize("judgment, usable", [
    (Judgment("A", 1.5), True), (Judgment("B", None), True), (Judgment(None, 0.0), True),
    (Judgment("C", 1.0), False), (Judgment("a", None), False), (Judgment(1, None), False),
    (Judgment("A", NAN), False), (Judgment("B", -INF), True), (Judgment("A", INF), True),
    (Judgment("A", 10**400), True), (Judgment("A", "3"), False),
    (Judgment("A", True), False), (Judgment(["A"], None), False), (Judgment("A", 1.0, parsed=False), False),
])
def test_one_rule_for_usable_judgments(judgment, usable):
    checked = check_judgment(judgment)
    assert checked.parsed is usable
    if not usable:
        assert checked == UNPARSED


def test_numpy_margins_become_floats():
    checked = check_judgment(Judgment("A", np.float32(0.5)))
    assert checked == Judgment("A", 0.5) and type(checked.margin) is float


def test_unknown_side_is_unparsed_not_a_decision():
    class SideC(ScoresOracle):
        async def judge(self, prompts):
            result = await super().judge(prompts)
            return BatchResult([Judgment("C", None) for _ in result.judgments])

    res = rank(SideC({"a": 1, "b": 2}), ["a", "b"], aggregate="consistent")
    assert res.cost.unparsed == 2 and res.doc_ids == ["a", "b"]


# --- a backend returning the wrong type ---------------------------------------------------------

class Returns(ScoresOracle):
    def __init__(self, make):
        super().__init__({"a": 1, "b": 2, "c": 3})
        self.make = make

    async def judge(self, prompts):
        return self.make(await super().judge(prompts))


@pytest.mark.parametrize("make, message", [
    (lambda r: list(r.judgments), "returned list from judge"),
    (lambda r: None, "returned NoneType from judge"),
    (lambda r: BatchResult(r.judgments[:-1]), "returned 2 judgments for 3 prompts"),
    (lambda r: BatchResult(r.judgments + r.judgments), "returned 6 judgments for 3 prompts"),
    (lambda r: BatchResult([tuple(j) for j in r.judgments]), "returned a tuple where a Judgment"),
    (lambda r: BatchResult([None] * len(r.judgments)), "returned a NoneType where a Judgment"),
    (lambda r: BatchResult(r.judgments, prompt_tokens=None), "prompt_tokens=None"),
    (lambda r: BatchResult(r.judgments, completion_tokens=NAN), "completion_tokens=nan"),
])
def test_wrong_types_from_judge_are_backend_errors(make, message):
    with pytest.raises(BackendError, match=message):
        Reranker(Returns(make), sorter="allpair", k=3, orders="one", batch_size=3).rank(
            "q", ["x", "y", "z"], ["a", "b", "c"])


# --- the unparsed policy: one retry, a warning, max_unparsed ----------------------------------

class Flaky(ScoresOracle):
    """Unreadable the first time it sees each prompt in ``bad``; fine the second time."""

    def __init__(self, scores, bad=None, always=()):
        super().__init__(scores)
        self.bad, self.always, self.seen = bad, set(always), set()
        self.calls: list[int] = []

    async def judge(self, prompts):
        self.calls.append(len(prompts))
        result = await super().judge(prompts)
        out = []
        for p, j in zip(prompts, result.judgments, strict=True):
            key = (p.first_id, p.second_id)
            first_time = key not in self.seen
            self.seen.add(key)
            if p.first_id in self.always or (first_time and (self.bad is None or key in self.bad)):
                out.append(Judgment(None, None, parsed=False))
            else:
                out.append(j)
        return BatchResult(out)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_every_unparsed_prompt_is_retried_once_and_the_ranking_is_right(concurrency):
    ids, scores = score_docs(30, seed=4)
    clean = rank(ScoresOracle(scores), ids, k=10, batch_size=4)
    flaky = Flaky(scores)  # every prompt's first answer is unreadable
    res = rank(flaky, ids, k=10, batch_size=4, concurrency=concurrency)
    assert res.doc_ids == clean.doc_ids == expected_order(ids, scores, 10)
    assert res.cost.unparsed == 0
    assert res.cost.unparsed_retries == clean.cost.prompts
    assert res.cost.prompts == 2 * clean.cost.prompts == sum(flaky.calls)
    assert res.cost.inferences == pytest.approx(len(flaky.calls))


def test_a_prompt_unparsed_twice_is_a_tie_asked_exactly_twice():
    ids = ["d0", "d1", "d2"]
    oracle = CountingOracle(Flaky({"d0": 1, "d1": 0, "d2": 5}, bad=set(), always={"d2"}))
    cache = MemoryCache()
    with pytest.warns(UnparsedWarning, match=r"2 of 6 prompts \(33.33 %\)"):
        res = Reranker(oracle, sorter="allpair", k=3, cache=cache, batch_size=8).rank("q", ids, ids)
    assert res.cost.unparsed == 2 and res.cost.unparsed_retries == 2
    assert oracle.batches == [6, 2]  # the retries go in a later batch of the same step
    assert len(cache) == 4


def test_retries_stay_within_the_budget():
    ids, scores = score_docs(20, seed=1)
    oracle = CountingOracle(Flaky(scores))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnparsedWarning)
        res = Reranker(oracle, k=5, batch_size=4, max_inferences=7).rank("q", ids, ids)
    assert len(oracle.batches) <= 7 and res.cut


def test_max_unparsed_fails_the_call_past_the_threshold():
    ids = ["d0", "d1", "d2"]
    bad = Flaky({"d0": 1, "d1": 0, "d2": 5}, bad=set(), always={"d2"})  # 2 of 6 prompts: 33 %
    with pytest.raises(UnparsedError, match=r"33.33 %.*above max_unparsed=0.3") as info:
        Reranker(bad, sorter="allpair", k=3, max_unparsed=0.3).rank("q", ids, ids)
    assert [r.doc_ids for r in info.value.results] == [["d0", "d2", "d1"]]
    with pytest.warns(UnparsedWarning):
        res = Reranker(bad, sorter="allpair", k=3, max_unparsed=0.4).rank("q", ids, ids)
    assert res.cost.unparsed == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing unparsed: no warning at all
        Reranker(ScoresOracle({"a": 1, "b": 2}), max_unparsed=0.0).rank("q", ["x", "y"], ["a", "b"])


@pytest.mark.parametrize("value", [-0.1, 1.5, NAN, "0.1", True])
def test_bad_max_unparsed(value):
    with pytest.raises(ValueError, match="max_unparsed"):
        Reranker(ScoresOracle({}), max_unparsed=value)


# --- checks at construction --------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, word", [
    ({"sorter": None}, TypeError, "sorter must be"),
    ({"sorter": 3}, TypeError, "sorter must be"),
    ({"seed": "x"}, TypeError, "seed must be an integer"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"tie_band": NAN}, ValueError, "tie_band"),
    ({"tie_band": INF}, ValueError, "tie_band"),
    ({"tie_band": "1"}, ValueError, "tie_band"),
    ({"sorter": "bubblesort:skip_tail=2"}, ValueError, "skip_tail must be true or false"),
    ({"sorter": "quicksort:pivot=random,seed=x"}, ValueError, "seed must be an integer"),
])
def test_bad_settings_fail_at_construction(kwargs, error, word):
    with pytest.raises(error, match=word):
        Reranker(ScoresOracle({}), **kwargs)


@pytest.mark.parametrize("kwargs, word", [
    ({"scale": NAN}, "scale"), ({"scale": INF}, "scale"), ({"bias": "abc"}, "bias"),
    ({"bias": -INF}, "bias"), ({"noise": NAN}, "noise"), ({"noise": -1.0}, "noise"),
    ({"seed": "x"}, "seed"), ({"seed": 0.5}, "seed"),
])
def test_noisy_oracle_rejects_bad_parameters(kwargs, word):
    with pytest.raises(ValueError, match=word):
        NoisyOracle({}, **kwargs)


def test_margin_aggregation_with_a_judge_that_says_it_has_no_margins_fails_before_paying():
    oracle = CountingOracle(ScoresOracle({"a": 1, "b": 2}))
    oracle.reports_margins = False  # e.g. a text-only server
    with pytest.raises(ValueError, match="does not"):
        Reranker(oracle, aggregate="margin")
    assert oracle.batches == []


def test_margin_aggregation_with_a_judge_that_does_not_say_fails_at_its_first_answer():
    class NoMargin(ScoresOracle):
        async def judge(self, prompts):
            result = await super().judge(prompts)
            return BatchResult([Judgment(j.preferred, None) for j in result.judgments])

    ids, scores = score_docs(40, seed=2)
    oracle = CountingOracle(NoMargin(scores))
    cache = MemoryCache()
    with pytest.raises(ValueError, match="answered without one"):
        Reranker(oracle, aggregate="margin", batch_size=4, cache=cache).rank("q", ids, ids)
    assert oracle.batches == [4]  # one inference, not the whole first step (78 prompts)
    assert len(cache) == 4  # and what it paid for is kept


# --- the memory cache's bound -----------------------------------------------------------------

def test_memory_cache_is_lru_bounded():
    cache = MemoryCache(max_entries=3)
    keys = [("n", b"q", bytes([i]), b"x") for i in range(5)]
    for key in keys[:3]:
        cache.set(key, Judgment("A", 1.0))
    assert cache.get(keys[0]) is not None  # keys[0] is now the most recently used
    cache.set(keys[3], Judgment("B", -1.0))
    assert len(cache) == 3 and cache.get(keys[1]) is None  # the least recently used went
    assert cache.get(keys[0]) is not None and cache.get(keys[3]) is not None
    cache.set(keys[4], Judgment("A", 1.0))
    assert cache.get(keys[2]) is None and len(cache) == 3


def test_default_memory_cache_is_bounded_and_a_bounded_run_ranks_the_same():
    from prp.cache import DEFAULT_MAX_ENTRIES

    assert Reranker(ScoresOracle({})).cache.max_entries == DEFAULT_MAX_ENTRIES
    ids, scores = score_docs(40, seed=3)
    full = rank(ScoresOracle(scores), ids, sorter="heapsort", k=10)
    tiny = rank(ScoresOracle(scores), ids, sorter="heapsort", k=10, cache=MemoryCache(max_entries=5))
    assert tiny.doc_ids == full.doc_ids
    assert tiny.cost.prompts >= full.cost.prompts  # evicted answers are paid again, never wrong
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(max_entries=0)
