"""The long-lived engine: one owner of a backend, a cache and the scheduler loop.

An :class:`Engine` is an async context manager. While it is open, a loop task runs
:func:`prp.scheduler.step` over every query in flight; callers submit requests (one or many
queries each) at any time with :meth:`Engine.rank_many` / :meth:`Engine.rank` and await their
results. :class:`SyncEngine` runs one in a thread of its own for synchronous callers.

Rules kept here:

* **Admission.** A request joins the next step: requests waiting when a step ends are admitted
  (first come, first served; at most ``in_flight`` queries in flight in all) before the next
  step is planned, so every query in flight shares that step's batches.
* **Linger (adaptive).** An idle engine that wakes up waits for batchmates only when more
  requests are on their way: while some are announced as arriving (:meth:`Engine.arriving`;
  ``prp serve`` announces each rerank request from the moment it is received until it is
  submitted, body read and checked), for at most ``linger_ms``, and no longer than until the
  last of them is submitted. A lone request (nothing else announced) goes at once, whatever
  ``linger_ms``; so does every request that arrives while the engine is busy (it joins the
  next step).
* **Per request.** A request may carry a ``budget`` (prompts per query, see
  :mod:`prp.scheduler`), ``max_inferences`` (for the whole request, as ``Reranker``'s), and a
  ``timeout`` (seconds from submission). A request with ``max_inferences`` is stepped in a
  group of its own (its budget counts whole batches, so it cannot share them); the others share.
* **Deadlines.** A request is answered when its ``timeout`` passes, even in the middle of a
  step (while the judge is slow or hangs): each of its queries gets its sorter's best ranking
  from the steps it completed (``cut=True``; a query never admitted keeps its first-stage
  order), and its cost counts those steps only. If no other request still waiting needs the
  step's inferences in flight, they are cancelled (an HTTP judge's requests with them); those
  that came back before are judged and cached, so nothing judged is lost. Otherwise the step
  goes on for the others.
* **Cancellation.** Cancelling the awaiting task (or its future) drops the request's queries
  at the next step boundary: prompts only they would have asked are never sent. A step is not
  interrupted for a cancellation, so whatever was sent is judged and cached.
* **Failure.** A backend error fails the requests of the group whose step raised, and only those;
  the engine keeps serving the others. Such an error says the judge is down; a prompt that
  failed alone (its batch split down to it, see :mod:`prp.scheduler`) fails only the requests
  with a query that needed it (:class:`~prp.oracles.base.PromptFailed`, naming the qid); the
  others go on. :attr:`Engine.batch_splits` counts the batches split (``on_split`` is called
  for each).
* **Determinism.** Requests submitted together (before the loop's next step) are admitted in
  submission order and the schedule then depends only on the inputs, so rankings and counts are
  the same run after run (a single request is scheduled exactly as :func:`prp.scheduler.run`).
  When requests arrive over time, timing decides which step each one joins: that changes batch
  composition (how inferences are shared, hence each ledger's fractional ``inferences``) and
  what the cache holds when it is asked, never a ranking for a judge whose answer to a prompt
  does not depend on the batch (budgets count cache hits, so a cut never depends on the cache).
* **Hooks.** ``on_inference(inference)`` after every inference (a
  :class:`prp.judging.Inference`: prompts, checked answers, prompts sent, seconds),
  ``on_cached(prompts)`` once per step with the prompts the cache answered,
  ``on_result(result)`` for every query's result as soon as that query finishes (its
  ``run_cost`` is set when its whole request completes), and ``on_split(prompts)`` for each
  failed batch split in halves (see
  :class:`prp.scheduler.Hooks`). Progress, timing and counting are hooks, never wrapper
  backends. They run on the engine's loop: keep them cheap and never raise from them.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from cost.budget import Budget
from cost.ledger import Ledger
from prp import scheduler
from prp.aggregate import ORDERS, check_choice
from prp.config import Config, check_budget
from prp.judging import Inference
from prp.result import RankedResult, ranked_result
from prp.types import RankRequest
from prp.validate import check_request, count_or_none, positive_int, sorter_factory

ResultHook = Callable[[RankedResult], None]


class EngineClosed(RuntimeError):
    """The engine is closing or closed: it admits no new request."""


class Arrival:
    """A request announced to the engine as on its way (see :meth:`Engine.arriving`): an idle
    engine lingers for it. :meth:`close` it (or leave its ``with`` block) when the request is
    submitted or given up; closing twice is harmless."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine: Engine | None = engine
        engine._arriving += 1

    def close(self) -> None:
        """No longer on its way: submitted, or given up."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine._arriving -= 1
            if not engine._arriving and engine._arrived is not None:
                engine._arrived.set()

    def __enter__(self) -> Arrival:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Request:
    """One submission: its queries, its limits and the future its caller awaits."""

    __slots__ = ("jobs", "waiting", "future", "deadline", "left", "started", "finished", "results", "timer")

    def __init__(self, jobs: list[scheduler.Job], future: asyncio.Future, deadline: float | None,
                 max_inferences: int | None) -> None:
        self.jobs, self.future, self.deadline = jobs, future, deadline
        self.waiting = deque(jobs)
        self.left = math.inf if max_inferences is None else max_inferences
        self.started = time.perf_counter()
        self.finished: list[scheduler.Job] = []  # finished since the engine last looked
        self.results: dict[scheduler.Job, RankedResult] = {}
        self.timer: asyncio.TimerHandle | None = None  # calls the engine when the deadline passes
        for job in jobs:
            job.request = self

    @property
    def limited(self) -> bool:
        return self.left != math.inf

    def stop_all(self) -> None:
        """Cut every unfinished query (the best ranking so far; never admitted: first-stage)."""
        for job in self.jobs:
            if job.order is None:
                job.stop()
        self.waiting.clear()

    def drop(self) -> None:
        """Forget every unfinished query: no more prompts are planned for them."""
        self.waiting.clear()
        for job in self.jobs:
            if job.order is None:
                job.order, job.cut = [], True


class Engine:
    """Ranks requests submitted at any time, sharing batches across all of them.

    ``reranker`` is a :class:`~prp.reranker.Reranker` (or any :class:`~prp.config.Config`: its
    backend, cache and settings are the engine's, as :attr:`config`) or a backend, with
    ``**options`` the Reranker's keyword arguments. ``linger_ms`` is the most an idle engine
    waits for requests announced as arriving (:meth:`arriving`) before its first step; it never
    waits for a lone request.
    """

    def __init__(self, reranker: Config | object, *, linger_ms: float = 0.0,
                 on_inference: Callable[[Inference], None] | None = None,
                 on_cached: Callable[[int], None] | None = None,
                 on_result: ResultHook | None = None, on_split: Callable[[int], None] | None = None,
                 **options: object) -> None:
        if not isinstance(reranker, Config):
            reranker = Config(reranker, **options)  # type: ignore[arg-type]
        elif options:
            raise TypeError("options go to the Reranker, not to an Engine built from one")
        if isinstance(linger_ms, bool) or not isinstance(linger_ms, (int, float)) or not linger_ms >= 0:
            raise ValueError(f"linger_ms must be a number >= 0, got {linger_ms!r}")
        self.config = reranker
        self.linger = linger_ms / 1000
        self.batch_splits = 0  # failed batches split in halves (see the module docstring)

        def split(prompts: int) -> None:
            self.batch_splits += 1
            if on_split is not None:
                on_split(prompts)

        self.hooks = scheduler.Hooks(on_inference, on_cached, on_result, split)
        self._requests: list[_Request] = []
        self._active: list[scheduler.Job] = []
        self._wake: asyncio.Event | None = None
        self._arriving = 0  # requests announced and not yet submitted (see Arrival)
        self._arrived: asyncio.Event | None = None  # set when the last of them is
        self._task: asyncio.Task | None = None
        self._closing = False
        self._running: dict[asyncio.Task, list[scheduler.Job]] = {}  # the step's groups in flight
        self._kept: dict[scheduler.Job, Ledger] = {}  # ledgers at the step's start (deadlined jobs)
        self.steps = 0

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the loop on the running event loop."""
        if self._task is not None:
            raise RuntimeError("the engine is already running")
        self._wake = asyncio.Event()
        self._arrived = asyncio.Event()
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._loop())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the engine runs on (None when it is not running)."""
        return None if self._task is None else self._task.get_loop()

    @property
    def accepting(self) -> bool:
        return self.running and not self._closing

    async def aclose(self, drain: bool = True) -> None:
        """Stop admitting; with ``drain``, finish every request in flight, else cancel them; then
        release what the backend holds on this loop (its ``aclose``: the HTTP judge's client)."""
        self._closing = True
        if self._task is None:
            return
        if not drain:
            for request in self._requests:
                request.future.cancel()
        assert self._wake is not None
        self._wake.set()
        while self._requests and not self._task.done():
            await asyncio.sleep(0.005)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        close = getattr(self.config.oracle, "aclose", None)  # e.g. the HTTP judge's client
        if callable(close):
            await close()

    # --- submission -------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Queries submitted and not yet admitted."""
        return sum(len(r.waiting) for r in self._requests)

    @property
    def in_flight(self) -> int:
        """Queries admitted and not finished."""
        return len(self._active)

    def arriving(self) -> Arrival:
        """Announce a request on its way (call it on the engine's loop): until the returned
        :class:`Arrival` is closed, an idle engine that wakes up lingers (at most ``linger_ms``)
        so that the request shares the first step's batches. A server calls it when a request
        comes in and closes it when the request is submitted or refused."""
        return Arrival(self)

    async def rank(self, query: str, docs: Sequence[str], doc_ids: Sequence[str] | None = None,
                   qid: str | None = None, **limits: object) -> RankedResult:
        """Rank one query as a request of its own; ``**limits`` as :meth:`rank_many`'s."""
        return (await self.rank_many([RankRequest(query, docs, doc_ids, qid)], **limits))[0]  # type: ignore[arg-type]

    async def rank_many(self, requests: Iterable[RankRequest | dict], *,
                        budget: int | str | Budget | None = None, max_inferences: int | None = None,
                        timeout: float | None = None, sorter: str | None = None, k: int | None = None,
                        orders: str | None = None) -> list[RankedResult]:
        """Rank queries as one request (their results in input order, each with ``run_cost``:
        the request's total). ``budget`` (per query: prompts, or with a unit: ``"40000tokens"``),
        ``max_inferences`` (the request's), ``timeout`` (seconds), ``sorter`` (a spec), ``k`` and
        ``orders`` apply to this request only (None: the Reranker's). Raises
        :class:`EngineClosed` when the engine is not admitting, ValueError on a bad option or a
        qid given twice."""
        if not self.accepting:
            raise EngineClosed("the engine is not running" if not self.running else "the engine is closing")
        if self.loop is not asyncio.get_running_loop():
            raise RuntimeError("an Engine serves the event loop it was started on; from other threads "
                               "or loops use a SyncEngine")
        budget = check_budget(budget, self.config.settings.prices)
        count_or_none("max_inferences", max_inferences)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        positive_int("k", k, allow_none=True)
        if orders is not None:
            check_choice("orders", orders, ORDERS)
        config = self.config
        if sorter is not None:
            config.check_sorter(sorter)
        checked = [check_request(r if isinstance(r, RankRequest) else RankRequest(**r)) for r in requests]
        seen: set[str] = set()
        for qid, *_ in checked:
            if qid in seen:
                raise ValueError(f"duplicate qid {qid!r} in one request: give each query its own qid "
                                 "(a query without one is named by its text)")
            seen.add(qid)
        jobs = [scheduler.Job(qid, query, ids, texts, *self._sorter(len(texts), budget, sorter, k, orders),
                              budget=budget, orders=orders, k=k)
                for qid, query, ids, texts in checked]
        if max_inferences is None:
            max_inferences = config.settings.max_inferences
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        request = _Request(jobs, loop.create_future(), deadline, max_inferences)
        if deadline is not None:
            request.timer = loop.call_at(deadline, self._overdue, request)
        self._requests.append(request)
        assert self._wake is not None
        self._wake.set()
        return await request.future

    def _sorter(self, n: int, budget: Budget | None, sorter: str | None, k: int | None,
                orders: str | None) -> tuple[Callable[[], object], bool]:
        """A query's sorter factory and whether it takes margins (:func:`prp.validate.sorter_factory`):
        the request's ``budget``, ``sorter``, ``k`` and ``orders``, None: the configured ones."""
        config, s = self.config, self.config.settings
        return sorter_factory(config.sorter_for(n, sorter, k, orders), n, config.k if k is None else k,
                              s.budget if budget is None else budget, orders or s.orders)

    # --- the loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        try:
            await self._run_loop()
        except Exception as exc:  # a bug, not a backend error: fail everyone rather than hang
            for request in self._requests:
                if not request.future.done():
                    request.future.set_exception(exc)
            raise

    async def _run_loop(self) -> None:
        assert self._wake is not None
        while True:
            if not self._active and not any(r.waiting for r in self._requests):
                self._settle()
                self._wake.clear()
                await self._wake.wait()
                if self.linger and self._arriving:
                    await self._linger()
            self._sweep()
            self._admit()
            if self._active:
                await self._step()
            self._settle()

    async def _linger(self) -> None:
        """Wait until every request announced as arriving is submitted, at most ``linger``."""
        assert self._arrived is not None
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), self.linger)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0)  # the last submitter's task, woken with this one, submits first

    def _sweep(self) -> None:
        """Drop cancelled requests; cut those past their deadline."""
        now = asyncio.get_running_loop().time()
        for request in self._requests:
            if request.future.done():  # cancelled by its caller
                request.drop()
            elif request.deadline is not None and now >= request.deadline:
                request.stop_all()
        self._active = [job for job in self._active if job.order is None]

    def _admit(self) -> None:
        limit = self.config.settings.in_flight or math.inf
        backend = self.config.oracle
        for request in self._requests:
            while request.waiting and len(self._active) < limit:
                job = request.waiting.popleft()
                job.start(backend.keys_by)
                if job.order is None:
                    self._active.append(job)

    async def _step(self) -> None:
        """One step over every query in flight: one shared group, one group per limited request."""
        shared: list[scheduler.Job] = []
        limited: dict[_Request, list[scheduler.Job]] = {}
        for job in self._active:
            request: _Request = job.request  # type: ignore[assignment]
            if request.limited:
                limited.setdefault(request, []).append(job)
            else:
                shared.append(job)
        groups = ([(shared, None)] if shared else []) + [(jobs, r) for r, jobs in limited.items()]
        self.steps += 1
        self._kept = {job: _copy(job.ledger) for job in self._active
                      if job.request.deadline is not None}  # type: ignore[attr-defined]
        self._running = {asyncio.ensure_future(self._step_group(jobs, request)): jobs
                         for jobs, request in groups}
        tasks = list(self._running)
        try:
            await asyncio.wait(tasks)
        finally:
            pending = [task for task in tasks if not task.done()]  # the engine itself was cancelled
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            self._running, self._kept = {}, {}
            # each group's exception, retrieved even when the engine is cancelled (a Ctrl-C inside
            # a judge ends its group with KeyboardInterrupt); a group cancelled by _overdue: none
            errors = [task.exception() for task in tasks if not task.cancelled()]
        for error in errors:
            if error is not None:
                raise error
        self._active = [job for job in self._active if job.order is None]

    def _overdue(self, request: _Request) -> None:
        """``request``'s deadline passed (a timer on the loop, maybe mid-step): answer it now with
        each query's best ranking so far, and cancel the step's groups no one needs any more."""
        request.timer = None
        if request.future.done():
            return
        in_step = [job for job in request.jobs if job in self._kept and job.order is None]
        for job in in_step:  # its cost: the steps it completed, not the one cut short
            job.ledger = self._kept.pop(job)
        request.stop_all()
        self._settle()
        for job in in_step:  # the step may still charge it: into a ledger no one reads
            job.ledger = Ledger()
        for task, jobs in self._running.items():
            if not any(job.order is None and not job.request.future.done() for job in jobs):  # type: ignore[attr-defined]
                task.cancel()

    async def _step_group(self, jobs: list[scheduler.Job], request: _Request | None) -> None:
        config = self.config
        budget = math.inf if request is None else request.left
        try:
            spent = await scheduler.step(jobs, config.oracle, config.cache, config.settings, budget,
                                         self.hooks)
        except Exception as exc:  # fail the requests of this group only
            for req in {job.request for job in jobs}:
                if not req.future.done():
                    req.future.set_exception(exc)
                req.drop()
            return
        for job in jobs:  # a prompt it needed failed alone: fail its request, only
            if job.error is not None and not job.request.future.done():
                job.request.future.set_exception(job.error)
                job.request.drop()
        if request is not None:
            if spent is None:
                request.stop_all()
            else:
                request.left -= spent

    def _settle(self) -> None:
        """Report every query finished; answer every request whose queries are all done; drop
        cancelled ones."""
        keep = []
        on_result = self.hooks.on_result
        for request in self._requests:
            if request.future.done():  # cancelled by its caller (or failed)
                request.drop()
                _stop_timer(request)
                continue
            for job in request.finished:
                result = request.results[job] = ranked_result(job, self.config.k)
                job.release()
                if on_result is not None:
                    on_result(result)
            request.finished.clear()
            if len(request.results) < len(request.jobs):
                keep.append(request)
                continue
            results = [request.results[job] for job in request.jobs]
            run = Ledger.total([r.cost for r in results])
            run.wall_seconds = time.perf_counter() - request.started
            for result in results:
                result.run_cost = run
            request.future.set_result(results)
            _stop_timer(request)
        self._requests = keep
        self._active = [job for job in self._active if job.order is None]


