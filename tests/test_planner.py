"""The cost planner (prp/planner.py), ``sorter="auto"`` and ``prp plan`` (small simulations)."""

from __future__ import annotations

import json

import pytest
from conftest import expected_order, score_docs

from cost.ledger import Ledger
from cost.model import DEFAULT_LATENCY
from prp import PerfectOracle, Reranker, ScoresOracle, planner
from prp.cli import main
from prp.oracles import make_judge
from prp.planner import choose, explain, plan, predict, synthetic_queries
from prp.spec import parse_spec
from prp.types import Prompt
from sorters import SORTERS, make_sorter

SMALL = {"trials": 2}


def test_predict_is_deterministic_and_seeded():
    first = predict("quicksort", 20, 5, 4, judge="noisy:bias=0.5,noise=1.0", **SMALL)
    planner._predict.cache_clear()
    assert predict("quicksort", 20, 5, 4, judge="noisy:bias=0.5,noise=1.0", **SMALL) == first
    other = predict("quicksort", 20, 5, 4, judge="noisy:bias=0.5,noise=1.0", seed=1, **SMALL)
    assert other != first
    assert (first.sorter, first.n, first.k, first.batch_size) == ("quicksort", 20, 5, 4)


def test_synthetic_queries_look_like_dl19():
    requests, qrels = synthetic_queries(100, queries=20, seed=3)
    grades = [g for judged in qrels.values() for g in judged.values()]
    assert all(any(judged.values()) for judged in qrels.values())  # every query has a relevant one
    assert 0.55 < grades.count(0) / len(grades) < 0.8
    assert len({r.qid for r in requests}) == 20
    oracle = PerfectOracle(qrels)
    prompt_tokens = oracle.tokens(_prompt(requests[0]))
    assert 200 <= prompt_tokens <= 300  # what the latency model should see for a PRP prompt


def _prompt(request):
    ids, docs = request.doc_ids, request.docs
    return Prompt(request.qid, request.query, ids[0], docs[0], ids[1], docs[1])


def test_one_prompt_per_inference_heapsort_and_mergesort_beat_allpair():
    cost = {p.sorter: p.inferences for p in plan(20, 10, 1, sorters=["heapsort", "mergesort", "allpair"],
                                                 **SMALL)}
    assert cost["heapsort"] < cost["allpair"] and cost["mergesort"] < cost["allpair"]


def test_large_batches_all_in_flight_quicksort_beats_heapsort():
    kw = {"queries": 6, "in_flight": None, **SMALL}
    quick, heap = (predict(s, 30, 10, 64, **kw) for s in ("quicksort", "heapsort"))
    assert quick.inferences < heap.inferences
    assert quick.rounds < heap.rounds


def test_objectives_order_the_plan():
    by_rounds = plan(20, 5, 8, objective="rounds", **SMALL)
    # n = 20: one listwise window of 20 and allpair both take 1 round; the window, 1 inference
    assert [(p.sorter, p.rounds) for p in by_rounds[:2]] == [("listwise", 1), ("allpair", 1)]
    assert plan(20, 5, 8, objective="rounds", shapes=("pair",), **SMALL)[0].sorter == "allpair"
    assert [p.rounds for p in by_rounds] == sorted(p.rounds for p in by_rounds)
    by_seconds = plan(20, 5, 8, objective="seconds", **SMALL)
    assert [p.predicted_seconds for p in by_seconds] == sorted(p.predicted_seconds for p in by_seconds)
    with pytest.raises(ValueError, match="inferences, rounds, tokens, usd, seconds"):
        plan(20, 5, 8, objective="dollars")


def test_ties_break_by_rounds_then_name():
    # two candidates: every sorter asks the one comparison in one round, one inference
    names = [p.sorter for p in plan(2, 1, 8, sorters=["mergesort", "heapsort", "allpair"], **SMALL)]
    assert names == ["allpair", "heapsort", "mergesort"]


def test_allpair_is_left_out_of_large_default_plans():
    assert "allpair" in planner.default_sorters(60)
    assert "allpair" not in planner.default_sorters(61)


