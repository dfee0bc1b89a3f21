"""Property-based fuzz of the rerank service's bodies: malformed requests never get a 5xx.

Hypothesis builds bodies from valid ones broken in every way a client can break them (wrong types,
missing fields, NaN and Infinity literals, lone surrogates, huge numbers, nested junk, bytes that
are not JSON or not UTF-8, wrong content types) and sends them to the app in process (httpx over
ASGI, with the app's lifespan entered, so the engine runs and valid bodies are ranked): every
answer is a 200 or a 4xx whose JSON ``message`` names the problem. Derandomized, so CI sees the
same 1,000 bodies every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = {"deadline": None, "derandomize": True, "database": None,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture]}


class InProcess:
    """The app on an event loop of its own, its lifespan entered (the engine runs), driven by httpx
    through ASGI: about a millisecond a request, so a thousand bodies take seconds."""

    def __init__(self, keys_by: str) -> None:
        from prp import ScoresOracle
        from prp.reranker import Reranker
        from prp.serve.app import Limits, create_app

        class ByText(ScoresOracle):
            keys_by = "text"

            def margin(self, p):  # noqa: ANN001, ANN202
                return float(len(p.first) - len(p.second))

        oracle = ByText(lambda q, d: 0.0) if keys_by == "text" else ScoresOracle(lambda q, d: float(len(d)))
        self.app = create_app(Reranker(oracle, batch_size=16, cache=False), linger_ms=0,
                              limits=Limits(max_documents=40, max_document_chars=300, max_query_chars=200,
                                            max_body_bytes=64_000))
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.AsyncExitStack()
        self.loop.run_until_complete(self.stack.enter_async_context(self.app.router.lifespan_context(self.app)))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://prp")

    def post(self, path: str, content: bytes, content_type: str | None) -> httpx.Response:
        headers = {} if content_type is None else {"Content-Type": content_type}
        return self.loop.run_until_complete(self.client.post(path, content=content, headers=headers))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.stack.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def by_id():
    service = InProcess("id")
    yield service
    service.close()


@pytest.fixture(scope="module")
def by_text():
    service = InProcess("text")
    yield service
    service.close()


# --- what a client can send --------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udfff", "\ud83d", "a\udc00b"])
TEXT = st.one_of(st.text(max_size=30), st.builds(lambda a, s, b: a + s + b, st.text(max_size=8), SURROGATES,
                                                st.text(max_size=8)))
NUMBERS = st.one_of(st.integers(), st.integers(min_value=10**18, max_value=10**80),
                    st.integers(max_value=-(10**18)), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
IDS = st.one_of(TEXT, st.integers(), st.booleans())
DOCUMENT = st.one_of(TEXT, st.fixed_dictionaries({"text": TEXT}),
                     st.fixed_dictionaries({"text": TEXT, "id": IDS}), JUNK)
FIELDS = ["model", "query", "documents", "top_n", "return_documents", "sorter", "budget", "orders", "timeout",
          "query_id", "texts", "return_text", "raw_scores", "truncate", "truncation_direction", "rank_fields",
          "max_tokens_per_doc", "max_chunks_per_doc"]
GOOD = {"model": st.just("prp"), "query": st.text(max_size=20), "top_n": st.integers(1, 5),
        "return_documents": st.booleans(), "sorter": st.sampled_from(["quicksort", "heapsort", "tournament"]),
        "budget": st.integers(0, 50), "orders": st.sampled_from(["both", "one"]),
        "timeout": st.floats(0.5, 30), "query_id": st.text(max_size=5)}


@st.composite
def bodies(draw, documents_key: str = "documents") -> object:
    """A body: a valid one with some fields broken, dropped or added, or plain junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JUNK)
    body = {"query": draw(st.text(max_size=20)),
            documents_key: draw(st.lists(st.text(max_size=20), max_size=8))}
    for name in draw(st.lists(st.sampled_from(list(GOOD)), max_size=3, unique=True)):
        body[name] = draw(GOOD[name])
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        action = draw(st.sampled_from(["junk", "drop", "documents", "big"]))
        if action == "drop":
            body.pop(name, None)
        elif action == "documents":
            body[name] = draw(st.lists(DOCUMENT, max_size=6))
        elif action == "big":
            body[name] = draw(st.sampled_from(["x" * 5_000, ["d"] * 60, [{"text": "y" * 400}], 10**4000]))
        else:
            body[name] = draw(JUNK)
    return body


