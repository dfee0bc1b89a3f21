"""Hand-computed comparison and round counts on small cases.

``scores[i]`` is candidate i's relevance (higher is better, equal ties). Each case says how
its numbers come about; the test checks the comparisons, the rounds and the result.
"""

from __future__ import annotations

import pytest

from sorters import Round, make_sorter


def count(name: str, scores: list[int], k: int, **options: object) -> tuple[int, int, list[int]]:
    """Run a sorter with a consistent judge; return (comparisons, rounds, top-k)."""
    rounds: list[Round] = []
    gen = make_sorter(name, len(scores), k, **options)
    try:
        round_ = next(gen)
        while True:
            rounds.append(round_)
            round_ = gen.send([(scores[i] > scores[j]) - (scores[i] < scores[j]) for i, j in round_])
    except StopIteration as stop:
        top = stop.value[:k]
    return sum(map(len, rounds)), len(rounds), top


BEST_FIRST_5 = [5, 4, 3, 2, 1]
BEST_FIRST_7 = [7, 6, 5, 4, 3, 2, 1]


CASES = [
    # quicksort n=9 k=1, middle pivot = slot (0+9-1)//2 = 4 holds the unique best: its 8
    # comparisons share 1 round; nothing ranks above it, so the left part is empty and the
    # right part starts at slot 1 >= k: no segment left.
    ("quicksort", [0, 1, 2, 3, 9, 5, 6, 7, 8], 1, {}, 8, 1, [4]),
    # quicksort pivot=first on best-first input, k=1: pivot 0 beats the 4 others (1 round);
    # the right part starts at slot 1 >= k.
    ("quicksort", BEST_FIRST_5, 1, {"pivot": "first"}, 4, 1, [0]),
    # ... and with k=5 every depth peels off one candidate: 4+3+2+1 = 10 in 4 rounds.
    ("quicksort", BEST_FIRST_5, 5, {"pivot": "first"}, 10, 4, [0, 1, 2, 3, 4]),
    # quicksort middle, n=7 best-first, k=7: pivot 3 vs 6 others (round 1) splits into
    # [0,3) and [4,7); round 2 pivots 1 and 5, 2 comparisons each: 6+4 = 10 in 2 rounds.
    ("quicksort", BEST_FIRST_7, 7, {}, 10, 2, list(range(7))),
    # ... with k=3 the right part [4,7) starts at slot 4 >= 3 and is dropped: 6+2 = 8.
    ("quicksort", BEST_FIRST_7, 3, {}, 8, 2, [0, 1, 2]),
    # median-of-three, n=7 best-first, k=7: round 1 judges (0,3),(0,6),(3,6) -> median 3;
    # round 2 asks only 1,2,4,5 against 3 (4; 0 and 6 are known); round 3 judges both
    # triples (0,1,2) and (4,5,6) (6); their partitions need no new comparison, so no
    # round: 3+4+6 = 13 in 3 rounds.
    ("quicksort", BEST_FIRST_7, 7, {"pivot": "median-of-three"}, 13, 3, list(range(7))),
    # median-of-three with a size-2 segment uses the middle pivot: 1 comparison.
    ("quicksort", [1, 2], 2, {"pivot": "median-of-three"}, 1, 1, [1, 0]),
    # allpair n=5: C(5,2) = 10 comparisons in 1 round.
    ("allpair", [3, 1, 4, 1, 5], 2, {}, 10, 1, [4, 2]),
    # bubblesort n=5 k=1: one pass j = 4..1, one comparison per round: 4 in 4 rounds.
    ("bubblesort", [1, 5, 2, 4, 3], 1, {"skip_tail": False}, 4, 4, [1]),
    ("bubblesort", [1, 5, 2, 4, 3], 1, {"skip_tail": True}, 4, 4, [1]),
    # bubblesort n=5 k=2 best-first: textbook passes j = 4..1 and 4..2 = 4+3 = 7; with
    # skip_tail the first pass makes no swap, so the sort ends after 4.
    ("bubblesort", BEST_FIRST_5, 2, {"skip_tail": False}, 7, 7, [0, 1]),
    ("bubblesort", BEST_FIRST_5, 2, {"skip_tail": True}, 4, 4, [0, 1]),
    # bubblesort n=5 k=2 best-last: candidate 4 swaps all the way up (deepest swap j=4), so
    # the skip saves nothing: pass 2 starts at min(4, 5) = 4 either way: 4+3 = 7.
    ("bubblesort", [1, 2, 3, 4, 5], 2, {"skip_tail": True}, 7, 7, [4, 3]),
    # bubblesort n=6 k=3, only candidate 1 out of place: pass 1 = 5 comparisons, deepest
    # swap at j=1; pass 2 starts at j = 2 and judges (0,2) with no swap: done, 5+1 = 6.
    # The textbook version does 5+4+3 = 12.
    ("bubblesort", [5, 6, 4, 3, 2, 1], 3, {"skip_tail": True}, 6, 6, [1, 0, 2]),
    ("bubblesort", [5, 6, 4, 3, 2, 1], 3, {"skip_tail": False}, 12, 12, [1, 0, 2]),
    # heapsort n=3 k=1 both, best first: build sifts node 0 with (0,1),(0,2) in 1 round;
    # 0 beats both, and the single extraction needs no sift: 2 in 1 round.
    ("heapsort", [3, 2, 1], 1, {}, 2, 1, [0]),
    # sequential: (1,2) then (1,0): 2 comparisons in 2 rounds.
    ("heapsort", [3, 2, 1], 1, {"sift": "sequential"}, 2, 2, [0]),
    # heapsort n=3 k=3 best-last, both: build (0,1),(0,2) -> both beat 0, round (1,2) -> 2
    # goes up: heap [2,1,0] (3 in 2 rounds). Extraction 1 leaves [0,1]: (0,1) swaps (1 in 1
    # round). Extraction 2 leaves [0]: no children. Total 4 in 3 rounds.
    ("heapsort", [1, 2, 3], 3, {}, 4, 3, [2, 1, 0]),
    # sequential: build (1,2) then (2,0) (2 in 2 rounds); extraction 1: left child only,
    # (1,0) (1 round). Total 3 in 3 rounds.
    ("heapsort", [1, 2, 3], 3, {"sift": "sequential"}, 3, 3, [2, 1, 0]),
    # heapsort n=7 k=2 best-first, both: build sifts nodes 2, 1, 0, each parent beats both
    # children: 3 rounds of 2 = 6. Extraction 1 puts 6 at the root: (6,1),(6,2) both beat
    # it, (1,2) -> 1 up; then (6,3),(6,4), (3,4) -> 3 up; slot 3 is a leaf of the 6-heap:
    # 6 in 4 rounds. No sift after the 2nd extraction. Total 12 in 7 rounds.
    ("heapsort", BEST_FIRST_7, 2, {}, 12, 7, [0, 1]),
    # sequential: build 3 nodes x 2 rounds of 1 = 6; extraction 1: (1,2),(1,6) swap,
    # (3,4),(3,6) swap = 4. Total 10 in 10 rounds.
    ("heapsort", BEST_FIRST_7, 2, {"sift": "sequential"}, 10, 10, [0, 1]),
    # mergesort n=4 k=1: round 1 = (0,1),(2,3); each merge is full after 1 output; round 2
    # = the two winners: 3 in 2 rounds.
    ("mergesort", [2, 4, 1, 3], 1, {}, 3, 2, [1]),
    # mergesort n=4 k=4 best-first: round 1 (0,1),(2,3); root (0,2) -> 0, (1,2) -> 1, then
    # the left run is empty and 2, 3 are copied: 2+2 = 4 in 3 rounds.
    ("mergesort", [4, 3, 2, 1], 4, {}, 4, 3, [0, 1, 2, 3]),
    # interleaved [0,1] vs [2,3] with 0 > 2 > 1 > 3: root needs (0,2),(1,2),(1,3): 2+3 = 5
    # in 4 rounds.
    ("mergesort", [4, 2, 3, 1], 4, {}, 5, 4, [0, 2, 1, 3]),
    # mergesort n=3 k=3 best-first: tree = M(M(0,1), 2), run 2 carried up. Round 1 (0,1);
    # root (0,2) -> 0, (1,2) -> 1, then 2 copied: 3 in 3 rounds.
    ("mergesort", [3, 2, 1], 3, {}, 3, 3, [0, 1, 2]),
    # mergesort n=12 k=3: tree M(M(M01,M23), M(M45,M67)) and M(M89,M10-11) carried to the
    # root. Round 1: six leaf pairs (6). 0..7 are best-first, so M0-3 = (0,2),(1,2) then
    # copy 2, likewise M4-7 = (4,6),(5,6): rounds 2-3. M8-11 interleaves 8 > 10 > 9:
    # (8,10),(9,10),(9,11): rounds 2-4. M0-7 starts in round 4 next to M8-11's last
    # comparison (two levels in one round): (0,4),(1,4),(2,4) in rounds 4-6. Root:
    # (0,8),(1,8),(2,8) in rounds 7-9. Total 6+2+2+3+3+3 = 19 in 9 rounds.
    ("mergesort", [100, 99, 98, 97, 96, 95, 94, 93, 50, 30, 40, 20], 3, {}, 19, 9, [0, 1, 2]),
]


