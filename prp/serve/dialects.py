"""The rerank dialects the service speaks: which body a request carries and the shape of its answer.

* **Cohere v1 / Jina / vLLM** (``POST /v1/rerank``, ``POST /rerank``): in ``query``, ``documents``
  (strings or ``{"text"}`` objects), ``top_n``, ``return_documents`` (default false), ``model``.
  Out ``{"id", "model", "results": [{"index", "relevance_score", "document"?}], "usage", "meta"}``
  with ``meta.api_version.version`` ``"1"``. ``usage`` holds Jina's and vLLM's ``total_tokens``
  and ``prompt_tokens`` and prp's counts (prompts, inferences, cache_hits, comparisons,
  completion_tokens, cut, unparsed).
* **Cohere v2** (``POST /v2/rerank``): the same body (``max_tokens_per_doc`` accepted); out the same
  fields with ``meta.api_version.version`` ``"2"``. ``meta.billed_units`` holds ``search_units``
  (one a query of up to 100 documents, as Cohere bills) and the judge's ``input_tokens`` and
  ``output_tokens``; ``meta.tokens`` the same tokens.
* **TEI** (text-embeddings-inference): a body with ``texts`` and no ``documents``, on
  ``/rerank`` or ``/v1/rerank``: ``query``, ``texts`` (strings), ``return_text``, ``raw_scores``,
  ``truncate``, ``truncation_direction``. Out TEI's bare array ``[{"index", "score", "text"?}]``,
  best first, every text unless the body carries prp's ``top_n``; prp's usage goes in the
  ``X-PRP-Usage`` header (compact JSON; every dialect sends it). Errors carry TEI's ``error`` and
  ``error_type`` besides ``message``.

In every dialect ``document`` (``text`` for TEI) is left out of a result unless asked for, and a
result's score is ``(n - rank + 1) / n``: 1.0 for the best, decreasing with rank (a pairwise judge
orders; it does not score). Errors are ``{"message": ...}`` (Cohere's shape).

Answers are :class:`Reply` values (status, JSON content, headers), written by :func:`encode` as
compact UTF-8 JSON (orjson when installed, else the standard library: the same values, a float
perhaps spelled differently, ``1e-06`` or ``1e-6``).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from prp.result import RankedResult
from prp.serve.bodies import Ask, CohereBody, TEIBody

try:
    import orjson
except ImportError:  # pragma: no cover - a serve install has it (pyproject's serve extra)
    orjson = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Dialect:
    name: str  # "cohere-v1" (also Jina and vLLM), "cohere-v2" or "tei"
    body: type[CohereBody] | type[TEIBody]


COHERE_V1 = Dialect("cohere-v1", CohereBody)
COHERE_V2 = Dialect("cohere-v2", CohereBody)
TEI = Dialect("tei", TEIBody)
PATHS = ("/v1/rerank", "/rerank", "/v2/rerank")


def pick(path: str, data: Any) -> Dialect:
    """The dialect of a request to ``path`` whose parsed body is ``data``."""
    if path == "/v2/rerank":
        return COHERE_V2
    if isinstance(data, dict) and "texts" in data and "documents" not in data:
        return TEI
    return COHERE_V1


class Reply(NamedTuple):
    """An answer: its HTTP status, its JSON content and its headers besides the content's."""

    status: int
    content: Any
    headers: dict[str, str]


def encode(content: Any) -> bytes:
    """``content`` as compact UTF-8 JSON (as Starlette's JSONResponse writes it)."""
    if orjson is not None:
        try:
            return orjson.dumps(content)
        except TypeError:  # e.g. an integer past 64 bits: the standard library writes it
            pass
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & (2**128 - 1)  # all but the version and variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant
_IDS = random.Random()  # its own generator, seeded by the OS: a caller's random.seed() cannot repeat ids
os.register_at_fork(after_in_child=_IDS.seed)  # nor can two forked workers


def answer_id() -> str:
    """A random UUID (version 4), as ``str(uuid.uuid4())`` writes it, from a Mersenne Twister
    seeded by the OS rather than from the OS: an answer's id, not a secret, in a quarter of the time."""
    h = "%032x" % (_IDS.getrandbits(128) & _UUID4_KEEP | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def error(dialect: Dialect | None, status: int, message: str, **headers: str) -> Reply:
    """An error in ``dialect``'s shape (None: not known yet, Cohere's)."""
    body: dict[str, Any] = {"message": message}
    if dialect is TEI:
        body |= {"error": message, "error_type": "Validation" if status in (413, 422) else "Backend"}
    return Reply(status, body, headers)


def usage(result: RankedResult) -> dict[str, Any]:
    cost = result.cost
    prompt_tokens, completion_tokens = round(cost.input_tokens), round(cost.output_tokens)
    return {"prompts": cost.prompts, "inferences": round(cost.inferences, 6), "cache_hits": cost.cache_hits,
            "comparisons": cost.unique_comparisons, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens,
            "cut": result.cut, "unparsed": cost.unparsed}


def respond(dialect: Dialect, ask: Ask, result: RankedResult, model_name: str,
            warnings: Sequence[str] = ()) -> Reply:
    """The answer to ``ask`` in ``dialect``'s shape; ``warnings`` (if any) as ``warnings`` and
    ``meta.warnings`` (where the Cohere SDK reads them), for TEI's bare array as the
    ``X-PRP-Warnings`` header (a JSON list)."""
    n = len(ask.texts)
    top = result.docs[: n if ask.top_n is None else min(ask.top_n, n)]
    spent = usage(result)
    headers = {"X-PRP-Usage": encode(spent).decode()}  # numbers and a boolean: ASCII
    if warnings:
        headers["X-PRP-Warnings"] = json.dumps(list(warnings), ensure_ascii=True)
    if dialect is TEI:
        items = []
        for doc in top:
            item: dict[str, Any] = {"index": doc.original_rank - 1, "score": (n - doc.rank + 1) / n}
            if ask.return_documents:
                item["text"] = doc.text
            items.append(item)
        return Reply(200, items, headers)
    results = []
    for doc in top:
        item = {"index": doc.original_rank - 1, "relevance_score": (n - doc.rank + 1) / n}
        if ask.return_documents:
            item["document"] = {"text": doc.text}
        results.append(item)
    tokens = {"input_tokens": spent["prompt_tokens"], "output_tokens": spent["completion_tokens"]}
    meta: dict[str, Any] = {"api_version": {"version": "2" if dialect is COHERE_V2 else "1"},
            "billed_units": {"search_units": max(1, math.ceil(n / 100)), **tokens}, "tokens": tokens}
    payload: dict[str, Any] = {"id": answer_id(), "model": ask.model or model_name, "results": results,
                               "usage": spent, "meta": meta}
    if warnings:
        payload["warnings"] = meta["warnings"] = list(warnings)
    return Reply(200, payload, headers)
