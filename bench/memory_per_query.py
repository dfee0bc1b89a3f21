"""Where the memory of a query in flight goes: Python allocations by source line, per query.

    python bench/memory_per_query.py --queries 500 --out bench/results/memory-per-query.txt

Ranks ``--queries`` synthetic queries of 100 candidates (``bench/overhead.py``'s instant judge,
quicksort, top 10, B=8, all in flight) under :mod:`tracemalloc` and reports, per query:
the peak of traced memory above what the loaded input took, what is still allocated after the
run (results and the judgment cache), and at the first inference of the first step (when every
query's first round is planned and nothing is answered yet, the step's high-water mark) the
source lines holding the most memory. tracemalloc counts Python allocations only; RSS adds the
allocator's slack (see ``bench/memory.py`` for peak RSS).
"""

from __future__ import annotations

import argparse
import linecache
import sys
import tracemalloc
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]  # this checkout's prp
import overhead  # noqa: E402

import prp.scheduler  # noqa: E402
from prp import Reranker  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--top", type=int, default=15, help="source lines to list (default 15)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    reqs, scores = overhead.requests(args.queries, 100)
    tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0]
    snapshots = []
    judge_batch = prp.scheduler.judge_batch

    async def first_inference_snapshot(*a, **kw):  # the step's high-water mark: all planned, none answered
        if not snapshots:
            snapshots.append(tracemalloc.take_snapshot())
        return await judge_batch(*a, **kw)

    prp.scheduler.judge_batch = first_inference_snapshot
    Reranker(overhead.InstantJudge(scores), sorter="quicksort", k=10, batch_size=8,
             in_flight=len(reqs)).rank_many(reqs)
    now, peak = tracemalloc.get_traced_memory()
    q = args.queries
    lines = [f"# python bench/memory_per_query.py --queries {q}",
             f"peak above the input: {(peak - base) / q / 1024:.1f} KB per query in flight; "
             f"held after the run (results, judgment cache): {(now - base) / q / 1024:.1f} KB per query",
             "at the first inference of the first step, by source line (KB per query):"]
    for stat in snapshots[0].statistics("lineno")[: args.top]:
        frame = stat.traceback[0]
        source = Path(frame.filename)
        root = Path(__file__).parents[1]
        where = source.relative_to(root) if source.is_relative_to(root) else source
        code = linecache.getline(frame.filename, frame.lineno).strip()[:70]
        lines.append(f"{stat.size / q / 1024:8.2f}  {where}:{frame.lineno}  {code}")
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
