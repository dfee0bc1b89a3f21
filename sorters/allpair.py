"""All-pair scoring: every pair judged once, candidates ranked by their score.

Invariant: a candidate's score is its wins plus half its ties over all ``n - 1`` pairs it
takes part in; the ranking is by score, higher first, then by first-stage index.

Rounds: exactly one round holding all ``n * (n - 1) / 2`` pairs ``(i, j)`` with ``i < j``.
Outcomes are used raw (a tie gives each side 0.5), not through ``before``; with a
consistent judge the score order equals the stable sort.
"""

from __future__ import annotations

from itertools import combinations

from ._base import Cut, SorterGen, check_args, finish


def allpair(n: int, k: int) -> SorterGen:
    """Top-k by all-pair win counting in a single round."""
    k = check_args(n, k)
    if n <= 1:
        return finish(range(n), n)
    pairs = list(combinations(range(n), 2))
    try:
        outcomes = yield pairs
    except Cut:  # nothing judged: first-stage order
        return finish([], n)
    scores = [0.0] * n
    for (i, j), outcome in zip(pairs, outcomes, strict=True):
        scores[i] += (1 + outcome) / 2
        scores[j] += (1 - outcome) / 2
    ranking = sorted(range(n), key=lambda c: (-scores[c], c))
    return finish(ranking[:k], n)
