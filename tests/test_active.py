"""The active ranker: a permutation under any answers, its budget, no pair twice, determinism,
and the top-k of a consistent judge."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorters import Cut, active, drive, make_sorter


def run_recording(gen, answer):
    """Drive ``gen`` with ``answer(i, j) -> float``; return (result, rounds asked)."""
    rounds = []
    try:
        asks = next(gen)
        while True:
            rounds.append(list(asks))
            asks = gen.send([answer(i, j) for i, j in asks])
    except StopIteration as stop:
        return stop.value, rounds


@settings(max_examples=15, deadline=None)
@given(n=st.integers(0, 25), k=st.integers(1, 30), budget=st.one_of(st.none(), st.integers(0, 80)),
       seed=st.integers(0, 10**6), round_size=st.integers(1, 12))
def test_permutation_under_random_answers(n, k, budget, seed, round_size):
    rng = random.Random(seed)
    out, rounds = run_recording(active(n, k, budget=budget, round_size=round_size),
                                lambda i, j: rng.gauss(0, 1) if rng.random() < 0.8 else 0.0)
    assert sorted(out) == list(range(n))
    asked = [tuple(sorted(p)) for r in rounds for p in r]
    assert len(asked) == len(set(asked))  # never the same pair twice
    assert all(i != j and 0 <= i < n and 0 <= j < n for r in rounds for i, j in r)
    assert all(len(r) <= round_size for r in rounds)
    if budget is not None:
        assert len(asked) <= budget


@settings(max_examples=10, deadline=None)
@given(n=st.integers(2, 20), k=st.integers(1, 10), seed=st.integers(0, 10**6), cut_at=st.integers(0, 6))
def test_cut_returns_a_permutation_at_once(n, k, seed, cut_at):
    rng = random.Random(seed)
    gen = active(n, k, budget=60, round_size=4)
    try:
        asks = next(gen)
        for _ in range(cut_at):
            asks = gen.send([rng.choice((-1.0, 0.0, 2.5)) for _ in asks])
        gen.throw(Cut())
    except StopIteration as stop:
        assert sorted(stop.value) == list(range(n))
    else:
        pytest.fail("active went on after Cut")


def test_same_inputs_same_rounds():
    rng = random.Random(3)
    scores = [rng.random() for _ in range(30)]
    first = run_recording(active(30, 5, budget=100), lambda i, j: scores[i] - scores[j])
    second = run_recording(active(30, 5, budget=100), lambda i, j: scores[i] - scores[j])
    assert first == second


def test_spends_the_whole_budget_on_a_noisy_judge():
    rng = random.Random(5)
    scores = [rng.random() for _ in range(40)]
    out, rounds = run_recording(active(40, 10, budget=150),
                                lambda i, j: scores[i] - scores[j] + rng.gauss(0, 1))
    assert sum(map(len, rounds)) == 150


@pytest.mark.parametrize("n,k", [(10, 3), (30, 10), (60, 5)])
def test_consistent_judge_gives_the_sorted_top_k(n, k):
    rng = random.Random(n)
    scores = [rng.random() * 10 for _ in range(n)]
    expected = sorted(range(n), key=lambda c: -scores[c])[:k]
    out = drive(active(n, k), lambda i, j: scores[i] - scores[j])
    assert out[:k] == expected


def test_stops_early_once_the_top_k_is_settled():
    scores = list(range(50, 0, -1))  # first-stage order is already right, margins are exact
    out, rounds = run_recording(active(50, 5), lambda i, j: float(scores[i] - scores[j]))
    assert out[:5] == [0, 1, 2, 3, 4]
    assert sum(map(len, rounds)) < 50 * 49 // 2


@pytest.mark.parametrize("bad", [{"budget": -1}, {"round_size": 0}, {"prior": -1.0},
                                 {"spread": 0.0}, {"settle": float("nan")}, {"budget": "x"}])
def test_bad_options_fail_at_construction(bad):
    with pytest.raises(ValueError):
        make_sorter("active", 5, 2, **bad)


# -- active with set questions (active:k=K, the ``size`` option) ------------------------------


def test_active_groups_its_picks_into_pairs_and_sets():
    from sorters import SetQuestion
    from sorters.active import _group

    picks = [(0, 1), (1, 2), (3, 4), (2, 5), (0, 3), (4, 6), (7, 8), (1, 9)]
    # (0,1) opens a group; (1,2) joins it; (3,4) opens one; (2,5) fills the first (size 4); (0,3) links
    # two groups: left; (4,6) joins the second; (7,8) opens a third; (1,9): the first group is full
    assert _group(picks, 4) == [SetQuestion((0, 1, 2, 5)), SetQuestion((3, 4, 6)), (7, 8)]
    assert _group(picks, 2) == [(0, 1), (3, 4), (2, 5), (7, 8)]


def test_set_answers_become_the_winners_comparisons():
    import math

    from sorters import Pick, SetQuestion
    from sorters.active import SET_MARGIN_CAP, _as_comparisons

    questions = [(2, 5), SetQuestion((1, 3, 4)), SetQuestion((0, 6, 7)), SetQuestion((8, 9, 10))]
    answers = [-0.5, Pick(3), Pick(6, (0.2, 0.8, 0.0)), Pick(None)]
    pairs, margins, unanswered = _as_comparisons(questions, answers)
    assert pairs == [(2, 5), (1, 3), (3, 4), (0, 6), (6, 7)]
    assert margins[:3] == [-0.5, -1.0, 1.0]  # no distribution: the winner's margin is 1
    assert margins[3] == pytest.approx(-math.log(0.8 / 0.2)) and margins[4] == SET_MARGIN_CAP
    assert unanswered == [(8, 9), (8, 10), (9, 10)]


def test_active_with_sets_finds_the_best_grades_and_asks_sets():
    """Under the perfect judge active:k=4 returns a top-5 of the best grades, as sorted() by grade
    does (within a grade its order is its own: a set's winner without a distribution is a unit
    margin, blind to the tiny differences of ``ties=off``)."""
    from prp import PerfectOracle, Reranker
    from prp.types import RankRequest

    rng = random.Random(3)
    qrels, requests = {}, []
    for q in range(6):
        qrels[f"q{q}"] = {f"d{i}": rng.choice([0, 0, 0, 1, 2, 3]) for i in range(30)}
        requests.append(RankRequest("x", ["t"] * 30, [f"d{i}" for i in range(30)], f"q{q}"))
    judge = PerfectOracle(qrels, ties=False)
    runs = {b: Reranker(judge, sorter="active:k=4", k=5, batch_size=b).rank_many(requests) for b in (1, 8)}
    for r in runs[1]:
        grades = qrels[r.qid]
        assert [grades[d] for d in r.doc_ids[:5]] == sorted(grades.values(), reverse=True)[:5]
        assert r.cost.prompts_by_shape["set"] > 0 and r.cost.prompts_by_shape["pair"] > 0
    assert [r.doc_ids for r in runs[8]] == [r.doc_ids for r in runs[1]]  # batching changes nothing
    assert [r.cost.prompts for r in runs[8]] == [r.cost.prompts for r in runs[1]]
    cut = Reranker(judge, sorter="active:k=4", k=5, budget=30).rank_many(requests)
    assert all(r.cost.prompts <= 30 for r in cut)
    with pytest.raises(ValueError, match="size must be an integer from 2 to 26"):
        Reranker(judge, sorter="active:k=30", k=5).rank_many(requests)
