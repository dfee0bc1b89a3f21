"""prp inside a PyTerrier experiment on TREC DL 2019: BM25 >> PRPReranker, simulated judges.

    python bench/pyterrier_dl19.py --save-dir /tmp/pt-runs     (bash bench/pyterrier_dl19.sh)

Runs ``pt.Experiment`` over all 43 DL19 queries: the stored BM25 top-``--depth`` run (no index,
no Java) alone and reranked by prp (k=10, B=8, orders both, margin aggregation, all queries in
flight) under the perfect judge, the README's noisy judge and the judge fitted to Qwen2.5-Coder-
1.5B. Prints PyTerrier's table (nDCG@10, MRR@10 and Recall@10 at rel>=2, as ``prp evaluate``
measures them) with prp's cost per query beside it. ``--save-dir`` keeps each system's run
(PyTerrier's ``NAME.res.gz``) so ``prp evaluate`` can score the same runs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyterrier as pt  # noqa: E402

from prp import NoisyOracle, PerfectOracle  # noqa: E402
from prp.adapters.pyterrier import PRPReranker, qrels_frame, results_frame, topics_frame  # noqa: E402
from prp.data import load_dataset  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "trec-dl-2019"
# The noisy judge fitted to Qwen2.5-Coder-1.5B: bench/results/qwen1.5b-oracle-fit.txt
FITTED_QWEN_1_5B = {"scale": 0.238, "bias": 1.523, "noise": 0.771, "seed": 0}
JUDGES = {
    "perfect": lambda qrels: PerfectOracle(qrels),
    "noisy": lambda qrels: NoisyOracle(qrels, bias=1.5, noise=1.0, seed=0),
    "fitted-qwen1.5b": lambda qrels: NoisyOracle(qrels, **FITTED_QWEN_1_5B),
}
SYSTEMS = [("perfect", "quicksort"), ("noisy", "quicksort"), ("fitted-qwen1.5b", "quicksort"),
           ("fitted-qwen1.5b", "heapsort")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--save-dir", default=None, help="write each system's run here (NAME.res.gz)")
    args = parser.parse_args()

    requests, qrels = load_dataset(args.data, depth=args.depth)
    bm25 = pt.Transformer.from_df(results_frame(requests))
    rerankers = {f"bm25-prp-{sorter}-{judge}": PRPReranker(JUDGES[judge](qrels), sorter=sorter, k=10,
                                                           batch_size=args.batch_size, aggregate="margin")
                 for judge, sorter in SYSTEMS}
    names = ["bm25", *rerankers]
    if args.save_dir:
        Path(args.save_dir).mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message="There are shared pipeline components")  # BM25 is cheap
    table = pt.Experiment([bm25, *(bm25 >> r for r in rerankers.values())], topics_frame(requests),
                          qrels_frame(qrels), names=names,
                          eval_metrics=[pt.measures.nDCG @ 10, pt.measures.RR(rel=2) @ 10,
                                        pt.measures.R(rel=2) @ 10],
                          save_dir=args.save_dir, save_mode="overwrite")
    cost = {name: r.cost.per_query() for name, r in rerankers.items()}
    table["inferences/query"] = [cost[n]["inferences"] if n in cost else 0.0 for n in names]
    table["prompts/query"] = [cost[n]["prompts"] if n in cost else 0.0 for n in names]
    print(f"pt.Experiment, DL19 ({len(requests)} queries), BM25 top-{args.depth}, k=10, "
          f"B={args.batch_size}, orders both, margin, all queries in flight; pyterrier {pt.__version__}")
    columns = ["name", "nDCG@10", "RR(rel=2)@10", "R(rel=2)@10", "inferences/query", "prompts/query"]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
