#!/usr/bin/env bash
# The README's PyTerrier table: pt.Experiment on DL19 (BM25 >> prp, simulated judges), then
# `prp evaluate` on the very runs the experiment scored. Output: bench/results/pyterrier-dl19.txt
# Usage: bash bench/pyterrier_dl19.sh [path/to/trec-dl-2019]   (needs prp[pyterrier,eval])
set -euo pipefail
data=${1:-../shared/data/trec-dl-2019}
out=$(dirname "$0")/results/pyterrier-dl19.txt
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
{
  python "$(dirname "$0")/pyterrier_dl19.py" --data "$data" --depth 100 --save-dir "$runs"
  for res in "$runs"/*.res.gz; do
    name=$(basename "$res" .res.gz)
    gunzip -c "$res" > "$runs/$name.run"
    echo
    echo "\$ prp evaluate $name.run --qrels $data/qrels.txt"
    python -m prp.cli evaluate "$runs/$name.run" --qrels "$data/qrels.txt"
  done
} > "$out"
cat "$out"