def test_perfect_judge_prediction_matches_the_engine():
    n, k, b, queries, trials = 15, 5, 4, 2, 2
    got = predict("mergesort", n, k, b, judge="perfect", queries=queries, in_flight=None, trials=trials)
    ledgers = []
    for trial in range(trials):
        requests, qrels = synthetic_queries(n, queries, seed=0, trial=trial)
        reranker = Reranker(PerfectOracle(qrels), sorter="mergesort", k=k, batch_size=b, in_flight=None)
        ledgers.append(reranker.rank_many(requests)[0].run_cost)
    means = Ledger.total(ledgers).per_query()
    for name in ("comparisons", "prompts", "inferences", "rounds", "predicted_seconds"):
        assert getattr(got, name) == pytest.approx(means[name]), name


@pytest.mark.parametrize("sorter", ["quicksort:pivot=median-of-three", "heapsort", "bubblesort"])
def test_the_scheduler_run_predicts_what_an_engine_pays(sorter):
    """The planner runs the scheduler directly; a Reranker's engine on the same synthetic queries
    (the default noisy judge, two in flight) pays the same counts and ranks the same."""
    requests, qrels = synthetic_queries(12, queries=3, seed=1, trial=0)
    ledger, ndcg = planner.simulate(sorter, requests, qrels, k=4, batch_size=3, in_flight=2)
    reranker = Reranker(make_judge(planner.DEFAULT_JUDGE, qrels=qrels), sorter=sorter, k=4, batch_size=3,
                        in_flight=2, latency=DEFAULT_LATENCY)
    results = reranker.rank_many(requests)
    engine = Ledger.total([r.cost for r in results]).to_dict()
    assert {**ledger.to_dict(), "wall_seconds": 0} == {**engine, "wall_seconds": 0}
    assert ledger.prompts > 0 and ledger.queries == 3
    assert ndcg == pytest.approx(sum(planner.ndcg_at(r.doc_ids, qrels[r.qid]) for r in results) / 3)


def test_choose_returns_a_registered_sorter_spec():
    spec = choose(25, 10, 8, **SMALL)
    name, options = parse_spec(spec)
    assert name in SORTERS
    make_sorter(name, 25, 10, **options)
    assert spec == plan(25, 10, 8, **SMALL)[0].sorter


@pytest.mark.parametrize("kw", [{"n": 0}, {"k": 0}, {"batch_size": 0}, {"trials": 0}, {"in_flight": 0}])
def test_bad_shapes_raise(kw):
    args = {"n": 10, "k": 5, "batch_size": 4, **kw}
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        predict("quicksort", args.pop("n"), args.pop("k"), args.pop("batch_size"), **args)


def test_explain_names_winner_runner_up_and_rounds():
    predictions = plan(20, 5, 8, sorters=["heapsort", "quicksort"], **SMALL)
    text = explain(predictions)
    assert text.startswith("quicksort (pair, B=8): ") and "against heapsort (B=8)" in text
    assert "fewer" in text and "rounds" in text


def test_auto_sorter_ranks_correctly_and_uses_the_planner_choice():
    planner._predict.cache_clear()  # the planner must then simulate inside rank()'s event loop
    ids, scores = score_docs(24, seed=5)
    reranker = Reranker(ScoresOracle(scores), sorter="auto", k=6, batch_size=8)
    result = reranker.rank("q", [f"text {d}" for d in ids], ids)
    assert result.doc_ids == expected_order(ids, scores, 6)
    assert reranker.sorter_for(24) == choose(24, 6, 8, orders="both", objective="inferences")
    assert reranker.sorter_for(1) == "quicksort"


def test_auto_sorter_takes_only_an_objective():
    for bad in ("auto:pivot=random", "auto:objective=dollars", "auto:objective=tokens,pivot=random"):
        with pytest.raises(ValueError, match="auto"):
            Reranker(ScoresOracle({}), sorter=bad)
    with pytest.raises(ValueError, match="price table"):
        Reranker(ScoresOracle({}), sorter="auto:objective=usd")
    Reranker(ScoresOracle({}), sorter="auto:objective=tokens")
    assert Reranker(ScoresOracle({}), sorter="heapsort").sorter_for(50) == "heapsort"


