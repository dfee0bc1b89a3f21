"""The long-lived engine: requests admitted at any time share batches; limits and cancellation
are per request; results match lone runs (sorted()) and nothing judged is lost."""

from __future__ import annotations

import asyncio
import threading

import pytest
from conftest import CountingOracle, expected_order, score_docs

from cost.ledger import Ledger
from prp import MemoryCache, RankRequest, Reranker, ScoresOracle
from prp.engine import Engine, EngineClosed, SyncEngine


def requests(count: int, n: int) -> tuple[list[RankRequest], dict]:
    reqs, scores = [], {}
    for q in range(count):
        ids, s = score_docs(n, seed=q)
        ids = [f"q{q}-{d}" for d in ids]
        scores.update({f"q{q}-{d}": v for d, v in s.items()})
        reqs.append(RankRequest(f"query {q}", [f"text of {d}" for d in ids], ids, qid=f"q{q}"))
    return reqs, scores


class SlowOracle(CountingOracle):
    """Counts batches and yields to the loop for ``delay`` seconds per inference."""

    def __init__(self, inner, delay: float = 0.01):
        super().__init__(inner)
        self.delay = delay

    async def judge(self, prompts):
        await asyncio.sleep(self.delay)
        return await super().judge(prompts)


def test_requests_submitted_together_equal_one_rank_many_call():
    reqs, scores = requests(6, 30)
    alone = Reranker(ScoresOracle(scores), k=10, batch_size=16).rank_many(reqs)

    async def main():
        async with Engine(ScoresOracle(scores), k=10, batch_size=16) as engine:
            return await asyncio.gather(*(engine.rank_many([r]) for r in reqs))

    together = [res for [res] in asyncio.run(main())]
    for req, a, b in zip(reqs, alone, together, strict=True):
        assert b.doc_ids == a.doc_ids
        assert b.doc_ids[:10] == expected_order(list(req.doc_ids), scores, 10)[:10]
        assert (b.cost.prompts, b.cost.inferences) == (a.cost.prompts, a.cost.inferences)
        assert b.run_cost.prompts == b.cost.prompts  # each request's own run


def test_concurrent_requests_share_batches_and_a_late_one_joins():
    reqs, scores = requests(8, 30)
    lone = CountingOracle(ScoresOracle(scores))
    alone = Reranker(lone, k=10, batch_size=64, in_flight=1).rank_many(reqs)

    async def main():
        oracle = SlowOracle(ScoresOracle(scores))
        async with Engine(oracle, k=10, batch_size=64) as engine:
            first = [asyncio.create_task(engine.rank_many([r])) for r in reqs[:4]]
            while not oracle.batches:  # the first step is under way
                await asyncio.sleep(0.001)
            late = [asyncio.create_task(engine.rank_many([r])) for r in reqs[4:]]
            results = await asyncio.gather(*first, *late)
            assert engine.steps < sum(r.cost.rounds for [r] in results)  # rounds shared steps
        return oracle, [r for [r] in results]

    oracle, results = asyncio.run(main())
    for a, b in zip(alone, results, strict=True):
        assert b.doc_ids == a.doc_ids  # timing changes batches, never rankings
    assert sum(oracle.batches) == sum(lone.batches)  # same prompts (no pair asked twice)
    assert len(oracle.batches) < len(lone.batches) / 2
    assert sum(r.cost.inferences for r in results) == pytest.approx(len(oracle.batches))


def test_linger_lets_a_batch_fill_with_requests_announced():
    reqs, scores = requests(4, 20)

    async def main(linger, announce=True):
        oracle = CountingOracle(ScoresOracle(scores))
        async with Engine(oracle, k=5, batch_size=64, linger_ms=linger) as engine:
            arrivals = [engine.arriving() if announce else None for _ in reqs]  # all on their way

            async def submit(r, arrival):
                if arrival is not None:
                    arrival.close()  # as a server does: closed when submitted
                return await engine.rank_many([r])

            tasks = []
            for r, arrival in zip(reqs, arrivals, strict=True):  # submitted 2 ms apart
                tasks.append(asyncio.create_task(submit(r, arrival)))
                await asyncio.sleep(0.002)
            results = await asyncio.gather(*tasks)
            steps = engine.steps
        return len(oracle.batches), steps, [r.doc_ids for [r] in results]

    lingered, steps, together = asyncio.run(main(60_000))  # waits for the last one, not a minute
    at_once, _, apart = asyncio.run(main(0))
    assert lingered < at_once and together == apart
    alone = Reranker(ScoresOracle(scores), k=5, batch_size=64).rank_many(reqs)
    assert steps == max(r.cost.rounds for r in alone)  # all four took their first step together
    unannounced = asyncio.wait_for(main(600_000, announce=False), 60)  # never waits ten minutes
    assert asyncio.run(unannounced)[2] == apart


