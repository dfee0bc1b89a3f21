"""What a comparison costs at least in CPython, next to what the engine costs: is 3 µs in reach?

    python bench/engine_floor.py --out bench/results/engine-floor.txt

On ``bench/overhead.py``'s queries (64 of 100 candidates, the same random scores), CPU time per
comparison (``time.process_time``, best of ``--repeat``) of three things, in one run:

* **sorted(cmp_to_key)**: Python's own sort on the same comparator (the floor of a comparison);
* **sorter alone**: each pairwise ranker of :mod:`sorters` driven with no engine at all, its
  rounds answered from the score table in the same process (the ranker's own share of any engine);
* **least engine**: the least work a cached, checked comparison asked in both orders takes in
  Python, written as plainly as possible with no engine around it: per prompt a 4-tuple key
  (backend, query, first, second digest), a look-up in the step's pending prompts and one in an
  ``OrderedDict`` judgment cache, a prompt tuple; per query all answers checked (type and
  parsed) and stored in the cache at once; per comparison its two answers read back and
  aggregated into one number. No sorter (every query's comparisons are those quicksort asked),
  no batching, no ledger, no token or prefix accounting, no asyncio, no budget: what is left of
  an engine when everything a user gets from it is taken out but the cache.

Compare each with ``bench/overhead.py``'s "in flight" column (the same queries, the whole engine).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import OrderedDict
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parents[1]), str(Path(__file__).parent)]  # this checkout

from overhead import requests  # noqa: E402

from prp.cache_keys import digest  # noqa: E402
from sorters import make_sorter  # noqa: E402

PAIRWISE = ("quicksort", "mergesort", "heapsort", "bubblesort", "allpair", "tournament")
TOP10 = ("bubblesort",)


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def drive(name: str, scores: list[list[float]]) -> list[list[tuple[int, int]]]:
    """Run ``name`` on every query, answering from ``scores``; the comparisons each asked."""
    asked = []
    for s in scores:
        n = len(s)
        sorter = make_sorter(name, n, 10 if name in TOP10 else n)
        pairs: list[tuple[int, int]] = []
        try:
            round_ = next(sorter)
            while True:
                pairs += round_
                round_ = sorter.send([1 if s[i] > s[j] else -1 if s[i] < s[j] else 0 for i, j in round_])
        except StopIteration:
            pass
        asked.append(pairs)
    return asked


def least_engine(queries: list[dict], asked: list[list[tuple[int, int]]]) -> None:
    """See the module docstring: keys, look-ups, prompts, checks, cache, outcomes; nothing else."""
    cache: OrderedDict = OrderedDict()
    name = "bench/floor"
    answer = ("A", 1.0, True)  # (label, margin, parsed)
    for query, pairs in zip(queries, asked, strict=True):
        qkey, keys = digest(query["qid"]), [digest(d) for d in query["doc_ids"]]
        ids, texts, qid, text = query["doc_ids"], query["docs"], query["qid"], query["query"]
        pending: dict = {}
        for a, b in pairs:
            ka, kb = keys[a], keys[b]
            for key, first, second in (((name, qkey, ka, kb), a, b), ((name, qkey, kb, ka), b, a)):
                if key in pending or cache.get(key) is not None:
                    continue
                pending[key] = (qid, text, ids[first], texts[first], ids[second], texts[second])
        answers = [answer] * len(pending)  # the judge, instant
        for judged in answers:
            if type(judged) is not tuple or not judged[2]:
                raise ValueError("unusable answer")
        cache.update(zip(pending, answers, strict=True))
        outcomes = []
        for a, b in pairs:
            ka, kb = keys[a], keys[b]
            outcomes.append((cache[(name, qkey, ka, kb)][1] - cache[(name, qkey, kb, ka)][1]) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    reqs, table = requests(args.queries, args.depth)
    scores = [[table[d] for d in r["doc_ids"]] for r in reqs]
    calls = [0]

    def compare(a: str, b: str) -> int:
        calls[0] += 1
        return (table[b] > table[a]) - (table[b] < table[a])

    for r in reqs:
        sorted(r["doc_ids"], key=functools.cmp_to_key(compare))
    n_sorted, calls[0] = calls[0], 0
    us = 1e6 * best_of(lambda: [sorted(r["doc_ids"], key=functools.cmp_to_key(compare)) for r in reqs],
                       args.repeat) / (calls[0] / args.repeat)
    lines = [f"# python bench/engine_floor.py --queries {args.queries} --depth {args.depth} "
             f"--repeat {args.repeat}",
             f"{'what':>36} {'comparisons/query':>17} {'us/comparison':>13}",
             f"{'sorted(cmp_to_key)':>36} {n_sorted / len(reqs):>17.1f} {us:>13.2f}"]
    for name in PAIRWISE:
        asked = drive(name, scores)
        n = sum(map(len, asked))
        lines.append(f"{'sorter alone: ' + name:>36} {n / len(reqs):>17.1f} "
                     f"{1e6 * best_of(lambda name=name: drive(name, scores), args.repeat) / n:>13.2f}")
    asked = drive("quicksort", scores)
    n = sum(map(len, asked))
    lines.append(f"{'least engine (quicksort pairs)':>36} {n / len(reqs):>17.1f} "
                 f"{1e6 * best_of(lambda: least_engine(reqs, asked), args.repeat) / n:>13.2f}")
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
