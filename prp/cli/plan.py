"""``prp plan``: which sorter is cheapest for n candidates, top k, batches of B?

Simulates every sorter through the real engine on synthetic DL19-like candidate lists with a
simulated judge (:mod:`prp.planner`), ranks them by ``--objective`` (inferences, predicted
seconds or rounds per query; ties by fewer rounds, then name) and explains the pick. Figures
are per-query means over ``--trials`` seeds x ``--queries`` queries. Exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import textwrap

from cost.model import DEFAULT_LATENCY
from prp.cli.argtypes import in_flight_or_all, latency_arg
from prp.cli.helptext import HelpFormatter
from prp.cli.tables import aligned
from prp.planner import DEFAULT_JUDGE, OBJECTIVES, Prediction, default_sorters, explain, plan
from prp.spec import split_specs

HEADS = ("#", "sorter", "comparisons", "prompts", "inferences", "rounds", "seconds", "ndcg@10")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("plan", help="predict the cheapest sorter for a reranking shape",
                            description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--n", type=int, required=True, help="candidates per query")
    p.add_argument("--k", type=int, default=10, help="top documents to order")
    p.add_argument("--batch-size", type=int, default=8, help="most prompts per inference (B)")
    p.add_argument("--latency", type=latency_arg, default=DEFAULT_LATENCY,
                   help="alpha,beta,gamma of t(batch) = alpha + beta*prompts + gamma*prompt_tokens")
    p.add_argument("--objective", default="inferences", choices=OBJECTIVES)
    p.add_argument("--orders", default="both", choices=["both", "one", "random"])
    p.add_argument("--in-flight", type=in_flight_or_all, default=1,
                   help="queries scheduled together, or 'all'")
    p.add_argument("--queries", type=int, default=1, help="synthetic queries per trial")
    p.add_argument("--concurrency", type=int, default=1, help="inferences in flight at once")
    p.add_argument("--trials", type=int, default=5, help="seeds averaged over")
    p.add_argument("--judge", default=DEFAULT_JUDGE, metavar="NAME[:OPTIONS]",
                   help="the simulated judge: perfect, noisy (bare: fitted to qwen2.5-coder-1.5b), or "
                        f"noisy:scale=1,bias=0.5,noise=1.0,seed=0 (default: {DEFAULT_JUDGE})")
    p.add_argument("--sorters", default=None,
                   help="comma-separated specs (default: all but allpair when n > 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sorters = split_specs(args.sorters) if args.sorters else None
    predictions = plan(args.n, args.k, args.batch_size, sorters=sorters, objective=args.objective,
                       orders=args.orders, latency=args.latency, queries=args.queries,
                       in_flight=args.in_flight, concurrency=args.concurrency, trials=args.trials,
                       judge=args.judge, seed=args.seed)
    paragraph = explain(predictions, args.objective)
    if args.format == "json":
        print(json.dumps({"settings": _settings(args, sorters), "choice": predictions[0].sorter,
                          "predictions": [p.to_dict() for p in predictions],
                          "explanation": paragraph}, indent=2))
    else:
        print(format_table(predictions))
        print()
        print(textwrap.fill(paragraph, width=100))
    return 0


def _settings(args: argparse.Namespace, sorters: list[str] | None) -> dict:
    latency = args.latency
    return {"n": args.n, "k": args.k, "batch_size": args.batch_size, "objective": args.objective,
            "orders": args.orders, "in_flight": "all" if args.in_flight is None else args.in_flight,
            "queries": args.queries, "concurrency": args.concurrency, "trials": args.trials,
            "judge": args.judge, "seed": args.seed,
            "latency": {"alpha": latency.alpha, "beta": latency.beta, "gamma": latency.gamma},
            "sorters": sorters or list(default_sorters(args.n))}


def format_table(predictions: list[Prediction]) -> str:
    """The predictions as aligned columns, sorter names left-aligned, numbers right-aligned."""
    rows = [[str(rank), p.sorter, f"{p.comparisons:.1f}", f"{p.prompts:.1f}", f"{p.inferences:.1f}",
             f"{p.rounds:.1f}", f"{p.predicted_seconds:.2f}", f"{p.ndcg10:.3f}"]
            for rank, p in enumerate(predictions, start=1)]
    return aligned([list(HEADS), *rows], left=(1,))
