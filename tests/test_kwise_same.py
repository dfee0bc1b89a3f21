"""The k-wise tournament's incremental bookkeeping takes today's decisions: the same rounds (every
question, in order, its members in order), the same ranking, as the from-scratch version it
replaced (kept as ``tests/kwise_reference.py``), for consistent, tied, noisy, intransitive and
unusable answers, with and without probabilities and with a :class:`Cut` at any round; the
sorter's bookkeeping counts every candidate's beaters as a full graph does; and the preference
graph answers every query as it did.

(The pair tournament, ``size=2`` through ``tournament``, does not use the graph: only the k-wise
path is compared; ``kwise_tournament`` itself is also driven with ``size=2``.)
"""

from __future__ import annotations

import itertools
import random

import kwise_reference
import pytest

from sorters import Cut, Pick, PreferenceGraph, SetQuestion, make_sorter
from sorters.kwise import _Standings, kwise_tournament


def record(gen, pick, cut_at=None):
    """Drive ``gen`` with ``pick(ids) -> answer``; (its result, every round it asked). Throws
    :class:`Cut` instead of answering round ``cut_at`` (1-based)."""
    rounds = []
    try:
        asks = next(gen)
        while True:
            assert asks and all(type(q) is SetQuestion for q in asks)
            rounds.append([q.ids for q in asks])
            if len(rounds) == cut_at:
                gen.throw(Cut())
                raise AssertionError("the sorter went on after Cut")
            asks = gen.send([pick(q.ids) for q in asks])
    except StopIteration as stop:
        return stop.value, rounds


def judge(kind: str, n: int, seed: int):
    """A fresh set judge of ``kind`` on ``n`` candidates (its own seeded stream)."""
    rng = random.Random(seed)
    if kind in ("perfect", "probs", "ints"):
        scores = [rng.random() for _ in range(n)]
    elif kind in ("ties", "last"):
        scores = [rng.randint(0, 3) for _ in range(n)]  # graded: many ties
    else:
        scores = [rng.random() * 3 for _ in range(n)]
    wins = {(a, b): rng.random() < 0.5 for a, b in itertools.combinations(range(n), 2)}

    def beats(a: int, b: int) -> bool:  # a fixed, intransitive preference per pair
        return wins[(a, b)] if a < b else not wins[(b, a)]

    def pick(ids: tuple[int, ...]):
        if kind == "perfect":
            return Pick(max(ids, key=lambda i: scores[i]))
        if kind == "ints":  # a bare index, not a Pick
            return max(ids, key=lambda i: scores[i])
        if kind == "ties":  # the first shown of the best
            return Pick(max(ids, key=lambda i: (scores[i], -ids.index(i))))
        if kind == "last":  # the last shown of the best
            return Pick(max(ids, key=lambda i: (scores[i], ids.index(i))))
        if kind == "probs":  # a distribution in the order shown
            total = sum(scores[i] + 0.1 for i in ids)
            return Pick(max(ids, key=lambda i: scores[i]), tuple((scores[i] + 0.1) / total for i in ids))
        if kind == "noisy":  # cycles now and then
            return Pick(max(ids, key=lambda i: scores[i] + rng.gauss(0, 1)))
        if kind == "random":  # any winner: many cycles
            return Pick(rng.choice(ids))
        if kind == "intransitive":  # most wins in the set by a fixed tournament on pairs
            return Pick(max(ids, key=lambda i: sum(beats(i, j) for j in ids if j != i)))
        if kind == "unusable":  # None, a stranger, a bare None, or the best
            roll = rng.random()
            if roll < 0.2:
                return Pick(None)
            if roll < 0.3:
                return None
            if roll < 0.4:
                return Pick(next(i for i in range(n + 1) if i not in ids))
            return Pick(max(ids, key=lambda i: scores[i]))
        raise AssertionError(kind)
    return pick


KINDS = ["perfect", "ints", "ties", "last", "probs", "noisy", "random", "intransitive", "unusable"]
SIZES = [2, 3, 5, 10, 20, 50, 100]


def both(n, k, size, depth, ahead, kind, seed, cut_at=None):
    new = record(kwise_tournament(n, k, size, depth, ahead), judge(kind, n, seed), cut_at)
    old = record(kwise_reference.kwise_tournament(n, k, size, depth, ahead), judge(kind, n, seed), cut_at)
    return new, old


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("size", [2, 3, 4, 5])
@pytest.mark.parametrize("kind", KINDS)
def test_same_rounds_and_ranking(n, size, kind):
    for seed in range(3):
        rng = random.Random(f"{n} {size} {kind} {seed}")
        k = min(n, rng.choice([1, 3, 10, n]))
        depth, ahead = rng.choice([1, 2, 2, 3]), rng.choice([0, 1, 2, 2, 3])
        new, old = both(n, k, size, depth, ahead, kind, seed)
        assert new == old, (k, depth, ahead, seed)
        assert sorted(new[0]) == list(range(n))


