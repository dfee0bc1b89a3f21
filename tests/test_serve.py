"""``prp serve`` on loopback, driven by real clients: the cohere SDK and httpx.

The service runs as a subprocess (``python -m prp.cli serve``) with the simulated perfect judge,
which reads the query text as its qid and each document's text as its doc id."""

from __future__ import annotations

import asyncio
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
    rng = random.Random(7)
    qrels = {f"q{q}": {f"d{d}": rng.randrange(4) for d in range(docs)} for q in range(queries)}
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
                  "--max-document-chars", "100", env={"PRP_API_KEYS": f"other,{KEY}"})
    yield svc
    assert svc.stop() == 0


def test_cohere_sdk_reranks_through_the_service(service):
    cohere = pytest.importorskip("cohere")
    docs = [f"d{i}" for i in range(30)]
    random.Random(1).shuffle(docs)
    co = cohere.Client(api_key=KEY, base_url=service.url)
    response = co.rerank(model="prp", query="q3", documents=docs, top_n=5, return_documents=True)
    assert len(response.results) == 5
    grades = [service.qrels["q3"][docs[r.index]] for r in response.results]
    assert grades == best(service.qrels, "q3", docs, 5)
    assert [r.document.text for r in response.results] == [docs[r.index] for r in response.results]
    scores = [r.relevance_score for r in response.results]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
    v2 = cohere.ClientV2(api_key=KEY, base_url=service.url).rerank(model="prp", query="q4", documents=docs,
                                                                    top_n=3)
    assert [service.qrels["q4"][docs[r.index]] for r in v2.results] == best(service.qrels, "q4", docs, 3)


def test_usage_extras_health_and_metrics(service):
    headers = {"Authorization": f"Bearer {KEY}"}
    docs = [{"text": f"d{i}"} for i in range(20)]
    body = {"model": "prp", "query": "q5", "documents": docs, "top_n": 4, "sorter": "heapsort",
            "orders": "one"}
    first = httpx.post(service.url + "/rerank", json=body, headers=headers, timeout=60).json()
    again = httpx.post(service.url + "/v1/rerank", json=body, headers=headers, timeout=60).json()
    assert [r["index"] for r in first["results"]] == [r["index"] for r in again["results"]]
    assert [service.qrels["q5"][f"d{r['index']}"] for r in first["results"]] == best(
        service.qrels, "q5", [d["text"] for d in docs], 4)
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


@pytest.mark.parametrize("body, status, words", [
    ({"documents": ["d1"]}, 422, "query"),
    ({"query": "q1", "documents": "d1"}, 422, "documents"),
    ({"query": "q1", "documents": ["d1", "d2"], "top_n": 0}, 422, "top_n"),
    ({"query": "q1", "documents": [f"d{i}" for i in range(51)]}, 413, "51 documents"),
    ({"query": "q1", "documents": ["d1", "x" * 101]}, 413, "documents[1]"),
    ({"query": "q1", "documents": ["d1", "d2"], "sorter": "nosuchsort"}, 422, "nosuchsort"),
    ({"query": "q1", "documents": ["d1", "d2"], "orders": "sideways"}, 422, "orders"),
    ({"query": "q1", "documents": ["d1", "d1"]}, 422, "duplicate"),
])
def test_bad_input_is_a_clear_4xx(service, body, status, words):
    response = httpx.post(service.url + "/v1/rerank", json=body, headers={"X-API-Key": KEY}, timeout=30)
    assert response.status_code == status, response.text
    assert words in response.text


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
                    body = {"query": f"q{i % 8}", "documents": docs, "top_n": 5}
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
                answer = await client.post("/v1/rerank", json={"query": "q", "documents": [  # ids: the texts
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
