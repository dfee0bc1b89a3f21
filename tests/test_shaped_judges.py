"""The LLM judges answer set and list questions through the engine: the OpenAI-compatible judge
(against the fake server, whose answers are known in advance, and a real llama.cpp server in
tests/test_http_server.py), llama.cpp in process (the packaged SmolLM2) and transformers (tiny
random models built in the test)."""

from __future__ import annotations

import asyncio
import math

import pytest
from conftest import packaged_llama

from prp import Reranker
from prp.cache import MemoryCache
from prp.types import Choice, Judgment, Prompt, RankRequest, ShapedPrompt

QUERY = "how long is the life cycle of a flea"
DOCS = ["Fleas are small insects that live on dogs and cats and feed on blood.",
        "Paris is the capital of France.",
        "The flea life cycle has four stages: egg, larva, pupa and adult.",
        "Concrete flooring costs depend on the finish.",
        "A flea can live up to a year.",
        "The adult flea lives two to three months on its host."]
IDS = [f"d{i}" for i in range(len(DOCS))]


def shaped(backend, shape: str, shown: list[int]) -> ShapedPrompt:
    return ShapedPrompt("q1", QUERY, shape, backend.shape_templates[shape], tuple(IDS[i] for i in shown),
                        tuple(DOCS[i] for i in shown))


def pair(a: int, b: int) -> Prompt:
    return Prompt("q1", QUERY, IDS[a], DOCS[a], IDS[b], DOCS[b])


def mixed(backend) -> list:
    return [pair(0, 1), shaped(backend, "set", [0, 1, 2, 3]), shaped(backend, "list", [4, 2, 0]),
            pair(2, 3), shaped(backend, "set", [3, 2, 1, 0]), shaped(backend, "list", [1, 5, 3, 0])]


def judged(backend, prompts):
    return asyncio.run(backend.judge(prompts))


def check_answers(prompts, answers) -> None:
    """A Judgment per pair, a Choice per set or list, each fitting its prompt."""
    assert len(answers) == len(prompts)
    for prompt, answer in zip(prompts, answers, strict=True):
        if type(prompt) is Prompt:
            assert type(answer) is Judgment and answer.parsed and math.isfinite(answer.margin)
            continue
        assert type(answer) is Choice
        n = len(prompt.ids)
        if prompt.shape == "set":
            assert answer.parsed and len(answer.order) == 1 and 0 <= answer.order[0] < n
            assert math.fsum(answer.probs) == pytest.approx(1.0)
            assert answer.order[0] == max(range(n), key=lambda i: (answer.probs[i], -i))
        elif answer.parsed:  # a list: a permutation of the slots (a tiny model may say nothing usable)
            assert sorted(answer.order) == list(range(n))


def same_answers(together, alone, tolerance: float) -> None:
    for t, a in zip(together, alone, strict=True):
        if type(t) is Judgment:
            assert t.preferred == a.preferred and t.margin == pytest.approx(a.margin, abs=tolerance)
        else:
            assert (t.order, t.parsed, t.repaired) == (a.order, a.parsed, a.repaired)
            if t.probs is not None:
                assert t.probs == pytest.approx(a.probs, abs=tolerance)


def rank_with_shapes(backend, sorter: str):
    """Rank DOCS with ``sorter`` twice over one cache: the run and its rerun."""
    cache = MemoryCache()
    reranker = Reranker(backend, sorter=sorter, k=3, batch_size=4, cache=cache)
    first = reranker.rank(QUERY, DOCS, IDS)
    again = reranker.rank(QUERY, DOCS, IDS)
    return first, again


def check_run(first, again, shape: str) -> None:
    assert sorted(first.doc_ids) == sorted(IDS)
    cost = first.cost
    assert cost.prompts_by_shape[shape] > 0 and cost.prompts == sum(cost.prompts_by_shape.values())
    assert cost.input_tokens > 0 and cost.output_tokens > 0
    assert cost.unparsed <= cost.unparsed_retries  # an unparsed answer is asked once more, counted once
    # every parsed answer was cached; only one that stayed unparsed is asked (and retried) again
    if cost.unparsed == 0:
        assert again.doc_ids == first.doc_ids and again.cost.prompts == 0
    else:
        assert 0 < again.cost.prompts <= 2 * cost.unparsed


# -- llama.cpp in process ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama():
    pytest.importorskip("llama_cpp")
    return packaged_llama("smollm2-135m")


def test_llama_cpp_answers_every_shape_in_one_batch_as_asked_alone(llama):
    prompts = mixed(llama)
    result = judged(llama, prompts)
    check_answers(prompts, result.judgments)
    alone = [judged(llama, [p]).judgments[0] for p in prompts]
    same_answers(result.judgments, alone, 1e-2)  # prefix reuse may move the last digits
    assert result.completion_tokens > 4  # a list's answer is generated: more than one token each
    assert sum(judged(llama, [p]).completion_tokens for p in prompts) == result.completion_tokens


