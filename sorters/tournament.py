"""Top-k by a knockout tournament with replays (the Mohajer et al. 2017 design, built for batching).

Invariant: the candidates not yet in the top-k form a forest. Each keeps the candidates it beat
directly (its *kids*, in the order it beat them, in segments: see ties). A comparison is always
between two siblings or roots, and makes the loser a kid of the winner. So each candidate is
known to rank below all its ancestors, the pairs of a round are disjoint, and no pair is judged
twice, in either order, whatever the judge answers.

Rounds:

1. **Bracket**: all n candidates play one single-elimination knockout, one round per level:
   n-1 comparisons in ceil(log2 n) rounds. ``seeded`` (default) is the standard draw on
   first-stage rank: seed 1 meets seed 2 only in the final and the top seeds get the byes (its
   sections are interleaved groups whose champions meet in its top levels, the "heap of
   group champions"). ``contiguous`` lets first-stage neighbours meet first.
2. The champion joins the top-k. Its kids are the only candidates no remaining one is known
   to beat; the best of them is the next champion (**refill**), kids - 1 comparisons.
   ``replay`` (default) folds each segment as a chain in the order the champion beat them (one
   comparison per round; with one segment it replays the popped leaf's path in a knockout
   tree), then chains the segment winners. In the same rounds it folds the kids of the
   champion's last kid likewise: they are the comparisons a replay needs if that kid is
   popped, and it is the likeliest next champion. ``knockout`` plays the kids as a knockout,
   smallest subtrees first: ceil(log2 kids) rounds and no look-ahead.
3. Repeat until k candidates are in the top-k.

Ties (``ties="infer"``, default): a tie says the judge sees no difference; tied candidates are
recorded as equal (and equality as transitive). A kid equal to the popped champion ranks above
every other kid: those lost outright to an equal, or are equal and later in first-stage order.
The first such kid becomes champion with no comparison and adopts the other kids, each of the
popped champion's segments as a segment of its own. With a consistent judge this is exact
(graded relevance has many ties); ``ties="ask"`` plays the refill anyway.

``size`` (``tournament:k=K``, K > 2) plays k-wise set questions instead: :mod:`sorters.kwise`.

Outcomes may be floats; only their sign counts. A :class:`Cut` returns the top-k found so far,
then the rest in first-stage order. Measured designs: ``bench/results/tournament-design.txt``.
"""

from __future__ import annotations

from collections.abc import Generator
from itertools import zip_longest

from ._base import Cut, Outcome, Pair, SorterGen, before, check_args, finish
from .kwise import kwise_tournament

BRACKETS = ("seeded", "contiguous")
REFILLS = ("replay", "knockout")
TIES = ("infer", "ask")

Play = Generator[list[Pair], list[Outcome], list[int]]


class _Forest:
    """Kids (segments in attach order), subtree sizes, judged outcomes and equal classes."""

    def __init__(self, n: int) -> None:
        self.kids: list[list[list[int]]] = [[[]] for _ in range(n)]
        self.size = [1] * n
        self.known: dict[Pair, Outcome] = {}  # (low, high) -> judged outcome (only its sign counts)
        self.cls = list(range(n))  # union-find of candidates judged (transitively) equal

    def play(self, pairs: list[Pair]) -> Play:
        """One round of disjoint (low, high) pairs; the winners, each adopting its loser."""
        asks = [p for p in pairs if p not in self.known]
        if asks:
            for pair, out in zip(asks, (yield asks), strict=True):
                self.known[pair] = out
        winners = []
        for low, high in pairs:
            out = self.known[(low, high)]
            win, lose = (low, high) if before(low, high, out) else (high, low)
            self.kids[win][0].append(lose)
            self.size[win] += self.size[lose]
            if out == 0:
                self.cls[self.find(lose)] = self.find(win)
            winners.append(win)
        return winners

    def find(self, x: int) -> int:
        while self.cls[x] != x:
            self.cls[x] = x = self.cls[self.cls[x]]
        return x


