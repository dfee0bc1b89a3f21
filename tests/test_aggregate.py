"""Orders and aggregation: how judged prompts become a comparison's outcome."""

from __future__ import annotations

import pytest

from prp.aggregate import directions, outcome
from prp.types import Judgment

A, B = Judgment("A", None), Judgment("B", None)


def m(margin):
    return Judgment("A" if margin > 0 else "B" if margin < 0 else None, margin)


@pytest.mark.parametrize("ab, ba, expected", [
    (A, B, 1),   # a preferred in both orders
    (B, A, -1),  # b preferred in both orders
    (A, A, 0),   # position bias: "A" both times -> inconsistent -> tie
    (B, B, 0),
])
def test_consistent(ab, ba, expected):
    assert outcome([(True, ab), (False, ba)], "consistent", 0.0) == expected


def test_margin_cancels_position_bias():
    # Both prompts answer "A", but a's margin when first (3.0) beats b's when first (1.0):
    # a's total = 3.0 - 1.0 = 2.0 > 0 -> a wins; consistent calls it a tie.
    answers = [(True, m(3.0)), (False, m(1.0))]
    assert outcome(answers, "margin", 0.0) == 1
    assert outcome(answers, "auto", 0.0) == 1
    assert outcome(answers, "consistent", 0.0) == 0
    assert outcome(answers, "margin", 2.0) == 0  # inside the tie band
    assert outcome([(True, m(1.0)), (False, m(3.0))], "margin", 0.0) == -1


def test_single_prompt_either_direction():
    assert outcome([(True, m(0.5))], "margin", 0.0) == 1
    assert outcome([(False, m(0.5))], "margin", 0.0) == -1  # b shown first and preferred
    assert outcome([(False, A)], "consistent", 0.0) == -1
    assert outcome([(True, Judgment(None, 0.0))], "auto", 0.0) == 0


def test_unparsed_is_a_tie_never_a_preference():
    bad = Judgment(None, None, parsed=False)
    assert outcome([(True, m(5.0)), (False, bad)], "auto", 0.0) == 0
    assert outcome([(True, bad)], "consistent", 0.0) == 0


def test_directions():
    a, b = b"a" * 16, b"b" * 16
    assert directions("both", a, b, 0) == (True, False)
    assert directions("one", a, b, 0) == (True,)
    coins = {directions("random", bytes([i]) * 16, b, 0) for i in range(64)}
    assert coins == {(True,), (False,)}  # both directions occur
    assert directions("random", a, b, 7) == directions("random", a, b, 7)  # seeded, repeatable
