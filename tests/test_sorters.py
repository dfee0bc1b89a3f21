"""Correctness and protocol tests for every sorter and option variant in ``sorters``."""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorters import (
    LOSS,
    SORTERS,
    TIE,
    WIN,
    Outcome,
    Round,
    active,
    allpair,
    bubblesort,
    drive,
    get_sorter,
    heapsort,
    listwise,
    make_sorter,
    mergesort,
    quicksort,
    setwise,
    tournament,
)

Compare = Callable[[int, int], Outcome]

VARIANTS: list[tuple[str, dict]] = [
    ("heapsort", {"sift": "both"}),
    ("heapsort", {"sift": "sequential"}),
    ("bubblesort", {"skip_tail": True}),
    ("bubblesort", {"skip_tail": False}),
    ("quicksort", {"pivot": "middle"}),
    ("quicksort", {"pivot": "first"}),
    ("quicksort", {"pivot": "random", "seed": 0}),
    ("quicksort", {"pivot": "random", "seed": 7}),
    ("quicksort", {"pivot": "median-of-three"}),
    ("mergesort", {}),
    ("allpair", {}),
    ("tournament", {}),
    ("tournament", {"refill": "knockout"}),
    ("tournament", {"bracket": "contiguous", "ties": "ask"}),
]
IDS = [name + "".join(f"-{v}" for v in opts.values()) for name, opts in VARIANTS]
variants = pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
FAST = settings(max_examples=100, deadline=None)


def run(name: str, n: int, k: int, options: dict, compare: Compare) -> tuple[list[int], list[Round]]:
    """Drive a sorter, checking every round; return the permutation and the rounds."""
    rounds: list[Round] = []

    def checked(round_: Round) -> list[Outcome]:
        assert round_, "empty round"
        for i, j in round_:
            assert 0 <= i < n and 0 <= j < n and i != j, (i, j)
        assert len({frozenset(p) for p in round_}) == len(round_), "pair repeated in a round"
        rounds.append(list(round_))
        return [compare(i, j) for i, j in round_]

    gen = make_sorter(name, n, k, **options)
    try:
        round_ = next(gen)
        while True:
            round_ = gen.send(checked(round_))
    except StopIteration as stop:
        result = stop.value
    assert sorted(result) == list(range(n))
    return result, rounds


def by_score(scores: list[int]) -> Compare:
    """Higher score is more relevant; equal scores tie."""
    return lambda i, j: (scores[i] > scores[j]) - (scores[i] < scores[j])


def expected(scores: list[int], k: int) -> list[int]:
    top = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
    return top + sorted(set(range(len(scores))) - set(top))


def check_sorted(name: str, options: dict, scores: list[int], k: int) -> None:
    result, _ = run(name, len(scores), k, options, by_score(scores))
    assert result == expected(scores, k)


@st.composite
def scored(draw: st.DrawFn, high: int) -> tuple[list[int], int]:
    scores = draw(st.lists(st.integers(0, high), max_size=60))
    shape = draw(st.sampled_from(["as-is", "ascending", "descending"]))
    if shape != "as-is":
        scores.sort(reverse=shape == "descending")
    return scores, draw(st.integers(1, len(scores) + 3))


@variants
@FAST
@given(case=scored(high=10_000))
def test_random_scores_give_stable_top_k(name: str, options: dict, case: tuple) -> None:
    check_sorted(name, options, *case)


@variants
@FAST
@given(case=scored(high=3))
def test_many_duplicates_give_stable_top_k(name: str, options: dict, case: tuple) -> None:
    check_sorted(name, options, *case)


SHAPES: dict[str, Callable[[int], list[int]]] = {
    "sorted": lambda n: list(range(n, 0, -1)),  # best first
    "reversed": lambda n: list(range(n)),  # best last
    "all-equal": lambda n: [5] * n,
    "duplicates": lambda n: [(i * 7) % 4 for i in range(n)],
    "zigzag": lambda n: [i if i % 2 else n - i for i in range(n)],
}


