"""Set and list questions through the OpenAI-compatible judge, against the fake server.

The fake server (tests/http_fault_server.py) answers a set by its labels' logprobs and a list
by the order of a known relevance table, so every answer through it is known in advance.
"""

from __future__ import annotations

import asyncio
import math

import pytest

pytest.importorskip("httpx", reason="the HTTP backend needs prp[http] (httpx)")
pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http] (asyncio-throttle)")

from http_fault_server import FakeJudge, FaultServer, Reply  # noqa: E402

from prp.oracles.http import OpenAIBackend  # noqa: E402
from prp.oracles.openai_wire import shape_answer  # noqa: E402
from prp.shape_text import LIST_TEMPLATE, SET_TEMPLATE  # noqa: E402

REL = {"d0": 1, "d1": 5, "d2": 3, "d3": 7, "d4": 2, "d5": 6, "d6": 0, "d7": 4}
IDS = list(REL)
DOCS = {d: f"doc {d} is a passage about topic {i}" for i, d in enumerate(IDS)}
WINDOWS = [["d0", "d1", "d2", "d3"], ["d7", "d6", "d5", "d4"], ["d2", "d0", "d6"]]
QUESTIONS = [("which doc?", [DOCS[d] for d in w]) for w in WINDOWS]


def best(window: list[str]) -> int:
    return max(range(len(window)), key=lambda i: REL[window[i]])


def order(window: list[str]) -> tuple[int, ...]:
    return tuple(sorted(range(len(window)), key=lambda i: -REL[window[i]]))


def ask(backend: OpenAIBackend, shape: str, questions=QUESTIONS):
    return asyncio.run(backend.judge_shapes(shape, questions))


@pytest.fixture(scope="module")
def server():
    judge = FakeJudge(REL)
    with FaultServer(judge) as running:
        yield judge, running


def backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend("fake-model", url, backoff=0.01, seed=0, **kw)


