"""Fitting the noisy simulated judge to a real one: calibrate the simulator on measured judgments.

:class:`~prp.oracles.simulated.NoisyOracle` models a judge's margin for a prompt showing passage
``a`` first and ``b`` second as ``scale * (grade(a) - grade(b)) + bias + N(0, noise^2)``. Here we
sample judged DL19 pairs (stratified by grade gap, each asked in both orders), have a real
backend judge them (:func:`prp.judging.judge_all`: through the judgment cache, so judgments
already paid for are reused), and
fit ``scale`` and ``bias`` by least squares and ``noise`` as the residual standard deviation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prp.types import Judgment, Prompt, RankRequest


@dataclass(frozen=True)
class Sample:
    qid: str
    first_id: str
    second_id: str
    first_grade: int
    second_grade: int
    margin: float

    @property
    def gap(self) -> int:
        return self.first_grade - self.second_grade


@dataclass(frozen=True)
class NoisyFit:
    scale: float
    bias: float
    noise: float
    samples: int
    unparsed: int
    pair_accuracy: float  # grade>=2 vs grade 0 pairs ordered right by the summed margin
    strong_pairs: int

    def spec(self, seed: int = 0) -> str:
        return f"noisy:scale={self.scale:.4g},bias={self.bias:.4g},noise={self.noise:.4g},seed={seed}"


def sample_pairs(requests: Sequence[RankRequest], qrels: Mapping[str, Mapping[str, int]], count: int,
                 seed: int = 0) -> list[tuple[RankRequest, int, int]]:
    """``count`` candidate pairs of judged passages, about equally many per grade gap 0..3."""
    rng = random.Random(seed)
    buckets: dict[int, list[tuple[RankRequest, int, int]]] = {gap: [] for gap in range(4)}
    for req in requests:
        grades = qrels.get(req.qid, {})
        judged = [i for i, d in enumerate(req.doc_ids) if d in grades]
        for x, i in enumerate(judged):
            for j in judged[x + 1:]:
                gap = abs(grades[req.doc_ids[i]] - grades[req.doc_ids[j]])
                buckets[gap].append((req, i, j))
    chosen: list[tuple[RankRequest, int, int]] = []
    open_buckets = [gap for gap in range(4) if buckets[gap]]
    for gap in open_buckets:
        rng.shuffle(buckets[gap])
    while len(chosen) < count and open_buckets:
        for gap in list(open_buckets):
            if len(chosen) == count:
                break
            if buckets[gap]:
                chosen.append(buckets[gap].pop())
            else:
                open_buckets.remove(gap)
    return chosen


def both_orders(pairs: Sequence[tuple[RankRequest, int, int]]) -> list[Prompt]:
    prompts = []
    for req, i, j in pairs:
        qid = req.qid or req.query
        for a, b in ((i, j), (j, i)):
            prompts.append(Prompt(qid, req.query, req.doc_ids[a], req.docs[a], req.doc_ids[b], req.docs[b]))
    return prompts


def fit_noisy(prompts: Sequence[Prompt], judgments: Sequence[Judgment],
              qrels: Mapping[str, Mapping[str, int]]) -> tuple[NoisyFit, list[Sample]]:
    """Least-squares fit of the noisy judge to judged prompts (unparsed ones left out)."""
    samples = []
    for p, j in zip(prompts, judgments, strict=True):
        if j.parsed and j.margin is not None:
            grades = qrels.get(p.qid, {})
            samples.append(Sample(p.qid, p.first_id, p.second_id, grades.get(p.first_id, 0),
                                  grades.get(p.second_id, 0), j.margin))
    if len(samples) < 3:
        raise ValueError(f"need at least 3 judged prompts with margins to fit, got {len(samples)}")
    import numpy as np  # here, not with the module: the command line imports it

    x = np.array([[s.gap, 1.0] for s in samples])
    y = np.array([s.margin for s in samples])
    (scale, bias), *_ = np.linalg.lstsq(x, y, rcond=None)
    noise = float(np.sqrt(np.sum((y - x @ np.array([scale, bias])) ** 2) / max(len(y) - 2, 1)))
    right, strong = _strong_pair_accuracy(samples)
    fit = NoisyFit(float(scale), float(bias), noise, len(samples), len(prompts) - len(samples),
                   right / strong if strong else float("nan"), strong)
    return fit, samples


def _strong_pair_accuracy(samples: Sequence[Sample]) -> tuple[int, int]:
    """Pairs of a grade>=2 and a grade-0 passage asked in both orders, ordered right by margin."""
    by_pair: dict[tuple[str, frozenset[str]], list[Sample]] = {}
    for s in samples:
        by_pair.setdefault((s.qid, frozenset((s.first_id, s.second_id))), []).append(s)
    right = strong = 0
    for both in by_pair.values():
        if len(both) != 2:
            continue
        one = both[0]
        if sorted((one.first_grade, one.second_grade))[0] != 0 or max(one.first_grade, one.second_grade) < 2:
            continue
        strong += 1
        total = both[0].margin - both[1].margin  # the first-shown passage's margin over both orders
        right += (total > 0) == (one.gap > 0)
    return right, strong
