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

from prp.types import Choice, Judgment, Prompt, RankRequest, ShapedPrompt


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


# -- set questions: the slot bias ----------------------------------------------------------------

@dataclass(frozen=True)
class SetAnswer:
    """One ``set`` answer of a real judge: the passages in the order shown, the winner's slot and
    the judge's distribution over the slots when it gave one (label logits)."""

    qid: str
    ids: tuple[str, ...]
    winner: int
    probs: tuple[float, ...] | None = None


@dataclass(frozen=True)
class SlotFit:
    """The fitted bias of each slot (the last fixed at 0), the answers used, and how often the
    winner was shown in each slot against how often the fitted model expects it."""

    slot_bias: tuple[float, ...]
    answers: int
    first_slot_share: float
    expected_first_slot_share: float

    def option(self) -> str:
        """The ``slot_bias=`` option of ``--judge noisy:...``."""
        return "slot_bias=" + "/".join(f"{b:.4g}" for b in self.slot_bias)


def read_set_answers(lines: Sequence[str], where: str = "answers") -> list[SetAnswer]:
    """The parsed ``set`` answers among JSON lines ``{"qid", "shape", "ids", "order", "probs",
    "parsed"}`` (as ``bench/shapes_real.py --answers`` writes them); other shapes and unparsed
    answers are skipped. A line that is not such an object is a ValueError naming its line."""
    import json

    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row.get("shape") != "set" or not row.get("parsed", True) or not row.get("order"):
                continue
            ids = tuple(str(i) for i in row["ids"])
            winner = int(row["order"][0])
            probs = row.get("probs")
            probs = None if probs is None else tuple(float(p) for p in probs)
            if not 0 <= winner < len(ids) or len(ids) < 2 or (probs is not None and len(probs) != len(ids)):
                raise ValueError("the winner or the probabilities do not fit the passages shown")
            out.append(SetAnswer(str(row["qid"]), ids, winner, probs))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise ValueError(f"{where}:{number}: not a set answer ({type(exc).__name__}: {exc})") from exc
    return out


def fit_slot_bias(answers: Sequence[SetAnswer], qrels: Mapping[str, Mapping[str, int]], scale: float,
                  noise: float) -> SlotFit:
    """The slot bias of the noisy judge's set choice model, fitted to a real judge's set answers
    by maximum likelihood.

    The model (:meth:`NoisyOracle.utilities`): the passage in slot ``s`` wins with probability
    softmax over the slots of ``(scale * grade + slot_bias[s]) / noise`` (Gumbel noise of scale
    ``noise``). ``scale`` and ``noise`` come from the pairwise fit; the target of each answer is
    the judge's distribution over the slots when it gave one, else its winner. Only differences
    between slots are identified: the last slot's bias is 0. An unjudged passage has grade 0."""
    if len(answers) < 3:
        raise ValueError(f"need at least 3 set answers to fit the slot bias, got {len(answers)}")
    if not noise > 0:
        raise ValueError(f"the slot bias needs a noise > 0 (the pairwise fit's), got {noise!r}")
    import numpy as np  # here, not with the module: the command line imports it

    k = max(len(a.ids) for a in answers)
    signal = np.full((len(answers), k), -np.inf)
    target = np.zeros((len(answers), k))
    for row, a in enumerate(answers):
        grades = qrels.get(a.qid, {})
        signal[row, : len(a.ids)] = [scale * grades.get(d, 0) for d in a.ids]
        if a.probs is not None:
            target[row, : len(a.ids)] = a.probs
        else:
            target[row, a.winner] = 1.0
    shown = np.isfinite(signal)
    bias = np.zeros(k)

    def model(b: np.ndarray) -> tuple[np.ndarray, float]:
        z = np.where(shown, (signal + b) / noise, -np.inf)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return p, float(np.sum(target[shown] * np.log(np.maximum(p[shown], 1e-300))))

    p, loglik = model(bias)
    for _ in range(100):  # Newton's method on the free slots (the last is fixed at 0)
        grad = ((target - p).sum(axis=0) / noise)[: k - 1]
        hess = np.zeros((k, k))
        for row in range(len(answers)):
            pr = p[row]
            hess += (np.diag(pr) - np.outer(pr, pr)) * target[row].sum()
        hess = hess[: k - 1, : k - 1] / noise**2 + 1e-9 * np.eye(k - 1)
        step = np.concatenate([np.linalg.solve(hess, grad), [0.0]])
        for _ in range(30):  # halve the step until the likelihood does not fall
            trial_p, trial = model(bias + step)
            if trial >= loglik - 1e-12:
                break
            step /= 2
        bias, p, gain, loglik = bias + step, trial_p, trial - loglik, trial
        if gain < 1e-10:
            break
    first = sum(target[:, 0]) / len(answers)
    return SlotFit(tuple(float(b) for b in bias), len(answers), float(first), float(p[:, 0].mean()))


def sample_sets(requests: Sequence[RankRequest], qrels: Mapping[str, Mapping[str, int]], count: int,
                size: int, template: str, seed: int = 0) -> list[ShapedPrompt]:
    """``count`` set prompts of ``size`` judged candidates each: a query drawn at random among those
    with enough judged candidates, its candidates drawn at random and shown in a random order (so
    that every grade meets every slot)."""
    rng = random.Random(seed)
    usable = []
    for req in requests:
        grades = qrels.get(req.qid, {})
        judged = [i for i, d in enumerate(req.doc_ids) if d in grades]
        if len(judged) >= size:
            usable.append((req, judged))
    if not usable:
        raise ValueError(f"no query has {size} judged candidates to show as a set")
    out = []
    for _ in range(count):
        req, judged = rng.choice(usable)
        shown = rng.sample(judged, size)
        out.append(ShapedPrompt(req.qid or req.query, req.query, "set", template,
                                tuple(req.doc_ids[i] for i in shown), tuple(req.docs[i] for i in shown)))
    return out


def set_answers(prompts: Sequence[ShapedPrompt], choices: Sequence[Choice]) -> list[SetAnswer]:
    """The parsed answers to set ``prompts`` as :class:`SetAnswer` (unparsed ones left out)."""
    return [SetAnswer(p.qid, p.ids, c.order[0], c.probs) for p, c in zip(prompts, choices, strict=True)
            if type(c) is Choice and c.parsed and c.order]
