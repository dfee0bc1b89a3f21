"""The OpenAI-compatible HTTP backend against a fake judge: faults, retries, fallback, limits.

The fake server (tests/http_fault_server.py) judges by a known relevance table, so a ranking
through it must equal the expected order whenever the server recovers.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

httpx = pytest.importorskip("httpx", reason="the HTTP backend needs prp[http] (httpx)")
pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http] (asyncio-throttle)")

from conftest import expected_order  # noqa: E402
from http_fault_server import DROP, MALFORMED, OK, SLOW, FakeJudge, FaultServer, Reply, status  # noqa: E402

from prp import BackendError, Prompt, Reranker  # noqa: E402
from prp.cache import MemoryCache  # noqa: E402
from prp.oracles.http import OpenAIBackend  # noqa: E402
from prp.oracles.openai_wire import retry_after  # noqa: E402

REL = {"d0": 1, "d1": 5, "d2": 3, "d3": 7, "d4": 2, "d5": 6, "d6": 0, "d7": 4}
IDS = list(REL)
DOCS = [f"doc {d} is a passage about topic {i}" for i, d in enumerate(IDS)]
K, B = 3, 4
EXPECTED = expected_order(IDS, REL, K)
MOCK_URL = "http://judge.test"
ENV = ("PRP_OPENAI_MODEL", "PRP_OPENAI_BASE_URL", "OPENAI_BASE_URL", "PRP_OPENAI_API_KEY",
       "OPENAI_API_KEY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def make(judge: FakeJudge | None = None, url: str | list[str] = MOCK_URL, **kw) -> OpenAIBackend:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("seed", 0)
    transport = judge.transport() if judge is not None else None
    return OpenAIBackend("fake-model", url, transport=transport, **kw)


def rank(backend: OpenAIBackend, cache: MemoryCache | None = None, **kw):
    reranker = Reranker(backend, sorter="quicksort", k=K, batch_size=B,
                        cache=cache if cache is not None else MemoryCache(), **kw)
    return reranker.rank("which doc?", DOCS, doc_ids=IDS)


def ids(result) -> list[str]:
    return [d.doc_id for d in result.docs]


def prompts(n: int) -> list[Prompt]:
    pairs = [(IDS[i % 8], IDS[(i + 1) % 8]) for i in range(n)]
    return [Prompt("q", "which doc?", a, DOCS[IDS.index(a)], b, DOCS[IDS.index(b)]) for a, b in pairs]


@pytest.fixture(scope="module")
def baseline():
    """A fault-free run: the ranking and the counts every fault test compares against."""
    judge = FakeJudge(REL)
    backend = make(judge)
    result = rank(backend)
    return result, backend.requests_made


def test_fault_free_ranking_and_accounting(baseline):
    result, requests = baseline
    assert ids(result) == EXPECTED
    assert requests == result.cost.inferences  # one HTTP request per inference
    assert result.cost.input_tokens > 0 and result.cost.output_tokens == result.cost.prompts
    assert result.cost.unparsed == 0


def test_payload_of_a_batch_and_of_a_single_prompt():
    judge = FakeJudge(REL)
    backend = make(judge, "http://judge.test/v1/", top_logprobs=7)
    asyncio.run(backend.judge(prompts(3)))
    asyncio.run(backend.judge(prompts(1)))
    (path, _, many), (_, _, one) = judge.requests
    assert path == "/v1/completions"
    assert many["max_tokens"] == 1 and many["temperature"] == 0 and many["logprobs"] == 7
    assert len(many["prompt"]) == 3 and many["prompt"][0].endswith("Output Passage A or Passage B: Passage")
    assert isinstance(one["prompt"], str) and many["model"] == "fake-model"


@pytest.mark.parametrize("fault", [status(429, retry_after="0"), status(429), status(500), status(503),
                                   MALFORMED], ids=["429+retry-after", "429", "500", "503", "malformed"])
def test_transient_fault_is_retried(baseline, fault):
    judge = FakeJudge(REL, [OK, fault, fault])
    backend = make(judge)
    result = rank(backend)
    assert ids(result) == EXPECTED
    assert backend.retries == 2 and backend.requests_made == baseline[1] + 2
    assert backend.lists_supported is True


@pytest.mark.parametrize("fault", [SLOW, DROP], ids=["timeout", "dropped-connection"])
def test_socket_fault_is_retried(baseline, fault):
    judge = FakeJudge(REL, [OK, fault, fault])
    with FaultServer(judge, slow_seconds=2.0) as server:  # a timeout that a loaded machine keeps
        backend = make(url=server.url, timeout=0.6, tokenizer="chars")
        result = rank(backend)
    assert ids(result) == EXPECTED
    assert backend.retries == 2 and backend.requests_made == baseline[1] + 2


def _fails_then_recovers(backend: OpenAIBackend, judge: FakeJudge, url: str, word: str, baseline):
    """First batch answered, the second fails every attempt; a rerun pays only what is missing."""
    cache = MemoryCache()
    with pytest.raises(BackendError) as err:
        rank(backend, cache)
    message = str(err.value)
    assert url in message and word in message and "3 attempt" in message
    assert backend.requests_made == 1 + 3  # bounded: one good request, then 1 + max_retries
    assert len(cache) == B  # the first batch only: nothing from the failed one
    assert judge.faults == []  # the script is spent: the server has recovered
    rerun = rank(backend, cache)
    assert ids(rerun) == EXPECTED
    assert rerun.cost.prompts == baseline[0].cost.prompts - B
    assert len(cache) == baseline[0].cost.prompts


@pytest.mark.parametrize("code", [429, 500, 503])
def test_status_that_never_recovers_raises_and_caches_nothing_of_the_failed_batch(baseline, code):
    judge = FakeJudge(REL, [OK] + [status(code)] * 3)
    _fails_then_recovers(make(judge, max_retries=2), judge, MOCK_URL, f"HTTP {code}", baseline)


@pytest.mark.parametrize("fault, word", [(SLOW, "ReadTimeout"), (DROP, "RemoteProtocolError")])
def test_socket_fault_that_never_recovers(baseline, fault, word):
    judge = FakeJudge(REL, [OK] + [fault] * 3)
    with FaultServer(judge, slow_seconds=2.0) as server:
        backend = make(url=server.url, timeout=0.6, max_retries=2, tokenizer="chars")
        _fails_then_recovers(backend, judge, server.url, word, baseline)


def test_malformed_json_that_never_recovers(baseline):
    judge = FakeJudge(REL, [OK] + [MALFORMED] * 3)
    _fails_then_recovers(make(judge, max_retries=2), judge, MOCK_URL, "malformed", baseline)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_non_retryable_status_fails_at_once(code):
    judge = FakeJudge(REL, [status(code, body='{"error": "no such model"}')])
    backend = make(judge, batch_requests=False)
    with pytest.raises(BackendError, match=f"{MOCK_URL}/v1/completions answered HTTP {code}: .*no such"):
        asyncio.run(backend.judge(prompts(1)))
    assert backend.requests_made == 1 and backend.retries == 0


@pytest.mark.parametrize("code", [401, 403, 404])
def test_auth_or_missing_errors_on_a_list_are_not_list_refusals(code):
    backend = make(FakeJudge(REL, [status(code)]))
    with pytest.raises(BackendError, match=f"HTTP {code}"):
        asyncio.run(backend.judge(prompts(3)))
    assert backend.requests_made == 1 and backend.lists_supported is None


def test_text_fallback_without_logprobs():
    judge = FakeJudge(REL, [Reply(text=" Passage B."), Reply(text="Hmm, hard to say")])
    backend = make(judge)
    parsed = asyncio.run(backend.judge(prompts(3)))
    assert parsed.judgments == [("B", None, True)] * 3 and parsed.prompt_tokens > 0
    garbage = asyncio.run(backend.judge(prompts(2)))
    assert [j.parsed for j in garbage.judgments] == [False, False]
    assert all(j.preferred is None for j in garbage.judgments)
    assert backend.requests_made == 2 and backend.retries == 0  # a 200 without logprobs: no retry


def test_unparsed_answers_are_counted_and_never_cached():
    judge = FakeJudge(REL, [Reply(text="no idea")] * 100)
    cache = MemoryCache()
    result = rank(make(judge), cache)
    # each prompt asked once more (prp.judgment's unparsed policy), then given up as a tie
    assert result.cost.unparsed == result.cost.unparsed_retries == result.cost.prompts / 2 > 0
    assert len(cache) == 0
    assert ids(result) == IDS  # undecided comparisons keep first-stage order


@pytest.mark.parametrize("refusal, lists", [(400, 2), (422, 2), (500, 3), ("first-only", 2)])
def test_server_refusing_lists_gets_single_prompts(baseline, refusal, lists):
    """A 400/422 or a short answer says "no lists" at once; a 500 may be a passing fault, so it
    takes two in a row (each batch is re-sent as single prompts). The run has 11 batches: after 8
    sent as single prompts a list is tried once more (and refused again)."""
    judge = FakeJudge(REL, refuse_lists=refusal)
    backend = make(judge)
    result = rank(backend)
    assert ids(result) == EXPECTED
    assert backend.lists_supported is False
    assert judge.list_requests() == lists
    assert backend.requests_made == lists + result.cost.prompts and backend.retries == 0
    assert result.cost.inferences == baseline[0].cost.inferences  # the ledger counts judge calls
    assert backend.stats()["requests"] == backend.requests_made + backend.stats()["tokenizer_requests"]


def test_a_transient_500_on_the_first_list_does_not_turn_lists_off(baseline):
    judge = FakeJudge(REL, [status(500)])
    backend = make(judge)
    result = rank(backend)
    assert ids(result) == EXPECTED and backend.lists_supported is True
    first_batch = len(judge.requests[0][2]["prompt"])
    assert backend.requests_made == baseline[1] + first_batch  # that batch again as single prompts
    assert judge.list_requests() == baseline[1]


def test_lists_are_tried_again_and_switch_back_on():
    judge = FakeJudge(REL, refuse_lists=400, refuse_lists_times=1)
    backend = make(judge)
    for _ in range(8):  # refused once: single prompts for REPROBE_AFTER = 8 batches
        asyncio.run(backend.judge(prompts(3)))
    assert backend.lists_supported is False and judge.list_requests() == 1
    assert backend.requests_made == 1 + 8 * 3
    asyncio.run(backend.judge(prompts(3)))  # the re-probe: lists work again
    assert backend.lists_supported is True and judge.list_requests() == 2
    asyncio.run(backend.judge(prompts(3)))
    assert backend.requests_made == 1 + 8 * 3 + 2


def test_a_refused_reprobe_waits_twice_as_long():
    judge = FakeJudge(REL, refuse_lists=400)
    backend = make(judge)
    for _ in range(1 + 8 + 1 + 16 + 1):
        asyncio.run(backend.judge(prompts(2)))
    assert judge.list_requests() == 3  # the first, then after 8 and after 16 more batches


def test_chat_endpoint(baseline):
    judge = FakeJudge(REL)
    backend = make(judge, endpoint="chat", top_logprobs=50)
    result = rank(backend)
    assert ids(result) == EXPECTED
    assert backend.requests_made == result.cost.prompts  # one request per prompt
    path, _, payload = judge.requests[0]
    assert path == "/v1/chat/completions" and payload["top_logprobs"] == 20 and payload["logprobs"]
    content = payload["messages"][0]["content"]
    assert content.endswith("Output Passage A or Passage B:")
    judged = asyncio.run(backend.judge(prompts(2)))
    assert all(math.isfinite(j.margin) and abs(j.margin) == pytest.approx(2.2) for j in judged.judgments)
    assert backend.name != make(FakeJudge(REL)).name  # chat and plain answers are cached apart


def test_chat_text_fallback_and_unparsed():
    judge = FakeJudge(REL, [Reply(text="Passage A"), Reply(text="I cannot tell.")])
    backend = make(judge, endpoint="chat", max_requests_in_flight=1)
    judged = asyncio.run(backend.judge(prompts(2)))
    assert judged.judgments == [("A", None, True), (None, None, False)]


def test_two_servers_share_the_work(baseline):
    judges = [FakeJudge(REL, delay=0.02), FakeJudge(REL, delay=0.02)]
    with FaultServer(judges[0]) as one, FaultServer(judges[1]) as two:
        backend = make(url=[one.url, two.url + "/v1"], hedge_factor=1000.0)
        result = rank(backend, concurrency=4)
    assert ids(result) == EXPECTED
    counts = [len(j.requests) for j in judges]
    assert min(counts) >= 3 and sum(counts) == baseline[1]  # both busy, nothing sent twice
    per_endpoint = [e["requests"] for e in backend.stats()["endpoints"]]  # tokenizer's too
    assert per_endpoint == [len(j.requests) + len(j.tokenizer_requests) for j in judges]


def test_a_retry_goes_to_the_next_server():
    judge = FakeJudge(REL, [status(503)])
    backend = make(judge, ["http://one.test", "http://two.test"])
    asyncio.run(backend.judge(prompts(1)))
    first, second = [h["host"] for _, h, _ in judge.requests]
    assert first != second
    failed, answered = sorted(backend.stats()["endpoints"], key=lambda e: e["url"] != f"http://{first}")
    assert failed["failures"] == 1 and failed["state"] in ("down", "probing")
    assert answered["failures"] == 0 and answered["state"] == "healthy"


def test_api_key_header():
    judge = FakeJudge(REL)
    asyncio.run(make(judge, api_key="sk-test").judge(prompts(1)))
    asyncio.run(make(judge).judge(prompts(1)))
    assert judge.requests[0][1]["authorization"] == "Bearer sk-test"
    assert "authorization" not in judge.requests[1][1]


def test_environment_defaults(monkeypatch):
    monkeypatch.setenv("PRP_OPENAI_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://fallback.test/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    backend = OpenAIBackend()
    assert (backend.model, backend.base_urls, backend.api_key) == ("env-model", ["http://fallback.test"],
                                                                   "sk-openai")
    assert backend.name.startswith("openai:env-model#")
    monkeypatch.setenv("PRP_OPENAI_BASE_URL", "http://prp.test")
    monkeypatch.setenv("PRP_OPENAI_API_KEY", "sk-prp")
    backend = OpenAIBackend()
    assert (backend.base_urls, backend.api_key) == (["http://prp.test"], "sk-prp")


def test_missing_base_url_names_the_variables_checked():
    with pytest.raises(ValueError, match="PRP_OPENAI_BASE_URL, OPENAI_BASE_URL"):
        OpenAIBackend("m")
    with pytest.raises(ValueError, match="PRP_OPENAI_MODEL"):
        OpenAIBackend(base_url=MOCK_URL)


@pytest.mark.parametrize("kwargs, word", [
    ({"endpoint": "embeddings"}, "endpoint"), ({"top_logprobs": 0}, "top_logprobs"),
    ({"max_requests_in_flight": 0}, "max_requests_in_flight"), ({"rate_limit": 0}, "rate_limit"),
    ({"timeout": 0}, "timeout"), ({"max_retries": -1}, "max_retries"), ({"backoff": -1}, "backoff"),
    ({"base_url": "judge.test"}, "http://"), ({"base_url": []}, "non-empty"),
    ({"passage_tokens": 0}, "passage_tokens"), ({"model": ""}, "model"),
])
def test_argument_validation(kwargs, word):
    args = {"model": "m", "base_url": MOCK_URL, **kwargs}
    with pytest.raises(ValueError, match=word):
        OpenAIBackend(**args)


def test_rate_limit_spaces_requests():
    judge = FakeJudge(REL)
    backend = make(judge, batch_requests=False, rate_limit=50)
    started = time.perf_counter()
    asyncio.run(backend.judge(prompts(10)))
    assert time.perf_counter() - started >= 0.15 and backend.requests_made == 10


def test_requests_in_flight_are_capped():
    judge = FakeJudge(REL, delay=0.05)
    with FaultServer(judge) as server:
        backend = make(url=server.url, batch_requests=False, max_requests_in_flight=3, parallel_singles=True)
        result = asyncio.run(backend.judge(prompts(10)))
    assert 2 <= judge.peak <= 3 and len(result.judgments) == 10  # 3 at most, and really concurrent
    assert result.prompt_tokens == sum(len(backend.render(p)) // 4 for p in prompts(10))


def test_retry_after_is_honoured_and_capped():
    judge = FakeJudge(REL, [status(429, retry_after="0.3")])
    backend = make(judge)
    started = time.perf_counter()
    asyncio.run(backend.judge(prompts(1)))
    assert time.perf_counter() - started >= 0.3 and backend.retries == 1
    assert backend.pool.pause(1, retry_after=3600) == 30.0
    date = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after(date) == 0.0  # a date in the past: retry now
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None


def test_backoff_is_bounded_with_full_jitter():
    backend = make(backoff=0.5)
    delays = [backend.pool.pause(streak) for streak in range(1, 13) for _ in range(20)]
    assert min(delays) >= 0 and max(delays) <= 30.0
    assert max(backend.pool.pause(2) for _ in range(50)) <= 1.0


def test_one_client_per_event_loop_and_aclose():
    judge = FakeJudge(REL)
    backend = make(judge)

    async def twice():
        await backend.judge(prompts(2))
        client = backend._state.client
        await backend.judge(prompts(2))
        assert backend._state.client is client
        await backend.aclose()
        assert client.is_closed

    asyncio.run(twice())
    asyncio.run(backend.judge(prompts(2)))  # a fresh loop gets a fresh client
    assert backend.requests_made == 3


def test_the_engine_closes_the_client_it_used():
    from prp.engine import Engine

    backend = make(FakeJudge(REL))
    clients = []

    async def main():
        async with Engine(backend, k=K, batch_size=4, cache=False,
                          on_inference=lambda inference: clients.append(backend._state.client)) as engine:
            result = await engine.rank("which doc?", DOCS, IDS)
        return result

    assert asyncio.run(main()).doc_ids == EXPECTED
    assert clients and len({id(c) for c in clients}) == 1 and clients[0].is_closed
    assert backend._state is None


def test_single_prompts_go_out_one_by_one_in_text_order():
    """As the in-process judge evaluates them, so a llama.cpp server reuses the same KV prefixes."""
    judge = FakeJudge(REL, delay=0.01)
    with FaultServer(judge) as server:
        backend = make(url=server.url, batch_requests=False, tokenizer="chars")
        batch = prompts(6)[::-1]
        result = asyncio.run(backend.judge(batch))
    sent = [p["prompt"] for _, _, p in judge.requests]
    assert sent == sorted(backend.render(p) for p in batch) and judge.peak == 1
    expected = [("A" if REL[p.first_id] > REL[p.second_id] else "B") for p in batch]
    assert [j.preferred for j in result.judgments] == expected  # back in the prompts' order
