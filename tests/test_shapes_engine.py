"""Set and list questions through the engine: simulated judges, cache keys, cross-query batching,
presentation order, budgets, tokens and the ledger by shape."""

from __future__ import annotations

import asyncio
import random

import pytest

from cost.model import LatencyModel, estimate_answer_tokens, estimate_question_tokens
from prp import NoisyOracle, PerfectOracle, Reranker, ScoresOracle
from prp.cache import MemoryCache
from prp.scheduler import Job, Settings, run
from prp.types import Choice, Prompt, RankRequest, ShapedPrompt
from sorters import ListQuestion, Pick, SetQuestion, finish


class Recording(PerfectOracle):
    """The perfect judge, keeping every batch it was sent."""

    def __init__(self, qrels, **options):
        super().__init__(qrels, **options)
        self.batches: list[list] = []

    async def judge(self, prompts):
        self.batches.append(list(prompts))
        return await super().judge(prompts)


def settings(batch_size=8, **extra):
    return Settings(batch_size=batch_size, orders="one", aggregate="auto", tie_band=0.0, in_flight=None,
                    concurrency=1, max_inferences=None, seed=0, latency=LatencyModel(), **extra)


def script(rounds, answers):
    """A sorter that asks the given rounds and records what it is answered."""
    def factory():
        def gen():
            for round_ in rounds:
                answers.append((yield round_))
            return finish([], 6)
        return gen()
    return factory


def job(qid, factory, n=6):
    ids = [f"d{i}" for i in range(n)]
    return Job(qid, f"query {qid}", ids, [f"passage {i} " * (i + 1) for i in range(n)], factory)


GRADES = {"d0": 0, "d1": 2, "d2": 1, "d3": 2, "d4": 3, "d5": 0}


def test_perfect_judge_answers_every_shape():
    judge = PerfectOracle({"q": GRADES})
    ids = ("d0", "d1", "d3", "d2")
    texts = ("a", "b", "c", "d")
    s = ShapedPrompt("q", "query", "set", "set-v1", ids, texts)
    assert judge.choose(s) == Choice((1,))  # d1 and d3 tie at 2: the first shown wins
    assert judge.choose(s._replace(shape="list")) == Choice((1, 2, 3, 0))
    off = PerfectOracle({"q": GRADES}, ties=False)
    u = off.utilities(s)
    assert all(0 <= x - GRADES[d] < 0.5 for x, d in zip(u, ids, strict=True)) and len(set(u)) == 4
    assert off.choose(s) == Choice((1,) if u[1] > u[2] else (2,))
    # pair margins: the grade difference by default, the jittered one with ties off
    p = Prompt("q", "query", "d1", "b", "d3", "c")
    assert judge.margin(p) == 0.0 and off.margin(p) == pytest.approx(u[1] - u[2])


def test_noisy_defaults_keep_pair_margins_and_doc_noise_is_fixed_per_document():
    qrels = {"q": GRADES}
    p = Prompt("q", "query", "d1", "b", "d3", "c")
    plain = NoisyOracle(qrels)
    assert plain.margin(p) == pytest.approx(0.2377 * 0 + 1.523 + 0.7707 * plain._gauss(p))
    noisy = NoisyOracle(qrels, doc_noise=0.5)
    assert noisy.margin(p) == pytest.approx(plain.margin(p) + noisy.error("q", "d1") - noisy.error("q", "d3"))
    assert noisy.error("q", "d1") == noisy.error("q", "d1") != 0 and plain.error("q", "d1") == 0
    s = ShapedPrompt("q", "query", "list", "list-v1", ("d0", "d1", "d4"), ("a", "b", "c"))
    assert sorted(noisy.choose(s).order) == [0, 1, 2] and noisy.choose(s) == noisy.choose(s)
    # a huge slot bias makes the first shown win every set, whatever the grades
    biased = NoisyOracle(qrels, bias=0, noise=0.1, slot_bias=(100.0,))
    assert biased.choose(s._replace(shape="set")) == Choice((0,))
    with pytest.raises(ValueError, match="doc_noise"):
        NoisyOracle(qrels, doc_noise=-1)


def test_mixed_shapes_of_many_queries_share_one_inference():
    judge = Recording({q: GRADES for q in ("a", "b", "c")})
    rounds = [[(0, 1), SetQuestion((0, 2, 4)), ListQuestion((5, 3, 1, 2))]]
    answers = {q: [] for q in "abc"}
    jobs = [job(q, script(rounds, answers[q])) for q in "abc"]
    asyncio.run(run(jobs, judge, None, settings(batch_size=9)))
    assert [len(b) for b in judge.batches] == [9]  # 3 queries x 3 shapes, one inference
    kinds = [type(p).__name__ if type(p) is Prompt else p.shape for p in judge.batches[0]]
    assert sorted(kinds) == ["Prompt"] * 3 + ["list"] * 3 + ["set"] * 3
    for q in "abc":
        assert answers[q] == [[-1, Pick(4), (3, 1, 2, 5)]]  # d1 > d0; d4 wins; d3 ties d1, shown first
        led = jobs["abc".index(q)].ledger
        assert dict(led.prompts_by_shape) == {"pair": 1, "set": 1, "list": 1}
        assert dict(led.questions_by_shape) == {"pair": 1, "set": 1, "list": 1}
        assert led.rounds == 1 and dict(led.rounds_by_shape) == {"pair": 1, "set": 1, "list": 1}
        assert led.inferences == pytest.approx(1 / 3) and led.comparisons == 1


