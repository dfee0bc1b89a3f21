"""``prp simulate`` through its real entry points, on the DL19 files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prp.cli import main

KEYS = {"sorter", "batch_size", "cache", "orders", "judge", "queries", "in_flight", "comparisons",
        "unique_comparisons", "cache_hits", "prompts", "inferences", "rounds", "predicted_seconds",
        "ndcg@10"}


def simulate(capsys, *args):
    try:
        code = main(["simulate", *args])
    except SystemExit as exit_:  # argparse's own errors (exit 2)
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_jsonl_rows(capsys, dl19_dir):
    code, out, _ = simulate(capsys, "--data", str(dl19_dir), "--queries", "3", "--depth", "30",
                            "--sorters", "heapsort,quicksort:pivot=random,seed=1",
                            "--batch-sizes", "2,8", "--format", "jsonl")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 * 2 * 2  # sorters x batch sizes x cache off/on
    assert all(KEYS <= set(row) for row in rows)
    assert {row["sorter"] for row in rows} == {"heapsort", "quicksort:pivot=random,seed=1"}
    for off, on in zip(rows[::2], rows[1::2], strict=True):
        assert (off["cache"], on["cache"]) == (False, True)
        assert off["ndcg@10"] == on["ndcg@10"] and on["prompts"] <= off["prompts"]
        assert on["virtual_prompts"] == off["prompts"]
    b2, b8 = rows[0], rows[2]
    assert b2["prompts"] == b8["prompts"] and b8["inferences"] < b2["inferences"]


def test_table_and_console_script(dl19_dir):
    proc = subprocess.run([sys.executable, "-m", "prp.cli", "simulate", "--data", str(dl19_dir),
                           "--queries", "2", "--depth", "20", "--sorters", "mergesort",
                           "--batch-sizes", "4", "--cache", "on", "--in-flight", "all"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    head, row = proc.stdout.splitlines()
    assert head.split()[:3] == ["sorter", "B", "cache"] and row.split()[:3] == ["mergesort", "4", "on"]


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent"], "no such file"),
    (["--k", "0"], "--k must be >= 1"),
    (["--depth", "0"], "--depth must be >= 1"),
    (["--sorters", "bogosort"], "known sorters: heapsort"),
    (["--judge", "psychic"], "unknown judge 'psychic'"),
    (["--batch-sizes", "0"], "--batch-sizes"),
    (["--cache", "maybe"], "--cache"),
])
def test_bad_input_exits_2(capsys, dl19_dir, args, message):
    base = ["--data", str(dl19_dir), "--queries", "1", "--depth", "5"]
    code, _, err = simulate(capsys, *base, *args)
    assert code == 2 and message in err
