"""The active ranker's time per comparison, against the full re-solve it replaced, in one run.

    python bench/active_speed.py --out bench/results/active-speed.json

Drives ``sorters.active`` and the previous implementation (``tests/active_reference.py``) on the
same answers (n candidates with random scores, answers their difference plus Gaussian noise),
alternating the two, and reports CPU microseconds per comparison (``time.process_time``: robust
to other processes sharing the cores; the sorter alone, no engine) and the ratio, after checking
both asked the same rounds and returned the same ranking. numpy is imported before timing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]  # this checkout's sorters
import active_reference  # noqa: E402
import numpy  # noqa: E402, F401  # imported before timing

from sorters import active  # noqa: E402

CASES = [  # n, k, budget, noise
    (100, 10, None, 0.0), (100, 10, None, 1.0), (100, 10, 100, 1.0), (100, 10, 300, 1.0), (50, 5, None, 0.5),
]


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
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
    if args.out:
        command = " ".join(["python", "bench/active_speed.py", *sys.argv[1:]])
        report = {"command": command, "seeds": args.seeds, "rows": rows}
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
