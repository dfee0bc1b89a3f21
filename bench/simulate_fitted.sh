#!/usr/bin/env bash
# DL19 (43 queries, depth 100, k=10) with the noisy judge fitted to Qwen2.5-Coder-1.5B:
#   prp calibrate-oracle --data DATA --judge llama.cpp --model qwen2.5-coder-1.5b --pairs 48 --seed 0
# gave --judge noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0 (bench/results/qwen1.5b-oracle-fit.txt).
set -euo pipefail
data=${1:-../shared/data/trec-dl-2019}
out=$(dirname "$0")/results
oracle=noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0
for agg in margin consistent; do
  prp simulate --data "$data" --k 10 --depth 100 --sorters heapsort,bubblesort,quicksort,mergesort,allpair \
    --batch-sizes 2,8,64 --orders both --judge "$oracle" --aggregate "$agg" --in-flight 1 --cache on \
    > "$out/fitted-qwen1.5b-$agg.txt"
done