def test_cache_keys_cover_the_order_shown_and_one_question_is_one_prompt():
    judge = Recording({"q": GRADES})
    cache = MemoryCache()
    answers: list = []
    same = [[SetQuestion((0, 2, 4)), SetQuestion((0, 2, 4))],  # asked twice in a round: one prompt
            [SetQuestion((0, 2, 4))],  # asked again later: a cache hit
            [SetQuestion((4, 2, 0)), ListQuestion((0, 2, 4))]]  # another order, another shape: 2 prompts
    one = job("q", script(same, answers))
    asyncio.run(run([one], judge, cache, settings()))
    assert [len(b) for b in judge.batches] == [1, 2]
    assert one.ledger.prompts == 3 and one.ledger.cache_hits == 1 and len(cache) == 3
    assert answers == [[Pick(4), Pick(4)], [Pick(4)], [Pick(4), (4, 2, 0)]]
    # a second query with the same qid and passages asks nothing new
    again = job("q", script(same, []))
    asyncio.run(run([again], judge, cache, settings()))
    assert len(judge.batches) == 2 and again.ledger.prompts == 0


def test_presentation_order_is_a_knob_and_answers_come_back_in_candidates():
    grades = {"d0": 1, "d1": 1, "d2": 0, "d3": 0, "d4": 0, "d5": 0}
    for how, winner in (("asked", 0), ("reverse", 1)):  # a tie goes to the first shown
        judge = Recording({"q": grades})
        answers: list = []
        asyncio.run(run([job("q", script([[SetQuestion((0, 1, 2))]], answers))], judge, None,
                        settings(shape_order=how)))
        shown = judge.batches[0][0].ids
        assert shown == (("d0", "d1", "d2") if how == "asked" else ("d2", "d1", "d0"))
        assert answers == [[Pick(winner)]]
    judge = Recording({"q": grades})
    asyncio.run(run([job("q", script([[ListQuestion(tuple(range(6)))]], []))], judge, None,
                    settings(shape_order="random")))
    assert sorted(judge.batches[0][0].ids) == [f"d{i}" for i in range(6)]
    with pytest.raises(ValueError, match="shape_order"):
        Reranker(judge, shape_order="sideways")


def test_a_pairs_only_judge_is_told_before_any_prompt():
    class PairsOnly(ScoresOracle):
        shapes = ("pair",)

    judge = PairsOnly({f"d{i}": i for i in range(6)})
    with pytest.raises(ValueError, match="does not answer set questions"):
        Reranker(judge, sorter="setwise:k=3", k=2).rank("q", ["x"] * 6, [f"d{i}" for i in range(6)])


def requests_and_qrels(queries=4, n=40, seed=0):
    rng = random.Random(seed)
    qrels, requests = {}, []
    for q in range(queries):
        qid = f"q{q}"
        qrels[qid] = {f"d{i}": rng.randint(0, 3) for i in range(n)}
        requests.append(RankRequest(f"query {q}", [f"text {i} " * (1 + i % 7) for i in range(n)],
                                    [f"d{i}" for i in range(n)], qid))
    return requests, qrels


@pytest.mark.parametrize("sorter", ["setwise:k=4", "listwise:window=10,step=5", "tournament:k=4",
                                    "tournament:k=8,depth=2"])
def test_batched_equals_unbatched_and_the_top_k_is_exact(sorter):
    requests, qrels = requests_and_qrels()
    runs = {}
    for batch_size, in_flight in ((1, 1), (8, None), (64, None)):
        rr = Reranker(PerfectOracle(qrels), sorter=sorter, k=5, batch_size=batch_size, in_flight=in_flight)
        runs[batch_size] = rr.rank_many(requests)
    for results in runs.values():
        for r in results:
            grades = qrels[r.qid]
            assert r.doc_ids[:5] == sorted(grades, key=lambda d: (-grades[d], int(d[1:])))[:5]
        assert [r.doc_ids for r in results] == [r.doc_ids for r in runs[1]]
        assert [r.cost.prompts for r in results] == [r.cost.prompts for r in runs[1]]
        assert [r.cost.rounds for r in results] == [r.cost.rounds for r in runs[1]]
    assert sum(r.cost.inferences for r in runs[1]) == sum(r.cost.prompts for r in runs[1])
    assert sum(r.cost.inferences for r in runs[64]) < sum(r.cost.inferences for r in runs[1])


