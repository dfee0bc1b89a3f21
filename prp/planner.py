"""The cost planner: which sorter is cheapest for n candidates, top k, batches of B?

It answers by simulation, never by formula, so whatever the scheduler does (de-duplication, the
cache, cross-query batching, ``orders``) is what gets predicted. Rules:

* **Data.** Synthetic candidate lists of ``n`` passages whose grades are drawn i.i.d. (seeded)
  from :data:`GRADE_DISTRIBUTION`, the grades of the TREC DL 2019 BM25 top-100 (43 queries,
  4,300 candidates; unjudged counted as 0). A list with no relevant passage is drawn again (TREC
  keeps only queries that have one). Passages are ~65 words (~100 estimated tokens) and queries
  ~6 words, so a simulated prompt is ~250 tokens for the latency model, as real PRP prompts are.
* **Judge.** A simulated judge (``prp.oracles.make_judge``), by default
  ``noisy:scale=1,bias=0.5,noise=1.0``: margin = grade gap + 0.5 for the passage shown first +
  N(0, 1), i.e. an imperfect judge with a position bias, so that comparison counts reflect the
  ties and inconsistencies of a real one.
* **Engine.** The real scheduler (:func:`prp.scheduler.run`) over the sans-IO sorters, with an
  in-memory cache of its own and the default settings of a ``Reranker`` (``aggregate="auto"``,
  no budget, no debiasing, ``seed=0``): ``queries`` synthetic queries, ``in_flight`` of them
  scheduled together, repeated over ``trials`` seeds. It never goes through the public
  ``Reranker`` or a running :class:`~prp.engine.Engine` (which ask the planner for
  ``sorter="auto"``); a single request on an engine is scheduled exactly so. Every figure of a
  :class:`Prediction` is a per-query mean over all of them; ``predicted_seconds`` is the
  ledger's, under ``latency``.
* **Determinism.** The same arguments give the same prediction (results are cached with
  :func:`functools.lru_cache`, so ``sorter="auto"`` pays for a simulation once per shape).
* **Ranking.** :func:`plan` orders sorters by the objective (``inferences``, ``seconds`` or
  ``rounds``), ties broken by fewer rounds, then by name. ``allpair`` is left out of the default
  sorters when n > :data:`ALLPAIR_MAX_N`: it asks all n(n-1)/2 pairs, is never competitive on
  inferences there, and is slow to simulate (name it in ``sorters`` to include it anyway).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from cost.ledger import Ledger
from cost.model import DEFAULT_LATENCY, LatencyModel
from prp import scheduler
from prp.cache import MemoryCache
from prp.result import ranked_result
from prp.types import RankRequest
from prp.validate import check_request, sorter_factory

DEFAULT_SORTERS = ("heapsort", "bubblesort", "quicksort", "quicksort:pivot=median-of-three",
                   "mergesort", "allpair")
OBJECTIVES = ("inferences", "seconds", "rounds")
DEFAULT_JUDGE = "noisy:scale=1,bias=0.5,noise=1.0"
ALLPAIR_MAX_N = 60

# Share of each grade among the DL19 BM25 top-100 candidates (qrels.txt over bm25.run, 43
# queries x 100, unjudged = 0): 2928 / 526 / 566 / 280 of 4300.
GRADE_DISTRIBUTION = {0: 0.681, 1: 0.122, 2: 0.132, 3: 0.065}

_WORDS = ("the", "of", "and", "a", "in", "is", "to", "for", "that", "on", "with", "as", "by",
          "are", "from", "which", "can", "be", "or", "an", "cells", "process", "average", "cost",
          "system", "water", "body", "energy", "period", "during", "people", "states", "called",
          "usually", "between", "different", "temperature", "national", "treatment", "common",
          "structure", "protein", "children", "disease", "symptoms", "typically", "located")


@dataclass(frozen=True)
class Prediction:
    """Per-query means of one sorter's simulated runs."""

    sorter: str
    n: int
    k: int
    batch_size: int
    comparisons: float
    prompts: float
    inferences: float
    rounds: float
    predicted_seconds: float
    ndcg10: float  # under the simulated judge, for information

    def value(self, objective: str) -> float:
        """The figure ``objective`` ranks by."""
        name = _check_objective(objective)
        return self.predicted_seconds if name == "seconds" else getattr(self, name)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    return objective


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


# --- synthetic data -------------------------------------------------------------------------

def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _grades(rng: random.Random, n: int) -> list[int]:
    levels, weights = zip(*GRADE_DISTRIBUTION.items(), strict=True)
    while True:
        grades = rng.choices(levels, weights, k=n)
        if any(grades):
            return grades