def tournament(n: int, k: int, bracket: str = "seeded", refill: str = "replay",
               ties: str = "infer", size: int = 2, depth: int = 2, ahead: int = 2) -> SorterGen:
    """Top-k by knockout and refills; see the module docstring for the rounds. ``size`` > 2
    (``tournament:k=K`` in a spec) plays k-wise set questions instead
    (:func:`sorters.kwise.kwise_tournament`, whose ``depth`` and ``ahead`` it takes;
    ``bracket``, ``refill`` and ``ties`` are for pairs only)."""
    k = check_args(n, k)
    for name, value, low in (("k (the match size)", size, 2), ("depth", depth, 1), ("ahead", ahead, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"tournament: {name} must be an integer >= {low}, got {value!r}")
    if size > 2:
        return (yield from kwise_tournament(n, k, size, depth, ahead))
    for name, value, known in (("bracket", bracket, BRACKETS), ("refill", refill, REFILLS),
                               ("ties", ties, TIES)):
        if value not in known:
            raise ValueError(f"unknown {name} {value!r}; known: {', '.join(known)}")
    if n <= 1:
        return finish(range(n), n)
    forest = _Forest(n)
    top: list[int] = []
    try:
        slots: list[int | None] = list(range(n)) if bracket == "contiguous" else _seeded(n)
        while len(slots) > 1:
            slots = yield from _level(forest, slots)
        top.append(slots[0])
        while len(top) < k:
            top.append((yield from _refill(forest, top[-1], refill, ties == "infer", k - len(top) > 1)))
    except Cut:  # the top-k so far is settled; the rest keep first-stage order
        pass
    return finish(top, n)


def _seeded(n: int) -> list[int | None]:
    """The seeded draw: seeds s and 2m-1-s meet in the first round of a 2m draw; None = bye."""
    order = [0]
    while len(order) < n:
        order = [x for s in order for x in (s, 2 * len(order) - 1 - s)]
    return [s if s < n else None for s in order]


def _level(forest: _Forest, slots: list) -> Generator[list[Pair], list[Outcome], list]:
    """One knockout level: slots 2x and 2x+1 meet; a bye (None) or an odd last slot goes through."""
    duels = list(zip_longest(slots[::2], slots[1::2]))
    games = [(min(a, b), max(a, b)) for a, b in duels if a is not None and b is not None]
    won = dict(zip(games, (yield from forest.play(games)), strict=True))
    return [b if a is None else a if b is None else won[(min(a, b), max(a, b))] for a, b in duels]


def _refill(forest: _Forest, popped: int, refill: str, infer: bool, ahead: bool
            ) -> Generator[list[Pair], list[Outcome], int]:
    """The best of the popped champion's kids; the others become its descendants."""
    segments = [s for s in forest.kids[popped] if s]
    flat = [c for s in segments for c in s]
    equal = [c for c in flat if forest.find(c) == forest.find(popped)] if infer else []
    if equal:
        best = min(equal)
        forest.kids[best] += [[c for c in s if c != best] for s in segments]
        forest.size[best] += sum(forest.size[c] for c in flat if c != best)
        return best
    if refill == "knockout":
        slots = sorted(flat, key=lambda c: forest.size[c])
        while len(slots) > 1:
            slots = yield from _level(forest, slots)
        return slots[0]
    last = flat[-1]
    while len(segments) > 1 or len(segments[0]) > 1:
        if all(len(s) == 1 for s in segments):
            segments = [flat]
        folds = [s for s in segments if len(s) > 1]
        if ahead:
            folds += [s for s in forest.kids[last] if len(s) > 1]
        winners = yield from forest.play([(min(s[0], s[1]), max(s[0], s[1])) for s in folds])
        for s, win in zip(folds, winners, strict=True):
            s[0:2] = [win]
        flat = [c for s in segments for c in s]
    return segments[0][0]
