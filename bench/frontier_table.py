"""Print a ``prp bench --budgets`` report as a markdown pivot: nDCG@10 (prompts used per query)
per sorter x orders, one column per budget.

    python bench/frontier_table.py bench/results/frontier-fitted-qwen1.5b/results.json
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    report = json.load(open(path, encoding="utf-8"))
    rows = report["rows"]
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    print(f"first stage: nDCG@10 {report['baseline']['ndcg@10']:.3f}\n")
    print("| sorter | orders | " + " | ".join(str(b) for b in budgets) + " |")
    print("|---|---|" + "---:|" * len(budgets))
    cells: dict[tuple[str, str], dict] = {}
    for r in rows:
        cells.setdefault((r["sorter"], r["orders"]), {})[r["budget"]] = r
    for (sorter, orders), by_budget in cells.items():
        line = [f"{by_budget[b]['ndcg@10']:.3f} ({by_budget[b]['prompts']:.0f})" if b in by_budget else ""
                for b in budgets]
        print(f"| {sorter} | {orders} | " + " | ".join(line) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
