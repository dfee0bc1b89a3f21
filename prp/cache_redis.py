"""The Redis judgment cache: judgments shared by processes and machines (``prp serve`` replicas),
which never fails a request and heals by itself.

``make_cache("redis://host:6379/0")`` puts a :class:`~prp.cache.MemoryCache` in front of a
:class:`RedisCache` (:class:`~prp.cache.TieredCache`). Calls are synchronous (a loopback or LAN
round trip per look-up, on the engine's loop).

Rules:

* **At start** the server must answer a ``PING``: with ``on_error="raise"`` (the default, and what
  the CLI uses) one that cannot be reached is a :class:`~prp.cache.CacheError` naming the URL
  (``prp serve`` exits 2 with it); with ``on_error="warn"`` it warns and starts *down* (below).
* **Once running, an error never reaches a request.** A call that fails for a connection reason
  (refused, reset, timed out after ``timeout`` seconds, default 0.5) marks the cache *down*: reads
  are misses (the memory tier still answers; the rest goes to the judge) and do not touch the
  server, so no request waits on a dead one; writes go to a bounded write-back queue. An error
  the server answers (e.g. out of memory, a key of another type) only fails that call: a miss,
  or a write not kept.
* **Reconnecting** runs in a background thread, never on a request: a ``PING`` after a backoff
  that doubles from 0.05 s to a cap of ``retry_cap`` (default 1 s, redis-py's
  ``EqualJitterBackoff``: 50-100 % of that), so a server that is back is noticed within about a
  second. On the first answer the queue is written back (``MSET``, 1,000 at a time, oldest
  first), then the cache is *up* again: sharing resumes with no request paying for it.
* **The write-back queue** keeps at most ``max_pending`` judgments (default
  :data:`DEFAULT_MAX_PENDING`, 50,000: about 10 MB), one per prompt (a prompt judged twice is
  queued once); past the bound the oldest is dropped (counted; that prompt is paid again by a
  replica that asks it before this one does). ``close()`` tries once more to write back what is
  queued. A restarted Redis without persistence comes back empty: what it held before is paid
  again once, what was judged during the outage comes back with the queue.
* A stale pooled connection (the server restarted while the cache was idle) is retried once
  at once (redis-py ``Retry(NoBackoff(), 1)`` on connection errors only; timeouts are not
  retried).
* **Reporting**: :meth:`RedisCache.health` is ``("ok", "")`` or ``("degraded", reason)``;
  :func:`prp.cache.cache_health` asks every tier (``prp serve``'s ``/health`` answers 200
  ``{"status": "degraded", "reason": ...}`` while still admitting). Each failed call is counted
  in :attr:`RedisCache.errors` by operation (``connect``, ``get``, ``set``, ``reconnect``,
  ``flush``) and passed to the ``error_hooks`` (``prp serve``: ``prp_cache_errors_total``, all
  operations together, and the gauge ``prp_cache_up``, 1 or 0); going down and coming back are
  logged (logger ``prp.cache``, level WARNING). URLs in messages never show a password.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from prp.cache_keys import CacheError, Key, stored_key
from prp.judgment import check_choice, check_judgment
from prp.types import Choice, Judgment

log = logging.getLogger("prp.cache")

#: The default bound of the write-back queue, in judgments (~200 bytes each).
DEFAULT_MAX_PENDING = 50_000
#: Judgments written back per ``MSET``.
FLUSH_CHUNK = 1_000


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _encode(judgment: Judgment | Choice) -> bytes:
    if type(judgment) is Choice:  # a set or list answer: C|slots|probs|repaired
        order, probs, _parsed, repaired = judgment
        slots = ",".join(map(str, order or ()))
        shares = "" if probs is None else ",".join(repr(float(p)) for p in probs)
        return f"C|{slots}|{shares}|{'repaired' if repaired else ''}".encode()
    margin = "" if judgment.margin is None else repr(float(judgment.margin))
    return f"{judgment.preferred or ''}|{margin}|{'' if judgment.parsed else 'unparsed'}".encode()


def _decode_choice(text: str) -> Choice | None:
    try:
        _, slots, shares, flag = text.split("|")
        choice = Choice(tuple(int(s) for s in slots.split(",")),
                        tuple(float(p) for p in shares.split(",")) if shares else None, True,
                        flag == "repaired")
    except ValueError:
        return None
    return choice if check_choice(choice).parsed else None


def _decode(value: bytes) -> Judgment | Choice | None:
    if value.startswith(b"C|"):
        return _decode_choice(value.decode(errors="replace"))
    try:
        preferred, margin, *flag = value.decode().split("|")
        judgment = Judgment(preferred or None, float(margin) if margin else None,  # type: ignore[arg-type]
                            flag != ["unparsed"])
    except ValueError:
        return None  # not ours: a miss, never a wrong answer
    if judgment.preferred not in (None, "A", "B"):
        return None
    return judgment if check_judgment(judgment).parsed else None


def _number(name: str, value: object, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(f"{name} must be a number >= {minimum}, got {value!r}")


class RedisCache:
    """Judgments in Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``), under keys
    ``prefix`` + a digest of the prompt key; see the module docstring for what happens when the
    server goes away."""

    def __init__(self, url: str, on_error: str = "raise", prefix: bytes = b"prp:j:", *,
                 timeout: float = 0.5, retry_cap: float = 1.0,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        import redis
        from redis.backoff import EqualJitterBackoff, NoBackoff
        from redis.retry import Retry

        if on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
        _number("timeout", timeout, 0.001)
        _number("retry_cap", retry_cap, 0.001)
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 0:
            raise ValueError(f"max_pending must be an integer >= 0, got {max_pending!r}")
        self.url, self.on_error, self.prefix, self.max_pending = url, on_error, prefix, max_pending
        self.errors: Counter[str] = Counter()  # failed calls, by operation
        self.error_hooks: list[Callable[[str], object]] = []  # each called with the operation
        self.dropped = self.written_back = 0  # judgments dropped from / written back by the queue
        self._lock = threading.Lock()
        self._pending: OrderedDict[bytes, bytes] = OrderedDict()
        self._up, self._since, self._reason = True, 0.0, ""
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = EqualJitterBackoff(cap=retry_cap, base=0.05)
        self._transient = (redis.ConnectionError, redis.TimeoutError, OSError)
        self._redis = None
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
            self._redis.ping()
        except Exception as exc:
            message = f"cannot connect to the judgment cache at {redact(url)}: {type(exc).__name__}: {exc}"
            if on_error == "raise":
                self.close()
                raise CacheError(message) from exc
            if self._redis is None:  # a URL redis-py cannot use: nothing to reconnect to
                self._closed.set()
            warnings.warn(message + " (going on without it; reconnecting in the background)",
                          RuntimeWarning, stacklevel=2)
            self._down("connect", exc, quiet=True)

    # -- the request path ------------------------------------------------------------------

    def _key(self, key: Key) -> bytes:
        return self.prefix + stored_key(key)

    def get(self, key: Key) -> Judgment | None:
        if not self._up:
            return None
        try:
            value = self._redis.get(self._key(key))  # type: ignore[union-attr]
        except Exception as exc:
            self._failed("get", exc)
            return None
        return None if value is None else _decode(value)

    def set(self, key: Key, judgment: Judgment) -> None:
        item = self._key(key), _encode(judgment)
        with self._lock:
            if not self._up:
                self._queue([item])
                return
        try:
            self._redis.set(*item)  # type: ignore[union-attr]
        except Exception as exc:
            self._failed("set", exc, item)

    def health(self) -> tuple[str, str]:
        """``("ok", "")``, or ``("degraded", reason)`` while the server cannot be reached."""
        with self._lock:
            if self._up:
                return "ok", ""
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._since))
            return "degraded", (
                f"the judgment cache at {redact(self.url)} is unreachable since {since} "
                f"({self._reason}); serving from the judge and the memory tier; "
                f"{len(self._pending)} judgments queued for write-back (at most {self.max_pending}), "
                f"{self.dropped} dropped")

    @property
    def pending(self) -> int:
        """Judgments waiting in the write-back queue."""
        return len(self._pending)

    def __len__(self) -> int:
        if not self._up:
            raise CacheError(f"cannot count the judgments at {redact(self.url)}: {self._reason}")
        return sum(1 for _ in self._redis.scan_iter(match=self.prefix + b"*", count=1000))  # type: ignore[union-attr]

    def close(self) -> None:
        """Stop reconnecting; try once to write back what is queued; close the connections."""
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self._redis is None:
            return
        if self._pending:
            with contextlib.suppress(Exception):
                self._flush()
            if self._pending:
                log.warning("judgment cache at %s: %d queued judgments not written back at close",
                            redact(self.url), len(self._pending))
        self._redis.close()

    # -- going down and coming back ----------------------------------------------------------

    def _failed(self, op: str, exc: Exception, item: tuple[bytes, bytes] | None = None) -> None:
        if isinstance(exc, self._transient):
            self._down(op, exc, item)
        else:  # the server answered with an error: this call only
            self._count(op)

    def _count(self, op: str) -> None:
        self.errors[op] += 1
        for hook in list(self.error_hooks):
            with contextlib.suppress(Exception):  # a metrics hook never fails a request
                hook(op)

    def _down(self, op: str, exc: Exception, item: tuple[bytes, bytes] | None = None, *,
              quiet: bool = False) -> None:
        with self._lock:
            if item is not None:
                self._queue([item])
            self._reason = f"{type(exc).__name__}: {exc}"
            went_down = self._up
            if went_down:
                self._up, self._since = False, time.time()
            if not self._closed.is_set() and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._reconnect, name="prp-redis-reconnect",
                                                daemon=True)
                self._thread.start()
        self._count(op)
        if went_down and not quiet:
            log.warning("judgment cache at %s unreachable (%s): serving without it, reconnecting",
                        redact(self.url), self._reason)

    def _queue(self, items: list[tuple[bytes, bytes]], *, front: bool = False) -> None:
        """Queue ``items`` for write-back (the lock held); past the bound drop the oldest."""
        pending = self._pending
        for rkey, value in reversed(items) if front else items:
            if front and rkey in pending:
                continue  # queued again since: the newer one stays
            pending[rkey] = value
            pending.move_to_end(rkey, last=not front)
        while len(pending) > self.max_pending:
            pending.popitem(last=False)
            self.dropped += 1

    def _reconnect(self) -> None:
        failures = 0
        while not self._closed.wait(self._backoff.compute(failures)):
            try:
                self._redis.ping()  # type: ignore[union-attr]
            except Exception as exc:
                failures += 1
                with self._lock:
                    self._reason = f"{type(exc).__name__}: {exc}"
                self._count("reconnect")
                continue
            try:
                self._flush()
                return
            except Exception as exc:
                failures += 1
                with self._lock:
                    self._reason = f"{type(exc).__name__}: {exc}"
                self._count("flush")

    def _flush(self) -> None:
        """Write the queue back, then mark the cache up (raises what the server raises)."""
        written, started = 0, time.time()
        while True:
            with self._lock:
                if not self._pending:
                    was_down, since = not self._up, self._since
                    self._up, self._reason = True, ""
                    self.written_back += written
                    break
                chunk = [self._pending.popitem(last=False)
                         for _ in range(min(FLUSH_CHUNK, len(self._pending)))]
            try:
                self._redis.mset(dict(chunk))  # type: ignore[union-attr]
            except Exception:
                with self._lock:
                    self._queue(chunk, front=True)
                    self.written_back += written
                raise
            written += len(chunk)
        if was_down:
            log.warning("judgment cache at %s is back after %.1f s; %d queued judgments written back",
                        redact(self.url), started - since, written)
