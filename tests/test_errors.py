"""Bad input gets a clear error; a failing backend loses nothing already judged."""

from __future__ import annotations

import asyncio

import pytest
from conftest import CountingOracle, UnparsedOracle

from prp import BackendError, BatchResult, Judgment, Reranker, ScoresOracle
from prp.cache import MemoryCache
from prp.judgment import UnparsedWarning

ORACLE = ScoresOracle({"a": 1, "b": 2, "c": 3})


def test_empty_candidates_give_an_empty_result():
    oracle = CountingOracle(ORACLE)
    res = Reranker(oracle).rank("q", [])
    assert res.docs == [] and res.cost.prompts == 0 and oracle.batches == []


@pytest.mark.parametrize("kwargs, word", [
    ({"k": 0}, "k"), ({"k": -1}, "k"), ({"k": "3"}, "k"), ({"batch_size": 0}, "batch_size"),
    ({"in_flight": 0}, "in_flight"), ({"concurrency": 0}, "concurrency"),
    ({"orders": "three"}, "orders"), ({"aggregate": "vote"}, "aggregate"),
    ({"tie_band": -1.0}, "tie_band"),
])
def test_bad_settings(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Reranker(ORACLE, **kwargs)


def test_unknown_sorter_lists_the_known_ones():
    with pytest.raises(ValueError, match="heapsort, bubblesort, quicksort, mergesort, allpair"):
        Reranker(ORACLE, sorter="bogosort")


def test_unknown_sorter_option():
    with pytest.raises(ValueError, match="pivot"):
        Reranker(ORACLE, sorter="quicksort:pivto=first")


def test_duplicate_doc_ids():
    with pytest.raises(ValueError, match="duplicate doc ids: a"):
        Reranker(ORACLE).rank("q", ["x", "y", "z"], ["a", "b", "a"])


@pytest.mark.parametrize("docs", [["x", 3, "z"], "xyz", [b"x"], None])
def test_non_str_docs(docs):
    with pytest.raises(TypeError, match="docs"):
        Reranker(ORACLE).rank("q", docs)


def test_non_str_query_and_id_count():
    with pytest.raises(TypeError, match="query"):
        Reranker(ORACLE).rank(None, ["x"])
    with pytest.raises(ValueError, match="2 ids for 3 docs"):
        Reranker(ORACLE).rank("q", ["x", "y", "z"], ["a", "b"])


def test_not_a_backend():
    with pytest.raises(TypeError, match="Backend"):
        Reranker(object())


def test_sync_api_inside_a_loop_points_to_the_async_one():
    async def inner():
        with pytest.raises(RuntimeError, match="arank_many"):
            Reranker(ORACLE).rank("q", ["x", "y"])
        res = await Reranker(ORACLE).arank("q", ["x", "y"], ["a", "b"])
        assert res.doc_ids == ["b", "a"]
    asyncio.run(inner())


def test_backend_failure_keeps_what_was_judged():
    ids = [f"d{i}" for i in range(20)]
    scores = {d: float(i % 7) for i, d in enumerate(ids)}
    docs = [f"text {d}" for d in ids]
    full = Reranker(ScoresOracle(scores), sorter="quicksort", k=5, batch_size=4).rank("q", docs, ids)
    cache = MemoryCache()
    failing = CountingOracle(ScoresOracle(scores), fail_after=3)
    with pytest.raises(BackendError, match="ConnectionError: server went away"):
        Reranker(failing, sorter="quicksort", k=5, batch_size=4, cache=cache).rank("q", docs, ids)
    assert len(cache) == 12  # three batches of 4 prompts were judged and kept
    again = Reranker(ScoresOracle(scores), sorter="quicksort", k=5, batch_size=4, cache=cache)
    res = again.rank("q", docs, ids)
    assert res.doc_ids == full.doc_ids
    assert res.cost.prompts == full.cost.prompts - 12


def test_backend_failure_with_concurrency_keeps_finished_batches():
    ids = [f"d{i}" for i in range(20)]
    cache = MemoryCache()
    failing = CountingOracle(ScoresOracle({d: i for i, d in enumerate(ids)}), fail_after=2)
    with pytest.raises(BackendError):
        Reranker(failing, k=5, batch_size=4, concurrency=4, cache=cache).rank("q", ids, ids)
    assert len(cache) == 8


class ShortOracle(ScoresOracle):
    async def judge(self, prompts):
        result = await super().judge(prompts)
        return BatchResult(result.judgments[:-1])


def test_wrong_number_of_judgments():
    with pytest.raises(BackendError, match="returned 3 judgments for 4 prompts"):
        Reranker(ShortOracle({"a": 1, "b": 2, "c": 3}), batch_size=4).rank("q", ["x", "y", "z"],
                                                                          ["a", "b", "c"])


def test_unparsed_answers_are_ties_counted_and_never_cached():
    # d2 is the best, but every prompt showing it first is unreadable: its comparisons are
    # ties, so allpair cannot lift it above anything.
    ids = ["d0", "d1", "d2"]
    oracle = UnparsedOracle({"d0": 1, "d1": 0, "d2": 5}, bad_id="d2")
    cache = MemoryCache()
    with pytest.warns(UnparsedWarning, match="2 of 6 prompts"):
        res = Reranker(oracle, sorter="allpair", k=3, cache=cache).rank("q", ids, ids)
    assert res.cost.unparsed == 2  # (d2, d0) and (d2, d1)
    assert res.cost.unparsed_retries == 2 and res.cost.prompts == 8  # each asked once more
    assert len(cache) == 4  # 6 prompts, the 2 unparsed ones not stored
    # d2: two ties = 1.0; d0: beats d1, ties d2 = 1.5; d1: ties d2 = 0.5
    assert res.doc_ids == ["d0", "d2", "d1"]


def test_margin_aggregation_needs_margins():
    class NoMargin(ScoresOracle):
        async def judge(self, prompts):
            r = await super().judge(prompts)
            return BatchResult([type(j)(j.preferred, None) for j in r.judgments])
    with pytest.raises(ValueError, match="margins"):
        Reranker(NoMargin({"a": 1, "b": 2}), aggregate="margin").rank("q", ["x", "y"], ["a", "b"])
    res = Reranker(NoMargin({"a": 1, "b": 2}), aggregate="auto").rank("q", ["x", "y"], ["a", "b"])
    assert res.doc_ids == ["b", "a"]


def test_margin_aggregation_stops_at_the_first_batch_without_margins_judgment_subclasses_too():
    """An answer without a margin under ``aggregate="margin"`` fails the step at the first batch
    that brings one (it is cached; nothing more is sent), also when the judge answers with a
    subclass of Judgment."""
    class Answer(Judgment):
        pass

    class NoMargin(ScoresOracle):
        calls = 0

        async def judge(self, prompts):
            NoMargin.calls += 1
            r = await super().judge(prompts)
            return BatchResult([Answer(j.preferred, None) for j in r.judgments])
    ids = [f"d{i}" for i in range(12)]
    with pytest.raises(ValueError, match="margins"):
        Reranker(NoMargin({d: i for i, d in enumerate(ids)}), sorter="allpair", batch_size=4,
                 aggregate="margin").rank("q", ids, ids)
    assert NoMargin.calls == 1
