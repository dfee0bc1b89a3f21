"""Load test of ``prp serve`` over loopback: does sharing batches across requests pay?

    python bench/serve_load.py --out bench/results/serve-load.json
    python bench/serve_load.py --replicas 2 --redis --out bench/results/serve-load-2x-redis.json
    python bench/serve_load.py --judge openai --out bench/results/serve-load-openai.json

Starts ``prp serve`` (``--replicas`` processes; with ``--redis`` they share a judgment cache in
a redis-server started here on loopback) at ``--batch-size`` (B=64) with one of two judges:

* ``--judge simulated`` (default): the perfect simulated judge, each inference taking
  ``--delay`` seconds (standing in for an LLM's latency, see ``--simulated-delay``).
* ``--judge openai``: ``prp serve --judge openai`` against a loopback OpenAI-compatible judge
  started here (tests/http_fault_server.py's FakeJudge on a real socket, the one the test suite
  uses), each HTTP request taking ``--delay`` seconds (an LLM's batched forward pass). The
  batch goes out as one ``/v1/completions`` request with a list of prompts; passages are cut at
  about 4 characters a token (``tokenizer=chars``: no model, no tokenizer requests). The judge
  reads texts, not ids: each document is sent as "doc <id> <text>" and each query as
  "<qid>: <query>" (which also keeps two requests' prompts apart: the engine shares identical
  prompts in flight), and the judge grades by the request's qrels as the perfect judge does
  (unjudged 0, equal grades a tie).

Sends ``--requests`` rerank requests (TREC DL 2019's BM25 top-100 texts, top_n=10) from a
client pool of ``--concurrency`` (1, 8, 64), spread round-robin over the replicas. Every request
is a distinct query: request i gets its own qid, graded like DL19 query i mod 43, so no judgment
is shared between requests: what is measured is batching alone. The lone figure is the mean at
concurrency 1 (over ``--lone-requests`` requests: default 43, each DL19 query once).

Per sorter and concurrency it reports: inferences per request (the requests' own shares, from
``usage``), that over the lone figure, prompts per request, mean batch fill, p50/p95 latency,
errors (anything but 200), the wall time, and ``best_top_n``: the answers whose top_n are the
request's best documents by grade (ties in any order; every one, for a perfect judge). With
``--judge openai`` also the judging HTTP requests the judge server received per rerank request
and the prompts per such request, as the server counted them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
DL19 = ROOT.parent / "shared" / "data" / "trec-dl-2019"
QUERY_CHARS = 64 * 4  # the openai backend's default query budget with tokenizer=chars


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_requests(data: Path, count: int, tmp: Path, runs: list[str], judge: str = "simulated"
                  ) -> tuple[dict[str, list[dict]], Path, dict[str, dict[str, int]]]:
    """For each run tag, ``count`` distinct requests (qids never shared between runs, so no run
    reuses another's judgments, even through a shared cache), the qrels file grading them and
    those grades by qid. For the openai judge, which reads texts, the qid starts the query
    ("<qid>: <query>", also keeping the texts of two requests apart) and the doc id each
    document ("doc <id> <text>")."""
    from prp.data import load_qrels, load_retrieve_results

    base = load_retrieve_results(data / "bm25-top100.json")
    qrels = load_qrels(data / "qrels.txt")
    lines: list[str] = []
    grades: dict[str, dict[str, int]] = {}
    requests: dict[str, list[dict]] = {run: [] for run in runs}
    for i in range(count):
        req = base[i % len(base)]
        pairs = zip(req.doc_ids, req.docs, strict=True)
        docs = [{"text": t if judge == "simulated" else f"doc {d} {t}", "id": d} for d, t in pairs]
        for run in runs:
            qid = f"{run}-r{i}"
            grades[qid] = dict(qrels.get(req.qid, {}))
            lines += [f"{qid} 0 {d} {g}\n" for d, g in grades[qid].items()]
            query = req.query if judge == "simulated" else f"{qid}: {req.query}"
            if judge != "simulated" and len(query) > QUERY_CHARS:
                raise SystemExit(f"query {req.qid} is longer than the judge reads ({QUERY_CHARS} characters)")
            requests[run].append({"query": query, "query_id": qid, "top_n": 10, "documents": docs})
    path = tmp / "qrels.txt"
    path.write_text("".join(lines))
    return requests, path, grades


def start_judge(grades: dict[str, dict[str, int]], delay: float) -> Any:
    """The loopback OpenAI-compatible judge, serving (a FaultServer; ``.judge`` counts requests)."""
    sys.path.insert(0, str(ROOT / "tests"))  # the loopback judge the test suite uses
    from http_fault_server import FakeJudge, FaultServer

    def relevance(query: str, doc_id: str) -> int:
        return grades[query.split(":", 1)[0]].get(doc_id, 0)

    server = FaultServer(FakeJudge(relevance, delay=delay, tokenizer=None, record=False))
    server.start()
    return server


def start(args: argparse.Namespace, qrels: Path, cache: str, log: Path, judge_url: str | None = None
          ) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if judge_url is None:
        judge = ["--judge", "perfect", "--qrels", str(qrels), "--simulated-delay", str(args.delay)]
    else:
        judge = ["--judge", "openai:tokenizer=chars", "--base-url", judge_url + "/v1",
                 "--model", "fake-judge"]
    command = [sys.executable, "-m", "prp.cli", "serve", *judge, "--port", str(port),
               "--batch-size", str(args.batch_size), "--cache", cache, "--linger-ms", str(args.linger_ms)]
    proc = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"prp serve exited: {log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("prp serve did not start")


def batch_fill(urls: list[str]) -> tuple[float, float]:
    """(sum, count) of the prp_batch_fill histogram over the replicas."""
    total = count = 0.0
    for url in urls:
        for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
            if line.startswith("prp_batch_fill_sum"):
                total += float(line.split()[-1])
            elif line.startswith("prp_batch_fill_count"):
                count += float(line.split()[-1])
    return total, count


def judge_counts(server: Any) -> tuple[int, int]:
    """(judging HTTP requests, prompts in them) the loopback judge (a FaultServer, or None: the
    simulated judge) has received so far."""
    if server is None:
        return 0, 0
    with server.judge.lock:
        return server.judge.judge_count, server.judge.prompt_count


def best_first(body: dict, answer: dict, grades: dict[str, dict[str, int]]) -> bool:
    """Are the answer's top_n the request's best documents by grade (ties in any order)?"""
    graded = grades[body["query_id"]]
    ids = [d["id"] for d in body["documents"]]
    got = [graded.get(ids[r["index"]], 0) for r in answer["results"]]
    return got == sorted((graded.get(d, 0) for d in ids), reverse=True)[:len(got)]


async def load(urls: list[str], requests: list[dict], concurrency: int, sorter: str,
               grades: dict[str, dict[str, int]]) -> dict:
    gate = asyncio.Semaphore(concurrency)
    out: list[tuple[int, float, dict, bool]] = []
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def one(i: int, body: dict) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    r = await client.post(urls[i % len(urls)] + "/v1/rerank", json={**body, "sorter": sorter})
                    answer = r.json() if r.status_code == 200 else {}
                    status, usage = r.status_code, answer.get("usage", {})
                    best = bool(answer) and best_first(body, answer, grades)
                except httpx.HTTPError:
                    status, usage, best = -1, {}, False
                out.append((status, time.perf_counter() - started, usage, best))

        started = time.perf_counter()
        await asyncio.gather(*(one(i, body) for i, body in enumerate(requests)))
        wall = time.perf_counter() - started
    ok = [(latency, usage) for status, latency, usage, _ in out if status == 200]
    latencies = sorted(latency for latency, _ in ok)
    return {
        "requests": len(requests), "errors": len(out) - len(ok), "wall_seconds": round(wall, 2),
        "best_top_n": sum(best for *_, best in out),  # answers whose top_n are the best by grade
        "inferences_per_request": statistics.fmean(u["inferences"] for _, u in ok),
        "prompts_per_request": statistics.fmean(u["prompts"] for _, u in ok),
        "p50_seconds": latencies[len(latencies) // 2],
        "p95_seconds": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DL19)
    p.add_argument("--sorters", default="tournament,quicksort")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--lone-requests", type=int, default=43)
    p.add_argument("--concurrency", default="1,8,64")
    p.add_argument("--judge", choices=("simulated", "openai"), default="simulated",
                   help="the perfect simulated judge or a loopback OpenAI-compatible one (default simulated)")
    p.add_argument("--delay", type=float, default=0.01,
                   help="seconds an inference (openai: a judging HTTP request) takes (default 0.01)")
    p.add_argument("--linger-ms", type=float, default=2.0)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--redis", action="store_true", help="replicas share a Redis cache (starts redis-server)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prp-serve-load-"))
    procs: list[subprocess.Popen] = []
    judge_server = None
    try:
        sorters, levels = args.sorters.split(","), [int(c) for c in args.concurrency.split(",")]
        requests, qrels, grades = make_requests(args.data, args.requests, tmp,
                                                [f"{s}-c{c}" for s in sorters for c in levels], args.judge)
        if args.judge == "openai":
            judge_server = start_judge(grades, args.delay)
        cache = "none"
        if args.redis:
            port = free_port()
            command = [shutil.which("redis-server") or "redis-server", "--port", str(port),
                       "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            cache = f"redis://127.0.0.1:{port}/0"
            time.sleep(1)
        judge_url = judge_server.url if judge_server is not None else None
        servers = [start(args, qrels, cache, tmp / f"serve{i}.log", judge_url) for i in range(args.replicas)]
        procs += [proc for proc, _ in servers]
        urls = [url for _, url in servers]
        rows = []
        for sorter in sorters:
            lone = None
            for concurrency in levels:
                count = args.lone_requests if concurrency == 1 else args.requests
                batch = requests[f"{sorter}-c{concurrency}"][:count]
                before = batch_fill(urls)
                seen = judge_counts(judge_server)
                row = {"sorter": sorter, "concurrency": concurrency,
                       **asyncio.run(load(urls, batch, concurrency, sorter, grades))}
                after = batch_fill(urls)
                row["mean_batch_fill"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
                if judge_server is not None:
                    http, prompts = (now - then for now, then in zip(judge_counts(judge_server), seen,
                                                                     strict=True))
                    row["judge_http_requests_per_request"] = http / len(batch)
                    row["prompts_per_judge_http_request"] = prompts / max(http, 1)
                if concurrency == 1:
                    lone = row["inferences_per_request"]
                row["vs_lone"] = None if lone is None else row["inferences_per_request"] / lone
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        if judge_server is not None:
            judge_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "judge": args.judge,
                                    "batch_size": args.batch_size, "delay": args.delay,
                                    "replicas": args.replicas, "redis": args.redis, "rows": rows},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
