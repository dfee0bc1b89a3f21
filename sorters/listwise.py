"""Listwise reranking by RankGPT's back-to-front sliding window (Sun et al. 2023).

Rounds: a pass slides a window of ``window`` positions from the back of the current ranking to
the front, ``step`` positions at a time: windows end at ``n, n - step, n - 2*step, ...`` and the
pass ends with the window that starts at position 0 (for n=100, window=20, step=10: windows
start at 80, 70, ..., 0, i.e. 9 windows). Each window is one ``ListQuestion`` of the candidates
at those positions, shown in their current order, and its answer reorders them in place.
``passes`` passes run one after the other. With a consistent judge one pass brings the best
``window - step`` candidates to the front in order, so the top-k is exact when
``k <= window - step`` (or after enough passes).

What batching can and cannot do: a window holds the winners of the window before it, so the
windows of one pass depend on each other and each is a round of one question: one query needs
``windows x passes`` inferences and rounds whatever the batch size. Batching pays only across
queries (the windows of many queries in flight share inferences) and, for the cache, across
runs; it cannot shorten one query's latency. (A later pass could start behind the earlier one,
overlapping by a wavefront; this sorter does not.)

An unusable answer (None) leaves the window as it was. The return value is the top-k of the
final ranking, then the rest in first-stage order. A :class:`Cut` returns the ranking as it
stands when at least one pass is complete, else the first-stage order.
"""

from __future__ import annotations

from ._base import Cut, ListQuestion, SorterGen, check_args, finish


def listwise(n: int, k: int, window: int = 20, step: int = 10, passes: int = 1) -> SorterGen:
    """Top-k by back-to-front sliding windows; see the module docstring for the rounds."""
    k = check_args(n, k)
    for name, value in (("window", window), ("step", step), ("passes", passes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"listwise: {name} must be an integer >= 1, got {value!r}")
    if window < 2:
        raise ValueError(f"listwise: window must be >= 2, got {window}")
    if step > window:
        raise ValueError(f"listwise: step ({step}) must be <= window ({window})")
    ranking = list(range(n))
    done = 0
    try:
        for _ in range(passes if n > 1 else 0):
            end = n
            while True:
                start = max(0, end - window)
                shown = ranking[start:end]
                (perm,) = yield [ListQuestion(shown)]
                if perm is not None and sorted(perm) == sorted(shown):
                    ranking[start:end] = perm
                if start == 0:
                    break
                end -= step
            done += 1
    except Cut:
        if not done:
            return finish([], n)
    return finish(ranking[:k], n)


def windows(n: int, window: int = 20, step: int = 10) -> int:
    """How many windows (questions, rounds) one pass asks over ``n`` candidates."""
    if n <= 1:
        return 0
    count, end = 1, n
    while end - window > 0:
        end -= step
        count += 1
    return count
