"""Judgment caches: a prompt judged once is never paid again.

A cache maps a prompt key to its :class:`~prp.types.Judgment`. The key is built by the
scheduler from (backend name - kind, model id, template id -, query, first passage, second
passage), each passage and the query reduced to a 16-byte BLAKE2b digest of its text (or of
its id, for simulated judges that read ids), so the order of the two passages is part of the
key. A set or list prompt's key is (backend name | shape | template id, query, one digest of its
passages' digests in the order shown, empty) and its answer a :class:`~prp.types.Choice`
(every cache here stores and reads back both kinds; see :mod:`prp.scheduler`). Caches store
what they are given: the rule that unparsed judgments are never stored is kept where prompts
are judged (:mod:`prp.judging`); a persistent cache still reads back only usable judgments
(data written by another version is checked).

* :class:`MemoryCache` - an LRU-bounded dict; the default, alive as long as the Reranker. It
  holds at most ``max_entries`` judgments (default :data:`DEFAULT_MAX_ENTRIES`: about 55 MB at
  ~275 bytes an entry); past that the least recently used one is dropped (it is paid again only
  if asked again). The default holds every prompt 256 queries in flight ask again (heapsort and
  bubblesort re-ask pairs; quicksort never does). A run that must never pay twice across calls
  wants a :class:`DiskCache` or a larger bound.
* :class:`DiskCache` - persistent, through ``diskcache`` (SQLite underneath): several
  processes may share one directory; each write is its own transaction, so none is lost.
* :class:`~prp.cache_redis.RedisCache` - judgments in a Redis server (redis-py), so that several
  processes or machines (``prp serve`` replicas) share them; ``make_cache("redis://host:6379/0")``
  puts a :class:`MemoryCache` in front of it (:class:`TieredCache`: memory over the shared store).
  Once running it never fails a request: while the server is down reads are misses and writes
  wait in a bounded queue, written back when it answers again (:mod:`prp.cache_redis` has the
  rules).

A tier that can be unhealthy has ``health() -> (state, reason)`` and may report failed calls to
``error_hooks``; :func:`cache_health` and :func:`add_cache_error_hook` reach every tier of a cache
(``prp serve`` turns them into ``/health``'s ``degraded`` and ``prp_cache_errors_total``).
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from cost.model import estimate_prompt_tokens
from prp.cache_keys import CacheError, Key, digest, prompt_key, stored_key
from prp.judgment import check_judgment
from prp.types import Choice, Judgment, Prompt


class Cache(Protocol):
    def get(self, key: Key) -> Judgment | None: ...

    def set(self, key: Key, judgment: Judgment) -> None: ...


#: The default bound of :class:`MemoryCache`, in judgments.
DEFAULT_MAX_ENTRIES = 200_000


class MemoryCache:
    """Judgments in memory, at most ``max_entries`` (None: unbounded), least recently used
    dropped first."""

    def __init__(self, max_entries: int | None = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries is not None and (isinstance(max_entries, bool) or not isinstance(max_entries, int)
                                        or max_entries < 1):
            raise ValueError(f"max_entries must be an integer >= 1 or None, got {max_entries!r}")
        self.max_entries = max_entries
        self._data: OrderedDict[Key, Judgment] = OrderedDict()

    def get(self, key: Key) -> Judgment | None:
        """The judgment cached under ``key`` (now the most recently used), or None."""
        judgment = self._data.get(key)
        if judgment is not None:
            self._data.move_to_end(key)
        return judgment

    def set(self, key: Key, judgment: Judgment) -> None:
        """Cache ``judgment`` under ``key``, dropping the least recently used past the bound."""
        data = self._data
        data[key] = judgment
        data.move_to_end(key)
        if self.max_entries is not None and len(data) > self.max_entries:
            data.popitem(last=False)

    def set_many(self, items: Sequence[tuple[Key, Judgment]]) -> None:
        """:meth:`set` for each (key, judgment), in order, at once (a judged batch's answers)."""
        data = self._data
        fresh = len(data)
        data.update(items)
        if len(data) - fresh < len(items):  # some keys were held already: they are now the newest
            for key, _ in items:
                data.move_to_end(key)
        if self.max_entries is not None:
            while len(data) > self.max_entries:
                data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class DiskCache:
    """A persistent judgment cache in ``directory`` (created if missing).

    ``on_error="raise"`` (default) turns any failure to open, read or write the directory into
    a :class:`CacheError` naming it; ``on_error="warn"`` warns once and carries on with no cache
    (every prompt is then judged again) - never a wrong answer either way.
    """

    def __init__(self, directory: str | os.PathLike[str], on_error: str = "raise") -> None:
        import diskcache

        if on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
        self.directory, self.on_error = Path(directory), on_error
        self._cache = None
        try:
            self._cache = diskcache.Cache(str(self.directory))
        except Exception as exc:  # diskcache raises OSError or sqlite3 errors
            self._failed("open", exc)

    def _failed(self, action: str, exc: Exception) -> None:
        message = f"cannot {action} the judgment cache at {self.directory}: {type(exc).__name__}: {exc}"
        if self.on_error == "raise":
            raise CacheError(message) from exc
        warnings.warn(message + " (going on without a cache)", RuntimeWarning, stacklevel=3)
        self._cache = None

    _disk_key = staticmethod(stored_key)  # the name older code and tests know

    def get(self, key: Key) -> Judgment | None:
        """The judgment stored under ``key``, or None (also for an unusable one found on disk)."""
        if self._cache is None:
            return None
        try:
            value = self._cache.get(self._disk_key(key))
        except Exception as exc:
            self._failed("read", exc)
            return None
        if value is None:
            return None
        # a set or list answer has 4 fields; written by an older version? NaN margins were cached then
        judgment = Choice(*value) if len(value) == 4 else Judgment(*value)
        return judgment if check_judgment(judgment).parsed else None

    def set(self, key: Key, judgment: Judgment) -> None:
        """Store ``judgment`` under ``key`` on disk."""
        if self._cache is None:
            return
        try:
            self._cache.set(self._disk_key(key), tuple(judgment))
        except Exception as exc:
            self._failed("write", exc)

    def __len__(self) -> int:
        return 0 if self._cache is None else len(self._cache)

    def close(self) -> None:
        """Close the directory's database (the judgments stay on disk)."""
        if self._cache is not None:
            self._cache.close()


class TieredCache:
    """A fast cache in front of a shared store (two layers); writes go to both.

    ``replay=False`` (a shared cache, e.g. memory over Redis): a look-up tries ``front`` then
    ``back``, a hit there is a cache hit, copied to the front.

    ``replay=True`` (a replay store, e.g. ``prp bench --cache-dir``): look-ups see the front only,
    so a run's ledger counts what it would pay on its own; when a batch is judged
    (:func:`prp.judging.judge_batch`) the prompts the back holds are answered from it
    (:meth:`recall`) and only the rest reach the judge. A replayed prompt is charged estimated
    tokens (:func:`cost.model.estimate_prompt_tokens`) scaled by the ratio of reported to
    estimated tokens of the prompts judged so far (1 before any), and the mean completion
    tokens of those prompts (1 before any: an answer is one token), so the batch's usage hardly
    depends on what was replayed."""

    def __init__(self, front: Cache, back: Cache, *, replay: bool = False) -> None:
        self.front, self.back, self.replay = front, back, replay
        self._reported = self._estimated = 0.0  # tokens of the prompts judged (replay)
        self._completion = self._judged = 0  # their completion tokens, and how many they were

    def get(self, key: Key) -> Judgment | None:
        judgment = self.front.get(key)
        if judgment is None and not self.replay:
            judgment = self.back.get(key)
            if judgment is not None:
                self.front.set(key, judgment)
        return judgment

    def set(self, key: Key, judgment: Judgment) -> None:
        self.front.set(key, judgment)
        self.back.set(key, judgment)

    def recall(self, keys: Sequence[Key]) -> list[Judgment | None]:
        """What the back holds for each key (replay only: otherwise nothing)."""
        if not self.replay:
            return [None] * len(keys)
        found = [self.back.get(key) for key in keys]
        for key, judgment in zip(keys, found, strict=True):
            if judgment is not None:
                self.front.set(key, judgment)
        return found

    def judged(self, prompts: Sequence[Prompt], reported_tokens: int, completion_tokens: int) -> None:
        """Prompts that reached the judge, and the tokens it reported for them."""
        if reported_tokens:
            self._reported += reported_tokens
            self._estimated += sum(_estimate(p) for p in prompts)
        self._completion += completion_tokens
        self._judged += len(prompts)

    def replay_tokens(self, prompts: Sequence[Prompt]) -> tuple[int, int]:
        """The (prompt, completion) tokens charged for replayed ``prompts``."""
        ratio = self._reported / self._estimated if self._estimated else 1.0
        per_prompt = self._completion / self._judged if self._judged else 1.0  # a PRP answer: one token
        return round(ratio * sum(_estimate(p) for p in prompts)), round(per_prompt * len(prompts))

    def __len__(self) -> int:
        return len(self.back)  # type: ignore[arg-type]

    def close(self) -> None:
        close = getattr(self.back, "close", None)
        if callable(close):
            close()


def _estimate(p: Prompt) -> int:
    return estimate_prompt_tokens(p.query, p.first, p.second)


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def make_cache(cache: object, on_error: str = "raise") -> Cache | None:
    """None/True -> MemoryCache; False -> no cache; a ``redis://`` URL -> memory over Redis; a
    path -> DiskCache; a Cache -> itself."""
    if cache is None or cache is True:
        return MemoryCache()
    if cache is False:
        return None
    if isinstance(cache, str) and cache.startswith(REDIS_SCHEMES):
        from prp.cache_redis import RedisCache

        return TieredCache(MemoryCache(), RedisCache(cache, on_error=on_error))
    if isinstance(cache, (str, os.PathLike)):
        return DiskCache(cache, on_error=on_error)
    if hasattr(cache, "get") and hasattr(cache, "set"):
        return cache  # type: ignore[return-value]
    raise TypeError("cache must be None, True, False, a directory path or a Cache, "
                    f"got {type(cache).__name__}")


def _tiers(cache: object) -> Iterator[object]:
    """``cache`` and, for a :class:`TieredCache`, its front and back tiers (recursively)."""
    yield cache
    if isinstance(cache, TieredCache):
        yield from _tiers(cache.front)
        yield from _tiers(cache.back)


def cache_health(cache: object) -> tuple[str, str]:
    """``("ok", "")``, or the first tier's ``(state, reason)`` that is not ok (``"degraded"``:
    still answering, without that tier). A cache without ``health()`` is ok."""
    for tier in _tiers(cache):
        health = getattr(tier, "health", None)
        if callable(health):
            state, reason = health()
            if state != "ok":
                return state, reason
    return "ok", ""


def add_cache_error_hook(cache: object, hook: Callable[[str], object]) -> int:
    """Call ``hook(operation)`` on each failed call of every tier that reports them (those with
    an ``error_hooks`` list); returns how many tiers do."""
    tiers = [tier for tier in _tiers(cache) if isinstance(getattr(tier, "error_hooks", None), list)]
    for tier in tiers:
        tier.error_hooks.append(hook)  # type: ignore[attr-defined]
    return len(tiers)


__all__ = ["Cache", "CacheError", "DiskCache", "Key", "MemoryCache", "TieredCache", "add_cache_error_hook",
           "cache_health", "digest", "make_cache", "prompt_key", "stored_key"]


def __getattr__(name: str) -> object:
    if name == "RedisCache":  # lives in prp.cache_redis (imports redis-py only when used)
        from prp.cache_redis import RedisCache

        return RedisCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