def _copy(ledger: Ledger) -> Ledger:
    return ledger.copy()


def _stop_timer(request: _Request) -> None:
    if request.timer is not None:
        request.timer.cancel()
        request.timer = None


class SyncEngine:
    """An :class:`Engine` on an event loop in a thread of its own, for synchronous callers
    (any thread may call :meth:`rank_many` at any time; calls share batches). Close it (or use
    it as a context manager) to drain and stop the thread."""

    def __init__(self, reranker: Config | object, **options: object) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="prp-engine", daemon=True)
        self._thread.start()

        async def make() -> Engine:
            engine = Engine(reranker, **options)
            engine.start()
            return engine

        try:
            self.engine = self._run(make())
        except BaseException:  # bad options: stop the thread started for it
            self._stop()
            raise

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def rank_many(self, requests: Iterable[RankRequest | dict], **limits: object) -> list[RankedResult]:
        """:meth:`Engine.rank_many`, from any thread: blocks until the request's results are in."""
        return self._run(self.engine.rank_many(list(requests), **limits))  # type: ignore[arg-type]

    def rank(self, query: str, docs: Sequence[str], doc_ids: Sequence[str] | None = None,
             qid: str | None = None, **limits: object) -> RankedResult:
        """Rank one query (see :meth:`rank_many`)."""
        return self.rank_many([RankRequest(query, docs, doc_ids, qid)], **limits)[0]

    def close(self) -> None:
        """Finish what is in flight, close the engine and stop its thread (idempotent)."""
        if self._thread.is_alive():
            self._run(self.engine.aclose())
            self._stop()

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
