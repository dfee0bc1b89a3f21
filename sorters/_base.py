"""The sans-IO sorter protocol, shared by every algorithm in this package.

Rules this module keeps (and every sorter follows):

* A sorter is a generator ``sorter(n, k, **options)``. It yields a **round**: a list of
  **questions** about candidate indices (``0 <= index < n``) none of which depends on another's
  answer. A question has one of three **shapes**:

  - **pair** ``(i, j)``, a plain tuple of two distinct indices: is ``i`` more relevant than
    ``j``? Answered ``WIN`` (+1) when ``i`` is, ``LOSS`` (-1) when ``j`` is, ``TIE`` (0) when
    the judge cannot tell (a soft sorter may get a float margin; only its sign is an outcome).
  - **set** :class:`SetQuestion` ``(i1, ..., ik)``, k >= 2 distinct indices: which one is the
    most relevant? Answered by a :class:`Pick`: ``winner`` (one of the question's indices, or
    None when the judge gave no usable answer) and optionally ``probs``, the judge's
    distribution over the question's indices, in the question's order.
  - **list** :class:`ListQuestion` ``(i1, ..., iw)``, w >= 2 distinct indices: order them. Answered
    by a permutation of the question's indices, best first (a tuple), or None when the judge
    gave no usable answer.

  It is sent back a list of answers, one per question, in the same order. It never yields an
  empty round. A sorter that asks only pairs is exactly what it was before shapes existed.
* The order of a set's or list's indices is the order the sorter would like them shown; the
  engine may present them in another order (its presentation-order knob) and maps the answer
  back, so answers are always in candidate indices. A judge may break a tie by the passage
  shown first: a sorter that wants ties to go to the first-stage order shows its questions in
  ascending index order.
* When it stops, its return value (``StopIteration.value``) is a permutation of ``range(n)``:
  the top-k in judged order, then the other candidates in their original (first-stage) order.
* A sorter never does I/O, never sleeps and never calls an LLM; everything about who answers,
  how prompts are batched and what is cached lives in ``prp``.
* A budget may stop a sorter early: the driver throws :class:`Cut` into it instead of sending
  answers, and the sorter returns at once its best permutation so far (what it has settled
  first, in judged order, then the rest in first-stage order), asking nothing more.
* Ties, and anything the judge leaves undecided, are "not greater": the candidate that came
  first in the first-stage order goes first (:func:`before`). With a consistent judge this
  makes every sorter return exactly what a stable ``sorted()`` returns. An unusable set or
  list answer (None) is no information: the sorter goes on as if the question was not asked
  (each sorter's docstring says what it then keeps).

:func:`drive` is the reference driver (no batching, no cache) the tests use; the engine in
``prp`` drives the same generators with batched, cached judgments.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Sequence
from typing import ClassVar, NamedTuple

Pair = tuple[int, int]
"""A comparison ``(i, j)`` of two candidate indices: is ``i`` more relevant than ``j``?"""
Outcome = int
"""The answer to a comparison: :data:`WIN`, :data:`TIE` or :data:`LOSS`."""


class _Many:
    """A question about several candidates (a set or a list), shown in the order of ``ids``."""

    __slots__ = ("ids",)
    shape: ClassVar[str] = ""

    def __init__(self, ids: Sequence[int]) -> None:
        ids = tuple(ids)
        if len(ids) < 2 or len(set(ids)) != len(ids):
            raise ValueError(f"a {self.shape} question needs 2 or more distinct candidates, got {ids!r}")
        object.__setattr__(self, "ids", ids)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a {self.shape} question is immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.ids == self.ids  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.shape, self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ids!r})"


class SetQuestion(_Many):
    """"Which of these candidates is the most relevant?" (shape ``set``); answered by a :class:`Pick`."""

    __slots__ = ()
    shape: ClassVar[str] = "set"


class ListQuestion(_Many):
    """"Order these candidates, best first" (shape ``list``); answered by a permutation of ``ids``."""

    __slots__ = ()
    shape: ClassVar[str] = "list"


class Pick(NamedTuple):
    """The answer to a :class:`SetQuestion`: the winner (None: no usable answer) and, when the
    judge gives one, its distribution over the question's ids (in the question's order)."""

    winner: int | None
    probs: tuple[float, ...] | None = None


Question = Pair | SetQuestion | ListQuestion
"""Any question a sorter may ask: a pair (a plain tuple), a set or a list."""
Answer = Outcome | float | Pick | tuple[int, ...] | None
"""The answer to a question: an outcome (pair), a :class:`Pick` (set), a permutation or None (list)."""
Round = list[Question]
"""Questions a sorter yields together, none depending on another's answer."""
SorterGen = Generator[Round, list[Answer], list[int]]
"""A running sorter: yields rounds, is sent their answers, returns the permutation."""


def shape_of(question: Question) -> str:
    """``"pair"``, ``"set"`` or ``"list"``."""
    return question.shape if isinstance(question, _Many) else "pair"

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


def pick_by(compare: Callable[[int, int], Outcome], ids: Sequence[int]) -> int:
    """The winner of a set by ``compare``: the first shown of those nothing shown beats."""
    best = ids[0]
    for c in ids[1:]:
        if compare(c, best) > 0:
            best = c
    return best


def order_by(compare: Callable[[int, int], Outcome], ids: Sequence[int]) -> tuple[int, ...]:
    """A list ordered by ``compare``, best first; ties keep the order shown (a stable sort)."""
    return tuple(sorted(ids, key=functools.cmp_to_key(lambda a, b: -compare(a, b))))


def drive(sorter: SorterGen, compare: Callable[[int, int], Outcome],
          pick: Callable[[tuple[int, ...]], Pick | int | None] | None = None,
          order: Callable[[tuple[int, ...]], tuple[int, ...] | None] | None = None) -> list[int]:
    """Run a sorter to completion with plain answer functions (no batching, no cache).

    ``compare(i, j)`` returns WIN, TIE or LOSS; ``pick(ids)`` the winner of a set (an index, a
    :class:`Pick` or None) and ``order(ids)`` a list's permutation (or None). Left out, they
    are derived from ``compare`` (:func:`pick_by`, :func:`order_by`). This is the reference
    driver the tests use; the engine in ``prp`` drives the same generators with batched,
    cached LLM judgments.
    """
    def answer(q: Question) -> Answer:
        if type(q) is tuple:
            return compare(*q)
        if isinstance(q, SetQuestion):
            won = pick(q.ids) if pick is not None else pick_by(compare, q.ids)
            return won if isinstance(won, Pick) else Pick(won)
        if isinstance(q, ListQuestion):
            return order(q.ids) if order is not None else order_by(compare, q.ids)
        i, j = q  # a pair given as another sequence type
        return compare(i, j)

    try:
        round_ = next(sorter)
        while True:
            round_ = sorter.send([answer(q) for q in round_])
    except StopIteration as stop:
        return stop.value
