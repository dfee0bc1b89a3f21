"""Judgment caches: a prompt judged once is never paid again.

A cache maps a prompt key to its :class:`~prp.types.Judgment`. The key is built by the
scheduler from (backend name - kind, model id, template id -, query, first passage, second
passage), each passage and the query reduced to a 16-byte BLAKE2b digest of its text (or of
its id, for simulated judges that read ids), so the order of the two passages is part of the
key. Unparsed judgments are never stored.

* :class:`MemoryCache` - a dict; the default, alive as long as the Reranker.
* :class:`DiskCache` - persistent, through ``diskcache`` (SQLite underneath): several
  processes may share one directory; each write is its own transaction, so none is lost.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from prp.types import Judgment

Key = tuple[str, bytes, bytes, bytes]


class Cache(Protocol):
    def get(self, key: Key) -> Judgment | None: ...

    def set(self, key: Key, judgment: Judgment) -> None: ...


class MemoryCache:
    def __init__(self) -> None:
        self._data: dict[Key, Judgment] = {}

    def get(self, key: Key) -> Judgment | None:
        return self._data.get(key)

    def set(self, key: Key, judgment: Judgment) -> None:
        if judgment.parsed:
            self._data[key] = judgment

    def __len__(self) -> int:
        return len(self._data)


class CacheError(RuntimeError):
    """The cache directory cannot be used."""


class DiskCache:
    """A persistent judgment cache in ``directory`` (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        import diskcache

        self.directory = Path(directory)
        try:
            self._cache = diskcache.Cache(str(self.directory))
        except Exception as exc:  # diskcache raises OSError or sqlite3 errors
            raise CacheError(f"cannot open the judgment cache at {self.directory}: {exc}") from exc

    @staticmethod
    def _disk_key(key: Key) -> bytes:
        name, query, first, second = key
        return hashlib.blake2b(name.encode() + b"\x00" + query + first + second,
                               digest_size=20).digest()

    def get(self, key: Key) -> Judgment | None:
        value = self._cache.get(self._disk_key(key))
        return None if value is None else Judgment(*value)

    def set(self, key: Key, judgment: Judgment) -> None:
        if judgment.parsed:
            self._cache.set(self._disk_key(key), (judgment.preferred, judgment.margin))

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()


def make_cache(cache: object) -> Cache | None:
    """None/True -> MemoryCache; False -> no cache; a path -> DiskCache; a Cache -> itself."""
    if cache is None or cache is True:
        return MemoryCache()
    if cache is False:
        return None
    if isinstance(cache, (str, os.PathLike)):
        return DiskCache(cache)
    if hasattr(cache, "get") and hasattr(cache, "set"):
        return cache  # type: ignore[return-value]
    raise TypeError("cache must be None, True, False, a directory path or a Cache, "
                    f"got {type(cache).__name__}")
