"""Predicted against measured: is the cost planner right about what a plan costs?

For each plan (shape x sorter x B), the planner's prediction (:func:`prp.planner.predict`:
synthetic DL19-like queries, the planner's default simulated judge ``noisy:scale=1,bias=0.5,
noise=1.0``, 5 trials) next to the same plan measured on every query of a real data directory
(:func:`prp.planner.simulate` over the directory's queries, with the same simulated judge reading
its qrels, one query in flight as the planner assumes), per query: inferences, rounds, input
tokens, cached-prefix tokens and output tokens, and predicted / measured. A unit passes when
the ratio is within 0.8-1.2; the last line counts the passes for inferences, rounds and tokens
(input plus output).

Usage: python bench/plan_check.py [--depth 100] DATA_DIR [DATA_DIR ...]
       > bench/results/plan-check.txt
"""

from __future__ import annotations

import argparse
import time

from prp.data import load_dataset
from prp.planner import predict, simulate

PLANS = [("quicksort", 8), ("quicksort", 64), ("heapsort", 8), ("mergesort", 8), ("tournament", 8),
         ("setwise:k=4", 8), ("tournament:k=4", 8), ("listwise", 8), ("listwise", 1)]
UNITS = ("inferences", "rounds", "tokens", "cached_tokens")
K = 10


def figures(ledger_means: dict) -> dict:
    return {"inferences": ledger_means["inferences"], "rounds": ledger_means["rounds"],
            "tokens": ledger_means["input_tokens"] + ledger_means["output_tokens"],
            "cached_tokens": ledger_means["cached_tokens"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+")
    parser.add_argument("--depth", type=int, default=100)
    args = parser.parse_args()
    passed = total = 0
    print(f"# bench/plan_check.py --depth {args.depth} {' '.join(args.data)}: k={K}, one query in flight; "
          "pred = planner (synthetic), meas = the data's queries, same simulated judge")
    head = f"{'data':<16}{'plan':<22}{'B':>4}" + "".join(
        f"{'pred ' + u[:6]:>14}{'meas ' + u[:6]:>14}{'ratio':>7}" for u in UNITS)
    print(head)
    for data in args.data:
        requests, qrels = load_dataset(data, depth=args.depth)
        n = min(len(r.doc_ids) for r in requests)
        start = time.perf_counter()
        for sorter, batch in PLANS:
            p = predict(sorter, n, K, batch)
            predicted = {"inferences": p.inferences, "rounds": p.rounds, "tokens": p.tokens,
                         "cached_tokens": p.cached_tokens}
            ledger, _ndcg = simulate(sorter, requests, qrels, k=K, batch_size=batch)
            measured = figures(ledger.per_query())
            cells = []
            for unit in UNITS:
                ratio = predicted[unit] / measured[unit] if measured[unit] else float("nan")
                if unit != "cached_tokens":
                    total += 1
                    passed += 0.8 <= ratio <= 1.2
                cells.append(f"{predicted[unit]:>14,.1f}{measured[unit]:>14,.1f}{ratio:>7.2f}")
            name = data.rstrip("/").rsplit("/", 1)[-1][:15]
            print(f"{name:<16}{sorter:<22}{batch:>4}" + "".join(cells), flush=True)
        print(f"# {data}: {len(requests)} queries of {n} candidates, {time.perf_counter() - start:.0f} s")
    print(f"# within +-20 % (inferences, rounds, tokens): {passed} of {total}")


if __name__ == "__main__":
    main()
