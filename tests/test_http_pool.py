"""The HTTP backend's endpoint pool under faults, on loopback servers (tests/http_fault_server.py).

Every run ranks the same synthetic queries through three endpoints. The fault-free run over
three healthy endpoints is the reference: each faulty pool must give the same rankings, with a
bounded number of requests. (Wall-time ratios are measured by bench/pool_faults.py, not here.)
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest

httpx = pytest.importorskip("httpx", reason="the HTTP backend needs prp[http] (httpx)")
pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http] (asyncio-throttle)")

from conftest import expected_order  # noqa: E402
from http_fault_server import (  # noqa: E402
    DROP,
    Endpoints,
    FakeJudge,
    FaultServer,
    HangServer,
    refused_url,
    status,
)

from prp import BackendError, Prompt, Reranker  # noqa: E402
from prp.cache import MemoryCache  # noqa: E402
from prp.oracles.http import OpenAIBackend  # noqa: E402
from prp.oracles.pool import Pool  # noqa: E402

QUERIES, DOCS, K, B, CONCURRENCY = 6, 16, 4, 4, 4
DELAY = 0.01  # seconds each answer takes


def _data(seed: int = 0):
    rng = random.Random(seed)
    relevance, requests = {}, []
    for q in range(QUERIES):
        ids = [f"q{q}d{i}" for i in range(DOCS)]
        for d in ids:
            relevance[d] = rng.random()
        requests.append({"query": f"query {q}", "docs": [f"doc {d} text {i}" for i, d in enumerate(ids)],
                         "doc_ids": ids, "qid": f"q{q}"})
    return relevance, requests


RELEVANCE, REQUESTS = _data()
EXPECTED = [expected_order(r["doc_ids"], RELEVANCE, K) for r in REQUESTS]


def _backend(urls: list[str], **kw) -> OpenAIBackend:
    kw = {"timeout": 10.0, "backoff": 0.05, "hedge_min": 0.1, "seed": 0, "tokenizer": "chars", **kw}
    return OpenAIBackend("fake-model", urls, **kw)


def _rank(backend: OpenAIBackend, cache: MemoryCache | None = None):
    reranker = Reranker(backend, sorter="quicksort", k=K, batch_size=B, concurrency=CONCURRENCY,
                        cache=cache if cache is not None else MemoryCache())
    results = reranker.rank_many(REQUESTS)
    return [r.doc_ids for r in results], results


@pytest.fixture(scope="module")
def fault_free():
    with Endpoints(["ok", "ok", "ok"], RELEVANCE, delay=DELAY) as pool:
        backend = _backend(pool.urls)
        rankings, results = _rank(backend)
    assert rankings == EXPECTED
    return rankings, backend.requests_made, sum(r.cost.inferences for r in results)


def test_fault_free_pool(fault_free):
    rankings, requests, inferences = fault_free
    # one request per inference, but for a copy of one that a loaded machine made slow
    assert inferences <= requests <= 1.1 * inferences


@pytest.mark.parametrize("bad", ["dead", "hang", "flap"])
def test_one_bad_endpoint_in_three(fault_free, bad):
    with Endpoints(["ok", bad, "ok"], RELEVANCE, delay=DELAY, flap_period=0.15) as pool:
        backend = _backend(pool.urls)
        rankings, _ = _rank(backend)
    assert rankings == fault_free[0]
    stats = backend.stats()
    bad_endpoint = stats["endpoints"][1]
    good = [stats["endpoints"][0], stats["endpoints"][2]]
    assert all(e["failures"] == e["hedges_lost"] for e in good)  # at most slow, never broken
    extra = backend.requests_made - fault_free[2]  # failed requests and copies
    assert bad_endpoint["failures"] <= extra <= 0.35 * fault_free[2] + 5, stats  # the bad one is skipped
    if bad == "hang":
        assert stats["hedges"] >= 1 and bad_endpoint["hedges_lost"] >= 1
    else:
        assert bad_endpoint["failures"] >= 1
    if bad != "flap":  # a flapping endpoint is healthy half the time: its share depends on timing
        assert bad_endpoint["requests"] < min(e["requests"] for e in good)


def test_dead_hanging_and_flapping_together(fault_free):
    with Endpoints(["dead", "hang", "flap", "ok"], RELEVANCE, delay=DELAY, flap_period=0.15) as pool:
        backend = _backend(pool.urls)
        rankings, _ = _rank(backend)
    assert rankings == fault_free[0]
    assert backend.requests_made <= 1.6 * fault_free[2] + 10, backend.stats()


def test_a_dead_pool_fails_fast_at_concurrency_4():
    """Every endpoint refused: the first batch to spend its attempts ends the step at once."""
    backend = _backend([refused_url(), refused_url()], max_retries=4)
    with pytest.raises(BackendError, match="failed after 5 attempt") as err:
        _rank(backend)
    assert "endpoints:" in str(err.value) and "down" in str(err.value)
    # not every batch of the step retried to exhaustion: at most one batch's budget per batch sent
    assert backend.requests_made <= 5 * CONCURRENCY


def test_fast_failure_keeps_what_finished():
    """One batch fails for good while others are on a slow server: the step raises at once,
    the finished batches are cached and a rerun pays only for the rest."""
    judge = FakeJudge(RELEVANCE, [status(401, body='{"error": "bad key"}')], delay=0.0)
    with FaultServer(judge) as server:
        backend = _backend([server.url], max_requests_in_flight=1)
        cache = MemoryCache()
        with pytest.raises(BackendError, match="HTTP 401"):
            _rank(backend, cache)
        sent = len(judge.requests)  # the one refused, and perhaps one sent as its answer came in
        assert sent <= 2 and len(cache) in (0, B * (sent - 1))  # the others were cancelled unsent
        rankings, _ = _rank(backend, cache)
    assert rankings == EXPECTED


@pytest.mark.parametrize("liveness_after", [2.0, None], ids=["liveness-check", "hedge-only"])
def test_a_hanging_endpoint_does_not_hold_a_batch_for_the_timeout(liveness_after):
    """Each request the hanging endpoint gets is cut by its liveness check (after 2 s, no
    answer to GET /health) or, with the check off, answered by a copy (after 5 s)."""
    judge = FakeJudge(RELEVANCE)
    with HangServer() as hang, FaultServer(judge) as ok:
        backend = _backend([hang.url, ok.url], timeout=30.0,  # a cold hedge after 30 / 6 = 5 s
                           liveness_after=liveness_after)
        prompts = [Prompt("q", "query", a, f"doc {a}", b, f"doc {b}")
                   for a, b in [("q0d0", "q0d1"), ("q0d2", "q0d3")]]
        for _ in range(4):
            asyncio.run(backend.judge(prompts))
    stats = backend.stats()
    hung = stats["endpoints"][0]
    assert hung["successes"] == 0 and hung["state"] != "healthy"
    # every request it got was cut or answered by a copy, not left to the 30 s timeout
    assert hung["failures"] == hung["hedges_lost"] + stats["hung"] == hung["requests"] >= 1
    if liveness_after is None:
        assert stats["hedges"] >= 1 and stats["liveness_checks"] == stats["hung"] == 0
    else:
        assert stats["hung"] >= 1 and stats["liveness_checks"] >= 1


def test_capacity_spreads_the_load():
    """A server twice as slow carries fewer of the requests in flight."""
    fast, slow = FakeJudge(RELEVANCE, delay=0.02), FakeJudge(RELEVANCE, delay=0.08)
    with FaultServer(fast) as one, FaultServer(slow) as two:
        backend = _backend([one.url, two.url], batch_requests=False, max_requests_in_flight=6,
                           hedge_factor=100.0, parallel_singles=True)
        prompts = [Prompt("q", "query", f"q0d{i}", f"doc q0d{i}", f"q0d{i + 1}", f"doc q0d{i + 1}")
                   for i in range(15)]
        for _ in range(4):
            asyncio.run(backend.judge(prompts))
    assert len(fast.requests) + len(slow.requests) == 60
    assert len(fast.requests) > 1.5 * len(slow.requests)


def test_transient_drop_retries_elsewhere_without_waiting():
    judge_a, judge_b = FakeJudge(RELEVANCE, [DROP]), FakeJudge(RELEVANCE)
    with FaultServer(judge_a) as one, FaultServer(judge_b) as two:
        backend = _backend([one.url, two.url], backoff=5.0)  # a retry on the same server would wait
        prompt = Prompt("q", "query", "q0d0", "doc q0d0", "q0d1", "doc q0d1")
        asyncio.run(backend.judge([prompt]))
    assert (len(judge_a.requests), len(judge_b.requests)) == (1, 1) and backend.retries == 1
    assert backend.stats()["endpoints"][0]["state"] in ("down", "probing")  # out, and not waited for


# -- the pool alone ---------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pool_backoff_probe_and_recovery():
    clock = Clock()
    pool = Pool(["a", "b"], backoff=1.0, rng=random.Random(0), clock=clock)
    a, b = pool.endpoints
    start = pool.started(a)
    pool.failed(a, start, "refused")
    assert a.state(clock.now) in ("down", "probing") and pool.pick() is b
    clock.now = a.down_until + 0.01  # backoff over: one probe at a time
    assert a.available(clock.now)
    probe = pool.started(a)
    assert not a.available(clock.now)  # a second probe waits for the first
    first_pause = a.down_until - a.down_since
    pool.failed(a, probe, "refused again")
    assert a.streak == 2 and a.down_until - a.down_since <= 2.0 and first_pause <= 1.0
    clock.now = a.down_until + 0.01
    probe = pool.started(a)
    clock.now += 0.2
    pool.succeeded(a, probe)
    assert a.state(clock.now) == "healthy" and a.streak == 0 and a.latency == pytest.approx(0.2)


def test_failures_of_requests_already_in_flight_do_not_lengthen_the_backoff():
    clock = Clock()
    pool = Pool(["a"], backoff=1.0, rng=random.Random(1), clock=clock)
    (a,) = pool.endpoints
    starts = [pool.started(a) for _ in range(4)]
    clock.now += 0.1
    for start in starts:
        pool.failed(a, start, "refused")
    assert a.streak == 1 and a.failures == 4


def test_retry_after_sets_the_pause():
    clock = Clock()
    pool = Pool(["a"], clock=clock)
    (a,) = pool.endpoints
    pool.failed(a, pool.started(a), "HTTP 429", retry_after=2.5)
    assert a.down_until - clock.now == pytest.approx(2.5)
    assert pool.pause(3, retry_after=99) == 30.0


def test_hedge_delay_follows_the_slowest_answering_endpoint():
    clock = Clock()
    pool = Pool(["a", "b"], hedge_factor=4.0, hedge_min=0.5, clock=clock)
    a, b = pool.endpoints
    assert pool.hedge_delay() is None  # nothing answered yet, and no cold hedge set
    assert Pool(["a"], cold_hedge=3.0).hedge_delay() == 3.0
    start = pool.started(a)
    clock.now += 0.3
    pool.succeeded(a, start)
    assert pool.hedge_delay() == pytest.approx(1.2)
    start = pool.started(b)
    clock.now += 0.01
    pool.succeeded(b, start)
    assert pool.hedge_delay() == pytest.approx(1.2)


# -- what the command line shows ----------------------------------------------------------------

def test_cli_summary_shows_http_requests_and_endpoints(tmp_path, capsys):
    from prp.cli import main

    path = tmp_path / "candidates.jsonl"
    with path.open("w") as fh:
        for r in REQUESTS[:2]:
            cands = [{"docid": d, "text": t} for d, t in zip(r["doc_ids"], r["docs"], strict=True)]
            fh.write(json.dumps({"qid": r["qid"], "query": r["query"], "candidates": cands}) + "\n")
    with Endpoints(["ok", "dead"], RELEVANCE) as pool:
        argv = ["rerank", "--input", str(path), "--output", str(tmp_path / "out.trec"), "--judge",
                "openai:backoff=0.05,seed=0", "--model", "fake", "--k", str(K), "--batch-size", str(B),
                "--quiet"]
        for url in pool.urls:
            argv += ["--base-url", url]
        assert main(argv) == 0
        text = capsys.readouterr().out
        assert main(argv + ["--format", "json"]) == 0
        summary = json.loads(capsys.readouterr().out)
    http = summary["http"]
    inferences = summary["cost"]["inferences"]
    assert http["judge_requests"] >= inferences and http["tokenizer_requests"] > 0
    dead = http["endpoints"][1]
    assert dead["failures"] == dead["requests"] >= 1 and http["endpoints"][0]["failures"] == 0
    first_run = text.splitlines()
    line = next(x for x in first_run if x.startswith("http: "))
    assert "requests (" in line and "judging" in line and "tokenizer" in line
    assert any(pool.urls[1] in x and "failures" in x for x in first_run)


def test_an_endpoint_that_comes_back_is_probed_back_in():
    judges = [FakeJudge(RELEVANCE), FakeJudge(RELEVANCE)]
    prompt = Prompt("q", "query", "q0d0", "doc q0d0", "q0d1", "doc q0d1")
    with FaultServer(judges[0]) as one, FaultServer(judges[1]) as two:
        backend = _backend([one.url, two.url], backoff=0.05, batch_requests=False,
                           max_requests_in_flight=2)
        one.stop()
        for _ in range(5):
            asyncio.run(backend.judge([prompt] * 4))
        gone = backend.stats()["endpoints"][0]
        assert gone["failures"] >= 1 and gone["successes"] == 0 and gone["state"] != "healthy"
        one.start()
        time.sleep(max(0.0, backend.pool.endpoints[0].down_until - time.monotonic()) + 0.05)  # backoff over
        for _ in range(5):
            asyncio.run(backend.judge([prompt] * 4))
    back = backend.stats()["endpoints"][0]
    assert back["state"] == "healthy" and back["successes"] >= 1 and len(judges[0].requests) >= 1
