"""The public API: ``Reranker(oracle, ...).rank(query, docs)`` and ``rank_many(requests)``.

A Reranker holds the configuration (judge, sorter, batching, cache); the run belongs to an
:class:`~prp.engine.Engine`. Each call runs on the Reranker's open engine when it has one
(``async with reranker:``), else on an engine of its own for the call. ``RankRequest`` lives in
:mod:`prp.types` (re-exported here)."""

from __future__ import annotations

import asyncio
import functools
import math
import numbers
import warnings
from collections.abc import Iterable, Sequence

from cost.ledger import Ledger
from cost.model import LatencyModel
from prp import scheduler
from prp.aggregate import AGGREGATES, ORDERS, check_choice, check_debias, needs_margins
from prp.cache import make_cache
from prp.judgment import UnparsedError, UnparsedWarning, check_max_unparsed, describe_unparsed, unparsed_share
from prp.oracles.base import Backend
from prp.oracles.simulated import warn_unjudged
from prp.result import RankedDoc, RankedResult
from prp.spec import parse_spec
from prp.types import RankRequest
from sorters import get_sorter, make_sorter, sorter_options

AUTO = "auto"  # sorter name: let the cost planner pick per query (see Reranker.sorter_for)
#: Queries scheduled together by default: enough to fill batches across queries (256 in flight
#: pay 0.04 % more inferences than 2,000 at once, quicksort n=100 B=8), few enough to bound the
#: engine's memory (~120 KB a query in flight; bench/memory.py, README "Reliability").
DEFAULT_IN_FLIGHT = 256


