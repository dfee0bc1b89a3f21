#!/usr/bin/env bash
# Reproduces the README's simulator tables (DL19, k=10, depth 100) into bench/results/.
# Usage: bash bench/simulate_dl19.sh [path/to/trec-dl-2019]
set -euo pipefail
data=${1:-../shared/data/trec-dl-2019}
out=$(dirname "$0")/results
mkdir -p "$out"
all=heapsort,heapsort:sift=sequential,bubblesort,bubblesort:skip_tail=false,quicksort,quicksort:pivot=median-of-three,mergesort,allpair
prp simulate --data "$data" --k 10 --depth 100 --sorters "$all" --batch-sizes 1,2,4,8,16,64 \
  --orders both --judge perfect --in-flight 1 --cache on > "$out/perfect-in-flight-1.txt"
prp simulate --data "$data" --k 10 --depth 100 --sorters "$all" --batch-sizes 8,64 \
  --orders both --judge perfect --in-flight all --cache on > "$out/perfect-in-flight-all.txt"
for agg in margin consistent; do
  prp simulate --data "$data" --k 10 --depth 100 --sorters heapsort,bubblesort,quicksort,mergesort,allpair \
    --batch-sizes 8 --orders both --judge noisy:bias=1.5,noise=1.0,seed=0 --aggregate "$agg" \
    --in-flight all --cache on > "$out/noisy-$agg.txt"
done
prp simulate --data "$data" --k 10 --depth 100 --sorters heapsort,bubblesort,quicksort,mergesort,allpair \
  --batch-sizes 1,2,4,8,16,64 --orders both --judge perfect --in-flight 1 --format jsonl \
  > "$out/perfect-in-flight-1.jsonl"
