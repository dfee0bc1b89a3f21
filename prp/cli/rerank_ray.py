"""``prp rerank --executor ray``: the same job as ``prp rerank``, ranked on Ray Data actors.

Rules (beside those of :mod:`prp.cli.rerank`, which all hold unless named here):

* The driver (this process) reads the input as ``prp rerank`` does (also a ``.parquet`` file,
  see :mod:`prp.parquet`), cuts it at ``--depth``, and hands the queries to
  :func:`prp.ray.rerank_dataset` as one row per query: ``--ray-actors`` actors, each with its
  own judge (built from the same ``--judge`` options: files they name, like ``--qrels``, must be
  readable where the actors run) and one engine, ``--ray-batch-size`` queries a call,
  ``--ray-cpus`` / ``--ray-gpus`` per actor. ``--ray-address`` joins a running cluster (its
  workers need prp installed); without it (and without ``$RAY_ADDRESS``) a local cluster is
  started for the run.
* **The cache.** ``--cache-dir redis://HOST:PORT/DB``: every actor shares that Redis (memory in
  front). ``--cache-dir DIR``: every actor shares ``DIR/shards`` (:class:`prp.ray.ShardCache`,
  one file per judgment, safe for many writers on a shared filesystem; not the SQLite cache an
  in-process run keeps in DIR). Without it each actor has its own cache in memory, lost with
  it.
* **Checkpoint and resume.** Each block of finished queries is written to ``--checkpoint``
  (default OUTPUT.checkpoint) as the driver receives it (:mod:`prp.ray.checkpoint`). A rerun of
  a killed job (same command) ranks only the queries not in it; the output, written in input
  order once every query is done, is byte for byte the output of an uninterrupted run. The
  checkpoint is removed once the output is written.
* **Failure.** A judge that fails stops the job at the first call it fails (exit 3, the judge's
  error); finished queries stay in the checkpoint and judged prompts in the cache. Ctrl-C stops
  it the same way (exit 130). ``--max-unparsed`` is checked as each block arrives.
* **Progress** counts queries (prompts and inferences beside them), block by block; the
  summary adds up every query's ledger: every actor's, and those of queries resumed from the
  checkpoint. ``--max-inferences`` is refused (a budget of one engine; use ``--budget``); the
  latency model is not refitted from a Ray run.
* ``--output-format parquet`` (Ray only) writes ``qid, docid, rank, score`` rows.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cost.ledger import Ledger
from prp.cache import CacheError
from prp.cli.rerank_parts import Interrupted, Query, report, reranker_for, run_settings, write_query
from prp.data import atomic_output
from prp.judgment import UnparsedError, describe_unparsed, unparsed_share
from prp.oracles.base import BackendError
from prp.ray.checkpoint import Checkpoint
from prp.ray.rows import ledger_from_json
from prp.result import RankedDoc, RankedResult

#: the options an actor needs to build the same reranker as this run's
_ACTOR_ARGS = ("judge", "judge_options", "model", "base_url", "api_key", "qrels", "sorter", "k",
               "batch_size", "orders", "aggregate", "in_flight", "concurrency", "latency", "max_inferences",
               "budget", "debias", "infer", "cache_dir")


def make_reranker(options: dict):  # noqa: ANN201 - runs in each actor
    """The run's Reranker, built in an actor: its judge (loaded here) and the job's cache."""
    from prp.cache import MemoryCache, make_cache
    from prp.cli.backends import make_backend
    from prp.ray.shards import shard_cache

    args = argparse.Namespace(**options)
    where = args.cache_dir
    if where is None:
        cache = MemoryCache()
    elif str(where).startswith(("redis://", "rediss://", "unix://")):
        cache = make_cache(where)
    else:
        cache = shard_cache(Path(where) / "shards")
    return reranker_for(args, make_backend(args), cache)


def _job(args: argparse.Namespace, queries: Sequence[Query]) -> dict:
    """What the checkpoint must match: the settings a ranking depends on, the judge and the input
    (another cache, --in-flight or --concurrency may resume it)."""
    import hashlib

    inputs = hashlib.blake2b(digest_size=16)
    for q in queries:
        for part in (q.qid, q.head.query, *(q.head.doc_ids or ()), *q.head.docs, "\x1e", *q.tail):
            inputs.update(part.encode("utf-8", "surrogatepass") + b"\x1f")
    free = ("cache_dir", "in_flight", "concurrency")
    settings = {k: v for k, v in run_settings(args).items() if k not in free}
    return {"settings": settings, "judge": [args.judge, args.judge_options, args.model, args.qrels],
            "queries": len(queries), "input": inputs.hexdigest()}


def _ray_init(args: argparse.Namespace) -> None:
    import ray

    address = args.ray_address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=True, ignore_reinit_error=True)
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # ours counts queries
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _cause(exc: BaseException) -> BaseException:
    """The error a Ray task raised, out of Ray's wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (BackendError, UnparsedError, ValueError, TypeError, OSError)) and \
                not type(exc).__module__.startswith("ray"):
            return exc
        inner = getattr(exc, "cause", None) or exc.__cause__
        if inner is None:
            break
        exc = inner
    return exc


