"""The cost planner: which sorter is cheapest for n candidates, top k, batches of B?

It answers by simulation, never by formula, so whatever the scheduler does (de-duplication, the
cache, cross-query batching, ``orders``) is what gets predicted. Rules:

* **Data.** Synthetic candidate lists of ``n`` passages whose grades are drawn i.i.d. (seeded)
  from :data:`GRADE_DISTRIBUTION`, the grades of the TREC DL 2019 BM25 top-100 (43 queries,
  4,300 candidates; unjudged counted as 0). A list with no relevant passage is drawn again (TREC
  keeps only queries that have one). Candidates come in a first stage's order: by grade plus
  N(0, :data:`FIRST_STAGE_NOISE`), which gives BM25's nDCG@10 on DL19 (0.50 against its 0.51),
  so sorters that gain from a good start (heapsort, quicksort's middle pivot) are not mispriced.
  Passages are 50-70 words (~91 estimated tokens, DL19's mean is 90.6) and queries ~6 words, so a
  simulated pair prompt is ~230 tokens, as on DL19. ``bench/plan_check.py`` checks predictions
  against runs on DL19 and on a second data directory (bench/results/plan-check.txt).
* **Judge.** A simulated judge (``prp.oracles.make_judge``), by default
  ``noisy:scale=1,bias=0.5,noise=1.0``: margin = grade gap + 0.5 for the passage shown first +
  N(0, 1), i.e. an imperfect judge with a position bias, so that comparison counts reflect the
  ties and inconsistencies of a real one.
* **Engine.** The real scheduler (:func:`prp.scheduler.run`) over the sans-IO sorters, with an
  in-memory cache of its own and the default settings of a ``Reranker`` (``aggregate="auto"``,
  no budget, no debiasing, ``seed=0``): ``queries`` synthetic queries, ``in_flight`` of them
  scheduled together, repeated over ``trials`` seeds (20 by default: quicksort's count varies
  with its pivots, and 5 left it 15 % off DL19's). It never goes through the public
  ``Reranker`` or a running :class:`~prp.engine.Engine` (which ask the planner for
  ``sorter="auto"``); a single request on an engine is scheduled exactly so. Every figure of a
  :class:`Prediction` is a per-query mean over all of them; ``predicted_seconds`` is the
  ledger's, under ``latency``.
* **Determinism.** The same arguments give the same prediction (results are cached with
  :func:`functools.lru_cache`, so ``sorter="auto"`` pays for a simulation once per shape).
* **Shapes.** Pairwise sorters, and the sorters that ask set or list questions
  (:data:`SHAPED_SORTERS`), each at every batch size asked for: a plan is a shape x ranker x B.
  ``shapes`` keeps the sorters whose questions a judge answers (a pair-only judge never gets a
  set). Every prediction carries every unit: inferences, rounds, prompts, input, cached-prefix
  (:mod:`cost.prefix`) and output tokens, dollars under a price table, predicted seconds.
* **Ranking.** :func:`plan` orders plans by the objective (``inferences``, ``rounds``,
  ``tokens`` (input plus output), ``usd`` (needs ``prices``) or ``seconds``), ties broken by
  fewer rounds, then fewer inferences, then by name and B. With a ``budget`` (per query, any unit of
  :mod:`cost.budget`), every plan is simulated under it (cut when it runs out, as a real run is)
  and the best simulated nDCG@10 comes first, the objective breaking ties: "for 40,000 tokens a
  query, what gives the best top-10?". ``allpair`` is left out of the default sorters when
  n > :data:`ALLPAIR_MAX_N`: it asks all n(n-1)/2 pairs, is never competitive there, and is slow
  to simulate (name it in ``sorters`` to include it anyway).
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

from cost.budget import Budget
from cost.ledger import Ledger
from cost.model import DEFAULT_LATENCY, LatencyModel
from cost.prices import Prices
from prp import scheduler
from prp.cache import MemoryCache
from prp.result import ranked_result
from prp.types import RankRequest
from prp.validate import OBJECTIVES, check_request, sorter_factory

DEFAULT_SORTERS = ("heapsort", "bubblesort", "quicksort", "quicksort:pivot=median-of-three",
                   "mergesort", "tournament", "allpair")
#: The default sorters that ask set or list questions, with the shape they need.
SHAPED_SORTERS = {"setwise:k=4": "set", "tournament:k=4": "set", "listwise": "list"}
SHAPES = ("pair", "set", "list")
DEFAULT_JUDGE = "noisy:scale=1,bias=0.5,noise=1.0"
ALLPAIR_MAX_N = 60

# Share of each grade among the DL19 BM25 top-100 candidates (qrels.txt over bm25.run, 43
# queries x 100, unjudged = 0): 2928 / 526 / 566 / 280 of 4300.
GRADE_DISTRIBUTION = {0: 0.681, 1: 0.122, 2: 0.132, 3: 0.065}
FIRST_STAGE_NOISE: float | None = 2.7

_WORDS = ("the", "of", "and", "a", "in", "is", "to", "for", "that", "on", "with", "as", "by",
          "are", "from", "which", "can", "be", "or", "an", "cells", "process", "average", "cost",
          "system", "water", "body", "energy", "period", "during", "people", "states", "called",
          "usually", "between", "different", "temperature", "national", "treatment", "common",
          "structure", "protein", "children", "disease", "symptoms", "typically", "located")


@dataclass(frozen=True)
class Prediction:
    """Per-query means of one plan's (sorter, B) simulated runs, in every unit."""

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
    shape: str = "pair"  # the shapes of its questions, "+"-joined: "pair", "set", "pair+set", "list"
    input_tokens: float = 0.0
    cached_tokens: float = 0.0  # of input_tokens, those a prefix cache holds (cost.prefix)
    output_tokens: float = 0.0
    usd: float | None = None  # under the price table, when one was given
    budget: str | None = None  # the per-query budget simulated, if any

    @property
    def tokens(self) -> float:
        """Input plus output tokens per query."""
        return self.input_tokens + self.output_tokens

    def value(self, objective: str) -> float:
        """The figure ``objective`` ranks by."""
        name = _check_objective(objective)
        if name == "usd" and self.usd is None:
            raise ValueError("the usd objective needs a price table (prices=, or --prices FILE)")
        return self.predicted_seconds if name == "seconds" else getattr(self, name)

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens": self.tokens}


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
        grades = _grades(rng, n)
        if FIRST_STAGE_NOISE is not None:  # in first-stage order: by grade plus noise
            grades.sort(key=lambda g: -(g + rng.gauss(0.0, FIRST_STAGE_NOISE)))
        qrels[qid] = dict(zip(ids, grades, strict=True))
        docs = [_text(rng, rng.randint(50, 70)) for _ in range(n)]
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
             judge: str = DEFAULT_JUDGE, budget: Budget | None = None,
             prices: Prices | None = None) -> tuple[Ledger, float]:
    """One scheduler run over ``requests`` with a memory cache of its own and the judge ``judge``
    (a simulated one, under ``qrels``): (the run's ledger, mean nDCG@10 under the judge)."""
    from prp.aggregate import ORDERS, check_choice
    from prp.oracles import make_judge

    settings = scheduler.Settings(batch_size=batch_size, orders=check_choice("orders", orders, ORDERS),
                                  aggregate="auto", tie_band=0.0, in_flight=in_flight,
                                  concurrency=concurrency, max_inferences=None, seed=0, latency=latency,
                                  budget=budget, prices=prices)
    jobs = []
    for qid, query, ids, texts in map(check_request, requests):
        jobs.append(scheduler.Job(qid, query, ids, texts,
                                  *sorter_factory(sorter, len(texts), k, budget, orders)))
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
            concurrency: int = 1, trials: int = 20, judge: str = DEFAULT_JUDGE, seed: int = 0,
            prices: Prices | None = None, budget: Budget | None = None) -> Prediction:
    """Simulate ``sorter`` on ``trials`` x ``queries`` synthetic queries of ``n`` candidates
    (under ``budget`` per query, if given; dollars under ``prices``, if given)."""
    if budget is not None and budget.unit == "usd" and prices is None:
        raise ValueError(f"a budget in usd ({budget}) needs a price table (prices=, or --prices FILE)")
    _check_positive(n=n, k=k, batch_size=batch_size, queries=queries, concurrency=concurrency,
                    trials=trials)
    if in_flight is not None:
        _check_positive(in_flight=in_flight)
    from prp.oracles.judges import SIMULATED

    if judge.partition(":")[0] not in SIMULATED:
        raise ValueError(f"the planner simulates its judge on synthetic queries: perfect or noisy:..., "
                         f"not {judge!r}")
    return _predict(sorter, n, k, batch_size, orders, latency, queries, in_flight, concurrency,
                    trials, judge, seed, prices, budget)


