"""``prp rerank``: rerank the first-stage results of many queries with a pairwise judge.

Input, one of:
  --run RUN --topics TOPICS.tsv --docs DOCS.jsonl
        a TREC run, 'qid<TAB>query' lines and '{"docid", "text"}' JSON lines
  --input CANDIDATES.jsonl
        '{"qid", "query", "candidates": [{"docid", "text", "score"?}]}' per line, candidates in
        first-stage order (by score, descending and stable, when every candidate has one)
  --input bm25-top100.json
        the retrieve_results JSON list (a file starting with '[')
  --dataset ID [--run RUN]
        topics and passages through ir_datasets (prp[datasets]), e.g.
        msmarco-passage/trec-dl-2019/judged, where the data is local; candidates from RUN, or
        without it from the dataset's own first-stage results (scoreddocs)
  --input CANDIDATES.parquet
        one row per candidate (qid, query, docid, text, rank) or per query (qid, query, docids,
        texts) (prp[parquet]; see prp.parquet)

Rules:
  * The first --depth candidates of each query are reranked for the top --k; the output holds
    every candidate once: the reranked ones, then those beyond --depth in first-stage order.
    Ranks run 1..n and scores n..1.
  * --output-format trec writes 'qid Q0 docid rank score prp' lines; jsonl writes
    '{"qid", "query", "cut", "ranking": [{"docid", "rank", "score"}]}' per query. The file
    appears only once complete (written beside it, then renamed): a failed run leaves none.
  * Queries are ranked on one engine, --in-flight at a time (default 256): the prompts of the
    queries in flight share batches, and a query is admitted as soon as another finishes. Each
    query is written as soon as it and every query before it are done (to a temp file: the
    output still appears only once complete). Memory: the input, the in-memory cache (bounded),
    the queries in flight and those finished ahead of an earlier one.
  * --max-inferences is a budget for the whole run. When it is spent every unfinished query
    keeps the best ranking reached so far: the output is still written, its cut queries are
    marked ("cut": true in jsonl, named on stderr), and the exit code is 4.
  * --dry-run predicts the cost (comparisons, prompts, inferences, rounds, seconds) with the
    cost planner, a simulated judge on synthetic candidate lists of the same sizes, without
    building the backend: no model is loaded and nothing is written.
  * Seconds are predicted by a latency model: --latency if given, else the one refitted on
    earlier runs of the same judge in --cache-dir, else the judge's default (measured on a
    2-core CPU for the packaged llama.cpp models; a stated guess otherwise). Every prediction
    names the model it used. After a real run with --cache-dir, the model is refitted on the
    run's timed inferences and stored there (latency.json), so the next --dry-run uses it.
  * --cache-dir keeps every judgment on disk: a rerun pays only for what was not judged yet.
  * --executor ray ranks the same queries on Ray Data actors, one engine each, and writes the same
    output (also --output-format parquet); its cache, checkpoint and resume rules are in
    prp.cli.rerank_ray. Without --executor, Ray is never imported.
  * An input with no query ("no queries in FILE") is bad input. Ids holding whitespace, text
    that is not UTF-8 or holds lone surrogates, NaN scores... are refused with the file and line.
  * An unparsed answer (no A/B, a NaN or infinite margin) is asked once more, then counted as a
    tie and never cached; the share of such prompts is named on stderr. --max-unparsed FRACTION
    fails the run past that share (checked as each query finishes): exit 5, no output.
  * Ctrl-C or SIGTERM stops the run: one line on stderr says how many judgments were kept in
    --cache-dir (or that the in-memory ones are lost), no output is written, exit code 130.
  * A progress bar goes to stderr when it is a terminal, unless --quiet: prompts done (judged
    or found in the cache) out of the planner's estimate, with an ETA, and queries done,
    inferences and cache hits beside it. The summary goes to stdout (stderr when the run
    does), as text or, with --format json, one JSON object; it shows the HTTP requests beside
    the inferences when the backend counts them.

Exit codes: 0 ok; 2 bad input (missing or malformed files, unknown docids or queries, duplicate
docids, bad options, a backend that is not installed); 3 backend failure after its retries
(judgments already made stay in --cache-dir; no output is written); 4 budget exhausted (output
written, some queries cut by --max-inferences; a query that reaches its --budget is not an
error); 5 too many unparsed answers (above --max-unparsed; no output
written); 130 interrupted (Ctrl-C or SIGTERM; no output written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import TextIO

from cost.ledger import Ledger
from prp.aggregate import AGGREGATES, ORDERS
from prp.cache import make_cache
from prp.cli.argtypes import budget_arg, debias_arg, in_flight_or_all, latency_arg
from prp.cli.backends import OFFLINE, add_backend_args, judge_spec, make_backend
from prp.cli.collector import input_loaded
from prp.cli.executor import add_executor_args, check_executor_args
from prp.cli.helptext import HelpFormatter
from prp.cli.progress import Progress
from prp.cli.rerank_parts import Interrupted, Query, report, reranker_for, run_settings, write_query
from prp.data import (
    DataError,
    atomic_output,
    check_output_path,
    load_candidates,
    load_run_candidates,
)
from prp.engine import Engine
from prp.judging import Inference
from prp.judgment import UnparsedError, check_max_unparsed, describe_unparsed, unparsed_share
from prp.latency import KEEP, LatencyChoice, choose, judge_key, record_run
from prp.oracles import ScoresOracle
from prp.oracles.base import BackendError
from prp.oracles.simulated import unjudged
from prp.planner import PREDICTED
from prp.reranker import DEFAULT_IN_FLIGHT, RankRequest, Reranker
from prp.result import RankedResult


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("rerank", help="rerank first-stage results with a pairwise judge",
                            description=__doc__, formatter_class=HelpFormatter)
    src = p.add_argument_group("input")
    src.add_argument("--input",
                     help="candidates JSONL, or a retrieve_results JSON list (default: none; or --run)")
    src.add_argument("--run", dest="run_path", metavar="RUN",
                     help="TREC run of the first stage, with --topics and --docs (default: none; or --input)")
    src.add_argument("--topics", help="qid<TAB>query file, with --run (default: none)")
    src.add_argument("--docs", help='JSONL of {"docid", "text"}, with --run (default: none)')
    src.add_argument("--dataset", metavar="ID",
                     help="ir_datasets id: topics and passages from there, with --run or alone "
                          "(default: none)")
    src.add_argument("--queries", type=int, default=None, metavar="N",
                     help="only the first N queries (default: all)")
    out = p.add_argument_group("output")
    out.add_argument("--output", help="the reranked run: a path, or - for stdout (required unless "
                                      "--dry-run; default: none)")
    out.add_argument("--output-format", choices=["trec", "jsonl", "parquet"], default="trec",
                     help="parquet: with --executor ray only (default: trec)")
    out.add_argument("--format", choices=["text", "json"], default="text", help="the summary's format")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    out.add_argument("--dry-run", action="store_true", help="predict the cost; call no judge, write nothing")
    rk = p.add_argument_group("ranking")
    rk.add_argument("--sorter", default="quicksort",
                    help="name, spec (quicksort:pivot=median-of-three) or auto (the planner's pick)")
    rk.add_argument("--k", type=int, default=10, help="top documents to order (default 10)")
    rk.add_argument("--depth", type=int, default=100, help="candidates reranked per query (default 100)")
    rk.add_argument("--batch-size", type=int, default=8, help="most prompts per inference (default 8)")
    rk.add_argument("--orders", choices=ORDERS, default="both")
    rk.add_argument("--aggregate", choices=AGGREGATES, default="auto")
    rk.add_argument("--cache-dir", default=None, help="persistent judgment cache (default: in memory)")
    rk.add_argument("--in-flight", type=in_flight_or_all, default=DEFAULT_IN_FLIGHT, metavar="N|all",
                    help=f"queries ranked together (default {DEFAULT_IN_FLIGHT})")
    rk.add_argument("--concurrency", type=int, default=1, help="inferences in flight at once")
    rk.add_argument("--max-inferences", type=int, default=None, metavar="N",
                    help="budget for the whole run (default: no limit)")
    rk.add_argument("--budget", type=budget_arg, default=None, metavar="N[UNIT]",
                    help="most a query may spend: prompts (300), or 40inferences, 40000tokens (input, "
                         "estimated), 2s (predicted), 0.002usd (with --prices); active plans to a "
                         "budget in prompts, other sorters are cut (default: none)")
    rk.add_argument("--prices", default=None, metavar="FILE",
                    help="price table for a budget in usd (TOML or JSON: input, cached_input, output "
                         "in dollars per million tokens; default: none)")
    rk.add_argument("--debias", type=debias_arg, default="off",
                    help="first-shown bias removed from margins before aggregation: off, auto or a "
                         "number from prp calibrate-oracle (default: off)")
    rk.add_argument("--infer", action="store_true",
                    help="answer comparisons the decided ones imply by transitivity, with no prompt")
    rk.add_argument("--max-unparsed", type=float, default=None, metavar="FRACTION",
                    help="fail (exit 5) when more than this share of the prompts stays unparsed "
                         "after its retry (default: no limit, a warning only)")
    rk.add_argument("--latency", type=latency_arg, default=None, metavar="A,B,G[,D]",
                    help="alpha,beta,gamma[,delta] of t(batch) = alpha + beta*prompts + gamma*prompt_tokens "
                         "+ delta*output_tokens "
                         "(default: the model refitted on earlier runs in --cache-dir, else the judge's "
                         "default; the summary names the one used)")
    add_backend_args(p)
    add_executor_args(p)
    p.set_defaults(run=run)


# --- checking and loading -----------------------------------------------------------------------

def _check(args: argparse.Namespace) -> None:
    for name in ("k", "depth", "batch_size", "concurrency", "queries", "in_flight"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.max_inferences is not None and args.max_inferences < 0:
        raise ValueError(f"--max-inferences must be >= 0, got {args.max_inferences}")
    check_max_unparsed(args.max_unparsed, "--max-unparsed")
    check_executor_args(args)
    if args.dry_run:
        return
    if args.output is None:
        raise ValueError("--output is required (a path, or - for stdout)")
    if args.output == "-" and args.format == "json":
        raise ValueError("--format json prints the summary on stdout: write the run to a file "
                         "(--output PATH), not to stdout")
    check_output_path(args.output)


def load_input(args: argparse.Namespace) -> list[RankRequest]:
    """The queries of whichever input layout ``args`` name (exactly one)."""
    paired = (args.run_path, args.topics, args.docs)
    if args.dataset:
        if args.input or args.topics or args.docs:
            raise ValueError("--dataset reads topics and passages from ir_datasets: give it alone or "
                             "with --run, not with --input, --topics or --docs")
        from prp.datasets import load_ir_dataset
        return load_ir_dataset(args.dataset, args.run_path)
    if args.input and any(paired):
        raise ValueError("give --input, or --run with --topics and --docs, not both")
    if args.input and args.input.endswith(".parquet"):
        from prp.parquet import load_parquet_candidates
        requests, source = load_parquet_candidates(args.input), args.input
    elif args.input:
        requests, source = load_candidates(args.input), args.input
    elif all(paired):
        requests, source = load_run_candidates(args.run_path, args.topics, args.docs), args.run_path
    elif not any(paired):
        raise ValueError("no input: give --input FILE, or --run RUN --topics TOPICS --docs DOCS, "
                         "or --dataset ID")
    else:
        raise ValueError("--run, --topics and --docs go together (missing: " + ", ".join(
            flag for flag, value in zip(("--run", "--topics", "--docs"), paired, strict=True)
            if not value) + ")")
    if not requests:
        raise DataError(f"no queries in {source}")
    return requests


def split_depth(requests: Sequence[RankRequest], depth: int) -> list[Query]:
    """Each request cut at ``depth``: the head to rerank, the tail's docids to append."""
    queries = []
    for req in requests:
        ids = list(req.doc_ids or [])
        head = RankRequest(req.query, list(req.docs)[:depth], ids[:depth], req.qid)
        queries.append(Query(head, tuple(ids[depth:])))
    return queries


