"""A rerank request's body, read and checked at admission: everything that can be known to be
wrong with a request is found here, before it joins a batch shared with other requests, so a bad
body fails alone with a 4xx naming the field and index (``documents[3].text``), never a 5xx.

Rules kept here (every dialect):

* **Bytes.** At most ``max_body_bytes`` (413), counted as the body streams in (a missing or false
  ``Content-Length`` does not get past it). The body is UTF-8 JSON (RFC 8259), whatever its
  ``Content-Type`` says (``curl -d`` sends ``application/x-www-form-urlencoded``); anything else
  is a 422 that names the content type it came with.
* **Strict JSON.** ``NaN``, ``Infinity`` and ``-Infinity`` are refused anywhere in the body, and so
  is a number too large for a float (``1e999``) or an integer of more than 4,300 digits, or nesting
  deeper than the parser can follow.
* **Text that encodes.** Every string in the body, keys included, must encode as UTF-8: a lone
  surrogate (``"\\ud800"``) is refused naming where it is (``documents[3].text``), so it can never
  reach a judge (an HTTP judge cannot send it; the batch it shared would fail with it).
* **Types, strictly.** No coercion: ``"5"`` is not 5, ``true`` is not 1, ``5.0`` is not an integer
  (a number of seconds may be an integer). Fields no dialect knows are ignored.
* **Sizes.** More documents, query characters or characters in one document than the limits: 413
  naming the field (``documents[3]``).
* **Documents and ids.** Documents are strings or ``{"text": ...}`` objects. An object may carry an
  ``id`` (a string or an integer); either every document has one or none does, and ids are unique
  (else 422 naming both indexes). Without ids a document is known by its index (``"0"``, ``"1"``,
  ...), never by its text, so the same text twice is two candidates, ranked like any others.
* **Extras** (every dialect; not in the rerank APIs): ``top_n`` >= 1, ``sorter`` (a spec, checked
  by the engine before the request is queued), ``budget`` per query (a number >= 0 of prompts, or
  a string with a unit: ``"40000tokens"``, ``"10inferences"``, ``"2s"``; :mod:`cost.budget`), ``orders``
  (one of :data:`prp.aggregate.ORDERS`), ``timeout`` (seconds, > 0 and at most a day),
  ``query_id`` (a string or an integer).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from cost.budget import Budget, parse_budget

try:
    import orjson
except ImportError:  # pragma: no cover - a serve install has it (pyproject's serve extra)
    orjson = None  # type: ignore[assignment]

MAX_TIMEOUT = 86_400.0  # seconds: a request may wait at most a day
MAX_BUDGET = 10**12  # prompts per query


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


class BodyError(Exception):
    """A client's body is wrong: ``status`` (413 or 422) and a message naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# --- bytes and JSON -------------------------------------------------------------------------

class ClientGone(Exception):
    """The client disconnected before its whole body came in: there is no one to answer."""


async def receive_body(receive: Callable[[], Awaitable[dict[str, Any]]], max_bytes: int) -> bytes:
    """The body's bytes from an ASGI ``receive``, refused (413) as soon as they pass ``max_bytes``;
    :class:`ClientGone` on a disconnect."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):  # the usual case
        body = message.get("body", b"")
        if len(body) > max_bytes:
            raise BodyError(413, f"request body is over the limit of {max_bytes} bytes")
        return body
    chunks = bytearray()
    while True:
        if message["type"] != "http.request":  # http.disconnect
            raise ClientGone
        chunks += message.get("body", b"")
        if len(chunks) > max_bytes:
            raise BodyError(413, f"request body is over the limit of {max_bytes} bytes")
        if not message.get("more_body", False):
            return bytes(chunks)
        message = await receive()


class _Refused:
    """A JSON number strict JSON does not allow, kept where it was found so the error can name
    its field (:func:`check_values`)."""

    def __init__(self, why: str) -> None:
        self.why = why


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a JSON number (strict JSON has no NaN or Infinity)")


def _float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused(f"the number {text[:40]} is too large for a float")


def _int(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > 4000:
        return _Refused(f"an integer of {len(text.lstrip('-'))} digits is too large")
    return int(text)


def parse_json(body: bytes, content_type: str | None) -> Any:
    """The body's JSON value; 422 for anything but strict UTF-8 JSON."""
    sent_as = "" if not content_type or "json" in content_type.lower() else f" (sent as {content_type[:80]})"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(422, f"the body is not UTF-8 text{sent_as}: byte {exc.start} "
                             f"(0x{body[exc.start]:02x}) cannot be decoded") from None
    if not text.strip():
        raise BodyError(422, f"the body is empty{sent_as}: send a JSON object")
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except ValueError as exc:  # JSONDecodeError
        raise BodyError(422, f"the body is not JSON{sent_as}: {exc}") from None
    except RecursionError:
        raise BodyError(422, "the body is not JSON this service reads: nested too deep") from None


