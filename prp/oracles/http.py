"""A judge behind an OpenAI-compatible HTTP server (vLLM, llama.cpp's server, OpenAI itself).

Rules:

* **One prompt reads as in process.** Passages and query are cut to their budgets by the
  model's own tokenizer: by default the server's (``tokenizer="server"``: ``/tokenize`` on
  llama.cpp's server and vLLM, ``/extras/tokenize`` on llama-cpp-python's), or a local one
  given by name (a packaged model, a ``.gguf`` file, a Hugging Face tokenizer), or about 4
  characters a token with ``tokenizer="chars"`` (the cache name then says ``p~``). With
  ``chat=True`` (the default when the local tokenizer has a chat template, as in process) the
  instruction is wrapped in the model's chat template here and sent as a completion ending in
  the answer prefix: the very text the in-process llama.cpp judge evaluates. ``endpoint="chat"``
  lets the server apply its template instead (the answer is then generated, not prefilled).
* **One ``judge`` call is one inference.** With ``batch_requests=True`` a batch goes out as one
  ``/v1/completions`` request whose ``prompt`` is the list of rendered prompts (a batch of one
  as a plain string). A list answered 400/422 or with the wrong number of choices means the
  server does not take lists; a 500 on a list (before any list has worked) may mean the same
  (llama-cpp-python's server asserts) or be a passing fault: that batch is re-sent as
  concurrent single prompts, and lists go off only after :data:`LIST_STRIKES` such answers in a
  row. While off they are tried again after :data:`REPROBE_AFTER` batches (doubling while
  refused): a list that works switches them back on. ``endpoint="chat"`` sends one request per
  prompt. Single prompts of a batch go out one after another, sorted by text: the order in which
  the in-process llama.cpp judge evaluates them, so that a llama.cpp server, which keeps the KV
  cache of its last prompt, splits each prompt between cached prefix and new tokens as in process
  and gives the same margins (``parallel_singles=True`` sends them all at once instead).
* **Margins** come from the next token's top log-probabilities (" A" vs " B"); see
  :mod:`prp.oracles.openai_wire`. Unparsed judgments are never cached (the engine's rule).
* **Retries and the pool.** Base URLs form a health-aware pool (:mod:`prp.oracles.pool`): each
  request goes to the endpoint with the least expected wait; a failed one leaves rotation with
  backoff and is probed back in, so a retry goes to a healthy endpoint, and waits only when
  none is. Retried: 408, 429 (``Retry-After`` honoured, capped), 5xx, timeouts, connection
  errors and 200s whose body is not a JSON object with a list of choices; other 4xx fail at
  once; a 200 whose choices lack logprobs is not retried. A request unanswered for the pool's
  hedge delay is copied to another healthy endpoint (the first answer wins; the slow endpoint
  counts a failure); before any endpoint has answered, that delay is a sixth of ``timeout``.
  Each call sends at most ``max_retries + 1`` requests, copies included;
  then ``BackendError`` names the URL, the last error and the attempts, and the failed batch
  returns nothing, so nothing of it is cached.
* **Failing fast.** Whether the judge is down is the pool's verdict, from every call together
  (:mod:`prp.oracles.pool`): once every endpoint has been failing for ``give_up_after`` seconds
  (default 5; None, or ``off`` in a judge spec: never give up), every waiting and every new
  call (but the probe, and those waiting for a probe in flight) raises
  :class:`~prp.oracles.pool.JudgeDown` (a ``BackendError`` with ``retry_after``: seconds until
  the next probe) at once, instead of spending its own retries through a lengthening backoff.
  A call that spends its retries while every endpoint is out raises ``JudgeDown`` too; one
  that fails while some endpoint is healthy raises a plain ``BackendError``.
* **Hangs.** A slow model and a hung server look alike by time alone (a CPU llama.cpp server
  may take a minute for a batch), so a request unanswered for ``liveness_after`` seconds
  (default 2; None or ``off``: no check), from an endpoint that has given no HTTP answer at all
  for that long, makes the backend ask it ``GET /health`` with a ``liveness_timeout`` (default
  2 s; one check per endpoint at a time, shared by its requests). Any HTTP answer, of any
  status (a 404 too), proves it alive: the request waits on (up to ``timeout``). No answer: the
  endpoint hangs; its unanswered requests are cancelled and count as failures. A probe (a
  request to an endpoint out of rotation) is checked after :data:`PROBE_LOOK` seconds already,
  so a hung judge fails within about ``liveness_after + liveness_timeout + give_up_after``
  seconds plus one probe's check (9 to 11 s by default). The check is ``/health``, not
  ``/v1/models``, because llama-cpp-python's server answers ``/v1/models`` only once the model
  is free (it takes the model's lock), while its HTTP loop answers any other path at once, busy
  or not (a 404: tests/test_http_server.py keeps a real server busy to prove it); vLLM, TGI and
  llama.cpp's own ``llama-server`` answer ``/health`` while busy (``llama-server`` while the
  requests in flight leave it an HTTP thread: ``--threads-http``, by default ``--parallel`` + 2
  or the cores - 1; keep ``max_requests_in_flight`` below that). A server that answers nothing
  while busy needs the check off (``liveness_after=None``, CLI ``liveness_after=off``), relying
  on ``timeout``. A live server that never answers one request is still bounded by
  ``timeout`` only (or by the request's deadline, see :mod:`prp.engine`).
* At most ``max_requests_in_flight`` requests are open at once, started at most ``rate_limit``
  per second. :meth:`OpenAIBackend.stats` reports the real HTTP requests (judging and
  tokenizer), retries, hedges, liveness checks, requests cut as hung, and per-endpoint
  requests, failures and how long each has been failing.
* **Set and list questions** (a ``judge`` batch may mix them with pairs: each shape's prompts go
  through :meth:`OpenAIBackend.judge_shapes`, together with the pairs' requests):
  rendered by :mod:`prp.shape_text` and cut as pairs are; a set is asked for one token
  with logprobs (chat: a few tokens, the first label token's logprobs), a list for up to
  :func:`prp.shape_text.answer_room` tokens, generated; read by
  :func:`prp.oracles.openai_wire.shape_answer`. A batch goes as one list request when the server
  takes lists, else one request per question, sent together.
* **Determinism.** A server need not answer one prompt the same way twice (llama.cpp's server
  batches requests together, which changes the floating-point sums); the engine's cache makes
  a rerun repeatable once a prompt has been judged.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
from asyncio_throttle import Throttler

from prp.oracles.base import PROMPT_FAULT_STATUSES, BackendError
from prp.oracles.llm import LLMBackend, shaped_choice, split_shapes
from prp.oracles.openai_wire import (
    chat_judgment,
    completion_judgment,
    json_object,
    retry_after,
    shape_answer,
    snippet,
    usage,
    with_choices,
)
from prp.oracles.pool import GIVE_UP_AFTER, Endpoint, JudgeDown, Pool
from prp.oracles.tokenizers import ServerTokenizer, local_tokenizer
from prp.prompts import PRP_TEMPLATE, Template, Tokenizer, truncate
from prp.shape_text import TEMPLATES, ShapeBatch, answer_room
from prp.types import BatchResult, Prompt, ShapedPrompt

__all__ = ["JudgeDown", "OpenAIBackend", "retry_after"]

ENV_MODEL = ("PRP_OPENAI_MODEL",)
ENV_BASE_URL = ("PRP_OPENAI_BASE_URL", "OPENAI_BASE_URL")
ENV_API_KEY = ("PRP_OPENAI_API_KEY", "OPENAI_API_KEY")
ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
CHAT_MAX_TOKENS = 4  # room for "Passage A" or "**A**" before the letter
LIST_REFUSALS = frozenset({400, 422})  # a list answered so: this server takes no lists
LIST_STRIKES = 2  # lists answered 500 in a row (before any worked) that turn lists off
REPROBE_AFTER = 8  # batches sent as single prompts before a list is tried again (then doubling)
REPROBE_MAX = 512
HEDGE_RECHECK = 0.25  # seconds between looks at an unanswered request that could be hedged
LIVENESS_PATH = "/health"  # a cheap GET whose answer (any status) a busy server still gives
PROBE_LOOK = 0.25  # seconds a probe of an endpoint out of rotation waits before its liveness check
TOKENIZER_CHOICES = ("server", "chars")


class _Refused(BackendError):
    """A non-retryable answer (a 4xx the caller did not ask to see); one of
    :data:`~prp.oracles.base.PROMPT_FAULT_STATUSES` may be a prompt's fault (its batch is split)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.prompt_fault = status in PROMPT_FAULT_STATUSES


