"""The public API: ``Reranker(oracle, ...).rank(query, docs)`` and ``rank_many(requests)``.

A Reranker is a thin synchronous facade over :class:`~prp.engine.Engine`: it is a
:class:`~prp.config.Config` (the judge, sorter, batching and cache, checked when it is made),
and each call runs on the Reranker's open engine when it has one (``async with reranker:``),
else on an engine of its own for the call. After a call, the Reranker applies the unparsed
policy (:mod:`prp.judgment`) and warns when a simulated judge had no judgments for some query.
``RankRequest`` lives in :mod:`prp.types` (re-exported here)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterable, Sequence

from cost.ledger import Ledger
from prp.config import DEFAULT_IN_FLIGHT, Config
from prp.engine import Engine
from prp.judgment import UnparsedError, UnparsedWarning, describe_unparsed, unparsed_share
from prp.oracles.simulated import warn_unjudged
from prp.result import RankedResult
from prp.types import RankRequest
from prp.validate import AUTO


class Reranker(Config):
    """Reranks candidates with pairwise judgments from ``oracle``, batching and caching them.

    ``sorter`` is a name or a spec with options (``"quicksort:pivot=random,seed=1"``), or
    ``"auto"`` (or ``"auto:objective=tokens"``: inferences, rounds, tokens, usd, seconds): the
    cost planner's cheapest plan (question shape and sorter, among the shapes the judge answers;
    under a ``budget``, the best simulated nDCG@10 within it) for each query; ``k``
    the number of top documents to order; ``batch_size`` (B) the most prompts per inference;
    ``orders`` ``both``/``one``/``random`` and ``aggregate`` ``auto``/``margin``/``consistent``
    (see :mod:`prp.aggregate`); ``cache`` None (in memory, LRU-bounded: the default), False
    (none), a directory (persistent; ``on_cache_error="warn"`` goes on without it if it cannot
    be used) or a Cache; ``in_flight`` how many queries are scheduled together (default
    :data:`DEFAULT_IN_FLIGHT`; None: all); ``concurrency`` the most inferences in flight at
    once; ``seed`` an integer for ``orders="random"``; ``latency`` the cost model used for
    ``predicted_seconds`` (None: the oracle's default, see :mod:`prp.latency`);
    ``max_inferences`` a budget for each ``rank``/``rank_many`` call: when it is spent the
    sorters stop, every result holds the best ranking reached so far and has ``cut=True``, and
    everything judged stays in the cache.

    ``budget`` caps what each query spends (cache hits included, so a ranking never depends on
    the cache): a number of prompts, or a unit (``"40inferences"``, ``"40000tokens"``, ``"2s"``,
    ``"0.002usd"`` with ``prices``, a price table or its file: :mod:`cost.budget`,
    :mod:`cost.prices`). A ranker that plans to a budget in prompts (``active``) receives it, in
    comparisons, before it starts; any other is cut when its next round would go past it.
    ``debias`` (``"off"``, ``"auto"`` or a number) removes the judge's first-shown bias from
    margins before they are aggregated (see :mod:`prp.aggregate`); ``infer`` answers a
    comparison that the query's decided outcomes already imply by transitivity, with no prompt
    (ledger: ``inferred``).
    ``shape_order`` (``"asked"``, ``"reverse"``, ``"random"``) is how the passages of a set or
    list question (``sorter="setwise:k=4"``, ``"listwise"``, ``"tournament:k=4"``) are
    shown (see :mod:`prp.scheduler`). Unparsed answers (see :mod:`prp.judgment`) are asked
    once more, then counted as ties; a call that gives up on any warns
    (:class:`~prp.judgment.UnparsedWarning`), and with
    ``max_unparsed`` (a fraction of the prompts judged) a call above it raises
    :class:`~prp.judgment.UnparsedError`. A call where a perfect or noisy judge has no judgments
    for some query warns once (:class:`~prp.oracles.simulated.NoJudgmentsWarning`, see
    :mod:`prp.oracles.simulated`). ``aggregate="margin"`` with a backend whose
    ``reports_margins`` is False fails here; with one that does not say, at its first answer
    without a margin.

    Raises:
        TypeError, ValueError: a bad setting (the message names it; unknown sorters and options
            list the known ones).

    Example:
        >>> from prp import PerfectOracle, Reranker
        >>> judge = PerfectOracle({"bees": {"b": 2, "c": 1}})   # simulated: grades by qid, doc id
        >>> result = Reranker(judge, k=2).rank("bees", ["x", "y", "z"], doc_ids=["a", "b", "c"])
        >>> result.doc_ids, result.cost.prompts
        (['b', 'c', 'a'], 6)
    """

    _last_cost: Ledger | None = None  # the last call's total (see last_cost)
    _engine: Engine | None = None  # the open engine, inside ``async with reranker:``

    def rank(self, query: str, docs: Sequence[str], doc_ids: Sequence[str] | None = None,
             qid: str | None = None) -> RankedResult:
        """Rerank one query's candidates (given in first-stage order)."""
        return self.rank_many([RankRequest(query, docs, doc_ids, qid)])[0]

    async def arank(self, query: str, docs: Sequence[str], doc_ids: Sequence[str] | None = None,
                    qid: str | None = None) -> RankedResult:
        """:meth:`rank` from async code (on the reranker's open engine when it has one)."""
        return (await self.arank_many([RankRequest(query, docs, doc_ids, qid)]))[0]

    def rank_many(self, requests: Iterable[RankRequest | dict]) -> list[RankedResult]:
        """Rerank many queries at once (their prompts share batches); results in input order."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            out: list[list[RankedResult]] = []

            async def rank() -> None:  # the task returns None: asyncio.run's SIGINT handling
                out.append(await self.arank_many(requests))  # reprs its task, and the results'
                # repr (every document) cost ~0.8 ms a call for 100 documents (bench/overhead.py)

            asyncio.run(rank())
            return out[0]
        raise RuntimeError("rank_many() cannot run inside an event loop; await arank_many()")

    async def arank_many(self, requests: Iterable[RankRequest | dict]) -> list[RankedResult]:
        """Async :meth:`rank_many`; requests are RankRequests or dicts of their fields. Inside
        ``async with reranker:`` calls share the reranker's engine (and batches)."""
        engine = self._engine
        if engine is not None and engine.accepting and engine.loop is asyncio.get_running_loop():
            results = await engine.rank_many(requests)
        else:
            async with Engine(self) as engine:
                results = await engine.rank_many(requests)
        cost = results[0].run_cost if results else Ledger.total([])
        self._last_cost = cost
        self._check_unparsed(cost, results)  # type: ignore[arg-type]
        warn_unjudged(self.oracle, results)  # a simulated judge with no qrels for some query
        return results

    @property
    def last_cost(self) -> Ledger | None:
        """Deprecated: the last call's total, which concurrent calls race on. Each result's
        ``run_cost`` is its own call's total."""
        warnings.warn("Reranker.last_cost is deprecated: read result.run_cost (its own call's total)",
                      DeprecationWarning, stacklevel=2)
        return self._last_cost

    async def __aenter__(self) -> Reranker:
        """Open a long-lived engine on the running loop: concurrent calls share batches."""
        self._engine = Engine(self)
        self._engine.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.aclose()

    def __enter__(self) -> Reranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the reranker holds (a persistent cache's files)."""
        close = getattr(self.cache, "close", None)
        if callable(close):
            close()

    def _check_unparsed(self, cost: Ledger, results: list[RankedResult]) -> None:
        """The unparsed policy's last word on a call (see :mod:`prp.judgment`)."""
        if not cost.unparsed:
            return
        if self.max_unparsed is not None and unparsed_share(cost) > self.max_unparsed:
            raise UnparsedError(f"{describe_unparsed(cost)}, above max_unparsed={self.max_unparsed:g}; "
                                "every parsed judgment is cached", results)
        warnings.warn(f"{describe_unparsed(cost)} and were counted as ties", UnparsedWarning,
                      stacklevel=2)


__all__ = ["AUTO", "DEFAULT_IN_FLIGHT", "RankRequest", "Reranker"]