def _dumps(value: object) -> bytes:
    """JSON as a careless client writes it: NaN/Infinity literals, surrogates as \\u escapes."""
    try:
        return json.dumps(value, allow_nan=True).encode()
    except ValueError:  # an integer too long for str(): send its digits anyway
        return b'{"query": "q", "documents": ["a"], "top_n": 1' + b"0" * 5000 + b"}"


@st.composite
def payloads(draw, documents_key: str = "documents") -> tuple[bytes, str | None]:
    kind = draw(st.integers(0, 24))
    if kind == 0:
        raw = draw(st.binary(max_size=200))
    elif kind == 1:
        raw = _dumps(draw(bodies(documents_key)))[: draw(st.integers(0, 60))]  # cut short
    elif kind == 2:
        raw = json.dumps(draw(st.sampled_from([
            {"query": "q", "documents": ["d"] * 41}, {"query": "q" * 201, "documents": ["d"]},
            {"query": "q", "documents": ["d", "e" * 301]}, {"query": "q", "texts": ["d"] * 41},
            {"query": "q", "documents": ["d"], "padding": "p" * 64_001}]))).encode()
    elif kind == 3:
        raw = draw(st.sampled_from([b"[" * 5_000, b'{"a":' * 3_000, b"\xef\xbb\xbf{}", b"null", b"",
                                    b'{"query": "q", "documents": ["\xed\xa0\x80"]}', b"\xff\xfe{\x00}\x00"]))
    else:
        raw = _dumps(draw(bodies(documents_key)))
    content_type = draw(st.sampled_from([
        "application/json", "application/json", "application/json", None, "text/plain",
        "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/json; charset=latin-1", "image/png", "application/vnd.api+json", ";;;"]))
    return raw, content_type


def _check(client, path: str, payload: tuple[bytes, str | None]) -> None:
    response = client.post(path, *payload)
    assert response.status_code < 500, (payload[0][:300], response.status_code, response.text[:500])
    answer = response.json()  # always JSON
    if response.status_code != 200:
        assert 400 <= response.status_code < 500
        assert isinstance(answer, dict) and isinstance(answer.get("message"), str), answer
        assert answer["message"], answer


@settings(max_examples=1000, **SETTINGS)
@given(payload=payloads())
def test_v1_rerank_never_answers_a_malformed_body_with_a_5xx(by_id, payload):
    _check(by_id, "/v1/rerank", payload)


@settings(max_examples=150, **SETTINGS)
@given(payload=payloads())
def test_v2_rerank_never_answers_a_malformed_body_with_a_5xx(by_text, payload):
    _check(by_text, "/v2/rerank", payload)


@settings(max_examples=150, **SETTINGS)
@given(payload=payloads("texts"))
def test_tei_rerank_never_answers_a_malformed_body_with_a_5xx(by_text, payload):
    _check(by_text, "/rerank", payload)


def test_the_fuzz_reaches_the_judge_and_every_kind_of_refusal(by_id):
    """The generator is not all junk: some bodies are ranked, and the refusals cover each check."""
    seen: dict[int, int] = {}
    messages: list[str] = []

    @settings(max_examples=300, **SETTINGS)
    @given(payload=payloads())
    def sample(payload):
        response = by_id.post("/v1/rerank", *payload)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if response.status_code >= 400:
            messages.append(response.json()["message"])

    sample()
    assert seen.get(200, 0) >= 10 and seen.get(413, 0) >= 1, seen
    for words in ("is not a JSON number", "not valid Unicode text", "input should be", "not JSON", "required",
                  "over the limit"):
        assert any(words in m for m in messages), words
