"""Print the scheduler's overhead per comparison as a table (same run, same machine).

    python bench/overhead.py

Times the engine with an instant judge and ``sorted(key=cmp_to_key(...))`` on the same
comparator, in the same process, and reports the engine's time per comparison minus sorted()'s
(CPU time of this process, best of several repeats).
Every ranker: full sorts (k=100) but bubblesort and active (k=10; active until its top-k is
settled, no budget).
"""

from __future__ import annotations

import functools
import sys
import time
import timeit
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]  # this checkout's prp
from test_overhead import DOCS, IDS, InstantOracle, N, compare  # noqa: E402

from prp import Reranker  # noqa: E402


def per_call(fn, repeat=7) -> float:
    """CPU seconds per call (``time.process_time``: other processes on the cores count less), the
    best of ``repeat``."""
    number = max(1, int(0.2 / max(timeit.timeit(fn, number=1, timer=time.process_time), 1e-6)))
    return min(timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)) / number


def main() -> None:
    sorted_calls = []
    sorted(IDS, key=functools.cmp_to_key(lambda a, b: sorted_calls.append(1) or compare(a, b)))
    t_sorted = per_call(lambda: sorted(IDS, key=functools.cmp_to_key(compare)))
    us_sorted = 1e6 * t_sorted / len(sorted_calls)
    print(f"sorted(cmp_to_key): {len(sorted_calls)} comparisons, {us_sorted:.2f} us per comparison")
    print(f"{'sorter':>10} {'B':>3} {'cache':>5} {'comparisons':>11} {'us/cmp':>7} {'overhead us/cmp':>15}")
    for sorter in ("quicksort", "mergesort", "heapsort", "bubblesort", "allpair", "tournament", "active"):
        for batch_size in (1, 8, 64):
            for cache in (False, True):
                def run(sorter=sorter, batch_size=batch_size, cache=cache):
                    k = 10 if sorter in ("bubblesort", "active") else N
                    return Reranker(InstantOracle(), sorter=sorter, k=k, batch_size=batch_size,
                                    cache=cache).rank("q", DOCS, IDS)
                comparisons = run().cost.comparisons
                us = 1e6 * per_call(run, repeat=3) / comparisons
                print(f"{sorter:>10} {batch_size:>3} {'on' if cache else 'off':>5} {comparisons:>11} "
                      f"{us:>7.2f} {us - us_sorted:>15.2f}")


if __name__ == "__main__":
    main()
