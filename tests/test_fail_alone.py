"""Fail alone: a batch that fails for a reason that may be one prompt's fault is split in halves
and retried, so that the prompt at fault fails its own request only (prp.scheduler, step 3).

Each test runs 8 requests together (they share batches) with one poisoned among them, and
checks: the poisoned request fails with an error naming its qid and the prompt; the 7 others get
exactly the ranking they get alone; the splits match a hand count; what was judged is cached.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import expected_order, score_docs

from prp import MemoryCache, RankRequest, Reranker, ScoresOracle
from prp.engine import Engine
from prp.oracles.base import BackendError, PromptError, PromptFailed, prompt_fault
from prp.types import BatchResult

N_REQUESTS, POISONED = 8, 3
IDS, SCORES = score_docs(6, seed=4)


def qid(n: int) -> str:
    return f"q{n}"


class Poisoned(ScoresOracle):
    """A custom judge whose own code raises on one prompt: query q3, d1 shown before d0. Records
    every batch it is sent: its size, whether it answered, and its prompts' qids."""

    def __init__(self, exc: BaseException | None = None) -> None:
        super().__init__(SCORES)
        self.exc = exc or ValueError("cannot judge this pair")
        self.calls: list[tuple[int, bool]] = []
        self.qids: list[set[str]] = []

    async def judge(self, prompts):
        bad = any((p.qid, p.first_id, p.second_id) == (qid(POISONED), "d1", "d0") for p in prompts)
        self.calls.append((len(prompts), not bad))
        self.qids.append({p.qid for p in prompts})
        if bad:
            raise self.exc
        return await super().judge(prompts)


def requests(n: int = N_REQUESTS) -> list[RankRequest]:
    return [RankRequest(f"query {i}", [f"text of {d}" for d in IDS], IDS, qid(i)) for i in range(n)]


async def together(reranker: Reranker, reqs: list[RankRequest], **engine_options):
    """Submit every request at once (so they share steps and batches); each one's result or error."""
    engine = Engine(reranker, **engine_options)
    async with engine:
        outcomes = await asyncio.gather(*(engine.rank_many([r]) for r in reqs), return_exceptions=True)
    return engine, [o if isinstance(o, BaseException) else o[0] for o in outcomes]


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_custom_judge_raising_on_one_prompt_fails_its_request_only(concurrency):
    judge, cache, splits = Poisoned(), MemoryCache(), []
    reranker = Reranker(judge, sorter="allpair", k=6, batch_size=8, cache=cache, concurrency=concurrency)
    engine, outcomes = asyncio.run(together(reranker, requests(), on_split=splits.append))

    error = outcomes[POISONED]
    assert isinstance(error, PromptFailed) and isinstance(error, BackendError)
    assert (error.qid, error.first_id, error.second_id) == ("q3", "d1", "d0")
    message = str(error)
    assert "query 'q3'" in message and "'d1' before 'd0'" in message
    assert "ValueError: cannot judge this pair" in message
    assert message.endswith("(alone, after its batch of 8 failed the same way)")
    for n, result in enumerate(outcomes):
        if n != POISONED:
            assert result.doc_ids == expected_order(IDS, SCORES, 6)  # sorted(): what it gets alone
    # Hand count: allpair asks 15 pairs x 2 orders = 30 prompts per query, 240 in all, in 30
    # batches of 8. q3's prompts are 90..119, (d1, d0) the second of them: 91, in batch 88..95
    # with two of q2's. That batch fails, then its half 88..91, then 90..91: three splits
    # ([8] -> [4] + 4 -> 2 + [2] -> 1 + [1]), and prompt 91 fails alone.
    assert engine.batch_splits == 3 and splits == [8, 4, 2]
    failed = [n for n, (size, ok) in enumerate(judge.calls) if not ok]
    assert [judge.calls[n][0] for n in failed] == [8, 4, 2, 1]
    assert judge.qids[failed[0]] == {"q2", "q3"}  # the poisoned prompt shared its batch
    assert sum(size for size, ok in judge.calls if ok) == 240 - 1  # everything else judged once
    assert len(cache) == 240 - 1  # and cached


