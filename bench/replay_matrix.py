"""Build a real-judge replay set: every pair, both orders, for DL19 queries at a fixed depth.

    python bench/replay_matrix.py --model qwen2.5-coder-1.5b --data ../shared/data/trec-dl-2019 \
        --depth 20 --queries 8 --out bench/results/replay-qwen1.5b-dl19-d20.json.gz

For each of the first ``--queries`` queries, the packaged judge judges all ``depth * (depth - 1)``
ordered pairs of the BM25 top-``depth`` (passage i shown as A, j as B), in batches of
``--batch-size`` prompts ordered so consecutive prompts share their prefix. After each query
the whole set is rewritten (atomically), so the run can be stopped at any time and resumed:
queries already in ``--out`` are skipped. ``prp.oracles.replay.ReplayOracle`` judges from the
file. Margins are stored rounded to 1e-3; an unparsed answer is stored as null.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prp.data import load_dataset  # noqa: E402
from prp.judging import judge_all  # noqa: E402
from prp.oracles.replay import read_replay, write_replay  # noqa: E402
from prp.types import Prompt  # noqa: E402


def judge_query(backend, req, batch_size: int) -> list[list[float | None]]:
    n = len(req.docs)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    prompts = [Prompt(req.qid, req.query, req.doc_ids[i], req.docs[i], req.doc_ids[j], req.docs[j])
               for i, j in pairs]
    margins: list[list[float | None]] = [[None] * n for _ in range(n)]
    judgments = asyncio.run(judge_all(backend, prompts, batch_size, None))  # checked answers
    for (i, j), judgment in zip(pairs, judgments, strict=True):
        if judgment.parsed and judgment.margin is not None:
            margins[i][j] = round(float(judgment.margin), 3)
    return margins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--data", required=True, help="a directory in the trec-dl-2019 layout")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--queries", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from prp.oracles.llamacpp import LlamaCppBackend

    requests, _ = load_dataset(args.data, depth=args.depth)
    requests = requests[: args.queries]
    out = Path(args.out)
    backend = LlamaCppBackend(args.model)
    replay = read_replay(out) if out.exists() else {
        "model": backend.name, "depth": args.depth, "queries": []}
    done = {q["qid"] for q in replay["queries"]}
    for req in requests:
        if req.qid in done:
            continue
        started = time.perf_counter()
        margins = judge_query(backend, req, args.batch_size)
        replay["queries"].append({"qid": req.qid, "query": req.query, "doc_ids": list(req.doc_ids),
                                  "margins": margins})
        write_replay(out, replay)
        print(f"{req.qid}: {len(req.docs) * (len(req.docs) - 1)} prompts in "
              f"{time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