# --- running --------------------------------------------------------------------------------------

class _Run:
    """One run on one engine: the hooks write each query (in input order) as it finishes, move
    the progress bar, keep the timings and watch --max-unparsed."""

    def __init__(self, args: argparse.Namespace, queries: Sequence[Query], progress: Progress,
                 out: TextIO) -> None:
        self.args, self.queries, self.progress, self.out = args, queries, progress, out
        self.position = {q.qid: i for i, q in enumerate(queries)}
        self.ready: dict[int, RankedResult] = {}
        self.written = 0
        self.so_far = Ledger(queries=0)
        # timings for the latency refit: only a real judge's with a --cache-dir, and only the
        # most recent ones the refit keeps (memory stays flat however many inferences)
        timed = args.cache_dir and args.judge not in OFFLINE
        self.records: deque[dict] = deque(maxlen=KEEP if timed else 0)
        self.failure: UnparsedError | None = None
        self.task: asyncio.Future | None = None

    def on_inference(self, inference: Inference) -> None:
        self.progress.judged(inference)
        if inference.sent and self.records.maxlen:
            self.records.append(inference.record())

    def on_result(self, result: RankedResult) -> None:
        self.progress.finished(result)
        self.ready[self.position[result.qid]] = result
        while self.written in self.ready:  # input order; a result's docs are dropped once written
            done = self.ready.pop(self.written)
            write_query(self.args, self.queries[self.written], done, self.out)
            done.docs = []
            self.written += 1
        self.so_far.merge(result.cost)
        limit = self.args.max_unparsed
        if (limit is not None and self.failure is None and self.so_far.unparsed
                and unparsed_share(self.so_far) > limit):
            self.failure = UnparsedError(f"{describe_unparsed(self.so_far)} (in {self.so_far.queries} "
                                         f"queries), above --max-unparsed {limit:g}")
            self.task.cancel()  # type: ignore[union-attr]

    async def rank(self, reranker: Reranker) -> list[RankedResult]:
        hooks = {**self.progress.hooks(), "on_inference": self.on_inference, "on_result": self.on_result}
        async with Engine(reranker, **hooks) as engine:
            self.task = asyncio.ensure_future(engine.rank_many([q.head for q in self.queries]))
            try:
                return await self.task
            except asyncio.CancelledError:
                if self.failure is not None:
                    raise self.failure from None
                raise