def test_the_others_rank_exactly_as_without_the_poisoned_request_over_several_rounds():
    """Quicksort (several rounds): the 7 others' rankings and costs' prompts equal a run without
    the poisoned request, whose failure in its first round stops none of them."""
    ids, scores = score_docs(20, seed=9)

    def relevance(q: str, doc_id: str) -> float:
        return scores[doc_id] * (1 if int(q[1:]) % 2 else -1)  # odd and even queries disagree

    class Raises(ScoresOracle):
        async def judge(self, prompts):
            if any(p.qid == "q3" and p.first_id == ids[0] for p in prompts):  # the first pivot
                raise RuntimeError("the custom judge's own bug")
            return await super().judge(prompts)

    reqs = [RankRequest(f"query {i}", [f"text {d}" for d in ids], ids, qid(i)) for i in range(N_REQUESTS)]
    rr = Reranker(Raises(relevance), sorter="quicksort", k=5, batch_size=8, cache=False)
    engine, outcomes = asyncio.run(together(rr, reqs))
    assert isinstance(outcomes[POISONED], PromptFailed) and "query 'q3'" in str(outcomes[POISONED])
    assert "RuntimeError: the custom judge's own bug" in str(outcomes[POISONED])
    assert engine.batch_splits > 0
    others = [r for n, r in enumerate(reqs) if n != POISONED]
    clean = Reranker(ScoresOracle(relevance), sorter="quicksort", k=5, batch_size=8, cache=False)
    _, alone = asyncio.run(together(clean, others))
    got = [o for n, o in enumerate(outcomes) if n != POISONED]
    assert [r.doc_ids for r in got] == [r.doc_ids for r in alone]
    assert [r.cost.prompts for r in got] == [r.cost.prompts for r in alone]
    for r in got:
        top = sorted(ids, key=lambda d: -relevance(r.qid, d))[:5]
        assert r.doc_ids[:5] == top


def test_a_library_call_with_a_poisoned_query_raises_naming_it():
    """One Reranker.rank_many call is one request: the poisoned query fails the call, by name."""
    reranker = Reranker(Poisoned(), sorter="allpair", k=6, batch_size=8)
    with pytest.raises(PromptFailed, match=r"query 'q3'.*'d1' before 'd0'"):
        reranker.rank_many(requests())


@pytest.mark.parametrize("exc", [ConnectionRefusedError("refused"), TimeoutError("timed out"),
                                 BackendError("every endpoint is down")])
def test_a_judge_that_is_down_is_never_split(exc):
    """Errors that say the judge is down fail the step's requests at once, with no split."""
    judge = Poisoned(exc)
    reranker = Reranker(judge, sorter="allpair", k=6, batch_size=8, cache=False)
    engine, outcomes = asyncio.run(together(reranker, requests()))
    assert engine.batch_splits == 0
    assert all(isinstance(o, BackendError) and not isinstance(o, PromptFailed) for o in outcomes)
    assert [size for size, ok in judge.calls if not ok] == [8]  # one failed call, then cancelled


def test_a_malformed_answer_is_split_and_only_its_query_fails():
    """A judge answering one judgment short for batches with q3's (d1, d0): a malformed answer
    to a batch may be one prompt's fault."""
    class Short(Poisoned):
        async def judge(self, prompts):
            try:
                return await super().judge(prompts)
            except ValueError:
                result = await ScoresOracle.judge(self, prompts)
                return BatchResult(result.judgments[:-1])

    reranker = Reranker(Short(), sorter="allpair", k=6, batch_size=8, cache=False)
    engine, outcomes = asyncio.run(together(reranker, requests()))
    assert isinstance(outcomes[POISONED], PromptFailed)
    assert "returned 0 judgments for 1 prompts" in str(outcomes[POISONED])
    assert "returned 7 judgments for 8 prompts" in str(outcomes[POISONED])  # the first failure
    assert engine.batch_splits == 3
    assert all(o.doc_ids == expected_order(IDS, SCORES, 6) for n, o in enumerate(outcomes) if n != POISONED)


