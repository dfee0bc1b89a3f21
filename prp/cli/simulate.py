"""``prp simulate``: the cost-model simulator over your candidates with a simulated judge.

The input is ``--data DIR`` (the TREC DL layout) or ``--input FILE --qrels QRELS`` (any
candidates file ``prp rerank --input`` takes, with TREC qrels); see :mod:`prp.cli.grid`.
For each (sorter, orders, budget, batch size, cache off/on) it reranks every query and prints
the per-query means of the cost ledger (input and output tokens included: the simulated judges
estimate them, :func:`cost.model.estimate_question_tokens`) and nDCG@10, one JSON object per line (``--format
jsonl``) or a table. The judge is ``--judge`` (default ``perfect``; ``noisy`` - fitted to
qwen2.5-coder-1.5b unless given options -, ``noisy:...`` or ``replay:path=...``; an LLM judge
works too, but ``prp bench`` is the command for those). Queries the qrels do not judge are
named in one ``warning:`` line on stderr.
"""

from __future__ import annotations

import argparse
import json

from prp.cli import grid
from prp.cli.argtypes import comma_choices
from prp.cli.backends import backend_label
from prp.cli.collector import input_loaded
from prp.cli.helptext import HelpFormatter
from prp.cli.tables import aligned, cell
from prp.evaluate import mean_measure
from prp.grid import Cell, CellRun, run_cell
from prp.oracles.judges import SIMULATED, make_judge
from prp.types import RankRequest

COLUMNS = ("comparisons", "unique_comparisons", "cache_hits", "inferred", "prompts", "inferences", "rounds",
           "virtual_prompts", "virtual_inferences", "predicted_seconds", "input_tokens", "cached_tokens",
           "output_tokens")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("simulate", help="rank sorters by cost with a simulated judge",
                            description=__doc__, formatter_class=HelpFormatter)
    grid.add_grid_args(p, sorters="heapsort,bubblesort,quicksort,mergesort,allpair",
                       batch_sizes=[1, 2, 4, 8, 16, 64], judge="perfect")
    p.add_argument("--cache", type=comma_choices(("off", "on")), default=["off", "on"],
                   help="off, on, or off,on (default off,on)")
    p.add_argument("--format", default="table", choices=["table", "jsonl"])
    p.set_defaults(run=run)


def row(run: CellRun, qrels: dict, judge: str, options: dict) -> dict:
    """One cell's row: its settings, the ledger's per-query means and nDCG@10."""
    c, means = run.cell, run.cost.per_query()
    in_flight = options.get("in_flight", 1)
    out = {"sorter": c.sorter, "batch_size": c.batch_size, "cache": c.cache, "orders": c.orders,
           "aggregate": options.get("aggregate", "auto"), "judge": judge, "queries": len(run.results),
           "in_flight": "all" if in_flight is None else in_flight,
           "budget": None if c.budget is None else c.budget.to_json(),
           "debias": options.get("debias", "off"), "infer": options.get("infer", False)}
    out.update({name: round(means[name], 4) for name in COLUMNS})
    out["ndcg@10"] = round(mean_measure("nDCG@10", {r.qid: r.doc_ids for r in run.results}, qrels), 4)
    return out


def simulate_one(requests: list[RankRequest], qrels: dict, cell: Cell, judge: str = "perfect",
                 **options: object) -> dict:
    """One cell with a simulated judge (a spec: perfect, noisy:..., replay:path=...), as a row."""
    options.setdefault("in_flight", 1)
    reads = judge.partition(":")[0] in SIMULATED
    done = run_cell(requests, make_judge(judge, qrels=qrels if reads else None), cell, **options)
    return row(done, qrels, judge, options)


def run(args: argparse.Namespace) -> int:
    grid.check(args)
    requests, qrels, judge = grid.load(args)
    rows = []
    with input_loaded():  # the collector stops rescanning the loaded input
        for done in grid.run(args, requests, judge, caches=[w == "on" for w in args.cache]):
            rows.append(grid.priced(row(done, qrels, backend_label(args), grid.options(args)),
                                    args.price_table))
            if args.format == "jsonl":
                print(json.dumps(rows[-1]), flush=True)
    if args.format == "table":
        print(format_table(rows))
    return 0


def format_table(rows: list[dict]) -> str:
    heads = ["sorter", "B", "cache", "budget", "cmp", "uniq", "hits", "inferred", "prompts", "infer",
             "v.infer", "rounds", "in_tok", "cached", "out_tok", "pred_s", "ndcg@10"]
    keys = ["sorter", "batch_size", "cache", "budget", "comparisons", "unique_comparisons", "cache_hits",
            "inferred", "prompts", "inferences", "virtual_inferences", "rounds", "input_tokens",
            "cached_tokens", "output_tokens", "predicted_seconds", "ndcg@10"]
    return aligned([heads, *([cell(row[key]) for key in keys] for row in rows)], left=())
