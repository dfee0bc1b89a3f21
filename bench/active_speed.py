"""The active ranker's time per comparison, against the full re-solve it replaced, in one run.

    python bench/active_speed.py --out bench/results/active-speed.json

Drives ``sorters.active`` and the previous implementation (``tests/active_reference.py``) on the
same answers (n candidates with random scores, answers their difference plus Gaussian noise),
alternating the two, and reports CPU microseconds per comparison (``time.process_time``: robust
to other processes sharing the cores; the sorter alone, no engine) and the ratio, after checking
both asked the same rounds and returned the same ranking. numpy is imported before timing.

Then the same through the engine, as ``bench/overhead.py``'s ``active`` rows measure it: a
``Reranker`` with an instant judge (``bench/overhead.py``'s, on ``bench/test_overhead.py``'s 100
candidates, k=10, no cache) at B=8 and B=64, the reference swapped in for ``active`` in the
registry (as ``tests/test_active_same.py`` does), the best of ``--repeats`` runs each, alternating, after
checking both return the same ranking and counts.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench"), str(ROOT)]  # this checkout's sorters
import active_reference  # noqa: E402
import numpy  # noqa: E402, F401  # imported before timing

import sorters  # noqa: E402
from sorters import active  # noqa: E402

CASES = [  # n, k, budget, noise
    (100, 10, None, 0.0), (100, 10, None, 1.0), (100, 10, 100, 1.0), (100, 10, 300, 1.0), (50, 5, None, 0.5),
]
ENGINE_BATCHES = (8, 64)


def record(gen, answer) -> tuple[list[int], list[list[tuple[int, int]]]]:
    rounds = []
    try:
        asks = next(gen)
        while True:
            rounds.append(list(asks))
            asks = gen.send([answer(i, j) for i, j in asks])
    except StopIteration as stop:
        return stop.value, rounds


def timed(make, n: int, k: int, budget: int | None, noise: float, seed: int) -> tuple[float, tuple]:
    scores = [random.Random(seed).random() * 5 for _ in range(n)]
    rng = random.Random(seed + 1)
    started = time.process_time()
    out = record(make(n, k, budget=budget), lambda i, j: scores[i] - scores[j] + rng.gauss(0, noise))
    return time.process_time() - started, out


def engine_run(batch_size: int) -> tuple[float, tuple]:
    """One ranking through the engine with the instant judge: (CPU seconds, what it returned)."""
    from test_overhead import DOCS, IDS, instant

    from prp import Reranker
    reranker = Reranker(instant(), sorter="active", k=10, batch_size=batch_size, cache=False)
    started = time.process_time()
    result = reranker.rank("q", DOCS, IDS)
    return time.process_time() - started, (result.doc_ids, result.cost.comparisons, result.cost.rounds)


def engine_rows(repeats: int) -> list[dict]:
    rows = []
    print(f"\nthrough the engine (instant judge, 100 candidates, k=10): best of {repeats}")
    print(f"{'B':>4} {'comparisons':>11} {'old us/cmp':>10} {'new us/cmp':>10} {'old/new':>7}")
    new_active = sorters.SORTERS["active"]
    for batch_size in ENGINE_BATCHES:
        old_s, new_s = [], []
        for _ in range(repeats):
            t_new, new = engine_run(batch_size)
            sorters.SORTERS["active"] = active_reference.active
            try:
                t_old, old = engine_run(batch_size)
            finally:
                sorters.SORTERS["active"] = new_active
            if new != old:
                raise SystemExit(f"engine B={batch_size}: rankings or counts differ")
            old_s.append(t_old)
            new_s.append(t_new)
        comparisons = new[1]
        row = {"batch_size": batch_size, "comparisons": comparisons,
               "old_us_per_comparison": round(1e6 * min(old_s) / comparisons, 1),
               "new_us_per_comparison": round(1e6 * min(new_s) / comparisons, 1),
               "speedup": round(min(old_s) / min(new_s), 2)}
        rows.append(row)
        print(f"{batch_size:>4} {comparisons:>11} {row['old_us_per_comparison']:>10} "
              f"{row['new_us_per_comparison']:>10} {row['speedup']:>7}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="engine runs per side (the best counts)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = []
    print(f"{'n':>4} {'k':>3} {'budget':>6} {'noise':>5} {'comparisons':>11} {'old us/cmp':>10} "
          f"{'new us/cmp':>10} {'old/new':>7}")
    for n, k, budget, noise in CASES:
        old_s = new_s = 0.0
        comparisons = 0
        for seed in range(args.seeds):
            t_new, new = timed(active, n, k, budget, noise, seed)
            t_old, old = timed(active_reference.active, n, k, budget, noise, seed)
            if new != old:
                raise SystemExit(f"n={n} k={k} budget={budget} noise={noise} seed={seed}: decisions differ")
            old_s, new_s, comparisons = old_s + t_old, new_s + t_new, comparisons + sum(map(len, new[1]))
        row = {"n": n, "k": k, "budget": budget, "noise": noise, "comparisons": comparisons,
               "old_us_per_comparison": round(1e6 * old_s / comparisons, 1),
               "new_us_per_comparison": round(1e6 * new_s / comparisons, 1),
               "speedup": round(old_s / new_s, 2)}
        rows.append(row)
        print(f"{n:>4} {k:>3} {budget or '-':>6} {noise:>5} {comparisons:>11} "
              f"{row['old_us_per_comparison']:>10} {row['new_us_per_comparison']:>10} {row['speedup']:>7}",
              flush=True)
    engine = engine_rows(args.repeats) if args.repeats > 0 else []
    if args.out:
        command = " ".join(["python", "bench/active_speed.py", *sys.argv[1:]])
        report = {"command": command, "seeds": args.seeds, "rows": rows, "engine_repeats": args.repeats,
                  "engine_rows": engine}
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
