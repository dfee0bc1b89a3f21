"""The service's fast path keeps its behaviour: orjson reads exactly what the standard library
reads (else the standard library reads it, with its messages), a response goes out in one send,
a client gone mid-body is not waited for, routing and the guard answer as before, and the
per-inference metrics counted in plain ints show what Prometheus' own objects would."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from prp import Reranker, ScoresOracle  # noqa: E402
from prp.serve import bodies  # noqa: E402
from prp.serve.app import create_app  # noqa: E402
from prp.serve.bodies import BodyError, load_json, parse_json  # noqa: E402
from prp.serve.dialects import encode  # noqa: E402
from prp.serve.protocol import _Coalescing, protocol_class  # noqa: E402

SCORES = {str(i): float(i) for i in range(12)}


def same(a: object, b: object) -> bool:
    """Equal with equal types all the way down (1 is not 1.0, -0.0 is not 0.0); no recursion, so
    values nested as deep as the parsers go compare too."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if list(x) != list(y):  # type: ignore[arg-type]
                return False
            stack.extend((x[k], y[k]) for k in x)  # type: ignore[index]
        elif isinstance(x, list):
            if len(x) != len(y):  # type: ignore[arg-type]
                return False
            stack.extend(zip(x, y, strict=True))  # type: ignore[arg-type]
        elif isinstance(x, float):
            if math.copysign(1, x) != math.copysign(1, y) or x != y:  # type: ignore[arg-type]
                return False
        elif x != y:
            return False
    return True


def outcome(read, raw: bytes):  # noqa: ANN001, ANN201
    try:
        return "value", read(raw)
    except BodyError as exc:
        return "error", (exc.status, exc.message)


def refused_inside(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bodies._Refused):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_same_reading(raw: bytes) -> None:
    fast = outcome(lambda r: load_json(r, "application/json"), raw)
    slow = outcome(lambda r: parse_json(r, "application/json"), raw)
    if slow[0] == "error":
        assert fast == slow, raw[:200]
        return
    (value, clean) = fast[1]
    if refused_inside(slow[1]):  # NaN, Infinity, 1e999...: the standard library's path, flagged
        assert not clean
        return
    assert same(value, slow[1]), (raw[:200], value, slow[1])
    if clean:
        bodies.check_values(value)  # nothing for it to find, as promised


NUMBER_TEXT = st.one_of(
    st.integers().map(str), st.integers(min_value=2**62, max_value=2**70).map(str),
    st.integers(max_value=-(2**62), min_value=-(2**70)).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1E5", "-0", "-0.0", "5e-324",
                     "18446744073709551615", "18446744073709551616", "-9223372036854775809",
                     "1" + "0" * 30, "1" + "0" * 5000, "9.3e18", "0.1e1"]))
STRING_TEXT = st.one_of(st.text(max_size=12).map(json.dumps), st.sampled_from(
    ['"\\ud800"', '"a\\udfffb"', '"\\ud83d\\ude00"', '"\\u0000"', '"tab\there"']))
SCALAR_TEXT = st.one_of(NUMBER_TEXT, STRING_TEXT, st.sampled_from(["true", "false", "null"]))
JSON_TEXT = st.recursive(SCALAR_TEXT, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
    st.lists(st.tuples(STRING_TEXT, inner), max_size=4).map(
        lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}")), max_leaves=16)


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(text=JSON_TEXT)
def test_load_json_reads_what_the_standard_library_reads(text):
    check_same_reading(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("raw", [
    b"", b"  ", b"\xef\xbb\xbf{}", b"\xff{}", b'{"a": 1, "a": 2.0}', b"[" * 40 + b"]" * 40,
    *(b"[" * n + b"]" * n for n in (33, 500, 900, 960, 1000, 1020, 2000)),  # orjson stops at 1024
    b'{"top_n": 18446744073709551616}', b'{"timeout": 1e19}', b'["\xed\xa0\x80"]',
    b'{"query": "q", "documents": ["a", {"text": "b", "id": 7}]}', b"nul", b"[1,]"])
def test_load_json_edge_cases(raw):
    check_same_reading(raw)


def test_encode_writes_the_json_the_standard_library_reads_back():
    payload = {"id": "x", "results": [{"index": 3, "relevance_score": 0.95}], "text": "caf\u00e9 \U0001f600",
               "usage": {"inferences": 1e-06, "cut": False, "big": 2**70}, "none": None}
    assert json.loads(encode(payload)) == payload


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close",))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort",))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("peer", name)