def test_sets_by_label_logprobs_in_one_request(server):
    judge, running = server
    before = len(judge.requests)
    judged = ask(backend(running.url), "set")
    assert [a.value for a in judged.answers] == [best(w) for w in WINDOWS] == [3, 2, 0]
    for answer, window in zip(judged.answers, WINDOWS, strict=True):
        assert not answer.repaired and math.fsum(answer.probs) == pytest.approx(1.0)
        grades = [REL[d] for d in window]  # the fake's logprob: -0.1 less one per grade below the best
        expected = [math.exp(g - max(grades)) for g in grades]
        assert answer.probs == pytest.approx([e / sum(expected) for e in expected])
    sent = [p for path, _, p in judge.requests[before:] if path == "/v1/completions"]
    assert len(sent) == 1 and len(sent[0]["prompt"]) == 3  # one inference, one request
    assert sent[0]["max_tokens"] == 1 and sent[0]["logprobs"] == 20
    assert all(p.endswith(": Passage") for p in sent[0]["prompt"])
    assert judged.prompt_tokens == sum(len(p) // 4 for p in sent[0]["prompt"])  # the server's usage
    assert judged.completion_tokens == 3


def test_lists_by_generation(server):
    judge, running = server
    before = len(judge.requests)
    judged = ask(backend(running.url), "list")
    assert [a.value for a in judged.answers] == [order(w) for w in WINDOWS]
    assert not any(a.repaired for a in judged.answers)
    sent = [p for path, _, p in judge.requests[before:] if path == "/v1/completions"]
    assert len(sent) == 1 and "logprobs" not in sent[0]
    assert sent[0]["max_tokens"] == 2 * (3 + 4 + 4 + 4) + 8  # room for twice "[1] > [2] > [3] > [4]"


def test_lists_refused_go_one_request_per_question(server):
    _, running = server
    refusing = FakeJudge(REL, refuse_lists=400)
    with FaultServer(refusing) as other:
        judge = backend(other.url)
        for shape in ("set", "list"):
            judged = ask(judge, shape)
            expected = [best(w) for w in WINDOWS] if shape == "set" else [order(w) for w in WINDOWS]
            assert [a.value for a in judged.answers] == expected
        assert judge.lists_supported is False
        assert refusing.list_requests() == 1  # refused once, then single prompts
        assert sum(path == "/v1/completions" for path, _, _ in refusing.requests) == 1 + 3 + 3


def test_chat_endpoint_asks_messages(server):
    judge, running = server
    chat = backend(running.url, endpoint="chat")
    before = len(judge.requests)
    assert [a.value for a in ask(chat, "set").answers] == [best(w) for w in WINDOWS]
    assert [a.value for a in ask(chat, "list").answers] == [order(w) for w in WINDOWS]
    sent = [p for path, _, p in judge.requests[before:] if path == "/v1/chat/completions"]
    assert len(sent) == 6  # one request per question, sent together (they arrive in any order)
    shown = sorted(str(p["messages"]) for p in sent)
    assert shown == sorted(str(t.messages(*q)) for t in (SET_TEMPLATE, LIST_TEMPLATE) for q in QUESTIONS)
    assert [p.get("logprobs") for p in sent[:3]] == [True] * 3 and "logprobs" not in sent[3]


def test_messy_text_answers_are_repaired_or_unparsed():
    messy = [Reply(text="<think>[1] first? no</think>\nRanking: [3] > [3] > [1]"),
             Reply(text="I cannot tell."), Reply(text="<think>still thinking"), Reply(text=" C")]
    judge = FakeJudge(REL, faults=messy)
    with FaultServer(judge) as running:
        client = backend(running.url, batch_requests=False)
        one = [QUESTIONS[0]]
        repaired = ask(client, "list", one).answers[0]
        assert repaired.value == (2, 0, 1, 3) and repaired.repaired
        assert ask(client, "list", one).answers[0].value is None
        assert ask(client, "set", one).answers[0].value is None  # only reasoning
        assert ask(client, "set", one).answers[0].value == 2  # no logprobs: read from the text


def test_unusable_label_logprob_is_unparsed():
    judge = FakeJudge(REL, garble={"d0": float("nan")})
    with FaultServer(judge) as running:
        answers = ask(backend(running.url), "set").answers
    assert answers[0].value is None and "log-probability" in answers[0].reason
    assert answers[1].value == best(WINDOWS[1])  # d0 not shown as A there


def test_passages_are_cut_by_the_server_tokenizer(server):
    judge, running = server
    before = len(judge.requests)
    ask(backend(running.url, passage_tokens=6, query_tokens=5), "set", QUESTIONS[:1])
    prompt = [p for path, _, p in judge.requests[before:] if path == "/v1/completions"][0]["prompt"]
    assert prompt == SET_TEMPLATE.render("which", ["doc d0", "doc d1", "doc d2", "doc d3"])  # bytes


def test_shape_names_swap_the_template_id(server):
    _, running = server
    client = backend(running.url)
    assert client.shape_name("set") == client.name.replace(":prp-v1:", f":{SET_TEMPLATE.id}:")
    assert client.shape_name("list") == client.name.replace(":prp-v1:", f":{LIST_TEMPLATE.id}:")
    with pytest.raises(ValueError, match="shape must be one of set, list"):
        client.shape_name("pair")
    with pytest.raises(ValueError, match="shape must be one of set, list"):
        ask(client, "grid")
    assert ask(client, "set", []).answers == []


@pytest.mark.parametrize(("choice", "shape", "n", "value"), [
    ({"text": " B", "logprobs": {"top_logprobs": [{" A": -2.0, " B": -0.2}]}}, "set", 2, 1),
    ({"text": " A", "logprobs": {"top_logprobs": [{" A": -2.0, " B": -0.2}]}}, "set", 2, 1),  # logprobs win
    ({"text": " B", "logprobs": {"top_logprobs": [{" the": -0.2}]}}, "set", 2, 1),  # no label: text
    ({"text": " B", "logprobs": {"top_logprobs": [{" A": "x"}]}}, "set", 2, None),  # broken: unparsed
    ({"text": " B", "logprobs": None}, "set", 3, 1),
    ({"message": {"content": "Passage C"}, "logprobs": {"content": [
        {"token": "Pass", "logprob": -0.1, "top_logprobs": []},
        {"token": " C", "logprob": -0.3, "top_logprobs": [{"token": " A", "logprob": -0.2}]}]}}, "set", 3, 0),
    ({"message": {"content": "[2] > [1]"}}, "list", 2, (1, 0)),
    ({"text": "nothing"}, "list", 2, None),
])
def test_shape_answer_reads_a_choice(choice, shape, n, value):
    assert shape_answer(choice, shape, n).value == value
