"""Cached-prefix tokens: the leading tokens of a prompt that a server's prefix cache already holds.

A served LLM (vLLM's automatic prefix caching, a hosted API's prompt cache) does not recompute the
leading tokens of a prompt it has just seen: it reads them back, and a hosted API bills them at
its cached-input price. A PRP prompt is a chain of *segments*: its head (instructions and query),
then its passages in the order shown (the last one with the template's tail). Rules:

* A segment is cached when the same chain up to and including it (same head, same passages
  before it, same passage) was sent earlier in the same inference or in the one before it: a
  window of :data:`WINDOW` inferences, what a server's cache surely still holds. So prompts of
  the same query share their head, and pair prompts with the same first passage share it too.
* Counts are estimates over the segments' estimated tokens; callers scale them to a judge's
  reported tokens (:meth:`PrefixCache.inference` returns cached and total estimated tokens).
* Deterministic: the answer depends only on the prompts and their order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence

#: Inferences a prefix is remembered for: the one that sent it and the next.
WINDOW = 2

Segment = tuple[Hashable, float]  # (what the segment holds, its tokens)


class PrefixCache:
    """The prefixes sent in the last ``window`` inferences.

    Example:
        >>> cache = PrefixCache()
        >>> head, a, b = ("instructions", "query"), "passage a", "passage b"
        >>> cache.inference([[(head, 50), (a, 100), (b, 100)], [(head, 50), (a, 100), (b + "!", 100)]])
        (150.0, 500.0)
    """

    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError(f"a prefix cache remembers at least 1 inference, got {window}")
        self._recent: deque[set[int]] = deque(maxlen=window)

    def inference(self, prompts: Iterable[Sequence[Segment]]) -> tuple[float, float]:
        """One inference's prompts, in the order sent, each a chain of segments: (cached tokens,
        total tokens) of the inference. Its prefixes are remembered for the next ones."""
        sent: set[int] = set()
        self._recent.append(sent)
        recent = tuple(self._recent)
        cached = total = 0.0
        for segments in prompts:
            chain = 0
            hit = True
            for what, tokens in segments:
                chain = hash((chain, what))  # the prefix up to this segment
                total += tokens
                if hit and any(chain in seen for seen in recent):
                    cached += tokens
                else:
                    hit = False
                    sent.add(chain)
        return cached, total
