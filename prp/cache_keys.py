"""Cache keys, and the error every persistent cache tier raises: what :mod:`prp.cache` and
:mod:`prp.cache_redis` share (both import it; it imports neither).

A key is ``(judge identity, query digest, first digest, second digest)`` (:func:`prompt_key`); a
persistent tier stores it under :func:`stored_key`, a 20-byte digest of the whole key.
"""

from __future__ import annotations

import hashlib

from prp.types import Prompt, ShapedPrompt

Key = tuple[str, bytes, bytes, bytes]


def digest(text: str) -> bytes:
    """The 16-byte digest a query, passage or id stands for in a key."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def prompt_key(backend_name: str, keys_by: str, prompt: Prompt | ShapedPrompt) -> Key:
    """The cache key of one prompt (the scheduler builds the same keys from per-query digests).

    A set or list prompt's key is (backend name | shape | template id, the query's digest, the
    digest of its passages' digests in the order shown, empty)."""
    if type(prompt) is ShapedPrompt:
        by_text = keys_by == "text"
        shown = prompt.texts if by_text else prompt.ids
        return (f"{backend_name}|{prompt.shape}|{prompt.template}",
                digest(prompt.query if by_text else prompt.qid),
                digest("".join(digest(x).hex() for x in shown)), b"")
    if keys_by == "text":
        return backend_name, digest(prompt.query), digest(prompt.first), digest(prompt.second)
    return backend_name, digest(prompt.qid), digest(prompt.first_id), digest(prompt.second_id)


def stored_key(key: Key) -> bytes:
    """The 20-byte name a persistent tier (a directory, Redis) stores ``key`` under."""
    name, query, first, second = key
    return hashlib.blake2b(name.encode() + b"\x00" + query + first + second, digest_size=20).digest()


class CacheError(RuntimeError):
    """A persistent cache (a directory, a Redis server) cannot be used."""
