"""The options of the grid commands (``prp simulate``, ``prp bench``) and their one runner.

``add_grid_args`` adds the dataset, the grid (sorters x orders x budgets x batch sizes) and the
engine options; ``check`` fails on bad values before any data or model is loaded;
``load(args)`` reads the dataset and builds the judge (a simulated judge reads the dataset's
qrels unless ``--qrels`` names others); ``run(args, requests, judge, caches, store)`` runs every
cell through :func:`prp.grid.run_grid`, with the engine options passed straight through.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path

from cost.model import DEFAULT_LATENCY
from prp.aggregate import AGGREGATES, ORDERS
from prp.cache import Cache
from prp.cli import backends
from prp.cli.argtypes import comma_choices, comma_ints, debias_arg, in_flight_or_all, latency_arg
from prp.data import load_dataset
from prp.grid import CellRun, cells, run_grid
from prp.oracles import ScoresOracle
from prp.oracles.base import Backend
from prp.reranker import Reranker
from prp.spec import split_specs
from prp.types import RankRequest


def add_grid_args(p: argparse.ArgumentParser, sorters: str, batch_sizes: list[int], judge: str) -> None:
    p.add_argument("--data", required=True, help="directory with bm25-top100.json and qrels.txt")
    p.add_argument("--queries", type=int, default=None, help="only the first N queries (default: all)")
    p.add_argument("--depth", type=int, default=100, help="candidates per query (first-stage top)")
    p.add_argument("--k", type=int, default=10, help="top documents to order (default 10)")
    p.add_argument("--sorters", default=sorters,
                   help="comma-separated specs: 'heapsort,quicksort:pivot=random,seed=1'")
    p.add_argument("--batch-sizes", type=comma_ints, default=batch_sizes)
    p.add_argument("--orders", type=comma_choices(ORDERS), default=["both"],
                   help="comma-separated prompt orders to compare: both, one, random (default: both)")
    p.add_argument("--aggregate", default="auto", choices=AGGREGATES)
    p.add_argument("--budgets", type=comma_ints, default=None,
                   help="per-query prompt budgets, one run each: '100,300,600' (default: none)")
    p.add_argument("--debias", type=debias_arg, default="off",
                   help="first-shown bias removed from margins: off, auto or a number (default: off)")
    p.add_argument("--infer", action="store_true",
                   help="answer comparisons the decided ones imply by transitivity, with no prompt")
    p.add_argument("--in-flight", type=in_flight_or_all, default=1,
                   help="queries scheduled together, or 'all' (default 1)")
    p.add_argument("--concurrency", type=int, default=1, help="inferences in flight at once")
    p.add_argument("--seed", type=int, default=0, help="seed for orders=random")
    p.add_argument("--latency", type=latency_arg, default=DEFAULT_LATENCY,
                   help="alpha,beta,gamma of t(batch) = alpha + beta*prompts + gamma*prompt_tokens")
    backends.add_backend_args(p, default=judge, qrels_default="the --data directory's qrels.txt")


def check(args: argparse.Namespace) -> None:
    for flag, value in (("--k", args.k), ("--depth", args.depth), ("--concurrency", args.concurrency),
                        ("--queries", args.queries), ("--in-flight", args.in_flight)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        raise ValueError(f"--batch-sizes must be integers >= 1, got {args.batch_sizes}")
    if args.budgets is not None and (not args.budgets or min(args.budgets) < 0):
        raise ValueError(f"--budgets must be integers >= 0, got {args.budgets}")
    if not split_specs(args.sorters):
        raise ValueError("--sorters names no sorter")
    for spec in split_specs(args.sorters):  # fail before loading data or a model
        Reranker(ScoresOracle({}), sorter=spec, k=args.k)


def load(args: argparse.Namespace) -> tuple[list[RankRequest], dict, Backend]:
    """The first ``--queries`` requests of ``--data`` at ``--depth``, its qrels, and the judge."""
    requests, qrels = load_dataset(args.data, args.depth)
    if args.judge in backends.SIMULATED and not args.qrels:
        args.qrels = str(Path(args.data) / "qrels.txt")  # the judge reads the dataset's qrels
        return requests[: args.queries], qrels, backends.make_backend(args, qrels)  # read once
    return requests[: args.queries], qrels, backends.make_backend(args)


def options(args: argparse.Namespace) -> dict:
    """The engine options every cell shares, straight from the command line."""
    return {"k": args.k, "aggregate": args.aggregate, "in_flight": args.in_flight,
            "concurrency": args.concurrency, "seed": args.seed, "latency": args.latency,
            "debias": args.debias, "infer": args.infer}


def run(args: argparse.Namespace, requests: Sequence[RankRequest], judge: Backend,
        caches: Iterable[bool] = (True,), store: Cache | None = None) -> Iterable[CellRun]:
    grid = cells(split_specs(args.sorters), args.batch_sizes, args.orders, args.budgets or [None], caches)
    return run_grid(requests, judge, grid, store, **options(args))
