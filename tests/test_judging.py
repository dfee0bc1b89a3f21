"""One road to the judge (prp.judging), the two-layer cache and the grid runner (prp.grid)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from conftest import CountingOracle, FixedTokensOracle, score_docs

from cost.model import estimate_prompt_tokens
from prp import RankRequest, ScoresOracle
from prp.cache import MemoryCache, TieredCache, prompt_key
from prp.grid import Cell, cells, run_cell, run_grid
from prp.judging import judge_all, judge_batch
from prp.types import BatchResult, Judgment, Prompt

ROOT = Path(__file__).resolve().parents[1]


def _prompts(n: int) -> list[Prompt]:
    return [Prompt("q", "a query", f"d{i}", f"passage number {i} " * 3, f"d{i + 1}", f"passage {i + 1}")
            for i in range(n)]


def _keys(backend, prompts):
    return [prompt_key(backend.name, backend.keys_by, p) for p in prompts]


class HalfUnparsed(ScoresOracle):
    """Every second answer cannot be read."""

    async def judge(self, prompts):
        result = await super().judge(prompts)
        judgments = [j if i % 2 == 0 else Judgment(None, None, parsed=False)
                     for i, j in enumerate(result.judgments)]
        return BatchResult(judgments, result.prompt_tokens, result.completion_tokens)


def test_a_batch_is_one_call_checked_and_only_parsed_answers_are_cached():
    scores = {f"d{i}": float(i % 3) for i in range(7)}
    backend = CountingOracle(HalfUnparsed(scores))
    prompts, cache = _prompts(6), MemoryCache()
    done = asyncio.run(judge_batch(backend, prompts, _keys(backend, prompts), cache))
    assert backend.batches == [6] and done.sent == 6 and done.seconds >= 0
    assert [j.parsed for j in done.result.judgments] == [True, False] * 3
    assert len(cache) == 3  # the unparsed half is never stored
    assert all(cache.get(k) == j for k, j in zip(_keys(backend, prompts), done.result.judgments, strict=True)
               if j.parsed)
    assert done.record() == {"prompts": 6, "prompt_tokens": done.result.prompt_tokens,
                             "completion_tokens": 6, "seconds": done.seconds}  # one token an answer


def test_a_broken_answer_is_a_backend_error():
    class Short(ScoresOracle):
        async def judge(self, prompts):
            return BatchResult([Judgment("A", 1.0)], 0, 0)

    from prp import BackendError

    backend = Short({})
    with pytest.raises(BackendError, match="1 judgments for 3 prompts"):
        asyncio.run(judge_batch(backend, _prompts(3), _keys(backend, _prompts(3)), None))


def test_the_replay_layer_answers_what_it_holds_and_only_the_rest_reaches_the_judge():
    scores = {f"d{i}": float(i) for i in range(9)}
    judge = CountingOracle(FixedTokensOracle(scores, tokens=50))
    prompts = _prompts(8)
    keys = _keys(judge, prompts)
    store = MemoryCache()
    truth = asyncio.run(judge_batch(ScoresOracle(scores), prompts, keys, None)).result.judgments
    for i in (0, 3, 5):
        store.set(keys[i], truth[i])
    tiered = TieredCache(MemoryCache(), store, replay=True)
    assert tiered.get(keys[0]) is None  # look-ups see the front only: the ledger counts the run's own
    done = asyncio.run(judge_batch(judge, prompts, keys, tiered))
    assert judge.batches == [5] and done.sent == 5 and done.sent_tokens == 250
    assert list(done.result.judgments) == list(truth)
    # replayed prompts are charged the text estimate scaled by reported / estimated so far
    sent = [p for i, p in enumerate(prompts) if i not in (0, 3, 5)]
    ratio = 250 / sum(estimate_prompt_tokens(p.query, p.first, p.second) for p in sent)
    replayed = sum(estimate_prompt_tokens(p.query, p.first, p.second) for p in prompts[0:6:3] + [prompts[5]])
    assert done.result.prompt_tokens == 250 + round(ratio * replayed)
    assert all(tiered.front.get(k) is not None for k in keys)  # every answer is now in the front
    again = asyncio.run(judge_batch(judge, prompts, keys, TieredCache(MemoryCache(), store, replay=True)))
    assert judge.batches == [5] and again.sent == 0 and again.seconds == 0.0  # no call at all


def test_a_shared_store_is_a_cache_hit_and_is_copied_to_the_front():
    key = ("j", b"q" * 16, b"a" * 16, b"b" * 16)
    back = MemoryCache()
    back.set(key, Judgment("A", 2.0))
    tiered = TieredCache(MemoryCache(), back)
    assert tiered.get(key) == Judgment("A", 2.0) and tiered.front.get(key) == Judgment("A", 2.0)
    assert tiered.recall([key]) == [None]  # not a replay layer


def test_judge_all_pays_only_for_what_the_cache_lacks():
    scores = {f"d{i}": float(i) for i in range(12)}
    judge = CountingOracle(ScoresOracle(scores))
    cache = MemoryCache()
    first = asyncio.run(judge_all(judge, _prompts(10), 4, cache))
    assert judge.batches == [4, 4, 2]
    second = asyncio.run(judge_all(judge, _prompts(11), 4, cache))
    assert judge.batches == [4, 4, 2, 1] and second[:10] == first


def _grid_requests(queries: int = 4, n: int = 16):
    ids, scores = score_docs(n, seed=3)
    return [RankRequest(f"query {q}", ids, ids, qid=f"q{q}") for q in range(queries)], scores


def test_a_cell_over_a_replay_store_counts_its_own_schedule_and_pays_once():
    requests, scores = _grid_requests()
    store = MemoryCache()
    judge = CountingOracle(ScoresOracle(scores))
    cell = Cell("heapsort", 4)
    first = run_cell(requests, judge, cell, store, k=5)
    paid = len(judge.batches)
    assert first.physical.inferences == paid == first.cost.inferences  # a fresh store: all paid
    assert first.physical.prompts == sum(judge.batches) == first.cost.prompts
    second = run_cell(requests, judge, cell, store, k=5)
    assert len(judge.batches) == paid and second.physical.inferences == 0  # all replayed
    assert second.cost.per_query() | {"wall_seconds": 0} == first.cost.per_query() | {"wall_seconds": 0}
    assert [r.doc_ids for r in second.results] == [r.doc_ids for r in first.results]
    alone = run_cell(requests, ScoresOracle(scores), cell, None, k=5)  # no store: the same counts
    assert alone.cost.inferences == first.cost.inferences and alone.cost.cache_hits == first.cost.cache_hits


def test_the_grid_runs_every_cell_in_order_each_as_alone():
    requests, scores = _grid_requests()
    grid = cells(["quicksort", "heapsort"], [2, 8], orders=["both", "one"], caches=[False, True])
    assert len(grid) == 16 and grid[0] == Cell("quicksort", 2, "both", None, False)
    assert grid[1] == Cell("quicksort", 2, "both", None, True) and grid[-1] == Cell("heapsort", 8, "one")
    runs = list(run_grid(requests, ScoresOracle(scores), grid[:6], k=5))
    assert [r.cell for r in runs] == grid[:6]
    for done in runs:
        alone = run_cell(requests, ScoresOracle(scores), done.cell, k=5)
        assert alone.cost.inferences == done.cost.inferences
        assert [r.doc_ids[:5] for r in done.results] == [sorted(r.doc_ids, key=lambda d: -scores[d])[:5]
                                                         for r in done.results]
    no_cache, cached = runs[0].cost, runs[1].cost
    assert no_cache.cache_hits == 0 and cached.virtual_prompts == no_cache.prompts


def test_no_wrapper_backend_remains_outside_the_judges():
    """Progress, timing, replay and counting are hooks or cache layers: only judges (prp/oracles)
    implement ``judge``."""
    wrappers = [str(path.relative_to(ROOT)) for path in (ROOT / "prp").rglob("*.py")
                if "oracles" not in path.parts and re.search(r"async def judge\(", path.read_text())]
    assert wrappers == [], wrappers


def test_caches_of_their_own_are_written_through_set_one_judgment_at_a_time():
    """judge_batch stores a batch in one call only in the library's MemoryCache: a subclass that
    overrides ``set`` sees every write, and a cache whose ``set_many`` means something else (a
    mapping, as in other libraries) is not handed a list."""
    class Counting(MemoryCache):
        writes = 0

        def set(self, key, judgment):
            Counting.writes += 1
            super().set(key, judgment)

    class MappingStyle(MemoryCache):
        def set_many(self, mapping):
            raise AssertionError("set_many is not this cache's batch write")

    oracle = ScoresOracle({"a": 1.0, "b": 2.0, "c": 3.0})
    prompts = [Prompt("q", "query", x, f"text {x}", y, f"text {y}") for x, y in (("a", "b"), ("b", "c"))]
    keys = [prompt_key(oracle.name, oracle.keys_by, p) for p in prompts]
    for cache in (Counting(), MappingStyle()):
        asyncio.run(judge_batch(oracle, prompts, keys, cache))
        assert all(cache.get(key) is not None for key in keys)
    assert Counting.writes == 2
