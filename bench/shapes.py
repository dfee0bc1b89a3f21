"""Question shapes on DL19 (or any data directory in its layout) with the perfect judge.

For every ranker (pair and k-wise) and B in 1, 8, 64 with all queries in flight: inferences,
rounds, prompts, input and output tokens per query (the simulated judge's estimate,
:func:`cost.model.estimate_question_tokens`: one rule for every shape), nDCG@10 and how many
queries got the exact perfect top-10 (the stable sort by grade, first-stage order on ties). Then
rounds per query one query at a time under ``perfect:ties=off``.

Usage: python bench/shapes.py [DATA_DIR] > bench/results/shapes-dl19.txt
"""

from __future__ import annotations

import sys
import time

from cost.ledger import Ledger
from prp import PerfectOracle, Reranker
from prp.data import load_dataset
from prp.evaluate import mean_measure

PAIR = ["quicksort", "heapsort", "mergesort", "tournament", "allpair"]
KWISE = ["setwise:k=3", "setwise:k=4", "listwise:window=20,step=10", "tournament:k=4",
         "tournament:k=4,depth=1", "tournament:k=20"]
ONE_AT_A_TIME_ONLY = ["tournament:k=4,depth=1,ahead=0", "tournament:k=20,depth=1,ahead=0"]
K = 10


def exact(results, qrels) -> int:
    """Queries whose top-10 is the stable sort of their candidates by grade."""
    hits = 0
    for r in results:
        grades = qrels.get(r.qid, {})
        docs = r.docs
        ideal = sorted(range(len(docs)),
                       key=lambda i: (-grades.get(docs[i].doc_id, 0), docs[i].original_rank))
        hits += [r.docs[i].doc_id for i in ideal[:K]] == r.doc_ids[:K]
    return hits


def line(cells) -> str:
    return f"{cells[0]:<30}" + "".join(f"{c:>12}" for c in cells[1:])


def main(data: str) -> None:
    requests, qrels = load_dataset(data, depth=100)
    print(f"# bench/shapes.py {data}: {len(requests)} queries, depth 100, k={K}, perfect judge, "
          "pairs with orders=both (the default; quicksort also with orders=one)")
    print(line(["sorter", "B", "inferences", "rounds", "prompts", "in_tokens", "out_tokens", "ndcg@10",
                "exact"]))
    tokens: dict[str, float] = {}
    for sorter, orders in [*((s, "both") for s in PAIR), ("quicksort", "one"), *((s, "one") for s in KWISE)]:
        label = sorter if orders == "both" or sorter in KWISE else f"{sorter} (orders=one)"
        for batch in (1, 8, 64):
            started = time.perf_counter()
            rr = Reranker(PerfectOracle(qrels), sorter=sorter, k=K, batch_size=batch, orders=orders,
                          in_flight=None)
            results = rr.rank_many(requests)
            cost = Ledger.total([r.cost for r in results]).per_query()
            ndcg = mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels)
            tokens[label] = cost["input_tokens"]
            print(line([label, batch, round(cost["inferences"], 1), round(cost["rounds"], 1),
                        round(cost["prompts"], 1), round(cost["input_tokens"]),
                        round(cost["output_tokens"]), round(ndcg, 4),
                        f"{exact(results, qrels)}/{len(results)}"]), flush=True)
            print(f"#   {time.perf_counter() - started:.1f} s", file=sys.stderr)
    base = tokens["quicksort"]
    print(f"\n# input tokens per query against pairwise quicksort (orders=both, {base:.0f}):")
    for label, value in tokens.items():
        print(f"#   {label:<36} {value:>10.0f}  {value / base:6.3f}  (1/{base / value:.1f})")
    print("\n# rounds per query, one query at a time (in_flight=1), perfect:ties=off, B=64")
    print(line(["sorter", "rounds", "max rounds", "prompts", "ndcg@10"]))
    for sorter, orders in [*((s, "both") for s in PAIR),
                           *((s, "one") for s in KWISE + ONE_AT_A_TIME_ONLY)]:
        rr = Reranker(PerfectOracle(qrels, ties=False), sorter=sorter, k=K, batch_size=64, orders=orders,
                      in_flight=1)
        results = rr.rank_many(requests)
        cost = Ledger.total([r.cost for r in results]).per_query()
        ndcg = mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels)
        print(line([sorter, round(cost["rounds"], 1), max(r.cost.rounds for r in results),
                    round(cost["prompts"], 1), round(ndcg, 4)]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/trec-dl-2019")
