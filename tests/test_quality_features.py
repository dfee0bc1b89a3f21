"""Per-query budgets, debiased single-order prompts and transitive inference, through the engine."""

from __future__ import annotations

import asyncio
import json

import pytest

from prp import Reranker
from prp import scheduler as sched
from prp.aggregate import BiasEstimate
from prp.cache import MemoryCache
from prp.oracles import NoisyOracle, PerfectOracle
from prp.types import Judgment
from sorters import SORTERS

DOCS = [f"d{i}" for i in range(30)]


def qrels_for(grades):
    return {"q": {doc: g for doc, g in zip(DOCS, grades, strict=False)}}


def rank(oracle, n=30, **options):
    rr = Reranker(oracle, **options)
    result = rr.rank("query", DOCS[:n], doc_ids=DOCS[:n], qid="q")
    return result, rr


@pytest.mark.parametrize("sorter", sorted(SORTERS))
@pytest.mark.parametrize("orders", ["both", "random"])
@pytest.mark.parametrize("budget", [0, 7, 40, 150])
def test_budget_is_never_exceeded(sorter, orders, budget):
    grades = [(7 * i) % 4 for i in range(30)]
    oracle = NoisyOracle(qrels_for(grades), scale=0.3, bias=1.0, noise=0.8, seed=1)
    result, rr = rank(oracle, sorter=sorter, k=5, orders=orders, budget=budget, cache=False,
                      aggregate="margin")
    assert result.cost.prompts <= budget
    assert result.cost.virtual_prompts <= budget
    assert sorted(result.doc_ids) == sorted(DOCS)


def test_a_classic_sorter_is_cut_when_its_next_round_does_not_fit():
    oracle = PerfectOracle(qrels_for(list(range(30))))
    # quicksort's first round compares 29 candidates with the pivot: 58 prompts under "both"
    result, _ = rank(oracle, sorter="quicksort", k=5, budget=57)
    assert result.cut and result.cost.prompts == 0 and result.doc_ids == DOCS
    result, _ = rank(oracle, sorter="quicksort", k=5, budget=58)
    assert result.cost.prompts == 58


def test_active_plans_to_the_budget_in_comparisons():
    oracle = NoisyOracle(qrels_for([i % 4 for i in range(30)]), scale=0.3, bias=1.0, noise=0.8)
    both, _ = rank(oracle, sorter="active", k=5, budget=101, orders="both", cache=False)
    assert both.cost.prompts == 100 and not both.cut  # 50 comparisons of 2 prompts
    one, _ = rank(oracle, sorter="active", k=5, budget=101, orders="random", cache=False)
    assert one.cost.prompts == 101


def test_same_seed_same_ranking_and_counts_for_active():
    oracle = NoisyOracle(qrels_for([i % 4 for i in range(30)]), scale=0.3, bias=1.5, noise=0.8)
    runs = [rank(oracle, sorter="active", k=10, budget=120, orders="random", debias="auto")[0]
            for _ in range(2)]
    assert runs[0].doc_ids == runs[1].doc_ids
    assert runs[0].cost.to_dict() | {"wall_seconds": 0} == runs[1].cost.to_dict() | {"wall_seconds": 0}


def test_debias_with_the_known_bias_makes_one_order_exact():
    grades = list(range(30))
    oracle = NoisyOracle(qrels_for(grades), scale=1.0, bias=4.0, noise=0.0)
    expected = sorted(DOCS, key=lambda d: -grades[DOCS.index(d)])[:10]
    off, _ = rank(oracle, sorter="quicksort", k=10, orders="random", aggregate="margin")
    fixed, _ = rank(oracle, sorter="quicksort", k=10, orders="random", aggregate="margin", debias=4.0)
    assert fixed.doc_ids[:10] == expected
    assert off.doc_ids[:10] != expected  # a bias of 4 grades decides most single prompts


def test_debias_auto_estimates_the_bias_from_coin_directions():
    grades = [1 if i % 3 == 0 else 0 for i in range(30)]  # 10 relevant documents
    oracle = NoisyOracle(qrels_for(grades), scale=1.0, bias=3.0, noise=0.0)
    relevant = {d for d, g in zip(DOCS, grades, strict=True) if g}
    auto, _ = rank(oracle, sorter="allpair", k=10, orders="random", aggregate="margin", debias="auto")
    off, _ = rank(oracle, sorter="allpair", k=10, orders="random", aggregate="margin")
    assert set(auto.doc_ids[:10]) == relevant
    assert set(off.doc_ids[:10]) != relevant


def test_bias_estimate_uses_only_unbiased_observations():
    est = BiasEstimate()
    est.observe("p", [(True, Judgment("A", 2.0)), (False, Judgment("A", 1.0))], coin=False)
    assert est.value == pytest.approx(1.5)  # both orders: the mean of the two margins
    est.observe("p", [(True, Judgment("A", 9.0)), (False, Judgment("A", 9.0))], coin=False)
    assert est.value == pytest.approx(1.5)  # the same pair is observed once
    est.observe("q", [(True, Judgment("A", 7.0))], coin=False)
    assert est.count == 1  # one fixed-order prompt says nothing about the bias
    est.observe("r", [(False, Judgment("B", -0.5))], coin=True)
    assert est.value == pytest.approx(0.5)
    est.observe("s", [(True, Judgment(None, None, parsed=False))], coin=True)
    assert est.count == 2


@pytest.mark.parametrize("value", ["sometimes", float("nan"), float("inf"), True])
def test_bad_debias_is_rejected(value):
    with pytest.raises(ValueError, match="debias"):
        Reranker(PerfectOracle({}), debias=value)


