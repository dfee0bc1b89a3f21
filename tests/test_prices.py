"""Dollars from a user's price table (cost.prices): reading it, pricing tokens, rows in usd."""

from __future__ import annotations

import json

import pytest

from cost.prices import Prices, load_prices


def test_a_price_table_reads_from_toml_or_json(tmp_path):
    toml = tmp_path / "prices.toml"
    toml.write_text("input = 0.40\ncached_input = 0.10\noutput = 1.60  # per million\n")
    assert load_prices(toml) == Prices(0.40, 1.60, 0.10)
    js = tmp_path / "prices.json"
    js.write_text(json.dumps({"input": 3, "output": 15}))
    assert load_prices(js) == Prices(3, 15)


def test_tokens_priced_by_hand():
    prices = Prices(input=0.40, output=1.60, cached_input=0.10)
    # 1,000 input tokens, 200 of them from the prefix cache, and 50 output tokens
    expected = (800 * 0.40 + 200 * 0.10 + 50 * 1.60) / 1e6
    assert prices.usd(1000, 50, cached_tokens=200) == pytest.approx(expected)
    assert Prices(1.0, 2.0).usd(1000, 10, cached_tokens=500) == pytest.approx((1000 * 1.0 + 10 * 2.0) / 1e6)


@pytest.mark.parametrize(("text", "words"), [
    ("input = 1\n", "holds input and output"),
    ("input = -1\noutput = 1\n", "'input' must be a number >= 0"),
    ("input = 1\noutput = 1\nvat = 0.2\n", "got input, output, vat"),
    ("input = [\n", "not a TOML price table"),
    ('input = "free"\noutput = 1\n', "'input' must be a number")])
def test_a_bad_price_table_names_the_file_and_the_problem(tmp_path, text, words):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="p.toml") as info:
        load_prices(path)
    assert words in str(info.value)
    with pytest.raises(ValueError, match="cannot read the price table"):
        load_prices(tmp_path / "missing.toml")


def test_simulate_and_bench_rows_carry_usd_per_query(tmp_path, capsys, dl19_dir):
    from prp.cli import main
    prices = tmp_path / "prices.toml"
    prices.write_text("input = 0.40\noutput = 1.60\n")
    args = ["--data", str(dl19_dir), "--queries", "3", "--depth", "20", "--sorters", "quicksort,setwise:k=4",
            "--batch-sizes", "8", "--judge", "perfect"]
    assert main(["simulate", *args, "--prices", str(prices), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert rows
    for row in rows:
        by_hand = (row["input_tokens"] * 0.40 + row["output_tokens"] * 1.60) / 1e6
        assert row["usd"] == pytest.approx(by_hand, abs=1e-8)
    assert main(["bench", *args, "--prices", str(prices), "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    bench_rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    assert all(r["usd"] > 0 for r in bench_rows)
    assert main(["simulate", *args, "--prices", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: cannot read the price table" in capsys.readouterr().err
