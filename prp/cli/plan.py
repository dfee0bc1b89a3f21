"""``prp plan``: which question shape, sorter and batch size is cheapest for n candidates, top k?

Simulates every plan (shape x sorter x B: pairwise sorters, set and list ones, at each of
``--batch-size``'s sizes) through the real scheduler on synthetic DL19-like candidate lists with a
simulated judge (:mod:`prp.planner`), predicts its cost per query in every unit (inferences,
rounds, prompts, input / cached-prefix / output tokens, dollars with ``--prices``, predicted
seconds), ranks the plans by ``--objective`` (ties by fewer rounds, then name), marks the cheapest
and explains the pick. With ``--budget`` every plan is simulated under it and the best simulated
nDCG@10 comes first. Figures are per-query means over ``--trials`` seeds x ``--queries`` queries.
Exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import textwrap

from cost.model import DEFAULT_LATENCY
from cost.prices import load_prices
from prp.cli.argtypes import budget_arg, comma_choices, comma_ints, in_flight_or_all, latency_arg
from prp.cli.helptext import HelpFormatter
from prp.cli.tables import aligned
from prp.planner import DEFAULT_JUDGE, OBJECTIVES, SHAPES, Prediction, default_sorters, explain, plan
from prp.spec import split_specs

HEADS = ("#", "shape", "sorter", "B", "prompts", "inferences", "rounds", "in_tok", "cached", "out_tok",
         "usd", "seconds", "ndcg@10")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("plan", help="predict the cheapest shape, sorter and B for a reranking job",
                            description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--n", type=int, required=True, help="candidates per query")
    p.add_argument("--k", type=int, default=10, help="top documents to order")
    p.add_argument("--batch-size", type=comma_ints, default=[8],
                   help="most prompts per inference (B); several, comma-separated, are each planned "
                        "(default 8)")
    p.add_argument("--latency", type=latency_arg, default=DEFAULT_LATENCY,
                   help="alpha,beta,gamma[,delta] of t(batch) = alpha + beta*prompts + gamma*prompt_tokens "
                        "+ delta*output_tokens")
    p.add_argument("--objective", default="inferences", choices=OBJECTIVES,
                   help="what the plan minimizes per query: inferences, rounds (the latency floor), "
                        "tokens (input plus output), usd (needs --prices) or predicted seconds")
    p.add_argument("--shapes", type=comma_choices(SHAPES), default=list(SHAPES),
                   help="question shapes the judge answers: default sorters asking others are left out "
                        "(default: pair,set,list)")
    p.add_argument("--budget", type=budget_arg, default=None,
                   help="per-query budget (300, 40000tokens, 10inferences, 2s, 0.002usd): every plan is "
                        "simulated under it and the best simulated nDCG@10 comes first (default: none)")
    p.add_argument("--prices", default=None, metavar="FILE",
                   help="price table (TOML or JSON: input, cached_input, output in dollars per million "
                        "tokens): adds usd, and allows --objective usd and budgets in usd (default: none)")
    p.add_argument("--orders", default="both", choices=["both", "one", "random"])
    p.add_argument("--in-flight", type=in_flight_or_all, default=1,
                   help="queries scheduled together, or 'all'")
    p.add_argument("--queries", type=int, default=1, help="synthetic queries per trial")
    p.add_argument("--concurrency", type=int, default=1, help="inferences in flight at once")
    p.add_argument("--trials", type=int, default=20, help="seeds averaged over (default 20)")
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
    if not args.batch_size or min(args.batch_size) < 1:
        raise ValueError(f"--batch-size: each must be an integer >= 1, got {args.batch_size}")
    prices = load_prices(args.prices) if args.prices else None
    predictions = plan(args.n, args.k, args.batch_size, sorters=sorters, objective=args.objective,
                       shapes=tuple(args.shapes), orders=args.orders, latency=args.latency,
                       queries=args.queries, in_flight=args.in_flight, concurrency=args.concurrency,
                       trials=args.trials, judge=args.judge, seed=args.seed, prices=prices,
                       budget=args.budget)
    paragraph = explain(predictions, args.objective)
    if args.format == "json":
        best = predictions[0]
        print(json.dumps({"settings": _settings(args, sorters), "choice": best.sorter, "best": best.to_dict(),
                          "predictions": [p.to_dict() for p in predictions],
                          "explanation": paragraph}, indent=2))
    else:
        print(format_table(predictions, args.objective))
        print()
        print(textwrap.fill(paragraph, width=100))
    return 0


def _settings(args: argparse.Namespace, sorters: list[str] | None) -> dict:
    latency = args.latency
    return {"n": args.n, "k": args.k, "batch_sizes": args.batch_size, "objective": args.objective,
            "shapes": args.shapes, "budget": None if args.budget is None else str(args.budget),
            "prices": args.prices,
            "orders": args.orders, "in_flight": "all" if args.in_flight is None else args.in_flight,
            "queries": args.queries, "concurrency": args.concurrency, "trials": args.trials,
            "judge": args.judge, "seed": args.seed,
            "latency": {"alpha": latency.alpha, "beta": latency.beta, "gamma": latency.gamma,
                        "delta": latency.delta},
            "sorters": sorters or list(default_sorters(args.n, args.shapes))}


def format_table(predictions: list[Prediction], objective: str = "inferences") -> str:
    """The predictions as aligned columns, best first: the cheapest in ``objective`` is marked
    ``*`` (with a budget the best is the first row, by simulated nDCG@10, and may not be)."""
    cheapest = min(predictions, key=lambda p: p.value(objective))
    rows = [[f"{rank}{'*' if p is cheapest else ''}", p.shape, p.sorter, str(p.batch_size),
             f"{p.prompts:.1f}", f"{p.inferences:.1f}", f"{p.rounds:.1f}", f"{p.input_tokens:,.0f}",
             f"{p.cached_tokens:,.0f}", f"{p.output_tokens:,.0f}", "-" if p.usd is None else f"{p.usd:.6f}",
             f"{p.predicted_seconds:.2f}", f"{p.ndcg10:.3f}"]
            for rank, p in enumerate(predictions, start=1)]
    return aligned([list(HEADS), *rows], left=(1, 2))
