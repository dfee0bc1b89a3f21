"""Answers (prp.judgment's rule): +-inf margins are decisive by their sign; NaN, non-numeric and
boolean log-probabilities are unparsed (retried once, counted, never a decision, never a crash).
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from prp import MemoryCache, Reranker, ScoresOracle
from prp.aggregate import DECISIVE, BiasEstimate, outcome
from prp.judgment import UnparsedWarning
from prp.prompts import UnusableLogprob, judgment_from_scores, scores_from_top_logprobs
from prp.types import BatchResult, Judgment

INF, NAN = math.inf, math.nan


class Decisive(ScoresOracle):
    """A custom judge that answers +inf when A is the more relevant, -inf when B is."""

    async def judge(self, prompts):
        result = await super().judge(prompts)
        return BatchResult([Judgment(j.preferred, math.copysign(INF, j.margin) if j.margin else 0.0)
                            for j in result.judgments], result.prompt_tokens, result.completion_tokens)


def worst_first(n: int = 40, seed: int = 3) -> tuple[list[str], dict[str, float]]:
    rng = random.Random(seed)
    scores = {f"d{i}": rng.random() for i in range(n)}
    return sorted(scores, key=scores.get), scores  # the first stage gave the worst first


@pytest.mark.parametrize("sorter, orders", [("quicksort", "both"), ("heapsort", "one"),
                                            ("mergesort", "random"), ("active", "both")])
def test_infinite_margins_are_decisions_even_with_candidates_worst_first(sorter, orders):
    ids, scores = worst_first()
    top10 = set(sorted(ids, key=lambda d: -scores[d])[:10])
    result = Reranker(Decisive(scores), sorter=sorter, k=10, orders=orders).rank("q", ids, ids)
    assert len(top10 & set(result.doc_ids[:10])) == 10  # was 0 of 10: inf read as unparsed
    assert result.cost.unparsed == 0
    if sorter != "active":  # an exact sorter on a consistent judge: the exact top 10
        assert result.doc_ids[:10] == sorted(top10, key=lambda d: -scores[d])


def test_infinite_margins_under_auto_debias_leave_the_bias_estimate_finite():
    ids, scores = worst_first(20)
    result = Reranker(Decisive(scores), sorter="quicksort", k=5, orders="random", debias="auto",
                      aggregate="margin").rank("q", ids, ids)
    assert result.doc_ids[:5] == sorted(ids, key=lambda d: -scores[d])[:5]
    estimate = BiasEstimate()
    estimate.observe(("a", "b"), [(True, Judgment("A", INF)), (False, Judgment("B", -INF))], coin=False)
    estimate.observe(("a", "c"), [(True, Judgment("A", 2.0)), (False, Judgment("A", 1.0))], coin=False)
    assert estimate.value == 1.5 and estimate.count == 1  # the infinite pair skipped


def test_infinite_margins_are_cached_and_replayed_as_decisions(tmp_path):
    from prp.cache import DiskCache

    ids, scores = worst_first(12)
    for cache in (MemoryCache(), DiskCache(tmp_path / "c")):
        first = Reranker(Decisive(scores), sorter="quicksort", k=3, cache=cache).rank("q", ids, ids)
        again = Reranker(Decisive(scores), sorter="quicksort", k=3, cache=cache).rank("q", ids, ids)
        assert again.doc_ids == first.doc_ids and again.cost.inferences == 0
        assert first.doc_ids[:3] == sorted(ids, key=lambda d: -scores[d])[:3]
        if hasattr(cache, "close"):
            cache.close()


A, B = Judgment("A", INF), Judgment("B", -INF)


@pytest.mark.parametrize("answers, bias, expected, soft", [
    ([(True, A)], 0.0, 1, DECISIVE), ([(False, A)], 0.0, -1, -DECISIVE), ([(True, B)], 5.0, -1, -DECISIVE),
    ([(True, A), (False, B)], 0.0, 1, DECISIVE),  # both orders decisive for a
    ([(True, A), (False, A)], 0.0, 0, 0.0),  # +inf and -inf for a: they cancel, never NaN
    ([(True, A), (False, Judgment("A", 0.5))], 0.0, 1, DECISIVE),  # inf outvotes any finite margin
    ([(True, Judgment("B", -1e300)), (False, Judgment("B", -INF))], 0.0, 1, DECISIVE),
    ([(True, A), (False, A), (True, Judgment("A", 2.0))], 0.0, 1, 2.0),  # cancelled: the finite decides
    ([(True, A), (False, A), (True, Judgment("B", -2.0))], 0.0, -1, -2.0),
    ([(True, A), (True, Judgment(None, None, parsed=False))], 0.0, 0, 0.0),  # unparsed: a tie, as ever
])
def test_the_aggregation_rule_for_infinite_margins(answers, bias, expected, soft):
    assert outcome(answers, "margin", 0.0, bias) == expected
    assert outcome(answers, "auto", 0.5, bias) == expected
    assert outcome(answers, "margin", 0.0, bias, soft=True) == soft


def test_consistent_aggregation_reads_sides_only():
    assert outcome([(True, A), (False, A)], "consistent", 0.0) == 0
    assert outcome([(True, A), (False, B)], "consistent", 0.0) == 1


# --- log-probabilities --------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-0.1", None, True, False, NAN, INF, [-0.1], {"x": 1}])
def test_an_unusable_logprob_of_a_or_b_is_refused(value):
    with pytest.raises(UnusableLogprob):
        scores_from_top_logprobs({" A": value, " B": -1.0})
    with pytest.raises(UnusableLogprob):
        scores_from_top_logprobs([("B", value), ("A", -1.0)])


def test_usable_logprobs_and_other_tokens():
    top = {" A": -0.5, "A": -0.1, " B": -2, " C": "junk", "x": None}  # other tokens: ignored
    assert scores_from_top_logprobs(top) == (-0.1, -2.0)
    assert scores_from_top_logprobs({" A": -INF, " B": -1.0}) == (-INF, -1.0)  # probability 0
    assert judgment_from_scores(-INF, -1.0) == Judgment("B", -30.0)
    assert not judgment_from_scores(-INF, -INF).parsed and not judgment_from_scores(NAN, -1.0).parsed


@pytest.mark.parametrize("value", ["x", None, True, NAN])
def test_wire_choices_with_a_broken_logprob_are_unparsed(value):
    pytest.importorskip("httpx")
    from prp.oracles.openai_wire import chat_judgment, completion_judgment, usage

    choice = {"text": " A", "logprobs": {"top_logprobs": [{" A": value, " B": -2.0}]}}
    assert not completion_judgment(choice).parsed  # not read from its text either
    chat = {"message": {"content": "A"}, "logprobs": {"content": [
        {"token": "A", "logprob": value, "top_logprobs": [{"token": "B", "logprob": -2.0}]}]}}
    assert not chat_judgment(chat).parsed
    assert usage({"usage": {"prompt_tokens": value, "completion_tokens": 3}}) == (0, 3)


# --- end to end through the OpenAI judge and a real loopback server -----------------------------

REL = {"d0": 1, "d1": 5, "d2": 3, "d3": 7, "d4": 2, "d5": 6}
IDS = list(REL)


@pytest.mark.parametrize("value", ["oops", None, True, NAN])
def test_a_server_sending_broken_logprobs_gives_unparsed_answers_retried_once_and_counted(value):
    """Every prompt showing d3 first gets " A": <value>: unparsed, asked once more (unparsed
    again), counted, a tie; the run completes and everything else is decided."""
    pytest.importorskip("httpx")
    pytest.importorskip("asyncio_throttle")
    from http_fault_server import FakeJudge, FaultServer

    from prp.oracles.http import OpenAIBackend

    fake = FakeJudge(REL, garble={"d3": value})
    with FaultServer(fake) as server:
        backend = OpenAIBackend("fake-model", server.url, backoff=0.01, seed=0)
        cache = MemoryCache()
        reranker = Reranker(backend, sorter="allpair", k=6, batch_size=8, cache=cache)
        with pytest.warns(UnparsedWarning, match="5 of 30 prompts"):
            result = reranker.rank("which doc?", [f"doc {d} text" for d in IDS], IDS)
    # allpair, both orders: 30 prompts; the 5 showing d3 first are unparsed, twice each
    assert result.cost.unparsed == 5 and result.cost.unparsed_retries == 5
    assert result.cost.prompts == 35 and fake.prompt_count == 35
    assert len(cache) == 25  # unparsed answers are never cached
    # d3 (the best) ties every comparison; the others are ordered by relevance among themselves
    others = [d for d in result.doc_ids if d != "d3"]
    assert others == sorted(others, key=lambda d: -REL[d])


def test_a_broken_logprob_only_once_is_healed_by_the_retry():
    """A server that garbles d3's answers only the first time: the retry decides them all."""
    pytest.importorskip("httpx")
    pytest.importorskip("asyncio_throttle")
    from http_fault_server import FakeJudge, FaultServer

    from prp.oracles.http import OpenAIBackend

    class Once(FakeJudge):
        def completion_choice(self, index, prompt, text):
            choice = super().completion_choice(index, prompt, text)
            if self.garble and 'Passage A: "doc d3' in prompt:
                self.seen = getattr(self, "seen", 0) + 1
                if self.seen == 5:
                    self.garble = {}
            return choice

    fake = Once(REL, garble={"d3": None})
    with FaultServer(fake) as server:
        backend = OpenAIBackend("fake-model", server.url, backoff=0.01, seed=0)
        rr = Reranker(backend, sorter="allpair", k=6, batch_size=8)
        result = rr.rank("which doc?", [f"doc {d} text" for d in IDS], IDS)
    assert result.cost.unparsed == 0 and result.cost.unparsed_retries == 5
    assert result.doc_ids == sorted(IDS, key=lambda d: -REL[d])


def test_requests_with_inf_margins_share_batches_with_finite_ones():
    """A decisive judge and a finite one's answers side by side in one engine step."""
    ids, scores = worst_first(16)

    class Mixed(ScoresOracle):
        async def judge(self, prompts):
            result = await super().judge(prompts)
            return BatchResult([Judgment(j.preferred, math.copysign(INF, j.margin))
                                if p.qid == "inf" and j.margin else j
                                for p, j in zip(prompts, result.judgments, strict=True)])

    async def main():
        rr = Reranker(Mixed(scores), sorter="quicksort", k=5, batch_size=8)
        async with rr:
            return await asyncio.gather(rr.arank("q", ids, ids, qid="inf"),
                                        rr.arank("q", ids, ids, qid="finite"))

    decisive, finite = asyncio.run(main())
    assert decisive.doc_ids == finite.doc_ids
    assert decisive.doc_ids[:5] == sorted(ids, key=lambda d: -scores[d])[:5]
