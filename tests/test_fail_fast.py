"""Fail fast (issue 19): a judge that is down is reported in seconds, by the endpoint pool's
verdict, through the library, the command line and the service; a request's deadline bounds
its HTTP attempts. Real loopback processes only (tests/http_fault_server.py): a server that
answers 503 to everything, a refused port, a server that accepts and never answers.

The default suite runs each row at concurrency 4 with a give-up window of 1 s (and, where a
hang is not the point, short liveness checks), so it stays fast; the same rows at the
defaults (a 5 s window, liveness checks after 2 s of silence with a 2 s timeout) and at
concurrency 1, 4 and 16 are marked slow. bench/time_to_error.py measures up to concurrency 64.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the HTTP backend needs prp[http] (httpx)")
pytest.importorskip("asyncio_throttle", reason="the HTTP backend needs prp[http] (asyncio-throttle)")

from conftest import expected_order, free_port  # noqa: E402
from http_fault_server import FakeJudge, FaultServer, HangServer, refused_url, status  # noqa: E402

from prp import BackendError, Prompt, Reranker  # noqa: E402
from prp.cache import MemoryCache  # noqa: E402
from prp.engine import Engine  # noqa: E402
from prp.oracles.http import OpenAIBackend  # noqa: E402
from prp.oracles.pool import JudgeDown, Pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOUND = 15.0  # seconds: the bound on the time to the error
FAST = {"give_up_after": 1.0, "liveness_after": 0.5, "liveness_timeout": 0.5}  # the default suite's
QUERIES, DOCS, B = 4, 10, 8


def _data():
    rng = random.Random(3)
    relevance, requests = {}, []
    for q in range(QUERIES):
        ids = [f"q{q}d{i}" for i in range(DOCS)]
        relevance.update((d, rng.random()) for d in ids)
        requests.append({"qid": f"q{q}", "query": f"query {q}", "docs": [f"doc {d} text" for d in ids],
                         "doc_ids": ids})
    return relevance, requests


RELEVANCE, REQUESTS = _data()


@contextlib.contextmanager
def fault(kind: str):
    """The base URL of a loopback judge showing ``kind``: 503, refused or hang."""
    if kind == "503":
        with FaultServer(FakeJudge(RELEVANCE, always=status(503))) as server:
            yield server.url
    elif kind == "hang":
        with HangServer() as hang:
            yield hang.url
    else:
        yield refused_url()


def _rank_many(url: str, concurrency: int, **options) -> tuple[float, BaseException]:
    backend = OpenAIBackend("fake-model", url, seed=0, **options)
    reranker = Reranker(backend, batch_size=B, concurrency=concurrency, cache=MemoryCache())
    started = time.monotonic()
    with pytest.raises(BackendError) as err:
        reranker.rank_many(REQUESTS)
    return time.monotonic() - started, err.value


# -- the pool's verdict, alone ----------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pool_is_down_when_every_endpoint_has_failed_for_the_window():
    clock = Clock()
    pool = Pool(["http://a", "http://b"], backoff=0.5, give_up_after=5.0, rng=random.Random(0), clock=clock)
    a, b = pool.endpoints
    pool.failed(a, pool.started(a), "HTTP 503: busy")
    clock.now += 4.0
    assert pool.verdict() is None  # b is healthy
    pool.failed(b, pool.started(b), "ConnectError: refused")
    clock.now += 4.0  # a has failed for 8 s, b for 4 s: the window counts from the last one
    assert pool.all_out() and pool.verdict() is None
    clock.now += 1.0
    down = pool.verdict()
    assert isinstance(down, JudgeDown) and isinstance(down, BackendError)
    message = str(down)
    assert "http://a failing for 9.0 s" in message and "HTTP 503: busy" in message
    assert "http://b failing for 5.0 s" in message and "ConnectError: refused" in message
    assert "next probe in" in message and down.retry_after >= 1 and isinstance(down.retry_after, int)
    start = pool.started(b)  # a probe that succeeds ends the outage
    pool.succeeded(b, start)
    assert pool.verdict() is None and not pool.all_out()


def test_waiting_calls_fail_at_once_unless_a_probe_is_in_flight():
    clock = Clock()
    pool = Pool(["http://a"], backoff=0.5, give_up_after=5.0, rng=random.Random(0), clock=clock)
    (a,) = pool.endpoints
    pool.failed(a, pool.started(a), "HTTP 503")
    clock.now += 6.0
    a.down_until = clock.now + 3.0  # in backoff: nothing can be sent

    async def acquire():
        return await pool.acquire()

    with pytest.raises(JudgeDown, match="next probe in 3.0 s") as err:
        asyncio.run(acquire())
    assert err.value.retry_after == 3
    clock.now += 3.0  # the backoff is over: one call may probe

    async def probe_then(outcome):
        assert await pool.acquire() is a
        start = pool.started(a)
        waiting = asyncio.ensure_future(pool.acquire())  # waits for the probe's outcome
        await asyncio.sleep(0.2)
        assert not waiting.done() and pool.probing()
        if outcome == "fails":
            pool.failed(a, start, "HTTP 503 again")
        else:
            pool.succeeded(a, start)
        return await waiting

    assert asyncio.run(probe_then("succeeds")) is a and pool.verdict() is None
    pool.failed(a, pool.started(a), "HTTP 503")
    clock.now += 6.0
    a.down_until = clock.now
    with pytest.raises(JudgeDown, match="HTTP 503 again"):
        asyncio.run(probe_then("fails"))


def test_a_pool_that_never_gives_up():
    clock = Clock()
    pool = Pool(["http://a"], give_up_after=None, clock=clock)
    (a,) = pool.endpoints
    pool.failed(a, pool.started(a), "HTTP 503")
    clock.now += 3600
    assert pool.verdict() is None


@pytest.mark.parametrize("kwargs, word", [({"give_up_after": -1}, "give_up_after"),
                                          ({"liveness_after": float("nan")}, "liveness_after"),
                                          ({"liveness_timeout": 0}, "liveness_timeout"),
                                          ({"give_up_after": "soon"}, "give_up_after")])
def test_bad_fail_fast_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        OpenAIBackend("m", "http://judge.test", **kwargs)


def test_off_turns_the_window_and_the_liveness_check_off():
    backend = OpenAIBackend("m", "http://judge.test", give_up_after=False, liveness_after=False)
    assert backend.pool.give_up_after is None and backend.liveness_after is None


# -- the library -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["503", "refused", "hang"])
def test_rank_many_fails_fast(kind):
    options = dict(FAST, liveness_after=0.3, liveness_timeout=0.3)
    with fault(kind) as url:
        seconds, error = _rank_many(url, 4, **options)
    assert seconds < BOUND
    assert isinstance(error, JudgeDown) and url in str(error) and error.retry_after >= 1
    word = {"503": "HTTP 503", "refused": "ConnectError", "hang": "the server hangs"}[kind]
    assert word in str(error)


def test_a_restart_of_half_a_second_is_ridden_out():
    """A blip shorter than the window: the calls' own retries carry the ranking through."""
    judge = FakeJudge(RELEVANCE)
    server = FaultServer(judge)
    server.start()
    try:
        backend = OpenAIBackend("fake-model", server.url, tokenizer="chars", seed=0)
        reranker = Reranker(backend, sorter="quicksort", k=5, batch_size=B, concurrency=4,
                            cache=MemoryCache())
        server.stop()

        def restart_after_the_first_failure() -> None:  # a blip the calls surely meet, on any load
            deadline = time.monotonic() + 60
            while not backend.stats()["endpoints"][0]["failures"] and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.5)
            server.start()

        restart = threading.Thread(target=restart_after_the_first_failure)
        restart.start()
        results = reranker.rank_many(REQUESTS)
        restart.join()
    finally:
        server.stop()
    assert [r.doc_ids[:5] for r in results] == [expected_order(r["doc_ids"], RELEVANCE, 5)[:5]
                                                 for r in REQUESTS]
    endpoint = backend.stats()["endpoints"][0]
    assert endpoint["failures"] >= 1 and endpoint["state"] == "healthy"


