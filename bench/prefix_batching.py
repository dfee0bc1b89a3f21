"""Cached-prefix tokens with and without prefix-cache-aware batching, on a data directory.

The scheduler packs each step's prompts so that prompts sharing a prefix (same template and
query, and for a pair the same first passage) sit side by side (``prp.scheduler``'s
prefix order); before, they were packed in first-asked order. For each ranker and B, with the
perfect judge and every query in flight: input tokens per query, the cached-prefix tokens of both
orders (:mod:`cost.prefix`: a prefix sent in the same inference or the one before), their share of
the input, and inferences (the same in both: ordering moves prompts between batches, never adds
any). Rankings are checked equal between the two orders.

The "asked" arm swaps in the old order for the run (a benchmark-only patch of the scheduler).

Usage: python bench/prefix_batching.py [DATA_DIR] > bench/results/prefix-batching-dl19.txt
"""

from __future__ import annotations

import sys

from cost.ledger import Ledger
from prp import PerfectOracle, Reranker, scheduler
from prp.data import load_dataset

PLANS = [("quicksort", 8), ("quicksort", 64), ("heapsort", 8), ("mergesort", 8), ("tournament", 8),
         ("allpair", 64), ("setwise:k=4", 8), ("tournament:k=4", 8), ("listwise", 8)]


def run(requests, qrels, sorter: str, batch: int):
    reranker = Reranker(PerfectOracle(qrels), sorter=sorter, k=10, batch_size=batch, in_flight=None)
    results = reranker.rank_many(requests)
    return Ledger.total([r.cost for r in results]).per_query(), [r.doc_ids for r in results]


def main(data: str) -> None:
    requests, qrels = load_dataset(data, depth=100)
    print(f"# bench/prefix_batching.py {data}: {len(requests)} queries, depth 100, k=10, perfect judge, "
          "all in flight; tokens per query")
    print(f"{'sorter':<18}{'B':>4}{'inferences':>12}{'in_tokens':>12}{'cached asked':>14}"
          f"{'cached prefix':>15}{'share asked':>13}{'share prefix':>14}{'gain':>7}")
    grouped = scheduler._prefix_order
    for sorter, batch in PLANS:
        ours, ranked = run(requests, qrels, sorter, batch)
        scheduler._prefix_order = lambda step: list(step.pending)
        try:
            asked, ranked_asked = run(requests, qrels, sorter, batch)
        finally:
            scheduler._prefix_order = grouped
        assert ranked == ranked_asked and asked["inferences"] == ours["inferences"], sorter
        tokens = ours["input_tokens"]
        gain = f"{ours['cached_tokens'] / asked['cached_tokens']:.2f}" if asked["cached_tokens"] else "-"
        print(f"{sorter:<18}{batch:>4}{ours['inferences']:>12.1f}{tokens:>12,.0f}{asked['cached_tokens']:>14,.0f}"
              f"{ours['cached_tokens']:>15,.0f}{asked['cached_tokens'] / tokens:>13.1%}"
              f"{ours['cached_tokens'] / tokens:>14.1%}{gain:>7}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/trec-dl-2019")
