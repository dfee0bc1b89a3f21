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
    assert by_rounds[0].sorter == "allpair" and by_rounds[0].rounds == 1
    assert [p.rounds for p in by_rounds] == sorted(p.rounds for p in by_rounds)
    by_seconds = plan(20, 5, 8, objective="seconds", **SMALL)
    assert [p.predicted_seconds for p in by_seconds] == sorted(p.predicted_seconds for p in by_seconds)
    with pytest.raises(ValueError, match="inferences, seconds, rounds"):
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
    assert text.startswith("quicksort: ") and "against heapsort's" in text
    assert "fewer" in text and "rounds" in text


def test_auto_sorter_ranks_correctly_and_uses_the_planner_choice():
    planner._predict.cache_clear()  # the planner must then simulate inside rank()'s event loop
    ids, scores = score_docs(24, seed=5)
    reranker = Reranker(ScoresOracle(scores), sorter="auto", k=6, batch_size=8)
    result = reranker.rank("q", [f"text {d}" for d in ids], ids)
    assert result.doc_ids == expected_order(ids, scores, 6)
    assert reranker.sorter_for(24) == choose(24, 6, 8, orders="both", objective="inferences")
    assert reranker.sorter_for(1) == "quicksort"


def test_auto_sorter_takes_no_options():
    with pytest.raises(ValueError, match="auto"):
        Reranker(ScoresOracle({}), sorter="auto:pivot=random")
    assert Reranker(ScoresOracle({}), sorter="heapsort").sorter_for(50) == "heapsort"


def test_plan_command_table(capsys):
    code = main(["plan", "--n", "20", "--k", "5", "--batch-size", "8", "--trials", "2",
                 "--latency", "0.2,0.01,0.001"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["#", "sorter", "comparisons", "prompts", "inferences", "rounds",
                                "seconds", "ndcg@10"]
    winner = lines[1].split()[1]
    assert f"{winner}: " in out and "per query" in out
    assert sum(line[:1].isdigit() for line in lines) == 6  # n <= 60: allpair included


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
    assert data["explanation"].startswith("allpair: 1")


@pytest.mark.parametrize("flag", ["--n", "--k", "--batch-size"])
def test_plan_command_bad_input_exits_2(capsys, flag):
    args = {"--n": "20", "--k": "5", "--batch-size": "8", flag: "0"}
    code = main(["plan", *[x for item in args.items() for x in item], "--trials", "1"])
    assert code == 2
    assert "must be an integer >= 1" in capsys.readouterr().err


def test_the_planner_simulates_only_simulated_judges():
    with pytest.raises(ValueError, match="perfect or noisy"):
        predict("quicksort", 20, 5, 4, judge="llama.cpp", **SMALL)
