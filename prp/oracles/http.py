"""A judge behind an OpenAI-compatible HTTP server (vLLM, llama.cpp's server, OpenAI itself).

Rules:

* **One ``judge`` call is one inference.** With ``endpoint="completions"`` and
  ``batch_requests=True`` a batch goes out as one ``/v1/completions`` request whose ``prompt`` is
  the list of rendered prompts (a batch of one is sent as a plain string). A server that refuses
  lists - a 400/422, a 500 before any list has succeeded (llama-cpp-python's server asserts on
  lists), or the wrong number of choices - gets the batch again as concurrent single-prompt
  requests; if lists never worked on this backend it gets single prompts for good
  (``lists_supported`` becomes False). ``endpoint="chat"`` always sends one request per prompt.
* **Margins** come from the next token's top log-probabilities (" A" vs " B"). A choice without
  them is read from its text (a preference with no margin); unreadable text gives an unparsed
  judgment (``parsed=False``), never a silent preference. Unparsed judgments are never cached.
* **Retried** (at most ``max_retries`` times, exponential backoff with full jitter, capped at
  30 s, or the server's ``Retry-After``, capped too): 408, 429, 5xx, timeouts, connection errors and
  200 responses whose body is not a JSON object with a list of choices. Other 4xx fail at once.
  A 200 whose choices lack logprobs is not retried. When retries run out, ``BackendError`` names
  the URL, the last status or exception and the number of attempts; a failed batch returns
  nothing, so nothing of it is cached.
* **Round-robin**: each HTTP request, retries included, goes to the next base URL of the pool.
* At most ``max_requests_in_flight`` requests are open at once, started at most ``rate_limit``
  per second (evenly spaced, no bursts). ``requests_made`` and ``retries`` count them.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import httpx
from asyncio_throttle import Throttler

from prp.oracles.base import BackendError
from prp.oracles.llm import LLMBackend
from prp.prompts import (
    PRP_TEMPLATE,
    Template,
    Tokenizer,
    judgment_from_scores,
    parse_answer,
    scores_from_top_logprobs,
)
from prp.types import BatchResult, Judgment, Prompt

ENV_MODEL = ("PRP_OPENAI_MODEL",)
ENV_BASE_URL = ("PRP_OPENAI_BASE_URL", "OPENAI_BASE_URL")
ENV_API_KEY = ("PRP_OPENAI_API_KEY", "OPENAI_API_KEY")
ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
MAX_SLEEP = 30.0  # seconds: cap of a backoff or a Retry-After
CHAT_MAX_TOKENS = 4  # room for "Passage A" or "**A**" before the letter
LIST_REFUSALS = frozenset({400, 422, 500})  # 500 only until a list request has succeeded


class _Refused(BackendError):
    """A non-retryable answer (a 4xx, or a status the caller treats as a list refusal)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _LoopState:
    """What is bound to one event loop: the HTTP client and the in-flight gate.

    ``keeper`` is an async generator started in that loop: the loop finalizes it when it shuts
    down (``asyncio.run`` does), which closes the client while the loop still runs.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient, limit: int):
        self.loop, self.client, self.gate = loop, client, asyncio.Semaphore(limit)
        self.keeper = self._keep(client)

    @staticmethod
    async def _keep(client: httpx.AsyncClient) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()


def _env(names: Sequence[str]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def _base_urls(base_url: str | Sequence[str] | None) -> list[str]:
    raw = base_url if base_url is not None else _env(ENV_BASE_URL)
    if raw is None:
        raise ValueError("no base_url given and none in the environment "
                         f"(checked {', '.join(ENV_BASE_URL)})")
    urls = [raw] if isinstance(raw, str) else list(raw)
    if not urls:
        raise ValueError("base_url must be a URL or a non-empty list of URLs")
    out = []
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
        url = url.rstrip("/")
        out.append(url[:-3] if url.endswith("/v1") else url)
    return out


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _completion_judgment(choice: dict[str, Any]) -> Judgment:
    """A /v1/completions choice -> judgment: top logprobs of the first token, else its text."""
    logprobs = choice.get("logprobs")
    tops = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
    if isinstance(tops, list) and tops and isinstance(tops[0], dict):
        judgment = judgment_from_scores(*scores_from_top_logprobs(tops[0]))
        if judgment.parsed:
            return judgment
    return parse_answer(str(choice.get("text") or ""))


def _as_mapping(entries: list[Any]) -> dict[str, float]:
    """Chat logprob entries ({"token", "logprob"}) -> token -> best logprob."""
    top: dict[str, float] = {}
    for entry in entries:
        token, logprob = (entry.get("token"), entry.get("logprob")) if isinstance(entry, dict) else ("", "")
        if isinstance(token, str) and isinstance(logprob, (int, float)):
            top[token] = max(float(logprob), top.get(token, -math.inf))
    return top


async def _all(coroutines: Sequence[Awaitable[BatchResult]]) -> BatchResult:
    """Run requests together, merge their results; on a failure cancel the rest, then raise."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return BatchResult([j for r in results for j in r.judgments], sum(r.prompt_tokens for r in results),
                       sum(r.completion_tokens for r in results))