def test_listwise_counts_and_tokens_by_hand():
    requests, qrels = requests_and_qrels(queries=2, n=100)
    results = Reranker(PerfectOracle(qrels), sorter="listwise:window=20,step=10", k=10, batch_size=1,
                       in_flight=1).rank_many(requests)
    for r, req in zip(results, requests, strict=True):
        assert r.cost.inferences == 9 and r.cost.rounds == 9 and r.cost.prompts == 9
        assert dict(r.cost.prompts_by_shape) == {"list": 9}
        # tokens: the first window shows candidates 80..99 in order (one rule for every shape)
        first = estimate_question_tokens(req.query, list(req.docs[80:100]))
        assert r.cost.input_tokens > 9 * first * 0.5
        assert r.cost.output_tokens == 9 * estimate_answer_tokens("list", 20)
    assert estimate_question_tokens("q", ["a" * 40, "b" * 40]) == 40 + 1 + 10 + 10
    assert estimate_question_tokens("q", ["a" * 40] * 4) == 40 + 1 + 40 + 2 * 3


def test_budget_counts_a_set_as_one_prompt():
    requests, qrels = requests_and_qrels(queries=1, n=40)
    full = Reranker(PerfectOracle(qrels), sorter="setwise:k=4", k=5).rank_many(requests)[0]
    cut = Reranker(PerfectOracle(qrels), sorter="setwise:k=4", k=5, budget=10).rank_many(requests)[0]
    assert full.cost.prompts > 10 and not full.cut
    assert cut.cut and cut.cost.prompts <= 10 and sorted(cut.doc_ids) == sorted(full.doc_ids)


def test_infer_answers_shapes_the_graph_implies():
    judge = Recording({"q": GRADES})
    answers: list = []
    rounds = [[ListQuestion((0, 1, 2, 4))], [SetQuestion((0, 2, 4)), ListQuestion((2, 4))]]
    one = job("q", script(rounds, answers))
    asyncio.run(run([one], judge, None, settings(infer=True)))
    assert answers == [[(4, 1, 2, 0)], [Pick(4), (4, 2)]]
    assert one.ledger.prompts == 1 and one.ledger.inferred == 2


def test_ledger_counts_by_shape_merge_copy_and_read_back():
    from cost.ledger import Ledger
    from prp.ray.rows import ledger_from_json, ledger_json

    one = Ledger()
    one.prompts_by_shape.update({"set": 3, "pair": 2})
    one.inferences_by_shape["set"] += 0.5
    back = ledger_from_json(ledger_json(one))
    assert back.prompts_by_shape == one.prompts_by_shape and back.to_dict() == one.to_dict()
    total = Ledger.total([one, back])
    assert total.prompts_by_shape == {"set": 6, "pair": 4} and total.inferences_by_shape == {"set": 1.0}
    copy = one.copy()
    copy.prompts_by_shape["list"] += 1
    assert "list" not in one.prompts_by_shape


def test_set_and_list_answers_survive_the_persistent_caches(tmp_path):
    from prp.cache import DiskCache
    from prp.cache_redis import _decode, _encode

    answers = [Choice((2,)), Choice((2,), (0.1, 0.2, 0.7)), Choice((1, 0, 2), None, True, True)]
    for choice in answers:
        assert _decode(_encode(choice)) == choice
    assert _decode(b"C|x|") is None  # not ours: a miss
    disk = DiskCache(tmp_path / "cache")
    key = ("simulated/perfect|set|set-v1", b"q" * 16, b"k" * 16, b"")
    disk.set(key, answers[1])
    assert disk.get(key) == answers[1]
    disk.close()


def test_an_unparsed_list_is_retried_once_and_counted_once():
    """A judge that cannot order a list: each window is asked, asked once more, then decides
    nothing; the ledger counts one unparsed prompt per window (not one per answer)."""
    class CannotOrder(ScoresOracle):
        def choose(self, p):
            return Choice(None, parsed=False) if p.shape == "list" else super().choose(p)

    ids = [f"d{i}" for i in range(6)]
    result = Reranker(CannotOrder({d: i for i, d in enumerate(ids)}), sorter="listwise:window=4,step=2",
                      k=3).rank("q", ["x"] * 6, ids)
    assert result.doc_ids == ids  # no decision: the input order
    assert (result.cost.prompts, result.cost.unparsed, result.cost.unparsed_retries) == (4, 2, 2)


def test_prompt_key_of_a_set_or_list_is_the_schedulers_key():
    """judge_all (prp calibrate-oracle) and the engine key a set or list prompt alike: what one
    cached, the other finds."""
    from prp.cache import prompt_key
    from prp.judging import judge_all

    requests, qrels = requests_and_qrels(queries=2, n=12)
    for sorter in ("setwise:k=3", "listwise:window=5,step=2"):
        judge, cache = Recording(qrels), MemoryCache()
        Reranker(judge, sorter=sorter, k=3, cache=cache).rank_many(requests)
        asked = [p for batch in judge.batches for p in batch]
        assert asked and all(type(p) is ShapedPrompt for p in asked)
        assert all(cache.get(prompt_key(judge.name, judge.keys_by, p)) is not None for p in asked)
        assert len({prompt_key(judge.name, judge.keys_by, p) for p in asked}) == len(cache)
        before = len(judge.batches)
        again = asyncio.run(judge_all(judge, asked, 8, cache))
        assert len(judge.batches) == before and all(type(c) is Choice for c in again)  # all from the cache
