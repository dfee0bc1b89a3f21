"""Setwise heapsort: a k-ary max-heap whose sift-down asks one set question (Zhuang et al. 2024).

Invariant: ``heap[:size]`` is a max-heap in which every node has up to ``size - 1`` children
(slots ``c*x+1 .. c*x+c`` for ``c = size - 1``) and ranks above each of them; the extracted
candidates, in order, are the best ``len(top)``.

Rounds: one sift-down step asks ``SetQuestion`` of the node and its children (``size``
candidates at most, shown in ascending index order, so a judge that breaks ties by the first
shown breaks them by first-stage order) and swaps the node with the winner unless the node
wins. Build-heap sifts the internal nodes level by level, deepest first; the nodes of one
level have disjoint subtrees, so their sift-downs run in lockstep, one round per step (the
sequential build of the paper asks the same questions, one per round). Then each of the ``k``
extractions moves the last slot to the root and sifts it down (none after the k-th).

An unusable answer (None) keeps the node where it is. A :class:`Cut` returns the extracted
candidates, then the rest in first-stage order. With a consistent judge the result is the
stable ``sorted()`` top-k. ``size`` must be >= 3 (a node and at least two children).
"""

from __future__ import annotations

from collections.abc import Generator

from ._base import Answer, Cut, Pick, Round, SetQuestion, SorterGen, check_args, finish

Sift = Generator[SetQuestion, Pick, None]


def setwise(n: int, k: int, size: int = 4) -> SorterGen:
    """Top-k by a ``size``-ary setwise heap; see the module docstring for the rounds."""
    k = check_args(n, k)
    if isinstance(size, bool) or not isinstance(size, int) or size < 3:
        raise ValueError(f"setwise: k (the set size) must be an integer >= 3, got {size!r}")
    if n <= 1:
        return finish(range(n), n)
    c = size - 1
    heap = list(range(n))
    top: list[int] = []
    try:
        last_internal = (n - 2) // c
        levels: list[list[int]] = []
        start = 0
        while start <= last_internal:
            width = c ** len(levels)
            levels.append(list(range(start, min(start + width, last_internal + 1))))
            start += width
        for level in reversed(levels):
            yield from _lockstep([_sift(heap, node, n, c) for node in level])
        for size_left in range(n - 1, n - 1 - k, -1):
            top.append(heap[0])
            heap[0] = heap[size_left]
            if len(top) < k and size_left > 1:
                yield from _lockstep([_sift(heap, 0, size_left, c)])
    except Cut:  # the extracted candidates are settled; the rest keep first-stage order
        pass
    return finish(top, n)


def _sift(heap: list[int], node: int, size: int, c: int) -> Sift:
    """Move ``heap[node]`` down until it wins the set of itself and its children."""
    while c * node + 1 < size:
        slots = [node, *range(c * node + 1, min(c * node + c + 1, size))]
        by_candidate = {heap[s]: s for s in slots}
        answer = yield SetQuestion(sorted(by_candidate))
        winner = answer.winner if answer.winner in by_candidate else heap[node]
        slot = by_candidate[winner]
        if slot == node:
            return
        heap[node], heap[slot] = heap[slot], heap[node]
        node = slot


def _lockstep(sifts: list[Sift]) -> Generator[Round, list[Answer], None]:
    """Run independent sift-downs together: one round holds each running sift's next question."""
    asking = []
    for sift in sifts:
        try:
            asking.append((sift, next(sift)))
        except StopIteration:
            pass
    while asking:
        answers = yield [q for _, q in asking]
        going = []
        for (sift, _), answer in zip(asking, answers, strict=True):
            try:
                going.append((sift, sift.send(answer if isinstance(answer, Pick) else Pick(answer))))
            except StopIteration:
                pass
        asking = going
