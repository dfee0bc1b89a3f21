"""A real-LLM rerank of DL19 queries through llama.cpp, next to BM25, with a persistent cache.

    python bench/real_dl19.py --model qwen2.5-coder-1.5b --queries 3 --depth 20 \
        --cache-dir /tmp/prp-cache --out bench/results/real-qwen1.5b-dl19.json --rerun
    python bench/real_dl19.py --model qwen2.5-coder-1.5b --queries 3 --depth 20 \
        --sorters quicksort,mergesort,heapsort,bubblesort --cache-dir /tmp/prp-cache \
        --out bench/results/real-qwen1.5b-sorters.json

Reranks the first ``--queries`` DL19 queries (top ``--depth`` BM25 candidates, k=10, orders
both, margin aggregation, all queries in flight) with each sorter in turn over one shared cache,
so a sorter pays only for pairs no earlier sorter judged (the replay method). Prints and writes,
after each sorter, nDCG@10 next to BM25's on the same queries and the cost ledger: physical
inferences (what this sorter paid given the shared cache) and virtual ones (what it would cost
alone). ``--rerun`` reranks once more over the same cache and reports that run's inferences.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prp import Reranker  # noqa: E402
from prp.data import load_dataset  # noqa: E402
from prp.evaluate import mean_measure  # noqa: E402
from prp.oracles.llamacpp import LlamaCppBackend  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "trec-dl-2019"


def run_once(backend, requests, qrels, sorter: str, args) -> dict:
    reranker = Reranker(backend, sorter=sorter, k=10, batch_size=args.batch_size, orders="both",
                        aggregate="margin", cache=args.cache_dir, in_flight=None)
    started = time.perf_counter()
    results = reranker.rank_many(requests)
    cost = results[0].run_cost
    row = {"sorter": sorter,
           "ndcg@10": mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels),
           "per_query_ndcg@10": {r.qid: mean_measure("nDCG@10", {r.qid: r.doc_ids}, qrels)
                                 for r in results},
           "seconds": time.perf_counter() - started, **cost.to_dict()}
    q = len(requests)
    print(f"{sorter}: nDCG@10 {row['ndcg@10']:.4f}, per query: {cost.inferences / q:.1f} inferences "
          f"({cost.virtual_inferences / q:.1f} alone), {cost.prompts / q:.1f} prompts, "
          f"{cost.comparisons / q:.1f} comparisons, {cost.rounds / q:.1f} rounds, {row['seconds']:.0f} s",
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--queries", type=int, default=3)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sorters", default="quicksort")
    ap.add_argument("--rerun", action="store_true", help="rerank again over the same cache")
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    requests, qrels = load_dataset(DATA, depth=args.depth)
    requests = requests[: args.queries]
    backend = LlamaCppBackend(args.model)
    report = {"model": backend.name, "queries": [r.qid for r in requests], "depth": args.depth,
              "k": 10, "batch_size": args.batch_size, "orders": "both", "aggregate": "margin",
              "bm25_ndcg@10": mean_measure("nDCG@10", {r.qid: list(r.doc_ids) for r in requests}, qrels),
              "runs": []}
    print(f"BM25 nDCG@10 on these queries: {report['bm25_ndcg@10']:.4f}", flush=True)
    sorters = [s for s in args.sorters.split(",") if s]
    if args.rerun:
        sorters.append(sorters[0])
    for sorter in sorters:
        report["runs"].append(run_once(backend, requests, qrels, sorter, args))
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
