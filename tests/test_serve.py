"""``prp serve`` on loopback, driven by real clients: the cohere SDK and httpx.

The service runs as a subprocess (``python -m prp.cli serve``) with the simulated perfect judge,
which reads the query text as its qid and each document's ``id`` as its doc id (default: the
document's index, "0", "1", ...). The qrels grade both kinds of id: ``d7`` and ``7``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key-1"



def write_qrels(path: Path, queries: int = 8, docs: int = 40) -> dict[str, dict[str, int]]:
    """Grades for ids ``d0``.. (sent as documents' ids) and ``0``.. (documents sent without ids)."""
    rng = random.Random(7)
    qrels = {f"q{q}": {f"{p}{d}": rng.randrange(4) for p in ("d", "") for d in range(docs)}
             for q in range(queries)}
    path.write_text("".join(f"{q} 0 {d} {g}\n" for q, grades in qrels.items() for d, g in grades.items()))
    return qrels


class Service:
    def __init__(self, tmp: Path, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.qrels = write_qrels(tmp / "qrels.txt")
        self.log = open(tmp / f"serve-{self.port}.log", "w")  # noqa: SIM115
        command = [sys.executable, "-m", "prp.cli", "serve", "--judge", "perfect",
                   "--qrels", str(tmp / "qrels.txt"), "--port", str(self.port), *args]
        self.proc = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prp serve exited: {(tmp / f'serve-{self.port}.log').read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("prp serve did not come up in 90 s")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def best(qrels: dict, qid: str, docs: list[str], k: int) -> list[int]:
    """The grades of the k best documents (ties may come in any order)."""
    return sorted((qrels[qid][d] for d in docs), reverse=True)[:k]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = Service(tmp_path_factory.mktemp("serve"), "--batch-size", "16", "--max-documents", "50",
                  "--max-document-chars", "100", "--max-body-bytes", "20000",
                  env={"PRP_API_KEYS": f"other,{KEY}"})
    yield svc
    assert svc.stop() == 0


def by_index(qrels: dict, qid: str, n: int, k: int) -> list[int]:
    """The grades of the k best of n documents sent without ids (known by their index)."""
    return best(qrels, qid, [str(i) for i in range(n)], k)


def test_cohere_sdk_v1_round_trips_with_and_without_documents(service):
    cohere = pytest.importorskip("cohere")
    docs = [f"passage {i}" for i in range(30)]
    co = cohere.Client(api_key=KEY, base_url=service.url)
    with_docs = co.rerank(model="prp", query="q3", documents=docs, top_n=5, return_documents=True)
    assert [service.qrels["q3"][str(r.index)] for r in with_docs.results] == by_index(
        service.qrels, "q3", 30, 5)
    assert [r.document.text for r in with_docs.results] == [docs[r.index] for r in with_docs.results]
    scores = [r.relevance_score for r in with_docs.results]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
    assert with_docs.meta.api_version.version == "1" and with_docs.meta.billed_units.search_units == 1
    bare = co.rerank(model="prp", query="q3", documents=docs, top_n=5, return_documents=False)
    assert [r.index for r in bare.results] == [r.index for r in with_docs.results]
    assert all(r.document is None for r in bare.results)
    # objects with ids: the judge reads the ids ("d7" is graded apart from "7")
    objects = [{"text": f"passage {i}", "id": f"d{i}"} for i in range(30)]
    named = co.rerank(model="prp", query="q5", documents=objects, top_n=4)
    assert [service.qrels["q5"][f"d{r.index}"] for r in named.results] == best(
        service.qrels, "q5", [d["id"] for d in objects], 4)


def test_cohere_sdk_v2_round_trips_with_and_without_documents(service):
    cohere = pytest.importorskip("cohere")
    docs = [f"passage {i}" for i in range(30)]
    co = cohere.ClientV2(api_key=KEY, base_url=service.url)
    bare = co.rerank(model="prp", query="q4", documents=docs, top_n=3)
    assert [service.qrels["q4"][str(r.index)] for r in bare.results] == by_index(service.qrels, "q4", 30, 3)
    assert bare.meta.api_version.version == "2"
    assert bare.meta.billed_units.search_units == 1 and bare.meta.billed_units.input_tokens > 0
    assert all("document" not in (r.model_extra or {}) for r in bare.results)
    # the v2 SDK has no return_documents argument; sent as an extra body field, it is honoured
    shown = co.rerank(model="prp", query="q4", documents=docs, top_n=3,
                      request_options={"additional_body_parameters": {"return_documents": True}})
    assert [r.index for r in shown.results] == [r.index for r in bare.results]
    assert [r.model_extra["document"]["text"] for r in shown.results] == [
        docs[r.index] for r in shown.results]


def test_jina_and_vllm_shape_over_raw_http(service):
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "jina-reranker-v2-base-multilingual", "query": "q6",
            "documents": [{"text": f"passage {i}"} for i in range(12)], "top_n": 3, "return_documents": True}
    answer = httpx.post(service.url + "/v1/rerank", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["model"] == body["model"]
    spent = out["usage"]
    assert spent["total_tokens"] == spent["prompt_tokens"] + spent["completion_tokens"] > 0
    assert [service.qrels["q6"][str(r["index"])] for r in out["results"]] == by_index(
        service.qrels, "q6", 12, 3)
    assert [r["document"] for r in out["results"]] == [body["documents"][r["index"]] for r in out["results"]]
    bare = httpx.post(service.url + "/rerank", json={**body, "return_documents": False}, headers=headers,
                      timeout=60).json()
    assert [set(r) for r in bare["results"]] == [{"index", "relevance_score"}] * 3


def test_tei_body_gets_teis_bare_array(service):
    headers = {"Authorization": f"Bearer {KEY}"}
    texts = [f"passage {i}" for i in range(10)]
    body = {"query": "q7", "texts": texts, "raw_scores": False, "truncate": True,
            "truncation_direction": "Right"}
    for path in ("/rerank", "/v1/rerank"):
        answer = httpx.post(service.url + path, json={**body, "return_text": True}, headers=headers,
                            timeout=60)
        assert answer.status_code == 200, answer.text
        items = answer.json()
        assert isinstance(items, list) and len(items) == len(texts)  # every text, best first
        assert sorted(r["index"] for r in items) == list(range(len(texts)))
        assert [service.qrels["q7"][str(r["index"])] for r in items] == by_index(service.qrels, "q7", 10, 10)
        assert [r["text"] for r in items] == [texts[r["index"]] for r in items]
        scores = [r["score"] for r in items]
        assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
        assert json.loads(answer.headers["x-prp-usage"])["comparisons"] > 0
    bare = httpx.post(service.url + "/rerank", json=body, headers=headers, timeout=60).json()
    assert [set(r) for r in bare] == [{"index", "score"}] * len(texts)
    wrong = httpx.post(service.url + "/rerank", json={"query": "q7", "texts": ["a", 5]}, headers=headers,
                       timeout=60)
    assert wrong.status_code == 422 and wrong.json()["error_type"] == "Validation"
    assert "texts[1]" in wrong.json()["error"]


def test_the_same_text_twice_without_ids_is_ranked(service):
    """Ids default to the index, not the text: two equal texts are two candidates."""
    docs = ["same passage", "other passage", "same passage", "third"]
    answer = httpx.post(service.url + "/v1/rerank", json={"query": "q1", "documents": docs},
                        headers={"X-API-Key": KEY}, timeout=60)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]
    assert [service.qrels["q1"][str(r["index"])] for r in results] == by_index(service.qrels, "q1", 4, 4)


def test_a_budget_with_a_unit_is_taken(service):
    """``"budget": "120tokens"`` caps a request's input tokens; a loose one does not bind."""
    used = {}
    for n, budget in enumerate(("120tokens", "1e9tokens")):
        docs = [f"passage {n} number {i} " * 3 for i in range(8)]  # new texts: nothing cached
        answer = httpx.post(service.url + "/v1/rerank", headers={"X-API-Key": KEY}, timeout=60,
                            json={"query": "q1", "documents": docs, "budget": budget})
        assert answer.status_code == 200, answer.text
        used[budget] = answer.json()["usage"]["total_tokens"]
    assert used["120tokens"] <= 120 < used["1e9tokens"]


def test_usage_extras_health_and_metrics(service):
    headers = {"Authorization": f"Bearer {KEY}"}
    docs = [{"text": f"d{i}"} for i in range(20)]
    body = {"model": "prp", "query": "q5", "documents": docs, "top_n": 4, "sorter": "heapsort",
            "orders": "one"}
    first = httpx.post(service.url + "/rerank", json=body, headers=headers, timeout=60).json()
    again = httpx.post(service.url + "/v1/rerank", json=body, headers=headers, timeout=60).json()
    assert [r["index"] for r in first["results"]] == [r["index"] for r in again["results"]]
    assert [service.qrels["q5"][str(r["index"])] for r in first["results"]] == by_index(
        service.qrels, "q5", len(docs), 4)
    usage = first["usage"]
    assert usage["prompts"] > 0 and usage["inferences"] > 0 and usage["cut"] is False
    assert usage["prompts"] + usage["cache_hits"] == usage["comparisons"]  # orders=one: 1 prompt each
    assert again["usage"]["prompts"] == 0 and again["usage"]["cache_hits"] == usage["comparisons"]
    cut = httpx.post(service.url + "/v1/rerank", json={**body, "query": "q6", "budget": 6}, headers=headers,
                     timeout=60).json()
    assert cut["usage"]["cut"] is True and cut["usage"]["prompts"] <= 6
    health = httpx.get(service.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    metrics = httpx.get(service.url + "/metrics", timeout=10).text
    for name in ("prp_requests_total", "prp_prompts_total", "prp_inferences_total", "prp_cache_hits_total",
                 "prp_batch_fill_bucket", "prp_queue_depth", "prp_request_seconds_bucket"):
        assert name in metrics
    hits = [line for line in metrics.splitlines() if line.startswith("prp_cache_hits_total")]
    assert float(hits[0].split()[-1]) >= usage["comparisons"]


OK = '"query": "q1", "documents": ["d1", "d2"]'


@pytest.mark.parametrize("body, status, words", [
    ({"documents": ["d1"]}, 422, "query: required"),
    ({"query": "q1", "documents": "d1"}, 422, "documents: input should be a valid list"),
    ({"query": "q1", "documents": ["d1", "d2"], "top_n": 0}, 422, "top_n"),
    ({"query": "q1", "documents": [f"d{i}" for i in range(51)]}, 413, "51 documents"),
    ({"query": "q1", "documents": ["d1", "x" * 101]}, 413, "documents[1]"),
    ({"query": "q1", "documents": ["d1", "d2"], "sorter": "nosuchsort"}, 422, "nosuchsort"),
    ({"query": "q1", "documents": ["d1", "d2"], "orders": "sideways"}, 422, "orders"),
    # strict JSON: the field is named
    (f'{{{OK}, "timeout": NaN}}', 422, "timeout: NaN is not a JSON number"),
    (f'{{{OK}, "top_n": Infinity}}', 422, "top_n: Infinity is not a JSON number"),
    (f'{{{OK}, "budget": -Infinity}}', 422, "budget: -Infinity is not a JSON number"),
    (f'{{{OK}, "timeout": 1e999}}', 422, "timeout: the number 1e999 is too large"),
    (f'{{{OK}, "top_n": 1{"0" * 5000}}}', 422, "top_n: an integer of 5001 digits"),
    ("{\"query\": \"q1\", \"documents\": [\"d1\", NaN]}", 422, "documents[1]: NaN"),
    # strict types
    ({"query": "q1", "documents": ["d1", "d2"], "top_n": True}, 422, "top_n: input should be a valid int"),
    ({"query": "q1", "documents": ["d1", "d2"], "top_n": "2"}, 422, "top_n"),
    ({"query": "q1", "documents": ["d1", "d2"], "timeout": 100_000}, 422, "timeout"),
    ({"query": "q1", "documents": ["d1", "d2"], "return_documents": 1}, 422, "return_documents"),
    ({"query": 5, "documents": ["d1"]}, 422, "query: input should be a valid string (got an integer)"),
    ({"query": "q1", "documents": ["d1", 7]}, 422, "documents[1]: must be a string or an object"),
    ({"query": "q1", "documents": ["d1", {"title": "x"}]}, 422, "documents[1].text: required"),
    ({"query": "q1", "documents": ["d1", {"text": ["x"]}]}, 422, "documents[1].text"),
    ([{"query": "q1"}], 422, "the body: must be a JSON object"),
    # text that encodes as UTF-8, with or without return_documents
    ({"query": "q\ud800", "documents": ["d1", "d2"]}, 422, "query: not valid Unicode text"),
    ({"query": "q1", "documents": ["d1", "d2", "bad \udfff"]}, 422, "documents[2]: not valid Unicode text"),
    ({"query": "q1", "documents": ["d1", "d2", "d3", {"text": "\ud800"}], "return_documents": True}, 422,
     "documents[3].text: not valid Unicode"),
    ({"query": "q1", "model": "\ud83d", "documents": ["d1"]}, 422, "model: not valid Unicode"),
    ({"query": "q1", "documents": ["d1"], "\ud800": 1}, 422, "the body (a key): not valid Unicode"),
    ({"query": "q1", "texts": ["ok", "\ud800"], "return_text": True}, 422, "texts[1]: not valid Unicode"),
    # ids: all or none, unique
    ({"query": "q1", "documents": [{"text": "a", "id": "x"}, {"text": "b", "id": "x"}]}, 422,
     "documents[1].id: 'x' is also documents[0]'s id"),
    ({"query": "q1", "documents": [{"text": "a", "id": 1}, {"text": "b"}]}, 422, "documents[1].id: required"),
    ({"query": "q1", "documents": [{"text": "a", "id": True}]}, 422, "documents[0].id"),
    # budgets: a number of prompts or a string with a unit
    ({"query": "q1", "documents": ["d1", "d2"], "budget": "5 apples"}, 422,
     "budget: budget must be a number"),
    ({"query": "q1", "documents": ["d1", "d2"], "budget": -1}, 422, "budget: budget must be >= 0"),
    ({"query": "q1", "documents": ["d1", "d2"], "budget": True}, 422, "budget"),
    ({"query": "q1", "documents": ["d1", "d2"], "budget": "0.01usd"}, 422, "needs a price table"),
    # not JSON at all
    ("", 422, "the body is empty"),
    ("{\"query\": \"q1\", ", 422, "the body is not JSON"),
    ("[" * 10_000, 422, "nested too deep"),
])
def test_bad_input_is_a_clear_4xx(service, body, status, words):
    """Never a 5xx for a client's body: 413/422 naming the field (and index)."""
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(service.url + "/v1/rerank", content=content.encode("utf-8"), timeout=30,
                          headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.json()["message"], response.text


def test_bodies_that_are_not_utf8_json_and_too_large_bodies(service):
    headers = {"X-API-Key": KEY}
    form = httpx.post(service.url + "/v1/rerank", content=b"query=q1&documents=d1", timeout=30,
                      headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 422
    assert "not JSON (sent as application/x-www-form-urlencoded)" in form.json()["message"]
    latin1 = httpx.post(service.url + "/v1/rerank", content='{"query": "caf\xe9"}'.encode("latin-1"),
                        headers=headers, timeout=30)
    assert latin1.status_code == 422 and "not UTF-8" in latin1.json()["message"]
    # a JSON body sent as text/plain is still read (curl -d without -H)
    plain = httpx.post(service.url + "/v1/rerank", headers={**headers, "Content-Type": "text/plain"},
                       content=json.dumps({"query": "q1", "documents": ["a", "b"]}), timeout=30)
    assert plain.status_code == 200, plain.text
    big = json.dumps({"query": "q1", "documents": ["d1"], "padding": "x" * 30_000}).encode()
    sized = httpx.post(service.url + "/v1/rerank", content=big, headers=headers, timeout=30)
    assert sized.status_code == 413 and "over the limit of 20000" in sized.json()["message"]

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    streamed = httpx.post(service.url + "/v1/rerank", content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413 and "over the limit of 20000 bytes" in streamed.json()["message"]
    assert httpx.get(service.url + "/health", timeout=10).json()["status"] == "ok"


def test_api_key_is_required(service):
    body = {"query": "q1", "documents": ["d1", "d2"]}
    assert httpx.post(service.url + "/v1/rerank", json=body, timeout=30).status_code == 401
    wrong = httpx.post(service.url + "/v1/rerank", json=body, headers={"Authorization": "Bearer nope"},
                       timeout=30)
    assert wrong.status_code == 401 and "API key" in wrong.json()["message"]
    assert httpx.get(service.url + "/health", timeout=10).status_code == 200  # open


def test_sigterm_during_load_answers_every_accepted_request(tmp_path):
    from prp.cache import DiskCache

    cache = tmp_path / "cache"
    svc = Service(tmp_path, "--batch-size", "16", "--simulated-delay", "0.03", "--cache", str(cache))

    async def load():
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=200)) as client:
            async def one(i):
                docs = [f"d{j}" for j in range(40)]
                random.Random(i).shuffle(docs)
                try:
                    body = {"query": f"q{i % 8}", "documents": [{"text": d, "id": d} for d in docs],
                            "top_n": 5}
                    r = await client.post(svc.url + "/v1/rerank", json=body)
                except httpx.TransportError as exc:
                    return ("refused", exc, docs)
                return (r.status_code, r, docs)

            tasks = [asyncio.create_task(one(i)) for i in range(40)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until every request is accepted (queued or in flight)
                metrics = (await client.get(svc.url + "/metrics")).text
                held = sum(float(line.split()[-1]) for line in metrics.splitlines()
                           if line.startswith(("prp_in_flight ", "prp_queue_depth ")))
                done = sum(task.done() for task in tasks)
                if held + done >= 40:
                    break
                await asyncio.sleep(0.05)
            svc.proc.send_signal(signal.SIGTERM)
            pending = sum(not task.done() for task in tasks)
            await asyncio.sleep(0.2)
            late = await one(99)
            return await asyncio.gather(*tasks), late, pending

    answers, late, pending = asyncio.run(load())
    assert pending > 0  # the signal came while requests were in flight
    assert svc.stop() == 0
    assert all(status in (200, 503) for status, _, _ in answers), [a[:2] for a in answers]
    assert late[0] in (503, "refused")
    ok = [(r.json(), i, docs) for i, (status, r, docs) in enumerate(answers) if status == 200]
    assert ok  # the drained requests were answered in full
    for body, i, docs in ok:
        assert [svc.qrels[f"q{i % 8}"][docs[r["index"]]] for r in body["results"]] == best(
            svc.qrels, f"q{i % 8}", docs, 5)
    disk = DiskCache(cache)
    assert len(disk) == sum(body["usage"]["prompts"] for body, _, _ in ok) > 0  # nothing judged is lost
    disk.close()


def test_unreadable_answers_are_reported_not_silent():
    """An answer the judge gave in no usable form is retried, then counted as a tie: the response's
    usage and /metrics say how many, so it never passes as a decision unseen."""
    from prp.oracles import ScoresOracle
    from prp.reranker import Reranker
    from prp.serve.app import create_app
    from prp.types import BatchResult, Judgment

    class Garbled(ScoresOracle):
        """Answers prompts whose first passage is d3 with an unreadable judgment."""

        async def judge(self, prompts):
            result = await super().judge(prompts)
            judgments = [Judgment(None, None, parsed=False) if p.first_id == "3" else j
                         for p, j in zip(prompts, result.judgments, strict=True)]
            return BatchResult(judgments, result.prompt_tokens, result.completion_tokens)

    scores = {str(i): float(i) for i in range(6)}
    app = create_app(Reranker(Garbled(scores), batch_size=8, cache=False), linger_ms=0)

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://prp") as client:
                answer = await client.post("/v1/rerank", json={"query": "q", "documents": [  # ids: indexes
                    str(i) for i in range(6)], "top_n": 3, "orders": "one"})
                return answer, (await client.get("/metrics")).text

    answer, metrics = asyncio.run(main())
    assert answer.status_code == 200
    unparsed = answer.json()["usage"]["unparsed"]
    assert unparsed >= 1
    assert f"prp_unparsed_total {float(unparsed)}" in metrics


@pytest.mark.parametrize("flags, message", [
    (["--port", "70000"], "--port must be in 0..65535"),
    (["--linger-ms", "-5"], "--linger-ms must be >= 0"),
    (["--drain-seconds", "-1"], "--drain-seconds must be >= 0"),
    (["--max-documents", "0"], "--max-documents must be an integer >= 1"),
    (["--host", "999.1.1.1", "--port", "0"], "cannot serve on 999.1.1.1:0"),
])
def test_bad_service_flags_are_bad_input(tmp_path, capsys, flags, message):
    from prp.cli import main

    qrels = tmp_path / "qrels.txt"
    write_qrels(qrels)
    assert main(["serve", "--judge", "perfect", "--qrels", str(qrels), *flags]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_log_level_is_refused_by_argparse(capsys):
    from prp.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--judge", "perfect", "--log-level", "bogus"])
    assert exit_.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err


def test_routing_errors_are_json_messages(service):
    wrong_method = httpx.get(service.url + "/v1/rerank", headers={"X-API-Key": KEY}, timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()["message"] == (
        "GET /v1/rerank: Method Not Allowed")
    assert wrong_method.headers["allow"] == "POST"
    missing = httpx.post(service.url + "/v3/rerank", json={}, headers={"X-API-Key": KEY}, timeout=10)
    assert missing.status_code == 404 and "Not Found" in missing.json()["message"]