def test_a_turns_writes_go_out_in_one_send_and_a_close_comes_after_them():
    async def main():
        real = Recorder()
        transport = _Coalescing(real)  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"{}")
        assert real.calls == [] and transport.get_write_buffer_size() == 21
        await asyncio.sleep(0)
        assert real.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\n{}")]
        transport.write(b"last")
        transport.close()  # flushes first
        assert real.calls[1:] == [("write", b"last"), ("close",)]
        await asyncio.sleep(0)
        assert len(real.calls) == 3  # nothing written twice
        other = Recorder()
        dropped = _Coalescing(other)  # type: ignore[arg-type]
        dropped.write(b"x")
        dropped.abort()
        await asyncio.sleep(0)
        assert other.calls == [("abort",)]
        assert dropped.get_extra_info("peername") == ("peer", "peername")  # the rest: the transport's

    asyncio.run(main())
    assert protocol_class().__name__.startswith("Coalescing")


def app_and_client(**options):  # noqa: ANN003, ANN201
    app = create_app(Reranker(ScoresOracle(SCORES), batch_size=4, cache=False), linger_ms=600_000, **options)
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://prp")


def test_a_client_gone_mid_body_is_not_answered_nor_waited_for():
    app, client = app_and_client()

    async def main():
        async with app.router.lifespan_context(app):
            messages = [{"type": "http.request", "body": b'{"query": "q", ', "more_body": True},
                        {"type": "http.disconnect"}]
            sent: list[dict] = []

            async def receive():
                return messages.pop(0)

            async def send(message):
                sent.append(message)

            await app({"type": "http", "method": "POST", "path": "/v1/rerank", "headers": []}, receive, send)
            assert sent == []
            # a lone request after it goes at once (it would wait ten minutes for a stuck arrival)
            answer = await asyncio.wait_for(client.post("/v1/rerank", json={
                "query": "q", "documents": [f"d{i}" for i in range(12)], "top_n": 3}), 30)
            assert answer.status_code == 200
            assert [r["index"] for r in answer.json()["results"]] == [11, 10, 9]

    asyncio.run(main())


def test_routing_and_the_guard_answer_as_before():
    app, client = app_and_client(api_keys=frozenset({"k"}))

    async def main():
        async with app.router.lifespan_context(app):
            key = {"X-API-Key": "k"}
            for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
                wrong = await client.get(path, headers=key)
                assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
                assert wrong.json() == {"message": f"GET {path}: Method Not Allowed"}
            assert (await client.get("/v1/rerank")).status_code == 401  # the guard comes first
            assert (await client.post("/v3/rerank", json={}, headers=key)).status_code == 404
            assert (await client.post("/v3/rerank", json={})).status_code == 401
            assert (await client.get("/health")).status_code == 200  # open
            ok = await client.post("/v2/rerank", json={"query": "q", "documents": ["a", "b"]},
                                   headers={"Authorization": "Bearer k"})
            assert ok.status_code == 200 and ok.headers["content-type"] == "application/json"
            assert json.loads(ok.headers["x-prp-usage"])["prompts"] > 0
            assert int(ok.headers["content-length"]) == len(ok.content)
            app.state.drain()
            gone = await client.post("/v1/rerank", json={"query": "q", "documents": ["a"]}, headers=key)
            assert gone.status_code == 503 and gone.headers["retry-after"] == "1"
            return (await client.get("/metrics")).text

    metrics = asyncio.run(main())
    counted = {line.split("{")[1].split("}")[0]: float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("prp_requests_total{")}
    assert counted == {'status="405"': 3.0, 'status="401"': 2.0, 'status="404"': 1.0, 'status="200"': 1.0,
                       'status="503"': 1.0}


def test_inference_metrics_are_what_prometheus_objects_would_show():
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    fills: list[int] = []

    class Recording(ScoresOracle):  # one judge call, one inference
        async def judge(self, prompts):
            fills.append(len(prompts))
            return await super().judge(prompts)

    app = create_app(Reranker(Recording(SCORES), batch_size=4, cache=False), linger_ms=0)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://prp")

    async def main():
        async with app.router.lifespan_context(app):
            for n in (3, 7, 12):
                answer = await client.post("/v1/rerank", json={"query": f"q{n}", "documents": [
                    f"d{i}" for i in range(n)], "sorter": "allpair"})
                assert answer.status_code == 200
            return (await client.get("/metrics")).text

    shown = asyncio.run(main())
    assert fills
    registry = CollectorRegistry()
    prompts = Counter("prp_prompts", "Prompts sent to the judge", registry=registry)
    inferences = Counter("prp_inferences", "Inferences (judge calls)", registry=registry)
    fill = Histogram("prp_batch_fill", "Prompts per inference / batch size", registry=registry,
                     buckets=(0.125, 0.25, 0.5, 0.75, 0.9, 1.0))
    for n in fills:
        prompts.inc(n)
        inferences.inc()
        fill.observe(n / 4)

    def lines(text: str) -> list[str]:
        names = ("prp_prompts", "prp_inferences", "prp_batch_fill")
        comments = tuple(f"# {kind} {name}" for kind in ("HELP", "TYPE") for name in names)
        return sorted(line for line in text.splitlines() if line.startswith(comments)
                      or line.split(" ")[0].startswith(names) and "_created" not in line)

    assert lines(shown) == lines(generate_latest(registry).decode())
    assert "prp_batch_fill_created" in shown and "prp_prompts_created" in shown


