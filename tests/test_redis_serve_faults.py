"""Two ``prp serve`` replicas sharing a real ``redis-server`` that is killed and started again on
the same port, driven by concurrent real clients: no request fails for the cache, ``/health``
says ``degraded`` (200) while Redis is away, sharing resumes after it is back, and ``/metrics``
counts the cache errors. Skipped when redis-server is not installed."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time

import pytest
from conftest import free_port

httpx = pytest.importorskip("httpx")
pytest.importorskip("redis")
pytest.importorskip("fastapi")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (apt-get install redis-server)", allow_module_level=True)

from redis_server import RedisServer  # noqa: E402
from test_serve import ROOT, Service  # noqa: E402

RECOVERY_SECONDS = 5  # the bound: sharing resumes within 5 s of Redis coming back


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redis-serve")
    server = RedisServer(tmp).start()
    replicas = []
    try:
        for _ in range(2):
            replicas.append(Service(tmp, "--batch-size", "16", "--simulated-delay", "0.02",
                                    "--cache", server.url))
        yield server, replicas
    finally:
        codes = [replica.stop() for replica in replicas]
        server.stop()
    assert codes == [0, 0]


@pytest.fixture
def up(cluster):
    """Redis running and every replica's cache back to ok before the test."""
    server, replicas = cluster
    if not server.running:
        server.start()
    for replica in replicas:
        wait_for(replica, "ok")
    server.client().flushdb()
    return cluster


def wait_for(replica: Service, status: str) -> float:
    """Poll ``/health`` until it says ``status``; seconds waited (at most RECOVERY_SECONDS)."""
    started = time.monotonic()
    while True:
        health = httpx.get(replica.url + "/health", timeout=5)
        assert health.status_code == 200
        if health.json()["status"] == status:
            return time.monotonic() - started
        assert time.monotonic() - started < RECOVERY_SECONDS, health.json()
        time.sleep(0.02)


def metric(replica: Service, name: str) -> float:
    text = httpx.get(replica.url + "/metrics", timeout=5).text
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def rerank(replica: Service, query: str, docs: list[str]) -> dict:
    response = httpx.post(replica.url + "/v1/rerank", json={"query": query, "documents": docs, "top_n": 5},
                          timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_replicas_serve_through_an_outage_and_share_again_after_it(up):
    server, (a, b) = up
    docs = [f"d{i}" for i in range(40)]
    server.kill()
    during = rerank(a, "q1", docs)  # judge + memory tier: the dead cache fails nothing
    assert during["usage"]["prompts"] > 0
    health = httpx.get(a.url + "/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert server.url in health.json()["reason"] and "queued for write-back" in health.json()["reason"]
    assert metric(a, "prp_cache_errors_total") >= 1 and metric(a, "prp_cache_up") == 0
    again = rerank(a, "q1", docs)  # the memory tier answers the same query
    assert again["usage"]["prompts"] == 0 and again["results"] == during["results"]
    server.start()  # empty: what A judged meanwhile is in A's write-back queue
    wait_for(a, "ok")  # within RECOVERY_SECONDS
    assert metric(a, "prp_cache_up") == 1
    shared = rerank(b, "q1", docs)
    assert shared["usage"]["prompts"] == 0 and shared["usage"]["cache_hits"] > 0
    assert shared["results"] == during["results"]


def test_killing_redis_under_load_fails_no_request(up):
    server, replicas = up
    rng = random.Random(5)
    bodies = [{"query": f"q{i % 8}", "documents": rng.sample([f"d{d}" for d in range(40)], 30), "top_n": 5}
              for i in range(20)]
    errors_before = sum(metric(r, "prp_cache_errors_total") for r in replicas)

    async def load() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [asyncio.ensure_future(client.post(replicas[i % 2].url + "/v1/rerank", json=body))
                     for i, body in enumerate(bodies)]
            await asyncio.sleep(0.3)
            assert not all(call.done() for call in calls)  # the kill lands under load
            await asyncio.get_running_loop().run_in_executor(None, server.kill)
            return [(await call).status_code for call in calls]

    statuses = asyncio.run(load())
    assert statuses == [200] * 20
    assert sum(metric(r, "prp_cache_errors_total") for r in replicas) > errors_before  # the kill was felt
    assert all(rerank(r, "q3", [f"d{d}" for d in range(40)]) for r in replicas)  # still serving


def test_serve_refuses_an_unreachable_redis_at_start(tmp_path):
    (tmp_path / "qrels.txt").write_text("q0 0 d0 1\n")
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run([sys.executable, "-m", "prp.cli", "serve", "--judge", "perfect", "--qrels",
                           str(tmp_path / "qrels.txt"), "--port", str(free_port()), "--cache", url],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 2
    assert f"prp serve: error: cannot connect to the judgment cache at {url}" in done.stderr
