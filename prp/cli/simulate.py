"""``prp simulate``: the cost-model simulator over a TREC DL dataset with a simulated judge.

For each (sorter, batch size, cache off/on) it reranks every query and prints the per-query
means of the cost ledger and nDCG@10, one JSON object per line (``--format jsonl``) or a table.
"""

from __future__ import annotations

import argparse
import json

from cost.model import DEFAULT_LATENCY, LatencyModel
from prp.cli.argtypes import comma_ints, debias_arg, in_flight_or_all
from prp.cli.helptext import HelpFormatter
from prp.cli.tables import aligned, cell
from prp.data import load_dataset
from prp.evaluate import mean_measure
from prp.oracles import make_simulated_oracle
from prp.reranker import RankRequest, Reranker
from prp.spec import split_specs

COLUMNS = ("comparisons", "unique_comparisons", "cache_hits", "inferred", "prompts", "inferences", "rounds",
           "virtual_prompts", "virtual_inferences", "predicted_seconds")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("simulate", help="rank sorters by cost with a simulated judge",
                            description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", required=True, help="directory with bm25-top100.json and qrels.txt")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--depth", type=int, default=100, help="candidates per query (first-stage top)")
    p.add_argument("--sorters", default="heapsort,bubblesort,quicksort,mergesort,allpair",
                   help="comma-separated, with options: 'heapsort,quicksort:pivot=random,seed=1'")
    p.add_argument("--batch-sizes", type=comma_ints, default=[1, 2, 4, 8, 16, 64])
    p.add_argument("--orders", default="both", choices=["both", "one", "random"])
    p.add_argument("--aggregate", default="auto", choices=["auto", "margin", "consistent"])
    p.add_argument("--oracle", default="perfect",
                   help="perfect | noisy:scale=1,bias=1.5,noise=1.0,seed=0 | replay:path=SET.json.gz")
    p.add_argument("--budgets", type=comma_ints, default=None,
                   help="per-query prompt budgets, a row each: '100,300,600' (default: no budget)")
    p.add_argument("--debias", type=debias_arg, default="off",
                   help="first-shown bias removed from margins: off, auto or a number (default: off)")
    p.add_argument("--infer", action="store_true",
                   help="answer comparisons the decided ones imply by transitivity, with no prompt")
    p.add_argument("--in-flight", type=in_flight_or_all, default=1,
                   help="queries scheduled together, or 'all'")
    p.add_argument("--concurrency", type=int, default=1, help="inferences in flight at once")
    p.add_argument("--cache", default="off,on", help="off, on, or off,on")
    p.add_argument("--latency", type=LatencyModel.parse, default=DEFAULT_LATENCY,
                   help="alpha,beta,gamma of t(batch) = alpha + beta*prompts + gamma*prompt_tokens")
    p.add_argument("--queries", type=int, default=None, help="only the first N queries (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for orders=random")
    p.add_argument("--format", default="table", choices=["table", "jsonl"])
    p.set_defaults(run=run)


def simulate_one(requests: list[RankRequest], qrels: dict, *, sorter: str, batch_size: int,
                 cache: bool, args: argparse.Namespace, budget: int | None = None) -> dict:
    oracle = make_simulated_oracle(args.oracle, qrels)
    debias, infer = getattr(args, "debias", "off"), getattr(args, "infer", False)
    reranker = Reranker(oracle, sorter=sorter, k=args.k, batch_size=batch_size, orders=args.orders,
                        aggregate=args.aggregate, cache=cache, in_flight=args.in_flight,
                        concurrency=args.concurrency, seed=args.seed, latency=args.latency,
                        budget=budget, debias=debias, infer=infer)
    results = reranker.rank_many(requests)
    means = reranker.last_cost.per_query()
    row = {"sorter": sorter, "batch_size": batch_size, "cache": cache, "orders": args.orders,
           "aggregate": args.aggregate, "oracle": args.oracle, "queries": len(requests),
           "in_flight": "all" if args.in_flight is None else args.in_flight,
           "budget": budget, "debias": debias, "infer": infer}
    row.update({name: round(means[name], 4) for name in COLUMNS})
    row["ndcg@10"] = round(mean_measure("nDCG@10", {r.qid: r.doc_ids for r in results}, qrels), 4)
    return row


def _check(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    if args.depth < 1:
        raise ValueError(f"--depth must be >= 1, got {args.depth}")
    if args.in_flight is not None and args.in_flight < 1:
        raise ValueError(f"--in-flight must be >= 1 or 'all', got {args.in_flight}")
    if args.budgets is not None and (not args.budgets or min(args.budgets) < 0):
        raise ValueError(f"--budgets must be integers >= 0, got {args.budgets}")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        raise ValueError(f"--batch-sizes must be integers >= 1, got {args.batch_sizes}")


def run(args: argparse.Namespace) -> int:
    _check(args)
    caches = []
    for word in args.cache.split(","):
        if word.strip() not in ("on", "off"):
            raise ValueError(f"--cache takes on, off or off,on; got {args.cache!r}")
        caches.append(word.strip() == "on")
    requests, qrels = load_dataset(args.data, args.depth)
    requests = requests[: args.queries]
    sorters = split_specs(args.sorters)
    rows = []
    for sorter in sorters:
        for budget in args.budgets or [None]:
            for batch_size in args.batch_sizes:
                for cache in caches:
                    row = simulate_one(requests, qrels, sorter=sorter, batch_size=batch_size,
                                       cache=cache, args=args, budget=budget)
                    rows.append(row)
                    if args.format == "jsonl":
                        print(json.dumps(row), flush=True)
    if args.format == "table":
        print(format_table(rows))
    return 0


def format_table(rows: list[dict]) -> str:
    heads = ["sorter", "B", "cache", "budget", "cmp", "uniq", "hits", "inferred", "prompts", "infer",
             "v.infer", "rounds", "pred_s", "ndcg@10"]
    keys = ["sorter", "batch_size", "cache", "budget", "comparisons", "unique_comparisons", "cache_hits",
            "inferred", "prompts", "inferences", "virtual_inferences", "rounds", "predicted_seconds",
            "ndcg@10"]
    return aligned([heads, *([cell(row[key]) for key in keys] for row in rows)], left=())

