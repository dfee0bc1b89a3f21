"""The rerank service's HTTP app (FastAPI): one :class:`~prp.engine.Engine` behind it, so
concurrent requests share LLM batches.

Endpoints:

* ``POST /v1/rerank`` and ``/rerank`` (Cohere v1, Jina, vLLM; a body with ``texts`` and no
  ``documents`` is TEI's and gets TEI's bare array) and ``POST /v2/rerank`` (Cohere v2): the
  shapes are :mod:`prp.serve.dialects`', the bodies :mod:`prp.serve.bodies`'. Besides the rerank
  APIs' fields a body may carry ``sorter``, ``budget`` (prompts per query), ``orders``,
  ``timeout`` (seconds) and ``top_n`` (the k the sorter orders; default all). A simulated judge
  reads ids, not texts: it looks up ``query_id`` (default: the query text) and each document's
  ``id`` (default: its index, ``"0"``, ``"1"``, ...) in its qrels. An answer carries
  ``warnings`` (a list of strings, also as ``meta.warnings``, where the Cohere SDK reads them; an
  ``X-PRP-Warnings`` header for TEI's bare array) when there is something to say: a simulated
  judge with no judgments for the query (:func:`prp.oracles.simulated.no_judgments`), e.g. every
  request of a client that sends no ids.
* ``GET /health``: 200 ``{"status": "ok"}`` while admitting, 200 ``{"status": "degraded", "reason"}``
  while admitting without a cache tier (Redis down: :func:`prp.cache.cache_health`), 503
  ``draining`` once shutting down.
* ``GET /metrics``: Prometheus text (a registry per app).

Rules:

* **A client's body is never a 5xx.** Everything that can be checked is checked at admission,
  before the request joins a batch (strict JSON, text that encodes as UTF-8, strict types, sizes,
  ids, the sorter spec): 422 naming the field and index (``documents[3].text``), 413 past a limit
  (more documents, characters or body bytes than allowed). So a bad request fails alone.
* A prompt the judge refuses (:class:`~prp.oracles.base.PromptFailed`, found by splitting the
  batch that failed) fails only the requests that own it: 422 naming the judge's message.
* With API keys set, every rerank call needs ``Authorization: Bearer KEY`` (or ``X-API-Key``),
  else 401 (health and metrics stay open).
* Batching: every rerank request is announced to the engine (:meth:`prp.engine.Engine.arriving`)
  from the moment it is received until it is submitted, so an idle engine lingers
  (``linger_ms``) only while other requests are on their way, never for a lone one.
* A request that arrives while the service drains gets 503 with ``Retry-After``. A judge that is
  down (every endpoint out: :class:`~prp.oracles.pool.JudgeDown`) is a 503 with ``Retry-After``
  (seconds until the judge is probed again, at least 1); any other judge failure is a 502.
  Shutdown (uvicorn's lifespan end, after it drained the open requests) closes the engine
  (finishing anything still in flight) and the cache, so nothing judged is lost.

Speed: a rerank call never goes through FastAPI's middleware, routing or request objects. The
app's own ASGI entry (:class:`_App`) guards every call but health and metrics (draining, API
key, ``Content-Length``); a rerank POST's body is read straight from ``receive``, and the usual
body (orjson reads it, every part of it plainly right) is admitted without pydantic
(:func:`prp.serve.bodies.quick_admit`; any other body takes the long way, with its messages);
its answer is written as two ASGI messages, JSON by orjson, sent in one piece
(:mod:`prp.serve.protocol`). FastAPI still serves
everything else (health, metrics, 404 and 405 in the service's JSON shape). Per inference the
engine's hook only counts in a dict (:class:`_Inferences`). ``bench/serve_lone.py`` measures
what is left.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from prp.cache import add_cache_error_hook, cache_health
from prp.engine import Engine, EngineClosed
from prp.oracles.base import BackendError, PromptFailed
from prp.oracles.simulated import unjudged
from prp.reranker import Reranker
from prp.serve import dialects
from prp.serve.bodies import (
    BodyError,
    ClientGone,
    Limits,
    admit,
    load_json,
    quick_admit,
    quick_json,
    receive_body,
)
from prp.serve.dialects import Reply
from prp.types import RankRequest

__all__ = ["Limits", "Metrics", "create_app"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self, batch_size: int) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("prp_requests", "Rerank requests answered, by HTTP status", ["status"],
                                registry=r)
        self.judged = _Inferences(batch_size)  # prp_prompts, prp_inferences, prp_batch_fill
        r.register(self.judged)
        self.batch_splits = Counter("prp_batch_splits", "Failed batches split in halves to find the prompt "
                                    "at fault (prp.scheduler)", registry=r)
        self.cache_hits = Counter("prp_cache_hits", "Comparisons answered by the cache", registry=r)
        self.unparsed = Counter("prp_unparsed", "Prompts whose answer stayed unreadable after a retry "
                                "(counted as ties)", registry=r)
        self.documents = Counter("prp_documents", "Documents reranked", registry=r)
        self.latency = Histogram("prp_request_seconds", "Rerank request latency", registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))
        self.queue_depth = Gauge("prp_queue_depth", "Queries waiting to be admitted", registry=r)
        self.in_flight = Gauge("prp_in_flight", "Queries being ranked", registry=r)
        self.cache_errors = Counter("prp_cache_errors", "Failed calls to the shared judgment cache (absorbed:"
                                    " reads miss, writes queue; reconnect attempts count)", registry=r)
        self.cache_up = Gauge("prp_cache_up", "1 while every cache tier answers, 0 degraded", registry=r)
        self.batch_size = batch_size
        self.on_inference = self.judged.on_inference


class _Inferences:
    """``prp_prompts``, ``prp_inferences`` and ``prp_batch_fill`` (prompts per inference / batch
    size), as Prometheus' own Counter and Histogram would show them. The engine calls
    :meth:`on_inference` for every inference, a dozen times a request: it counts in a plain dict
    (on the engine's loop, as the scrape is), where Prometheus' locked values cost more than the
    rest of the service's work for a request."""

    BUCKETS = (0.125, 0.25, 0.5, 0.75, 0.9, 1.0)

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.fills: dict[int, int] = {}  # prompts in an inference -> inferences with that many
        self.created = time.time()

    def on_inference(self, inference: Any) -> None:
        n = len(inference.prompts)
        self.fills[n] = self.fills.get(n, 0) + 1

    def collect(self) -> list[Metric]:
        fills = list(self.fills.items())
        inferences = sum(count for _, count in fills)
        prompts = sum(n * count for n, count in fills)
        buckets = [(floatToGoString(le), sum(c for n, c in fills if n / self.batch_size <= le))
                   for le in self.BUCKETS]
        fill = HistogramMetricFamily("prp_batch_fill", "Prompts per inference / batch size",
                                     buckets=[*buckets, ("+Inf", inferences)],
                                     sum_value=sum(n / self.batch_size * c for n, c in fills))
        fill.samples.append(Sample("prp_batch_fill_created", {}, self.created))
        at = self.created
        return [CounterMetricFamily("prp_prompts", "Prompts sent to the judge", prompts, created=at),
                CounterMetricFamily("prp_inferences", "Inferences (judge calls)", inferences, created=at),
                fill]


def _draining() -> Reply:
    return _error(503, "the service is shutting down; retry on another replica", **{"Retry-After": "1"})


def _error(status: int, message: str, **headers: str) -> Reply:
    return Reply(status, {"message": message}, headers)


async def _write(send: Send, reply: Reply) -> None:
    """``reply`` as two ASGI messages (what a Starlette ``JSONResponse`` sends)."""
    body = dialects.encode(reply.content)
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_OPEN = frozenset(("/health", "/metrics"))  # no API key, not counted as rerank calls
_RERANK = frozenset(dialects.PATHS)


class _Service:
    """The rerank calls, as plain ASGI: the guard every call but health and metrics goes through
    (:meth:`guarded`) and the rerank endpoint itself (:meth:`_rerank`)."""

    def __init__(self, reranker: Reranker, state: dict[str, Any], metrics: Metrics, model_name: str,
                 api_keys: frozenset[str], limits: Limits) -> None:
        self.reranker, self.state, self.metrics = reranker, state, metrics
        self.model_name, self.api_keys, self.limits = model_name, api_keys, limits
        self._by_status: dict[int, Any] = {}  # prp_requests_total's child for each status met

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A rerank call as an ASGI app (the route's endpoint; :class:`_App` answers every
        rerank POST before routing, so FastAPI never gets to call it)."""
        await self.guarded(scope, receive, send, None)

    async def guarded(self, scope: Scope, receive: Receive, send: Send, inner: ASGIApp | None) -> None:
        """Announce the call to the engine, check it (draining, API key, size) and answer it: a
        rerank POST here (``inner`` None), anything else by ``inner`` (FastAPI's routing)."""
        engine: Engine | None = self.state["engine"]
        # on its way until submitted (rerank closes it then): an idle engine lingers for it
        arrival = None if engine is None else engine.arriving()
        started = time.perf_counter()
        status = 0
        try:
            refused, content_type = self._refused(scope["headers"])
            if refused is not None:
                status = refused.status
                await _write(send, refused)
            elif inner is None:
                reply = await self._rerank(scope, receive, arrival, content_type)
                if reply is None:  # the client went away: no one to answer
                    return
                status = reply.status
                await _write(send, reply)
            else:
                async def sending(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                await inner(scope, receive, sending)
        finally:
            if arrival is not None:
                arrival.close()
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = self.metrics.requests.labels(str(status))
        counter.inc()
        if status == 200:
            self.metrics.latency.observe(time.perf_counter() - started)

    def _refused(self, headers: list[tuple[bytes, bytes]]) -> tuple[Reply | None, str | None]:
        """503 while draining, 401 without a good API key, 413 for a declared size past the limit
        (None: admitted); and the request's content type (None: not given)."""
        auth = key = size = content_type = None
        for name, value in headers:
            if name == b"authorization" and auth is None:
                auth = value.decode("latin-1")
            elif name == b"x-api-key" and key is None:
                key = value.decode("latin-1")
            elif name == b"content-length" and size is None:
                size = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        if self.state["draining"]:
            return _draining(), content_type
        if self.api_keys:
            if auth is not None and auth.lower().startswith("bearer "):
                key = auth[7:].strip()
            if key not in self.api_keys:
                return _error(401, "missing or wrong API key (Authorization: Bearer KEY)"), content_type
        limit = self.limits.max_body_bytes
        if size is not None and size.isdigit() and int(size) > limit:
            return _error(413, f"request body of {size} bytes is over the limit of {limit}"), content_type
        return None, content_type

    async def _rerank(self, scope: Scope, receive: Receive, arrival: Any, content_type: str | None
                      ) -> Reply | None:
        """The answer to a rerank POST; None when the client went away."""
        reranker, limit = self.reranker, self.limits
        dialect = None
        try:
            body = await receive_body(receive, limit.max_body_bytes)
            data = quick_json(body)  # the usual body: read by orjson, checked without pydantic
            ask = None
            if data is not None:
                dialect = dialects.pick(scope["path"], data)
                ask = quick_admit(data, dialect.body, limit)
            if ask is None:  # anything else: the long way, its values and its messages
                data, clean = load_json(body, content_type)
                dialect = dialects.pick(scope["path"], data)
                ask = admit(data, dialect.body, limit, checked=clean)
        except BodyError as exc:
            return dialects.error(dialect, exc.status, exc.message)
        except ClientGone:
            return None
        if ask.sorter is not None:
            try:
                reranker.check_sorter(ask.sorter)
            except (ValueError, TypeError) as exc:
                return dialects.error(dialect, 422, f"sorter: {exc}")
        n = len(ask.texts)
        top_n = n if ask.top_n is None else min(ask.top_n, n)
        engine: Engine | None = self.state["engine"]
        if engine is None:  # the lifespan has not started it
            return _draining()
        if reranker.oracle.keys_by == "id":  # the judge (and the cache) read ids: given, else the index
            ids = ask.ids or tuple(str(i) for i in range(n))
            qid = ask.query_id or ask.query
        else:
            ids, qid = ask.ids, f"r-{uuid.uuid4().hex[:12]}"
        if arrival is not None:
            arrival.close()  # submitted now: no batchmate is waited for on its account
        request = RankRequest(ask.query, ask.texts, ids, qid)
        try:
            [result] = await engine.rank_many([request], budget=ask.budget, timeout=ask.timeout,
                                              sorter=ask.sorter, k=max(top_n, 1), orders=ask.orders)
        except EngineClosed:
            return _draining()
        except PromptFailed as exc:  # a prompt of this request the judge refuses: its own fault
            return dialects.error(dialect, 422, f"the judge cannot judge a prompt of this request: {exc}")
        except BackendError as exc:
            retry = getattr(exc, "retry_after", None)  # JudgeDown: the judge's pool is down
            if retry is not None:
                return dialects.error(dialect, 503, f"the judge is unavailable: {exc}",
                                      **{"Retry-After": str(retry)})
            return dialects.error(dialect, 502, f"the judge failed: {exc}")
        except (ValueError, TypeError) as exc:
            return dialects.error(dialect, 422, str(exc))
        cost, metrics = result.cost, self.metrics
        metrics.cache_hits.inc(cost.cache_hits)
        metrics.unparsed.inc(cost.unparsed)
        metrics.documents.inc(n)
        missing = unjudged(reranker.oracle, [result])  # a simulated judge with no qrels for it
        notes = [] if missing is None else [f"{missing} (send query_id and each document's id)"]
        return dialects.respond(dialect, ask, result, self.model_name, warnings=notes)


class _App(FastAPI):
    """FastAPI with the rerank calls taken first: a rerank POST goes to :meth:`_Service.guarded`
    at once (no FastAPI middleware, routing or request objects); health, metrics and the lifespan
    go to FastAPI as they are; anything else to FastAPI once guarded (a 404 or 405 in the
    service's JSON shape, or 401/503 before that)."""

    service: _Service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN:
            await super().__call__(scope, receive, send)
        elif scope["method"] == "POST" and scope["path"] in _RERANK:
            await self.service.guarded(scope, receive, send, None)
        else:
            await self.service.guarded(scope, receive, send, super().__call__)


def create_app(reranker: Reranker, *, model_name: str = "prp", linger_ms: float = 2.0,
               api_keys: frozenset[str] = frozenset(), limits: Limits | None = None) -> FastAPI:
    """The app; its lifespan opens the engine on uvicorn's loop and closes it (and the cache)."""
    limit: Limits = limits or Limits()
    Engine(reranker, linger_ms=linger_ms)  # bad options fail here, not when the server starts
    metrics = Metrics(reranker.settings.batch_size)
    add_cache_error_hook(reranker.cache, lambda op: metrics.cache_errors.inc())
    metrics.cache_up.set_function(lambda: float(cache_health(reranker.cache)[0] == "ok"))
    state: dict[str, Any] = {"engine": None, "draining": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        engine = Engine(reranker, linger_ms=linger_ms, on_inference=metrics.on_inference,
                        on_split=lambda prompts: metrics.batch_splits.inc())
        engine.start()
        state["engine"] = engine
        metrics.queue_depth.set_function(lambda: engine.queue_depth)
        metrics.in_flight.set_function(lambda: engine.in_flight)
        try:
            yield
        finally:
            state["draining"] = True
            await engine.aclose(drain=True)
            reranker.close()

    app = _App(title="prp rerank", lifespan=lifespan)
    app.state.prp = state
    app.service = service = _Service(reranker, state, metrics, model_name, api_keys, limit)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Routing's own errors (404, 405) in the service's shape: ``{"message": ...}``."""
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse({"message": message}, status_code=exc.status_code, headers=exc.headers)

    def drain() -> None:
        """Stop admitting: new rerank calls get 503 (called on SIGTERM, before uvicorn drains)."""
        state["draining"] = True

    app.state.drain = drain

    @app.get("/health")
    async def health() -> JSONResponse:
        engine = state["engine"]
        if state["draining"] or engine is None or not engine.accepting:
            return JSONResponse({"status": "draining"}, status_code=503)
        cache_state, reason = cache_health(reranker.cache)
        status = {"status": "ok"} if cache_state == "ok" else {"status": cache_state, "reason": reason}
        return JSONResponse({**status, "model": model_name, "in_flight": engine.in_flight,
                             "queue_depth": engine.queue_depth})

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for path in dialects.PATHS:  # routed too: another method gets a 405 naming POST
        app.router.routes.append(Route(path, endpoint=service, methods=["POST"]))
    return app
