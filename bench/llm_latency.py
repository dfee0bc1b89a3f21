"""Wall time per inference against batch size for an LLM judge, as calibration records.

    python bench/llm_latency.py --model qwen2.5-coder-0.5b --batch-sizes 1,2,4,8,16 \
        --out bench/results/llama-qwen0.5b-latency.json
    python bench/llm_latency.py --model qwen2.5-coder-0.5b --holdout-run \
        --out bench/results/llama-qwen0.5b-rerank-run.json

The first form judges batches of DL19 passage pairs (first query, its top 20; pairs drawn like
a quicksort partition: every passage against one pivot, in both orders) with the llama.cpp
backend and writes one record per inference. ``--holdout-run`` instead records every inference
of a real rerank (quicksort, k=10, depth 10, B=4) - a run to check a fitted model on:
``prp calibrate FIT.json --holdout RUN.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prp import Reranker  # noqa: E402
from prp.cache import prompt_key  # noqa: E402
from prp.data import load_retrieve_results  # noqa: E402
from prp.engine import SyncEngine  # noqa: E402
from prp.judging import judge_batch  # noqa: E402
from prp.oracles.llamacpp import LlamaCppBackend  # noqa: E402
from prp.types import Prompt  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "trec-dl-2019" / "bm25-top100.json"


def pivot_pairs(request, count: int, rng: random.Random) -> list[Prompt]:
    ids, texts = list(request.doc_ids), list(request.docs)
    pivot = rng.randrange(len(ids))
    others = [i for i in range(len(ids)) if i != pivot]
    prompts = []
    while len(prompts) < count:
        i = rng.choice(others)
        prompts.append(Prompt(request.qid, request.query, ids[i], texts[i], ids[pivot], texts[pivot]))
        prompts.append(Prompt(request.qid, request.query, ids[pivot], texts[pivot], ids[i], texts[i]))
    return prompts[:count]


def timed(backend, prompts: list[Prompt]) -> dict:
    """One inference of ``prompts`` (no cache), as a latency record."""
    keys = [prompt_key(backend.name, backend.keys_by, p) for p in prompts]
    return asyncio.run(judge_batch(backend, prompts, keys, None)).record()


def sweep(backend, request, batch_sizes: list[int], repeats: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    timed(backend, pivot_pairs(request, 1, rng))  # warm-up, not recorded
    records = []
    for size in batch_sizes:
        for _ in range(repeats):
            records.append({**timed(backend, pivot_pairs(request, size, rng)), "batch_size": size})
    return records


def rerank_run(backend, request) -> list[dict]:
    records: list[dict] = []
    reranker = Reranker(backend, sorter="quicksort", k=10, batch_size=4, cache=False)
    with SyncEngine(reranker, on_inference=lambda inference: records.append(inference.record())) as engine:
        engine.rank(request.query, request.docs[:10], request.doc_ids[:10], qid=request.qid)
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--batch-sizes", default="1,2,4,8,16")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--query", type=int, default=0, help="index of the DL19 query")
    ap.add_argument("--holdout-run", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    request = load_retrieve_results(DATA, depth=20)[args.query]
    started = time.perf_counter()
    backend = LlamaCppBackend(args.model)
    print(f"loaded {backend.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.holdout_run:
        records = rerank_run(backend, request)
    else:
        records = sweep(backend, request, [int(b) for b in args.batch_sizes.split(",")], args.repeats,
                        args.seed)
    for r in records:
        r["backend"] = backend.name
    Path(args.out).write_text(json.dumps(records, indent=1))
    sizes = sorted({r["prompts"] for r in records})
    print(f"{'prompts':>7} {'calls':>5} {'s/inference':>11} {'s/prompt':>8} {'tokens/prompt':>13}")
    for size in sizes:
        rows = [r for r in records if r["prompts"] == size]
        mean = statistics.mean(r["seconds"] for r in rows)
        tokens = statistics.mean(r["prompt_tokens"] for r in rows) / size
        print(f"{size:>7} {len(rows):>5} {mean:>11.2f} {mean / size:>8.2f} {tokens:>13.0f}")


if __name__ == "__main__":
    main()
