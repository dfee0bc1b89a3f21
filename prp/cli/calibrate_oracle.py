"""``prp calibrate-oracle``: fit the noisy simulated judge to a real judge's answers on DL19.

Samples judged candidate pairs (about equally many per grade gap), asks the backend both
orders of each (through ``--cache-dir``, so judgments already paid for are reused), fits
``margin = scale*(grade gap) + bias + N(0, noise^2)`` and prints the ``--judge`` spec to give
``prp simulate``, with the judge's accuracy on grade>=2-vs-0 pairs by summed margin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from prp.cache import make_cache
from prp.cli.backends import add_backend_args, make_backend
from prp.cli.helptext import HelpFormatter
from prp.data import load_dataset
from prp.judging import judge_all
from prp.oracles.fit import both_orders, fit_noisy, sample_pairs


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("calibrate-oracle", help="fit the noisy simulated judge to a real judge",
                            description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", required=True, help="directory with bm25-top100.json and qrels.txt")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--pairs", type=int, default=60, help="candidate pairs to sample (2 prompts each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--cache-dir", default=None,
                   help="persistent judgment cache, reused and filled (default: none)")
    p.add_argument("--samples-out", default=None,
                   help="write every (gap, margin) sample as JSON lines (default: not written)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    add_backend_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.pairs < 2 or args.batch_size < 1 or args.depth < 2:
        raise ValueError("--pairs must be >= 2, --batch-size >= 1 and --depth >= 2")
    requests, qrels = load_dataset(args.data, args.depth)
    pairs = sample_pairs(requests, qrels, args.pairs, args.seed)
    prompts = both_orders(pairs)
    backend = make_backend(args)
    cache = make_cache(args.cache_dir) if args.cache_dir else None
    judgments = asyncio.run(judge_all(backend, prompts, args.batch_size, cache))
    fit, samples = fit_noisy(prompts, judgments, qrels)
    if args.samples_out:
        with open(args.samples_out, "w", encoding="utf-8") as fh:
            for s in samples:
                fh.write(json.dumps(asdict(s)) + "\n")
    report = {**asdict(fit), "judge": fit.spec(args.seed), "fitted_to": backend.name, "pairs": len(pairs)}
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"judge: {backend.name}")
    print(f"{len(pairs)} pairs, {fit.samples} judged prompts ({fit.unparsed} unparsed)")
    print(f"margin = {fit.scale:.3f} * grade gap + {fit.bias:.3f} + N(0, {fit.noise:.3f}^2)")
    print(f"grade>=2 vs 0 pairs ordered right by summed margin: {fit.pair_accuracy:.0%} "
          f"of {fit.strong_pairs}")
    print(f"simulate with: --judge {fit.spec(args.seed)}")
    return 0