def test_a_lone_request_never_lingers():
    reqs, scores = requests(2, 20)

    async def main():
        async with Engine(ScoresOracle(scores), k=5, linger_ms=600_000) as engine:  # ten minutes
            first = await asyncio.wait_for(engine.rank_many([reqs[0]]), 30)
            with engine.arriving():
                pass  # announced, then given up: nothing to wait for
            second = await asyncio.wait_for(engine.rank_many([reqs[1]]), 30)
        return first + second

    results = asyncio.run(main())
    alone = Reranker(ScoresOracle(scores), k=5).rank_many(reqs)
    assert [r.doc_ids for r in results] == [r.doc_ids for r in alone]


def test_cancelling_drops_only_its_prompts_and_keeps_what_was_judged():
    reqs, scores = requests(2, 40)
    cache = MemoryCache()
    alone = Reranker(ScoresOracle(scores), k=10, batch_size=8, cache=False).rank(**vars(reqs[0]))
    sent: list[int] = []

    async def main():
        oracle = SlowOracle(ScoresOracle(scores), delay=0.005)
        async with Engine(oracle, k=10, batch_size=8, cache=cache,
                          on_inference=lambda inference: sent.append(len(inference.prompts))) as engine:
            keep = asyncio.create_task(engine.rank_many([reqs[0]]))
            drop = asyncio.create_task(engine.rank_many([reqs[1]]))
            while len(oracle.batches) < 3:
                await asyncio.sleep(0.001)
            drop.cancel()
            [kept] = await keep
            with pytest.raises(asyncio.CancelledError):
                await drop
            assert engine.in_flight == 0 and engine.queue_depth == 0
        return oracle, kept

    oracle, kept = asyncio.run(main())
    assert kept.doc_ids == alone.doc_ids and kept.cost.prompts == alone.cost.prompts
    assert sum(sent) == sum(oracle.batches) == len(cache)  # every prompt judged is cached
    assert sum(sent) < 2 * alone.cost.prompts  # the cancelled one stopped asking


def test_a_deadline_cuts_its_request_only():
    reqs, scores = requests(2, 40)

    async def main():
        oracle = SlowOracle(ScoresOracle(scores), delay=0.01)
        async with Engine(oracle, k=10, batch_size=4) as engine:
            return await asyncio.gather(engine.rank_many([reqs[0]], timeout=0.03),
                                        engine.rank_many([reqs[1]]))

    [[short], [full]] = asyncio.run(main())
    assert short.cut and not full.cut
    assert sorted(short.doc_ids) == sorted(reqs[0].doc_ids)  # still a permutation
    assert full.doc_ids[:10] == expected_order(list(reqs[1].doc_ids), scores, 10)[:10]


def test_per_request_budget_and_max_inferences():
    reqs, scores = requests(3, 30)

    async def main():
        async with Engine(ScoresOracle(scores), k=10, batch_size=4) as engine:
            return await asyncio.gather(engine.rank_many([reqs[0]], budget=20),
                                        engine.rank_many([reqs[1]], max_inferences=3),
                                        engine.rank_many([reqs[2]]))

    [[budgeted], [limited], [free]] = asyncio.run(main())
    assert budgeted.cut and budgeted.cost.prompts <= 20
    assert limited.cut and limited.cost.inferences <= 3
    assert not free.cut


def test_hooks_and_closed_engine():
    reqs, scores = requests(3, 20)
    seen, inferences = [], []

    async def main():
        engine = Engine(ScoresOracle(scores), k=5, batch_size=8, on_result=seen.append,
                        on_inference=lambda inference: inferences.append(len(inference.result.judgments)))
        async with engine:
            results = await engine.rank_many(reqs)
        with pytest.raises(EngineClosed):
            await engine.rank_many(reqs)
        return results

    results = asyncio.run(main())
    assert sorted(map(id, seen)) == sorted(map(id, results))  # each query's result, as it finished
    assert len(inferences) == pytest.approx(results[0].run_cost.inferences)
    assert sum(inferences) == results[0].run_cost.prompts


def test_sync_engine_serves_threads():
    reqs, scores = requests(6, 20)
    out: dict[int, list[str]] = {}
    with SyncEngine(ScoresOracle(scores), k=5, batch_size=32, linger_ms=5) as engine:
        def one(i: int) -> None:
            out[i] = engine.rank(**vars(reqs[i])).doc_ids

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i, req in enumerate(reqs):
        assert out[i][:5] == expected_order(list(req.doc_ids), scores, 5)[:5]


def test_reranker_context_shares_one_engine():
    reqs, scores = requests(4, 20)

    async def main():
        oracle = SlowOracle(ScoresOracle(scores))
        async with Reranker(oracle, k=5, batch_size=64) as rr:
            results = await asyncio.gather(*(rr.arank(**vars(r)) for r in reqs))
        return oracle, results

    oracle, results = asyncio.run(main())
    alone = [Reranker(ScoresOracle(scores), k=5, batch_size=64).rank(**vars(r)) for r in reqs]
    assert [r.doc_ids for r in results] == [r.doc_ids for r in alone]
    assert len(oracle.batches) < sum(r.cost.inferences for r in alone)


