"""The HTTP backend reads a prompt as the model's tokenizer cuts it: the server's (both
dialects, against the fake judge's byte tokenizer) or a local one; and the cache name says how."""

from __future__ import annotations

import asyncio

import pytest

httpx = pytest.importorskip("httpx", reason="the HTTP backend needs prp[http] (httpx)")
pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http] (asyncio-throttle)")

from http_fault_server import FakeJudge, FaultServer  # noqa: E402

from prp import BackendError, Prompt  # noqa: E402
from prp.oracles.http import OpenAIBackend  # noqa: E402
from prp.prompts import truncate  # noqa: E402

REL = {"a": 1.0, "b": 2.0}
# ASCII, two-byte and four-byte characters: a byte budget can end inside a character
LONG = "doc a " + "café über naïve 🐱 déjà vu " * 8
OTHER = "doc b " + "plain words only here " * 8


class Bytes:
    """The fake judge's tokenizer, locally: one token per UTF-8 byte; a split character is dropped."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="ignore")


def _backend(judge: FakeJudge, **kw) -> OpenAIBackend:
    return OpenAIBackend("m", "http://judge.test", transport=judge.transport(), backoff=0.01, **kw)


def _prompts() -> list[Prompt]:
    return [Prompt("q", "a query " * 10, "a", LONG, "b", OTHER), Prompt("q", "short", "b", OTHER, "a", LONG)]


@pytest.mark.parametrize("dialect", ["llama.cpp", "llama-cpp-python"])
@pytest.mark.parametrize("budget", [20, 21, 22, 23, 40, 64])
def test_server_truncation_equals_the_local_tokenizers(dialect, budget):
    judge = FakeJudge(REL, tokenizer=dialect, tokenize_prefix=(1,))  # the server adds a "BOS"
    backend = _backend(judge, passage_tokens=budget, query_tokens=8)
    asyncio.run(backend.judge(_prompts()))
    local = OpenAIBackend("m", "http://judge.test", tokenizer=Bytes(), passage_tokens=budget, query_tokens=8)
    sent = [p["prompt"] for _, _, p in judge.requests]
    assert sent == [[local.render(p) for p in _prompts()]]
    assert truncate(LONG, budget, Bytes()) in sent[0][0]
    assert backend.name == local.name and ":p" + str(budget) + ":q8:" in backend.name  # exact: no "~"


def test_truncations_are_asked_once_per_text():
    judge = FakeJudge(REL)
    backend = _backend(judge, passage_tokens=30)
    for _ in range(3):
        asyncio.run(backend.judge(_prompts()))
    tokenize = [p for p, _ in judge.tokenizer_requests if p == "/tokenize"]
    assert len(tokenize) == 1 + 4  # the probe of the empty text, then each of 4 texts once
    assert backend.stats()["tokenizer_requests"] == len(judge.tokenizer_requests)
    assert backend.requests_made == 3  # tokenizer calls are not judging requests


def test_a_server_without_a_tokenizer_fails_before_judging():
    judge = FakeJudge(REL, tokenizer=None)
    backend = _backend(judge)
    with pytest.raises(BackendError, match="no tokenizer endpoint.*tokenizer=chars"):
        asyncio.run(backend.judge(_prompts()))
    assert judge.requests == []  # nothing judged, nothing paid
    chars = _backend(judge, tokenizer="chars")
    asyncio.run(chars.judge(_prompts()))
    assert ":p~128:q~64:plain" in chars.name and len(judge.requests) == 1


def test_chat_needs_a_template_here_or_the_chat_endpoint():
    with pytest.raises(ValueError, match="needs a local tokenizer"):
        OpenAIBackend("m", "http://judge.test", chat=True)
    with pytest.raises(ValueError, match="endpoint='chat' always"):
        OpenAIBackend("m", "http://judge.test", endpoint="chat", chat=False)
    assert OpenAIBackend("m", "http://judge.test", endpoint="chat").name.endswith(":chat-api")
    with pytest.raises(ValueError, match="tokenizer must be"):
        OpenAIBackend("m", "http://judge.test", tokenizer=42)


def test_server_tokenizer_over_a_real_socket_with_the_chat_endpoint():
    judge = FakeJudge(REL, tokenizer="llama-cpp-python")
    with FaultServer(judge) as server:
        backend = OpenAIBackend("m", server.url, endpoint="chat", passage_tokens=25, query_tokens=8)
        result = asyncio.run(backend.judge(_prompts()))
    assert [j.preferred for j in result.judgments] == ["B", "A"]  # b is the more relevant
    content = judge.requests[0][2]["messages"][0]["content"]
    assert truncate(LONG, 25, Bytes()) in content and LONG not in content


def test_the_memo_is_bounded():
    judge = FakeJudge(REL)
    backend = _backend(judge, passage_tokens=10)
    memo = backend.server_tokenizer.memo
    backend.server_tokenizer.max_entries = 3
    asyncio.run(backend.judge(_prompts()))
    assert len(memo) == 4  # the 4 texts of the batch are kept while it renders
    asyncio.run(backend.judge([Prompt("q", "new query", "a", "doc a new", "b", "doc b new")]))
    assert len(memo) == 3 and ("new query", 64) in memo and ("doc a new", 10) in memo


def test_concurrent_calls_ask_for_a_text_once():
    judge = FakeJudge(REL, delay=0.01)
    with FaultServer(judge) as server:
        backend = OpenAIBackend("m", server.url, passage_tokens=30)

        async def together():
            return await asyncio.gather(*(backend.judge(_prompts()) for _ in range(4)))

        results = asyncio.run(together())
    assert all(r.judgments == results[0].judgments for r in results)
    asked = [p["content"] for path, p in judge.tokenizer_requests if path == "/tokenize" and p["content"]]
    assert sorted(asked) == sorted({"a query " * 10, "short", LONG, OTHER})  # each text once


def test_a_tokenizer_answering_no_token_ids_is_a_backend_failure():
    """Tokens that are not integers come from the server, not the user: a backend error."""
    from prp.oracles.tokenizers import ServerTokenizer, TokenizerUnavailable

    async def post(path, payload, refuse):
        return 200, {"tokens": ["not", "ids"]}

    with pytest.raises(TokenizerUnavailable, match="answered without tokens"):
        asyncio.run(ServerTokenizer("m", post)._detect())
    assert issubclass(TokenizerUnavailable, BackendError)
