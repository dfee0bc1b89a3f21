"""Simulated judges: perfect and noisy (with position bias), and their parsing."""

from __future__ import annotations

import asyncio

import pytest

from prp import NoisyOracle, PerfectOracle, Reranker
from prp.oracles import make_judge
from prp.types import Prompt

QRELS = {"q": {"d0": 0, "d1": 1, "d2": 2, "d3": 3, "d4": 3}}
IDS = ["d0", "d1", "d2", "d3", "d4", "d5"]  # d5 is unjudged: grade 0


def prompt(first, second, qid="q"):
    return Prompt(qid, "query", first, "text " + first, second, "text " + second)


def judge(oracle, prompts):
    return asyncio.run(oracle.judge(prompts)).judgments


def test_perfect_oracle_grades_and_ties():
    p = PerfectOracle(QRELS)
    j = judge(p, [prompt("d3", "d1"), prompt("d0", "d5"), prompt("d3", "d4")])
    assert (j[0].preferred, j[0].margin) == ("A", 2.0)
    assert (j[1].preferred, j[1].margin) == (None, 0.0)  # unjudged = 0 = equal grades
    assert j[2].preferred is None


def test_noisy_oracle_is_a_seeded_function_of_the_prompt():
    noisy = NoisyOracle(QRELS, bias=1.5, noise=1.0, seed=3)
    prompts = [prompt(a, b) for a in IDS for b in IDS if a != b]
    one_by_one = [judge(noisy, [p])[0] for p in prompts]
    assert judge(noisy, prompts) == one_by_one
    other = judge(NoisyOracle(QRELS, bias=1.5, noise=1.0, seed=4), prompts)
    assert other != one_by_one
    margins = [j.margin for j in one_by_one]
    assert abs(sum(margins) / len(margins) - 1.5) < 0.5  # grade gaps cancel over both orders


def test_position_bias_hurts_consistent_but_not_margin():
    # Bias 1.5 > every |scale * grade gap| of 1, so each prompt with a grade gap of 1 answers "A":
    # `consistent` sees a tie and keeps first-stage order; `margin` cancels the bias.
    qrels = {"q": {f"d{i}": i % 2 for i in range(10)}}
    ids = [f"d{i}" for i in range(10)]
    oracle = NoisyOracle(qrels, bias=1.5, noise=0.0)
    by_margin = Reranker(oracle, sorter="allpair", k=10, aggregate="margin").rank("q", ids, ids, qid="q")
    by_consistent = Reranker(oracle, sorter="allpair", k=10, aggregate="consistent").rank(
        "q", ids, ids, qid="q")
    assert by_margin.doc_ids == ["d1", "d3", "d5", "d7", "d9", "d0", "d2", "d4", "d6", "d8"]
    assert by_consistent.doc_ids == ids


def test_make_judge_builds_simulated_judges():
    assert isinstance(make_judge("perfect", qrels=QRELS), PerfectOracle)
    noisy = make_judge("noisy:bias=1.5,noise=1.0,seed=0", qrels=QRELS)
    assert (noisy.bias, noisy.noise, noisy.seed, noisy.scale) == (1.5, 1.0, 0, 1.0)
    with pytest.raises(ValueError, match="known: perfect, noisy"):
        make_judge("oracle9000", qrels=QRELS)
    with pytest.raises(ValueError, match="bais"):
        make_judge("noisy:bais=1", qrels=QRELS)
    with pytest.raises(ValueError, match="key=value"):
        make_judge("noisy:bias", qrels=QRELS)
    with pytest.raises(ValueError, match="noise"):
        NoisyOracle(QRELS, noise=-1)
