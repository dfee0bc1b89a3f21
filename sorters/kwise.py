"""The k-wise tournament: set questions of ``size`` candidates, winners advance, every answer
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

from ._base import Cut, Pick, SetQuestion, SorterGen, finish


def kwise_tournament(n: int, k: int, size: int, depth: int = 2, ahead: int = 2) -> SorterGen:
    """Top-k by k-wise matches over a preference graph; see the module docstring."""
    graph = _Standings(n)
    top: list[int] = []
    left = list(range(n))
    counts = [0] * n  # counts[x]: how many candidates left beat x
    beaters = [0] * n  # beaters[x]: the candidates left that beat x, as a bitset
    try:
        while len(top) < k and left:
            need = k - len(top)
            reach, into, mask = graph.reach, graph.into, graph.left
            for x in left:
                beaters[x] = b = into[x] & ~reach[x] & mask
                counts[x] = b.bit_count()
            live = [x for x in left if counts[x] < need]
            layers = _layers(live, counts, beaters, depth)
            if len(layers[0]) == 1:
                graph.take(layers[0][0], top, left)
                continue
            if not layers[0]:  # every candidate left has a live beater: a cycle
                graph.take(min(left, key=lambda x: (counts[x], x)), top, left)
                continue
            questions = [SetQuestion(group) for family in _families(layers, beaters)
                         for group in _groups(family, size) if len(group) > 1]
            if ahead and len(layers[0]) <= size and need > 1:
                questions += _ahead(layers[0], live, beaters, size, ahead, questions)
            answers = yield questions
            grew = False
            for q, answer in zip(questions, answers, strict=True):
                won = answer if isinstance(answer, Pick) else Pick(answer)  # type: ignore[arg-type]
                if won.winner in q.ids:
                    grew |= graph.add_pick(q.ids, won.winner, won.probs)
            if not grew:  # nothing learnt (a cycle): settle by fewest beaters
                graph.take(min(layers[0] or live, key=lambda x: (counts[x], x)), top, left)
    except Cut:  # ``top`` is settled; the rest keep first-stage order
        pass
    return finish(top, n)


class _Standings:
    """The closure of the answers so far, kept over the candidates left: the closure of a
    :class:`~sorters.graph.PreferenceGraph` fed the same answers, with the same bitsets by row
    (``reach[a]``: who ``a`` reaches) and by column (``into[b]``: who reaches ``b``), so that
    ``into[x] & ~reach[x]`` is x's beaters (``beats``) in a few integer operations.

    Every question is about candidates left (``left``, a bitset), so once a candidate is taken
    its own row and column are no longer kept: the paths through it are already summed up in
    the rows of the candidates left. A taken candidate reaches nearly every one left, so this
    keeps an update to the candidates its closure grows for, not the whole top-k so far.
    The edge weights, which decide nothing here, are not kept."""

    def __init__(self, n: int) -> None:
        self.left = (1 << n) - 1
        self.reach = [0] * n
        self.into = [0] * n

    def add_pick(self, ids: tuple[int, ...], winner: int, probs: tuple[float, ...] | None) -> bool:
        """A set's answer: ``winner`` above each other id; True when the closure grew. Probs
        that do not match the set are refused, as :meth:`PreferenceGraph.add_pick` does."""
        if probs is not None and len(probs) != len(ids):
            raise ValueError(f"{len(probs)} probs for the set {ids!r}")
        grew = False
        for c in ids:
            if c != winner:
                grew |= self.add(winner, c)
        return grew

    def add(self, winner: int, loser: int) -> bool:
        """``winner`` above ``loser``: as :meth:`PreferenceGraph.add`, every candidate left that
        reaches ``winner`` (and ``winner``) now reaches ``fresh``, what ``loser`` reaches (and
        ``loser``) that ``winner`` did not; True when that is not nothing."""
        reach, into = self.reach, self.into
        if reach[winner] >> loser & 1:
            return False
        fresh = ((1 << loser) | reach[loser]) & ~reach[winner]
        sources = (into[winner] & self.left) | (1 << winner)
        rest = sources
        while rest:
            low = rest & -rest
            reach[low.bit_length() - 1] |= fresh
            rest ^= low
        rest = fresh & self.left
        while rest:
            low = rest & -rest
            into[low.bit_length() - 1] |= sources
            rest ^= low
        return True

    def take(self, x: int, top: list[int], left: list[int]) -> None:
        """``x`` joins ``top`` and leaves ``left``."""
        top.append(x)
        left.remove(x)
        self.left &= ~(1 << x)


def _ahead(first: list[int], live: list[int], beaters: list[int], size: int, wide: int,
           asked: list[SetQuestion]) -> list[SetQuestion]:
    """For each candidate that may win layer 0's match, the first round of the match that would
    follow it (the candidates no live one but it beats), when it fits in ``wide`` sets."""
    live_mask = 0
    for x in live:
        live_mask |= 1 << x
    # a follow-up holds only candidates with at most one live beater
    few = [(x, b) for x in live if not (b := beaters[x] & live_mask) & (b - 1)]
    seen = {q.ids for q in asked}
    out = []
    for y in first:
        others = ~(1 << y)
        after = [x for x, b in few if x != y and not b & others]
        if len(after) > size * wide:
            continue
        for group in _groups(after, size):
            if len(group) > 1 and (ids := tuple(group)) not in seen:
                seen.add(ids)
                out.append(SetQuestion(ids))
    return out


def _layers(live: list[int], counts: list[int], beaters: list[int], depth: int) -> list[list[int]]:
    """The first ``depth`` layers of the live candidates by the length of their longest chain of
    live beaters, each in ascending index order (the deeper layers are not needed).

    The candidates are placed in (counts, index) order, and a chain counts only beaters placed
    before (under a consistent judge, all of them: a beater has fewer beaters). A candidate is
    in layer 0 when none of its beaters is placed before it, else in the first layer d such that
    those all are in layers < d (its longest chain is the longest of theirs, plus one)."""
    out: list[list[int]] = [[] for _ in range(depth)]
    masks = [0] * depth  # masks[d]: the candidates placed so far in layer d
    placed = 0
    for x in sorted(live, key=counts.__getitem__):  # a stable sort: by (counts, index)
        bit = 1 << x
        rest = beaters[x] & placed
        placed |= bit
        d = 0
        while rest and d < depth:
            rest &= ~masks[d]
            d += 1
        if d < depth:  # else deeper: rest was not empty, or became so only at layer ``depth``
            out[d].append(x)
            masks[d] |= bit
    for layer in out:
        layer.sort()
    return out


def _families(layers: list[list[int]], beaters: list[int]) -> list[list[int]]:
    """Layer 0 as one family; each deeper layer's members by the lowest-index member of the layer
    above that beats them (its victims, who meet once it is taken)."""
    out = [layers[0]]
    for above, layer in zip(layers, layers[1:], strict=False):
        bits = 0
        for y in above:
            bits |= 1 << y
        by: dict[int, list[int]] = {}
        for x in layer:
            parents = beaters[x] & bits
            by.setdefault((parents & -parents).bit_length() - 1, []).append(x)
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
