#!/usr/bin/env bash
# Quality per prompt (issue 7): every ranker x orders at per-query prompt budgets, B=1 (prompts =
# inferences), one query at a time, margin aggregation.
#   1. the noisy judge fitted to Qwen2.5-Coder-1.5B on a TREC DL set (default DL19), depth 100;
#   2. the real-judge replay set (Qwen2.5-Coder-1.5B, every pair both orders, depth 20).
# Usage: bench/frontier_dl19.sh [DATA_DIR]   (any directory in the trec-dl-2019 layout)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/trec-dl-2019}
SORTERS="active,tournament,quicksort,quicksort:pivot=median-of-three,heapsort:sift=sequential,bubblesort,mergesort,allpair"
prp bench --data "$DATA" --depth 100 --k 10 --batch-sizes 1 --in-flight 1 --aggregate margin \
  --sorters "$SORTERS" --orders both,random --debias auto --budgets 100,200,300,600 \
  --judge noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0 \
  --out bench/results/frontier-fitted-qwen1.5b
REPLAY=bench/results/replay-qwen1.5b-dl19-d20.json.gz
QUERIES=$(python -c "import gzip,json,sys; print(len(json.load(gzip.open(sys.argv[1]))['queries']))" "$REPLAY")
prp bench --data "$DATA" --depth 20 --queries "$QUERIES" --k 10 --batch-sizes 1 --in-flight 1 \
  --aggregate margin --sorters "$SORTERS" --orders both,random --debias auto --budgets 50,100,200,380 \
  --judge "replay:path=$REPLAY" --out bench/results/frontier-replay-qwen1.5b
