"""The cyclic garbage collector and the loaded input: scan it once, not on every collection.

A command that loads its input (``prp rerank``, ``simulate``, ``bench``) runs the ranking inside
:func:`input_loaded`: everything alive at that point (the loaded queries and passages, the
modules) moves to the collector's permanent generation (:func:`gc.freeze`), so collections
triggered by the ranking's own allocations no longer walk the millions of objects of a large
input (on 10⁴ queries x 100 candidates they took most of the run's time). Objects frozen are
still freed by reference counting as usual; only reference cycles among them wait until the
block ends, when :func:`gc.unfreeze` hands them back to the collector.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def input_loaded() -> Iterator[None]:
    """Freeze what is alive now (the loaded input) for the block; unfreeze after it."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
