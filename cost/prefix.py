"""Cached-prefix tokens: the leading tokens of a prompt that a server's prefix cache already holds.

A served LLM (vLLM's automatic prefix caching, a hosted API's prompt cache) does not recompute the
leading tokens of a prompt it has just seen: it reads them back, and a hosted API bills them at
its cached-input price. A PRP prompt starts with its *head* (instructions and query), then its
*lead*, the first passage shown. Rules:

* The head is cached when a prompt with the same head was sent earlier in the same inference or
  in the :data:`WINDOW` - 1 inferences before it (a window a server's cache surely still holds);
  the lead too when, in that window, a prompt with the same head also led with it. So prompts of
  one query share their head, and pair prompts that show the same passage first share it too.
* Nothing past the lead is counted: a longer shared prefix (the same first two passages) takes
  the same question asked twice, which the scheduler never does, or a coincidence.
* Counts are over the caller's token estimates; callers scale them to a judge's reported tokens.
  Deterministic: the answer depends only on the prompts and their order.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

#: Inferences a prefix is remembered for: the one that sent it and the next.
WINDOW = 2


class PrefixCache:
    """The heads and leads sent in the last ``window`` inferences.

    Example:
        >>> cache = PrefixCache()
        >>> head = ("instructions", "query")
        >>> cache.inference([(head, 50, "passage a", 100), (head, 50, "passage a", 100),
        ...                  (head, 50, "passage b", 90)])
        200.0
    """

    __slots__ = ("_window", "_seen", "_count")

    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError(f"a prefix cache remembers at least 1 inference, got {window}")
        self._window, self._seen, self._count = window, {}, 0

    def inference(self, prompts: Iterable[tuple[Hashable, float, Hashable, float]]) -> float:
        """One inference's prompts, in the order sent, each (head, head tokens, lead, lead
        tokens): the inference's cached tokens. Its prefixes are remembered for the next
        inferences."""
        self._count += 1
        now, seen = self._count, self._seen
        oldest = max(1, now - self._window + 1)  # 0: never seen
        cached = 0.0
        for head, head_tokens, lead, lead_tokens in prompts:
            hit = seen.get(head, 0) >= oldest
            seen[head] = now
            prefix = (head, lead)
            if hit:
                cached += head_tokens
                if seen.get(prefix, 0) >= oldest:
                    cached += lead_tokens
            seen[prefix] = now
        return cached