@functools.lru_cache(maxsize=1024)
def _predict(sorter: str, n: int, k: int, batch_size: int, orders: str, latency: LatencyModel,
             queries: int, in_flight: int | None, concurrency: int, trials: int, judge: str,
             seed: int, prices: Prices | None, budget: Budget | None) -> Prediction:
    ledgers, ndcgs = [], []
    for trial in range(trials):
        requests, qrels = synthetic_queries(n, queries, seed, trial)
        ledger, ndcg = simulate(sorter, requests, qrels, k=k, batch_size=batch_size, orders=orders,
                                latency=latency, in_flight=in_flight, concurrency=concurrency, judge=judge,
                                budget=budget, prices=prices)
        ledgers.append(ledger)
        ndcgs.append(ndcg)
    total = Ledger.total(ledgers)
    means = total.per_query()
    shape = "+".join(x for x in SHAPES if total.prompts_by_shape.get(x)) or "pair"
    usd = None if prices is None else prices.usd(means["input_tokens"], means["output_tokens"],
                                                 means["cached_tokens"])
    return Prediction(sorter, n, k, batch_size, means["comparisons"], means["prompts"],
                      means["inferences"], means["rounds"], means["predicted_seconds"],
                      sum(ndcgs) / len(ndcgs), shape, means["input_tokens"], means["cached_tokens"],
                      means["output_tokens"], usd, None if budget is None else str(budget))


