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
windows of one pass depend on each other and each is a round of one question: one pass needs
``windows`` inferences and rounds whatever the batch size. Batching pays across queries (the
windows of many queries in flight share inferences) and, for the cache, across runs; it cannot
shorten one pass. With ``passes`` > 1 and ``pipeline`` on (default), a pass starts behind the
one before it as soon as that one has left the positions of its first window (a wavefront):
windows of different passes that do not overlap share a round, so P passes take
``windows + lag x (P - 1)`` rounds (lag: the windows a pass must wait, 2 for window 20, step
10) instead of ``windows x P``, with exactly the same questions and answers (disjoint windows
commute). ``pipeline=false`` runs the passes one after the other.

An unusable answer (None) leaves the window as it was. The return value is the top-k of the
final ranking, then the rest in first-stage order. A :class:`Cut` returns the ranking as it
stands when at least one pass is complete (windows of later passes already answered included),
else the first-stage order.
"""

from __future__ import annotations

from ._base import Cut, ListQuestion, SorterGen, check_args, finish


def listwise(n: int, k: int, window: int = 20, step: int = 10, passes: int = 1,
             pipeline: bool = True) -> SorterGen:
    """Top-k by back-to-front sliding windows; see the module docstring for the rounds."""
    k = check_args(n, k)
    for name, value in (("window", window), ("step", step), ("passes", passes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"listwise: {name} must be an integer >= 1, got {value!r}")
    if window < 2:
        raise ValueError(f"listwise: window must be >= 2, got {window}")
    if step > window:
        raise ValueError(f"listwise: step ({step}) must be <= window ({window})")
    if not isinstance(pipeline, bool):
        raise ValueError(f"listwise: pipeline must be true or false, got {pipeline!r}")
    ranking = list(range(n))
    spans = _spans(n, window, step)
    at = [0] * (passes if n > 1 else 0)  # per pass: its next window
    try:
        while at and at[-1] < len(spans):
            due = []
            for p in range(len(at)):
                if at[p] == len(spans):
                    continue
                if p > 0 and at[p - 1] < len(spans) and spans[at[p - 1]][1] > spans[at[p]][0]:
                    continue  # the pass before has not left this window yet
                due.append(p)
                if not pipeline:
                    break
            spans_due = [spans[at[p]] for p in due]
            shown = [ranking[start:end] for start, end in spans_due]
            answers = yield [ListQuestion(s) for s in shown]
            for (start, end), seen, perm in zip(spans_due, shown, answers, strict=True):
                if perm is not None and sorted(perm) == sorted(seen):
                    ranking[start:end] = perm
            for p in due:
                at[p] += 1
    except Cut:
        if not at or at[0] < len(spans):
            return finish([], n)  # no pass complete
    return finish(ranking[:k], n)


def _spans(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """The (start, end) positions of one pass's windows, back to front."""
    spans, end = [], n
    while n > 1:
        start = max(0, end - window)
        spans.append((start, end))
        if start == 0:
            break
        end -= step
    return spans


def windows(n: int, window: int = 20, step: int = 10) -> int:
    """How many windows (questions, rounds) one pass asks over ``n`` candidates."""
    return len(_spans(n, window, step))