class _Hung(Exception):
    """A request unanswered, from an endpoint that answered no liveness check either."""


class _LoopState:
    """What is bound to one event loop: the HTTP client, the in-flight gate and the liveness
    checks in flight (by endpoint URL).

    ``keeper`` is an async generator started in that loop: the loop finalizes it when it shuts
    down (``asyncio.run`` does), which closes the client while the loop still runs.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient, limit: int):
        self.loop, self.client, self.gate = loop, client, asyncio.Semaphore(limit)
        self.checks: dict[str, asyncio.Task[bool]] = {}
        self.keeper = self._keep(client)

    @staticmethod
    async def _keep(client: httpx.AsyncClient) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()


class _Flight:
    """One HTTP request of a call: where it went, when, and its task."""

    __slots__ = ("ep", "start", "task")

    def __init__(self) -> None:
        self.ep: Endpoint | None = None
        self.start: float | None = None  # None until it is sent
        self.task: asyncio.Task[_Outcome]


class _Outcome:
    __slots__ = ("url", "status", "body", "error")

    def __init__(self, url: str, status: int = 0, body: dict[str, Any] | None = None,
                 error: str | None = None) -> None:
        self.url, self.status, self.body, self.error = url, status, body, error


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


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


async def _all(coroutines: Sequence[Awaitable[Any]]) -> list[Any]:
    """Run coroutines together, results in order; on a failure cancel the rest, then raise."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _merged(results: Sequence[BatchResult]) -> BatchResult:
    return BatchResult([j for r in results for j in r.judgments], sum(r.prompt_tokens for r in results),
                       sum(r.completion_tokens for r in results))