@pytest.mark.parametrize("exc, fault", [
    (ValueError("bad"), True), (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates"), True),
    (PromptError("too long"), True), (KeyError("x"), True),
    (ConnectionError("reset"), False), (OSError("io"), False), (TimeoutError(), False),
    (asyncio.TimeoutError(), False), (BackendError("HTTP 503"), False), (KeyboardInterrupt(), False),
])
def test_the_one_classification(exc, fault):
    assert prompt_fault(exc) is fault


def test_http_statuses_that_may_be_a_prompts_fault():
    pytest.importorskip("httpx")
    from prp.oracles.http import _Refused

    assert [s for s in range(400, 500) if _Refused("x", s).prompt_fault] == [400, 413, 414, 422]


def test_every_split_is_counted_and_a_batch_of_one_is_not_split():
    judge = Poisoned()
    reranker = Reranker(judge, sorter="allpair", k=6, batch_size=1, cache=False)
    engine, outcomes = asyncio.run(together(reranker, requests(4)))
    assert engine.batch_splits == 0 and isinstance(outcomes[POISONED], PromptFailed)
    assert "(alone)" in str(outcomes[POISONED])
    assert all(not isinstance(o, BaseException) for o in outcomes[:POISONED])


# --- through the OpenAI judge and a real loopback server ----------------------------------------

httpx = pytest.importorskip("httpx", reason="the HTTP backend needs prp[http] (httpx)")
pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http] (asyncio-throttle)")

from http_fault_server import FakeJudge, FaultServer  # noqa: E402

REL = {f"d{i}": float(r) for i, r in enumerate([3, 7, 1, 5, 2, 6, 0, 4])}


def http_requests(bad_text: str) -> list[RankRequest]:
    """7 requests of 4 docs (6 prompts each, orders one) and, second, one of 2 docs whose
    second doc's text is ``bad_text`` (1 prompt)."""
    out = []
    for n in range(N_REQUESTS):
        docs = ["d0", bad_text] if n == 1 else [f"d{(n + i) % 8}" for i in range(4)]
        ids = ["d0", "d1"] if n == 1 else docs
        texts = [f"doc {d} about topic {d}" if d.startswith("d") and len(d) == 2 else f"doc d1 {d}"
                 for d in docs]
        out.append(RankRequest(f"which doc, {n}?", texts, ids, qid(n)))
    return out


@pytest.mark.parametrize("bad_text, why", [("POISON", "answered HTTP 400"),
                                           ("\ud800", "UnicodeEncodeError")])
def test_a_poisoned_prompt_through_the_openai_judge_fails_its_request_only(bad_text, why):
    """The server answers 400 to any request holding the poisoned prompt (a list too); or the
    prompt cannot even be encoded (a lone surrogate). 8 requests, B=8, orders one: request q1's
    only prompt is the 7th of the first batch (prompts 0-5 are q0's), so: [8] -> 4 + [4] -> 2 +
    [2] -> [1] + 1: three splits, as with a custom judge."""
    from prp.oracles.http import OpenAIBackend

    fake = FakeJudge(REL, poison="POISON")
    with FaultServer(fake) as server:
        backend = OpenAIBackend("fake-model", server.url, backoff=0.01, seed=0)
        rr = Reranker(backend, sorter="allpair", k=4, batch_size=8, orders="one", cache=MemoryCache())
        engine, outcomes = asyncio.run(together(rr, http_requests(bad_text)))
    error = outcomes[1]
    assert isinstance(error, PromptFailed), error
    assert "query 'q1'" in str(error) and why in str(error)
    assert engine.batch_splits == 3
    for n, result in enumerate(outcomes):
        if n != 1:
            ids = http_requests(bad_text)[n].doc_ids
            assert result.doc_ids == sorted(ids, key=lambda d: -REL[d])  # what it gets alone
    assert len(rr.cache) == 7 * 6  # every other prompt judged and cached
    if bad_text == "POISON":
        assert fake.poisoned >= 4  # the batch of 8, its halves of 4 and 2, the prompt alone


def test_requests_sharing_a_batch_with_a_poisoned_one_still_succeed_in_serve_order():
    """Eight requests whose batches interleave (B=3): the combinations of batch membership do not
    matter, only the prompt: the others always succeed."""
    judge = Poisoned()
    reranker = Reranker(judge, sorter="allpair", k=6, batch_size=3, cache=False)
    engine, outcomes = asyncio.run(together(reranker, requests()))
    assert [isinstance(o, PromptFailed) for o in outcomes] == [n == POISONED for n in range(N_REQUESTS)]
    # q3's prompts are 90..119, packed by shared prefix (scheduler._prefix_order): the five with
    # d0 first, then the five with d1 first, (d1, d0) leading them. So the poisoned prompt is 95,
    # the third of batch 93..95, which splits into [93, 94] + [95]: one split
    assert engine.batch_splits == 1
    assert [size for size, ok in judge.calls if not ok] == [3, 1]