def test_a_slow_but_live_server_is_not_declared_down():
    """Each answer takes 1.2 s, far past the 0.3 s after which silence is checked: the server
    answers GET /health at once, so nothing is cancelled and nothing fails."""
    judge = FakeJudge(RELEVANCE, delay=1.2)
    with FaultServer(judge) as server:
        backend = OpenAIBackend("fake-model", server.url, tokenizer="chars", seed=0, liveness_after=0.3,
                                liveness_timeout=0.5, give_up_after=0.5, max_requests_in_flight=2)
        prompts = [Prompt("q", "query", f"q0d{i}", f"doc q0d{i}", f"q0d{i + 1}", f"doc q0d{i + 1}")
                   for i in range(4)]

        async def two_batches():
            return await asyncio.gather(backend.judge(prompts[:2]), backend.judge(prompts[2:]))

        results = asyncio.run(two_batches())
    stats = backend.stats()
    assert [len(r.judgments) for r in results] == [2, 2]
    assert all(j.parsed for r in results for j in r.judgments)
    assert stats["liveness_checks"] >= 1 and judge.get_count >= 1  # checked, and answered
    assert stats["hung"] == 0 and stats["retries"] == 0 and stats["endpoints"][0]["failures"] == 0


def test_a_deadline_cuts_hung_http_attempts():
    """A request with a 0.5 s timeout against a judge that never answers: answered at its
    deadline with its first-stage order, marked cut; the HTTP request is cancelled."""
    with HangServer() as hang:
        backend = OpenAIBackend("fake-model", hang.url, tokenizer="chars", seed=0)

        async def main():
            async with Engine(backend, batch_size=B, cache=False) as engine:
                started = time.monotonic()
                [result] = await engine.rank_many([REQUESTS[0]], timeout=0.5)
                seconds = time.monotonic() - started
                await asyncio.sleep(0.2)  # the cancellation lands
                return result, seconds, backend.pool.endpoints[0].in_flight

        result, seconds, in_flight = asyncio.run(main())
    assert result.cut and result.doc_ids == REQUESTS[0]["doc_ids"] and seconds < BOUND
    assert result.cost.prompts == 0 and in_flight == 0  # nothing judged; nothing left in flight