def synthetic_queries(n: int, queries: int = 1, seed: int = 0, trial: int = 0):
    """``queries`` synthetic queries of ``n`` candidates: (list of RankRequest, qrels)."""

    rng = random.Random(f"prp-planner/{seed}/{trial}")
    requests, qrels = [], {}
    for q in range(queries):
        qid = f"s{seed}t{trial}q{q}"
        ids = [f"{qid}d{i}" for i in range(n)]
        qrels[qid] = dict(zip(ids, _grades(rng, n), strict=True))
        docs = [_text(rng, rng.randint(55, 75)) for _ in range(n)]
        requests.append(RankRequest(_text(rng, 6), docs, ids, qid))
    return requests, qrels


def ndcg_at(ranking: Sequence[str], grades: dict[str, int], depth: int = 10) -> float:
    """nDCG@depth with trec_eval's conventions (linear gain, log2 discount); 0 with no relevant."""
    def dcg(gains: Sequence[int]) -> float:
        return sum(g / math.log2(r + 2) for r, g in enumerate(gains[:depth]))

    ideal = dcg(sorted(grades.values(), reverse=True))
    return dcg([grades.get(d, 0) for d in ranking]) / ideal if ideal > 0 else 0.0


# --- simulation -----------------------------------------------------------------------------

def simulate(sorter: str, requests, qrels, *, k: int, batch_size: int, orders: str = "both",
             latency: LatencyModel = DEFAULT_LATENCY, in_flight: int | None = 1, concurrency: int = 1,
             judge: str = DEFAULT_JUDGE) -> tuple[Ledger, float]:
    """One scheduler run over ``requests`` with a memory cache of its own and the judge ``judge``
    (a simulated one, under ``qrels``): (the run's ledger, mean nDCG@10 under the judge)."""
    from prp.aggregate import ORDERS, check_choice
    from prp.oracles import make_judge

    settings = scheduler.Settings(batch_size=batch_size, orders=check_choice("orders", orders, ORDERS),
                                  aggregate="auto", tie_band=0.0, in_flight=in_flight,
                                  concurrency=concurrency, max_inferences=None, seed=0, latency=latency)
    jobs = []
    for qid, query, ids, texts in map(check_request, requests):
        jobs.append(scheduler.Job(qid, query, ids, texts, *sorter_factory(sorter, len(texts), k)))
    _run(scheduler.run(jobs, make_judge(judge, qrels=qrels), MemoryCache(), settings))
    results = [ranked_result(job, k) for job in jobs]
    ndcg = sum(ndcg_at(r.doc_ids, qrels[r.qid]) for r in results) / len(results)
    return Ledger.total([r.cost for r in results]), ndcg


