"""The service's adaptive linger: requests received together wait for each other and share the
judge's batches; a lone request goes at once, however long ``linger_ms`` is."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from conftest import CountingOracle  # noqa: E402

from prp import Reranker, ScoresOracle  # noqa: E402
from prp.serve.app import create_app  # noqa: E402

SCORES = {f"d{i}": float((i * 7) % 20) for i in range(20)}
DOCS = [{"id": d, "text": f"text of {d}"} for d in SCORES]  # the judge reads ids
TEN_MINUTES = 600_000.0


def serve(oracle, bodies: list[dict]) -> list[httpx.Response]:
    """Post every body at once to an app lingering up to ten minutes (at most a minute here)."""
    app = create_app(Reranker(oracle, batch_size=64, cache=False), linger_ms=TEN_MINUTES)

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://prp") as client:
                return await asyncio.gather(*(client.post("/v1/rerank", json=b) for b in bodies))

    return asyncio.run(asyncio.wait_for(main(), 60))


def body(n: int) -> dict:
    return {"query": f"query {n}", "documents": DOCS, "top_n": 5}


def test_requests_received_together_share_batches():
    together = CountingOracle(ScoresOracle(SCORES))
    answers = serve(together, [body(n) for n in range(6)])
    lone = CountingOracle(ScoresOracle(SCORES))
    alone = [serve(lone, [body(n)])[0] for n in range(6)]
    best = sorted(range(20), key=lambda i: -SCORES[DOCS[i]["id"]])[:5]
    for answer, single in zip(answers, alone, strict=True):
        assert answer.status_code == single.status_code == 200
        assert [r["index"] for r in answer.json()["results"]] == best
        assert answer.json()["results"] == single.json()["results"]
    assert sum(together.batches) == sum(lone.batches)  # the same prompts...
    assert len(together.batches) < len(lone.batches) / 2  # ...in shared batches


def test_a_lone_request_and_a_refused_one_do_not_wait():
    oracle = CountingOracle(ScoresOracle(SCORES))
    [ok] = serve(oracle, [body(0)])  # would take ten minutes if it lingered
    refused, fine = serve(oracle, [{"query": "q", "documents": "not a list"}, body(1)])
    assert ok.status_code == 200 and fine.status_code == 200 and refused.status_code == 422
