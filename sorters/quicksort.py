"""Partial quicksort for the top-k, one round per partitioning depth.

Invariant: ``a`` is a permutation of the candidates, and every slot outside the active
segments ``[lo, hi)`` either already holds its final top-k candidate or lies past the top-k.
Only segments with at least two candidates that start before ``k`` stay active.

Rounds: each depth partitions EVERY active segment at once. Per segment a pivot is chosen
and every other candidate in it is compared with it, ``(candidate, pivot)``; all segments
share one round. The partition is stable: the candidates ranking above the pivot (in their
current order), the pivot, then the rest (in their current order).

Pivot rules: ``middle`` = slot ``(lo + hi - 1) // 2``; ``first`` = slot ``lo``; ``random`` =
a slot drawn with ``random.Random(seed)``, segments taken left to right; ``median-of-three``
= one extra round per depth holding the three pairwise comparisons of the candidates at
``lo``, middle and ``hi - 1`` of every segment of size >= 3 (size 2 uses ``middle``); the
median becomes the pivot and the two known outcomes are reused, not asked again.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from itertools import combinations

from ._base import Cut, Outcome, Pair, Round, SorterGen, before, check_args, finish

PIVOTS = ("middle", "first", "random", "median-of-three")

Segment = tuple[int, int]
Known = dict[Pair, Outcome]


def quicksort(n: int, k: int, pivot: str = "middle", seed: int = 0) -> SorterGen:
    """Top-k by partial quicksort; see the module docstring for the round structure."""
    k = check_args(n, k)
    if pivot not in PIVOTS:
        raise ValueError(f"unknown pivot {pivot!r}; known pivots: {', '.join(PIVOTS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if n <= 1:
        return finish(range(n), n)
    a = list(range(n))
    rng = random.Random(seed) if pivot == "random" else None  # 2.5 KB a query: only when used
    segments: list[Segment] = [(0, n)]
    try:
        while segments:
            known: Known = {}
            if pivot == "median-of-three":
                slots = yield from _medians(a, segments, known)
            else:
                slots = [_pick(pivot, lo, hi, rng) for lo, hi in segments]
            segments = yield from _partition(a, segments, slots, known, k)
    except Cut:  # the partitions done so far: better candidates already sit higher
        pass
    return finish(a[:k], n)


def _pick(pivot: str, lo: int, hi: int, rng: random.Random | None) -> int:
    """The pivot slot of ``[lo, hi)`` under a rule that needs no comparisons."""
    if pivot == "first":
        return lo
    if pivot == "random":
        return rng.randrange(lo, hi)  # type: ignore[union-attr]
    return (lo + hi - 1) // 2


def _medians(
    a: list[int], segments: list[Segment], known: Known
) -> Generator[Round, list[Outcome], list[int]]:
    """Median-of-three pivot slots; the judged outcomes are stored in ``known``."""
    triples = [_triple(lo, hi) for lo, hi in segments]
    round_ = [(a[x], a[y]) for triple in triples if triple is not None for x, y in combinations(triple, 2)]
    if round_:
        known.update(zip(round_, (yield round_), strict=True))
    return [
        (lo + hi - 1) // 2 if triple is None else _median(a, triple, known)
        for (lo, hi), triple in zip(segments, triples, strict=True)
    ]


def _triple(lo: int, hi: int) -> tuple[int, int, int] | None:
    """The slots first, middle, last of ``[lo, hi)``, or None when it has fewer than 3."""
    return (lo, (lo + hi - 1) // 2, hi - 1) if hi - lo >= 3 else None


def _median(a: list[int], triple: tuple[int, int, int], known: Known) -> int:
    """The slot whose candidate beats exactly one of the other two (middle on a cycle)."""
    first, mid, last = triple
    for slot in (mid, first, last):
        others = [t for t in triple if t != slot]
        if sum(_ranks_above(a[slot], a[t], known) for t in others) == 1:
            return slot
    return mid  # pragma: no cover - some slot always has one win among three


def _ranks_above(i: int, j: int, known: Known) -> bool:
    """``before(i, j, ...)`` from a stored outcome of (i, j) or (j, i)."""
    if (i, j) in known:
        return before(i, j, known[(i, j)])
    return not before(j, i, known[(j, i)])


def _partition(
    a: list[int], segments: list[Segment], slots: list[int], known: Known, k: int
) -> Generator[Round, list[Outcome], list[Segment]]:
    """Partition every segment around its pivot slot in one round; return the new ones."""
    asks = [(a[s], a[p]) for (lo, hi), p in zip(segments, slots, strict=True)
            for s in range(lo, hi) if s != p]
    if known:  # median-of-three judged some of them already
        asks = [(c, piv) for c, piv in asks if (c, piv) not in known and (piv, c) not in known]
    if asks:
        known = {**known, **dict(zip(asks, (yield asks), strict=True))}
    new: list[Segment] = []
    for (lo, hi), p in zip(segments, slots, strict=True):
        piv = a[p]
        above: list[int] = []
        below: list[int] = []
        for s in range(lo, hi):
            if s != p:
                c = a[s]
                (above if _ranks_above(c, piv, known) else below).append(c)
        a[lo:hi] = above + [piv] + below
        split = lo + len(above)
        new += [(x, y) for x, y in ((lo, split), (split + 1, hi)) if y - x >= 2 and x < k]
    return new