def test_reranker_closes_its_cache(tmp_path):
    from prp import DiskCache

    reqs, scores = requests(1, 20)
    with Reranker(ScoresOracle(scores), k=5, batch_size=8, cache=tmp_path / "c") as rr:
        result = rr.rank(**vars(reqs[0]))
        with pytest.warns(DeprecationWarning, match="run_cost"):
            assert rr.last_cost.prompts == result.run_cost.prompts == result.cost.prompts
    disk = DiskCache(tmp_path / "c")
    assert len(disk) == result.cost.prompts > 0
    disk.close()


def test_in_flight_bounds_the_queries_admitted_across_requests():
    reqs, scores = requests(6, 20)
    seen: list[int] = []

    async def main():
        engine = Engine(ScoresOracle(scores), k=5, batch_size=8, in_flight=2,
                        on_inference=lambda inference: seen.append(engine.in_flight))
        async with engine:
            return await asyncio.gather(*(engine.rank_many(reqs[i: i + 2]) for i in range(0, 6, 2)))

    results = [r for group in asyncio.run(main()) for r in group]
    assert seen and max(seen) <= 2
    for req, res in zip(reqs, results, strict=True):
        assert res.doc_ids[:5] == expected_order(list(req.doc_ids), scores, 5)[:5]


def test_a_failed_sync_engine_stops_its_thread():
    before = {t for t in threading.enumerate() if t.name == "prp-engine"}
    for bad in ({"linger_ms": -1}, {"bogus": 1}):
        with pytest.raises((ValueError, TypeError)):
            SyncEngine(ScoresOracle({}), **bad)
    assert {t for t in threading.enumerate() if t.name == "prp-engine"} == before


def test_a_boolean_timeout_is_refused():
    async def main():
        async with Engine(ScoresOracle({"a": 1.0}), k=1) as engine:
            with pytest.raises(ValueError, match="timeout"):
                await engine.rank("q", ["a"], ["a"], timeout=True)

    asyncio.run(main())


def test_an_unparsed_prompt_is_counted_once_for_the_query_that_paid_for_it():
    """Two identical queries (two requests together: one request refuses a qid twice) ask the
    same prompts; each unreadable one counts once, where its prompt is charged, so the unparsed
    share is over the prompts judged."""
    from prp.types import BatchResult, Judgment

    class Garbled(CountingOracle):
        async def judge(self, prompts):
            result = await super().judge(prompts)
            return BatchResult([Judgment(None, None, parsed=False) if p.first_id == "d1" else j
                                for p, j in zip(prompts, result.judgments, strict=True)],
                               result.prompt_tokens, result.completion_tokens)

    ids, scores = score_docs(6, seed=2)
    same = [RankRequest("q", ids, ids, qid="q") for _ in range(2)]
    judge = Garbled(ScoresOracle(scores))
    rr = Reranker(judge, sorter="allpair", k=6, batch_size=64, cache=False)

    async def together():
        async with rr:
            return [r for call in await asyncio.gather(*(rr.arank_many([q]) for q in same)) for r in call]

    with pytest.warns(Warning, match="unparsed"):
        results = asyncio.run(together())
    run = Ledger.total([r.cost for r in results])
    assert run.prompts == sum(judge.batches) == 30 + 5  # 15 pairs x 2 orders, the 5 retried once
    assert run.unparsed == 5 and run.unparsed_retries == 5
    assert sorted(r.cost.unparsed for r in results) == [0, 5]


def test_a_qid_given_twice_in_one_request_is_refused_by_name():
    """Two queries of one call with one qid would share cache keys (a simulated judge keys by
    qid): refused, as the CLI does, naming the qid; nothing is judged."""
    judge = CountingOracle(ScoresOracle({"a": 1.0, "b": 2.0}))
    twice = [RankRequest("q one", ["x", "y"], ["a", "b"], qid="q1"),
             RankRequest("q two", ["x", "y"], ["a", "b"], qid="q2"),
             RankRequest("q three", ["y", "x"], ["b", "a"], qid="q1")]
    with pytest.raises(ValueError, match="duplicate qid 'q1'"):
        Reranker(judge).rank_many(twice)
    unnamed = [RankRequest("same text", ["x", "y"], ["a", "b"]), {"query": "same text", "docs": ["x"]}]
    with pytest.raises(ValueError, match="duplicate qid 'same text'.*named by its text"):
        Reranker(judge).rank_many(unnamed)

    async def main():
        async with Engine(judge) as engine:
            with pytest.raises(ValueError, match="duplicate qid 'q1'"):
                await engine.rank_many(twice)
            return await engine.rank_many(twice[:2])  # the engine goes on

    assert [r.qid for r in asyncio.run(main())] == ["q1", "q2"]
    with SyncEngine(judge) as engine, pytest.raises(ValueError, match="duplicate qid 'q1'"):
        engine.rank_many(twice)
    assert len(judge.batches) == 1  # only the good request was judged