class _SlowThenHangs:
    """A judge whose first ``answers`` judging requests are answered (after ``delay``), then none."""

    def __init__(self, answers: int, delay: float) -> None:
        self.judge = FakeJudge(RELEVANCE, delay=delay)
        self.answers = answers
        self.hang = threading.Event()
        original = self.judge.handle

        def handle(path, headers, raw):
            with self.judge.lock:
                self.answers -= 1
                hang = self.answers < 0
            if hang:
                self.hang.wait(30)
            return original(path, headers, raw)

        self.judge.handle = handle


def test_a_deadline_mid_step_answers_at_once_and_cancels_what_no_one_needs():
    """Two requests share steps; after two answered steps the judge stops answering one
    request (the server stays alive: only the time bounds it). The first deadline answers its
    request with the best rankings of the finished steps while the step goes on for the other;
    the second deadline answers the other and cancels the HTTP request no one needs now. The
    two costs add up to what was judged, and all of it is cached."""
    slow = _SlowThenHangs(answers=2, delay=0.05)
    cache = MemoryCache()
    with FaultServer(slow.judge) as server:
        backend = OpenAIBackend("fake-model", server.url, tokenizer="chars", seed=0)
        endpoint = backend.pool.endpoints[0]

        async def main():
            async with Engine(backend, sorter="quicksort", k=5, batch_size=64, cache=cache) as engine:
                first = asyncio.ensure_future(engine.rank_many([REQUESTS[0]], timeout=1.0))
                second = asyncio.ensure_future(engine.rank_many([REQUESTS[1]], timeout=2.0))
                [a] = await first
                still = endpoint.in_flight  # the third step's request, for the second one
                [b] = await second
                await asyncio.sleep(0.2)  # the cancellation lands
                return a, b, still, endpoint.in_flight, slow.judge.prompt_count

        try:
            a, b, still, after, judged = asyncio.run(main())
        finally:
            slow.hang.set()
    assert a.cut and b.cut and sorted(a.doc_ids) == sorted(REQUESTS[0]["doc_ids"])
    assert still == 1 and after == 0
    assert a.cost.inferences + b.cost.inferences == pytest.approx(2)  # the two answered steps
    assert a.cost.prompts + b.cost.prompts == judged == len(cache) > 0
    assert b.run_cost.wall_seconds > a.run_cost.wall_seconds


# -- the command line --------------------------------------------------------------------------

def _candidates(path: Path) -> Path:
    with path.open("w") as fh:
        for r in REQUESTS:
            cands = [{"docid": d, "text": t} for d, t in zip(r["doc_ids"], r["docs"], strict=True)]
            fh.write(json.dumps({"qid": r["qid"], "query": r["query"], "candidates": cands}) + "\n")
    return path


def _cli(tmp_path: Path, url: str, concurrency: int, judge: str = "openai") -> tuple[int, float, list[str]]:
    from prp.cli import main

    argv = ["rerank", "--input", str(_candidates(tmp_path / "c.jsonl")),
            "--output", str(tmp_path / "out.trec"), "--judge", judge, "--base-url", url + "/v1",
            "--model", "fake", "--batch-size", str(B), "--concurrency", str(concurrency), "--quiet"]
    started = time.monotonic()
    code = main(argv)
    return code, time.monotonic() - started, argv