_BIG = float(2**63)  # orjson reads an integer past 64 bits as a float; the standard library as an int
_DEPTH = 32  # deeper bodies take the standard library's path (its nesting limit, its messages)


def load_json(body: bytes, content_type: str | None) -> tuple[Any, bool]:
    """The body's JSON value and whether it is known clean: :func:`parse_json`'s value, and True
    when nothing in it can fail :func:`check_values` (so that walk can be skipped).

    The fast path is orjson, which refuses everything strict JSON does (NaN and Infinity, numbers
    too large for a float, lone surrogates, bytes that are not UTF-8, a BOM). A value it reads is
    taken only when the standard library reads the very same one: no float of 2**63 or more (an
    integer that large, which the standard library keeps as an int) and no nesting deeper than
    ``_DEPTH``. Anything else, including every error, takes :func:`parse_json`, so messages and
    values never depend on which parser ran."""
    if orjson is not None:
        try:
            data = orjson.loads(body)
        except (ValueError, RecursionError):  # JSONDecodeError: parse_json says why, in its words
            pass
        else:
            if _plain(data, 0):
                return data, True
    return parse_json(body, content_type), False


def _plain(value: Any, depth: int) -> bool:
    """No float of 2**63 or more anywhere in ``value`` and no nesting past ``_DEPTH``."""
    if depth > _DEPTH:
        return False
    kind = type(value)
    if kind is dict:
        value = value.values()
    elif kind is float:
        return -_BIG < value < _BIG
    elif kind is not list:
        return True
    for item in value:
        kind = type(item)
        if kind is dict or kind is list:
            if not _plain(item, depth + 1):
                return False
        elif kind is float and not -_BIG < item < _BIG:
            return False
    return True


def _where(path: tuple[Any, ...]) -> str:
    """``("documents", 3, "text")`` -> ``documents[3].text``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the body"


def check_values(value: Any) -> None:
    """Every string in ``value`` (keys too) encodes as UTF-8 and every number is strict JSON's;
    else 422 naming where (the first in document order)."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:  # depth first, in document order (children pushed last-first)
        path, item = stack.pop()
        if isinstance(item, _Refused):
            raise BodyError(422, f"{_where(path)}: {item.why}")
        if isinstance(item, str):
            _encodes(item, path, "")
        elif isinstance(item, dict):
            for key in item:
                _encodes(key, path, " (a key)")
            stack.extend(((*path, key), sub) for key, sub in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, i), item[i]) for i in reversed(range(len(item))))


def _encodes(text: str, path: tuple[Any, ...], what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise BodyError(422, f"{_where(path)}{what}: not valid Unicode text: a lone surrogate "
                             f"\\u{ord(bad):04x} at character {exc.start} (UTF-8 cannot encode it)") from None


# --- types ------------------------------------------------------------------------------------

def _int_to_str(value: Any) -> Any:
    """An id may be a string or an integer (not a boolean); it is kept as a string."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Id = Annotated[str, BeforeValidator(_int_to_str)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


class Document(_Strict):
    text: str
    id: Id | None = None  # what a simulated judge looks up in its qrels (default: the index)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class Extras(_Strict):
    """prp's own fields, in every dialect."""

    top_n: int | None = Field(default=None, ge=1)
    sorter: str | None = None
    budget: int | str | None = None  # prompts per query, or with a unit: "40000tokens"
    orders: Literal["both", "one", "random"] | None = None
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT)
    query_id: Id | None = None  # for a simulated judge: the qid in its qrels (default: the query)


class CohereBody(Extras):
    """Cohere v1 and v2, Jina and vLLM: ``documents`` as strings or ``{"text"}`` objects."""

    model: str | None = None
    query: str
    documents: list[Document]
    return_documents: bool = False
    rank_fields: list[Literal["text"]] | None = None  # Cohere: which fields rank; only "text" here
    max_chunks_per_doc: int | None = Field(default=None, ge=1)  # Cohere v1: accepted, not used
    max_tokens_per_doc: int | None = Field(default=None, ge=1)  # Cohere v2: accepted, not used


