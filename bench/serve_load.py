"""Load test of ``prp serve`` over loopback: does sharing batches across requests pay?

    python bench/serve_load.py --out bench/results/serve-load.json
    python bench/serve_load.py --replicas 2 --redis --out bench/results/serve-load-2x-redis.json

Starts ``prp serve`` (``--replicas`` processes; with ``--redis`` they share a judgment cache in
a redis-server started here on loopback) with the perfect simulated judge at ``--batch-size``
(B=64), each inference taking ``--delay`` seconds (standing in for an LLM's latency, see
``--simulated-delay``). Sends ``--requests`` rerank requests (TREC DL 2019's BM25 top-100 texts,
top_n=10) from a client pool of ``--concurrency`` (1, 8, 64), spread round-robin over the
replicas. Every request is a distinct query: request i gets its own qid, graded like DL19 query
i mod 43, so no judgment is shared between requests: what is measured is batching alone. The
lone figure is the mean at concurrency 1 (over ``--lone-requests`` requests: default 43, each
DL19 query once).

Per sorter and concurrency it reports: inferences per request (the requests' own shares, from
``usage``), that over the lone figure, prompts per request, mean batch fill, p50/p95 latency,
errors (anything but 200) and the wall time.
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

import httpx

ROOT = Path(__file__).resolve().parents[1]
DL19 = ROOT.parent / "shared" / "data" / "trec-dl-2019"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_requests(data: Path, count: int, tmp: Path, runs: list[str]) -> tuple[dict[str, list[dict]], Path]:
    """For each run tag, ``count`` distinct requests (qids never shared between runs, so no run
    reuses another's judgments, even through a shared cache), and the qrels file grading them."""
    from prp.data import load_qrels, load_retrieve_results

    base = load_retrieve_results(data / "bm25-top100.json")
    qrels = load_qrels(data / "qrels.txt")
    lines: list[str] = []
    requests: dict[str, list[dict]] = {run: [] for run in runs}
    for i in range(count):
        req = base[i % len(base)]
        docs = [{"text": t, "id": d} for d, t in zip(req.doc_ids, req.docs, strict=True)]
        for run in runs:
            qid = f"{run}-r{i}"
            lines += [f"{qid} 0 {d} {g}\n" for d, g in qrels.get(req.qid, {}).items()]
            requests[run].append({"query": req.query, "query_id": qid, "top_n": 10, "documents": docs})
    path = tmp / "qrels.txt"
    path.write_text("".join(lines))
    return requests, path


def start(args: argparse.Namespace, qrels: Path, cache: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "prp.cli", "serve", "--backend", "perfect", "--qrels", str(qrels),
               "--port", str(port), "--batch-size", str(args.batch_size), "--cache", cache,
               "--simulated-delay", str(args.delay), "--linger-ms", str(args.linger_ms)]
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


async def load(urls: list[str], requests: list[dict], concurrency: int, sorter: str) -> dict:
    gate = asyncio.Semaphore(concurrency)
    out: list[tuple[int, float, dict]] = []
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def one(i: int, body: dict) -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    r = await client.post(urls[i % len(urls)] + "/v1/rerank", json={**body, "sorter": sorter})
                    status, usage = r.status_code, (r.json().get("usage", {}) if r.status_code == 200 else {})
                except httpx.HTTPError:
                    status, usage = -1, {}
                out.append((status, time.perf_counter() - started, usage))

        started = time.perf_counter()
        await asyncio.gather(*(one(i, body) for i, body in enumerate(requests)))
        wall = time.perf_counter() - started
    ok = [(latency, usage) for status, latency, usage in out if status == 200]
    latencies = sorted(latency for latency, _ in ok)
    return {
        "requests": len(requests), "errors": len(out) - len(ok), "wall_seconds": round(wall, 2),
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
    p.add_argument("--delay", type=float, default=0.01, help="seconds an inference takes (default 0.01)")
    p.add_argument("--linger-ms", type=float, default=2.0)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--redis", action="store_true", help="replicas share a Redis cache (starts redis-server)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prp-serve-load-"))
    procs: list[subprocess.Popen] = []
    try:
        sorters, levels = args.sorters.split(","), [int(c) for c in args.concurrency.split(",")]
        requests, qrels = make_requests(args.data, args.requests, tmp,
                                        [f"{s}-c{c}" for s in sorters for c in levels])
        cache = "none"
        if args.redis:
            port = free_port()
            command = [shutil.which("redis-server") or "redis-server", "--port", str(port),
                       "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            cache = f"redis://127.0.0.1:{port}/0"
            time.sleep(1)
        servers = [start(args, qrels, cache, tmp / f"serve{i}.log") for i in range(args.replicas)]
        procs += [proc for proc, _ in servers]
        urls = [url for _, url in servers]
        rows = []
        for sorter in sorters:
            lone = None
            for concurrency in levels:
                count = args.lone_requests if concurrency == 1 else args.requests
                batch = requests[f"{sorter}-c{concurrency}"][:count]
                before = batch_fill(urls)
                row = {"sorter": sorter, "concurrency": concurrency,
                       **asyncio.run(load(urls, batch, concurrency, sorter))}
                after = batch_fill(urls)
                row["mean_batch_fill"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
                if concurrency == 1:
                    lone = row["inferences_per_request"]
                row["vs_lone"] = None if lone is None else row["inferences_per_request"] / lone
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "batch_size": args.batch_size,
                                    "delay": args.delay, "replicas": args.replicas, "redis": args.redis,
                                    "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
