#!/usr/bin/env bash
# Debiased single-order prompts (issue 7): every ranker with no per-query budget (active: 600
# prompts), under the noisy judge fitted to Qwen2.5-Coder-1.5B, DL19 depth 100, k=10, B=1,
# margin aggregation: orders both; random without and with the online bias estimate; one with
# the bias fitted by prp calibrate-oracle (1.523).
# Usage: bench/debias_dl19.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/trec-dl-2019}
ORACLE=noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0
SORTERS="tournament,quicksort,quicksort:pivot=median-of-three,heapsort:sift=sequential,bubblesort,mergesort,allpair"
for SETTING in "both off" "random off" "random auto" "one off" "one 1.523"; do
  set -- $SETTING
  echo "# orders=$1 debias=$2"
  prp simulate --data "$DATA" --sorters "$SORTERS" --batch-sizes 1 --cache on --in-flight 1 \
    --aggregate margin --judge "$ORACLE" --orders "$1" --debias "$2"
  prp simulate --data "$DATA" --sorters active --budgets 600 --batch-sizes 1 --cache on --in-flight 1 \
    --aggregate margin --judge "$ORACLE" --orders "$1" --debias "$2"
done