@pytest.mark.parametrize(
    ("name", "scores", "k", "options", "comparisons", "rounds", "top"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_counts(
    name: str,
    scores: list[int],
    k: int,
    options: dict,
    comparisons: int,
    rounds: int,
    top: list[int],
) -> None:
    assert count(name, scores, k, **options) == (comparisons, rounds, top)


@pytest.mark.parametrize("name", ["heapsort", "bubblesort", "quicksort", "mergesort", "allpair",
                                  "tournament"])
@pytest.mark.parametrize("n", [0, 1])
def test_trivial_inputs_ask_nothing(name: str, n: int) -> None:
    assert count(name, [1] * n, 3) == (0, 0, list(range(n)))


def test_mergesort_shares_a_round_across_levels() -> None:
    """Round 4 of the n=12 case above holds (9,11) from M8-11 and (0,4) from M0-7.

    Comparisons within a round follow the merge tree bottom-up, lower levels first.
    """
    scores = [100, 99, 98, 97, 96, 95, 94, 93, 50, 30, 40, 20]
    gen = make_sorter("mergesort", 12, 3)
    seen = [next(gen)]
    for _ in range(3):
        seen.append(gen.send([(scores[i] > scores[j]) - (scores[i] < scores[j]) for i, j in seen[-1]]))
    assert seen[3] == [(9, 11), (0, 4)]
