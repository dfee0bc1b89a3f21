"""The endpoint pool of the HTTP backend: which server gets the next request, and its health.

Rules:

* **Health.** A failed request (connection error, timeout, 5xx, 408/429, malformed 200, or an
  answer abandoned to a faster hedge) takes its endpoint out of rotation for a backoff: the
  server's ``Retry-After`` if it sent one, else ``backoff * 2**(streak-1)`` with full jitter,
  capped at :data:`MAX_SLEEP`, where ``streak`` counts consecutive failures. Failures of requests
  that were already in flight when the endpoint was taken out do not lengthen its backoff. When
  the backoff ends the endpoint is *probing*: one request at a time until a success puts it
  back in rotation (streak 0), while a failure sends it out again for twice as long.
* **Choice.** Among the endpoints that can take a request now, the one with the least expected
  wait: ``(in flight + 1) * latency``, where latency is the moving average of its answered
  requests, or the age of its oldest unanswered one if that is longer (a server that hangs
  looks slower and slower). An endpoint never answered counts 0, so each is tried early.
  Load is thus spread by each endpoint's observed capacity: one that answers twice as fast
  carries about twice the requests in flight. Ties go round-robin.
* **Waiting.** When no endpoint can take a request, :meth:`Pool.acquire` waits for the first one
  to come back (polling every :data:`POLL` seconds); waiting costs no attempt. It waits until
  the pool is down at most (below).
* **Hedging.** :meth:`Pool.hedge_delay` is how long a request may stay unanswered before the caller
  sends a copy to another endpoint: ``hedge_factor`` times the slowest answering endpoint's
  latency, at least ``hedge_min`` seconds; ``cold_hedge`` seconds until some endpoint has
  answered (None: never).
* **Giving up (the pool's verdict).** Whether the judge is down is decided here, per endpoint
  and from every call together, not by each call's own retries. An endpoint's outage starts at
  its first failure after a success (``failing_since``). When every endpoint is out of rotation
  and the last of them has been failing for ``give_up_after`` seconds (default
  :data:`GIVE_UP_AFTER`; the backoff has probed each a few times by then), the pool is *down*:
  every call waiting for an endpoint gets :class:`JudgeDown` at once (naming each URL, how
  long it has failed, its failures, requests in flight and last error, and when the next probe
  is due), and so does every new call, with two exceptions: the call that takes an endpoint
  whose backoff is over is the probe, and while a probe is in flight the others wait for its
  outcome (a probe fails fast: a refusal or a 5xx at once, a hang at its liveness check).
  A probe's success puts the endpoint (and the pool) back in service, and the calls waiting
  for it go on; its failure fails them. (Were they failed at once instead, a step's first
  failure would cancel its own probe, and a pool once down would never come back.) A blip
  shorter than the window (one 503, a server restarting for a second) is ridden out by the
  calls' own retries as before. ``give_up_after=None``: never give up (calls spend their
  retries only). :meth:`Pool.retry_in` is how long until the next probe (a service's
  ``Retry-After``).
* **Proof of life.** Any HTTP answer from an endpoint (a judgment, a 4xx, a 503, an answer to a
  liveness check) is recorded (:meth:`Pool.alive`); the HTTP backend asks for a liveness check
  only when an endpoint has shown no life for a while (see :mod:`prp.oracles.http`).
* Everything here is counted per endpoint (:meth:`Pool.stats`); nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Callable, Iterable

from prp.oracles.base import BackendError

MAX_SLEEP = 30.0  # seconds: cap of a backoff or a Retry-After
GIVE_UP_AFTER = 5.0  # seconds every endpoint must have been failing before the pool is down
POLL = 0.05  # seconds between looks at the pool while every endpoint is out
EWMA = 0.3  # weight of the newest latency in the moving average


class JudgeDown(BackendError):
    """Every endpoint of the pool is out (the pool's verdict, or a call's retries spent while
    every endpoint was out). ``retry_after``: seconds until the pool probes again (>= 1)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Endpoint:
    """One base URL and what the pool has seen of it."""

    __slots__ = ("url", "requests", "failures", "successes", "hedges_lost", "streak",
                 "down_until", "down_since", "latency", "started", "last_error", "failing_since",
                 "alive_at")

    def __init__(self, url: str) -> None:
        self.url = url
        self.requests = self.failures = self.successes = self.hedges_lost = 0
        self.streak = 0  # consecutive failures; > 0: out of rotation or probing
        self.down_until = 0.0  # monotonic time it may be probed again
        self.down_since = -1.0  # when it was last taken out
        self.latency: float | None = None  # moving average of answered requests, seconds
        self.started: list[float] = []  # start times of its requests in flight
        self.last_error: str | None = None
        self.failing_since = -1.0  # when its current outage began (its first failure since a success)
        self.alive_at = -math.inf  # when it last gave any HTTP answer

    @property
    def in_flight(self) -> int:
        return len(self.started)

    def available(self, now: float) -> bool:
        """Can take a request now: in rotation, or probing with no probe in flight."""
        if self.streak == 0:
            return True
        return now >= self.down_until and not self.started

    def expected_wait(self, now: float) -> float:
        latency = self.latency or 0.0
        if self.started:
            latency = max(latency, now - self.started[0])
        return (self.in_flight + 1) * latency

    def state(self, now: float) -> str:
        if self.streak == 0:
            return "healthy"
        return "probing" if now >= self.down_until else "down"


