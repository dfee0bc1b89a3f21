"""One client: ``prp serve`` over loopback against a long-lived in-process engine.

    python bench/serve_lone.py --out bench/results/serve-lone.json

Ranks TREC DL 2019 queries (``--docs`` of their BM25 candidates, top_n 10, the perfect judge,
B=8, orders both, no cache so every request does the same work) one request at a time:

* **in process**: one :class:`~prp.engine.Engine` opened once, ``await engine.rank(...)`` per
  request (the engine at its default linger, 0);
* **served**: ``prp serve --judge perfect --cache none --linger-ms L`` started here (one process
  per ``--linger-ms`` value), a keep-alive ``httpx.Client`` posting each request to /v1/rerank
  after the previous answer came back.

* **floor**: the same client posting the same bodies to uvicorn as ``prp serve`` runs it (its
  loop, HTTP protocol and settings) in front of an app that reads the body and answers a fixed
  ten-result JSON at once: what this client and server cost with no service behind them.

Each side first runs every query once (warm-up), then ``--rounds`` passes over the queries;
reported: mean and median milliseconds per request and the ratio of the medians, served / in
process (same run, same machine; the median resists other processes on the cores), and for a
served run ``service_ms``: its median less the in-process one and the floor's, the service's own
time per request (reading and checking the body, the answer, the engine hand-off). Both sides'
rankings are checked equal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's prp, as the server's
DL19 = ROOT.parent / "shared" / "data" / "trec-dl-2019"


FLOOR_ANSWER = json.dumps({"id": "0", "results": [{"index": i, "relevance_score": (10 - i) / 10}
                                                   for i in range(10)]}).encode()


def floor_server(port: int) -> None:
    """uvicorn as ``prp serve`` configures it, in front of an app that does no work."""
    import uvicorn

    from prp.serve.protocol import protocol_class

    async def app(scope: dict, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(len(FLOOR_ANSWER)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": FLOOR_ANSWER})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", loop="auto",
                http=protocol_class(), access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_process(requests: list, qrels: dict, rounds: int) -> tuple[list[float], list[list[str]]]:
    from prp import PerfectOracle, Reranker
    from prp.engine import Engine

    async def main() -> tuple[list[float], list[list[str]]]:
        reranker = Reranker(PerfectOracle(qrels), sorter="quicksort", k=10, batch_size=8, orders="both",
                            cache=False)
        times, orders = [], []
        async with Engine(reranker) as engine:
            for r in requests:  # warm-up
                orders.append((await engine.rank(r.query, r.docs, r.doc_ids, qid=r.qid)).doc_ids[:10])
            for _ in range(rounds):
                for r in requests:
                    started = time.perf_counter()
                    await engine.rank(r.query, r.docs, r.doc_ids, qid=r.qid)
                    times.append(time.perf_counter() - started)
        return times, orders

    return asyncio.run(main())


def served(requests: list, qrels_path: Path | None, rounds: int, linger: float, log: Path
           ) -> tuple[list[float], list[list[str]]]:
    """``prp serve`` at ``linger`` ms, or with no ``qrels_path`` the floor (:func:`floor_server`)."""
    port = free_port()
    if qrels_path is None:
        command = [sys.executable, str(Path(__file__).resolve()), "--floor-server", str(port)]
    else:
        command = [sys.executable, "-m", "prp.cli", "serve", "--judge", "perfect", "--qrels", str(qrels_path),
                   "--port", str(port), "--batch-size", "8", "--cache", "none", "--k", "10",
                   "--linger-ms", str(linger)]
    proc = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"prp serve did not start: {log.read_text()}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        bodies = [{"query": r.query, "query_id": r.qid, "top_n": 10,
                   "documents": [{"id": d, "text": t} for d, t in zip(r.doc_ids, r.docs, strict=True)]}
                  for r in requests]
        times, orders = [], []
        with httpx.Client(base_url=url, timeout=60) as client:
            for body in bodies:  # warm-up
                answer = client.post("/v1/rerank", json=body).json()
                orders.append([body["documents"][x["index"]]["id"] for x in answer["results"]])
            for _ in range(rounds):
                for body in bodies:
                    started = time.perf_counter()
                    response = client.post("/v1/rerank", json=body)
                    times.append(time.perf_counter() - started)
                    response.raise_for_status()
        return times, orders
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DL19)
    p.add_argument("--docs", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--linger-ms", default="2,0", help="comma-separated --linger-ms values to serve with")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--floor-server", type=int, default=None, help=argparse.SUPPRESS)  # the floor's server
    args = p.parse_args()
    if args.floor_server is not None:
        floor_server(args.floor_server)
        return
    from prp.data import load_qrels, load_retrieve_results
    from prp.types import RankRequest

    qrels = load_qrels(args.data / "qrels.txt")
    requests = [RankRequest(r.query, r.docs[:args.docs], r.doc_ids[:args.docs], r.qid)
                for r in load_retrieve_results(args.data / "bm25-top100.json")]
    times, reference = in_process(requests, qrels, args.rounds)
    base = statistics.median(times)
    rows = [{"run": "in process", "mean_ms": round(1e3 * statistics.fmean(times), 3),
             "median_ms": round(1e3 * base, 3), "ratio": 1.0}]
    print(f"{len(requests)} queries x {args.docs} docs, {args.rounds} rounds, one client")
    print(f"{'run':>24} {'mean ms':>8} {'median ms':>9} {'ratio':>6}")
    print(f"{'in process':>24} {rows[0]['mean_ms']:>8.2f} {rows[0]['median_ms']:>9.2f} {1.0:>6.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        qrels_path = Path(tmp) / "qrels.txt"
        qrels_path.write_text("".join(f"{q} 0 {d} {g}\n" for q, graded in qrels.items()
                                      for d, g in graded.items()))
        floor_times, _ = served(requests, None, args.rounds, 0.0, Path(tmp) / "floor.log")
        floor = statistics.median(floor_times)
        for linger in args.linger_ms.split(","):
            times, orders = served(requests, qrels_path, args.rounds, float(linger), Path(tmp) / "serve.log")
            if orders != reference:
                raise SystemExit(f"--linger-ms {linger}: served rankings differ from in process")
            median = statistics.median(times)
            row = {"run": f"served, --linger-ms {linger}", "mean_ms": round(1e3 * statistics.fmean(times), 3),
                   "median_ms": round(1e3 * median, 3), "ratio": round(median / base, 2),
                   "service_ms": round(1e3 * (median - base - floor), 3)}
            rows.append(row)
            print(f"{row['run']:>24} {row['mean_ms']:>8.2f} {row['median_ms']:>9.2f} {row['ratio']:>6.2f}"
                  f"   service {row['service_ms']:.2f} ms", flush=True)
        row = {"run": "floor: this client to uvicorn, no work",
               "mean_ms": round(1e3 * statistics.fmean(floor_times), 3), "median_ms": round(1e3 * floor, 3),
               "ratio": round(floor / base, 2)}
        rows.append(row)
        print(f"{'floor (no work)':>24} {row['mean_ms']:>8.2f} {row['median_ms']:>9.2f} {row['ratio']:>6.2f}")
    if args.out:
        args.out.write_text(json.dumps({"command": " ".join(["python", "bench/serve_lone.py", *sys.argv[1:]]),
                                        "queries": len(requests), "docs": args.docs, "rounds": args.rounds,
                                        "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
