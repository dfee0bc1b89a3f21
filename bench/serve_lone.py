"""One client: ``prp serve`` over loopback against a long-lived in-process engine.

    python bench/serve_lone.py --out bench/results/serve-lone.json

Ranks TREC DL 2019 queries (``--docs`` of their BM25 candidates, top_n 10, the perfect judge,
B=8, orders both, no cache so every request does the same work) one request at a time:

* **in process**: one :class:`~prp.engine.Engine` opened once, ``await engine.rank(...)`` per
  request (the engine at its default linger, 0);
* **served**: ``prp serve --judge perfect --cache none --linger-ms L`` started here (one process
  per ``--linger-ms`` value), each request posted to /v1/rerank after the previous answer came
  back, by two clients in turn against the same server process, each on one keep-alive
  connection:

  - ``httpx``: an ``httpx.Client``, the client a Python program would usually reach for;
  - ``http.client``: the standard library's ``http.client.HTTPConnection``, one connection
    reused for every request (checked), far less Python per request than httpx.

  A timed request is the whole call as a program makes it: the body encoded (``json.dumps``, as
  httpx encodes it, so both send the same bytes), posted, the answer read in full, parsed
  (``json.loads``) and its status checked 200. Each round runs one pass per client, the first
  client alternating from round to round, so both see the same machine.

* **floor**: each client posting the same bodies to uvicorn as ``prp serve`` runs it (its loop,
  HTTP protocol and settings) in front of an app that reads the body and answers a fixed
  ten-result JSON at once: what that client and the server cost with no service behind them.

Why two clients: with httpx most of the distance between served and in process is httpx's own
Python (its floor is about half the in-process engine's time per request), a cost of the client,
not of the service. The stdlib client's floor is a fraction of that, so its ratio shows what
``prp serve`` itself adds to a request.

Each side first runs every query once (warm-up), then ``--rounds`` passes over the queries;
reported: mean and median milliseconds per request and the ratio of the medians, served / in
process (same run, same machine; the median resists other processes on the cores), and for a
served run ``service_ms``: its median less the in-process one and the same client's floor, the
service's own time per request (reading and checking the body, the answer, the engine hand-off).
Both clients' rankings (their warm-up answers) are checked equal to in process.

A served row also gives ``server_mean_ms``: the mean time the server itself spent on a timed
request, from its own ``prp_request_seconds`` histogram (its sum and count read from /metrics
before and after each pass, outside the timed requests): from the app's first look at the
request to its answer written (to uvicorn's buffer; it goes out at the end of that turn of the
loop): the service's app work and the engine as it runs in the server process (a mean: a
collection or a preemption inside a request counts in full). Less the in-process mean, it is the
part of the service's time spent inside the app; the rest is outside it (uvicorn, the kernel,
waking the server up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
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


CLIENTS = ("httpx", "http.client")
HEADERS = {"Content-Type": "application/json"}


def encode(body: dict) -> bytes:
    """``body`` as httpx encodes ``json=``: the same bytes from both clients."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def post_httpx(client: httpx.Client, body: dict) -> dict:
    response = client.post("/v1/rerank", json=body)
    answer = response.json()
    if response.status_code != 200:
        raise SystemExit(f"httpx: status {response.status_code}: {answer}")
    return answer


def post_stdlib(connection: http.client.HTTPConnection, body: dict) -> dict:
    connection.request("POST", "/v1/rerank", encode(body), HEADERS)
    response = connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        raise SystemExit(f"http.client: status {response.status}: {answer}")
    return answer


def server_seconds(url: str) -> tuple[float, float]:
    """The server's ``prp_request_seconds`` histogram: its sum (seconds) and count."""
    values = {}
    for line in httpx.get(url + "/metrics", timeout=60).text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("prp_request_seconds_sum", "prp_request_seconds_count"):
            values[name] = float(value)
    return values["prp_request_seconds_sum"], values["prp_request_seconds_count"]


