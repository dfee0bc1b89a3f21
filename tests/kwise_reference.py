"""The reference: the k-wise tournament and its preference graph before they were made
incremental (verbatim copies of ``sorters/graph.py`` and ``sorters/kwise.py``, kept to prove
the decisions unchanged; see tests/test_kwise_same.py). Only the imports differ: the graph is
defined here and only ``sorters._base`` (the protocol, unchanged) is imported.

sorters/kwise.py:

The k-wise tournament: set questions of ``size`` candidates, winners advance, every answer
harvested into a :class:`~sorters.graph.PreferenceGraph`, stop when the graph certifies the top-k
(BlitzRank's idea, this design). Reached as ``tournament:k=K`` with K > 2.

State: the graph, the top-k found so far (``top``) and the candidates left. With ``need`` places
still open, a candidate is *live* while fewer than ``need`` candidates left are known (by
closure) to beat it; the others cannot reach the top-k and are never asked about again. The
live candidates form *layers*: layer 0 holds those no live candidate beats, layer d those whose
longest chain of live beaters has length d.

Rounds: when layer 0 is a single candidate, it beats every candidate left (under a consistent
judge), so it joins ``top`` with no question (the certified stop: nothing is asked once the top-k
is certified). Otherwise one round asks layer 0's members in ascending index order cut into as
few balanced groups of at most ``size`` as possible (a group of one is not asked): each group is
one ``SetQuestion``, whose winner advances. The first round is a knockout of all n candidates in
groups of ``size``; later rounds replay the champion's victims. Two options trade prompts for
rounds:

* ``depth`` (default 2): the first ``depth`` layers are asked each round; a deeper layer's
  members are grouped by the member of the layer above that beat them (its victims: they meet
  once it is taken), ahead of need. ``depth=1`` asks layer 0 only.
* ``ahead`` (default 2; 0 is off): when layer 0 fits in one set, the same round also asks, for
  each of its members y, the first round of the match that would follow if y won (the
  candidates no live one but y beats), when it fits in ``ahead`` sets: the winner's follow-up is
  then under way, and a place may be settled with no round of its own.

Measured on DL19 (depth 100, k=10, ``perfect:ties=off``, one query at a time,
``bench/results/shapes-dl19.txt``): ``tournament:k=4`` takes about 11 rounds a query (at most
12) where ``depth=1,ahead=0`` takes about 22, for about 1.7x the prompts.

An inconsistent judge may answer in cycles: a round that adds nothing to the closure, or a
layer 0 that is empty, makes the live candidate with the fewest live beaters (then the lowest
index) join ``top``, so the sorter always ends. An unusable answer (None) adds nothing. A
:class:`Cut` returns ``top``, then the rest in first-stage order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sorters._base import Cut, Pick, SetQuestion, SorterGen, finish

# ---- sorters/graph.py ----
#
# One preference graph per query: every answer of any shape as edges, and what they imply.
#
# Rules this module keeps:
#
# * An edge ``a -> b`` says the judge ranked candidate ``a`` above ``b``. A pair answer ``WIN`` of
#   ``(i, j)`` adds ``i -> j`` and ``LOSS`` adds ``j -> i`` (a float margin counts by its sign, its
#   size is the edge's weight); a ``TIE`` adds no edge. A set answer adds ``winner -> c`` for each
#   of the other k-1 candidates (weight: the winner's probability minus c's when the judge gave
#   a distribution, else 1). A list answer adds all w(w-1)/2 ordered pairs ``perm[x] -> perm[y]``
#   for x < y (weight 1). An unusable answer (None) adds nothing.
# * **Closure.** :meth:`PreferenceGraph.beats` is reachability: ``a`` beats ``b`` when a path
#   ``a -> ... -> b`` exists and none back. A pair reachable both ways (a cycle: an inconsistent
#   judge) is unsettled, never decided.
# * **Certified top-k.** :meth:`PreferenceGraph.certified_top` returns the top-k, in order, only
#   when the graph proves it: the first beats (by closure) every other candidate, the second
#   every other but the first, and so on. Under a consistent judge (every answer agrees with one
#   strict order) the edges are true, so a certified top-k is the true one, whatever the
#   unsettled pairs would answer.
#
# The graph is pure data (no I/O); the closure is kept incrementally as bitsets (Python ints).



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
        self.weights: dict[tuple[int, int], float] = {}  # direct edge (a, b) -> summed weight

    def add(self, winner: int, loser: int, weight: float = 1.0) -> None:
        """Record ``winner`` ranked above ``loser`` (a direct edge) and update the closure."""
        if winner == loser:
            return
        edge = (winner, loser)
        self.weights[edge] = self.weights.get(edge, 0.0) + weight
        reach = self.reach
        if reach[winner] >> loser & 1:
            return  # already implied: the closure does not change
        new = (1 << loser) | reach[loser]
        bit = 1 << winner
        for x in range(self.n):
            if x == winner or reach[x] & bit:
                reach[x] |= new

    def add_outcome(self, i: int, j: int, outcome: float) -> None:
        """A pair's answer: WIN (or a positive margin) adds ``i -> j``, LOSS ``j -> i``, a tie nothing."""
        if outcome > 0:
            self.add(i, j, float(outcome))
        elif outcome < 0:
            self.add(j, i, float(-outcome))

    def add_pick(self, ids: Sequence[int], winner: int | None,
                 probs: Sequence[float] | None = None) -> None:
        """A set's answer: ``winner`` above each other id (None: nothing)."""
        if winner is None:
            return
        if winner not in ids:
            raise ValueError(f"the winner {winner} is not one of the set {tuple(ids)!r}")
        p = dict(zip(ids, probs, strict=True)) if probs is not None else None
        for c in ids:
            if c != winner:
                self.add(winner, c, 1.0 if p is None else p[winner] - p[c])

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


