"""The sans-IO sorter protocol, shared by every algorithm in this package.

Rules this module keeps (and every sorter follows):

* A sorter is a generator ``sorter(n, k, **options)``. It yields a **round**: a list of
  comparisons ``(i, j)`` of candidate indices (``0 <= i, j < n``, ``i != j``) none of which
  depends on another's answer. It is sent back a list of **outcomes**, one per comparison,
  in the same order: ``WIN`` (+1) when ``i`` is more relevant, ``LOSS`` (-1) when ``j`` is,
  ``TIE`` (0) when the judge cannot tell. It never yields an empty round.
* When it stops, its return value (``StopIteration.value``) is a permutation of ``range(n)``:
  the top-k in judged order, then the other candidates in their original (first-stage) order.
* A sorter never does I/O, never sleeps and never calls an LLM; everything about who answers,
  how prompts are batched and what is cached lives in ``prp``.
* A budget may stop a sorter early: the driver throws :class:`Cut` into it instead of sending
  outcomes, and the sorter returns at once its best permutation so far (what it has settled
  first, in judged order, then the rest in first-stage order), asking nothing more.
* Ties, and anything the judge leaves undecided, are "not greater": the candidate that came
  first in the first-stage order goes first (:func:`before`). With a consistent judge this
  makes every sorter return exactly what a stable ``sorted()`` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

Pair = tuple[int, int]
"""A comparison ``(i, j)`` of two candidate indices: is ``i`` more relevant than ``j``?"""
Round = list[Pair]
"""Comparisons a sorter yields together, none depending on another's answer."""
Outcome = int
"""The answer to a comparison: :data:`WIN`, :data:`TIE` or :data:`LOSS`."""
SorterGen = Generator[Round, list[Outcome], list[int]]
"""A running sorter: yields rounds, is sent their outcomes, returns the permutation."""

class Cut(Exception):  # noqa: N818 - a signal, not an error
    """Thrown into a sorter to stop it: it must return its best permutation so far."""


WIN: Outcome = 1
"""``i`` is more relevant than ``j``."""
TIE: Outcome = 0
"""The judge cannot tell: first-stage order decides (:func:`before`)."""
LOSS: Outcome = -1
"""``j`` is more relevant than ``i``."""


def before(i: int, j: int, outcome: Outcome) -> bool:
    """True when candidate ``i`` ranks above ``j`` given the judged ``outcome`` of (i, j).

    A tie goes to the candidate with the smaller first-stage index.
    """
    return outcome > 0 or (outcome == 0 and i < j)


def check_args(n: int, k: int) -> int:
    """Validate ``n`` and ``k``; return ``k`` clipped to ``n`` (a top-k of everything)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return min(k, n)


def finish(top: Sequence[int], n: int) -> list[int]:
    """The final permutation: ``top`` in judged order, then the rest in original order."""
    chosen = set(top)
    return list(top) + [i for i in range(n) if i not in chosen]


def drive(sorter: SorterGen, compare: Callable[[int, int], Outcome]) -> list[int]:
    """Run a sorter to completion with a plain comparator (no batching, no cache).

    ``compare(i, j)`` returns WIN, TIE or LOSS. This is the reference driver the tests use;
    the engine in ``prp`` drives the same generators with batched, cached LLM judgments.
    """
    try:
        round_ = next(sorter)
        while True:
            round_ = sorter.send([compare(i, j) for i, j in round_])
    except StopIteration as stop:
        return stop.value