def test_plan_command_table(capsys):
    code = main(["plan", "--n", "20", "--k", "5", "--batch-size", "8", "--trials", "2",
                 "--latency", "0.2,0.01,0.001"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["#", "shape", "sorter", "B", "prompts", "inferences", "rounds", "in_tok",
                                "cached", "out_tok", "usd", "seconds", "ndcg@10"]
    first = lines[1].split()
    assert first[0] == "1*" and sum("*" in line.split()[0] for line in lines[1:] if line[:1].strip()) == 1
    assert f"{first[2]} ({first[1]}, B=8): " in out and "per query" in out
    # n <= 60: allpair included; 7 pairwise sorters and setwise, tournament:k=4 and listwise
    assert sum(line.strip()[:1].isdigit() for line in lines) == 10


def test_plan_command_json(capsys):
    code = main(["plan", "--n", "20", "--k", "5", "--batch-size", "64", "--objective", "rounds",
                 "--in-flight", "all", "--queries", "3", "--trials", "2", "--judge", "perfect",
                 "--sorters", "heapsort,quicksort:pivot=median-of-three,allpair", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["choice"] == "allpair" == data["predictions"][0]["sorter"]
    assert [p["sorter"] for p in data["predictions"]][1:] == ["quicksort:pivot=median-of-three", "heapsort"]
    assert data["settings"]["in_flight"] == "all" and data["settings"]["latency"]["alpha"] == 0.1
    assert set(data["predictions"][0]) >= {"comparisons", "prompts", "inferences", "rounds",
                                           "predicted_seconds", "ndcg10"}
    assert data["explanation"].startswith("allpair (pair, B=64): 1")
    assert data["best"]["sorter"] == "allpair" and data["best"]["batch_size"] == 64


@pytest.mark.parametrize("flag", ["--n", "--k", "--batch-size"])
def test_plan_command_bad_input_exits_2(capsys, flag):
    args = {"--n": "20", "--k": "5", "--batch-size": "8", flag: "0"}
    code = main(["plan", *[x for item in args.items() for x in item], "--trials", "1"])
    assert code == 2
    assert "must be an integer >= 1" in capsys.readouterr().err


def test_the_planner_simulates_only_simulated_judges():
    with pytest.raises(ValueError, match="perfect or noisy"):
        predict("quicksort", 20, 5, 4, judge="llama.cpp", **SMALL)


# --- across shapes, in every unit -----------------------------------------------------------

def test_tokens_and_rounds_choose_different_shapes_at_dl19_depth():
    """DL19's shape (depth 100, k=10): a listwise window reads ~20 passages in one prompt, so it
    is the fewest tokens; its windows wait for each other, so pairwise quicksort has fewer rounds."""
    by_tokens = plan(100, 10, 8, objective="tokens")
    by_rounds = plan(100, 10, 8, objective="rounds")
    assert (by_tokens[0].shape, by_tokens[0].sorter) == ("list", "listwise")
    assert by_rounds[0].shape == "pair" and by_rounds[0].sorter.startswith("quicksort")
    assert by_tokens[0].rounds > by_rounds[0].rounds and by_tokens[0].tokens < by_rounds[0].tokens
    assert {p.shape for p in by_tokens} == {"pair", "set", "list"}
    assert [p.tokens for p in by_tokens] == sorted(p.tokens for p in by_tokens)
    for p in by_tokens:  # every unit, and the cached prefix is part of the input
        assert p.input_tokens > 0 and 0 <= p.cached_tokens < p.input_tokens and p.output_tokens > 0
        assert p.tokens == p.input_tokens + p.output_tokens


def test_a_plan_covers_every_sorter_at_every_batch_size_and_shapes_filter_it():
    predictions = plan(20, 5, [1, 8], sorters=["quicksort", "setwise:k=4"], **SMALL)
    assert sorted((p.sorter, p.batch_size) for p in predictions) == [
        ("quicksort", 1), ("quicksort", 8), ("setwise:k=4", 1), ("setwise:k=4", 8)]
    one = {p.sorter: p for p in predictions if p.batch_size == 1}
    assert one["quicksort"].inferences == one["quicksort"].prompts  # B=1: one prompt an inference
    assert one["setwise:k=4"].shape == "set"
    pair_only = plan(20, 5, 8, shapes=("pair",), **SMALL)
    assert {p.shape for p in pair_only} == {"pair"} and "listwise" not in {p.sorter for p in pair_only}
    with pytest.raises(ValueError, match="unknown question shape"):
        plan(20, 5, 8, shapes=("pair", "graph"))


def test_usd_is_the_price_table_over_the_predicted_tokens():
    from cost.prices import Prices

    prices = Prices(input=0.40, output=1.60, cached_input=0.10)
    p = predict("quicksort", 20, 5, 8, prices=prices, **SMALL)
    fresh = p.input_tokens - p.cached_tokens
    by_hand = (fresh * 0.40 + p.cached_tokens * 0.10 + p.output_tokens * 1.60) / 1e6
    assert p.usd == pytest.approx(by_hand) and p.usd > 0
    assert predict("quicksort", 20, 5, 8, **SMALL).usd is None
    with pytest.raises(ValueError, match="price table"):
        plan(20, 5, 8, objective="usd", **SMALL)
    ranked = plan(20, 5, 8, objective="usd", prices=prices, **SMALL)
    assert [x.usd for x in ranked] == sorted(x.usd for x in ranked)


def test_under_a_budget_plans_are_simulated_within_it_and_ranked_by_quality():
    from cost.budget import parse_budget

    budget = parse_budget("6000tokens")
    predictions = plan(40, 10, 8, budget=budget, **SMALL)
    whole = {p.sorter: p for p in plan(40, 10, 8, **SMALL)}
    for p in predictions:
        # never past the budget by more than one inference's tokens (B prompts of ~250 tokens)
        assert p.input_tokens <= 6000 + 8 * 300 and p.budget == "6000tokens"
        assert p.input_tokens <= whole[p.sorter].input_tokens + 1e-6
    assert [round(p.ndcg10, 3) for p in predictions] == sorted((round(p.ndcg10, 3) for p in predictions),
                                                                 reverse=True)


def test_auto_picks_among_the_shapes_the_judge_answers():
    planner._predict.cache_clear()
    ids, scores = score_docs(100, seed=3)
    qrels = {"q": {d: int(s * 3) for d, s in zip(ids, scores.values(), strict=False)}}
    class PairsOnly(ScoresOracle):
        shapes = ("pair",)

    pair_only = Reranker(PairsOnly(scores), sorter="auto:objective=tokens", k=10)
    assert pair_only.sorter_for(100) in {p.sorter for p in plan(100, 10, 8, shapes=("pair",))}
    shaped = Reranker(PerfectOracle(qrels), sorter="auto:objective=tokens", k=10)
    assert shaped.sorter_for(100) == "listwise"  # the fewest tokens, as plan() says
    assert Reranker(PerfectOracle(qrels), sorter="auto:objective=rounds", k=10).sorter_for(100).startswith(
        "quicksort")
    result = shaped.rank("q", [f"text {d}" for d in ids], ids)
    assert result.cost.prompts_by_shape["list"] > 0 and len(result.doc_ids) == 100


def test_plan_command_objective_tokens_marks_the_cheapest(capsys):
    assert main(["plan", "--n", "100", "--k", "10", "--objective", "tokens", "--batch-size", "8,64",
                 "--trials", "1", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["choice"] == "listwise" and data["best"]["shape"] == "list"
    assert {p["batch_size"] for p in data["predictions"]} == {8, 64}
    assert data["settings"]["objective"] == "tokens" and data["settings"]["batch_sizes"] == [8, 64]
    assert main(["plan", "--n", "20", "--k", "5", "--objective", "usd", "--trials", "1"]) == 2
    assert "price table" in capsys.readouterr().err
