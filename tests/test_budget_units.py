"""Per-query budgets with a unit (cost.budget): prompts, inferences, input tokens, predicted
seconds; never passed, a query cut at its budget keeps its best ranking so far."""

from __future__ import annotations

import json
import random

import pytest

from cost.budget import Budget, parse_budget
from cost.model import LatencyModel
from prp import PerfectOracle, Reranker
from prp.types import RankRequest


@pytest.mark.parametrize(("text", "budget"), [
    ("300", Budget(300, "prompts")), ("300prompts", Budget(300, "prompts")),
    (" 40 inferences ", Budget(40, "inferences")),
    ("40000tokens", Budget(40000.0, "tokens")), ("2s", Budget(2.0, "s")), ("1.5seconds", Budget(1.5, "s")),
    ("1e4tokens", Budget(10000.0, "tokens")), ("0.002usd", Budget(0.002, "usd")), (7, Budget(7, "prompts")),
    (None, None)])
def test_budgets_read_with_their_unit(text, budget):
    assert parse_budget(text) == budget
    if budget is not None:
        assert parse_budget(str(budget)) == budget  # its label reads back


@pytest.mark.parametrize("text", ["", "tokens", "5 apples", "-3", "1.5", "1.5prompts", "0.002eur", True, 2.5,
                                  -1])
def test_bad_budgets_are_named(text):
    with pytest.raises(ValueError, match="budget"):
        parse_budget(text)


def requests_and_qrels(queries=6, n=40, seed=0):
    rng = random.Random(seed)
    qrels, requests = {}, []
    for q in range(queries):
        qrels[f"q{q}"] = {f"d{i}": rng.choice([0, 0, 0, 1, 2, 3]) for i in range(n)}
        requests.append(RankRequest("query words", [f"passage {i} " * (3 + (i * 7) % 40) for i in range(n)],
                                    [f"d{i}" for i in range(n)], f"q{q}"))
    return requests, qrels


@pytest.mark.parametrize("sorter", ["quicksort", "heapsort", "setwise:k=4", "listwise:window=10,step=5",
                                    "tournament:k=4", "active"])
@pytest.mark.parametrize("tokens", [3000, 12000, 40000])
def test_a_token_budget_is_never_passed(sorter, tokens):
    """The simulated judge reports the same estimate the budget counts, so the input tokens of
    each query (ranked alone: no batch shared with another query) stay within the budget; a query
    that stopped early is marked cut, and one whose budget does not bind ranks as without one."""
    requests, qrels = requests_and_qrels()
    full = Reranker(PerfectOracle(qrels), sorter=sorter, k=5, in_flight=1).rank_many(requests)
    cut = Reranker(PerfectOracle(qrels), sorter=sorter, k=5, in_flight=1,
                   budget=f"{tokens}tokens").rank_many(requests)
    for whole, capped in zip(full, cut, strict=True):
        assert capped.cost.input_tokens <= tokens
        assert sorted(capped.doc_ids) == sorted(whole.doc_ids)  # a permutation, whatever the cut
        if not capped.cut:
            assert capped.doc_ids == whole.doc_ids and capped.cost.prompts == whole.cost.prompts
        if whole.cost.input_tokens > tokens:
            assert capped.cut
    loose = Reranker(PerfectOracle(qrels), sorter=sorter, k=5, in_flight=1,
                     budget="1e9tokens").rank_many(requests)
    assert [r.doc_ids for r in loose] == [r.doc_ids for r in full] and not any(r.cut for r in loose)


@pytest.mark.parametrize("sorter", ["quicksort", "setwise:k=4", "tournament"])
def test_inference_and_second_budgets_count_standalone_batches(sorter):
    requests, qrels = requests_and_qrels()
    latency = LatencyModel(1.0, 0.1, 0.001)
    for budget, field in (("6inferences", "inferences"), ("9s", "predicted_seconds")):
        results = Reranker(PerfectOracle(qrels), sorter=sorter, k=5, batch_size=4, in_flight=1,
                           latency=latency, budget=budget).rank_many(requests)
        limit = parse_budget(budget).amount
        for r in results:
            assert getattr(r.cost, field) <= limit + 1e-9
        assert any(r.cut for r in results)


def test_the_command_line_takes_budgets_with_units(tmp_path, capsys, dl19_dir):
    from prp.cli import main
    out = tmp_path / "run.jsonl"
    qrels = str(dl19_dir / "qrels.txt")
    data = str(dl19_dir / "bm25-top100.json")
    assert main(["rerank", "--input", data, "--queries", "3", "--depth", "30", "--judge", "perfect",
                 "--qrels", qrels, "--budget", "8000tokens", "--output", str(out), "--output-format", "jsonl",
                 "--format", "json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["per_query"]["input_tokens"] <= 8000 and summary["cut_queries"] > 0
    assert main(["simulate", "--data", str(dl19_dir), "--queries", "3", "--depth", "30", "--sorters",
                 "quicksort", "--budgets", "5000tokens,300", "--qrels", qrels, "--judge", "perfect",
                 "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert {r["budget"] for r in rows} == {"5000tokens", 300}
    with pytest.raises(SystemExit) as exit_info:  # argparse: exit 2, one line naming the flag
        main(["rerank", "--input", data, "--judge", "perfect", "--qrels", qrels, "--budget", "2eur",
              "--output", str(out)])
    assert exit_info.value.code == 2
    assert "budget must be a number with an optional unit" in capsys.readouterr().err
    assert main(["rerank", "--input", data, "--judge", "perfect", "--qrels", qrels, "--budget", "2usd",
                 "--output", str(out)]) == 2
    assert "a budget in usd (2usd) needs a price table" in capsys.readouterr().err


@pytest.mark.parametrize("sorter", ["quicksort", "setwise:k=4", "listwise:window=10,step=5"])
def test_a_budget_in_dollars_is_never_passed_and_needs_prices(sorter):
    """Input and output tokens under the price table, as the simulated judge reports them."""
    from cost.prices import Prices

    requests, qrels = requests_and_qrels()
    prices = Prices(input=2.0, output=8.0)
    results = Reranker(PerfectOracle(qrels), sorter=sorter, k=5, in_flight=1, prices=prices,
                       budget="0.05usd").rank_many(requests)
    spent = [prices.usd(r.cost.input_tokens, r.cost.output_tokens) for r in results]
    full = Reranker(PerfectOracle(qrels), sorter=sorter, k=5, in_flight=1).rank_many(requests)
    assert max(spent) <= 0.05 and min(spent) > 0
    assert [r.cut for r in results] == [prices.usd(r.cost.input_tokens, r.cost.output_tokens) > 0.05
                                        for r in full]
    with pytest.raises(ValueError, match="needs a price table"):
        Reranker(PerfectOracle(qrels), sorter=sorter, budget="0.02usd")
    from prp.engine import SyncEngine
    with SyncEngine(Reranker(PerfectOracle(qrels), sorter=sorter)) as engine, pytest.raises(
            ValueError, match="needs a price table"):
        engine.rank_many(requests, budget="0.02usd")