def rerank(args: argparse.Namespace, queries: Sequence[Query], reranker: Reranker, progress: Progress,
           out: TextIO) -> tuple[list[RankedResult], list[dict]]:
    """Rank every query on one engine (``--in-flight``, ``--max-inferences`` and ``--budget`` are
    the Reranker's); write each to ``out`` as soon as it and those before it are done. Returns
    the results (their ledgers and ``cut`` flags, not their ranked documents) and the run's
    timed inferences."""
    run = _Run(args, queries, progress, out)
    results = asyncio.run(run.rank(reranker))  # the engine warns of nothing: _report says it once
    return results, list(run.records)


def run(args: argparse.Namespace) -> int:
    _check(args)
    queries = split_depth(load_input(args)[: args.queries], args.depth)
    args.latency_choice = choose(args.latency, args.cache_dir, judge_spec(args), args.model, args.base_url)
    args.latency = args.latency_choice.model
    checker = reranker_for(args, ScoresOracle({}), False)  # bad settings fail here; no judge is built
    if args.dry_run:
        return dry_run(args, queries, checker)
    if args.executor == "ray":
        from prp.cli.rerank_ray import run_ray
        return run_ray(args, queries)
    with input_loaded():  # the collector stops rescanning the loaded input
        return _run_loaded(args, queries, checker)