class OpenAIBackend(LLMBackend):
    """Judges prompts through an OpenAI-compatible server (see the module docstring)."""

    kind = "openai"

    def __init__(self, model: str | None = None, base_url: str | Sequence[str] | None = None, *,
                 api_key: str | None = None, endpoint: str = "completions", top_logprobs: int = 20,
                 batch_requests: bool = True, max_requests_in_flight: int = 8,
                 rate_limit: float | None = None, timeout: float = 60.0, max_retries: int = 4,
                 backoff: float = 0.5, tokenizer: Tokenizer | str | None = "server",
                 chat: bool | None = None, template: Template = PRP_TEMPLATE,
                 passage_tokens: int | None = 128, query_tokens: int | None = 64,
                 hedge_factor: float = 4.0, hedge_min: float = 0.5, parallel_singles: bool = False,
                 give_up_after: float | None = GIVE_UP_AFTER, liveness_after: float | None = 2.0,
                 liveness_timeout: float = 2.0, transport: httpx.AsyncBaseTransport | None = None,
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
        for label, value in (("timeout", timeout), ("hedge_factor", hedge_factor),
                             ("liveness_timeout", liveness_timeout)):
            _check(_number(value) and value > 0, f"{label} must be > 0, got {value!r}")
        give_up_after = None if give_up_after is False else give_up_after  # "off" in a judge spec
        liveness_after = None if liveness_after is False else liveness_after
        for label, value in (("give_up_after", give_up_after), ("liveness_after", liveness_after)):
            _check(value is None or (_number(value) and value >= 0),
                   f"{label} must be a number of seconds >= 0, or None or false (off), got {value!r}")
        for label, value in (("backoff", backoff), ("hedge_min", hedge_min)):
            _check(isinstance(value, (int, float)) and value >= 0, f"{label} must be >= 0, got {value!r}")
        _check(chat in (None, True, False), f"chat must be true, false or unset, got {chat!r}")
        local, server_side = self._tokenizer(tokenizer)
        super().__init__(model, template=template, passage_tokens=passage_tokens,
                         query_tokens=query_tokens, chat=self._chat_mode(endpoint, chat, local))
        self.model = model
        self.base_urls = _base_urls(base_url)
        self.api_key = api_key if api_key is not None else _env(ENV_API_KEY)
        self.endpoint, self.top_logprobs = endpoint, top_logprobs
        self.batch_requests, self.max_requests_in_flight = batch_requests, max_requests_in_flight
        self.parallel_singles = parallel_singles
        self.timeout, self.max_retries, self.backoff = float(timeout), max_retries, float(backoff)
        self.tokenizer = local
        self.server_tokenizer = ServerTokenizer(model, self._post_json) if server_side else None
        self.transport = transport
        period = None if rate_limit is None else 1.0 / rate_limit
        self.throttler = None if period is None else Throttler(1, period, min(0.01, period / 4))
        self.liveness_after = None if liveness_after is None else float(liveness_after)
        self.liveness_timeout = float(liveness_timeout)
        self.pool = Pool(self.base_urls, backoff=self.backoff, hedge_factor=float(hedge_factor),
                         hedge_min=float(hedge_min), cold_hedge=max(float(hedge_min), self.timeout / 6),
                         give_up_after=None if give_up_after is None else float(give_up_after),
                         rng=random.Random(seed))
        self.lists_supported: bool | None = None  # None: no list request answered yet
        self._list_strikes = 0
        self._single_batches = 0  # multi-prompt batches sent as single prompts since lists went off
        self._reprobe_after = REPROBE_AFTER
        self.requests_made = 0  # judging requests (completions, chat), copies and retries included
        self.tokenizer_requests = 0  # requests to the server's tokenizer, retries included
        self.retries = 0
        self.hedges = 0
        self.liveness_checks = 0  # GET requests asking a silent endpoint whether it is alive
        self.hung = 0  # requests cancelled because their endpoint answered no liveness check
        self._state: _LoopState | None = None

    @staticmethod
    def _tokenizer(tokenizer: Tokenizer | str | None) -> tuple[Any, bool]:
        """(local tokenizer or None, truncate with the server's?)"""
        if tokenizer == "server":
            return None, True
        if tokenizer is None or tokenizer == "chars":
            return None, False
        if isinstance(tokenizer, str):
            return local_tokenizer(tokenizer), False
        _check(callable(getattr(tokenizer, "encode", None)) and callable(getattr(tokenizer, "decode", None)),
               f"tokenizer must be one of {', '.join(TOKENIZER_CHOICES)}, a model name or path, or an "
               f"object with encode and decode, got {tokenizer!r}")
        return tokenizer, False

    @staticmethod
    def _chat_mode(endpoint: str, chat: bool | None, local: Any) -> bool:
        if endpoint == "chat":
            _check(chat is not False, "endpoint='chat' always uses the server's chat template: "
                                      "use endpoint='completions' for plain prompts")
            return True
        has_template = bool(getattr(local, "chat_template", None)) and callable(getattr(local, "chat", None))
        if chat and not has_template:
            raise ValueError("chat=True renders the model's chat template here, so it needs a local "
                             "tokenizer that has one (tokenizer=<packaged model, .gguf file or Hugging "
                             "Face id>); or use endpoint='chat' to let the server apply it")
        return has_template if chat is None else chat

    # -- identity and rendering -------------------------------------------------------------

    @property
    def prompt_format(self) -> str:
        return "chat-api" if self.endpoint == "chat" else super().prompt_format

    @property
    def exact_truncation(self) -> bool:
        return self.tokenizer is not None or self.server_tokenizer is not None

    def instruction(self, prompt: Prompt) -> str:
        cut = self.server_tokenizer
        if cut is None:
            return super().instruction(prompt)
        return self.template.render(cut.truncated(prompt.query, self.query_tokens),
                                    cut.truncated(prompt.first, self.passage_tokens),
                                    cut.truncated(prompt.second, self.passage_tokens))

    async def _prepare(self, prompts: Sequence[Prompt]) -> None:
        """Ask the server's tokenizer for every truncation these prompts need."""
        if self.server_tokenizer is None:
            return
        q, p = self.query_tokens, self.passage_tokens
        wanted = [w for x in prompts for w in ((x.query, q), (x.first, p), (x.second, p))]
        await self.server_tokenizer.prepare(wanted, _all)

    # -- plumbing ---------------------------------------------------------------------------

    async def _loop_state(self) -> _LoopState:
        """This loop's client: ``Reranker.rank`` runs each call in a fresh loop."""
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            limit = self.max_requests_in_flight + len(self.base_urls)  # room for hedges
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

    def stats(self) -> dict[str, Any]:
        """HTTP requests made (judging and tokenizer), retries, hedges, list mode, per endpoint."""
        lists = {None: "untried", True: "on", False: "off"}[self.lists_supported]
        return {"requests": self.requests_made + self.tokenizer_requests,
                "judge_requests": self.requests_made, "tokenizer_requests": self.tokenizer_requests,
                "retries": self.retries, "hedges": self.hedges, "liveness_checks": self.liveness_checks,
                "hung": self.hung,
                "lists": lists if self.endpoint == "completions" and self.batch_requests else "unused",
                "endpoints": self.pool.stats()}

    async def _fly(self, flight: _Flight, path: str, payload: dict[str, Any], refuse: frozenset[int],
                   valid: Callable[[dict[str, Any]], bool], ep: Endpoint | None) -> _Outcome:
        """Send one request (to ``ep``, or to the pool's choice) and record how it went."""
        state = await self._loop_state()
        pool = self.pool
        async with state.gate:
            if self.throttler is not None:
                await self.throttler.acquire()
            ep = ep if ep is not None else await pool.acquire()
            start = pool.started(ep)
            flight.ep, flight.start = ep, start
            if path in ENDPOINTS.values():
                self.requests_made += 1
            else:
                self.tokenizer_requests += 1
            url = ep.url + path
            try:
                response = await self._post(state, ep, start, url, payload)
            except _Hung as exc:
                self.hung += 1
                pool.failed(ep, start, str(exc))
                return _Outcome(url, error=str(exc))
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")
                pool.failed(ep, start, error)
                return _Outcome(url, error=error)
            except BaseException:
                pool.cancelled(ep, start)
                raise
        pool.alive(ep)
        status = response.status_code
        if status in refuse or (400 <= status < 500 and status not in (408, 429)):
            pool.answered(ep, start)  # the server is up; the request was wrong for it
            if status in refuse:
                return _Outcome(url, status, json_object(response))
            raise _Refused(f"{url} answered HTTP {status}: {snippet(response)}", status)
        if status == 200:
            body = json_object(response)
            if body is not None and valid(body):
                if path in ENDPOINTS.values():
                    pool.succeeded(ep, start)
                else:  # a tokenizer call: far quicker than a judgment, so no latency is learnt
                    pool.answered(ep, start)
                return _Outcome(url, 200, body)
            error = f"HTTP 200 with a malformed body: {snippet(response)}"
        else:
            error = f"HTTP {status}: {snippet(response)}"
        pool.failed(ep, start, error, retry_after(response))
        return _Outcome(url, error=error)

    async def _post(self, state: _LoopState, ep: Endpoint, start: float, url: str,
                    payload: dict[str, Any]) -> httpx.Response:
        """POST, watching for a hang (module docstring): raises :class:`_Hung` when the request
        stays unanswered and the endpoint answers no liveness check either."""
        if self.liveness_after is None:
            return await state.client.post(url, json=payload)
        post = asyncio.ensure_future(state.client.post(url, json=payload))
        clock = self.pool.clock
        probe = ep.streak > 0  # an endpoint out of rotation: checked soon
        try:
            while True:  # look when unanswered this long, with no sign of life from the endpoint since
                look = start + min(self.liveness_after, PROBE_LOOK) if probe else \
                    max(start, ep.alive_at) + self.liveness_after
                wait = look - clock()
                if wait > 0:
                    await asyncio.wait([post], timeout=wait)
                    if post.done():
                        return post.result()
                    continue
                probe = False
                check = self._liveness(state, ep)
                await asyncio.wait([post, check], return_when=asyncio.FIRST_COMPLETED)
                if post.done():
                    return post.result()
                if not check.cancelled() and check.result() is False:
                    raise _Hung(f"no answer in {clock() - start:.1f} s, and none to GET {LIVENESS_PATH} "
                                f"within {self.liveness_timeout:g} s: the server hangs")
        finally:
            if not post.done():
                post.cancel()
                await asyncio.gather(post, return_exceptions=True)

    def _liveness(self, state: _LoopState, ep: Endpoint) -> asyncio.Task[bool]:
        """The endpoint's liveness check in flight, or a new one (one per endpoint at a time)."""
        task = state.checks.get(ep.url)
        if task is None or task.done():
            task = state.checks[ep.url] = asyncio.ensure_future(self._alive(state, ep))
        return task

    async def _alive(self, state: _LoopState, ep: Endpoint) -> bool:
        """Does ``ep`` give any HTTP answer to a cheap GET within ``liveness_timeout``? Only a
        connection that fails or stays silent says no (a full connection pool proves nothing)."""
        self.liveness_checks += 1
        try:
            await state.client.get(ep.url + LIVENESS_PATH, timeout=self.liveness_timeout)
        except httpx.PoolTimeout:
            return True
        except httpx.TransportError:
            return False
        except Exception:  # e.g. the client closed under it: no evidence of a hang
            return True
        self.pool.alive(ep)
        return True

    def _launch(self, path: str, payload: dict[str, Any], refuse: frozenset[int],
                valid: Callable[[dict[str, Any]], bool], ep: Endpoint | None = None) -> _Flight:
        flight = _Flight()
        flight.task = asyncio.ensure_future(self._fly(flight, path, payload, refuse, valid, ep))
        return flight

    def _hedge_due(self, flight: _Flight) -> tuple[bool, float]:
        """(copy it now?, seconds until the next look) for the only request of a call."""
        delay = self.pool.hedge_delay()
        if flight.start is None or delay is None:
            return False, HEDGE_RECHECK
        left = flight.start + delay - self.pool.clock()
        return left <= 0, max(left, 0.0) or HEDGE_RECHECK

    async def _request(self, path: str, payload: dict[str, Any], refuse: frozenset[int] = frozenset(),
                       valid: Callable[[dict[str, Any]], bool] = lambda b: with_choices(b) is not None
                       ) -> _Outcome:
        """POST with retries through the pool, hedging a request that hangs (module docstring).
        The answer: a valid 200, or a status in ``refuse``; raises BackendError when spent."""
        budget = self.max_retries + 1
        flights: list[_Flight] = []
        sent, last, last_url = 0, "no answer", path
        try:
            while True:
                if not flights:
                    if sent >= budget:
                        if self.pool.all_out():
                            raise self.pool.down(f"{self._spent(last_url, sent, last)}; the judge is down "
                                                 "(every endpoint is out)")
                        raise BackendError(self._spent(last_url, sent, last))
                    self.retries += sent > 0
                    flights.append(self._launch(path, payload, refuse, valid))
                    sent += 1
                wait = None
                if len(flights) == 1 and sent < budget and len(self.pool.endpoints) > 1:
                    due, wait = self._hedge_due(flights[0])
                    other = self.pool.pick(exclude=[flights[0].ep]) if due else None
                    if other is not None:
                        flights.append(self._launch(path, payload, refuse, valid, other))
                        sent += 1
                        self.hedges += 1
                        wait = None
                done, _ = await asyncio.wait([f.task for f in flights], timeout=wait,
                                             return_when=asyncio.FIRST_COMPLETED)
                for index, flight in enumerate(list(flights)):
                    if flight.task not in done:
                        continue
                    flights.remove(flight)
                    outcome = flight.task.result()  # a _Refused propagates
                    if outcome.error is None:
                        for slower in flights[:index]:  # sent earlier, still unanswered: lost to a copy
                            if slower.ep is not None and slower.start is not None:
                                self.pool.failed(slower.ep, slower.start, "no answer before a copy's",
                                                 lost_hedge=True)
                        return outcome
                    last, last_url = outcome.error, outcome.url
        finally:
            for flight in flights:
                flight.task.cancel()
            if flights:
                await asyncio.gather(*(f.task for f in flights), return_exceptions=True)

    def _spent(self, url: str, attempts: int, last: str) -> str:
        message = f"{url} failed after {attempts} attempt(s); last error: {last}"
        if len(self.pool.endpoints) > 1:
            message += "; endpoints: " + ", ".join(
                f"{e['url']} {e['state']} ({e['requests']} requests, {e['failures']} failures)"
                for e in self.pool.stats())
        return message

    async def _post_json(self, path: str, payload: dict[str, Any], refuse: frozenset[int]
                         ) -> tuple[int, dict[str, Any] | None]:
        """For the server's tokenizer: (status, body) of a JSON object answer."""
        outcome = await self._request(path, payload, refuse, valid=lambda body: True)
        return outcome.status, outcome.body

    # -- judging ----------------------------------------------------------------------------

    async def judge(self, prompts: Sequence[Prompt | ShapedPrompt]) -> BatchResult:
        if not prompts:
            return BatchResult([])
        pairs, shaped = split_shapes(prompts)
        if not shaped:
            return await self._judge_pairs(prompts)  # type: ignore[arg-type]
        parts = [self._judge_pairs([prompts[i] for i in pairs])] if pairs else []  # type: ignore[misc]
        parts += [self._judge_shaped(shape, [prompts[i] for i in idx]) for shape, idx in shaped.items()]
        results = await _all(parts)
        answers: list[Any] = [None] * len(prompts)
        for positions, result in zip([pairs] * bool(pairs) + list(shaped.values()), results, strict=True):
            for position, answer in zip(positions, result.judgments, strict=True):
                answers[position] = answer
        return BatchResult(answers, sum(r.prompt_tokens for r in results),
                           sum(r.completion_tokens for r in results))

    async def _judge_shaped(self, shape: str, prompts: Sequence[Any]) -> BatchResult:
        batch = await self.judge_shapes(shape, [(p.query, p.texts) for p in prompts])
        return BatchResult([shaped_choice(a) for a in batch.answers], batch.prompt_tokens,
                           batch.completion_tokens)

    async def _judge_pairs(self, prompts: Sequence[Prompt]) -> BatchResult:
        await self._prepare(prompts)
        if self.endpoint == "chat":
            return await self._singles([self.instruction(p) for p in prompts], self._chat)
        texts = [self.render(p) for p in prompts]
        if len(texts) > 1 and self.batch_requests:
            if self.lists_supported is not False or self._single_batches >= self._reprobe_after:
                result = await self._completions_list(texts)
                if result is not None:
                    return result
            if self.lists_supported is False:
                self._single_batches += 1
        return await self._singles(texts, self._completion)

    async def _singles(self, texts: list[str], send: Callable[[str], Awaitable[BatchResult]]) -> BatchResult:
        """One request per prompt: in text order, one after another (or all at once); results
        in the prompts' order."""
        if self.parallel_singles:
            return _merged(await _all([send(t) for t in texts]))
        results: list[BatchResult | None] = [None] * len(texts)
        for index in sorted(range(len(texts)), key=lambda i: texts[i]):
            results[index] = await send(texts[index])
        return _merged(results)  # type: ignore[arg-type]

    def _payload(self, prompt: str | list[str]) -> dict[str, Any]:
        return {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                "logprobs": self.top_logprobs}

    async def _completions_list(self, texts: list[str]) -> BatchResult | None:
        """One request for the whole batch; None if the server did not take the list."""
        refuse = LIST_REFUSALS | (frozenset() if self.lists_supported else {500})
        outcome = await self._request(ENDPOINTS["completions"], self._payload(texts), refuse)
        if outcome.status == 200:
            body = outcome.body or {}
            by_index = {c.get("index"): c for c in body["choices"]}
            if len(body["choices"]) == len(texts) and set(by_index) == set(range(len(texts))):
                self.lists_supported, self._list_strikes = True, 0
                self._reprobe_after = REPROBE_AFTER
                return BatchResult([completion_judgment(by_index[i]) for i in range(len(texts))],
                                   *usage(body))
        self._list_refused(explicit=outcome.status != 500)
        return None

    def _list_refused(self, explicit: bool) -> None:
        if self.lists_supported is False:  # a re-probe: still refused, wait twice as long
            self._single_batches = 0
            self._reprobe_after = min(2 * self._reprobe_after, REPROBE_MAX)
            return
        self._list_strikes = LIST_STRIKES if explicit else self._list_strikes + 1
        if self._list_strikes >= LIST_STRIKES:
            self.lists_supported, self._single_batches = False, 0

    async def _completion(self, text: str) -> BatchResult:
        body = (await self._request(ENDPOINTS["completions"], self._payload(text))).body or {}
        return BatchResult([completion_judgment(body["choices"][0])], *usage(body))

    async def _chat(self, instruction: str) -> BatchResult:
        payload = {"model": self.model, "temperature": 0, "max_tokens": CHAT_MAX_TOKENS,
                   "messages": [{"role": "user", "content": instruction}],
                   "logprobs": True, "top_logprobs": min(self.top_logprobs, 20)}
        body = (await self._request(ENDPOINTS["chat"], payload)).body or {}
        return BatchResult([chat_judgment(body["choices"][0])], *usage(body))

    # -- set and list questions -------------------------------------------------------------

    async def judge_shapes(self, shape: str, questions: Sequence[tuple[str, Sequence[str]]]) -> ShapeBatch:
        """Ask each question - a query and its passages, in the order shown - as a ``set`` (the
        label's log-probabilities, else its text) or a ``list`` (generated, then parsed), as one
        inference: one request for the batch when the server takes lists of prompts (lists go
        off as for pairs), else one request per question, sent together. Query and passages
        are cut as for pairs; the answers are read by
        :func:`prp.oracles.openai_wire.shape_answer` (unparsed ones have ``value`` None). The
        cache identity of these answers is :meth:`shape_name`. :meth:`judge` calls it for the
        set and list prompts of a batch."""
        if shape not in TEMPLATES:
            raise ValueError(f"shape must be one of {', '.join(TEMPLATES)}, got {shape!r}")
        asked = [(query, list(passages)) for query, passages in questions]
        if not asked:
            return ShapeBatch([])
        if self.server_tokenizer is not None:
            wanted = [(q, self.query_tokens) for q, _ in asked]
            wanted += [(p, self.passage_tokens) for _, ps in asked for p in ps]
            await self.server_tokenizer.prepare(wanted, _all)
        template = TEMPLATES[shape]
        cut = [(self._cut(q, self.query_tokens), [self._cut(p, self.passage_tokens) for p in ps])
               for q, ps in asked]
        sizes = [len(ps) for _, ps in cut]
        if self.endpoint == "chat":
            sent = [self._shape_request(ENDPOINTS["chat"], {"messages": template.messages(q, ps)}, shape, n)
                    for (q, ps), n in zip(cut, sizes, strict=True)]
            return self._shape_batch(await _all(sent), shape, sizes)
        chat = self.tokenizer.chat if self.chat else None  # type: ignore[union-attr]
        texts = [template.render(q, ps, chat) for q, ps in cut]
        if len(texts) > 1 and self.batch_requests and self.lists_supported is not False:
            refuse = LIST_REFUSALS | (frozenset() if self.lists_supported else {500})
            outcome = await self._request(ENDPOINTS["completions"],
                                          self._shape_payload({"prompt": texts}, shape, max(sizes)), refuse)
            choices = (outcome.body or {}).get("choices", [])
            by_index = {c.get("index"): c for c in choices}
            whole = len(choices) == len(texts) and set(by_index) == set(range(len(texts)))
            if outcome.status == 200 and whole:
                self.lists_supported, self._list_strikes = True, 0
                answers = [shape_answer(by_index[i], shape, n) for i, n in enumerate(sizes)]
                return ShapeBatch(answers, *usage(outcome.body or {}))
            self._list_refused(explicit=outcome.status != 500)
        sent = [self._shape_request(ENDPOINTS["completions"], {"prompt": t}, shape, n)
                for t, n in zip(texts, sizes, strict=True)]
        return self._shape_batch(await _all(sent), shape, sizes)

    def _cut(self, text: str, budget: int | None) -> str:
        if self.server_tokenizer is not None:
            return self.server_tokenizer.truncated(text, budget)
        return truncate(text, budget, self.tokenizer)

    def _shape_payload(self, payload: dict[str, Any], shape: str, n: int) -> dict[str, Any]:
        chat = "messages" in payload
        if shape == "set":
            room = CHAT_MAX_TOKENS if chat else 1
            logprobs = {"logprobs": True, "top_logprobs": min(self.top_logprobs, 20)} if chat else \
                {"logprobs": self.top_logprobs}
        else:
            room = answer_room("list", n, self.tokenizer)
            logprobs = {}
        return {"model": self.model, **payload, "max_tokens": room, "temperature": 0, **logprobs}

    async def _shape_request(self, path: str, payload: dict[str, Any], shape: str, n: int) -> dict[str, Any]:
        return (await self._request(path, self._shape_payload(payload, shape, n))).body or {}

    @staticmethod
    def _shape_batch(bodies: list[dict[str, Any]], shape: str, sizes: list[int]) -> ShapeBatch:
        answers = [shape_answer(body["choices"][0], shape, n) for body, n in zip(bodies, sizes, strict=True)]
        spent = [usage(body) for body in bodies]
        return ShapeBatch(answers, sum(p for p, _ in spent), sum(c for _, c in spent))
