"""What ``prp rerank`` and its Ray executor (:mod:`prp.cli.rerank_ray`) share: the query
record, building the Reranker from the options, writing a query's ranking, and the run summary.
Both import it; it imports neither."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from cost.ledger import Ledger
from prp.cli.backends import backend_label
from prp.cli.exits import EXIT_BUDGET, EXIT_OK
from prp.data import trec_run_lines
from prp.judgment import describe_unparsed
from prp.latency import LatencyChoice
from prp.oracles.base import Backend
from prp.planner import PREDICTED
from prp.reranker import RankRequest, Reranker
from prp.result import RankedResult


@dataclass(frozen=True)
class Query:
    """One query of the input: the candidates to rerank and the docids beyond ``--depth``."""

    head: RankRequest
    tail: tuple[str, ...]

    @property
    def qid(self) -> str:
        return str(self.head.qid)


def reranker_for(args: argparse.Namespace, backend: Backend, cache: object) -> Reranker:
    return Reranker(backend, sorter=args.sorter, k=args.k, batch_size=args.batch_size,
                    orders=args.orders, aggregate=args.aggregate, cache=cache, in_flight=args.in_flight,
                    concurrency=args.concurrency, latency=args.latency, max_inferences=args.max_inferences,
                    budget=args.budget, debias=args.debias, infer=args.infer,
                    prices=getattr(args, "prices", None))



def write_query(args: argparse.Namespace, query: Query, result: RankedResult, fh: TextIO) -> None:
    """The output lines of ``query`` (its reranked ``result``, then its tail) to ``fh``."""
    ids = result.doc_ids + list(query.tail)
    if args.output_format == "trec":
        fh.writelines(trec_run_lines(query.qid, ids))
        return
    ranking = [{"docid": d, "rank": r, "score": len(ids) - r + 1} for r, d in enumerate(ids, 1)]
    fh.write(json.dumps({"qid": query.qid, "query": query.head.query, "cut": result.cut,
                         "ranking": ranking}) + "\n")


def run_settings(args: argparse.Namespace) -> dict:
    return {"judge": backend_label(args), "sorter": args.sorter, "k": args.k, "depth": args.depth,
            "batch_size": args.batch_size, "orders": args.orders, "aggregate": args.aggregate,
            "in_flight": "all" if args.in_flight is None else args.in_flight,
            "concurrency": args.concurrency, "max_inferences": args.max_inferences,
            "max_unparsed": args.max_unparsed, "cache_dir": args.cache_dir}


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a run (exit 130); the message says what was kept."""


def report(args: argparse.Namespace, queries: Sequence[Query], results: Sequence[RankedResult],
            seconds: float, refit: LatencyChoice | None, http: dict | None) -> int:
    requests = None if http is None else http["requests"]
    ledger = Ledger.total([r.cost for r in results])
    ledger.wall_seconds = seconds
    cut = [r.qid for r in results if r.cut]
    summary = {"queries": len(results), "cut_queries": len(cut), "cut_qids": cut,
               "candidates": sum(len(q.head.docs) + len(q.tail) for q in queries),
               "reranked_candidates": sum(len(q.head.docs) for q in queries),
               "cost": ledger.to_dict(), "per_query": ledger.per_query(), "http_requests": requests,
               "latency": args.latency_choice.to_dict(),
               "latency_refit": None if refit is None else refit.to_dict(), "output": args.output,
               "output_format": args.output_format, "seconds": seconds, "settings": run_settings(args)}
    if http is not None:
        summary["http"] = http
    stream = sys.stderr if args.output == "-" else sys.stdout
    if args.format == "json":
        print(json.dumps(summary), file=stream)
    else:
        print(_summary_text(summary, ledger, args.latency_choice, refit), file=stream)
    if ledger.unparsed:
        print(f"prp rerank: warning: {describe_unparsed(ledger)} and were counted as ties "
              "(--max-unparsed FRACTION makes this an error)", file=sys.stderr)
    if cut and args.max_inferences is None:  # only --budget: reaching it is the plan, not a failure
        unit = " prompts" if args.budget.unit == "prompts" else ""
        print(f"prp rerank: {len(cut)} of {len(results)} queries reached the --budget of "
              f"{args.budget}{unit} before their sorter finished (best ranking so far written)",
              file=sys.stderr)
    elif cut:
        print(f"prp rerank: the budget of {args.max_inferences} inferences ran out: {len(cut)} of "
              f"{len(results)} queries cut (best ranking so far written; {', '.join(cut[:10])}"
              f"{', ...' if len(cut) > 10 else ''})", file=sys.stderr)
        return EXIT_BUDGET
    return EXIT_OK


def _summary_text(summary: dict, ledger: Ledger, latency: LatencyChoice, refit: LatencyChoice | None) -> str:
    s = summary["settings"]
    means = summary["per_query"]
    requests = summary["http_requests"]
    lines = [
        f"reranked {summary['queries']} queries ({summary['cut_queries']} cut) with {s['judge']}, "
        f"{s['sorter']} k={s['k']} depth={s['depth']} B={s['batch_size']} orders={s['orders']} "
        f"in {summary['seconds']:.1f} s",
        f"total: {ledger.comparisons} comparisons, {ledger.prompts} prompts, {ledger.inferences:g} "
        f"inferences{'' if requests is None else f' ({requests} HTTP requests)'}, {ledger.cache_hits} "
        f"cache hits, {ledger.unparsed} unparsed",
        f"seconds: {summary['seconds']:.1f} measured, {ledger.predicted_seconds:.1f} predicted for these "
        f"batches by the latency model {latency.describe()}",
    ]
    if refit is not None:
        lines.append(f"latency model {refit.source}: {refit.describe().split(' (')[0]}")
    lines += ["per query: " + ", ".join(f"{means[name]:.2f} {name.replace('_', ' ')}" for name in PREDICTED),
              *_http_lines(summary.get("http")),
              f"output: {summary['output']} ({summary['output_format']})"]
    return "\n".join(lines)


def _http_lines(http: dict | None) -> list[str]:
    """The HTTP backend's real requests, beside the inferences, and each endpoint's share."""
    if not http:
        return []
    lines = [f"http: {http['requests']} requests ({http['judge_requests']} judging, "
             f"{http['tokenizer_requests']} tokenizer; {http['retries']} retries, {http['hedges']} "
             f"hedged copies; prompt lists {http['lists']})"]
    for e in http["endpoints"] if len(http["endpoints"]) > 1 or http["retries"] else []:
        lines.append(f"  {e['url']}: {e['requests']} requests, {e['failures']} failures, {e['state']}")
    return lines


