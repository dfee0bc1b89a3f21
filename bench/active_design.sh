#!/usr/bin/env bash
# Design choices of the active ranker (issue 7), measured: the prior from the first-stage
# order (prior=0 removes it), round size (adaptivity against batching), the spread of the prior
# and the orders, under the noisy judge fitted to Qwen2.5-Coder-1.5B, DL19 depth 100, k=10, B=1.
# Usage: bench/active_design.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/trec-dl-2019}
ORACLE=noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0
for ORDERS in both random; do
  echo "# orders=$ORDERS debias=auto"
  prp simulate --data "$DATA" --batch-sizes 1 --cache on --in-flight 1 --aggregate margin \
    --judge "$ORACLE" --orders $ORDERS --debias auto --budgets 300,600 \
    --sorters "active,active:prior=0,active:prior=0.6,active:spread=0.5,active:spread=2,active:round_size=50"
done
