"""The options of the grid commands (``prp simulate``, ``prp bench``) and their one runner.

``add_grid_args`` adds the input, the grid (sorters x orders x budgets x batch sizes) and the
engine options; ``check`` fails on bad values before any data or model is loaded;
``load(args)`` reads the input and builds the judge; ``run(args, requests, judge, caches,
store)`` runs every cell through :func:`prp.grid.run_grid`, with the engine options passed
straight through. Rules:

* **Input**, one of: ``--data DIR``, a directory in the TREC DL layout (``bm25-top100.json``
  and ``qrels.txt``); or ``--input FILE --qrels QRELS``, any candidates file ``prp rerank``
  takes (candidates JSONL or a retrieve_results JSON list, :func:`prp.data.load_candidates`)
  with TREC qrels. The metrics (nDCG@10, MRR@10) score against ``--data``'s ``qrels.txt`` or
  ``--qrels``; a simulated judge reads ``--qrels`` when given, else ``--data``'s qrels.
  ``--queries N`` keeps the first N queries, ``--depth D`` the first D candidates of each.
* **No judgments.** Queries none of whose candidates the qrels judge are named once, before
  any cell runs, in a ``prp CMD: warning:`` line on stderr (:func:`prp.oracles.simulated.no_judgments`):
  a simulated judge has no grades to rank them by, and the metrics cannot score them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from cost.model import DEFAULT_LATENCY
from cost.prices import Prices, load_prices
from prp.aggregate import AGGREGATES, ORDERS
from prp.cache import Cache
from prp.cli import backends
from prp.cli.argtypes import (
    comma_budgets,
    comma_choices,
    comma_ints,
    debias_arg,
    in_flight_or_all,
    latency_arg,
)
from prp.data import DataError, load_candidates, load_dataset, load_qrels
from prp.grid import CellRun, cells, run_grid
from prp.oracles import ScoresOracle
from prp.oracles.base import Backend
from prp.oracles.simulated import no_judgments, unjudged
from prp.reranker import Reranker
from prp.spec import split_specs
from prp.types import RankRequest


def add_grid_args(p: argparse.ArgumentParser, sorters: str, batch_sizes: list[int], judge: str) -> None:
    src = p.add_argument_group("input (--data, or --input with --qrels)")
    src.add_argument("--data", default=None, metavar="DIR",
                     help="directory in the TREC DL layout: bm25-top100.json and qrels.txt (default: none)")
    src.add_argument("--input", default=None, metavar="FILE",
                     help="candidates JSONL, or a retrieve_results JSON list, scored against --qrels "
                          "(default: none)")
    p.add_argument("--queries", type=int, default=None, help="only the first N queries (default: all)")
    p.add_argument("--depth", type=int, default=100,
                   help="candidates per query: the first-stage top D (default 100)")
    p.add_argument("--k", type=int, default=10, help="top documents to order (default 10)")
    p.add_argument("--sorters", default=sorters,
                   help="comma-separated specs: 'heapsort,quicksort:pivot=random,seed=1'")
    p.add_argument("--batch-sizes", type=comma_ints, default=batch_sizes)
    p.add_argument("--orders", type=comma_choices(ORDERS), default=["both"],
                   help="comma-separated prompt orders to compare: both, one, random (default: both)")
    p.add_argument("--aggregate", default="auto", choices=AGGREGATES)
    p.add_argument("--budgets", type=comma_budgets, default=None,
                   help="per-query budgets, one run each: prompts '100,300,600', or with a unit "
                        "'20000tokens,40000tokens', '10inferences', '2s', '0.002usd' (with --prices) "
                        "(default: none)")
    p.add_argument("--debias", type=debias_arg, default="off",
                   help="first-shown bias removed from margins: off, auto or a number (default: off)")
    p.add_argument("--prices", default=None, metavar="FILE",
                   help="price table (TOML or JSON: input, cached_input, output in dollars per million "
                        "tokens): every row adds usd per query, and budgets may be in usd "
                        "(default: none)")
    p.add_argument("--infer", action="store_true",
                   help="answer comparisons the decided ones imply by transitivity, with no prompt")
    p.add_argument("--in-flight", type=in_flight_or_all, default=1,
                   help="queries scheduled together, or 'all' (default 1)")
    p.add_argument("--concurrency", type=int, default=1, help="inferences in flight at once")
    p.add_argument("--seed", type=int, default=0, help="seed for orders=random")
    p.add_argument("--latency", type=latency_arg, default=DEFAULT_LATENCY,
                   help="alpha,beta,gamma[,delta] of t(batch) = alpha + beta*prompts + gamma*prompt_tokens "
                        "+ delta*output_tokens")
    backends.add_backend_args(p, default=judge, qrels_help=(
        "TREC qrels ('qid 0 docid grade' lines): with --input, required, the metrics' judgments and "
        "what perfect/noisy read; with --data, what perfect/noisy read (default: the --data "
        "directory's qrels.txt, which the metrics always use)"))


def check(args: argparse.Namespace) -> None:
    if bool(args.data) == bool(args.input):
        raise ValueError("give --data DIR (the TREC DL layout), or --input FILE with --qrels QRELS"
                         + (", not both" if args.data else ""))
    if args.input and not args.qrels:
        raise ValueError("--input needs --qrels QRELS: the TREC qrels that score the runs")
    for flag, value in (("--k", args.k), ("--depth", args.depth), ("--concurrency", args.concurrency),
                        ("--queries", args.queries), ("--in-flight", args.in_flight)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        raise ValueError(f"--batch-sizes must be integers >= 1, got {args.batch_sizes}")
    if args.budgets is not None and not args.budgets:
        raise ValueError("--budgets names no budget")
    if not split_specs(args.sorters):
        raise ValueError("--sorters names no sorter")
    args.price_table = load_prices(args.prices) if args.prices else None
    for spec in split_specs(args.sorters):  # fail before loading data or a model
        Reranker(ScoresOracle({}), sorter=spec, k=args.k)


def priced(row: dict, prices: Prices | None) -> dict:
    """``row`` with ``usd`` per query (its input and output tokens under ``prices``), if given."""
    if prices is not None:
        row["usd"] = round(prices.usd(row["input_tokens"], row["output_tokens"], row["cached_tokens"]), 8)
    return row


def load(args: argparse.Namespace) -> tuple[list[RankRequest], dict, Backend]:
    """The first ``--queries`` requests of the input at ``--depth``, the qrels that score them,
    and the judge; a ``warning:`` line on stderr names the queries they do not judge."""
    if args.input:
        depth = args.depth
        requests = [RankRequest(r.query, list(r.docs)[:depth], list(r.doc_ids or [])[:depth], r.qid)
                    for r in load_candidates(args.input)]
        if not requests:
            raise DataError(f"no queries in {args.input}")
        qrels = load_qrels(args.qrels)
        shared = args.judge in backends.SIMULATED  # the judge reads the same qrels: read once
    else:
        requests, qrels = load_dataset(args.data, args.depth)
        shared = args.judge in backends.SIMULATED and not args.qrels
        if shared:
            args.qrels = str(Path(args.data) / "qrels.txt")  # the judge reads the dataset's qrels
    requests = requests[: args.queries]
    if shared:
        judge = backends.make_backend(args, qrels)
    elif args.input and args.judge not in backends.SIMULATED:  # --qrels scores the runs only
        judge = backends.make_backend(argparse.Namespace(**{**vars(args), "qrels": None}))
    else:
        judge = backends.make_backend(args)
    for line in judgment_warnings(requests, qrels, judge, shared):
        print(f"prp {args.command}: warning: {line}", file=sys.stderr, flush=True)
    return requests, qrels, judge


def judgment_warnings(requests: Sequence[RankRequest], qrels: dict, judge: Backend,
                      shared: bool) -> list[str]:
    """What to say of the queries the qrels do not judge: one line when the judge reads the
    metrics' qrels (or is no simulated judge), else one for the judge and one for the metrics."""
    metrics = "the metrics cannot score them (0, or left out)"
    scored = no_judgments(qrels, requests)
    judged = unjudged(judge, requests)
    if shared:
        return [] if judged is None else [judged.message(f"{judged.consequence}, and {metrics}")]
    lines = [] if judged is None else [judged.message()]
    return lines + ([] if scored is None else [scored.message(metrics)])


def options(args: argparse.Namespace) -> dict:
    """The engine options every cell shares, straight from the command line."""
    return {"k": args.k, "aggregate": args.aggregate, "in_flight": args.in_flight,
            "concurrency": args.concurrency, "seed": args.seed, "latency": args.latency,
            "debias": args.debias, "infer": args.infer, "prices": args.price_table}


def run(args: argparse.Namespace, requests: Sequence[RankRequest], judge: Backend,
        caches: Iterable[bool] = (True,), store: Cache | None = None) -> Iterable[CellRun]:
    grid = cells(split_specs(args.sorters), args.batch_sizes, args.orders, args.budgets or [None], caches)
    return run_grid(requests, judge, grid, store, **options(args))