# --- the quick admission: the usual body without pydantic, exactly what the long way admits ----

def _typed(value: object) -> object:
    """``value`` with the type of every part, so 5 and 5.0 (or "5") differ."""
    if isinstance(value, bodies.Ask):
        return tuple(_typed(getattr(value, name)) for name in value.__dataclass_fields__)
    if isinstance(value, tuple):
        return tuple(_typed(item) for item in value)
    if isinstance(value, bodies.Budget):
        return ("Budget", _typed(value.amount), value.unit)
    return (type(value).__name__, value)


SMALL = bodies.Limits(max_documents=4, max_document_chars=6, max_query_chars=6, max_body_bytes=10**6)


def _ways(raw: bytes, path: str, limits: bodies.Limits = SMALL):  # noqa: ANN202
    """(the quick way's outcome or None when it passes the body on, the long way's outcome)."""
    from prp.serve import dialects

    def long_way():  # noqa: ANN202
        data, clean = load_json(raw, "application/json")
        return bodies.admit(data, dialects.pick(path, data).body, limits, checked=clean)

    def quick_way():  # noqa: ANN202
        data = bodies.quick_json(raw)
        if data is None:
            return None
        return bodies.quick_admit(data, dialects.pick(path, data).body, limits)

    def run(way):  # noqa: ANN001, ANN202
        try:
            return "value", _typed(way())
        except BodyError as exc:
            return "error", (exc.status, exc.message)

    quick = run(quick_way)
    return (None if quick == ("value", ("NoneType", None)) else quick), run(long_way)


ODD = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**64]),
                st.floats(allow_nan=False, allow_infinity=False),
                st.sampled_from([0.0, 1.0, 86_400.0, 86_400.5]),
                st.text(max_size=3), st.lists(st.integers(0, 2), max_size=2),
                st.dictionaries(st.text(max_size=2), st.integers(0, 2), max_size=2))
IDS = st.one_of(st.text(max_size=2), st.integers(-2, 3), ODD)
DOCS = st.integers(0, 9).flatmap(lambda i: st.one_of(  # mostly strings and {"text"} objects
    ODD, st.fixed_dictionaries({"text": st.text(max_size=8)}, optional={"id": IDS, "lang": ODD}),
    st.fixed_dictionaries({}, optional={"text": ODD, "id": IDS})) if i == 0 else st.one_of(
    st.text(max_size=8), st.fixed_dictionaries({"text": st.text(max_size=8)})))
FIELD_VALUES = {
    "query": st.text(max_size=8), "documents": st.lists(DOCS, max_size=5),
    "texts": st.lists(st.text(max_size=8), max_size=5),
    "top_n": st.integers(-1, 6), "model": st.text(max_size=3), "return_documents": st.booleans(),
    "return_text": st.booleans(), "raw_scores": st.booleans(), "truncate": st.booleans(),
    "truncation_direction": st.sampled_from(["left", "Right", "up"]),
    "sorter": st.sampled_from(["quicksort", "x"]),
    "budget": st.sampled_from([0, 5, -1, "40tokens", "2s", "3.5", "nope", 10**13]),
    "orders": st.sampled_from(["both", "one", "random", "all"]),
    "timeout": st.sampled_from([0.5, 5, 0, -1, 1e6]),
    "query_id": IDS, "rank_fields": st.sampled_from([["text"], [], ["title"], ["text", "text"]]),
    "max_chunks_per_doc": st.integers(-1, 3), "max_tokens_per_doc": st.integers(-1, 3), "extra": ODD}


