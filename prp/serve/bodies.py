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

Two ways to the same outcome: :func:`quick_admit` takes the usual body as orjson read it
(:func:`quick_json`) without pydantic, when every part of it is plainly right, and passes any
other body on; :func:`load_json` and :func:`admit` (pydantic's models) take everything, with the
messages above. What the quick way admits or refuses, the long way admits or refuses alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from operator import itemgetter
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
    data = quick_json(body)  # None: orjson could not read it (parse_json says why, in its words)
    if data is not None and _plain(data, 0):  # (a body of ``null`` takes parse_json: the same None)
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
        return _admitted(limits, body.query, tuple(body.texts), None, body.return_text, None, body.query_id,
                         body.top_n, body.sorter, body.budget, body.orders, body.timeout)
    documents = body.documents
    return _admitted(limits, body.query, tuple(d.text for d in documents), [d.id for d in documents],
                     body.return_documents, body.model, body.query_id, body.top_n, body.sorter, body.budget,
                     body.orders, body.timeout)


def _admitted(limits: Limits, query: str, texts: tuple[str, ...], given: list[str | None] | None,
              return_documents: bool, name: str | None, query_id: str | None, top_n: int | None,
              sorter: str | None, budget: int | str | None, orders: str | None, timeout: float | None) -> Ask:
    """A body's values, valid as a dialect's body, checked for what no model says (the ids: all or
    none, unique; the limits; the budget's value) in this order: the :class:`Ask`. ``given``: each
    document's id or None (None: the dialect has no ids)."""
    ids = None if given is None else _ids(given)
    docs_field = "texts" if given is None else "documents"
    if len(texts) > limits.max_documents:
        raise BodyError(413, f"{docs_field}: {len(texts)} documents, over the limit of "
                             f"{limits.max_documents}")
    if len(query) > limits.max_query_chars:
        raise BodyError(413, f"query: {len(query)} characters, over the limit of "
                             f"{limits.max_query_chars}")
    most = limits.max_document_chars
    if texts and max(map(len, texts)) > most:
        i = next(i for i, text in enumerate(texts) if len(text) > most)
        raise BodyError(413, f"{docs_field}[{i}]: {len(texts[i])} characters, over the limit of {most}")
    return Ask(query, texts, ids, query_id, top_n, return_documents, name, sorter,
               None if budget is None else _budget(budget), orders, timeout)


# --- the usual body, read without pydantic ----------------------------------------------------

_I64 = 2**63  # integers the quick path takes: what orjson and the standard library read alike


def _quick_count(value: Any) -> bool:  # int | None, >= 1 (strict: not a boolean, not 1.0)
    return value is None or (type(value) is int and 0 < value < _I64)


def _quick_text(value: Any) -> bool:  # str | None
    return value is None or type(value) is str


def _quick_id(value: Any) -> bool:  # an Id or None: a string or an integer (kept as its string)
    return value is None or type(value) is str or (type(value) is int and -_I64 <= value < _I64)


def _quick_flag(value: Any) -> bool:  # bool (no default None)
    return type(value) is bool


def _quick_timeout(value: Any) -> bool:  # float | None in (0, MAX_TIMEOUT]; an integer is a float
    return value is None or ((type(value) is float or type(value) is int) and 0 < value <= MAX_TIMEOUT)


def _quick_choice(*choices: str) -> Callable[[Any], bool]:
    return lambda value: value is None or (type(value) is str and value in choices)


_QUICK_EXTRAS: dict[str, Callable[[Any], bool]] = {
    "top_n": _quick_count, "sorter": _quick_text, "budget": _quick_id,  # int | str | None, as an id's
    "orders": _quick_choice("both", "one", "random"), "timeout": _quick_timeout, "query_id": _quick_id}
_QUICK_FIELDS: dict[type, dict[str, Callable[[Any], bool]]] = {
    CohereBody: {**_QUICK_EXTRAS, "model": _quick_text, "return_documents": _quick_flag,
                 "rank_fields": lambda v: v is None or (type(v) is list and all(type(x) is str and x == "text"
                                                                                 for x in v)),
                 "max_chunks_per_doc": _quick_count, "max_tokens_per_doc": _quick_count},
    TEIBody: {**_QUICK_EXTRAS, "return_text": _quick_flag, "raw_scores": _quick_flag,
              "truncate": lambda v: v is None or type(v) is bool,
              "truncation_direction": _quick_choice("Left", "Right", "left", "right")},
}


def _plain_value(value: Any, depth: int) -> bool:
    """:func:`_plain` for a value met at ``depth`` of the walk (what it asks of an item there)."""
    kind = type(value)
    if kind is dict or kind is list:
        return _plain(value, depth)
    return kind is not float or -_BIG < value < _BIG


def quick_admit(data: Any, model: type[CohereBody] | type[TEIBody], limits: Limits) -> Ask | None:
    """:func:`admit` for ``data`` as orjson read it (:func:`quick_json`), without pydantic, when it
    is a body every part of which is plainly right (the usual one: strings, small integers, a
    timeout in range, documents as strings or ``{"text", "id"}`` objects, and nothing elsewhere
    that the standard library would read differently, as :func:`load_json` asks); None for any
    other body, which takes the long way (:func:`load_json`, :func:`admit`: their values and
    messages). What it takes, :func:`admit` takes too, into the same :class:`Ask`; the checks no
    model makes (ids, limits, the budget's value) are :func:`admit`'s own, raising as it would."""
    if type(data) is not dict:
        return None
    fields = _QUICK_FIELDS[model]
    documents = texts = None
    for key, value in data.items():
        check = fields.get(key)
        if check is not None:
            if not check(value):
                return None
        elif key == "query":
            if type(value) is not str:
                return None
        elif key == "documents" and model is CohereBody:
            documents = value
        elif key == "texts" and model is TEIBody:
            texts = value
        elif not _plain_value(value, 1):  # a field no dialect knows: ignored, but read alike
            return None
    if "query" not in data:
        return None
    get = data.get
    timeout, query_id = get("timeout"), get("query_id")
    if type(timeout) is int:
        timeout = float(timeout)
    if type(query_id) is int:
        query_id = str(query_id)
    if model is TEIBody:
        if type(texts) is not list or not all(type(text) is str for text in texts):
            return None
        return _admitted(limits, data["query"], tuple(texts), None, get("return_text", False), None, query_id,
                         get("top_n"), get("sorter"), get("budget"), get("orders"), timeout)
    if type(documents) is not list:
        return None
    read, given = _quick_documents(documents)
    if read is None:
        return None
    return _admitted(limits, data["query"], tuple(read), given, get("return_documents", False), get("model"),
                     query_id, get("top_n"), get("sorter"), get("budget"), get("orders"), timeout)


_TEXT, _ID = itemgetter("text"), itemgetter("id")
_DICT, _STR, _ONE, _TWO, _NONE = {dict}, {str}, {1}, {2}, set()


def _quick_documents(documents: list) -> tuple[list[str] | None, list[str | None]]:
    """:func:`quick_admit`'s documents: each one's text and id (None: not given), or (None, [])
    for anything but plain strings and ``{"text", "id"?}`` objects (and fields no dialect knows
    that read alike). The usual shapes in a few passes, any other one item by item."""
    kinds = set(map(type, documents))
    if kinds == _DICT:
        sizes = set(map(len, documents))
        try:
            read = list(map(_TEXT, documents))
            given = list(map(_ID, documents)) if sizes == _TWO else [None] * len(documents)
        except KeyError:  # another field: item by item
            sizes = _NONE
        if (sizes == _TWO or sizes == _ONE) and set(map(type, read)) == _STR and (
                sizes == _ONE or set(map(type, given)) == _STR):
            return read, given  # type: ignore[return-value]
    elif kinds == _STR:
        return documents, [None] * len(documents)
    read, given = [], []
    for item in documents:
        kind = type(item)
        if kind is str:
            read.append(item)
            given.append(None)
            continue
        if kind is not dict:
            return None, []
        text, doc_id = item.get("text"), item.get("id")
        if type(text) is not str or not _quick_id(doc_id):
            return None, []
        if len(item) > 1 + ("id" in item):  # other fields: ignored, but read alike
            for key, value in item.items():
                if key != "text" and key != "id" and not _plain_value(value, 3):
                    return None, []
        read.append(text)
        given.append(str(doc_id) if type(doc_id) is int else doc_id)
    return read, given


def quick_json(body: bytes) -> Any:
    """``body`` as orjson reads it (for :func:`quick_admit`), or None when it cannot (or is not
    installed): an error, whose message the long way gives (:func:`load_json`)."""
    if orjson is None:
        return None
    try:
        return orjson.loads(body)
    except (ValueError, RecursionError):
        return None


def _budget(value: int | str | None) -> Budget | None:
    """The body's ``budget`` (a number of prompts, or a string with a unit), or a 422 naming it."""
    try:
        budget = parse_budget(value)
    except ValueError as exc:
        raise BodyError(422, f"budget: {exc}") from None
    if budget is not None and budget.unit == "prompts" and budget.amount > MAX_BUDGET:
        raise BodyError(422, f"budget: at most {MAX_BUDGET} prompts, got {value!r}")
    return budget


def _ids(given: list[str | None]) -> tuple[str, ...] | None:
    """The documents' ids (each one's, or None): all of them, unique, or None when none is given."""
    absent = given.count(None)
    if absent == len(given):
        return None
    if absent:
        missing = given.index(None)
        first_given = next(i for i, d in enumerate(given) if d is not None)
        raise BodyError(422, f"documents[{missing}].id: required, since documents[{first_given}] has one "
                             "(give every document an id, or none)")
    if len(set(given)) < len(given):
        first: dict[str, int] = {}
        for i, d in enumerate(given):
            if d in first:
                raise BodyError(422, f"documents[{i}].id: {d!r} is also documents[{first[d]}]'s id "
                                     "(ids must be unique)")
            first[d] = i  # type: ignore[index]
    return tuple(given)  # type: ignore[arg-type]
