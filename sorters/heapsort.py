"""PRP-Sorting: heapsort with a top-k early stop, the sequential baseline.

Invariant: ``heap[:size]`` is a binary max-heap under :func:`before` (every parent ranks
above its children), and the extracted candidates, in order, are the best ``len(top)``.

Rounds: build-heap sifts nodes ``n//2 - 1`` down to ``0`` one at a time, then each of the
``k`` extractions swaps the root with the last heap slot and sifts the new root down (no
sift after the k-th extraction). One sift-down level costs:

* ``sift="both"`` (default): one round ``[(parent, left), (parent, right)]``; if exactly one
  child beats the parent, swap with it; if both do, a second round ``[(left, right)]``
  picks the larger. If the parent ranks above both, the sift stops.
* ``sift="sequential"``: round ``[(left, right)]``, then round ``[(winner, parent)]``
  (a single ``[(left, parent)]`` round when there is no right child).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from ._base import Cut, Outcome, Round, SorterGen, before, check_args, finish

SIFTS = ("both", "sequential")

Step = Generator[Round, list[Outcome], int | None]
StepFn = Callable[[list[int], int, int, int | None], Step]


def heapsort(n: int, k: int, sift: str = "both") -> SorterGen:
    """Top-k by heap extraction; see the module docstring for the round structure."""
    k = check_args(n, k)
    if sift not in SIFTS:
        raise ValueError(f"unknown sift {sift!r}; known: {', '.join(SIFTS)}")
    if n <= 1:
        return finish(range(n), n)
    step = _step_both if sift == "both" else _step_sequential
    heap = list(range(n))
    top: list[int] = []
    try:
        for node in range(n // 2 - 1, -1, -1):
            yield from _sift_down(heap, node, n, step)
        for size in range(n - 1, n - 1 - k, -1):
            top.append(heap[0])
            heap[0], heap[size] = heap[size], heap[0]
            if len(top) < k:
                yield from _sift_down(heap, 0, size, step)
    except Cut:  # the extracted candidates are settled; the rest keep first-stage order
        pass
    return finish(top, n)


def _sift_down(heap: list[int], node: int, size: int, step: StepFn) -> Generator[Round, list[Outcome], None]:
    """Move ``heap[node]`` down until it ranks above its children in ``heap[:size]``."""
    while 2 * node + 1 < size:
        left = 2 * node + 1
        right = left + 1 if left + 1 < size else None
        child = yield from step(heap, node, left, right)
        if child is None:
            return
        heap[node], heap[child] = heap[child], heap[node]
        node = child


def _step_both(heap: list[int], node: int, left: int, right: int | None) -> Step:
    """Ask parent-vs-children at once; return the child slot to swap with, or None."""
    parent = heap[node]
    slots = [left] if right is None else [left, right]
    outcomes = yield [(parent, heap[c]) for c in slots]
    winners = [c for c, o in zip(slots, outcomes, strict=True) if not before(parent, heap[c], o)]
    if len(winners) < 2:
        return winners[0] if winners else None
    (outcome,) = yield [(heap[left], heap[right])]
    return left if before(heap[left], heap[right], outcome) else right


def _step_sequential(heap: list[int], node: int, left: int, right: int | None) -> Step:
    """Classic: larger child first, then that child against the parent."""
    child = left
    if right is not None:
        (outcome,) = yield [(heap[left], heap[right])]
        child = left if before(heap[left], heap[right], outcome) else right
    (outcome,) = yield [(heap[child], heap[node])]
    return child if before(heap[child], heap[node], outcome) else None
