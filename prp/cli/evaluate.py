"""``prp evaluate``: effectiveness of a TREC run against graded qrels, through ir-measures.

Measures (trec_eval conventions, ranking by the run's scores):
  nDCG@10              graded gains (the qrels grades, linear)
  RR(rel=REL)@10       MRR@10: reciprocal rank of the first passage graded >= --rel
  R(rel=REL)@K         Recall@K: share of the passages graded >= --rel found in the top --k
--rel defaults to 2 (TREC DL passage ranking: grades 2 and 3 are relevant); --k to 10.

Rules: queries are those of the run that have judgments (trec_eval without -c: a judged query
missing from the run is not counted, and is named on stderr); run queries without judgments are
skipped and named on stderr. A docid listed twice for one query is an error. --per-query adds
one row (or JSON entry) per query before the means.

Exit codes: 0 ok; 2 bad input (missing or malformed files, bad options, nothing to evaluate).
"""

from __future__ import annotations

import argparse
import json
import sys

from prp.cli.helptext import HelpFormatter
from prp.cli.tables import aligned
from prp.data import load_qrels, load_run
from prp.evaluate import evaluate_run


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("evaluate", help="nDCG@10, MRR@10 and Recall@k of a TREC run",
                            description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("run_file", metavar="RUN", help="TREC run: qid Q0 docid rank score tag")
    p.add_argument("--qrels", required=True, help="TREC qrels: qid 0 docid grade")
    p.add_argument("--k", type=int, default=10, help="cutoff of Recall@k (default 10)")
    p.add_argument("--rel", type=int, default=2, help="least grade that counts as relevant for "
                                                      "MRR and recall (default 2)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--per-query", action="store_true", help="also one row per query")
    p.set_defaults(run=run)


def measures(k: int, rel: int) -> list[str]:
    """The measure strings evaluated, in ir-measures syntax."""
    return ["nDCG@10", f"RR(rel={rel})@10", f"R(rel={rel})@{k}"]


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    if args.rel < 1:
        raise ValueError(f"--rel must be >= 1, got {args.rel}")
    scored = {qid: {docid: score for docid, score, _ in rows}
              for qid, rows in load_run(args.run_file).items()}
    qrels = load_qrels(args.qrels)
    _warn_coverage(scored, qrels, args)
    names = measures(args.k, args.rel)
    per_query, means = evaluate_run(scored, qrels, names)
    if not per_query:
        raise ValueError(f"no query of {args.run_file} has judgments in {args.qrels}")
    if args.format == "json":
        out: dict = {"run": args.run_file, "qrels": args.qrels, "queries": len(per_query),
                     "measures": names, "mean": means}
        if args.per_query:
            out["per_query"] = per_query
        print(json.dumps(out))
    else:
        print(format_table(names, per_query, means, args.per_query))
    return 0


def _warn_coverage(scored: dict, qrels: dict, args: argparse.Namespace) -> None:
    unjudged = [qid for qid in scored if qid not in qrels]
    missing = [qid for qid in qrels if qid not in scored]
    for label, qids, where in (("without judgments (skipped)", unjudged, args.qrels),
                               ("judged but absent from the run (not counted)", missing, args.run_file)):
        if qids:
            shown = ", ".join(qids[:10]) + (", ..." if len(qids) > 10 else "")
            print(f"prp evaluate: {len(qids)} queries {label} [{where}]: {shown}", file=sys.stderr)


def format_table(names: list[str], per_query: dict[str, dict[str, float]], means: dict[str, float],
                 with_queries: bool) -> str:
    rows = [[qid, *(f"{per_query[qid][n]:.4f}" for n in names)] for qid in per_query] if with_queries else []
    rows.append([f"mean ({len(per_query)})", *(f"{means[n]:.4f}" for n in names)])
    return aligned([["query", *names], *rows])
