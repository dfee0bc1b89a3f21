"""Prompts paid under different bounds of the in-memory cache, 256 queries in flight.

    python bench/cache_bound.py > bench/results/cache-bound.txt

256 synthetic queries of 100 candidates (grades in DL19's proportions), the perfect simulated
judge, k=10, B=8, both orders, ``in_flight=256``: how many prompts each sorter pays, and how many
cache hits it gets, when ``MemoryCache`` keeps at most ``max_entries`` judgments (None: no
bound). The bound is large enough when the counts equal the unbounded ones.
"""

from __future__ import annotations

import random

from prp import MemoryCache, PerfectOracle, RankRequest, Reranker
from prp.planner import GRADE_DISTRIBUTION

QUERIES, N = 256, 100


def main() -> None:
    rng = random.Random(0)
    qrels, requests = {}, []
    for q in range(QUERIES):
        ids = [f"{q}-{i}" for i in range(N)]
        qrels[str(q)] = {d: rng.choices(list(GRADE_DISTRIBUTION), list(GRADE_DISTRIBUTION.values()))[0]
                         for d in ids}
        requests.append(RankRequest(f"query {q}", [f"text {d}" for d in ids], ids, str(q)))
    print(f"{'sorter':>10} {'max_entries':>11} {'prompts':>8} {'cache hits':>10} {'inferences':>10}")
    for sorter in ("heapsort", "bubblesort", "quicksort"):
        for bound in (50_000, 100_000, 200_000, 500_000, None):
            reranker = Reranker(PerfectOracle(qrels), sorter=sorter, k=10, in_flight=QUERIES,
                                cache=MemoryCache(max_entries=bound))
            cost = reranker.rank_many(requests)[0].run_cost
            print(f"{sorter:>10} {str(bound):>11} {cost.prompts:>8} {cost.cache_hits:>10} "
                  f"{cost.inferences:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