def _run_loaded(args: argparse.Namespace, queries: Sequence[Query], checker: Reranker) -> int:
    show = not args.quiet and sys.stderr.isatty()
    estimate = predict_cost(args, queries, checker)["total"]["prompts"] if show else 0.0
    cache = make_cache(args.cache_dir)
    try:
        backend = make_backend(args)
        missing = unjudged(backend, [q.head for q in queries])  # a simulated judge's qrels
        if missing is not None:
            print(f"prp rerank: warning: {missing}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        with atomic_output(args.output) as out:  # appears only if the run ends well
            results, records = _rerank_reporting(args, queries, reranker_for(args, backend, cache), out,
                                                 Progress(estimate, len(queries), show))
        seconds = time.perf_counter() - started
    finally:
        close = getattr(cache, "close", None)
        if callable(close):
            close()
    refit = _refit(args, records)
    stats = getattr(backend, "stats", None)  # the HTTP backend's requests, by endpoint
    http = stats() if callable(stats) else None
    return report(args, queries, results, seconds, refit, http)


def _refit(args: argparse.Namespace, records: list[dict]) -> LatencyChoice | None:
    """Refit this judge's latency model on the run's timings, stored in --cache-dir (not for the
    offline judges - simulated, replay -, whose timings say nothing of a real judge's)."""
    if not records:  # kept only for a real judge with --cache-dir (see _Run)
        return None
    try:
        return record_run(args.cache_dir, judge_key(judge_spec(args), args.model, args.base_url), records)
    except OSError as exc:
        print(f"prp rerank: warning: latency model not stored in {args.cache_dir}: {exc}", file=sys.stderr)
        return None


def _rerank_reporting(args: argparse.Namespace, queries: Sequence[Query], reranker: Reranker, out: TextIO,
                      progress: Progress) -> tuple[list[RankedResult], list[dict]]:
    """:func:`rerank` under a progress bar; a failure or an interrupt says what was kept."""
    where = f" at {args.cache_dir}" if args.cache_dir else " in memory only (lost)"
    cache = reranker.cache
    before = len(cache) if args.cache_dir and cache is not None else 0
    try:
        return rerank(args, queries, reranker, progress, out)
    except BackendError as exc:
        raise BackendError(f"{exc}; no output written; judgments made so far were cached{where}") from exc
    except UnparsedError as exc:
        raise UnparsedError(f"{exc}; no output written; parsed judgments were cached{where}") from exc
    except KeyboardInterrupt:  # the bar closes in ``finally``, before main prints this
        if args.cache_dir and cache is not None:
            kept = f"{len(cache) - before} new judgments kept in the cache at {args.cache_dir} " \
                   "(a rerun pays only for the rest)"
        else:
            kept = f"{progress.prompts} prompts judged in memory only: lost (--cache-dir keeps them)"
        raise Interrupted(f"interrupted after {progress.inferences} inferences; {kept}; "
                          "no output written") from None
    finally:
        progress.close()


# --- dry run ---------------------------------------------------------------------------------------

def predict_cost(args: argparse.Namespace, queries: Sequence[Query], checker: Reranker) -> dict:
    """The planner's predicted cost of ranking ``queries`` (:func:`prp.planner.predict_run`)."""
    from prp.planner import predict_run

    groups, totals = predict_run(checker, [len(q.head.docs) for q in queries])
    per_query = {name: totals[name] / max(len(queries), 1) for name in PREDICTED}
    return {"dry_run": True, "queries": len(queries), "groups": groups, "total": totals,
            "per_query": per_query, "latency": args.latency_choice.to_dict(), "settings": run_settings(args)}


def dry_run(args: argparse.Namespace, queries: Sequence[Query], checker: Reranker) -> int:
    report = predict_cost(args, queries, checker)
    if args.format == "json":
        print(json.dumps(report))
        return 0
    lines = [f"dry run: {report['queries']} queries; no judge called (predicted by the cost planner "
             "with a simulated judge, no cache hits counted)"]
    for g in report["groups"]:
        lines.append(f"  n={g['n']}: {g['queries']} queries, {g['sorter']}: per query "
                     + _figures(g))
    lines.append("total: " + _figures(report["total"]))
    lines.append("per query: " + _figures(report["per_query"]))
    lines.append("seconds by the latency model " + args.latency_choice.describe())
    print("\n".join(lines))
    return 0


def _figures(row: dict) -> str:
    return (f"{row['comparisons']:.1f} comparisons, {row['prompts']:.1f} prompts, "
            f"{row['inferences']:.1f} inferences, {row['rounds']:.1f} rounds, "
            f"{row['predicted_seconds']:.1f} s")
