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
"""

from __future__ import annotations

import contextlib
import time
import uuid
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
from starlette.exceptions import HTTPException as StarletteHTTPException

from prp.cache import add_cache_error_hook, cache_health
from prp.engine import Engine, EngineClosed
from prp.oracles.base import BackendError, PromptFailed
from prp.oracles.simulated import unjudged
from prp.reranker import Reranker
from prp.serve import dialects
from prp.serve.bodies import BodyError, Limits, admit, parse_json, read_body
from prp.types import RankRequest

__all__ = ["Limits", "Metrics", "create_app"]


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self, batch_size: int) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("prp_requests", "Rerank requests answered, by HTTP status", ["status"],
                                registry=r)
        self.prompts = Counter("prp_prompts", "Prompts sent to the judge", registry=r)
        self.inferences = Counter("prp_inferences", "Inferences (judge calls)", registry=r)
        self.batch_splits = Counter("prp_batch_splits", "Failed batches split in halves to find the prompt "
                                    "at fault (prp.scheduler)", registry=r)
        self.cache_hits = Counter("prp_cache_hits", "Comparisons answered by the cache", registry=r)
        self.unparsed = Counter("prp_unparsed", "Prompts whose answer stayed unreadable after a retry "
                                "(counted as ties)", registry=r)
        self.documents = Counter("prp_documents", "Documents reranked", registry=r)
        self.batch_fill = Histogram("prp_batch_fill", "Prompts per inference / batch size", registry=r,
                                    buckets=(0.125, 0.25, 0.5, 0.75, 0.9, 1.0))
        self.latency = Histogram("prp_request_seconds", "Rerank request latency", registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))
        self.queue_depth = Gauge("prp_queue_depth", "Queries waiting to be admitted", registry=r)
        self.in_flight = Gauge("prp_in_flight", "Queries being ranked", registry=r)
        self.cache_errors = Counter("prp_cache_errors", "Failed calls to the shared judgment cache (absorbed:"
                                    " reads miss, writes queue; reconnect attempts count)", registry=r)
        self.cache_up = Gauge("prp_cache_up", "1 while every cache tier answers, 0 degraded", registry=r)
        self.batch_size = batch_size

    def on_inference(self, inference: Any) -> None:
        self.inferences.inc()
        self.prompts.inc(len(inference.prompts))
        self.batch_fill.observe(len(inference.prompts) / self.batch_size)


def _draining() -> JSONResponse:
    return _error(503, "the service is shutting down; retry on another replica", **{"Retry-After": "1"})


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers or None)


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

    app = FastAPI(title="prp rerank", lifespan=lifespan)
    app.state.prp = state

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Routing's own errors (404, 405) in the service's shape: ``{"message": ...}``."""
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return _error(exc.status_code, message, **(exc.headers or {}))

    def drain() -> None:
        """Stop admitting: new rerank calls get 503 (called on SIGTERM, before uvicorn drains)."""
        state["draining"] = True

    app.state.drain = drain

    @app.middleware("http")
    async def guard(request: Request, call_next):  # noqa: ANN001, ANN202
        if request.url.path in ("/health", "/metrics"):
            return await call_next(request)
        engine = state["engine"]
        # on its way until submitted (the handler closes it then): an idle engine lingers for it
        request.state.arrival = arrival = None if engine is None else engine.arriving()
        started = time.perf_counter()
        try:
            response = await _guarded(request, call_next)
        finally:
            if arrival is not None:
                arrival.close()
        metrics.requests.labels(str(response.status_code)).inc()
        if response.status_code == 200:
            metrics.latency.observe(time.perf_counter() - started)
        return response

    async def _guarded(request: Request, call_next):  # noqa: ANN001, ANN202
        if state["draining"]:
            return _draining()
        if api_keys:
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")
            if key not in api_keys:
                return _error(401, "missing or wrong API key (Authorization: Bearer KEY)")
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limit.max_body_bytes:
            return _error(413, f"request body of {size} bytes is over the limit of {limit.max_body_bytes}")
        return await call_next(request)

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

    async def rerank(request: Request) -> JSONResponse:
        dialect = None
        try:
            data = parse_json(await read_body(request.stream(), limit.max_body_bytes),
                              request.headers.get("content-type"))
            dialect = dialects.pick(request.url.path, data)
            ask = admit(data, dialect.body, limit)
        except BodyError as exc:
            return dialects.error(dialect, exc.status, exc.message)
        if ask.sorter is not None:
            try:
                reranker.check_sorter(ask.sorter)
            except (ValueError, TypeError) as exc:
                return dialects.error(dialect, 422, f"sorter: {exc}")
        n = len(ask.texts)
        top_n = n if ask.top_n is None else min(ask.top_n, n)
        engine: Engine = state["engine"]
        if reranker.oracle.keys_by == "id":  # the judge (and the cache) read ids: given, else the index
            ids = ask.ids or tuple(str(i) for i in range(n))
            qid = ask.query_id or ask.query
        else:
            ids, qid = ask.ids, f"r-{uuid.uuid4().hex[:12]}"
        arrival = getattr(request.state, "arrival", None)
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
        cost = result.cost
        metrics.cache_hits.inc(cost.cache_hits)
        metrics.unparsed.inc(cost.unparsed)
        metrics.documents.inc(n)
        missing = unjudged(reranker.oracle, [result])  # a simulated judge with no qrels for it
        notes = [] if missing is None else [f"{missing} (send query_id and each document's id)"]
        return dialects.respond(dialect, ask, result, model_name, warnings=notes)

    for path in dialects.PATHS:
        app.post(path)(rerank)
    return app

