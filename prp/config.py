"""What a ranking is set up with: the judge, the sorter, k, the batching settings and the cache.

A :class:`Config` is checked once, when it is made, and then read by every run on it: each
:class:`~prp.engine.Engine` takes its judge, cache and settings from one, and the public
:class:`~prp.reranker.Reranker` is one (its options, documented there, are a Config's). Rules:

* **Checked at once.** Every option is checked here (through :mod:`prp.validate`); a bad one
  raises TypeError or ValueError naming it, before any judge is asked.
* **Sorter per query.** A query runs the configured sorter, or the one its request names;
  :data:`~prp.validate.AUTO` asks the cost planner (:func:`prp.planner.choose`) for the plan
  (question shape and sorter) cheapest in its objective (``auto:objective=tokens``; default
  inferences) for the query (n, k, B, orders, latency, prices), among the shapes the judge
  answers; with a budget, the plan with the best simulated nDCG@10 under it. Fewer than 2
  candidates need no comparison: quicksort.
* **One cache per Config.** Every engine made from it shares its cache (and so its judgments).
"""

from __future__ import annotations

import math
import numbers
import os

from cost.budget import Budget, parse_budget
from cost.model import LatencyModel
from cost.prices import Prices, load_prices
from prp import scheduler
from prp.aggregate import AGGREGATES, ORDERS, check_choice, check_debias, needs_margins
from prp.cache import make_cache
from prp.judgment import check_max_unparsed
from prp.oracles.base import Backend
from prp.spec import parse_spec
from prp.validate import AUTO, check_sorter, count_or_none, positive_int

#: Queries scheduled together by default: enough to fill batches across queries (256 in flight
#: pay 0.04 % more inferences than 2,000 at once, quicksort n=100 B=8), few enough to bound the
#: engine's memory (~120 KB a query in flight; bench/memory.py, README "Reliability").
DEFAULT_IN_FLIGHT = 256


class Config:
    """A ranking's judge (``oracle``), sorter, ``k``, scheduler ``settings`` and ``cache``,
    checked. The options are :class:`~prp.reranker.Reranker`'s (documented there)."""

    def __init__(self, oracle: Backend, sorter: str = "quicksort", k: int = 10, batch_size: int = 8,
                 orders: str = "both", aggregate: str = "auto", tie_band: float = 0.0,
                 cache: object = None, in_flight: int | None = DEFAULT_IN_FLIGHT, concurrency: int = 1,
                 seed: int = 0, latency: LatencyModel | None = None,
                 on_cache_error: str = "raise", max_inferences: int | None = None,
                 max_unparsed: float | None = None, budget: int | str | Budget | None = None,
                 debias: str | float = "off", infer: bool = False, shape_order: str = "asked",
                 prices: Prices | str | os.PathLike[str] | None = None) -> None:
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
        positive_int("k", k)
        positive_int("batch_size", batch_size)
        positive_int("in_flight", in_flight, allow_none=True)
        positive_int("concurrency", concurrency)
        count_or_none("max_inferences", max_inferences)
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
            latency=latency, budget=check_budget(budget, prices), debias=check_debias(debias), infer=infer,
            shape_order=check_choice("shape_order", shape_order, scheduler.SHAPE_ORDERS),
            prices=prices if prices is None or isinstance(prices, Prices) else load_prices(prices))
        if self.sorter_name == AUTO and self.sorter_options.get("objective") == "usd" and prices is None:
            raise ValueError("sorter 'auto:objective=usd' needs a price table: prices= (or --prices FILE)")
        self.cache = make_cache(cache, on_error=on_cache_error)

    @staticmethod
    def check_sorter(spec: str) -> tuple[str, dict]:
        """Parse a sorter spec, failing now (ValueError) on an unknown sorter or option."""
        return check_sorter(spec)

    def sorter_for(self, n: int, sorter: str | None = None, k: int | None = None,
                   orders: str | None = None) -> str:
        """The sorter spec for a query of ``n`` candidates (``sorter``, ``k``, ``orders``:
        this query's, None: the configured ones). With ``"auto"`` it is the cost planner's pick
        (:func:`prp.planner.choose`, cached per shape; see the module docstring); fewer than 2
        candidates need no comparison: quicksort."""
        spec = self.sorter_spec if sorter is None else sorter
        name, options = parse_spec(spec)
        if name != AUTO:
            return spec
        if n < 2:
            return "quicksort"
        from prp.planner import choose  # lazily: only "auto" needs the planner

        s = self.settings
        return choose(n, self.k if k is None else k, s.batch_size, orders=orders or s.orders,
                      latency=s.latency, objective=str(options.get("objective", "inferences")),
                      shapes=tuple(getattr(self.oracle, "shapes", ("pair",))), budget=s.budget,
                      prices=s.prices)


def check_budget(budget: object, prices: object) -> Budget | None:
    """``budget`` read (:func:`cost.budget.parse_budget`); one in usd needs ``prices``."""
    parsed = parse_budget(budget)
    if parsed is not None and parsed.unit == "usd" and prices is None:
        raise ValueError(f"a budget in usd ({parsed}) needs a price table: prices= (or --prices FILE)")
    return parsed
