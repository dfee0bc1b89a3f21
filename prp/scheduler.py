"""The engine: runs many sans-IO sorters (one per query) against one oracle backend.

Theory of operation. Each admitted query has a sorter generator waiting on a round of
comparisons. One *step* takes the current round of every query in flight and:

1. de-duplicates each round's comparisons ((a, b) and (b, a) are one comparison);
2. turns each comparison into its prompts (``orders``) and keys them (backend name, query,
   first passage, second passage); a key already met in this step or held by the cache costs
   nothing; the rest become pending prompts, owned by the first query that asked;
3. packs pending prompts, in a deterministic order, into batches of at most ``batch_size``
   (prompts of different queries share batches) and sends each batch to the backend as one
   inference, at most ``concurrency`` at a time, through :func:`prp.judging.judge_batch` (each
   answer checked, and cached as soon as its batch returns: a later failure loses nothing);
   prompts whose answer is unparsed are sent once more, in batches after the others;
   a batch whose failure may be one prompt's fault (:func:`prp.oracles.base.prompt_fault`) is
   split in halves, each retried (the first, then the second), down to single prompts: a
   prompt that fails alone fails the queries whose comparisons needed it (each gets a
   :class:`~prp.oracles.base.PromptFailed` naming its qid and the prompt; it is not resumed),
   and every other query of the step goes on; each split is counted (``Hooks.on_split``).
   Only calls that answered are inferences (charged, and counted against ``max_inferences``,
   which splits may pass by their extra calls); failed calls are not. A failure that says the
   judge is down is never split: the step's other batches are cancelled and it is raised at
   once;
4. aggregates each comparison's answers into an outcome (margins debiased with the query's
   own bias estimate, see :mod:`prp.aggregate`) and resumes every sorter.

Per query, before step 2: with ``infer`` on, a comparison that the query's graph of decided
outcomes already implies (a path a > ... > b, and none back) is answered from the graph with no
prompt and counted as ``inferred``; with a ``budget`` (prompts per query), a round whose prompts
would take the query past it is not asked: the query is cut (its sorter returns its best
ranking so far). The budget counts every prompt the query's comparisons need, cache hits
included, so a ranking never depends on what the cache held.

**Question shapes.** A round may also hold set and list questions
(:class:`sorters.SetQuestion`, :class:`sorters.ListQuestion`). Each is one prompt
(:class:`prp.types.ShapedPrompt`), whatever its size, batched with every other prompt of the step
(pairs and other queries' questions alike: one inference may mix shapes and queries). Rules:

* The passages are shown in the question's order, or reversed, or shuffled by a coin seeded by
  (``seed``, the passages): the ``shape_order`` setting (``asked``, ``reverse``, ``random``), the
  knob that averages position bias out, as ``orders`` does for pairs.
* Its key is (backend name | shape | template id, query, digest of the passages *in the order
  shown*): the same set shown in another order is another prompt; the same question asked
  twice in a step (by one query or by two with the same query and passages) is one prompt. The
  template id is the backend's ``shape_templates[shape]`` when it has one, else ``SHAPE-v1``.
* A backend answers it with a :class:`prp.types.Choice` in slots; the engine maps slots back to
  candidates (a set's :class:`sorters.Pick`, a list's permutation). An answer that does not fit
  the prompt (a slot out of range, a list that is not a permutation) is unparsed: asked once
  more, then the sorter gets None (no decision). A repaired answer is counted (``repaired``).
* A backend without the shape in its ``shapes`` (default: pairs only) is a ValueError naming it,
  before any prompt is sent. With ``infer`` on, a set whose winner, or a list whose whole order,
  the graph already implies is answered from it (``inferred``), and every answer adds its edges.
* Budgets count a set or list prompt as one prompt. The ledger counts questions, prompts,
  inferences (shares) and rounds per shape (``*_by_shape``).

Queries enter as others finish, ``in_flight`` at a time. :func:`run` ranks a fixed list of jobs;
:func:`step` is its unit, which the long-lived :class:`prp.engine.Engine` calls on whatever
requests are in flight. The schedule depends only on the inputs (never on timing), so rankings
and counts are deterministic. Rules kept here: the
engine never reorders candidates itself (sorters decide), and it charges every prompt,
inference, token and predicted second to exactly one query (shares for shared batches).
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cost.budget import Budget
from cost.ledger import Ledger
from cost.model import (
    LABEL_TOKENS,
    TEMPLATE_TOKENS,
    LatencyModel,
    estimate_answer_tokens,
    estimate_prompt_tokens,
    estimate_question_tokens,
    estimate_tokens,
)
from cost.prices import Prices
from prp.aggregate import FIXED_DIRECTIONS, BiasEstimate, directions, needs_margins, outcome
from prp.cache import Cache
from prp.cache_keys import Key, digest
from prp.judging import Inference, judge_batch
from prp.oracles.base import Backend, BackendError, PromptFailed
from prp.types import BatchResult, Choice, Judgment, Prompt, ShapedPrompt
from sorters import Cut, Pair, Pick, SetQuestion, SorterGen


@dataclass(frozen=True)
class Hooks:
    """Callbacks of a run, called on the engine's loop (keep them cheap; never raise from them):
    ``on_inference(Inference)`` after every inference (:class:`prp.judging.Inference`: its
    prompts, checked answers, prompts sent and seconds); ``on_cached(prompts)`` once per step
    with the prompts the cache answered in it; ``on_result(RankedResult)`` for every query's
    result as its request completes (the engine's); ``on_split(prompts)`` each time a failed
    batch of that many prompts is split in halves."""

    on_inference: Callable[[Inference], None] | None = None
    on_cached: Callable[[int], None] | None = None
    on_result: Callable[[object], None] | None = None
    on_split: Callable[[int], None] | None = None


NO_HOOKS = Hooks()


@dataclass(frozen=True)
class Settings:
    batch_size: int
    orders: str
    aggregate: str
    tie_band: float
    in_flight: int | None
    concurrency: int
    max_inferences: int | None
    seed: int
    latency: LatencyModel
    budget: Budget | None = None  # per query (cost.budget)
    debias: str | float = "off"
    infer: bool = False
    shape_order: str = "asked"  # how set and list passages are shown: asked, reverse, random
    prices: Prices | None = None  # for budgets in usd (cost.prices)


SHAPE_ORDERS = ("asked", "reverse", "random")
"""The ``shape_order`` values: how a set's or list's passages are presented."""


class Job:
    """One query being ranked: its sorter, its keys and its ledger."""

    __slots__ = ("qid", "query", "ids", "texts", "factory", "sorter", "qkey", "keys", "ledger",
                 "round", "order", "started", "cut", "soft", "spent", "bias", "beats", "budget", "request",
                 "orders", "k", "error")

    def __init__(self, qid: str, query: str, ids: Sequence[str], texts: Sequence[str],
                 factory: Callable[[], SorterGen], soft: bool = False, budget: Budget | None = None,
                 orders: str | None = None, k: int | None = None):
        self.qid, self.query, self.ids, self.texts = qid, query, ids, texts
        self.factory = factory
        self.soft = soft  # the sorter takes margins, not WIN / TIE / LOSS
        self.ledger = Ledger()
        self.order: list[int] | None = None
        self.cut = False  # stopped by a budget before the sorter finished
        self.spent: float = 0  # what its rounds cost so far, in its budget's unit
        self.bias = BiasEstimate()
        self.beats: dict[int, set[int]] = {}  # decided outcomes, winner -> losers (``infer``)
        self.budget = budget  # this query's budget (None: the settings')
        self.request: object = None  # the engine's request this job belongs to
        self.orders = orders  # this query's prompt orders (None: the settings')
        self.k = k  # this query's top-k, for its result (None: the Reranker's)
        self.error: PromptFailed | None = None  # set when a prompt it needed failed alone

    def start(self, keys_by: str) -> None:
        """Admit the job: key its texts (or ids) and take the sorter's first round."""
        self.started = time.perf_counter()
        source = self.texts if keys_by == "text" else self.ids
        self.qkey = digest(self.query if keys_by == "text" else self.qid)
        self.keys = [digest(text) for text in source]
        self.sorter = self.factory()
        try:
            self.round = next(self.sorter)
        except StopIteration as stop:
            self._finish(stop.value)

    def resume(self, outcomes: list[int]) -> None:
        try:
            self.round = self.sorter.send(outcomes)
        except StopIteration as stop:
            self._finish(stop.value)

    def stop(self) -> None:
        """The budget is spent: take the sorter's best permutation so far."""
        self.cut = True
        if not hasattr(self, "started"):  # never admitted: first-stage order, nothing paid
            self.started = time.perf_counter()
            self._finish(list(range(len(self.ids))))
            return
        try:
            self.sorter.throw(Cut())
        except StopIteration as stop:
            self._finish(stop.value)
        else:  # pragma: no cover - a sorter that ignores Cut breaks the protocol
            raise RuntimeError("a sorter went on after Cut")

    def fail(self, error: PromptFailed) -> None:
        """A prompt this query needed failed alone: it is done, with ``error`` and no ranking."""
        self.error, self.order = error, []
        self.sorter = self.round = None  # type: ignore[assignment]

    def release(self) -> None:
        """Drop what only ranking needed (keys, sorter, decided outcomes) once the result is made."""
        self.keys = self.sorter = self.round = None  # type: ignore[assignment]
        self.beats, self.bias = {}, None  # type: ignore[assignment]

    def _finish(self, order: list[int]) -> None:
        self.order = order
        self.ledger.wall_seconds = time.perf_counter() - self.started
        if self.request is not None:
            self.request.finished.append(self)  # the engine reports it (``on_result``)


class _Step:
    """The bookkeeping of one step (see the module docstring)."""

    __slots__ = ("known", "pending", "owner", "virtual", "plans", "unparsed", "over", "hooks", "cached",
                 "failed", "shapes", "shaped")

    def __init__(self) -> None:
        self.known: dict[Key, Judgment] = {}  # answered by the cache, or judged in this step
        self.pending: dict[Key, Prompt] = {}  # to send, in first-asked order
        self.owner: dict[Key, Job] = {}  # who pays for each pending prompt
        self.virtual: dict[Job, int] = {}  # keys first met in this step, by first asker
        # per job: its round, each unique pair (a, b)'s prompt keys (a shown first when the key's
        # third item is a's key: :func:`_answers`), and the pairs its graph implied (pair -> outcome)
        self.plans: list[tuple[Job, list[Pair], dict[Pair, tuple[Key, ...]], dict[Pair, int]]] = []
        self.unparsed: set[Key] = set()
        self.over: list[Job] = []  # jobs whose round does not fit their budget: cut after the step
        self.hooks = NO_HOOKS
        self.cached = 0  # prompts the cache answered
        # prompts that failed alone: their error, and the first error of the batch they were in
        self.failed: dict[Key, tuple[BackendError, BackendError, int]] = {}
        self.shapes: dict[Key, str] = {}  # the shape of each pending set or list prompt
        # per job (same order as ``plans``): each set or list question -> (shown order, its key)
        self.shaped: dict[Job, dict[object, tuple[tuple[int, ...], Key]]] = {}


async def run(jobs: list[Job], backend: Backend, cache: Cache | None, s: Settings) -> None:
    """Rank every job (in place: each ends with ``order`` and a filled ``ledger``)."""
    waiting = list(reversed(jobs))
    active: list[Job] = []
    limit = s.in_flight or len(jobs)
    budget = math.inf if s.max_inferences is None else s.max_inferences
    while waiting or active:
        while waiting and len(active) < limit:
            job = waiting.pop()
            job.start(backend.keys_by)
            if job.order is None:
                active.append(job)
        if active:
            spent = await step(active, backend, cache, s, budget)
            failed = next((job.error for job in active if job.error is not None), None)
            if failed is not None:
                raise failed
            if spent is None:  # the budget could not pay for this step: stop everyone
                for job in active + waiting[::-1]:
                    job.stop()
                return
            budget -= spent
            active = [job for job in active if job.order is None]


async def step(jobs: list[Job], backend: Backend, cache: Cache | None, s: Settings,
               budget: float = math.inf, hooks: Hooks = NO_HOOKS) -> int | None:
    """One step over ``jobs`` (each with a round to answer); returns the inferences it made.
    A job whose comparisons needed a prompt that failed alone ends with ``error`` set (and
    ``order`` empty): its caller reports the error. If the step needs more than ``budget``
    inferences, it sends only what fits (those answers are cached), counts only the comparisons
    answered, resumes no sorter and returns None.
    Answers the cache holds cost nothing, so they never touch the budget. ``hooks`` are called
    as the step goes (see :class:`Hooks`)."""
    with _collector_paused():
        plan = _plan(jobs, backend, cache, s)
    plan.hooks = hooks
    if hooks.on_cached is not None and plan.cached:
        hooks.on_cached(plan.cached)
    return await _finish_step(plan, backend, cache, s, budget)


async def _finish_step(step: _Step, backend: Backend, cache: Cache | None, s: Settings,
                       budget: float) -> int | None:
    with _collector_paused():
        keys = _prefix_order(step)
        batches = [keys[x: x + s.batch_size] for x in range(0, len(keys), s.batch_size)]
    if len(batches) > budget:
        batches = batches[: max(0, int(budget))]
        sent = await _send_all(batches, step, backend, cache, s)
        _uncount_unanswered(step)
        _charge(sent, step, s, backend)
        _fail_jobs(step)
        return None
    sent = await _send_all(batches, step, backend, cache, s, spare=budget - len(batches))
    with _collector_paused():
        return _resume(step, sent, s, backend)


def _resume(step: _Step, sent: Sent, s: Settings, backend: Backend) -> int:
    """Step 4: charge the inferences made, fail the queries whose prompt failed alone, and
    resume every other sorter with its round's outcomes; the inferences made."""
    batches = [keys for keys, _ in sent]  # the inferences made: batches (or parts) answered
    _charge(sent, step, s, backend)
    _fail_jobs(step)
    for key in step.unparsed:  # charged, like the prompt, to the query that paid for it
        step.owner[key].ledger.unparsed += 1
    known, aggregate, band = step.known, s.aggregate, s.tie_band
    for job, round_, pairs, implied in step.plans:
        if job.order is not None:  # cut while the step ran (the engine's deadline): done already
            continue
        soft = job.soft
        if s.debias == "auto":
            coin = (job.orders or s.orders) == "random"
            answered = {pair: _answers(job, pair, keys, known) for pair, keys in pairs.items()}
            for pair, answers in answered.items():
                job.bias.observe(pair, answers, coin)
            bias = job.bias.value
            unique = {pair: outcome(answers, aggregate, band, bias, soft)
                      for pair, answers in answered.items()}
        else:
            bias = 0.0 if s.debias == "off" else s.debias
            unique = {}
            for pair, keys in pairs.items():
                if len(keys) == 2:  # both orders: a shown first, then b
                    unique[pair] = outcome([(True, known[keys[0]]), (False, known[keys[1]])], aggregate,
                                           band, bias, soft)
                else:
                    unique[pair] = outcome(_answers(job, pair, keys, known), aggregate, band, bias, soft)
        if s.infer and not job.soft:
            for (a, b), result in unique.items():
                if result:
                    job.beats.setdefault(a if result > 0 else b, set()).add(b if result > 0 else a)
        unique.update(implied)
        shaped = step.shaped.get(job)
        if shaped is None:
            job.resume([unique[(i, j)] if i < j else -unique[(j, i)] for i, j in round_])
            continue
        for question, (shown, key) in shaped.items():
            unique[question] = _shaped_answer(question, shown, known.get(key), job.ledger)
            if s.infer:
                _add_edges(job.beats, question, unique[question])
        job.resume([unique[q] if type(q) is not tuple else unique[q] if q[0] < q[1] else -unique[(q[1], q[0])]
                    for q in round_])
    for job in step.over:
        if job.order is None:
            job.stop()
    return len(batches)


def _answers(job: Job, pair: Pair, keys: tuple[Key, ...], known: dict) -> list[tuple[bool, Judgment]]:
    """A pair's answers as (a shown first?, judgment), from its prompt keys (see ``_Step.plans``):
    a was shown first when the key's third item *is* a's digest, the very object of ``job.keys``
    the key was built from (identity, not equality: two passages with the same text have equal
    digests, and their two prompts are still told apart)."""
    ka = job.keys[pair[0]]
    return [(key[2] is ka, known[key]) for key in keys]


class _collector_paused:  # noqa: N801 - used as a function: ``with _collector_paused():``
    """No cyclic collection inside the block (a step's planning or resuming, which allocates
    a few objects a prompt and frees almost nothing till it ends, and never awaits): a collection
    there walks the step's dicts of every prompt, again and again. Reference counting frees as
    usual; the collector runs after, on its own thresholds. Left alone when it is off. (A class,
    not a generator context manager: it runs three times a step, and steps can be tiny.)"""

    __slots__ = ("enabled",)

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            gc.enable()


def _shaped_answer(question: object, shown: tuple[int, ...], choice: object, ledger: object) -> object:
    """A set's :class:`~sorters.Pick` or a list's permutation from a backend's slots; None or
    ``Pick(None)`` when the answer is missing or does not fit the prompt (counted unparsed)."""
    is_set = isinstance(question, SetQuestion)
    order = choice.order if type(choice) is Choice and choice.parsed else None
    w = len(shown)
    if order is not None and (any(slot >= w for slot in order)
                              or (not is_set and sorted(order) != list(range(w)))):
        order = None
    if order is None:
        if choice is not None and (type(choice) is not Choice or choice.parsed):
            ledger.unparsed += 1  # type: ignore[attr-defined]  # read, but unfit: no decision
        # (an answer the judge marked unparsed was counted once, as the step's, after its retry)
        return Pick(None) if is_set else None
    if choice.repaired:  # type: ignore[union-attr]
        ledger.repaired += 1  # type: ignore[attr-defined]
    if is_set:
        probs = choice.probs  # type: ignore[union-attr]
        if probs is not None and len(probs) == w:
            by_id = dict(zip(shown, probs, strict=True))
            return Pick(shown[order[0]], tuple(by_id[i] for i in question.ids))  # type: ignore[attr-defined]
        return Pick(shown[order[0]])
    return tuple(shown[slot] for slot in order)


def _add_edges(beats: dict[int, set[int]], question: object, answer: object) -> None:
    """A set's or list's answer as decided outcomes (``infer``): winner > others, list in order."""
    if isinstance(answer, Pick):
        if answer.winner is not None:
            beats.setdefault(answer.winner, set()).update(i for i in question.ids if i != answer.winner)  # type: ignore[attr-defined]
    elif answer is not None:
        for x, a in enumerate(answer):  # type: ignore[arg-type]
            beats.setdefault(a, set()).update(answer[x + 1:])  # type: ignore[index]


def _implied_shaped(beats: dict[int, set[int]], question: object) -> object:
    """The answer the decided outcomes imply for a set or list question, or None."""
    ids = question.ids  # type: ignore[attr-defined]
    if isinstance(question, SetQuestion):
        for x in ids:
            if all(_implied(beats, x, y) == 1 for y in ids if y != x):
                return Pick(x)
        return None
    ranked = sorted(ids, key=lambda x: -sum(_implied(beats, x, y) == 1 for y in ids if y != x))
    if all(_implied(beats, a, b) == 1 for a, b in zip(ranked, ranked[1:], strict=False)):
        return tuple(ranked)
    return None


def _fail_jobs(step: _Step) -> None:
    """Fail every job whose comparisons needed a prompt that failed alone (it is not resumed)."""
    if not step.failed:
        return
    for job, _round, pairs, _implied in step.plans:
        if job.order is not None:  # done already (cut by the engine's deadline)
            continue
        shown = next((shown for shown, key in step.shaped.get(job, {}).values() if key in step.failed), None)
        if shown is not None:
            key = next(key for seen, key in step.shaped[job].values() if seen == shown and key in step.failed)
            cause, root, size = step.failed[key]
            error = PromptFailed(f"query {job.qid!r}: the judge failed on its {step.shapes.get(key, 'set')} "
                                 f"prompt showing {', '.join(repr(job.ids[i]) for i in shown)}: {cause} "
                                 f"(alone, after its batch of {size} failed)", job.qid, job.ids[shown[0]],
                                 job.ids[shown[1]])
            error.__cause__ = cause
            job.fail(error)
            continue
        for (a, b), keys in pairs.items():
            key = next((key for key in keys if key in step.failed), None)
            if key is None:
                continue
            a_first = key[2] is job.keys[a]
            first, second = (job.ids[a], job.ids[b]) if a_first else (job.ids[b], job.ids[a])
            cause, root, size = step.failed[key]
            how = ("alone" if root is cause else f"alone, after its batch of {size} failed the same way"
                   if str(root.__cause__ or root) == str(cause.__cause__ or cause)
                   else f"alone, after its batch of {size} failed with: {root}")
            error = PromptFailed(f"query {job.qid!r}: the judge failed on its prompt showing "
                                 f"{first!r} before {second!r}: {cause} ({how})", job.qid, first, second)
            error.__cause__ = cause
            job.fail(error)
            break


def _reaches(beats: dict[int, set[int]], start: int, goal: int) -> bool:
    """True when the decided outcomes hold a path start > ... > goal."""
    seen, stack = {start}, [start]
    while stack:
        for nxt in beats.get(stack.pop(), ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def _implied(beats: dict[int, set[int]], a: int, b: int) -> int | None:
    """The outcome for a the graph implies (WIN / LOSS), or None when it implies none or both."""
    down = a in beats and _reaches(beats, a, b)  # a path out of a needs a win of a's
    up = b in beats and _reaches(beats, b, a)
    return None if down == up else 1 if down else -1


def _present(ids: tuple[int, ...], how: str, keys: list[bytes], seed: int) -> tuple[int, ...]:
    """The order a set's or list's passages are shown in (the ``shape_order`` setting)."""
    if how == "asked":
        return ids
    if how == "reverse":
        return ids[::-1]
    coin = random.Random(digest(str(seed) + "".join(keys[i].hex() for i in ids)))
    shown = list(ids)
    coin.shuffle(shown)
    return tuple(shown)


def _plan(jobs: list[Job], backend: Backend, cache: Cache | None, s: Settings) -> _Step:
    """Steps 1 and 2: unique comparisons, their prompt keys, and what is left to pay for."""
    name = backend.name
    if s.shape_order not in SHAPE_ORDERS:
        raise ValueError(f"unknown shape_order {s.shape_order!r}; known: {', '.join(SHAPE_ORDERS)}")
    step = _Step()
    known, pending, owner = step.known, step.pending, step.owner
    infer = s.infer
    lookup = None if cache is None else cache.get
    new_tuple = tuple.__new__  # a Prompt without its Python-level __new__
    for job in jobs:
        round_, keys, qkey = job.round, job.keys, job.qkey
        orders = job.orders or s.orders
        fixed = FIXED_DIRECTIONS.get(orders)
        both = fixed == (True, False)
        pairs: dict[tuple[int, int], tuple[Key, ...]] = {}
        implied: dict[Pair, int] = {}
        shaped: dict[object, tuple[tuple[int, ...], Key]] = {}
        for question in round_:
            if type(question) is not tuple:
                if question in shaped or question in implied:
                    continue
                if infer and not job.soft:
                    answer = _implied_shaped(job.beats, question)
                    if answer is not None:
                        implied[question] = answer  # type: ignore[index]
                        continue
                shown = _present(question.ids, s.shape_order, keys, s.seed)
                shape = _shape_name(question, backend)
                template = getattr(backend, "shape_templates", {}).get(shape, f"{shape}-v1")
                shaped[question] = (shown, (f"{name}|{shape}|{template}", qkey,
                                            digest("".join(keys[x].hex() for x in shown)), b""))
                continue
            i, j = question
            pair = (i, j) if i < j else (j, i)
            if pair in pairs or pair in implied:
                continue
            a, b = pair
            if infer and not job.soft:
                result = _implied(job.beats, a, b)
                if result is not None:
                    implied[pair] = result
                    continue
            ka, kb = keys[a], keys[b]
            if both:
                pairs[pair] = ((name, qkey, ka, kb), (name, qkey, kb, ka))
            elif fixed or directions(orders, ka, kb, s.seed)[0]:
                pairs[pair] = ((name, qkey, ka, kb),)
            else:
                pairs[pair] = ((name, qkey, kb, ka),)
        cap = s.budget if job.budget is None else job.budget
        if cap is not None:
            cost = sum(map(len, pairs.values())) + len(shaped)
            if cap.unit != "prompts":
                cost = _round_cost(cap.unit, cost, job, pairs, shaped, backend, s)
            if job.spent + cost > cap.amount:
                step.over.append(job)
                continue
            job.spent += cost
        hits = virtual = 0
        qid, query, ids, texts = job.qid, job.query, job.ids, job.texts
        for (a, b), pair_keys in pairs.items():
            hit = True
            for key in pair_keys:
                if key in known:
                    continue
                if key in pending:
                    hit = False
                    continue
                virtual += 1
                judged = None if lookup is None else lookup(key)
                if judged is not None:
                    known[key] = judged
                    step.cached += 1
                    continue
                hit = False
                first, second = (a, b) if key[2] is keys[a] else (b, a)
                pending[key] = new_tuple(Prompt, (qid, query, ids[first], texts[first],
                                                  ids[second], texts[second]))
                owner[key] = job
            hits += hit
        led = job.ledger
        for question, (shown, key) in shaped.items():
            if key in known or key in pending:
                hits += key in known
                continue
            virtual += 1
            judged = None if cache is None else cache.get(key)
            if judged is not None:
                known[key] = judged
                step.cached += 1
                hits += 1
                continue
            shape = question.shape  # type: ignore[attr-defined]
            pending[key] = ShapedPrompt(job.qid, job.query, shape, key[0].rsplit("|", 1)[1],
                                        tuple(job.ids[x] for x in shown), tuple(job.texts[x] for x in shown))
            owner[key] = job
            step.shapes[key] = shape
        led.rounds += 1
        if shaped or len(implied) > sum(type(q) is tuple for q in implied):
            n_pairs = sum(type(q) is tuple for q in round_)
            led.comparisons += n_pairs
            led.unique_comparisons += len(pairs) + sum(type(q) is tuple for q in implied)
            asked = {"pair": len(pairs)} if pairs else {}
            for question in (*shaped, *(q for q in implied if type(q) is not tuple)):
                asked[question.shape] = asked.get(question.shape, 0) + 1  # type: ignore[attr-defined]
            led.questions_by_shape.update(asked)
            led.rounds_by_shape.update(dict.fromkeys(asked, 1))
            step.shaped[job] = shaped
        else:
            led.comparisons += len(round_)
            led.unique_comparisons += len(pairs) + len(implied)
            if pairs:
                led.questions_by_shape["pair"] += len(pairs)
                led.rounds_by_shape["pair"] += 1
        led.cache_hits += hits
        led.inferred += len(implied)
        led.virtual_prompts += virtual
        step.virtual[job] = virtual
        step.plans.append((job, round_, pairs, implied))
    return step


def _round_cost(unit: str, prompts: int, job: Job, pairs: dict, shaped: dict, backend: Backend,
                s: Settings) -> float:
    """What a query's round of ``prompts`` prompts costs in a budget's ``unit`` (see
    :mod:`cost.budget`): standalone inferences, estimated input tokens, dollars (input and
    output tokens under the price table) or predicted seconds."""
    if unit == "inferences":
        return -(-prompts // s.batch_size)
    budget = getattr(backend, "passage_tokens", 128)
    texts, query = job.texts, job.query
    tokens = sum(estimate_prompt_tokens(query, texts[a], texts[b], budget) * len(keys)
                 for (a, b), keys in pairs.items())
    tokens += sum(estimate_question_tokens(query, [texts[x] for x in shown], budget)
                  for shown, _key in shaped.values())
    if unit == "tokens":
        return tokens
    answers = sum(len(a) for a in pairs.values()) + sum(
        estimate_answer_tokens(q.shape, len(shown)) for q, (shown, _key) in shaped.items())  # type: ignore[attr-defined]
    if unit == "usd":
        return s.prices.usd(tokens, answers)  # type: ignore[union-attr]  # checked with the budget
    full, rest = divmod(prompts, s.batch_size)  # unit "s": the round's standalone batches
    per_prompt, per_answer = (tokens / prompts, answers / prompts) if prompts else (0.0, 0.0)
    b = s.batch_size
    seconds = full * s.latency.batch_seconds(b, b * per_prompt, b * per_answer)
    return seconds + (s.latency.batch_seconds(rest, rest * per_prompt, rest * per_answer) if rest else 0.0)


def _shape_name(question: object, backend: Backend) -> str:
    """The question's shape, checked against what ``backend`` answers (ValueError if not)."""
    shape = question.shape  # type: ignore[attr-defined]
    if shape not in getattr(backend, "shapes", ("pair",)):
        raise ValueError(f"backend {backend.name!r} does not answer {shape} questions (it answers: "
                         f"{', '.join(getattr(backend, 'shapes', ('pair',)))}); pick a pairwise sorter")
    return shape


Sent = list[tuple[list[Key], BatchResult]]  # the calls that answered: their prompts and answers


async def _send_all(batches: list[list[Key]], step: _Step, backend: Backend, cache: Cache | None,
                    s: Settings, spare: float = 0) -> Sent:
    """Step 3: judge every batch, caching each answer as soon as its batch returns. Then the
    prompts whose answer was unparsed are asked once more, in new batches (at most ``spare`` of
    them: what the budget leaves); a second unparsed answer stays in ``step.unparsed``. Returns
    every call that answered, in order (a split batch gives one per answered part)."""
    sent = await _send_batches(batches, step, backend, cache, s)
    if step.unparsed and spare >= 1:
        again = [key for batch, _ in sent for key in batch if key in step.unparsed]
        retries = [again[x: x + s.batch_size] for x in range(0, len(again), s.batch_size)]
        del retries[int(min(spare, len(retries))):]
        for key in (key for batch in retries for key in batch):
            step.unparsed.discard(key)
            step.owner[key].ledger.unparsed_retries += 1
        sent += await _send_batches(retries, step, backend, cache, s)
    return sent


async def _send_batches(batches: list[list[Key]], step: _Step, backend: Backend, cache: Cache | None,
                        s: Settings) -> Sent:
    if s.concurrency == 1 or len(batches) <= 1:
        return [done for batch in batches for done in await _send(batch, step, backend, cache, s)]
    gate = asyncio.Semaphore(s.concurrency)

    async def gated(batch: list[Key]) -> Sent:
        async with gate:
            return await _send(batch, step, backend, cache, s)

    # Fail fast: once a batch has failed for good, cancel the others (what finished is cached).
    tasks = [asyncio.ensure_future(gated(b)) for b in batches]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()  # a no-op on the finished ones
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [done for task in tasks for done in task.result()]


async def _send(batch: list[Key], step: _Step, backend: Backend, cache: Cache | None,
                s: Settings, root: tuple[BackendError, int] | None = None) -> Sent:
    """One inference through the cache (:func:`prp.judging.judge_batch`), recorded in the step;
    a failure that may be a prompt's fault splits the batch (module docstring, step 3).
    ``root``: the error and size of the first batch that failed, when this is part of it."""
    try:
        done = await judge_batch(backend, list(map(step.pending.__getitem__, batch)), batch, cache)
    except BackendError as exc:
        if not exc.prompt_fault:
            raise
        root = root or (exc, len(batch))
        if len(batch) == 1:
            step.failed[batch[0]] = (exc, *root)
            return []
        if step.hooks.on_split is not None:
            step.hooks.on_split(len(batch))
        half = (len(batch) + 1) // 2
        return (await _send(batch[:half], step, backend, cache, s, root)
                + await _send(batch[half:], step, backend, cache, s, root))
    judgments, no_margin = done.result.judgments, False
    step.known.update(zip(batch, judgments, strict=True))
    for key, judgment in zip(batch, judgments, strict=True):
        if not judgment.parsed:
            step.unparsed.add(key)
        elif key not in step.shapes and judgment.margin is None:
            no_margin = True
    if step.hooks.on_inference is not None:
        step.hooks.on_inference(done)
    if no_margin and s.aggregate == "margin":  # fail at the first such answer (it is cached)
        raise needs_margins(f"backend {backend.name!r} answered without one")
    return [(batch, done.result)]


def _uncount_unanswered(step: _Step) -> None:
    """A cut step: take back what :func:`_plan` counted for comparisons left unanswered (their
    prompts were never sent), so the ledgers count only what was judged or found in the cache."""
    known = step.known
    unsent_by = Counter(owner for key, owner in step.owner.items() if key not in known)
    for job, round_, pairs, implied in step.plans:
        answered = {pair for pair, keys in pairs.items() if all(key in known for key in keys)}
        settled = answered | implied.keys()  # answered by a prompt or by the graph
        unsent = unsent_by[job]
        led = job.ledger
        led.comparisons -= sum((min(q), max(q)) not in settled for q in round_ if type(q) is tuple)
        led.unique_comparisons -= len(pairs) - len(answered)
        shaped = step.shaped.get(job, {})
        for question, (_shown, key) in shaped.items():
            if key not in known:
                led.questions_by_shape[question.shape] -= 1  # type: ignore[attr-defined]
        if pairs:
            led.questions_by_shape["pair"] -= len(pairs) - len(answered)
        led.virtual_prompts -= unsent
        step.virtual[job] -= unsent
        if not any(key in known for keys in pairs.values() for key in keys) and not any(
                key in known for _shown, key in shaped.values()):
            led.rounds -= 1  # nothing of this round was asked
            for shape in {"pair"} if pairs else set():
                led.rounds_by_shape[shape] -= 1
            for shape in {q.shape for q in shaped}:  # type: ignore[attr-defined]
                led.rounds_by_shape[shape] -= 1


def _prefix_order(step: _Step) -> list[Key]:
    """The step's pending prompts in the order they are batched: grouped so that prompts that
    share a prefix (same template and query, and for a pair the same first passage) sit side by
    side, in a batch and across consecutive ones (a server's prefix cache then holds it, see
    :mod:`cost.prefix`); groups, and prompts within a group, in first-asked order."""
    groups: dict[tuple, list[Key]] = {}
    pending = step.pending
    for key, prompt in pending.items():
        lead = key[2] if type(prompt) is Prompt else prompt.ids[0]
        group = (key[0], key[1], lead)
        if group in groups:
            groups[group].append(key)
        else:
            groups[group] = [key]
    if len(groups) == len(pending):
        return list(pending)
    return [key for keys in groups.values() for key in keys]


class _Prefixes:
    """The step's cached-prefix count (the rule of :mod:`cost.prefix`, window 2), streamed: the
    scheduler sends prompts grouped by prefix, so a prompt that shares its head (and lead) with
    the one sent just before it is a hit with no lookup; only where the prefix changes are the
    heads and leads sent earlier looked up. ``sizes``: the step's passage estimates, by text
    (each estimated once a step; nothing is kept per query in flight)."""

    __slots__ = ("budget", "sizes", "seen", "head", "lead", "name", "qkey", "n", "query", "tokens", "t", "at")

    def __init__(self, budget: int | None) -> None:
        self.budget, self.sizes, self.seen = budget, {}, {}
        self.head = self.lead = self.name = self.qkey = self.query = None
        # ``t``: inferences counted; ``at``: the one the current run of prompts was last sent in
        self.n, self.tokens, self.t, self.at = 0, 0, 0, 0

    def inference(self, batch: list[Key], pending: dict) -> tuple[int, int]:
        """One inference's (cached-prefix tokens, input tokens), both estimated
        (:func:`cost.model.estimate_question_tokens`, split into head and passages)."""
        self.t = t = self.t + 1
        sizes, budget, seen = self.sizes, self.budget, self.seen
        head_key, name, qkey, n, query, lead, tokens, at = (
            self.head, self.name, self.qkey, self.n, self.query, self.lead, self.tokens, self.at)
        hit = total = 0
        for key in batch:
            p = pending[key]
            if type(p) is Prompt:
                first, second, width = p.first, p.second, 2
                size = sizes.get(first)
                if size is None:
                    size = sizes[first] = estimate_tokens(first, budget)
                lead_size = size
                size = sizes.get(second)
                if size is None:
                    size = sizes[second] = estimate_tokens(second, budget)
                total += lead_size + size
            else:
                texts = p.texts
                first, width = texts[0], len(texts)
                for text in texts:
                    size = sizes.get(text)
                    if size is None:
                        size = sizes[text] = estimate_tokens(text, budget)
                    total += size
                lead_size = sizes[first]
            if key[0] is name and key[1] is qkey and width == n and p.query is query:
                hit += tokens  # the same head as the prompt sent just before: cached
                if first is lead or first == lead:
                    hit += lead_size
                else:
                    seen[(head_key, lead)] = at
                    if seen.get((head_key, first), -1) >= t - 1:
                        hit += lead_size
                    lead = first
            else:
                if head_key is not None:
                    seen[head_key] = seen[(head_key, lead)] = at
                name, qkey, n, query, lead = key[0], key[1], width, p.query, first
                head_key = (name, qkey, n)
                tokens = TEMPLATE_TOKENS + LABEL_TOKENS * max(0, n - 2) + estimate_tokens(query)
                if seen.get(head_key, -1) >= t - 1:
                    hit += tokens
                    if seen.get((head_key, first), -1) >= t - 1:
                        hit += lead_size
            total += tokens
            at = t
        self.head, self.name, self.qkey, self.n, self.query, self.lead, self.tokens, self.at = (
            head_key, name, qkey, n, query, lead, tokens, at)
        return hit, total


def _charge(calls: Sent, step: _Step, s: Settings, backend: Backend) -> None:
    """Charge each query its share of this step's inferences, tokens (cached-prefix ones
    included, :mod:`cost.prefix`) and predicted time."""
    seconds = [s.latency.batch_seconds(len(batch), result.prompt_tokens, result.completion_tokens)
               for batch, result in calls]
    sent: dict[Job, int] = {}
    prefixes = _Prefixes(getattr(backend, "passage_tokens", 128))
    owner, shapes = step.owner, step.shapes
    tokens = any(result.prompt_tokens for _, result in calls)  # none reported: nothing to scale
    for batch, result in calls:
        size = len(batch)
        owner[batch[0]].ledger.batch_sizes[size] += 1
        reported = result.prompt_tokens
        if tokens:
            hit, estimated = prefixes.inference(batch, step.pending)
            cached = reported * hit / estimated if estimated else 0.0
        else:
            cached = 0.0
        for job, count in _shares(batch, step).items():
            led, share = job.ledger, count / size
            led.prompts += count
            led.inferences += share
            led.input_tokens += reported * share
            led.cached_tokens += cached * share
            led.output_tokens += result.completion_tokens * share
            sent[job] = sent.get(job, 0) + count
            if not shapes:
                led.prompts_by_shape["pair"] += count
                shares_by_shape, part = led.inferences_by_shape, 1 / size
                total = shares_by_shape["pair"]
                for _ in range(count):  # a prompt's share at a time: the same float as with shapes
                    total += part
                shares_by_shape["pair"] = total
        if shapes:
            for key in batch:
                shape = shapes.get(key, "pair")
                led = owner[key].ledger
                led.prompts_by_shape[shape] += 1
                led.inferences_by_shape[shape] += 1 / size
    if seconds:
        makespan = sum(seconds) if s.concurrency == 1 else LatencyModel.makespan(seconds, s.concurrency)
        total = sum(sent.values())
        for job, count in sent.items():
            job.ledger.predicted_seconds += makespan * count / total
    n_virtual = sum(step.virtual.values())
    if n_virtual:
        inferences = math.ceil(n_virtual / s.batch_size)
        for job, count in step.virtual.items():
            job.ledger.virtual_inferences += inferences * count / n_virtual


def _shares(batch: list[Key], step: _Step) -> dict[Job, int]:
    """How many of ``batch``'s prompts each query owns."""
    if len(step.plans) == 1:
        return {step.plans[0][0]: len(batch)}
    return Counter(map(step.owner.__getitem__, batch))  # in first-met order