PREDICTED = ("comparisons", "prompts", "inferences", "rounds", "predicted_seconds", "input_tokens",
             "cached_tokens", "output_tokens")


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

def default_sorters(n: int, shapes: Sequence[str] = SHAPES) -> tuple[str, ...]:
    """:data:`DEFAULT_SORTERS` (without ``allpair`` when n > :data:`ALLPAIR_MAX_N`) and the
    :data:`SHAPED_SORTERS` whose shape is in ``shapes``."""
    pairwise = tuple(s for s in DEFAULT_SORTERS if s != "allpair" or n <= ALLPAIR_MAX_N)
    shaped = tuple(s for s, shape in SHAPED_SORTERS.items() if shape in shapes)
    return (pairwise if "pair" in shapes else ()) + shaped


def _batch_sizes(batch_size: int | Sequence[int]) -> tuple[int, ...]:
    sizes = (batch_size,) if isinstance(batch_size, int) else tuple(dict.fromkeys(batch_size))
    if not sizes:
        raise ValueError("plan needs at least one batch size")
    return sizes


def plan(n: int, k: int, batch_size: int | Sequence[int], *, sorters: Sequence[str] | None = None,
         objective: str = "inferences", shapes: Sequence[str] = SHAPES, **kw) -> list[Prediction]:
    """Predictions for every sorter (default: :func:`default_sorters` for ``shapes``) at every
    batch size in ``batch_size`` (one or several), best first (see the module docstring)."""
    _check_objective(objective)
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        raise ValueError(f"unknown question shape {unknown[0]!r}; known: {', '.join(SHAPES)}")
    names = default_sorters(n, shapes) if sorters is None else tuple(dict.fromkeys(sorters))
    if not names:
        raise ValueError("plan needs at least one sorter")
    predictions = [predict(s, n, k, b, **kw) for s in names for b in _batch_sizes(batch_size)]
    if objective == "usd" and predictions[0].usd is None:
        raise ValueError("the usd objective needs a price table (prices=, or --prices FILE)")
    budgeted = kw.get("budget") is not None

    def rank(p: Prediction) -> tuple:
        quality = -round(p.ndcg10, 3) if budgeted else 0.0
        return (quality, round(p.value(objective), 9), round(p.rounds, 9), round(p.inferences, 9),
                p.sorter, p.batch_size)

    return sorted(predictions, key=rank)


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
    "tournament": "its knockout plays every match of a level in one round",
    "setwise": "each set prompt settles several passages at once, for one prompt's tokens and a "
               "heap's rounds",
    "listwise": "its windows order many passages per prompt, so it reads each passage about twice, "
                "though one window waits for the one before",
}
_UNITS = {"inferences": "inferences", "seconds": "predicted seconds", "rounds": "rounds",
          "tokens": "tokens (input plus output)", "usd": "US dollars"}


def _num(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"


def explain(predictions: Sequence[Prediction], objective: str = "inferences") -> str:
    """One paragraph on the pick, from the numbers: winner, runner-up and by how much, rounds."""
    _check_objective(objective)
    if not predictions:
        return "No sorter to compare."
    best, unit = predictions[0], _UNITS[objective]
    base = best.sorter.partition(":")[0]
    text = (f"{best.sorter} ({best.shape}, B={best.batch_size}): {_num(best.value(objective))} {unit}"
            " per query")
    others = [p for p in predictions if p.sorter != best.sorter]
    if others:
        second = others[0]
        text += f" against {second.sorter} (B={second.batch_size}) at {_num(second.value(objective))}"
        gap = second.value(objective) - best.value(objective)
        if second.value(objective) > 0 and gap > 0:
            share = gap / second.value(objective)
            text += f" ({share:.0%} fewer)" if share >= 0.01 else f" ({share:.1%} fewer: a near tie)"
        elif gap == 0:
            text += " (a tie, broken by rounds, inferences, then name)"
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
             f" {_num(best.tokens)} tokens ({_num(best.cached_tokens)} of them cached prefix),"
             f" predicted {_num(best.predicted_seconds)} s per query; simulated nDCG@10 {best.ndcg10:.3f}.")
    if best.budget is not None:
        text += f" Under the budget of {best.budget} a query, it ranks best in simulation."
    return text
