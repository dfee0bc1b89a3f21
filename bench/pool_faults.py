"""Wall time and requests of the HTTP backend's endpoint pool with a dead, a hanging and a
flapping endpoint, against the fault-free pool (loopback only).

    python bench/pool_faults.py --out bench/results/pool-faults.txt

Ranks ``--queries`` synthetic queries of ``--depth`` candidates (quicksort, k=10, B=8, orders
both, every query in flight, concurrency 4) through the OpenAI-compatible backend against judges
on 127.0.0.1 (tests/http_fault_server.py) that take ``--delay`` seconds an answer, with the
client's default timeout (60 s) and hedging. Pools: three healthy endpoints (the reference),
then one of the three dead (refused port), hanging (accepts, never answers) or flapping (its
server stopped and restarted every ``--flap`` seconds), then all three faults beside one
healthy endpoint. Prints, for each: wall time and its ratio to the fault-free run, judging
requests, retries, hedged copies, and whether every ranking equals the fault-free one. Each
configuration is run ``--repeats`` times; the median wall time is reported.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the loopback fault server the test suite uses

from http_fault_server import Endpoints  # noqa: E402

from prp import Reranker  # noqa: E402
from prp.cache import MemoryCache  # noqa: E402
from prp.oracles.http import OpenAIBackend  # noqa: E402

POOLS = {"fault-free": ["ok", "ok", "ok"], "dead": ["ok", "dead", "ok"], "hanging": ["ok", "hang", "ok"],
         "flapping": ["ok", "flap", "ok"], "dead+hanging+flapping": ["dead", "hang", "flap", "ok"]}


def synthetic(queries: int, depth: int, seed: int = 0):
    rng = random.Random(seed)
    relevance, requests = {}, []
    for q in range(queries):
        ids = [f"q{q}d{i}" for i in range(depth)]
        relevance.update((d, rng.random()) for d in ids)
        requests.append({"qid": f"q{q}", "query": f"query {q}", "docs": [f"doc {d} text" for d in ids],
                         "doc_ids": ids})
    return relevance, requests


def run(kinds: list[str], relevance, requests, args) -> tuple[float, list, dict]:
    with Endpoints(kinds, relevance, delay=args.delay, flap_period=args.flap, record=False) as pool:
        backend = OpenAIBackend("fake-judge", pool.urls, tokenizer="chars", seed=0)
        reranker = Reranker(backend, sorter="quicksort", k=10, batch_size=8, concurrency=4,
                            cache=MemoryCache(), in_flight=None)
        started = time.perf_counter()
        results = reranker.rank_many(requests)
        seconds = time.perf_counter() - started
    return seconds, [r.doc_ids for r in results], backend.stats()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--depth", type=int, default=30)
    ap.add_argument("--delay", type=float, default=0.05, help="seconds a judge takes to answer")
    ap.add_argument("--flap", type=float, default=1.0, help="seconds between a flapping server's flips")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    relevance, requests = synthetic(args.queries, args.depth)
    lines = [f"command: python bench/pool_faults.py {' '.join(sys.argv[1:])}".rstrip(),
             f"{args.queries} queries x depth {args.depth}, quicksort k=10 B=8, concurrency 4, answers take "
             f"{args.delay} s, client timeout 60 s; median of {args.repeats} runs",
             f"{'pool':<24} {'wall s':>7} {'ratio':>6} {'requests':>9} {'retries':>8} {'hedges':>7}"
             "  rankings"]
    reference, base = None, None
    for name, kinds in POOLS.items():
        runs = [run(kinds, relevance, requests, args) for _ in range(args.repeats)]
        seconds = statistics.median(r[0] for r in runs)
        if reference is None:
            reference, base = runs[0][1], seconds
        same = all(r[1] == reference for r in runs)
        stats = runs[len(runs) // 2][2]
        line = (f"{name:<24} {seconds:>7.2f} {seconds / base:>6.2f} {stats['judge_requests']:>9} "
                f"{stats['retries']:>8} {stats['hedges']:>7}  {'all equal' if same else 'DIFFER'}")
        print(line, flush=True)
        lines.append(line)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
