"""The cyclic garbage collector during a long ranking: scan less, and less often.

A command that loads its input (``prp rerank``, ``simulate``, ``bench``) runs the ranking inside
:func:`input_loaded`:

* everything alive at that point (the loaded queries and passages, the modules) moves to the
  collector's permanent generation (:func:`gc.freeze`), so no collection walks the millions of
  objects of a large input again;
* the youngest generation is collected every :data:`YOUNG_THRESHOLD` allocations instead of
  Python's 700: the engine allocates and frees small objects by the million (prompts, answers,
  rounds), almost all freed by reference counting, and each young collection promoted the rest
  toward full collections that walk every query in flight.

On 10⁴ queries x 100 candidates the collector took a fifth to a half of the run's CPU time
(``bench/memory.py --without-freeze``). Rankings and counts do not change. Frozen objects are
still freed by reference counting as usual; only reference cycles among them wait until the
block ends, when :func:`gc.unfreeze` hands them back and the thresholds are restored.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 10_000
"""Allocations (net of deallocations) between two collections of the youngest generation."""


@contextlib.contextmanager
def input_loaded() -> Iterator[None]:
    """Freeze what is alive now (the loaded input) and collect the young less often, for the
    block; unfreeze and restore the thresholds after it."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