def test_llama_cpp_set_is_the_softmax_of_its_label_logits(llama):
    """The set's probabilities are those of the label tokens after the prompt, read directly."""
    import llama_cpp
    import numpy as np

    prompt = shaped(llama, "set", [2, 1, 0])
    choice = judged(llama, [prompt]).judgments[0]
    llm = llama.llm
    tokens = llm.tokenize(llama.render_shaped(prompt).encode("utf-8"), add_bos=True, special=True)
    llm.reset()
    llm.eval(tokens)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))

    def label_ids(label: str) -> list[int]:
        tokenized = (llm.tokenize(t.encode(), add_bos=False, special=False) for t in (label, " " + label))
        return [t[0] for t in tokenized if len(t) == 1]

    scores = [max(float(logits[t]) for t in label_ids(label)) for label in "ABC"]
    expected = [math.exp(s - max(scores)) for s in scores]
    assert choice.probs == pytest.approx([e / sum(expected) for e in expected], abs=1e-3)


@pytest.mark.parametrize("sorter, shape", [("setwise:k=3", "set"), ("listwise:window=4,step=2", "list"),
                                           ("tournament:k=3", "set")])
def test_llama_cpp_ranks_with_every_k_wise_sorter(llama, sorter, shape):
    check_run(*rank_with_shapes(llama, sorter), shape)


# -- transformers -------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["t5", "llama", "gpt2"])
def tiny(request):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_hf_backend import backend
    return backend(request.param)


def test_transformers_answers_every_shape_in_one_batch_as_asked_alone(tiny):
    prompts = mixed(tiny)
    result = judged(tiny, prompts)
    check_answers(prompts, result.judgments)
    alone = [judged(tiny, [p]).judgments[0] for p in prompts]
    same_answers(result.judgments, alone, 1e-4)
    assert result.prompt_tokens == sum(judged(tiny, [p]).prompt_tokens for p in prompts)  # no padding counted


def test_transformers_ranks_with_sets(tiny):
    check_run(*rank_with_shapes(tiny, "setwise:k=3"), "set")


# -- the OpenAI-compatible judge, against the fake server ------------------------------------

REL = {"d0": 1, "d1": 5, "d2": 3, "d3": 7, "d4": 2, "d5": 6, "d6": 0, "d7": 4}
FAKE_DOCS = {d: f"doc {d} is a passage about topic {i}" for i, d in enumerate(REL)}


@pytest.fixture(scope="module")
def fake():
    pytest.importorskip("httpx")
    from http_fault_server import FakeJudge, FaultServer
    judge = FakeJudge(REL)
    with FaultServer(judge) as running:
        yield judge, running


def fake_backend(url: str):
    from prp.oracles.http import OpenAIBackend
    return OpenAIBackend("fake-model", url, backoff=0.01, seed=0)


@pytest.mark.parametrize("sorter", ["setwise:k=4", "listwise:window=6,step=2", "tournament:k=4", "quicksort"])
def test_openai_judge_ranks_with_every_shape_and_finds_the_true_top_k(fake, sorter):
    judge, running = fake
    ids = list(REL)
    requests = [RankRequest(f"query {q}", [FAKE_DOCS[d] for d in ids], ids, f"q{q}") for q in range(3)]
    results = Reranker(fake_backend(running.url), sorter=sorter, k=4, batch_size=8).rank_many(requests)
    truth = sorted(REL, key=lambda d: -REL[d])[:4]
    for result in results:
        assert result.doc_ids[:4] == truth
        assert result.cost.unparsed == 0 and result.cost.prompts > 0


def test_openai_judge_mixed_batch_equals_each_shape_alone(fake):
    _judge, running = fake
    be = fake_backend(running.url)
    docs = list(FAKE_DOCS.values())

    def p(shape, shown):
        return ShapedPrompt("q", "query", shape, be.shape_templates[shape], tuple(f"d{i}" for i in shown),
                            tuple(docs[i] for i in shown))

    prompts = [Prompt("q", "query", "d0", docs[0], "d1", docs[1]), p("set", [0, 1, 2, 3]),
               p("list", [4, 2, 0]), p("set", [7, 6, 5]), Prompt("q", "query", "d3", docs[3], "d2", docs[2])]
    together = judged(be, prompts)
    alone = [judged(be, [x]).judgments[0] for x in prompts]
    same_answers(together.judgments, alone, 1e-9)
    assert [a.order for a in together.judgments[1:4]] == [(3,), (1, 0, 2), (2,)]  # the fake's known answers
    assert together.judgments[0].preferred == "B" and together.judgments[4].preferred == "A"