def _chat_judgment(choice: dict[str, Any]) -> Judgment:
    """A chat choice -> judgment: the first generated "A"/"B" token's top logprobs, else text."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    for item in content if isinstance(content, list) else []:
        if isinstance(item, dict) and str(item.get("token", "")).strip() in ("A", "B"):
            alternatives = item.get("top_logprobs")
            entries = [item, *(alternatives if isinstance(alternatives, list) else [])]
            return judgment_from_scores(*scores_from_top_logprobs(_as_mapping(entries)))
    message = choice.get("message")
    return parse_answer(str(message.get("content") or "") if isinstance(message, dict) else "")


def _usage(body: dict[str, Any]) -> tuple[int, int]:
    usage = body.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    counts = [usage.get(key) for key in ("prompt_tokens", "completion_tokens")]
    prompt, completion = (int(n) if isinstance(n, (int, float)) else 0 for n in counts)
    return prompt, completion


class OpenAIBackend(LLMBackend):
    """Judges prompts through an OpenAI-compatible server (see the module docstring)."""

    kind = "openai"

    def __init__(self, model: str | None = None, base_url: str | Sequence[str] | None = None, *,
                 api_key: str | None = None, endpoint: str = "completions", top_logprobs: int = 20,
                 batch_requests: bool = True, max_requests_in_flight: int = 8,
                 rate_limit: float | None = None, timeout: float = 60.0, max_retries: int = 4,
                 backoff: float = 0.5, tokenizer: Tokenizer | None = None,
                 template: Template = PRP_TEMPLATE, passage_tokens: int | None = 128,
                 query_tokens: int | None = 64, transport: httpx.AsyncBaseTransport | None = None,
                 seed: int | None = None) -> None:
        model = model if model is not None else _env(ENV_MODEL)
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r} "
                             f"(the default comes from {ENV_MODEL[0]})")
        _check(endpoint in ENDPOINTS, f"endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}")
        for label, value, low in (("top_logprobs", top_logprobs, 1), ("max_retries", max_retries, 0),
                                  ("max_requests_in_flight", max_requests_in_flight, 1)):
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= low,
                   f"{label} must be an integer >= {low}, got {value!r}")
        _check(rate_limit is None or (isinstance(rate_limit, (int, float)) and rate_limit > 0),
               f"rate_limit must be > 0 requests per second or None, got {rate_limit!r}")
        _check(isinstance(timeout, (int, float)) and timeout > 0, f"timeout must be > 0, got {timeout!r}")
        _check(isinstance(backoff, (int, float)) and backoff >= 0, f"backoff must be >= 0, got {backoff!r}")
        super().__init__(model, template=template, passage_tokens=passage_tokens,
                         query_tokens=query_tokens, chat=endpoint == "chat")
        self.model = model
        self.base_urls = _base_urls(base_url)
        self.api_key = api_key if api_key is not None else _env(ENV_API_KEY)
        self.endpoint, self.top_logprobs = endpoint, top_logprobs
        self.batch_requests, self.max_requests_in_flight = batch_requests, max_requests_in_flight
        self.timeout, self.max_retries, self.backoff = float(timeout), max_retries, float(backoff)
        self.tokenizer = tokenizer
        self.transport = transport
        period = None if rate_limit is None else 1.0 / rate_limit
        self.throttler = None if period is None else Throttler(1, period, min(0.01, period / 4))
        self.rng = random.Random(seed)
        self.lists_supported: bool | None = None  # None: no list request answered yet
        self.requests_made = 0
        self.retries = 0
        self._turn = itertools.count()
        self._state: _LoopState | None = None

    # -- plumbing ---------------------------------------------------------------------------

    async def _loop_state(self) -> _LoopState:
        """This loop's client: ``Reranker.rank`` runs each call in a fresh loop."""
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            limit = self.max_requests_in_flight
            client = httpx.AsyncClient(transport=self.transport, headers=headers,
                                       timeout=httpx.Timeout(self.timeout),
                                       limits=httpx.Limits(max_connections=limit,
                                                           max_keepalive_connections=limit))
            self._state = _LoopState(loop, client, self.max_requests_in_flight)
            await anext(self._state.keeper)
        return self._state

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (a new one is made when needed)."""
        state, self._state = self._state, None
        if state is not None and state.loop is asyncio.get_running_loop():
            await state.keeper.aclose()

    def _sleep_for(self, attempt: int, response: httpx.Response | None) -> float:
        hint = None if response is None else _retry_after(response)
        if hint is not None:
            return min(hint, MAX_SLEEP)
        return self.rng.uniform(0.0, min(MAX_SLEEP, self.backoff * 2 ** attempt))

    async def _send(self, url: str, payload: dict[str, Any]) -> httpx.Response:
        state = await self._loop_state()
        async with state.gate:
            if self.throttler is not None:
                await self.throttler.acquire()
            self.requests_made += 1
            return await state.client.post(url, json=payload)

    async def _post(self, payload: dict[str, Any], refuse: frozenset[int] = frozenset()) -> dict[str, Any]:
        """POST ``payload`` with retries; the JSON body. Statuses in ``refuse`` raise _Refused."""
        path = ENDPOINTS[self.endpoint]
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            url = self.base_urls[next(self._turn) % len(self.base_urls)] + path
            response = None
            try:
                response = await self._send(url, payload)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                status = response.status_code
                if status in refuse or (400 <= status < 500 and status not in (408, 429)):
                    raise _Refused(f"{url} answered HTTP {status}: {_snippet(response)}", status)
                if status == 200:
                    body = self._json(response)
                    if body is not None:
                        return body
                    last = f"HTTP 200 with a malformed body: {_snippet(response)}"
                else:
                    last = f"HTTP {status}: {_snippet(response)}"
            if attempt + 1 < attempts:
                self.retries += 1
                await asyncio.sleep(self._sleep_for(attempt, response))
        raise BackendError(f"{url} failed after {attempts} attempt(s); last error: {last}")

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any] | None:
        """The body if it is an object with a non-empty list of choice objects, else None."""
        try:
            body = json.loads(response.content)
        except ValueError:
            return None
        choices = body.get("choices") if isinstance(body, dict) else None
        ok = isinstance(choices, list) and choices and all(isinstance(c, dict) for c in choices)
        return body if ok else None

    # -- judging ----------------------------------------------------------------------------

    async def judge(self, prompts: Sequence[Prompt]) -> BatchResult:
        if not prompts:
            return BatchResult([])
        if self.endpoint == "chat":
            return await _all([self._chat(p) for p in prompts])
        texts = [self.render(p) for p in prompts]
        if len(texts) > 1 and self.batch_requests and self.lists_supported is not False:
            try:
                result = await self._completions_list(texts)
            except _Refused as exc:
                if exc.status not in LIST_REFUSALS:
                    raise
                result = None
            if result is not None:
                self.lists_supported = True
                return result
        result = await _all([self._completion(t) for t in texts])
        if len(texts) > 1 and self.batch_requests and self.lists_supported is None:
            self.lists_supported = False  # refused, and single prompts work: remember it
        return result

    def _payload(self, prompt: str | list[str]) -> dict[str, Any]:
        return {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                "logprobs": self.top_logprobs}

    async def _completions_list(self, texts: list[str]) -> BatchResult | None:
        """One request for the whole batch; None if the server answered with the wrong choices."""
        refuse = LIST_REFUSALS - ({500} if self.lists_supported else set())
        body = await self._post(self._payload(texts), refuse)
        by_index = {c.get("index"): c for c in body["choices"]}
        if len(body["choices"]) != len(texts) or set(by_index) != set(range(len(texts))):
            return None
        return BatchResult([_completion_judgment(by_index[i]) for i in range(len(texts))], *_usage(body))

    async def _completion(self, text: str) -> BatchResult:
        body = await self._post(self._payload(text))
        return BatchResult([_completion_judgment(body["choices"][0])], *_usage(body))

    async def _chat(self, prompt: Prompt) -> BatchResult:
        payload = {"model": self.model, "temperature": 0, "max_tokens": CHAT_MAX_TOKENS,
                   "messages": [{"role": "user", "content": self.instruction(prompt)}],
                   "logprobs": True, "top_logprobs": min(self.top_logprobs, 20)}
        body = await self._post(payload)
        return BatchResult([_chat_judgment(body["choices"][0])], *_usage(body))
