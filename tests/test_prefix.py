"""Cached-prefix tokens (cost/prefix.py) and the scheduler's prefix-aware batching: counts by hand."""

from __future__ import annotations

import pytest

from cost.model import TEMPLATE_TOKENS, estimate_tokens
from cost.prefix import PrefixCache
from prp import PerfectOracle, Reranker


def test_a_prefix_is_cached_within_its_inference_and_the_next_only():
    cache, tokens = PrefixCache(window=2), {"a": 100, "b": 90, "c": 80}

    def P(head, head_tokens, lead):  # noqa: N802  a prompt: its head and its lead, with their tokens
        return head, head_tokens, lead, tokens[lead]

    head, other = ("template", "q1"), ("template", "q2")
    # one inference: the second prompt repeats the head and the lead, the third only the head
    assert cache.inference([P(head, 10, "a"), P(head, 10, "a"), P(head, 10, "c")]) == 10 + 100 + 10
    assert cache.inference([P(head, 10, "c")]) == 10 + 80  # from the inference before
    assert cache.inference([P(other, 10, "a")]) == 0  # another query: no shared head, no lead
    # two inferences later, the first one's prefixes are gone; the head was sent just before
    assert cache.inference([P(head, 10, "a")]) == 0
    assert cache.inference([P(head, 10, "a")]) == 110
    # a lead is never cached after a missed head, even if it led a prompt of another head
    assert PrefixCache().inference([P(head, 1, "a"), P(other, 1, "a")]) == 0
    assert PrefixCache(window=1).inference([P(head, 1, "a"), P(head, 1, "a")]) == 101
    with pytest.raises(ValueError, match="at least 1"):
        PrefixCache(window=0)


def test_the_ledger_counts_cached_prefix_tokens_by_hand():
    """allpair on 3 passages, one order, one batch: prompts (0, 1), (0, 2), (1, 2). Packed by
    prefix, (0, 2) follows (0, 1) and reads the head and passage 0 from the cache; (1, 2) reads
    the head. The simulated judge reports the same estimates, so the counts are exact."""
    query, texts = "what is a flea", ["fleas live a year " * 4, "cats sleep " * 9, "dogs bark " * 11]
    qrels = {"q": {"d0": 2, "d1": 1, "d2": 0}}
    result = Reranker(PerfectOracle(qrels), sorter="allpair", k=3, batch_size=8, orders="one").rank(
        query, texts, ["d0", "d1", "d2"], qid="q")
    head = TEMPLATE_TOKENS + estimate_tokens(query)
    tok = [estimate_tokens(t, 128) for t in texts]
    assert result.cost.input_tokens == 3 * head + 2 * tok[0] + 2 * tok[1] + 2 * tok[2]
    assert result.cost.cached_tokens == 2 * head + tok[0]


def test_prompts_that_share_a_first_passage_are_batched_together():
    """quicksort's first partition asks (x, pivot) and (pivot, x) for each of 16 x: asked order
    alternates them (4 pivot-first prompts in each batch of 8). Packed by prefix: groups in
    first-asked order, (d0, pivot) alone, then the 16 pivot-first prompts, then one group per x:
    pivot-first counts per batch 7, 8, 1, 0."""
    seen: list[list[str]] = []

    class Recording(PerfectOracle):
        async def judge(self, prompts):
            seen.append([p.first_id for p in prompts])
            return await super().judge(prompts)

    ids = [f"d{i}" for i in range(17)]
    judge = Recording({"q": {d: i % 4 for i, d in enumerate(ids)}})
    Reranker(judge, sorter="quicksort", k=1, batch_size=8).rank("q", [f"passage {d} " * 30 for d in ids], ids)
    first = seen[:4]  # the first partition: 16 comparisons, 32 prompts, 4 batches
    pivot = max(set(sum(first, [])), key=sum(first, []).count)
    assert [batch.count(pivot) for batch in first] == [7, 8, 1, 0] and first[0][0] == "d0"


@pytest.mark.parametrize("seed", range(30))
def test_the_schedulers_streamed_count_is_the_rule_of_cost_prefix(seed):
    """The scheduler's streamed count (lookups only where the prefix changes) equals
    :class:`cost.prefix.PrefixCache` on prompts in any order: grouped, interleaved across queries
    and shapes, repeated heads and leads far apart, batches of any size."""
    import random

    from cost.model import LABEL_TOKENS
    from prp.scheduler import _Prefixes
    from prp.types import Prompt, ShapedPrompt

    rng = random.Random(seed)
    texts = [f"passage {i} " * rng.randint(1, 60) for i in range(6)]
    queries = {b"q1": "short query", b"q2": "a much longer query " * 3}
    pending = {}
    for x in range(rng.randint(1, 40)):
        qkey = rng.choice(list(queries))
        if rng.random() < 0.8:
            a, b = rng.sample(range(len(texts)), 2)
            key = ("judge", qkey, a.to_bytes(1, "big"), b.to_bytes(1, "big"), x)
            pending[key] = Prompt("q", queries[qkey], str(a), texts[a], str(b), texts[b])
        else:
            shown = rng.sample(range(len(texts)), rng.randint(2, 4))
            key = ("judge|set|set-v1", qkey, bytes(shown), x)
            pending[key] = ShapedPrompt("q", queries[qkey], "set", "set-v1", tuple(map(str, shown)),
                                        tuple(texts[i] for i in shown))
    keys = list(pending)
    if seed % 2:
        keys.sort(key=lambda k: (k[1], k[2]))  # grouped, as the scheduler sends them
    size = rng.randint(1, 8)
    batches = [keys[x: x + size] for x in range(0, len(keys), size)]
    streamed, reference = _Prefixes(128), PrefixCache()
    for batch in batches:
        heads, total = [], 0
        for key in batch:
            p = pending[key]
            ptexts = (p.first, p.second) if type(p) is Prompt else p.texts
            head = TEMPLATE_TOKENS + LABEL_TOKENS * max(0, len(ptexts) - 2) + estimate_tokens(p.query)
            total += head + sum(estimate_tokens(t, 128) for t in ptexts)
            heads.append(((key[0], key[1], len(ptexts)), head, ptexts[0], estimate_tokens(ptexts[0], 128)))
        assert streamed.inference(batch, pending) == (reference.inference(heads), total)


def test_token_estimate_is_the_ceiling_of_a_quarter_of_the_characters_within_the_budget():
    import math

    for length in range(0, 700):
        for budget in (None, 0, 1, 5, 128, 600):
            expected = math.ceil(length / 4) if budget is None else min(math.ceil(length / 4), budget)
            assert estimate_tokens("x" * length, budget) == expected, (length, budget)
