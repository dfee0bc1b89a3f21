"""Bottom-up mergesort with top-k truncation, every runnable merge advancing per round.

Invariant: every complete run holds, in judged order, the best ``min(k, size)`` candidates
of its subtree, so the root run is the top-k.

Tree: the leaves are the single candidates in order; each level pairs adjacent runs (an odd
run out is carried up to the next level). A merge outputs at most ``k`` candidates.

Rounds: a merge is runnable once both its input runs are complete. Merges that need no
comparison (one side exhausted, or ``k`` candidates output) finish at once, which may make
their parents runnable. Then one round carries exactly one comparison ``(left head, right
head)`` from every runnable unfinished merge, whatever its level, lower levels first.
Runnable merges have disjoint subtrees, so a round never repeats a pair. The runnable set is
kept incrementally (a finished merge tells its parent), so a round costs O(its size).
"""

from __future__ import annotations

from ._base import Cut, SorterGen, before, check_args, finish


class _Run:
    """A run: a leaf (complete from the start) or the merge of two input runs."""

    __slots__ = ("index", "out", "left", "right", "parent", "waiting", "i", "j")

    def __init__(self, index: int, out: list[int] | None = None,
                 left: _Run | None = None, right: _Run | None = None) -> None:
        self.index = index  # position in bottom-up, level-by-level order
        self.out = out if out is not None else []
        self.left, self.right = left, right
        self.parent: _Run | None = None
        self.waiting = 0 if out is not None else 2  # inputs not yet complete
        self.i = self.j = 0  # next unread slot of left.out / right.out

    def heads(self) -> tuple[int, int]:
        return self.left.out[self.i], self.right.out[self.j]

    def take(self, left: bool) -> None:
        """Move the head of one input to the output."""
        if left:
            self.out.append(self.left.out[self.i])
            self.i += 1
        else:
            self.out.append(self.right.out[self.j])
            self.j += 1

    def settle(self, k: int) -> bool:
        """Advance while no comparison is needed; True when the merge is complete."""
        left_rest = len(self.left.out) - self.i
        right_rest = len(self.right.out) - self.j
        if len(self.out) < k and (left_rest == 0) != (right_rest == 0):
            rest = self.left.out[self.i:] if right_rest == 0 else self.right.out[self.j:]
            self.out.extend(rest[: k - len(self.out)])
            return True
        return len(self.out) >= k or (left_rest == 0 and right_rest == 0)


def mergesort(n: int, k: int) -> SorterGen:
    """Top-k by truncated bottom-up merging; see the module docstring for the rounds."""
    k = check_args(n, k)
    if n <= 1:
        return finish(range(n), n)
    leaves, root = _build_tree(n)
    active: list[_Run] = []
    for leaf in leaves:
        _complete(leaf, k, active)
    while active:
        active.sort(key=lambda run: run.index)
        round_ = [run.heads() for run in active]
        try:
            outcomes = yield round_
        except Cut:  # what the final merge has output so far; the rest in first-stage order
            return finish(root.out, n)
        still: list[_Run] = []
        for run, (left, right), outcome in zip(active, round_, outcomes, strict=True):
            run.take(left=before(left, right, outcome))
            if run.settle(k):
                _complete(run, k, still)
            else:
                still.append(run)
        active = still
    return finish(root.out, n)


def _complete(run: _Run, k: int, active: list[_Run]) -> None:
    """``run`` is complete: wake its parent, settling chains that need no comparison."""
    parent = run.parent
    while parent is not None:
        parent.waiting -= 1
        if parent.waiting:
            return
        if not parent.settle(k):
            active.append(parent)
            return
        parent = parent.parent


def _build_tree(n: int) -> tuple[list[_Run], _Run]:
    """The leaves, and the root of the merge tree (adjacent runs paired level by level)."""
    leaves = [_Run(i, out=[i]) for i in range(n)]
    level, index = leaves, n
    while len(level) > 1:
        paired = []
        for a, b in zip(level[::2], level[1::2], strict=False):
            run = _Run(index, left=a, right=b)
            a.parent = b.parent = run
            paired.append(run)
            index += 1
        level = paired + level[len(paired) * 2:]
    return leaves, level[0]
