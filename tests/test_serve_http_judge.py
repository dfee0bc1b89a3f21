"""``prp serve`` with the OpenAI-compatible judge, under concurrent load, at small scale: the load
path of bench/serve_load.py --judge openai, bounded to seconds.

The judge is tests/http_fault_server.py's FakeJudge on a real loopback socket, grading each
(query, doc id) by a hidden table and taking ``DELAY`` seconds a judging request (an LLM's
forward pass), so that requests arriving together share HTTP requests. The service runs as a
subprocess (``python -m prp.cli serve --judge openai``), as it is deployed. Lone requests (one
at a time) are the reference for the concurrent ones.
"""

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
pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http] (asyncio-throttle)")

from http_fault_server import FakeJudge, FaultServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUERIES, DOCS, TOP_N, B = 12, 24, 5, 32
DELAY = 0.03  # seconds a judging HTTP request takes
CONCURRENT = range(6, 12)  # queries sent together; queries 0-5 go one at a time


def _table() -> dict[str, dict[str, float]]:
    """Relevance by query text and doc id; the same ids are graded apart in each query."""
    rng = random.Random(11)
    return {f"query {q}": {f"d{j}": rng.random() for j in range(DOCS)} for q in range(QUERIES)}


TABLE = _table()


def _body(q: int) -> dict:
    ids = list(TABLE[f"query {q}"])
    random.Random(q).shuffle(ids)
    return {"query": f"query {q}", "top_n": TOP_N, "sorter": "tournament",
            "documents": [f"doc {d} is a passage about topic {q}" for d in ids], "_ids": ids}



@pytest.fixture(scope="module")
def judged_service(tmp_path_factory):
    """(service URL, the FakeJudge behind it)."""
    judge = FakeJudge(lambda query, doc_id: TABLE[query][doc_id], delay=DELAY, tokenizer=None)
    log_path = tmp_path_factory.mktemp("serve-http") / "serve.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FaultServer(judge) as server, open(log_path, "w") as log:
        command = [sys.executable, "-m", "prp.cli", "serve", "--judge", "openai:tokenizer=chars",
                   "--base-url", server.url + "/v1", "--model", "fake-judge",
                   "--port", str(port), "--batch-size", str(B),
                   "--cache", "none"]
        proc = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"prp serve exited: {log_path.read_text()}")
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("prp serve did not come up in 90 s")
                time.sleep(0.2)
            yield url, judge
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(timeout=60) == 0
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise


async def _send(url: str, queries: range, together: bool) -> list[tuple[dict, httpx.Response]]:
    async with httpx.AsyncClient(timeout=60) as client:
        async def one(q: int) -> tuple[dict, httpx.Response]:
            body = _body(q)
            wire = {k: v for k, v in body.items() if k != "_ids"}
            return body, await client.post(url + "/v1/rerank", json=wire)

        if together:
            return list(await asyncio.gather(*(one(q) for q in queries)))
        return [await one(q) for q in queries]


def _phase(url: str, judge: FakeJudge, queries: range, together: bool) -> tuple[list, int, int]:
    """(answers, judging HTTP requests, prompts in them) of sending ``queries``."""
    before = (judge.judge_count, judge.prompt_count)
    answers = asyncio.run(_send(url, queries, together))
    return answers, judge.judge_count - before[0], judge.prompt_count - before[1]


def test_concurrent_requests_share_judge_requests_and_rank_as_sorted(judged_service):
    url, judge = judged_service
    lone, lone_http, lone_prompts = _phase(url, judge, range(0, 6), together=False)
    shared, shared_http, shared_prompts = _phase(url, judge, CONCURRENT, together=True)
    for answers, http, prompts in ((lone, lone_http, lone_prompts), (shared, shared_http, shared_prompts)):
        assert [r.status_code for _, r in answers] == [200] * len(answers), [r.text for _, r in answers]
        for body, response in answers:
            grades = TABLE[body["query"]]
            top = [body["_ids"][r["index"]] for r in response.json()["results"]]
            assert top == sorted(grades, key=grades.__getitem__, reverse=True)[:TOP_N]
        usage = [r.json()["usage"] for _, r in answers]
        assert sum(u["prompts"] for u in usage) == prompts > 0  # every prompt reached the judge once
        # one inference is one HTTP request (lists of prompts, no retries); the requests' shares add up
        assert sum(u["inferences"] for u in usage) == pytest.approx(http, abs=1e-3)
    per_lone, per_shared = lone_http / len(lone), shared_http / len(shared)
    assert per_shared < per_lone, (per_shared, per_lone)
    assert shared_prompts / shared_http > lone_prompts / lone_http  # fuller batches


def test_a_lone_surrogate_fails_alone_among_concurrent_requests(judged_service):
    """One request carrying ``"\\ud800"`` among 8 sent together: it gets a 422 naming the document
    at admission, and the 7 others (which would have shared its judging request) are ranked."""
    url, _ = judged_service
    bad = 3

    async def send() -> list[tuple[dict, httpx.Response]]:
        async with httpx.AsyncClient(timeout=60) as client:
            async def one(q: int) -> tuple[dict, httpx.Response]:
                body = _body(q)
                wire = {k: v for k, v in body.items() if k != "_ids"}
                if q == bad:
                    wire["documents"] = [*wire["documents"][:5], "lone \ud800 half", *wire["documents"][6:]]
                    wire["return_documents"] = True
                content = json.dumps(wire)  # ASCII JSON: the lone surrogate goes as the escape \ud800
                return body, await client.post(url + "/v1/rerank", content=content,
                                               headers={"Content-Type": "application/json"})

            return list(await asyncio.gather(*(one(q) for q in range(8))))

    answers = asyncio.run(send())
    statuses = [r.status_code for _, r in answers]
    assert statuses == [422 if q == bad else 200 for q in range(8)], [r.text for _, r in answers]
    assert "documents[5]: not valid Unicode text" in answers[bad][1].json()["message"]
    for q, (body, response) in enumerate(answers):
        if q != bad:
            grades = TABLE[body["query"]]
            top = [body["_ids"][r["index"]] for r in response.json()["results"]]
            assert top == sorted(grades, key=grades.__getitem__, reverse=True)[:TOP_N]


def test_the_same_text_twice_is_ranked_by_a_text_judge(judged_service):
    url, _ = judged_service
    body = _body(0)
    docs = [*body["documents"][:6], body["documents"][2]]  # documents[6] repeats documents[2]
    answer = httpx.post(url + "/v1/rerank", json={"query": body["query"], "documents": docs}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert sorted(r["index"] for r in answer.json()["results"]) == list(range(7))