class _Bar:
    """Queries done (a tqdm bar on stderr when shown), prompts and inferences beside."""

    def __init__(self, total: int, done: int, show: bool) -> None:
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="query", file=sys.stderr, dynamic_ncols=True,
                            desc="queries")

    def update(self, queries: int, so_far: Ledger) -> None:
        if self.bar is not None:
            self.bar.update(queries)
            self.bar.set_postfix_str(f"{so_far.prompts} prompts, {so_far.inferences:.0f} inferences, "
                                     f"{so_far.cache_hits} cache hits", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_ray(args: argparse.Namespace, queries: Sequence[Query]) -> int:
    """Rank ``queries`` on Ray actors (see the module docstring); the exit code."""
    try:
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"--executor ray needs Ray Data: pip install 'prp[ray]' ({exc})") from None
    directory = args.checkpoint or f"{args.output}.checkpoint"
    checkpoint = Checkpoint(directory)
    done = checkpoint.open(_job(args, queries))
    known = {q.qid for q in queries}
    stray = sorted(set(done) - known)
    if stray:
        raise ValueError(f"checkpoint {directory} holds queries not in the input: {', '.join(stray[:5])}")
    todo = [q for q in queries if q.qid not in done]
    so_far = Ledger.total([ledger_from_json(r["ledger"]) for r in done.values()])
    show = not args.quiet and sys.stderr.isatty()
    bar = _Bar(len(queries), len(done), show)
    started = time.perf_counter()
    try:
        if todo:
            _rank(args, todo, checkpoint, done, so_far, bar)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {len(done)} of {len(queries)} queries finished, kept in the "
                          f"checkpoint {directory} (a rerun ranks only the rest); no output "
                          "written") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    results = [_result(q, done[q.qid]) for q in queries]
    _write(args, queries, results)
    checkpoint.remove()
    if len(todo) < len(queries):
        print(f"prp rerank: {len(queries) - len(todo)} queries resumed from the checkpoint {directory}",
              file=sys.stderr)
    return report(args, queries, results, seconds, None, None)


def _rank(args: argparse.Namespace, todo: Sequence[Query], checkpoint: Checkpoint, done: dict[str, dict],
          so_far: Ledger, bar: _Bar) -> None:
    import ray

    from prp.ray.stage import rerank_dataset

    _ray_init(args)
    options = {name: getattr(args, name) for name in _ACTOR_ARGS}
    rows = [{"qid": q.qid, "query": q.head.query, "docids": list(q.head.doc_ids or ()),
             "texts": list(q.head.docs)} for q in todo]
    blocks = max(1, min(len(rows), -(-len(rows) // args.ray_batch_size)))
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    ranked = rerank_dataset(ds, functools.partial(make_reranker, options), concurrency=args.ray_actors,
                            num_cpus=args.ray_cpus, num_gpus=args.ray_gpus, batch_size=args.ray_batch_size)
    try:
        for batch in ranked.iter_batches(batch_size=None, batch_format="pyarrow"):
            records = [r for r in batch.to_pylist() if r["qid"] not in done]
            checkpoint.write(records)
            fresh = [ledger_from_json(r["ledger"]) for r in records]
            for record in records:
                done[record["qid"]] = record
            for ledger in fresh:
                so_far.merge(ledger)
            bar.update(len(records), so_far)
            limit = args.max_unparsed
            if limit is not None and so_far.unparsed and unparsed_share(so_far) > limit:
                raise UnparsedError(f"{describe_unparsed(so_far)} (in {so_far.queries} queries), above "
                                    f"--max-unparsed {limit:g}; finished queries kept in the checkpoint "
                                    f"{checkpoint.directory}", [])
    except (KeyboardInterrupt, UnparsedError):
        raise
    except Exception as exc:  # a Ray task's error: say the judge's, and what was kept
        cause = _cause(exc)
        kept = (f"{len(done)} finished queries kept in the checkpoint {checkpoint.directory}; judgments made "
                f"so far were cached{'' if args.cache_dir else ' in the actors memory only (lost)'}")
        if isinstance(cause, BackendError):
            raise BackendError(f"{cause}; {kept}; no output written") from exc
        if isinstance(cause, CacheError):
            raise CacheError(f"{cause}; {kept}; no output written") from exc
        if isinstance(cause, (ValueError, TypeError, OSError)):
            raise ValueError(f"{cause}; {kept}; no output written") from exc
        raise BackendError(f"the Ray job failed: {type(cause).__name__}: {cause}; {kept}; no output "
                           "written") from exc
    finally:
        ray.shutdown()


def _result(query: Query, record: dict) -> RankedResult:
    docs = [RankedDoc(d, "", rank, float(score), int(first)) for rank, (d, first, score) in
            enumerate(zip(record["docids"], record["first_stage_ranks"], record["scores"], strict=True), 1)]
    return RankedResult(query.qid, query.head.query, len(docs), docs, ledger_from_json(record["ledger"]),
                        cut=bool(record["cut"]))


def _write(args: argparse.Namespace, queries: Sequence[Query], results: Sequence[RankedResult]) -> None:
    """The output, in input order (the same bytes as an in-process run's)."""
    if args.output_format == "parquet":
        from prp.parquet import write_parquet_run

        write_parquet_run(args.output, ((q.qid, r.doc_ids + list(q.tail)) for q, r in
                                        zip(queries, results, strict=True)))
        return
    with atomic_output(args.output) as out:
        for query, result in zip(queries, results, strict=True):
            write_query(args, query, result, out)
