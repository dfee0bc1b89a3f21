"""What callers pass, checked: counts, requests and sorter specs, and a checked spec made a sorter.

The :class:`~prp.config.Config` behind every ``Reranker`` and :class:`~prp.engine.Engine`
checks its settings here, the engine checks each request here, and the cost planner builds its
sorters here, so a setting means the same wherever it is given. Rules:

* **Errors name the field** and the value given (``k must be an integer >= 1, got 0``); a bad
  type raises TypeError, a bad value ValueError, before anything runs.
* **Requests are copied.** :func:`check_request` returns fresh tuples: the caller's lists are
  never kept or changed. A document id is a str or an int (read as its str); ids are unique
  within a query; a query without ids numbers its documents ``"0"``, ``"1"``, ...; a query
  without a qid is named by its text.
* **Sorter specs** (``"quicksort:pivot=random,seed=1"``) are checked by building the sorter
  once, so an unknown sorter or option fails at once and lists the known ones; :data:`AUTO`
  (the cost planner's pick, see :mod:`prp.planner`) takes no options. A ranker that plans to a
  budget (it has a ``budget`` option) receives the query's budget in comparisons: prompts
  divided by the prompts a comparison costs (2 with ``orders="both"``, else 1).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from cost.budget import Budget
from prp.spec import parse_spec
from prp.types import RankRequest
from sorters import get_sorter, make_sorter, sorter_options

AUTO = "auto"  # sorter name: let the cost planner pick per query (see Config.sorter_for)
#: What a plan minimizes (``auto:objective=...``, ``prp plan --objective``), per query.
OBJECTIVES = ("inferences", "rounds", "tokens", "usd", "seconds")


def positive_int(name: str, value: object, allow_none: bool = False) -> None:
    """``value`` must be an integer >= 1 (or None, with ``allow_none``); ValueError otherwise."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def count_or_none(name: str, value: object, unit: str = "") -> None:
    """``value`` must be None or an integer >= 0 (a budget); ValueError otherwise."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"{name} must be an integer >= 0{unit} or None, got {value!r}")


def check_request(req: RankRequest) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
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


def check_sorter(spec: str) -> tuple[str, dict]:
    """Parse a sorter spec, failing now (ValueError) on an unknown sorter or option."""
    if not isinstance(spec, str):
        raise TypeError(f"sorter must be a sorter name or spec (a str), got {type(spec).__name__}")
    name, options = parse_spec(spec)
    if name == AUTO:
        if set(options) - {"objective"} or options.get("objective", "inferences") not in OBJECTIVES:
            raise ValueError(f"sorter 'auto' takes one option, objective= one of {', '.join(OBJECTIVES)}; "
                             f"got {spec!r}")
    else:
        make_sorter(name, 2, 1, **options)
    return name, options


def sorter_factory(spec: str, n: int, k: int, budget: Budget | None = None,
                   orders: str = "both") -> tuple[functools.partial, bool]:
    """A query's sorter factory for ``spec`` (not :data:`AUTO`: resolve it first), ``n``
    candidates and top ``k``, and whether the sorter takes soft outcomes (margins). ``budget``
    (per query) goes to a ranker that plans to one when it is in prompts, in comparisons under
    ``orders``; in another unit the engine cuts the ranker instead."""
    name, options = parse_spec(spec)
    if (budget is not None and budget.unit == "prompts" and "budget" in sorter_options(name)
            and "budget" not in options):
        per_comparison = 2 if orders == "both" else 1
        options["budget"] = int(budget.amount) // per_comparison  # the ranker plans in comparisons
    soft = bool(getattr(get_sorter(name), "soft", False))
    return functools.partial(make_sorter, name, n, k, **options), soft
