"""One preference graph per query: every answer of any shape as edges, and what they imply.

Rules this module keeps:

* An edge ``a -> b`` says the judge ranked candidate ``a`` above ``b``. A pair answer ``WIN`` of
  ``(i, j)`` adds ``i -> j`` and ``LOSS`` adds ``j -> i`` (a float margin counts by its sign, its
  size is the edge's weight); a ``TIE`` adds no edge. A set answer adds ``winner -> c`` for each
  of the other k-1 candidates (weight: the winner's probability minus c's when the judge gave
  a distribution, else 1). A list answer adds all w(w-1)/2 ordered pairs ``perm[x] -> perm[y]``
  for x < y (weight 1). An unusable answer (None) adds nothing.
* **Closure.** :meth:`PreferenceGraph.beats` is reachability: ``a`` beats ``b`` when a path
  ``a -> ... -> b`` exists and none back. A pair reachable both ways (a cycle: an inconsistent
  judge) is unsettled, never decided.
* **Certified top-k.** :meth:`PreferenceGraph.certified_top` returns the top-k, in order, only
  when the graph proves it: the first beats (by closure) every other candidate, the second
  every other but the first, and so on. Under a consistent judge (every answer agrees with one
  strict order) the edges are true, so a certified top-k is the true one, whatever the
  unsettled pairs would answer.

The graph is pure data (no I/O). The closure is kept incrementally as bitsets (Python ints), by
row (``reach[a]``: who ``a`` reaches) and by column (``into[b]``: who reaches ``b``), so adding
an edge touches only the rows and columns that grow, not every candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class PreferenceGraph:
    """Edges between ``n`` candidates and their transitive closure (see the module docstring).

    Example:
        >>> g = PreferenceGraph(3)
        >>> g.add_order((2, 0, 1))
        >>> g.beats(2, 1), g.certified_top(2)
        (True, [2, 0])
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.reach = [0] * n  # bit b of reach[a]: a path a -> ... -> b exists
        self.into = [0] * n  # bit a of into[b]: the same path, by column (who reaches b)
        self.weights: dict[tuple[int, int], float] = {}  # direct edge (a, b) -> summed weight

    def add(self, winner: int, loser: int, weight: float = 1.0) -> bool:
        """Record ``winner`` ranked above ``loser`` (a direct edge) and update the closure; True
        when the closure grew (False: the edge was already implied, or ``winner == loser``).

        The new paths are ``x -> ... -> winner -> loser -> ... -> y``: every ``x`` that reaches
        ``winner`` (and ``winner`` itself) now reaches every ``y`` that ``loser`` reaches (and
        ``loser``). Such an ``x`` already reaches all ``winner`` reaches, so only ``fresh``, what
        ``winner`` did not reach yet, is new: the rows of the sources and the columns of
        ``fresh`` are updated, nothing else is looked at.
        """
        if winner == loser:
            return False
        edge = (winner, loser)
        self.weights[edge] = self.weights.get(edge, 0.0) + weight
        reach, into = self.reach, self.into
        if reach[winner] >> loser & 1:
            return False  # already implied: the closure does not change
        fresh = ((1 << loser) | reach[loser]) & ~reach[winner]
        sources = into[winner] | (1 << winner)
        rest = sources
        while rest:  # each bit, highest first
            x = rest.bit_length() - 1
            reach[x] |= fresh
            rest ^= 1 << x
        rest = fresh
        while rest:
            x = rest.bit_length() - 1
            into[x] |= sources
            rest ^= 1 << x
        return True

    def add_outcome(self, i: int, j: int, outcome: float) -> None:
        """A pair's answer: WIN (or a positive margin) adds ``i -> j``, LOSS ``j -> i``, a tie nothing."""
        if outcome > 0:
            self.add(i, j, float(outcome))
        elif outcome < 0:
            self.add(j, i, float(-outcome))

    def add_pick(self, ids: Sequence[int], winner: int | None,
                 probs: Sequence[float] | None = None) -> bool:
        """A set's answer: ``winner`` above each other id (None: nothing); True when the closure
        grew."""
        if winner is None:
            return False
        if winner not in ids:
            raise ValueError(f"the winner {winner} is not one of the set {tuple(ids)!r}")
        p = dict(zip(ids, probs, strict=True)) if probs is not None else None
        grew = False
        for c in ids:
            if c != winner:
                grew |= self.add(winner, c, 1.0 if p is None else p[winner] - p[c])
        return grew

    def add_order(self, perm: Sequence[int] | None) -> None:
        """A list's answer: ``perm[x]`` above ``perm[y]`` for every x < y (None: nothing)."""
        if perm is None:
            return
        for x, a in enumerate(perm):
            for b in perm[x + 1:]:
                self.add(a, b)

    def beats(self, a: int, b: int) -> bool:
        """True when the closure ranks ``a`` above ``b`` (a path a -> b and none back)."""
        return bool(self.reach[a] >> b & 1) and not self.reach[b] >> a & 1

    def settled(self, a: int, b: int) -> int | None:
        """+1 when ``a`` beats ``b``, -1 when ``b`` beats ``a``, None when the graph cannot tell."""
        return 1 if self.beats(a, b) else -1 if self.beats(b, a) else None

    def beaten_by(self, x: int, among: Iterable[int]) -> int:
        """How many of ``among`` beat ``x`` (by the closure)."""
        bit = 1 << x
        return sum(1 for y in among if y != x and self.reach[y] & bit and not self.reach[x] >> y & 1)

    def certified_top(self, k: int, among: Iterable[int] | None = None) -> list[int] | None:
        """The top-``k`` of ``among`` (default: every candidate), in order, when the graph
        certifies it (see the module docstring); None when it does not yet."""
        left = list(range(self.n)) if among is None else list(among)
        mask = 0
        for x in left:
            mask |= 1 << x
        top: list[int] = []
        for _ in range(min(k, len(left))):
            best = next((x for x in left
                         if self.reach[x] & (mask & ~(1 << x)) == mask & ~(1 << x)
                         and not any(self.reach[y] >> x & 1 for y in left if y != x)), None)
            if best is None:
                return None
            top.append(best)
            left.remove(best)
            mask &= ~(1 << best)
        return top
