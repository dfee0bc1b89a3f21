"""Two ``prp serve`` replicas sharing a redis-server that is killed and started again: how fast
does sharing come back, and what does the second replica pay after it?

    python bench/redis_recovery.py --runs 5 --out bench/results/redis-recovery.json

Starts a redis-server (loopback, no persistence) and two ``prp serve`` replicas (the perfect
simulated judge over random qrels, ``--docs`` documents a query, ``--batch-size`` 16,
``--cache redis://...``), from the checkout this script lives in (run a copy of it from an older
checkout to measure that code). Each run:

1. kills Redis (SIGKILL) and sends replica A ``--outage-queries`` distinct queries (their
   statuses counted: anything but 200 is a failure);
2. starts Redis again on the same port (empty) and, every 50 ms, sends replica B one of those
   queries it has not seen (so only Redis can answer it): the time from the restart to the first
   answer with ``cache_hits > 0`` is *time to the first shared hit* (none within ``--wait``
   seconds: recorded as null);
3. sends B the last outage query (never probed) and records the prompts B pays for it against
   those A paid: *prompts B pays after recovery*.

Then, once, the load probe: two fresh replicas whose judge takes ``--delay`` seconds an
inference, ``--load`` concurrent requests spread over them, Redis killed 0.3 s in; it records
the statuses (the issue's "10 of 20 get 500").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Redis:
    def __init__(self, directory: str) -> None:
        self.port, self.directory, self.proc = free_port(), directory, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.directory],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited early (code {self.proc.returncode})")
        self.proc.kill()
        self.proc.wait()


class Replica:
    def __init__(self, qrels: Path, cache: str, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prp.cli", "serve", "--judge", "perfect", "--qrels", str(qrels),
             "--port", str(self.port), "--batch-size", "16", "--cache", cache, *extra],
            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(900):
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"prp serve did not come up (log: {log})")

    def rerank(self, query: str, docs: list[str]) -> tuple[int, dict]:
        r = httpx.post(self.url + "/v1/rerank", json={"query": query, "documents": docs, "top_n": 10},
                       timeout=120)
        return r.status_code, (r.json() if r.status_code == 200 else {})

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--docs", type=int, default=30)
    p.add_argument("--outage-queries", type=int, default=60)
    p.add_argument("--wait", type=float, default=10.0, help="longest wait for a shared hit (s)")
    p.add_argument("--load", type=int, default=20)
    p.add_argument("--delay", type=float, default=0.02, help="load probe: seconds an inference takes")
    p.add_argument("--kill-after", type=float, default=0.3, help="load probe: seconds before the kill")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="prp-redis-recovery-"))
    rng = random.Random(11)
    docs = [f"d{i}" for i in range(args.docs)]
    queries = [f"m{r}-{i}" for r in range(args.runs + 1) for i in range(args.outage_queries)]
    (tmp / "qrels.txt").write_text("".join(f"{q} 0 {d} {rng.randrange(4)}\n" for q in queries for d in docs))
    redis = Redis(str(tmp))
    redis.start()
    a = Replica(tmp / "qrels.txt", redis.url, tmp / "a.log")
    b = Replica(tmp / "qrels.txt", redis.url, tmp / "b.log")
    runs = []
    try:
        for run in range(args.runs):
            mine = [f"m{run}-{i}" for i in range(args.outage_queries)]
            redis.kill()
            outage = [a.rerank(q, docs) for q in mine]
            paid_a = outage[-1][1].get("usage", {}).get("prompts")
            health = httpx.get(a.url + "/health", timeout=5).json()
            time.sleep(0.2)
            redis.start()
            started, first_hit, probes = time.monotonic(), None, 0
            for q in mine[:-1]:
                status, body = b.rerank(q, docs)
                probes += 1
                if status == 200 and body["usage"]["cache_hits"] > 0:
                    first_hit = time.monotonic() - started
                    break
                if time.monotonic() - started > args.wait:
                    break
                time.sleep(0.05)
            status, body = b.rerank(mine[-1], docs)
            runs.append({"outage_statuses": dict(Counter(str(s) for s, _ in outage)),
                         "health_during_outage": health.get("status"),
                         "seconds_to_first_shared_hit": None if first_hit is None else round(first_hit, 3),
                         "probes": probes, "prompts_a_paid": paid_a,
                         "prompts_b_pays_after_recovery": body.get("usage", {}).get("prompts"),
                         "b_status": status})
            print(json.dumps(runs[-1]), flush=True)
    finally:
        a.stop()
        b.stop()
    if redis.proc.poll() is not None:
        redis.start()  # the load probe: replicas whose judge takes --delay s an inference
    loaded = [Replica(tmp / "qrels.txt", redis.url, tmp / f"load-{i}.log",
                      "--simulated-delay", str(args.delay)) for i in range(2)]
    try:
        load = asyncio.run(under_load(redis, loaded, docs, args.load, queries[-args.outage_queries:],
                                     args.kill_after))
        print(json.dumps({"load": load}), flush=True)
    finally:
        for replica in loaded:
            replica.stop()
        if redis.proc.poll() is None:
            redis.kill()
    hits = [r["seconds_to_first_shared_hit"] for r in runs if r["seconds_to_first_shared_hit"] is not None]
    summary = {"runs": runs, "load": load,
               "first_shared_hit_seconds": {"n": len(hits), "of": len(runs),
                                            "median": statistics.median(hits) if hits else None,
                                            "max": max(hits) if hits else None}}
    print(json.dumps(summary["first_shared_hit_seconds"]))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")


async def under_load(redis: Redis, replicas: list[Replica], docs: list[str], n: int,
                     queries: list[str], kill_after: float) -> dict:
    async with httpx.AsyncClient(timeout=120) as client:
        calls = [asyncio.ensure_future(client.post(replicas[i % 2].url + "/v1/rerank", json={
            "query": queries[i % len(queries)], "documents": docs, "top_n": 10})) for i in range(n)]
        started = time.monotonic()
        await asyncio.sleep(kill_after)
        unfinished = sum(1 for call in calls if not call.done())
        redis.kill()
        statuses = [(await call).status_code for call in calls]
    return {"statuses": dict(Counter(str(s) for s in statuses)), "unfinished_at_kill": unfinished,
            "seconds": round(time.monotonic() - started, 2)}


if __name__ == "__main__":
    main()