def _positive_int(name: str, value: object, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _count_or_none(name: str, value: object, unit: str = "") -> None:
    """``value`` must be None or an integer >= 0 (a budget)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"{name} must be an integer >= 0{unit} or None, got {value!r}")


def _validate(req: RankRequest) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """Check one request; return (qid, query, ids, texts) as fresh tuples."""
    if not isinstance(req.query, str):
        raise TypeError(f"query must be a str, got {type(req.query).__name__}")
    if isinstance(req.docs, (str, bytes)) or not isinstance(req.docs, Iterable):
        raise TypeError("docs must be a sequence of str (one per candidate), "
                        f"got {type(req.docs).__name__}")
    texts = tuple(req.docs)
    for pos, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"docs[{pos}] must be a str, got {type(text).__name__}")
    if req.doc_ids is None:
        ids = tuple(str(pos) for pos in range(len(texts)))
    else:
        if isinstance(req.doc_ids, (str, bytes)):
            raise TypeError("doc_ids must be a sequence of ids, not a single string")
        ids = tuple(req.doc_ids)
        if len(ids) != len(texts):
            raise ValueError(f"doc_ids has {len(ids)} ids for {len(texts)} docs")
        for pos, doc_id in enumerate(ids):
            if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
                raise TypeError(f"doc_ids[{pos}] must be a str or int, got {type(doc_id).__name__}")
        ids = tuple(str(doc_id) for doc_id in ids)
        seen: set[str] = set()
        dupes = sorted({doc_id for doc_id in ids if doc_id in seen or seen.add(doc_id)})
        if dupes:
            raise ValueError(f"duplicate doc ids: {', '.join(dupes[:10])}")
    qid = req.query if req.qid is None else str(req.qid)
    return qid, req.query, ids, texts


class Reranker:
    """Reranks candidates with pairwise judgments from ``oracle``, batching and caching them.

    ``sorter`` is a name or a spec with options (``"quicksort:pivot=random,seed=1"``), or
    ``"auto"``: the cost planner's cheapest sorter for each query's shape; ``k``
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

    ``budget`` caps the prompts of each query (cache hits included, so a ranking never depends on
    the cache): a ranker that plans to a budget (``active``) receives it, in comparisons, before
    it starts; any other is cut when its next round would go past it. ``debias`` (``"off"``,
    ``"auto"`` or a number) removes the judge's first-shown bias from margins before they are
    aggregated (see :mod:`prp.aggregate`); ``infer`` answers a comparison that the query's decided
    outcomes already imply by transitivity, with no prompt (ledger: ``inferred``).
    Unparsed answers (see :mod:`prp.judgment`) are asked once more, then counted as ties; a
    call that gives up on any warns (:class:`~prp.judgment.UnparsedWarning`), and with
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

    def __init__(self, oracle: Backend, sorter: str = "quicksort", k: int = 10, batch_size: int = 8,
                 orders: str = "both", aggregate: str = "auto", tie_band: float = 0.0,
                 cache: object = None, in_flight: int | None = DEFAULT_IN_FLIGHT, concurrency: int = 1,
                 seed: int = 0, latency: LatencyModel | None = None,
                 on_cache_error: str = "raise", max_inferences: int | None = None,
                 max_unparsed: float | None = None, budget: int | None = None,
                 debias: str | float = "off", infer: bool = False) -> None:
        for attr in ("name", "keys_by", "judge"):
            if not hasattr(oracle, attr):
                raise TypeError(f"oracle must implement the Backend protocol (missing {attr!r})")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        if (isinstance(tie_band, bool) or not isinstance(tie_band, numbers.Real)
                or not math.isfinite(tie_band)):
            raise ValueError(f"tie_band must be a finite number >= 0, got {tie_band!r}")
        self.max_unparsed = check_max_unparsed(max_unparsed)
        if aggregate == "margin" and getattr(oracle, "reports_margins", None) is False:
            raise needs_margins(f"backend {oracle.name!r} does not")
        _positive_int("k", k)
        _positive_int("batch_size", batch_size)
        _positive_int("in_flight", in_flight, allow_none=True)
        _positive_int("concurrency", concurrency)
        _count_or_none("max_inferences", max_inferences)
        _count_or_none("budget", budget, " (prompts per query)")
        if not isinstance(infer, bool):
            raise ValueError(f"infer must be True or False, got {infer!r}")
        if tie_band < 0:
            raise ValueError(f"tie_band must be >= 0, got {tie_band}")
        self.sorter_spec = sorter
        self.sorter_name, self.sorter_options = self.check_sorter(sorter)
        self.oracle, self.k = oracle, k
        if latency is None:
            from prp.latency import default_for_backend

            latency = default_for_backend(oracle).model
        self.settings = scheduler.Settings(
            batch_size=batch_size, orders=check_choice("orders", orders, ORDERS),
            aggregate=check_choice("aggregate", aggregate, AGGREGATES), tie_band=tie_band,
            in_flight=in_flight, concurrency=concurrency, max_inferences=max_inferences, seed=seed,
            latency=latency, budget=budget, debias=check_debias(debias), infer=infer)
        self.cache = make_cache(cache, on_error=on_cache_error)
        self._last_cost: Ledger | None = None
        self._engine = None

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
            return asyncio.run(self.arank_many(requests))
        raise RuntimeError("rank_many() cannot run inside an event loop; await arank_many()")

    async def arank_many(self, requests: Iterable[RankRequest | dict]) -> list[RankedResult]:
        """Async :meth:`rank_many`; requests are RankRequests or dicts of their fields. Inside
        ``async with reranker:`` calls share the reranker's engine (and batches)."""
        from prp.engine import Engine

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
        from prp.engine import Engine

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

    @staticmethod
    def check_sorter(spec: str) -> tuple[str, dict]:
        """Parse a sorter spec, failing now (ValueError) on an unknown sorter or option."""
        if not isinstance(spec, str):
            raise TypeError(f"sorter must be a sorter name or spec (a str), got {type(spec).__name__}")
        name, options = parse_spec(spec)
        if name == AUTO:
            if options:
                raise ValueError(f"sorter 'auto' takes no options, got {spec!r}")
        else:
            make_sorter(name, 2, 1, **options)
        return name, options

    def sorter_for(self, n: int, sorter: str | None = None, k: int | None = None,
                   orders: str | None = None) -> str:
        """The sorter spec for a query of ``n`` candidates (``sorter``, ``k``, ``orders``:
        this query's, None: the Reranker's). With ``"auto"`` it is the cost planner's cheapest
        in inferences for (n, k, B, orders, latency) (:func:`prp.planner.choose`, cached per
        shape); fewer than 2 candidates need no comparison: quicksort."""
        spec = self.sorter_spec if sorter is None else sorter
        if parse_spec(spec)[0] != AUTO:
            return spec
        if n < 2:
            return "quicksort"
        from prp.planner import choose  # lazily: the planner runs Rerankers itself

        s = self.settings
        return choose(n, self.k if k is None else k, s.batch_size, orders=orders or s.orders,
                      latency=s.latency, objective="inferences")

    def _sorter_factory(self, n: int, budget: int | None = None, sorter: str | None = None,
                        k: int | None = None, orders: str | None = None) -> tuple[functools.partial, bool]:
        """The query's sorter factory, and whether the sorter takes soft outcomes (margins).
        ``budget``, ``sorter``, ``k``, ``orders``: this query's (None: the Reranker's)."""
        name, options = parse_spec(self.sorter_for(n, sorter, k, orders))
        budget = self.settings.budget if budget is None else budget
        if budget is not None and "budget" in sorter_options(name) and "budget" not in options:
            per_comparison = 2 if (orders or self.settings.orders) == "both" else 1
            options["budget"] = budget // per_comparison  # the ranker plans in comparisons
        soft = bool(getattr(get_sorter(name), "soft", False))
        return functools.partial(make_sorter, name, n, self.k if k is None else k, **options), soft

    def _result(self, job: scheduler.Job) -> RankedResult:
        n = len(job.texts)
        order = job.order or []
        docs = [RankedDoc(job.ids[i], job.texts[i], rank, float(n - rank + 1), i + 1)
                for rank, i in enumerate(order, start=1)]
        k = self.k if job.k is None else job.k
        return RankedResult(job.qid, job.query, min(k, n), docs, job.ledger, cut=job.cut)


__all__ = ["AUTO", "DEFAULT_IN_FLIGHT", "RankRequest", "Reranker"]
