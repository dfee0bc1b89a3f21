"""Scheduler overhead per comparison, with an instant judge, against ``sorted(cmp_to_key)``.

    pytest bench/ --benchmark-only --benchmark-columns=mean,stddev,rounds

Each engine benchmark reranks the same 100 candidates (full sort, k=100, so the comparison
count is close to sorted()'s) with ``bench/overhead.py``'s instant judge (its time included
here: ``bench/overhead.py`` reports the engine's time without it) and stores its comparison
count in ``extra_info``.
"""

from __future__ import annotations

import functools
import random

import pytest
from overhead import InstantJudge

from prp import Reranker

N = 100
RNG = random.Random(0)
SCORES = {f"d{i}": RNG.random() for i in range(N)}
IDS = list(SCORES)
DOCS = [f"passage {d} " * 20 for d in IDS]


def instant() -> InstantJudge:
    """``bench/overhead.py``'s instant judge on these candidates' scores."""
    return InstantJudge(SCORES)


def compare(a: str, b: str) -> int:
    return (SCORES[b] > SCORES[a]) - (SCORES[b] < SCORES[a])  # more relevant first


def test_sorted_cmp_to_key(benchmark):
    calls = 0

    def counted(a, b):
        nonlocal calls
        calls += 1
        return compare(a, b)

    benchmark(lambda: sorted(IDS, key=functools.cmp_to_key(counted)))
    benchmark.extra_info["comparisons"] = calls / max(benchmark.stats.stats.rounds, 1)


@pytest.mark.parametrize("sorter", ["quicksort", "mergesort", "heapsort"])
@pytest.mark.parametrize("batch_size", [1, 8, 64])
@pytest.mark.parametrize("cache", [False, True])
def test_engine(benchmark, sorter, batch_size, cache):
    def run():
        rr = Reranker(instant(), sorter=sorter, k=N, batch_size=batch_size, cache=cache)
        return rr.rank("q", DOCS, IDS)

    result = benchmark(run)
    benchmark.extra_info["comparisons"] = result.cost.comparisons
