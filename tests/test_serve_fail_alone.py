"""``prp serve`` and a prompt at fault: 8 concurrent requests, one of them holding a prompt the
judge raises on. The others answer 200 with their own ranking; /metrics counts the splits."""

from __future__ import annotations

import asyncio

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")


def test_a_poisoned_request_fails_alone_and_the_splits_are_exported():
    from prp.oracles import ScoresOracle
    from prp.reranker import Reranker
    from prp.serve.app import create_app

    scores = {str(i): float(i) for i in range(6)}  # the judge reads ids: a document's index

    class Poisoned(ScoresOracle):
        async def judge(self, prompts):
            if any(p.qid == "query 3" and (p.first_id, p.second_id) == ("1", "0") for p in prompts):
                raise ValueError("cannot judge this pair")
            return await super().judge(prompts)

    app = create_app(Reranker(Poisoned(scores), batch_size=8, cache=False), linger_ms=50)
    docs = [f"passage {i}" for i in range(6)]

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://prp") as client:
                answers = await asyncio.gather(*(client.post("/v1/rerank", json={
                    "query": f"query {n}", "documents": docs, "sorter": "allpair"}) for n in range(8)))
                return answers, (await client.get("/metrics")).text

    answers, metrics = asyncio.run(main())
    assert [a.status_code == 200 for a in answers] == [n != 3 for n in range(8)]
    assert answers[3].status_code == 422 and "query 'query 3'" in answers[3].text
    for answer in answers[:3] + answers[4:]:
        assert [r["index"] for r in answer.json()["results"]] == [5, 4, 3, 2, 1, 0]
    splits = [line for line in metrics.splitlines() if line.startswith("prp_batch_splits_total")]
    assert splits and float(splits[0].split()[-1]) >= 1