@pytest.mark.parametrize("kind", ["503", "refused"])
def test_cli_fails_fast_with_exit_3_and_one_line(kind, tmp_path, capsys):
    spec = "openai:" + ",".join(f"{k}={v}" for k, v in FAST.items())
    with fault(kind) as url:
        code, seconds, _ = _cli(tmp_path, url, 4, spec)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and seconds < BOUND
    assert len(err) == 1 and err[0].startswith("prp rerank: backend failure: ") and url in err[0]
    assert "the judge is down" in err[0] and not (tmp_path / "out.trec").exists()


# -- the service -------------------------------------------------------------------------------

@contextlib.contextmanager
def service(judge_url: str, judge: str = "openai", concurrency: int = 4):
    """``prp serve --judge openai`` on a free port, as deployed (a subprocess)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "prp.cli", "serve", "--judge", judge, "--base-url", judge_url + "/v1",
               "--model", "fake", "--port", str(port), "--batch-size", str(B),
               "--concurrency", str(concurrency), "--drain-seconds", "1"]
    proc = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prp serve exited: {proc.stderr.read()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail("prp serve did not come up in 90 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _concurrent(url: str, n: int, **extra) -> tuple[float, list[httpx.Response]]:
    async def send():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(url + "/v1/rerank", json={
                "query": r["query"], "documents": r["docs"], **extra}) for r in (REQUESTS * 3)[:n]))

    started = time.monotonic()
    answers = asyncio.run(send())
    return time.monotonic() - started, list(answers)


def _assert_unavailable(seconds: float, answers: list[httpx.Response], judge_url: str) -> None:
    assert seconds < BOUND
    assert {a.status_code for a in answers} == {503}, [a.text for a in answers]
    for answer in answers:
        assert int(answer.headers["retry-after"]) >= 1
        message = answer.json()["message"]
        assert message.startswith("the judge is unavailable: ") and judge_url in message
        assert "\n" not in message


def test_service_answers_503_with_retry_after_then_recovers():
    """``prp serve --concurrency 4``, 10 concurrent requests: a judge answering 503, then back
    (served again once the pool probes it), then a refused port; each error < 15 s, 503 with
    ``Retry-After``; a request with ``"timeout": 2`` against a hanging judge: a cut answer."""
    judge = FakeJudge(RELEVANCE, always=status(503), tokenizer=None)
    server = FaultServer(judge)
    server.start()
    try:
        spec = "openai:tokenizer=chars,give_up_after=1"
        with service(server.url, spec) as url:
            _assert_unavailable(*_concurrent(url, 10), server.url)
            judge.always = None  # the judge is back: served after the pool's next probe
            deadline = time.monotonic() + 40
            while True:
                response = httpx.post(url + "/v1/rerank", json={"query": "query 3", "documents":
                                                                REQUESTS[3]["docs"]}, timeout=60)
                if response.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(int(response.headers.get("retry-after", "1")))
            assert response.status_code == 200, response.text
            server.stop()
            with HangServer(port=int(server.url.rsplit(":", 1)[1])):  # the judge's port now hangs
                seconds, [answer] = _concurrent(url, 1, timeout=2)  # query 0: nothing of it cached
            assert answer.status_code == 200 and answer.json()["usage"]["cut"] is True
            assert seconds < 3.5  # the "within ~3 s"
            _assert_unavailable(*_concurrent(url, 10), server.url)  # and now the port is refused
    finally:
        server.stop()


# -- at the defaults, up to concurrency 16 (slow) ----------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["503", "refused", "hang"])
@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_cli_at_the_defaults(kind, concurrency, tmp_path, capsys):
    with fault(kind) as url:
        code, seconds, _ = _cli(tmp_path, url, concurrency)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and seconds < BOUND and len(err) == 1, err


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["503", "refused", "hang"])
@pytest.mark.parametrize("concurrency", [1, 4, 8])
def test_rank_many_at_the_defaults(kind, concurrency):
    with fault(kind) as url:
        seconds, error = _rank_many(url, concurrency)
    assert seconds < BOUND and isinstance(error, JudgeDown)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["503", "refused", "hang"])
def test_service_at_the_defaults(kind):
    with fault(kind) as judge_url, service(judge_url) as url:
        if kind == "hang":
            seconds, [answer] = _concurrent(url, 1, timeout=2)
            assert answer.status_code == 200 and answer.json()["usage"]["cut"] is True and seconds < 3.5
        _assert_unavailable(*_concurrent(url, 10), judge_url)
