"""A judgment cache many writers can share on a filesystem: one small file per prompt key.

:class:`ShardCache` is the cache of a Ray job without Redis (``prp rerank --executor ray
--cache-dir DIR``), and works in a single process too. Rules:

* **Content-addressed.** A prompt key (backend name, query, first and second passage, see
  :mod:`prp.cache`) is reduced to a 20-byte BLAKE2b digest; its judgment lives in
  ``DIR/ab/cd/<the other 36 hex digits>`` (two levels of 256 directories, so no directory grows
  past a few thousand entries below ~10^10 judgments).
* **Many writers, no lock.** A writer writes the judgment to a temp file beside its place and
  renames it into place (``os.replace``: atomic on POSIX filesystems and on NFS). A reader sees
  no file (a miss) or a whole one. Two writers of the same key write the same judgment (a
  deterministic judge) or two valid ones: the last rename wins, never a torn file. Actors on
  several machines can share one directory on a shared filesystem (NFS, Lustre, a FUSE-mounted
  bucket that supports rename).
* **Never a wrong answer.** A file that cannot be read or decoded (written by something else,
  truncated by a machine crash before it reached the disk) is a miss: the prompt is judged again
  and the file rewritten. Unparsed judgments are never stored (:mod:`prp.judging` never asks).
* **What it costs.** One file (an inode, ~4 KB of disk on most filesystems) per prompt judged,
  and two system calls per look-up: nothing beside an LLM judgment, but for a million
  simulated judgments a job spends seconds in the filesystem. :func:`prp.cache.make_cache` with
  a ``redis://`` URL is the faster shared cache when a Redis server is at hand.
* Errors follow :class:`prp.cache.DiskCache`: ``on_error="raise"`` turns a directory that
  cannot be used into :class:`~prp.cache.CacheError`; ``"warn"`` warns once and goes on without.

Put a :class:`~prp.cache.MemoryCache` in front (:func:`shard_cache` does) so a process asks the
filesystem once per key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import warnings
from pathlib import Path

from prp.cache import CacheError, Key, MemoryCache, TieredCache
from prp.types import Judgment

_counter = itertools.count()


def key_digest(key: Key) -> str:
    """The 40 hex digits naming ``key``'s file (the digest the disk and Redis caches use)."""
    name, query, first, second = key
    return hashlib.blake2b(name.encode() + b"\x00" + query + first + second, digest_size=20).hexdigest()


def encode(judgment: Judgment) -> bytes:
    return json.dumps([judgment.preferred, judgment.margin]).encode()


def decode(data: bytes) -> Judgment | None:
    """The judgment in a file's bytes, or None for anything that is not one of ours."""
    try:
        preferred, margin = json.loads(data)
    except (ValueError, TypeError):
        return None
    if preferred not in (None, "A", "B"):
        return None
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))
                               or not math.isfinite(margin)):
        return None
    return Judgment(preferred, None if margin is None else float(margin))


class ShardCache:
    """Judgments as one file per prompt key under ``directory`` (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str], on_error: str = "raise") -> None:
        if on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
        self.directory, self.on_error = Path(directory), on_error
        self._usable = True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".probe-{os.getpid()}-{next(_counter)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            self._failed("open", exc)

    def _failed(self, action: str, exc: Exception) -> None:
        message = f"cannot {action} the judgment cache at {self.directory}: {type(exc).__name__}: {exc}"
        self._usable = False
        if self.on_error == "raise":
            raise CacheError(message) from exc
        warnings.warn(message + " (going on without a cache)", RuntimeWarning, stacklevel=3)

    def path(self, key: Key) -> Path:
        """Where ``key``'s judgment lives."""
        hexed = key_digest(key)
        return self.directory / hexed[:2] / hexed[2:4] / hexed[4:]

    def get(self, key: Key) -> Judgment | None:
        if not self._usable:
            return None
        try:
            with open(self.path(key), "rb") as fh:
                data = fh.read(256)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._failed("read", exc)
            return None
        return decode(data)

    def set(self, key: Key, judgment: Judgment) -> None:
        if not self._usable:
            return
        path = self.path(key)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{next(_counter)}.tmp"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:  # the shard's directory is not there yet
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, encode(judgment))
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            self._failed("write", exc)

    def __len__(self) -> int:
        """Judgments stored (a walk of the directory: slow on a big cache)."""
        if not self._usable:
            return 0
        return sum(1 for _, _, files in os.walk(self.directory) for name in files if not name.startswith("."))


def shard_cache(directory: str | os.PathLike[str], on_error: str = "raise") -> TieredCache:
    """A :class:`~prp.cache.MemoryCache` over a :class:`ShardCache` in ``directory``."""
    return TieredCache(MemoryCache(), ShardCache(directory, on_error=on_error))
