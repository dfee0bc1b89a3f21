"""The grid runner: one engine run per cell of sorters x orders x budgets x batch sizes x cache.

``prp simulate`` and ``prp bench`` run their grids here (the cost planner does not: it
predicts through :func:`prp.scheduler.run` directly, see :mod:`prp.planner`). Rules:

* **One run per cell.** Each cell ranks every request on a fresh engine (:func:`rank`) with a
  cache of its own, so a cell's counts are what it costs alone, whatever ran before it:
  in memory (``cache=True``), none (``cache=False``), or, with a ``store``, memory over the
  store as a replay layer (:class:`~prp.cache.TieredCache`, ``replay=True``): the store answers
  what earlier cells judged, the ledger still counts the cell's own schedule, and
  :class:`Physical` counts what reached the judge.
* **Options** common to every cell (``k``, ``aggregate``, ``in_flight``, ``concurrency``,
  ``seed``, ``latency``, ``debias``, ``infer``) go straight to the Reranker.
* **Determinism.** Cells run in order, each deterministic (see :mod:`prp.engine`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cost.budget import Budget, parse_budget
from cost.ledger import Ledger
from prp.cache import Cache, MemoryCache, TieredCache
from prp.engine import SyncEngine
from prp.judging import Inference
from prp.oracles.base import Backend
from prp.reranker import Reranker
from prp.result import RankedResult
from prp.types import RankRequest


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid."""

    sorter: str
    batch_size: int
    orders: str = "both"
    budget: Budget | None = None  # per query (an int given to cells() is prompts)
    cache: bool = True


def cells(sorters: Iterable[str], batch_sizes: Iterable[int], orders: Iterable[str] = ("both",),
          budgets: Iterable[Budget | int | str | None] = (None,), caches: Iterable[bool] = (True,)
          ) -> list[Cell]:
    """Every combination, sorter outermost and cache innermost."""
    return [Cell(s, b, o, parse_budget(budget), c) for s, o, budget, b, c in
            itertools.product(sorters, orders, budgets, batch_sizes, caches)]


@dataclass
class Physical:
    """What reached the judge: inferences and prompts sent, and their predicted seconds."""

    inferences: int = 0
    prompts: int = 0
    predicted_seconds: float = 0.0


@dataclass
class CellRun:
    cell: Cell
    results: list[RankedResult]
    cost: Ledger  # the run's total (wall_seconds: the run's)
    physical: Physical = field(default_factory=Physical)


def rank(reranker: Reranker, requests: Sequence[RankRequest], **hooks: object) -> list[RankedResult]:
    """``requests`` ranked on a fresh engine with ``hooks`` (a :class:`~prp.engine.SyncEngine`:
    also from inside a running event loop)."""
    with SyncEngine(reranker, **hooks) as engine:
        return engine.rank_many(requests)


def run_cell(requests: Sequence[RankRequest], judge: Backend, cell: Cell, store: Cache | None = None,
             **options: object) -> CellRun:
    """Rank ``requests`` under ``cell`` (see the module docstring)."""
    cache: object = cell.cache
    if cell.cache:
        cache = MemoryCache() if store is None else TieredCache(MemoryCache(), store, replay=True)
    reranker = Reranker(judge, sorter=cell.sorter, batch_size=cell.batch_size, orders=cell.orders,
                        budget=cell.budget, cache=cache, **options)  # type: ignore[arg-type]
    physical = Physical()
    latency = reranker.settings.latency

    def sent(inference: Inference) -> None:
        if inference.sent:
            physical.inferences += 1
            physical.prompts += inference.sent
            physical.predicted_seconds += latency.batch_seconds(inference.sent, inference.sent_tokens,
                                                                inference.result.completion_tokens)

    results = rank(reranker, requests, on_inference=sent)
    cost = results[0].run_cost if results else Ledger(queries=0)
    return CellRun(cell, results, cost, physical)


def run_grid(requests: Sequence[RankRequest], judge: Backend, grid: Iterable[Cell],
             store: Cache | None = None, **options: object) -> Iterable[CellRun]:
    """:func:`run_cell` for every cell, in order (a generator: report as cells finish)."""
    for cell in grid:
        yield run_cell(requests, judge, cell, store, **options)
