#!/usr/bin/env bash
# Transitive inference (issue 7): every comparison sorter with and without --infer, under the
# perfect judge and the noisy judge fitted to Qwen2.5-Coder-1.5B, DL19 depth 100, k=10, B=1.
# Usage: bench/inference_dl19.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/trec-dl-2019}
SORTERS="heapsort,heapsort:sift=sequential,bubblesort,quicksort,quicksort:pivot=median-of-three,mergesort,tournament"
for ORACLE in perfect noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0; do
  for INFER in "" "--infer"; do
    echo "# oracle=$ORACLE infer=${INFER:-off}"
    prp simulate --data "$DATA" --sorters "$SORTERS" --batch-sizes 1 --cache on --in-flight 1 \
      --aggregate margin --judge "$ORACLE" $INFER
  done
done
