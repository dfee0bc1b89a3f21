"""``prp bench`` on the DL19 files with a simulated judge: report, results, plots, replay."""

from __future__ import annotations

import json

import pytest

from prp.cli import main

ROW_KEYS = {"sorter", "batch_size", "ndcg@10", "mrr@10", "comparisons", "prompts", "inferences",
            "virtual_inferences", "physical_inferences", "rounds", "predicted_seconds",
            "measured_seconds"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(dl19_dir, out, *extra):
    return main(["bench", "--data", str(dl19_dir), "--queries", "3", "--depth", "20",
                 "--sorters", "heapsort,quicksort:pivot=median-of-three", "--batch-sizes", "2,8",
                 "--judge", "perfect", "--out", str(out), *extra])


def test_bench_writes_report_results_and_plots(capsys, dl19_dir, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    assert bench(dl19_dir, out) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:5] == ["sorter", "B", "orders", "budget", "cmp"]
    data = json.loads((out / "results.json").read_text())
    rows = data["rows"]
    assert [(r["sorter"], r["batch_size"]) for r in rows] == [
        ("heapsort", 2), ("heapsort", 8), ("quicksort:pivot=median-of-three", 2),
        ("quicksort:pivot=median-of-three", 8)]
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert 0 < row["ndcg@10"] <= 1 and 0 < row["mrr@10"] <= 1
        assert row["physical_inferences"] == row["inferences"] > 0  # no --cache-dir: all paid
        assert row["measured_seconds"] > 0 and row["predicted_seconds"] > 0
    # a perfect judge finds the best top-10 of the 20, whatever the sorter
    assert len({r["ndcg@10"] for r in rows}) == 1 and rows[0]["ndcg@10"] > data["baseline"]["ndcg@10"]
    quick8 = rows[3]
    assert quick8["inferences"] < rows[1]["inferences"]  # quicksort fills its batches, heapsort cannot
    assert data["settings"]["judge"] == "perfect" and data["command"].startswith("prp bench --data")
    report = (out / "report.md").read_text()
    assert "| sorter | B |" in report and "heapsort" in report and data["command"] in report
    for name in ("frontier.png", "inferences_vs_batch.png"):
        png = (out / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 10_000, name
        assert f"![{name}]({name})" in report


def test_shared_cache_dir_replays_instead_of_paying(capsys, dl19_dir, tmp_path):
    cache = str(tmp_path / "judgments")
    assert bench(dl19_dir, tmp_path / "first", "--cache-dir", cache) == 0
    assert bench(dl19_dir, tmp_path / "second", "--cache-dir", cache) == 0
    capsys.readouterr()
    first, second = (json.loads((tmp_path / d / "results.json").read_text())["rows"]
                     for d in ("first", "second"))
    assert first[0]["physical_inferences"] == first[0]["inferences"] > 0
    # later runs of the first bench already replay pairs judged by earlier ones
    assert sum(r["physical_prompts"] for r in first) < sum(r["prompts"] for r in first)
    assert all(r["physical_inferences"] == 0 and r["physical_prompts"] == 0 for r in second)
    for a, b in zip(first, second, strict=True):  # standalone counts do not depend on replay
        for key in ("comparisons", "prompts", "inferences", "rounds", "predicted_seconds", "ndcg@10"):
            assert a[key] == b[key], key


@pytest.mark.parametrize("extra, message", [
    (["--batch-sizes", "0"], "--batch-sizes"),
    (["--k", "0"], "--k"),
    (["--sorters", "shellsort"], "unknown sorter"),
])
def test_bench_bad_input_exits_2(capsys, dl19_dir, tmp_path, extra, message):
    assert bench(dl19_dir, tmp_path, *extra) == 2
    assert message in capsys.readouterr().err


def test_budgets_plot_quality_against_prompts_and_input_tokens_for_every_shape(capsys, dl19_dir, tmp_path):
    """With --budgets, pair and k-wise rankers are traced against prompts and against input
    tokens per query (ndcg_vs_tokens.png): a set of 4 is one prompt but about four pairs' tokens."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    assert main(["bench", "--data", str(dl19_dir), "--queries", "3", "--depth", "20", "--sorters",
                 "quicksort,setwise:k=4", "--batch-sizes", "8", "--budgets", "10,40", "--judge", "perfect",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    for name in ("ndcg_vs_prompts.png", "ndcg_vs_tokens.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    rows = {(r["sorter"], r["budget"]): r for r in json.loads((out / "results.json").read_text())["rows"]}
    pair, sets = rows[("quicksort", 40)], rows[("setwise:k=4", 40)]
    assert pair["prompts"] > 0 and sets["prompts"] > 0
    # input tokens per prompt: a set of 4 passages costs well over a pair of 2
    assert sets["input_tokens"] / sets["prompts"] > 1.5 * pair["input_tokens"] / pair["prompts"]
