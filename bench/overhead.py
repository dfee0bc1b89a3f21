"""Print the engine's own time per question, for every ranker, next to ``sorted(cmp_to_key)``.

    python bench/overhead.py --out bench/results/overhead.txt

An instant judge answers from a score table (pairs, sets and lists), timing itself; what is
reported is the engine's CPU time (``time.process_time``, best of ``--repeat``) **minus the
judge's own time**, per question (a pair, a set or a list; for pairwise rankers a question is a
comparison). Two columns, measured in the same run:

* **in flight**: ``--queries`` queries of ``--depth`` candidates ranked at once
  (``Reranker.rank_many``, all in flight): the engine's cost per question when steps carry many
  queries, as planners, simulations and offline jobs run it;
* **one query**: a single query ranked alone, where each round is its own step: the engine's
  cost per question plus its fixed cost per step (heapsort and bubblesort ask one or two
  comparisons a round, so this column is mostly per-step cost).

``sorted(key=cmp_to_key(...))`` on the same comparator and candidates, in the same run, is the
floor a Python comparison sort costs. Defaults (cache on) are the library's; bubblesort and
active rank the top 10 (active until its top-10 is settled), the rest sort all candidates.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parents[1])]  # this checkout's prp

from prp import BatchResult, Choice, Judgment, Reranker  # noqa: E402

RANKERS = ("quicksort", "mergesort", "heapsort", "bubblesort", "allpair", "tournament", "active",
           "setwise", "listwise", "tournament:k=4")
TOP10 = ("bubblesort", "active")
TOKENS = 100
A, B, TIE = Judgment("A", 1.0), Judgment("B", -1.0), Judgment(None, 0.0)


class InstantJudge:
    """Answers pairs, sets and lists from a score table by doc id, and reports tokens as every
    simulated and real judge does (:data:`TOKENS` a passage shown, so the engine's token and
    cached-prefix accounting runs); ``seconds``: its own time."""

    name, keys_by, shapes = "bench/instant", "id", ("pair", "set", "list")

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores, self.seconds = scores, 0.0

    async def judge(self, prompts):
        started = time.process_time()
        s, out = self.scores, []
        for p in prompts:
            if hasattr(p, "ids"):  # a set or a list: slots, best first
                order = sorted(range(len(p.ids)), key=lambda x, ids=p.ids: -s[ids[x]])
                out.append(Choice(tuple(order[:1] if p.shape == "set" else order)))
            else:
                a, b = s[p.first_id], s[p.second_id]
                out.append(A if a > b else B if a < b else TIE)
        tokens = sum(TOKENS * len(p.ids) if hasattr(p, "ids") else 2 * TOKENS for p in prompts)
        self.seconds += time.process_time() - started
        return BatchResult(out, tokens, len(out))


def requests(queries: int, depth: int, seed: int = 0) -> tuple[list[dict], dict[str, float]]:
    rng, scores, out = random.Random(seed), {}, []
    for q in range(queries):
        ids = [f"q{q}d{i}" for i in range(depth)]
        scores.update((d, rng.random()) for d in ids)
        out.append({"qid": f"q{q}", "query": f"query {q}", "doc_ids": ids,
                    "docs": [f"passage {d} " * 20 for d in ids]})
    return out, scores


def best_of(fn, repeat: int) -> tuple[float, object]:
    """(min CPU seconds of ``fn`` over ``repeat`` calls, its last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()
        out = fn()
        best = min(best, time.process_time() - started)
    return best, out


def engine_us(ranker: str, batch_size: int, reqs: list[dict], scores: dict, repeat: int) -> tuple[float, int]:
    """(µs per question excluding the judge, questions per run) for ``reqs`` all in flight."""
    k = 10 if ranker.split(":")[0] in TOP10 else len(reqs[0]["doc_ids"])
    best, questions = float("inf"), 0
    for _ in range(repeat):
        judge = InstantJudge(scores)
        reranker = Reranker(judge, sorter=ranker, k=k, batch_size=batch_size)
        started = time.process_time()
        results = reranker.rank_many(reqs)
        spent = time.process_time() - started - judge.seconds
        best = min(best, spent)
        questions = sum(sum(r.cost.questions_by_shape.values()) for r in results)
    return 1e6 * best / questions, questions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=64, help="queries in flight (default 64)")
    ap.add_argument("--depth", type=int, default=100, help="candidates per query (default 100)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell, the best kept (default 3)")
    ap.add_argument("--rankers", default=",".join(RANKERS), help="comma-separated (default: all)")
    ap.add_argument("--batch-sizes", default="8,64", help="comma-separated (default 8,64)")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args()
    reqs, scores = requests(args.queries, args.depth)
    ids = reqs[0]["doc_ids"]
    calls = [0]

    def compare(a: str, b: str) -> int:
        return (scores[b] > scores[a]) - (scores[b] < scores[a])  # more relevant first

    def counted(a: str, b: str) -> int:
        calls[0] += 1
        return compare(a, b)

    for r in reqs:
        sorted(r["doc_ids"], key=functools.cmp_to_key(counted))
    seconds, _ = best_of(lambda: [sorted(r["doc_ids"], key=functools.cmp_to_key(compare)) for r in reqs],
                         args.repeat)
    us_sorted = 1e6 * seconds / calls[0]
    lines = [f"# python bench/overhead.py --queries {args.queries} --depth {args.depth} "
             f"--repeat {args.repeat}",
             f"sorted(cmp_to_key): {calls[0] / len(reqs):.0f} comparisons per query of {len(ids)}, "
             f"{us_sorted:.2f} us per comparison",
             f"{'ranker':>14} {'B':>3} {'questions/query':>15} {'in flight us/q':>14} {'one query us/q':>14}"]
    print("\n".join(lines), flush=True)
    for ranker in args.rankers.split(","):
        for batch_size in map(int, args.batch_sizes.split(",")):
            many, questions = engine_us(ranker, batch_size, reqs, scores, args.repeat)
            one, _ = engine_us(ranker, batch_size, reqs[:1], scores, args.repeat)
            line = (f"{ranker:>14} {batch_size:>3} {questions / len(reqs):>15.1f} {many:>14.2f} {one:>14.2f}")
            print(line, flush=True)
            lines.append(line)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