def _run(coro) -> None:  # noqa: ANN001
    """Run ``coro`` to its end, also when called from a running event loop (an engine asking
    for ``sorter="auto"``): then on a loop in a thread of its own, while the caller waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prp-planner") as pool:
        return pool.submit(asyncio.run, coro).result()


def predict(sorter: str, n: int, k: int, batch_size: int, *, orders: str = "both",
            latency: LatencyModel = DEFAULT_LATENCY, queries: int = 1, in_flight: int | None = 1,
            concurrency: int = 1, trials: int = 5, judge: str = DEFAULT_JUDGE, seed: int = 0) -> Prediction:
    """Simulate ``sorter`` on ``trials`` x ``queries`` synthetic queries of ``n`` candidates."""
    _check_positive(n=n, k=k, batch_size=batch_size, queries=queries, concurrency=concurrency,
                    trials=trials)
    if in_flight is not None:
        _check_positive(in_flight=in_flight)
    from prp.oracles.judges import SIMULATED

    if judge.partition(":")[0] not in SIMULATED:
        raise ValueError(f"the planner simulates its judge on synthetic queries: perfect or noisy:..., "
                         f"not {judge!r}")
    return _predict(sorter, n, k, batch_size, orders, latency, queries, in_flight, concurrency,
                    trials, judge, seed)


@functools.lru_cache(maxsize=1024)
def _predict(sorter: str, n: int, k: int, batch_size: int, orders: str, latency: LatencyModel,
             queries: int, in_flight: int | None, concurrency: int, trials: int, judge: str,
             seed: int) -> Prediction:
    ledgers, ndcgs = [], []
    for trial in range(trials):
        requests, qrels = synthetic_queries(n, queries, seed, trial)
        ledger, ndcg = simulate(sorter, requests, qrels, k=k, batch_size=batch_size, orders=orders,
                                latency=latency, in_flight=in_flight, concurrency=concurrency, judge=judge)
        ledgers.append(ledger)
        ndcgs.append(ndcg)
    means = Ledger.total(ledgers).per_query()
    return Prediction(sorter, n, k, batch_size, means["comparisons"], means["prompts"],
                      means["inferences"], means["rounds"], means["predicted_seconds"],
                      sum(ndcgs) / len(ndcgs))


PREDICTED = ("comparisons", "prompts", "inferences", "rounds", "predicted_seconds")


def predict_run(reranker, sizes: Sequence[int]) -> tuple[list[dict], dict[str, float]]:
    """The predicted cost of ranking queries of these candidate counts with ``reranker``'s
    settings (its sorter for each count, k, B, orders, latency, in_flight, concurrency): one
    prediction per count (queries of fewer than 2 candidates cost nothing). Returns a row per
    count (``n``, ``queries``, ``sorter`` and :data:`PREDICTED` per query) and the totals."""
    s = reranker.settings
    groups, totals = [], dict.fromkeys(PREDICTED, 0.0)
    for n, count in sorted(Counter(sizes).items()):
        row: dict = {"n": n, "queries": count, "sorter": reranker.sorter_for(n),
                     **dict.fromkeys(PREDICTED, 0.0)}
        if n >= 2:
            p = predict(row["sorter"], n, reranker.k, s.batch_size, orders=s.orders, latency=s.latency,
                        queries=min(count, s.in_flight or count), in_flight=None,
                        concurrency=s.concurrency)
            row.update({name: getattr(p, name) for name in PREDICTED})
        for name in PREDICTED:
            totals[name] += row[name] * count
        groups.append(row)
    return groups, totals


# --- planning -------------------------------------------------------------------------------

def default_sorters(n: int) -> tuple[str, ...]:
    """:data:`DEFAULT_SORTERS`, without ``allpair`` when n > :data:`ALLPAIR_MAX_N`."""
    return tuple(s for s in DEFAULT_SORTERS if s != "allpair" or n <= ALLPAIR_MAX_N)


def plan(n: int, k: int, batch_size: int, *, sorters: Sequence[str] | None = None,
         objective: str = "inferences", **kw) -> list[Prediction]:
    """Predictions for ``sorters`` (default: :func:`default_sorters`), best first."""
    _check_objective(objective)
    names = default_sorters(n) if sorters is None else tuple(dict.fromkeys(sorters))
    if not names:
        raise ValueError("plan needs at least one sorter")
    predictions = [predict(s, n, k, batch_size, **kw) for s in names]
    return sorted(predictions, key=lambda p: (round(p.value(objective), 9), round(p.rounds, 9), p.sorter))


def choose(n: int, k: int, batch_size: int, *, objective: str = "inferences", **kw) -> str:
    """The spec of the best sorter for this shape (``plan(...)[0].sorter``)."""
    return plan(n, k, batch_size, objective=objective, **kw)[0].sorter


# --- explanation ----------------------------------------------------------------------------

_WHY = {
    "quicksort": "its partitions ask many comparisons against one pivot in the same round, so batches fill",
    "mergesort": "its merges run side by side, so each round holds several comparisons",
    "heapsort": "it asks the fewest comparisons, though one sift step at a time",
    "bubblesort": "its passes skip the settled tail and the cache answers repeated pairs",
    "allpair": "it asks every pair in a single round, so only the batch size limits it",
}
_UNITS = {"inferences": "inferences", "seconds": "predicted seconds", "rounds": "rounds"}


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def explain(predictions: Sequence[Prediction], objective: str = "inferences") -> str:
    """One paragraph on the pick, from the numbers: winner, runner-up and by how much, rounds."""
    _check_objective(objective)
    if not predictions:
        return "No sorter to compare."
    best, unit = predictions[0], _UNITS[objective]
    base = best.sorter.partition(":")[0]
    text = f"{best.sorter}: {_num(best.value(objective))} {unit} per query"
    if len(predictions) > 1:
        second = predictions[1]
        text += f" against {second.sorter}'s {_num(second.value(objective))}"
        gap = second.value(objective) - best.value(objective)
        if second.value(objective) > 0 and gap > 0:
            share = gap / second.value(objective)
            text += f" ({share:.0%} fewer)" if share >= 0.01 else f" ({share:.1%} fewer: a near tie)"
        elif gap == 0:
            text += " (a tie, broken by rounds then name)"
    text += f": {_WHY.get(base, 'it came out cheapest in simulation')}."
    lowest = min(predictions, key=lambda p: p.rounds)
    text += (f" It needs {_num(best.rounds)} sequential rounds, the latency floor: no batch size or"
             f" concurrency makes a query faster than {_num(best.rounds)} inferences one after"
             " another")
    if lowest.sorter != best.sorter and lowest.rounds < best.rounds:
        text += f" (fewest: {lowest.sorter}, {_num(lowest.rounds)} rounds, at {_num(lowest.inferences)}"
        text += " inferences)"
    worst = predictions[-1]
    if len(predictions) > 2 and best.value(objective) > 0:
        ratio = worst.value(objective) / best.value(objective)
        text += f". The costliest, {worst.sorter}, needs {ratio:.1f}x the {unit}"
    text += (f". Comparisons {_num(best.comparisons)}, prompts {_num(best.prompts)},"
             f" predicted {_num(best.predicted_seconds)} s per query; simulated nDCG@10 {best.ndcg10:.3f}.")
    return text