@pytest.mark.parametrize("kind", ["perfect", "ties", "noisy", "random"])
@pytest.mark.parametrize("n, k", [(20, 5), (50, 10), (100, 10)])
def test_same_after_a_cut(kind, n, k):
    for cut_at in (1, 2, 3, 5, 8):
        new, old = both(n, k, 4, 2, 2, kind, cut_at, cut_at)
        assert new == old, cut_at


@pytest.mark.parametrize("depth, ahead", [(1, 0), (2, 2), (3, 1), (4, 4)])
def test_same_top_and_full_orders_on_100(depth, ahead):
    for k, kind in [(10, "perfect"), (100, "perfect"), (100, "ties"), (30, "noisy")]:
        new, old = both(100, k, 4, depth, ahead, kind, k)
        assert new == old, (k, kind)


def test_same_through_make_sorter():
    pick = judge("ties", 40, 5)
    gen = make_sorter("tournament", 40, 10, k=4)
    new = record(gen, pick)
    old = record(kwise_reference.kwise_tournament(40, 10, 4), judge("ties", 40, 5))
    assert new == old


@pytest.mark.parametrize("seed", range(20))
def test_graph_answers_as_before(seed):
    """Random pair, set and list answers (cycles included): every query answers alike."""
    rng = random.Random(seed)
    n = rng.choice([1, 2, 5, 12, 40, 70])
    new, old = PreferenceGraph(n), kwise_reference.PreferenceGraph(n)
    for step in range(rng.randint(0, 3 * n)):
        ids = rng.sample(range(n), min(n, rng.randint(1, 5)))
        shape, outcome = rng.random(), rng.choice([1, -1, 0, 0.5, -2.5])
        probs = tuple(rng.random() for _ in ids) if rng.random() < 0.5 else None
        for g in (new, old):
            if shape < 0.3:
                g.add_outcome(ids[0], ids[-1], outcome)
            elif shape < 0.6:
                g.add_pick(ids, ids[-1], probs)
            elif shape < 0.9:
                g.add_order(ids)
            else:
                g.add(ids[0], ids[-1], 2.0)
        assert new.reach == old.reach and new.weights == old.weights
        if step % 7 == 0:
            _same_queries(new, old, n, rng)
    _same_queries(new, old, n, rng)
    for g in (new, old):
        with pytest.raises(ValueError, match="not one of the set"):
            g.add_pick((0,), n)


def _same_queries(new, old, n, rng):
    for a, b in itertools.product(range(n), repeat=2):
        assert new.beats(a, b) == old.beats(a, b) and new.settled(a, b) == old.settled(a, b)
    among = rng.sample(range(n), rng.randint(0, n))
    for x in range(n):
        assert new.beaten_by(x, among) == old.beaten_by(x, among)
    for k in (1, 2, 5, n):
        assert new.certified_top(k) == old.certified_top(k)
        assert new.certified_top(k, among) == old.certified_top(k, among)


@pytest.mark.parametrize("seed", range(30))
def test_standings_count_beaters_as_the_graph_does(seed):
    """The sorter's bookkeeping against a full graph fed the same answers (cycles included):
    every candidate left has the same beaters and the same count, after answers and takes."""
    rng = random.Random(seed)
    n = rng.choice([2, 4, 7, 12, 30])
    standings, graph = _Standings(n), kwise_reference.PreferenceGraph(n)
    top, left = [], list(range(n))
    while len(left) > 1:
        for _ in range(rng.randint(1, 4)):  # a round's answers
            ids = tuple(rng.sample(left, min(len(left), rng.randint(2, 4))))
            winner = rng.choice(ids)
            grew = standings.add_pick(ids, winner, None)
            before = sum(graph.reach)
            graph.add_pick(ids, winner)
            assert grew == (sum(graph.reach) != before)
        standings.recount()
        for _ in range(rng.choice([0, 0, 1, 2])):  # candidates taken, the best or any
            counts = {x: graph.beaten_by(x, left) for x in left}
            best = min(left, key=lambda x: (counts[x], x)) if rng.random() < 0.7 else rng.choice(left)
            standings.take(best, top, left)
            if len(left) < 2:
                break
        mask = sum(1 << x for x in left)
        assert standings.left == mask
        for x in left:
            beaters = sum(1 << y for y in left if graph.beats(y, x))
            assert standings.beaters(x) == beaters
            assert standings.counts[x] - standings.shift == graph.beaten_by(x, left)
    with pytest.raises(ValueError, match="probs"):
        standings.add_pick((0, 1), 0, (1.0,))


def test_mismatched_probs_are_refused_as_before():
    for sorter in (kwise_tournament, kwise_reference.kwise_tournament):
        gen = sorter(10, 3, 4)
        first = next(gen)
        with pytest.raises(ValueError):
            gen.send([Pick(q.ids[0], (1.0,)) for q in first])
