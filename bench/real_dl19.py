"""A real-LLM rerank of DL19 queries through llama.cpp, next to BM25, with a persistent cache.

    python bench/real_dl19.py --model qwen2.5-coder-1.5b --queries 3 --depth 20 \
        --cache-dir /tmp/prp-cache --out bench/results/real-qwen1.5b-dl19.json

Reranks the first ``--queries`` DL19 queries (top ``--depth`` BM25 candidates, k=10,
quicksort, orders both, margin aggregation), prints nDCG@10 of BM25 and of the reranking on the
same queries with the cost ledger, then reranks again over the same cache and reports that run's
inferences (0 when the cache holds every judgment).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--queries", type=int, default=3)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sorter", default="quicksort")
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    requests, qrels = load_dataset(DATA, depth=args.depth)
    requests = requests[: args.queries]
    backend = LlamaCppBackend(args.model)
    report = {"model": backend.name, "queries": [r.qid for r in requests], "depth": args.depth,
              "k": 10, "sorter": args.sorter, "batch_size": args.batch_size, "orders": "both",
              "aggregate": "margin"}
    bm25 = {r.qid: list(r.doc_ids) for r in requests}
    report["bm25_ndcg@10"] = mean_measure("nDCG@10", bm25, qrels)
    for label in ("first_run", "rerun_same_cache"):
        reranker = Reranker(backend, sorter=args.sorter, k=10, batch_size=args.batch_size,
                            orders="both", aggregate="margin", cache=args.cache_dir, in_flight=None)
        started = time.perf_counter()
        results = reranker.rank_many(requests)
        cost = reranker.last_cost
        report[label] = {
            "ndcg@10": mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels),
            "per_query_ndcg@10": {r.qid: mean_measure("nDCG@10", {r.qid: r.doc_ids}, qrels)
                                  for r in results},
            "seconds": time.perf_counter() - started, **cost.to_dict()}
        print(f"{label}: nDCG@10 {report[label]['ndcg@10']:.4f} (BM25 {report['bm25_ndcg@10']:.4f}), "
              f"{cost.inferences:.0f} inferences, {cost.prompts} prompts, {cost.cache_hits} cache hits, "
              f"{report[label]['seconds']:.0f} s", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