def served(requests: list, qrels_path: Path | None, rounds: int, linger: float, log: Path,
           server: dict[str, list[float]] | None = None) -> dict[str, tuple[list[float], list[list[str]]]]:
    """``prp serve`` at ``linger`` ms, or with no ``qrels_path`` the floor (:func:`floor_server`),
    measured with each client in :data:`CLIENTS`: its times and its warm-up rankings. ``server``
    (``prp serve`` only): filled with each client's [seconds, requests] the server counted in its
    ``prp_request_seconds`` over the timed passes."""
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
        if encode(bodies[0]) != httpx.Request("POST", url, json=bodies[0]).content:
            raise SystemExit("http.client's body is not the bytes httpx sends")
        results: dict[str, tuple[list[float], list[list[str]]]] = {c: ([], []) for c in CLIENTS}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        with httpx.Client(base_url=url, timeout=60) as client, contextlib.closing(connection):
            post = {"httpx": lambda body: post_httpx(client, body),
                    "http.client": lambda body: post_stdlib(connection, body)}
            for name in CLIENTS:  # warm-up
                for body in bodies:
                    answer = post[name](body)
                    results[name][1].append([body["documents"][x["index"]]["id"] for x in answer["results"]])
            sock = connection.sock
            for i in range(rounds):
                for name in CLIENTS if i % 2 == 0 else CLIENTS[::-1]:
                    send, times = post[name], results[name][0]
                    before = server_seconds(url) if server is not None else None
                    for body in bodies:
                        started = time.perf_counter()
                        send(body)
                        times.append(time.perf_counter() - started)
                    if server is not None and before is not None:
                        after = server_seconds(url)
                        counted = server.setdefault(name, [0.0, 0.0])
                        counted[0] += after[0] - before[0]
                        counted[1] += after[1] - before[1]
            if sock is None or connection.sock is not sock:
                raise SystemExit("http.client did not keep its one connection")
        return results
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
    width = 36

    def show(row: dict) -> None:
        service = (f"   service {row['service_ms']:.2f} ms, server mean {row['server_mean_ms']:.2f} ms"
                   if "service_ms" in row else "")
        print(f"{row['run']:>{width}} {row['mean_ms']:>8.2f} {row['median_ms']:>9.2f} {row['ratio']:>6.2f}"
              f"{service}", flush=True)

    print(f"{len(requests)} queries x {args.docs} docs, {args.rounds} rounds, one client at a time")
    print(f"{'run':>{width}} {'mean ms':>8} {'median ms':>9} {'ratio':>6}")
    show(rows[0])
    with tempfile.TemporaryDirectory() as tmp:
        qrels_path = Path(tmp) / "qrels.txt"
        qrels_path.write_text("".join(f"{q} 0 {d} {g}\n" for q, graded in qrels.items()
                                      for d, g in graded.items()))
        floor_results = served(requests, None, args.rounds, 0.0, Path(tmp) / "floor.log")
        floor = {c: statistics.median(floor_results[c][0]) for c in CLIENTS}
        for linger in args.linger_ms.split(","):
            server: dict[str, list[float]] = {}
            results = served(requests, qrels_path, args.rounds, float(linger), Path(tmp) / "serve.log",
                             server)
            for client in CLIENTS:
                times, orders = results[client]
                if orders != reference:
                    raise SystemExit(f"--linger-ms {linger}, {client}: served rankings differ from in "
                                     "process")
                median = statistics.median(times)
                row = {"run": f"served, --linger-ms {linger}, {client}", "client": client,
                       "mean_ms": round(1e3 * statistics.fmean(times), 3),
                       "median_ms": round(1e3 * median, 3), "ratio": round(median / base, 2),
                       "service_ms": round(1e3 * (median - base - floor[client]), 3),
                       "server_mean_ms": round(1e3 * server[client][0] / server[client][1], 3)}
                rows.append(row)
                show(row)
        for client in CLIENTS:
            row = {"run": f"floor: {client} to uvicorn, no work", "client": client,
                   "mean_ms": round(1e3 * statistics.fmean(floor_results[client][0]), 3),
                   "median_ms": round(1e3 * floor[client], 3), "ratio": round(floor[client] / base, 2)}
            rows.append(row)
            show(row)
    if args.out:
        args.out.write_text(json.dumps({"command": " ".join(["python", "bench/serve_lone.py", *sys.argv[1:]]),
                                        "queries": len(requests), "docs": args.docs, "rounds": args.rounds,
                                        "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