# ---- sorters/kwise.py ----


def kwise_tournament(n: int, k: int, size: int, depth: int = 2, ahead: int = 2) -> SorterGen:
    """Top-k by k-wise matches over a preference graph; see the module docstring."""
    graph = PreferenceGraph(n)
    top: list[int] = []
    left = list(range(n))
    try:
        while len(top) < k and left:
            need = k - len(top)
            counts = {x: graph.beaten_by(x, left) for x in left}
            live = [x for x in left if counts[x] < need]
            layers = _layers(graph, live, counts)
            if len(layers[0]) == 1:
                _take(layers[0][0], top, left)
                continue
            if not layers[0]:  # every candidate left has a live beater: a cycle
                _take(min(left, key=lambda x: (counts[x], x)), top, left)
                continue
            questions = [SetQuestion(group) for family in _families(graph, layers[:depth])
                         for group in _groups(family, size) if len(group) > 1]
            if ahead and len(layers[0]) <= size and need > 1:
                questions += _ahead(graph, layers[0], live, size, ahead, questions)
            before = sum(graph.reach)
            answers = yield questions
            for q, answer in zip(questions, answers, strict=True):
                won = answer if isinstance(answer, Pick) else Pick(answer)  # type: ignore[arg-type]
                if won.winner in q.ids:
                    graph.add_pick(q.ids, won.winner, won.probs)
            if sum(graph.reach) == before:  # nothing learnt (a cycle): settle by fewest beaters
                _take(min(layers[0] or live, key=lambda x: (counts[x], x)), top, left)
    except Cut:  # ``top`` is settled; the rest keep first-stage order
        pass
    return finish(top, n)


def _ahead(graph: PreferenceGraph, first: list[int], live: list[int], size: int, wide: int,
           asked: list[SetQuestion]) -> list[SetQuestion]:
    """For each candidate that may win layer 0's match, the first round of the match that would
    follow it (the candidates no live one but it beats), when it fits in ``wide`` sets."""
    out = []
    for y in first:
        after = [x for x in live if x != y and not any(graph.beats(z, x) for z in live if z not in (x, y))]
        if len(after) > size * wide:
            continue
        for group in _groups(after, size):
            question = SetQuestion(group) if len(group) > 1 else None
            if question is not None and question not in asked and question not in out:
                out.append(question)
    return out


def _take(x: int, top: list[int], left: list[int]) -> None:
    top.append(x)
    left.remove(x)


def _layers(graph: PreferenceGraph, live: list[int], counts: dict[int, int]) -> list[list[int]]:
    """The live candidates by the length of their longest chain of live beaters."""
    layer: dict[int, int] = {}
    done: list[int] = []
    for x in sorted(live, key=lambda x: (counts[x], x)):
        layer[x] = 1 + max((layer[y] for y in done if graph.beats(y, x)), default=-1)
        done.append(x)
    out: list[list[int]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for x in sorted(live):
        out[layer[x]].append(x)
    return out


def _families(graph: PreferenceGraph, layers: list[list[int]]) -> list[list[int]]:
    """Layer 0 as one family; each deeper layer's members by the lowest-index member of the layer
    above that beats them (its victims, who meet once it is taken)."""
    out = [layers[0]]
    for above, layer in zip(layers, layers[1:], strict=False):
        by: dict[int, list[int]] = {}
        for x in layer:
            parent = next((y for y in above if graph.beats(y, x)), -1)
            by.setdefault(parent, []).append(x)
        out += [by[p] for p in sorted(by)]
    return out


def _groups(members: list[int], size: int) -> list[list[int]]:
    """``members`` cut into ceil(m / size) contiguous groups whose sizes differ by at most one."""
    m = len(members)
    if m == 0:
        return []
    count = -(-m // size)
    base, extra = divmod(m, count)
    out, start = [], 0
    for g in range(count):
        end = start + base + (g < extra)
        out.append(members[start:end])
        start = end
    return out