class Pool:
    """Health-aware choice among base URLs (see the module docstring)."""

    def __init__(self, urls: Iterable[str], *, backoff: float = 0.5, hedge_factor: float = 4.0,
                 hedge_min: float = 0.5, cold_hedge: float | None = None,
                 give_up_after: float | None = GIVE_UP_AFTER, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoints = [Endpoint(url) for url in urls]
        if not self.endpoints:
            raise ValueError("an endpoint pool needs at least one URL")
        self.backoff, self.hedge_factor, self.hedge_min = backoff, hedge_factor, hedge_min
        self.give_up_after = give_up_after
        self.cold_hedge = cold_hedge
        self.rng = rng or random.Random()
        self.clock = clock
        self._turn = itertools.count()

    # -- choosing ---------------------------------------------------------------------------

    def pick(self, exclude: Iterable[Endpoint] = ()) -> Endpoint | None:
        """The endpoint with the least expected wait among those available now, or None."""
        now, skip = self.clock(), set(id(e) for e in exclude)
        n = len(self.endpoints)
        start = next(self._turn) % n
        best, best_wait = None, 0.0
        for offset in range(n):
            ep = self.endpoints[(start + offset) % n]
            if id(ep) in skip or not ep.available(now):
                continue
            wait = ep.expected_wait(now)
            if best is None or wait < best_wait:
                best, best_wait = ep, wait
        return best

    async def acquire(self) -> Endpoint:
        """An endpoint to send to, waiting (no attempt spent) while every one is out; raises
        :class:`JudgeDown` once the pool is down (see the module docstring)."""
        while True:
            ep = self.pick()
            if ep is not None:
                return ep
            down = None if self.probing() else self.verdict()
            if down is not None:
                raise down
            now = self.clock()
            back = min((e.down_until for e in self.endpoints if e.down_until > now), default=now)
            await asyncio.sleep(min(max(back - now, 0.0), POLL) or POLL)

    def hedge_delay(self) -> float | None:
        """Seconds after which an unanswered request may be copied to another endpoint."""
        seen = [e.latency for e in self.endpoints if e.latency is not None]
        if not seen:
            return self.cold_hedge
        return max(self.hedge_min, self.hedge_factor * max(seen))

    # -- the verdict ------------------------------------------------------------------------

    def all_out(self) -> bool:
        """Is every endpoint out of rotation (down or probing)?"""
        return all(e.streak for e in self.endpoints)

    def probing(self) -> bool:
        """Is a probe in flight: a request sent to an endpoint after it was taken out?"""
        return any(e.streak and any(start >= e.down_since for start in e.started) for e in self.endpoints)

    def retry_in(self) -> float:
        """Seconds until some endpoint out of rotation may be probed again (0: now)."""
        now = self.clock()
        return max(0.0, min(e.down_until - now for e in self.endpoints))

    def down_report(self) -> str:
        """Each endpoint out of rotation: URL, how long it has failed, failures, last error."""
        now = self.clock()
        return "; ".join(f"{e.url} failing for {now - e.failing_since:.1f} s ({e.failures} failures, "
                         f"{e.in_flight} in flight, "
                         f"last error: {e.last_error})" for e in self.endpoints if e.streak)

    def verdict(self) -> JudgeDown | None:
        """The pool's verdict: :class:`JudgeDown` when every endpoint has been out for
        ``give_up_after`` seconds (counted from the last one's first failure), else None."""
        if self.give_up_after is None or not self.all_out():
            return None
        now = self.clock()
        since = max(e.failing_since for e in self.endpoints)
        if now - since < self.give_up_after:
            return None
        return self.down(f"the judge is down: every endpoint has failed for {now - since:.1f} s or more: "
                         f"{self.down_report()}")

    def down(self, message: str) -> JudgeDown:
        """A :class:`JudgeDown` saying ``message`` and when the next probe is due."""
        retry = self.retry_in()
        return JudgeDown(f"{message}; next probe in {retry:.1f} s", retry_after=max(1, math.ceil(retry)))

    # -- recording --------------------------------------------------------------------------

    def alive(self, ep: Endpoint) -> None:
        """``ep`` gave an HTTP answer (of any status): proof that it is not hanging."""
        ep.alive_at = self.clock()

    def started(self, ep: Endpoint) -> float:
        """Record a request sent to ``ep``; returns its start time (give it back to finish)."""
        now = self.clock()
        ep.requests += 1
        ep.started.append(now)
        return now

    @staticmethod
    def _finish(ep: Endpoint, start: float) -> None:
        if start in ep.started:  # not when a request lost to a copy is cancelled afterwards
            ep.started.remove(start)

    def succeeded(self, ep: Endpoint, start: float) -> None:
        self._finish(ep, start)
        now = self.clock()
        seconds = now - start
        ep.successes += 1
        ep.latency = seconds if ep.latency is None else (1 - EWMA) * ep.latency + EWMA * seconds
        ep.streak, ep.down_until, ep.failing_since, ep.alive_at = 0, 0.0, -1.0, now

    def answered(self, ep: Endpoint, start: float) -> None:
        """``ep`` answered, though not with a judgment (a 4xx): it is up; no latency is learnt."""
        self._finish(ep, start)
        ep.streak, ep.down_until, ep.failing_since, ep.alive_at = 0, 0.0, -1.0, self.clock()

    def pause(self, streak: int, retry_after: float | None = None) -> float:
        """How long an endpoint with ``streak`` consecutive failures stays out of rotation."""
        if retry_after is not None:
            return min(retry_after, MAX_SLEEP)
        return self.rng.uniform(0.0, min(MAX_SLEEP, self.backoff * 2 ** (streak - 1)))

    def failed(self, ep: Endpoint, start: float, error: str, retry_after: float | None = None,
               *, lost_hedge: bool = False) -> None:
        """A request to ``ep`` failed: take it out of rotation (see the module docstring)."""
        self._finish(ep, start)
        now = self.clock()
        ep.failures += 1
        ep.hedges_lost += lost_hedge
        ep.last_error = error
        if ep.streak and start < ep.down_since:  # sent before it was taken out: already counted
            return
        if not ep.streak:
            ep.failing_since = now
        ep.streak += 1
        ep.down_since, ep.down_until = now, now + self.pause(ep.streak, retry_after)

    def cancelled(self, ep: Endpoint, start: float) -> None:
        """A request given up by the caller (a hedge that lost, or a cancelled batch)."""
        self._finish(ep, start)

    # -- reporting --------------------------------------------------------------------------

    def stats(self) -> list[dict[str, object]]:
        """Per endpoint: url, state, requests, successes, failures, hedges lost, latency."""
        now = self.clock()
        return [{"url": e.url, "state": e.state(now), "requests": e.requests, "successes": e.successes,
                 "failures": e.failures, "hedges_lost": e.hedges_lost, "in_flight": e.in_flight,
                 "latency_seconds": None if e.latency is None else round(e.latency, 4),
                 "failing_seconds": round(now - e.failing_since, 3) if e.streak else None,
                 "last_error": e.last_error} for e in self.endpoints]