class TEIBody(Extras):
    """text-embeddings-inference's ``/rerank``: ``texts`` are strings."""

    query: str
    texts: list[str]
    return_text: bool = False
    raw_scores: bool = False  # accepted: prp's scores are rank-based either way
    truncate: bool | None = None  # accepted: the judge truncates passages to its own budget
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = None


@dataclass(frozen=True)
class Ask:
    """One admitted request, dialect aside: what to rank and how."""

    query: str
    texts: tuple[str, ...]
    ids: tuple[str, ...] | None  # the documents' own ids (None: none given)
    query_id: str | None
    top_n: int | None
    return_documents: bool
    model: str | None
    sorter: str | None
    budget: Budget | None
    orders: str | None
    timeout: float | None


def _describe(error: dict[str, Any]) -> str:
    where = _where(tuple(error["loc"]))
    kind, value = error["type"], error.get("input")
    got = f" (got {_json_type(value)})" if kind.endswith("_type") else ""
    if kind == "missing":
        return f"{where}: required"
    if kind == "model_type" and error["loc"] and error["loc"][0] in ("documents",):
        return f"{where}: must be a string or an object with a \"text\" string (got {_json_type(value)})"
    if kind == "model_type":
        return f"{where}: must be a JSON object (got {_json_type(value)})"
    return f"{where}: {error['msg'][0].lower()}{error['msg'][1:]}{got}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def admit(data: Any, model: type[CohereBody] | type[TEIBody], limits: Limits, checked: bool = False) -> Ask:
    """Check ``data`` (parsed JSON) against a dialect's body and the limits; 413/422 naming the field.
    ``checked``: :func:`load_json` found it clean, so :func:`check_values` has nothing to find."""
    if not checked:
        check_values(data)
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        shown = "; ".join(_describe(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise BodyError(422, shown + more) from None
    if isinstance(body, TEIBody):
        texts, ids, return_documents, docs_field = tuple(body.texts), None, body.return_text, "texts"
        name = None
    else:
        texts = tuple(d.text for d in body.documents)
        ids = _ids(body.documents)
        return_documents, docs_field, name = body.return_documents, "documents", body.model
    if len(texts) > limits.max_documents:
        raise BodyError(413, f"{docs_field}: {len(texts)} documents, over the limit of "
                             f"{limits.max_documents}")
    if len(body.query) > limits.max_query_chars:
        raise BodyError(413, f"query: {len(body.query)} characters, over the limit of "
                             f"{limits.max_query_chars}")
    for i, text in enumerate(texts):
        if len(text) > limits.max_document_chars:
            raise BodyError(413, f"{docs_field}[{i}]: {len(text)} characters, over the limit of "
                                 f"{limits.max_document_chars}")
    return Ask(body.query, texts, ids, body.query_id, body.top_n, return_documents, name, body.sorter,
               _budget(body.budget), body.orders, body.timeout)


def _budget(value: int | str | None) -> Budget | None:
    """The body's ``budget`` (a number of prompts, or a string with a unit), or a 422 naming it."""
    try:
        budget = parse_budget(value)
    except ValueError as exc:
        raise BodyError(422, f"budget: {exc}") from None
    if budget is not None and budget.unit == "prompts" and budget.amount > MAX_BUDGET:
        raise BodyError(422, f"budget: at most {MAX_BUDGET} prompts, got {value!r}")
    return budget


def _ids(documents: list[Document]) -> tuple[str, ...] | None:
    given = [i for i, d in enumerate(documents) if d.id is not None]
    if not given:
        return None
    if len(given) < len(documents):
        missing = next(i for i, d in enumerate(documents) if d.id is None)
        raise BodyError(422, f"documents[{missing}].id: required, since documents[{given[0]}] has one "
                             "(give every document an id, or none)")
    first: dict[str, int] = {}
    for i, d in enumerate(documents):
        assert d.id is not None
        if d.id in first:
            raise BodyError(422, f"documents[{i}].id: {d.id!r} is also documents[{first[d.id]}]'s id "
                                 "(ids must be unique)")
        first[d.id] = i
    return tuple(d.id for d in documents)  # type: ignore[misc]