@variants
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 16, 33, 60])
def test_edge_cases(name: str, options: dict, shape: str, n: int) -> None:
    for k in sorted({1, 2, 3, max(n // 2, 1), max(n - 1, 1), max(n, 1), n + 5}):
        check_sorted(name, options, SHAPES[shape](n), k)


@variants
@FAST
@given(n=st.integers(0, 60), k=st.integers(1, 65), seed=st.integers(0, 2**32))
def test_inconsistent_judge_terminates(name: str, options: dict, n: int, k: int, seed: int) -> None:
    rng = random.Random(seed)
    run(name, n, k, options, lambda i, j: rng.choice((WIN, TIE, LOSS)))


def pair_table(n: int, seed: int, antisymmetric: bool) -> Compare:
    """A fixed random outcome per ordered pair (a tournament when antisymmetric)."""
    rng = random.Random(seed)
    table = {}
    for i in range(n):
        for j in range(i + 1, n):
            table[(i, j)] = rng.choice((WIN, TIE, LOSS))
            table[(j, i)] = -table[(i, j)] if antisymmetric else rng.choice((WIN, TIE, LOSS))
    return lambda i, j: table[(i, j)]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 40),
    k=st.integers(1, 45),
    seed=st.integers(0, 2**32),
    antisymmetric=st.booleans(),
)
def test_bubblesort_skip_tail_changes_nothing(n: int, k: int, seed: int, antisymmetric: bool) -> None:
    compare = pair_table(n, seed, antisymmetric)
    skipped, short = run("bubblesort", n, k, {"skip_tail": True}, compare)
    full, long = run("bubblesort", n, k, {"skip_tail": False}, compare)
    assert skipped == full
    assert len(short) <= len(long)
    assert all(len(r) == 1 for r in short + long)


@pytest.mark.parametrize("name", ["mergesort", "allpair", "quicksort", "tournament"])
@FAST
@given(scores=st.lists(st.integers(0, 5), max_size=40), k=st.integers(1, 40))
def test_no_pair_asked_twice(name: str, scores: list[int], k: int) -> None:
    _, rounds = run(name, len(scores), k, {}, by_score(scores))
    asked = [frozenset(p) for r in rounds for p in r]
    assert len(asked) == len(set(asked))


@FAST
@given(scores=st.lists(st.integers(0, 5), max_size=40), k=st.integers(1, 40))
def test_median_of_three_reuses_known_outcomes(scores: list[int], k: int) -> None:
    _, rounds = run("quicksort", len(scores), k, {"pivot": "median-of-three"}, by_score(scores))
    for first, second in pairwise(rounds):
        assert not {frozenset(p) for p in first} & {frozenset(p) for p in second}


def test_round_shapes() -> None:
    scores = [(i * 37) % 23 for i in range(30)]
    _, rounds = run("heapsort", 30, 5, {"sift": "sequential"}, by_score(scores))
    assert all(len(r) == 1 for r in rounds)
    _, rounds = run("heapsort", 30, 5, {"sift": "both"}, by_score(scores))
    assert all(len(r) <= 2 for r in rounds)
    _, rounds = run("allpair", 30, 5, {}, by_score(scores))
    assert [len(r) for r in rounds] == [435]


def test_drive_and_direct_call_agree() -> None:
    scores = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    for name, options in VARIANTS:
        direct = drive(SORTERS[name](11, 4, **options), by_score(scores))
        assert direct == expected(scores, 4)


def test_registry() -> None:
    assert list(SORTERS) == ["heapsort", "bubblesort", "quicksort", "mergesort", "allpair", "tournament",
                             "active", "setwise", "listwise"]
    assert [get_sorter(n) for n in SORTERS] == [heapsort, bubblesort, quicksort, mergesort, allpair,
                                                 tournament, active, setwise, listwise]


def test_unknown_sorter_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown sorter 'shellsort'") as err:
        get_sorter("shellsort")
    assert "heapsort, bubblesort, quicksort, mergesort, allpair" in str(err.value)
    with pytest.raises(ValueError, match="known sorters"):
        make_sorter("shellsort", 5, 2)


@pytest.mark.parametrize("name", list(SORTERS))
@pytest.mark.parametrize(
    ("n", "k"), [(5, 0), (5, -1), (-1, 2), (5, 1.5), (2.0, 1), ("5", 1), (5, True), (5, None)]
)
def test_bad_n_or_k(name: str, n: object, k: object) -> None:
    with pytest.raises(ValueError):
        make_sorter(name, n, k)
    with pytest.raises(ValueError):
        drive(SORTERS[name](n, k), lambda i, j: TIE)


@pytest.mark.parametrize("name", list(SORTERS))
def test_unknown_option(name: str) -> None:
    with pytest.raises(ValueError, match=f"sorter '{name}'.*unknown option.*colour") as err:
        make_sorter(name, 5, 2, colour="red")
    assert "accepted options" in str(err.value)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("heapsort", {"sift": "up"}, "both, sequential"),
        ("quicksort", {"pivot": "last"}, "middle, first, random, median-of-three"),
        ("tournament", {"bracket": "swiss"}, "seeded, contiguous"),
        ("tournament", {"refill": "heap"}, "replay, knockout"),
        ("tournament", {"ties": "coin"}, "infer, ask"),
    ],
)
def test_bad_option_value(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_sorter(name, 5, 2, **options)  # checked right away, even before next()
    with pytest.raises(ValueError, match=message):
        drive(SORTERS[name](0, 1, **options), lambda i, j: TIE)


def test_heapsort_accepted_options_are_named() -> None:
    with pytest.raises(ValueError, match="accepted options: sift"):
        make_sorter("heapsort", 5, 2, pivot="middle")
    with pytest.raises(ValueError, match="accepted options: none"):
        make_sorter("allpair", 5, 2, seed=1)