def scripted(rounds):
    """A sorter factory that asks the given rounds and returns the identity permutation."""
    def gen():
        seen = []
        for round_ in rounds:
            seen.append((yield round_))
        gen.outcomes = seen
        return list(range(3))
    return gen


def test_transitive_inference_hand_count():
    oracle = PerfectOracle(qrels_for([3, 2, 1]))
    factory = scripted([[(0, 1)], [(1, 2)], [(2, 0)]])
    job = sched.Job("q", "query", DOCS[:3], DOCS[:3], factory)
    settings = sched.Settings(batch_size=4, orders="both", aggregate="auto", tie_band=0.0, in_flight=None,
                              concurrency=1, max_inferences=None, seed=0,
                              latency=Reranker(oracle).settings.latency, infer=True)
    asyncio.run(sched.run([job], oracle, MemoryCache(), settings))
    assert factory.outcomes == [[1], [1], [-1]]  # 2 < 0 is implied by 0 > 1 > 2
    assert job.ledger.inferred == 1 and job.ledger.prompts == 4 and job.ledger.unique_comparisons == 3


@pytest.mark.parametrize("sorter", ["bubblesort", "heapsort", "quicksort", "mergesort"])
def test_inference_keeps_a_perfect_judges_ranking_and_saves_prompts(sorter):
    grades = [(5 * i) % 7 for i in range(30)]
    oracle = PerfectOracle(qrels_for(grades))
    plain, _ = rank(oracle, sorter=sorter, k=10, cache=False)
    inferred, _ = rank(oracle, sorter=sorter, k=10, cache=False, infer=True)
    assert inferred.doc_ids == plain.doc_ids
    assert inferred.cost.prompts == plain.cost.prompts - 2 * inferred.cost.inferred


def test_simulate_budgets_give_one_row_per_budget(capsys, tmp_path):
    import json

    from prp.cli import main

    data = tmp_path / "data"
    data.mkdir()
    hits = [{"qid": "q1", "docid": d, "rank": r + 1, "score": 30.0 - r, "content": f"text {d}"}
            for r, d in enumerate(DOCS[:12])]
    (data / "bm25-top100.json").write_text(json.dumps([{"query": "the query", "hits": hits}]))
    (data / "qrels.txt").write_text("".join(f"q1 0 {d} {(3 * i) % 4}\n" for i, d in enumerate(DOCS[:12])))
    code = main(["simulate", "--data", str(data), "--sorters", "active,quicksort", "--batch-sizes", "1",
                 "--cache", "on", "--budgets", "10,40", "--judge", "noisy:bias=1,noise=0.5",
                 "--orders", "random", "--debias", "auto", "--format", "jsonl"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["sorter"], r["budget"]) for r in rows] == [("active", 10), ("active", 40),
                                                        ("quicksort", 10), ("quicksort", 40)]
    assert all(r["prompts"] <= r["budget"] for r in rows)
    assert rows[1]["prompts"] == 40 and rows[1]["debias"] == "auto"


def test_replay_oracle_answers_from_a_recorded_set_and_refuses_a_miss(tmp_path):
    from prp.oracles import BackendError, make_judge
    from prp.oracles.replay import write_replay

    margins = [[None, 1.5, -0.5], [0.25, None, 2.0], [-1.0, 0.0, None]]
    path = tmp_path / "set.json.gz"
    write_replay(path, {"model": "m", "depth": 3,
                        "queries": [{"qid": "q", "query": "query", "doc_ids": DOCS[:3], "margins": margins}]})
    oracle = make_judge(f"replay:path={path}")
    rr = Reranker(oracle, sorter="allpair", k=3, orders="both", aggregate="margin")
    result = rr.rank("query", DOCS[:3], doc_ids=DOCS[:3], qid="q")
    # a's margin: m(a, b) - m(b, a): d0-d1 1.25, d0-d2 0.5, d1-d2 2.0: d0 beats both, d1 beats d2
    assert result.doc_ids == DOCS[:3]
    with pytest.raises(BackendError, match="no query 'other'"):
        rr.rank("query", DOCS[:3], doc_ids=DOCS[:3], qid="other")
    with pytest.raises(BackendError, match="no document 'd9'"):
        rr.rank("query", ["a", "b"], doc_ids=["d0", "d9"], qid="q")


@pytest.mark.parametrize("queries, message", [
    ([[1]], "query 1 is not an object with a 'qid'"),
    ([{"doc_ids": ["a"], "margins": [[None]]}], "query 1 is not an object with a 'qid'"),
    ([{"qid": "q", "doc_ids": ["a", "b"], "margins": [1, 2]}], "needs an n x n margins matrix"),
    ([{"qid": "q", "doc_ids": ["a", "b"], "margins": [[None, "x"], [1, None]]}], "numbers or null"),
])
def test_a_malformed_replay_set_is_bad_input(tmp_path, capsys, queries, message):
    from prp.cli import main
    from prp.oracles.replay import write_replay

    path = tmp_path / "bad.json.gz"
    write_replay(path, {"model": "m", "queries": queries})
    data = tmp_path / "data"
    data.mkdir()
    hits = [{"qid": "q", "docid": d, "rank": r + 1, "score": 9.0 - r, "content": f"text {d}"}
            for r, d in enumerate(DOCS[:3])]
    (data / "bm25-top100.json").write_text(json.dumps([{"query": "the query", "hits": hits}]))
    (data / "qrels.txt").write_text("q 0 d0 1\n")
    assert main(["simulate", "--data", str(data), "--judge", f"replay:path={path}"]) == 2
    assert message in capsys.readouterr().err
