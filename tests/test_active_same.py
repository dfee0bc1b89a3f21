"""The active ranker's cheaper model takes today's decisions: the same rounds (every pair, in
order), the same ranking and so the same counts as the full re-solve it replaced (kept as
``tests/active_reference.py``), on fixed seeds, over the sorter alone and through the Reranker
on DL19 with the perfect and the noisy judge."""

from __future__ import annotations

import random

import active_reference
import pytest

import sorters
from prp import NoisyOracle, PerfectOracle, Reranker
from prp.data import load_dataset
from sorters import active


def record(gen, answer):
    """Drive ``gen`` with ``answer(i, j) -> float``; (its result, every round it asked)."""
    rounds = []
    try:
        asks = next(gen)
        while True:
            rounds.append(list(asks))
            asks = gen.send([answer(i, j) for i, j in asks])
    except StopIteration as stop:
        return stop.value, rounds


def judge(seed: int, n: int, noise: float, signs: bool):
    """A judge on random scores with Gaussian noise (its own seeded stream), margins or signs."""
    scores = [random.Random(seed).random() * 5 for _ in range(n)]
    rng = random.Random(seed + 1)

    def answer(i: int, j: int) -> float:
        margin = scores[i] - scores[j] + rng.gauss(0, noise)
        return float((margin > 0) - (margin < 0)) if signs else margin
    return answer


CASES = [  # n, k, budget, round_size, noise, signs
    (2, 1, None, 10, 0.0, False), (12, 3, None, 1, 0.0, False), (20, 5, 60, 4, 1.0, False),
    (30, 10, None, 10, 0.5, True), (40, 1, 150, 10, 2.0, False), (50, 10, 200, 10, 1.0, False),
    (60, 30, 120, 7, 0.3, True), (100, 10, 150, 10, 1.0, False), (100, 100, 80, 10, 0.0, False),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n, k, budget, round_size, noise, signs", CASES)
def test_same_rounds_and_ranking_as_the_full_resolve(seed, n, k, budget, round_size, noise, signs):
    options = {"budget": budget, "round_size": round_size}
    new = record(active(n, k, **options), judge(seed, n, noise, signs))
    old = record(active_reference.active(n, k, **options), judge(seed, n, noise, signs))
    assert new == old
    assert sorted(new[0]) == list(range(n))


def test_options_change_decisions_alike():
    for options in ({"prior": 0.0}, {"spread": 0.3}, {"settle": 0.0}, {"settle": 0.05}, {"prior": 2.0}):
        new = record(active(25, 5, budget=90, **options), judge(7, 25, 0.7, False))
        old = record(active_reference.active(25, 5, budget=90, **options), judge(7, 25, 0.7, False))
        assert new == old, options


@pytest.mark.parametrize("oracle", ["perfect", "noisy"])
def test_same_rankings_and_counts_on_dl19(dl19_dir, monkeypatch, oracle):
    requests, qrels = load_dataset(dl19_dir, depth=100)
    requests = requests[:6]

    def rank() -> list:
        judge = (PerfectOracle(qrels) if oracle == "perfect"
                 else NoisyOracle(qrels, bias=1.0, noise=1.0, seed=0))
        results = Reranker(judge, sorter="active", k=10, budget=100, batch_size=8).rank_many(requests)
        return [(r.qid, r.doc_ids, r.cost.comparisons, r.cost.prompts, r.cost.inferences, r.cost.rounds)
                for r in results]

    new = rank()
    monkeypatch.setitem(sorters.SORTERS, "active", active_reference.active)
    assert rank() == new