@st.composite
def usual_bodies(draw) -> bytes:
    """Bodies near the usual one: each field absent, usual or odd, ids given or not, documents of
    every shape, fields no dialect knows; as JSON text (a big integer in its digits)."""
    body = {}
    for name, usual in FIELD_VALUES.items():
        how = draw(st.integers(0, 39))
        if how < 8 or (how < 36 and name in ("query", "documents", "texts")):
            body[name] = draw(usual)
        elif how == 39:
            body[name] = draw(ODD)
    if draw(st.booleans()) and isinstance(body.get("documents"), list):  # every document an id, or none
        body["documents"] = [{"text": f"d{i}", "id": draw(st.sampled_from([str(i), i, "x"]))}
                             for i in range(len(body["documents"]))]
    return json.dumps(body).encode()


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(raw=usual_bodies(), path=st.sampled_from(["/v1/rerank", "/v2/rerank", "/rerank"]))
def test_the_quick_admission_admits_what_the_long_way_admits_and_refuses_alike(raw, path):
    quick, slow = _ways(raw, path)
    if quick is not None:
        assert quick == slow, raw


@pytest.mark.parametrize("raw", [
    b'{"query": "q", "documents": ["a"], "x": ' + b"[" * 40 + b"]" * 40 + b"}",  # nested past _DEPTH
    b'{"query": "q", "documents": [{"text": "a", "x": ' + b"[" * 31 + b"]" * 31 + b"}]}",
    b'{"query": "q", "documents": ["a"], "x": 18446744073709551616}',  # orjson: a float
    b'{"query": "q", "documents": ["a"], "top_n": 18446744073709551616}',
    b'{"query": "q", "documents": [{"text": "a", "id": 18446744073709551616}]}',
    b'{"query": "q", "documents": ["a"], "timeout": 1e19}', b'{"query": "q", "documents": ["a"], "x": NaN}',
    b'{"query": "q", "documents": [{"text": "a", "id": 1}, {"text": "b", "id": "1"}]}',
    b'{"query": "q", "documents": [{"text": "a", "id": 1}, {"text": "b"}]}',
    b'{"query": "q", "documents": [{"text": "a", "id": null}, {"text": "b", "id": null}]}',
    b'{"query": "q", "documents": ["a", "b", "c", "d", "e"]}', b'{"query": "qqqqqqq", "documents": []}',
    b'{"query": "q", "documents": ["a", "bbbbbbb"]}', b'{"query": "q", "texts": ["a", "bbbbbbb"]}',
    b'{"query": "q", "documents": ["a"], "budget": -1}',
    b'{"query": "q", "documents": ["a"], "budget": "2x"}',
    b'{"query": "q", "documents": ["a"], "query_id": 7, "timeout": 5}',
    b'{"query": "\\ud800", "documents": []}',
    b'{"documents": ["a"]}', b'{"query": "q"}', b'{"query": "q", "texts": "a"}', b"[]", b"nul"])
def test_the_quick_admission_on_edge_bodies(raw):
    for path in ("/v1/rerank", "/v2/rerank"):
        quick, slow = _ways(raw, path)
        if quick is not None:
            assert quick == slow, raw


@pytest.mark.parametrize("body", [
    {"query": "q", "query_id": "19335", "top_n": 10,
     "documents": [{"id": f"d{i}", "text": f"t{i}"} for i in range(20)]},
    {"query": "q", "documents": ["a", "b", "c"], "top_n": 2, "return_documents": True, "model": "m"},
    {"query": "q", "documents": [{"text": "a"}, {"text": "b"}], "timeout": 5, "budget": "40tokens",
     "orders": "one"},
    {"query": "q", "documents": [{"text": "a", "id": 1}, {"text": "b", "id": 2}], "query_id": 3,
     "sorter": "heapsort"},
    {"query": "q", "documents": ["a", {"text": "b"}], "rank_fields": ["text"], "max_chunks_per_doc": 3},
    {"query": "q", "texts": ["a", "b"], "return_text": True, "truncate": None, "raw_scores": False},
    {"query": "q", "documents": [{"text": "a", "title": "x"}], "meta": {"client": [1, 2.5]}}])
def test_the_usual_bodies_take_the_quick_way(body):
    from prp.serve import dialects

    raw = json.dumps(body).encode()
    data = bodies.quick_json(raw)
    ask = bodies.quick_admit(data, dialects.pick("/v1/rerank", data).body, bodies.Limits())
    assert ask is not None
    _, slow = _ways(raw, "/v1/rerank", bodies.Limits())
    assert ("value", _typed(ask)) == slow


def test_answer_ids_are_uuid4s_that_a_seeded_global_random_or_a_fork_cannot_repeat():
    import os
    import random
    import uuid

    from prp.serve.dialects import answer_id

    random.seed(7)
    first = answer_id()
    random.seed(7)
    assert answer_id() != first  # the caller's seed is not the ids' seed
    parsed = uuid.UUID(first)
    assert parsed.version == 4 and str(parsed) == first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, answer_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != answer_id()  # the child's generator was seeded afresh, not copied
