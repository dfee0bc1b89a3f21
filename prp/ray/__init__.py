"""Offline reranking on Ray Data (``pip install 'prp[ray]'``): a Dataset in, a reranked Dataset out.

    import ray
    from prp import Reranker
    from prp.oracles.judges import make_judge
    from prp.ray import rerank_dataset

    def make_reranker():          # runs once in each actor: the judge is loaded there
        return Reranker(make_judge("perfect", qrels="qrels.txt"), k=10,
                        cache="redis://cache-host:6379/0")

    ds = ray.data.read_parquet("candidates.parquet")   # qid, query, docid, text, rank
    ranked = rerank_dataset(ds, make_reranker, concurrency=4, num_cpus=0.5, batch_size=64)
    ranked.write_parquet("reranked/")

Importing :mod:`prp` never imports Ray; this package imports it only when a function runs.

Rules:

* **Layouts** (:mod:`prp.ray.rows`). One row per candidate (``qid``, ``query``, ``docid``,
  ``text``, ``rank``: the first-stage rank) comes back as one row per candidate with ``rank``
  (the new one), ``first_stage_rank``, ``score`` (n..1), ``cut`` and ``ledger`` (the query's
  :class:`~cost.ledger.Ledger` as JSON, on each of its rows). One row per query (``qid``,
  ``query``, ``docids``, ``texts``: lists in first-stage order) comes back as one row per query
  with ``docids`` in the new order and aligned ``first_stage_ranks`` and ``scores``, ``cut`` and
  ``ledger`` (``keep_texts=True`` adds ``texts``). :func:`total_ledger` adds up a job's ledgers.
* **No query is split.** Rows of one candidate each are first grouped by ``qid`` (a Ray
  shuffle); the actors only ever see whole queries, ``batch_size`` queries a call.
* **One engine per actor.** Each actor (:class:`RerankActor`) calls ``make_reranker()`` once
  (a picklable callable returning a :class:`~prp.Reranker`: load the judge there) and keeps one
  :class:`~prp.engine.SyncEngine` for its life; the queries of a call are ranked as one request,
  so their prompts share batches. prp adds no cluster code: Ray's knobs scale the job -
  ``concurrency`` (actors), ``num_cpus`` per actor (default :data:`DEFAULT_NUM_CPUS`, half a
  core: an actor pool that asks for every CPU starves Ray Data's other tasks on a small
  machine), ``num_gpus`` per actor (an in-process GPU judge), ``batch_size`` (queries a call,
  default :data:`DEFAULT_BATCH_SIZE`), and any other ``map_batches`` remote argument.
* **One cache for the job.** The reranker's ``cache`` is opened in each actor: give every actor
  the same shared one - ``cache="redis://host:6379/0"`` (memory over Redis, as ``prp serve``
  replicas share it) or, without Redis, :func:`shard_cache` on a directory every worker sees
  (:class:`ShardCache`: one file per prompt key, written by rename; safe for many writers).
  With the default in-memory cache each actor has its own, lost with it.
* **Faults.** Ray Data restarts a dead actor and retries its call (``max_restarts=-1``,
  ``max_task_retries=-1``: its defaults); with a shared cache the retry is served from it, since
  every judged prompt is cached as its batch returns: nothing judged is paid twice. A judge that
  fails (a :class:`~prp.oracles.base.BackendError` after its own retries) fails the call, and
  Ray Data stops the job at that error: it is not retried.
* **Determinism.** A query's ranking and its counts of comparisons and ``virtual_prompts``
  depend only on its inputs, the seed and the ranker: the same in process, on one actor and on
  N. How prompts share batches depends on which queries meet in a call, so each query's share of
  ``inferences`` (fractional) and the job's total inferences may differ; ``prompts`` and
  ``cache_hits`` depend on what the cache held (a retried or second job is served from it).
"""

from __future__ import annotations

from prp.ray.rows import QUERY_COLUMNS, ROW_COLUMNS, RowError, ledger_from_json, total_ledger
from prp.ray.shards import ShardCache, shard_cache
from prp.ray.stage import DEFAULT_BATCH_SIZE, DEFAULT_NUM_CPUS, RerankActor, rerank_dataset, to_queries

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_NUM_CPUS", "QUERY_COLUMNS", "ROW_COLUMNS", "RerankActor",
           "RowError", "ShardCache", "ledger_from_json", "rerank_dataset", "shard_cache", "to_queries",
           "total_ledger"]
