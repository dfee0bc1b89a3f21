"""The rerank service's HTTP app (FastAPI): one :class:`~prp.engine.Engine` behind it, so
concurrent requests share LLM batches.

Endpoints:

* ``POST /v1/rerank`` (aliases ``/rerank``, ``/v2/rerank``): the Cohere/Jina/vLLM shape. In:
  ``query``, ``documents`` (strings or ``{"text": ...}``), ``top_n``, ``return_documents``,
  ``model`` (echoed; the served judge is fixed), and extra fields ``sorter``, ``budget``
  (prompts per query), ``orders``, ``timeout`` (seconds). A simulated judge reads ids, not
  texts: it looks up ``query_id`` (default: the query text) and each document's ``id``
  (default: its text) in its qrels. Out: ``results`` (the ``top_n``
  best, each with ``index`` into ``documents`` and ``relevance_score``: ``(n - rank + 1) / n``,
  so 1.0 for the best and decreasing with rank; a pairwise judge orders, it does not score),
  ``usage`` (prompts, inferences - this request's share of shared batches -, cache_hits,
  tokens, cut, unparsed: prompts whose answer stayed unreadable after a retry, counted as ties)
  and Cohere's ``meta``; and ``warnings`` (a list of strings, also as ``meta.warnings``, where
  the Cohere SDK reads them) when there is something to say:
  a simulated judge with no judgments for the query (its qid or none of its document ids in the
  qrels, :func:`prp.oracles.simulated.no_judgments`), e.g. every request of a client that sends
  no ids.
* ``GET /health``: 200 ``{"status": "ok"}`` while admitting, 503 ``draining`` once shutting down.
* ``GET /metrics``: Prometheus text (a registry per app).

Rules: bad input is a 4xx naming the field (422 malformed JSON or types, 413 too large: more
documents, characters or body bytes than the limits); with API keys set, every rerank call needs
``Authorization: Bearer KEY`` (or ``X-API-Key``), else 401 (health and metrics stay open); a
request that arrives while the service drains gets 503 with ``Retry-After``; a judge failure is
a 502. Shutdown (uvicorn's lifespan end, after it drained the open requests) closes the engine
(finishing anything still in flight) and the cache, so nothing judged is lost.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
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
from pydantic import BaseModel, Field

from prp.engine import Engine, EngineClosed
from prp.oracles.base import BackendError
from prp.oracles.simulated import unjudged
from prp.reranker import Reranker
from prp.types import RankRequest


@dataclass(frozen=True)
class Limits:
    """Request size limits (413 past them)."""

    max_documents: int = 1000
    max_document_chars: int = 20_000
    max_query_chars: int = 4_000
    max_body_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_documents", "max_document_chars", "max_query_chars", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class Document(BaseModel):
    text: str
    id: str | None = None  # for a simulated judge (which reads ids): the doc id in its qrels


class RerankBody(BaseModel):
    model: str | None = None
    query: str
    documents: list[str | Document]
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    # extra fields, not in the other rerank APIs
    sorter: str | None = None
    budget: int | None = Field(default=None, ge=0)
    orders: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    query_id: str | None = None  # for a simulated judge: the qid in its qrels


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self, batch_size: int) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("prp_requests", "Rerank requests answered, by HTTP status", ["status"],
                                registry=r)
        self.prompts = Counter("prp_prompts", "Prompts sent to the judge", registry=r)
        self.inferences = Counter("prp_inferences", "Inferences (judge calls)", registry=r)
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
               api_keys: frozenset[str] = frozenset(), limits: Limits = Limits()) -> FastAPI:
    """The app; its lifespan opens the engine on uvicorn's loop and closes it (and the cache)."""
    Engine(reranker, linger_ms=linger_ms)  # bad options fail here, not when the server starts
    metrics = Metrics(reranker.settings.batch_size)
    state: dict[str, Any] = {"engine": None, "draining": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        engine = Engine(reranker, linger_ms=linger_ms, on_inference=metrics.on_inference)
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

    def drain() -> None:
        """Stop admitting: new rerank calls get 503 (called on SIGTERM, before uvicorn drains)."""
        state["draining"] = True

    app.state.drain = drain

    @app.middleware("http")
    async def guard(request: Request, call_next):  # noqa: ANN001, ANN202
        if request.url.path in ("/health", "/metrics"):
            return await call_next(request)
        started = time.perf_counter()
        response = await _guarded(request, call_next)
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
        if size is not None and size.isdigit() and int(size) > limits.max_body_bytes:
            return _error(413, f"request body of {size} bytes is over the limit of {limits.max_body_bytes}")
        return await call_next(request)

    @app.get("/health")
    async def health() -> JSONResponse:
        engine = state["engine"]
        if state["draining"] or engine is None or not engine.accepting:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ok", "model": model_name, "in_flight": engine.in_flight,
                             "queue_depth": engine.queue_depth})

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def rerank(body: RerankBody) -> JSONResponse:
        texts = [d if isinstance(d, str) else d.text for d in body.documents]
        if len(texts) > limits.max_documents:
            return _error(413, f"documents: {len(texts)} documents, over the limit of {limits.max_documents}")
        if len(body.query) > limits.max_query_chars:
            return _error(413, f"query: {len(body.query)} characters, over the limit of "
                               f"{limits.max_query_chars}")
        for i, text in enumerate(texts):
            if len(text) > limits.max_document_chars:
                return _error(413, f"documents[{i}]: {len(text)} characters, over the limit of "
                                   f"{limits.max_document_chars}")
        n = len(texts)
        top_n = n if body.top_n is None else min(body.top_n, n)
        engine: Engine = state["engine"]
        by_id = reranker.oracle.keys_by == "id"
        if by_id:  # the judge (and the cache) read ids: the query's and documents' own, else their text
            ids = [d if isinstance(d, str) else d.id or d.text for d in body.documents]
            qid = body.query_id or body.query
        else:
            ids, qid = None, f"r-{uuid.uuid4().hex[:12]}"
        request = RankRequest(body.query, texts, ids, qid)
        try:
            [result] = await engine.rank_many([request], budget=body.budget, timeout=body.timeout,
                                              sorter=body.sorter, k=max(top_n, 1), orders=body.orders)
        except EngineClosed:
            return _draining()
        except BackendError as exc:
            return _error(502, f"the judge failed: {exc}")
        except (ValueError, TypeError) as exc:
            return _error(422, str(exc))
        cost = result.cost
        metrics.cache_hits.inc(cost.cache_hits)
        metrics.unparsed.inc(cost.unparsed)
        metrics.documents.inc(n)
        results = []
        for doc in result.docs[:top_n]:
            item: dict[str, Any] = {"index": doc.original_rank - 1, "relevance_score": (n - doc.rank + 1) / n}
            if body.return_documents:
                item["document"] = {"text": doc.text}
            results.append(item)
        usage = {"prompts": cost.prompts, "inferences": round(cost.inferences, 6),
                 "cache_hits": cost.cache_hits, "comparisons": cost.unique_comparisons,
                 "prompt_tokens": round(cost.prompt_tokens),
                 "completion_tokens": round(cost.completion_tokens),
                 "total_tokens": round(cost.prompt_tokens + cost.completion_tokens), "cut": result.cut,
                 "unparsed": cost.unparsed}
        payload: dict[str, Any] = {
            "id": uuid.uuid4().hex, "model": body.model or model_name, "results": results, "usage": usage,
            "meta": {"api_version": {"version": "2"},
                     "billed_units": {"search_units": 1},
                     "tokens": {"input_tokens": usage["prompt_tokens"],
                                "output_tokens": usage["completion_tokens"]}},
        }
        missing = unjudged(reranker.oracle, [result])  # a simulated judge with no qrels for it
        if missing is not None:
            payload["warnings"] = payload["meta"]["warnings"] = [  # meta.warnings: Cohere's place
                f"{missing} (send query_id and each document's id)"]
        return JSONResponse(payload)

    for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
        app.post(path)(rerank)
    return app

