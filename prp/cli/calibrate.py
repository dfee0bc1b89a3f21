"""``prp calibrate``: fit the latency model to measured inferences and check it on held-out runs.

Measurements are records of single inferences (``prompts``, ``prompt_tokens``, ``seconds``), as
written by ``bench/llm_latency.py`` or collected from an engine's ``on_inference`` hook
(``Inference.record()``).
"""

from __future__ import annotations

import argparse
import json

from cost.calibrate import check, fit, load_records
from prp.cli.helptext import HelpFormatter


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("calibrate", help="fit alpha, beta, gamma of the latency model",
                            description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("measurements", nargs="+", help="JSON or JSON-lines files of measured inferences")
    p.add_argument("--holdout", action="append", default=[],
                   help="a run not used for fitting, to check the predictions on (repeatable)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    records = [r for path in args.measurements for r in load_records(path)]
    model = fit(records)
    report = {"alpha": model.alpha, "beta": model.beta, "gamma": model.gamma, "delta": model.delta,
              "latency": f"{model.alpha:.6g},{model.beta:.6g},{model.gamma:.6g},{model.delta:.6g}",
              "fit": check(model, records),
              "holdout": {path: check(model, load_records(path)) for path in args.holdout}}
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"t(batch) = {model.alpha:.4g} + {model.beta:.4g}*prompts + {model.gamma:.4g}*prompt_tokens"
          f" + {model.delta:.4g}*output_tokens   (--latency {report['latency']})")
    print(f"{'run':<40} {'inferences':>10} {'measured s':>11} {'predicted s':>12} {'total err':>10} "
          f"{'mean |err|':>11} {'R2':>6}")
    rows = [("fitted on (" + ", ".join(args.measurements) + ")", report["fit"])]
    rows += list(report["holdout"].items())
    for label, c in rows:
        print(f"{label[:40]:<40} {c['inferences']:>10} {c['measured_seconds']:>11.2f} "
              f"{c['predicted_seconds']:>12.2f} {c['total_error_pct']:>9.1f}% "
              f"{c['mean_abs_error_pct']:>10.1f}% {c['r2']:>6.3f}")
    return 0
