"""``prp calibrate-oracle``: fit the noisy simulated judge to a real judge's answers on DL19.

Samples judged candidate pairs (about equally many per grade gap), asks the backend both
orders of each (through ``--cache-dir``, so judgments already paid for are reused), fits
``margin = scale*(grade gap) + bias + N(0, noise^2)`` and prints the ``--judge`` spec to give
``prp simulate``, with the judge's accuracy on grade>=2-vs-0 pairs by summed margin.

With ``--sets N`` it also asks N ``set`` questions (``--set-size`` judged candidates in a random
order) and fits the noisy judge's set choice model by maximum likelihood
(:func:`prp.oracles.fit.fit_slot_bias`): the bias of each slot (the last is 0) and the noise of
a set answer; ``--set-answers FILE``
fits it from recorded set answers instead (JSON lines as ``bench/shapes_real.py --answers``
writes them). The spec printed then ends with ``slot_bias=...,set_noise=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from prp.cache import make_cache
from prp.cli.backends import add_backend_args, make_backend
from prp.cli.helptext import HelpFormatter
from prp.data import load_dataset
from prp.judging import judge_all
from prp.oracles.fit import (
    both_orders,
    fit_noisy,
    fit_slot_bias,
    read_set_answers,
    sample_pairs,
    sample_sets,
    set_answers,
)


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
    p.add_argument("--sets", type=int, default=0,
                   help="set questions to ask, to fit the slot bias of set answers (default: 0, none)")
    p.add_argument("--set-size", type=int, default=4, help="passages shown in each set question (default: 4)")
    p.add_argument("--set-answers", default=None,
                   help="fit the set model from these recorded set answers (JSON lines) instead of asking "
                        "(default: none)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    add_backend_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.pairs < 2 or args.batch_size < 1 or args.depth < 2:
        raise ValueError("--pairs must be >= 2, --batch-size >= 1 and --depth >= 2")
    if args.sets < 0 or not 2 <= args.set_size <= 26:
        raise ValueError("--sets must be >= 0 and --set-size between 2 and 26")
    if args.sets and args.set_answers:
        raise ValueError("give --sets (ask the judge) or --set-answers (read recorded answers), not both")
    recorded = None
    if args.set_answers:
        with open(args.set_answers, encoding="utf-8") as fh:
            recorded = read_set_answers(fh.readlines(), args.set_answers)
    requests, qrels = load_dataset(args.data, args.depth)
    pairs = sample_pairs(requests, qrels, args.pairs, args.seed)
    prompts = both_orders(pairs)
    backend = make_backend(args)
    cache = make_cache(args.cache_dir) if args.cache_dir else None
    judgments = asyncio.run(judge_all(backend, prompts, args.batch_size, cache))
    fit, samples = fit_noisy(prompts, judgments, qrels)
    slots = None
    if args.sets:
        asked = sample_sets(requests, qrels, args.sets, args.set_size,
                            getattr(backend, "shape_templates", {}).get("set", "set-v1"), args.seed)
        recorded = set_answers(asked, asyncio.run(judge_all(backend, asked, args.batch_size, cache)))
    if recorded is not None:
        try:
            slots = fit_slot_bias(recorded, qrels, fit.scale)
        except ValueError as exc:
            if "set_noise cannot be fitted" not in str(exc):
                raise
            print(f"prp calibrate-oracle: {exc}; set_noise kept at the pairs' noise", file=sys.stderr)
            slots = fit_slot_bias(recorded, qrels, fit.scale, fit.noise)
    spec = fit.spec(args.seed) + ("" if slots is None else f",{slots.option()}")
    if args.samples_out:
        with open(args.samples_out, "w", encoding="utf-8") as fh:
            for s in samples:
                fh.write(json.dumps(asdict(s)) + "\n")
    report = {**asdict(fit), "judge": spec, "fitted_to": backend.name, "pairs": len(pairs),
              "sets": None if slots is None else asdict(slots)}
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"judge: {backend.name}")
    print(f"{len(pairs)} pairs, {fit.samples} judged prompts ({fit.unparsed} unparsed)")
    print(f"margin = {fit.scale:.3f} * grade gap + {fit.bias:.3f} + N(0, {fit.noise:.3f}^2)")
    print(f"grade>=2 vs 0 pairs ordered right by summed margin: {fit.pair_accuracy:.0%} "
          f"of {fit.strong_pairs}")
    if slots is not None:
        print(f"set answers: {slots.answers}; slot bias {', '.join(f'{b:.3f}' for b in slots.slot_bias)} "
              f"(last slot 0), set noise {slots.set_noise:.3f}; "
              f"the first slot won {slots.first_slot_share:.0%} "
              f"(the fitted model: {slots.expected_first_slot_share:.0%})")
    print(f"simulate with: --judge {spec}")
    return 0
