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

from prp.oracles.replay import shaped_answer_ok
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
    """The fitted set choice model: the bias of each slot (the last fixed at 0) and the noise of a
    set answer (the Gumbel scale, in the pairwise fit's units: ``scale`` per grade), the answers
    used, and how often the first slot won against how often the fitted model expects it."""

    slot_bias: tuple[float, ...]
    set_noise: float
    answers: int
    first_slot_share: float
    expected_first_slot_share: float

    def option(self) -> str:
        """The ``slot_bias=...,set_noise=...`` options of ``--judge noisy:...``."""
        biases = "/".join(f"{b:.4g}" for b in self.slot_bias)
        return f"slot_bias={biases},set_noise={self.set_noise:.4g}"


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
            if not shaped_answer_ok(row):
                raise ValueError("the winner or the probabilities do not fit the passages shown")
            probs = row.get("probs")
            out.append(SetAnswer(str(row["qid"]), tuple(str(i) for i in row["ids"]), row["order"][0],
                                 None if probs is None else tuple(float(p) for p in probs)))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise ValueError(f"{where}:{number}: not a set answer ({type(exc).__name__}: {exc})") from exc
    return out


def fit_slot_bias(answers: Sequence[SetAnswer], qrels: Mapping[str, Mapping[str, int]], scale: float,
                  noise: float | None = None) -> SlotFit:
    """The noisy judge's set choice model, fitted to a real judge's set answers by maximum
    likelihood.

    The model (:meth:`NoisyOracle.utilities`): the passage in slot ``s`` wins with probability
    softmax over the slots of ``(scale * grade + slot_bias[s]) / set_noise`` (Gumbel noise of
    scale ``set_noise``). ``scale`` comes from the pairwise fit and sets the units; ``set_noise``
    (how sharply sets answer, which need not be the pairs' ``noise``) and the slot biases are
    fitted, or with ``noise`` given only the biases (``set_noise`` = ``noise``). The target of each
    answer is the judge's distribution over the slots when it gave one, else its winner. Only
    differences between slots are identified: the last slot's bias is 0. An unjudged passage has
    grade 0. ValueError with fewer than 3 answers, or when no answer's passages differ in grade
    (``set_noise`` cannot be fitted: give ``noise``)."""
    if len(answers) < 3:
        raise ValueError(f"need at least 3 set answers to fit the slot bias, got {len(answers)}")
    if not scale > 0 or (noise is not None and not noise > 0):
        raise ValueError(f"the set fit needs scale > 0 and noise > 0 or None, got {scale!r}, {noise!r}")
    import numpy as np  # here, not with the module: the command line imports it

    k = max(len(a.ids) for a in answers)
    grades = np.zeros((len(answers), k))
    shown = np.zeros((len(answers), k), dtype=bool)
    target = np.zeros((len(answers), k))
    for row, a in enumerate(answers):
        judged = qrels.get(a.qid, {})
        grades[row, : len(a.ids)] = [judged.get(d, 0) for d in a.ids]
        shown[row, : len(a.ids)] = True
        if a.probs is not None:
            target[row, : len(a.ids)] = a.probs
        else:
            target[row, a.winner] = 1.0
    fit_noise = noise is None
    if fit_noise and not any(np.ptp(grades[r][shown[r]]) > 0 for r in range(len(answers))):
        raise ValueError("no set answer shows passages of different grades: set_noise cannot be fitted")
    # features of each slot: its grade (when set_noise is fitted) and a one-hot of the slot (all but the last)
    slots = np.broadcast_to(np.eye(k)[:, : k - 1], (len(answers), k, k - 1))
    feats = np.concatenate([grades[..., None], slots], axis=2) if fit_noise else slots
    fixed = np.zeros_like(grades) if fit_noise else scale * grades / noise
    theta = np.zeros(feats.shape[2])
    if fit_noise:
        theta[0] = scale  # the grade's coefficient scale / set_noise: start at set_noise 1

    def model(t: np.ndarray) -> tuple[np.ndarray, float]:
        z = np.where(shown, fixed + feats @ t, -np.inf)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return p, float(np.sum(target[shown] * np.log(np.maximum(p[shown], 1e-300))))

    p, loglik = model(theta)
    weight = target.sum(axis=1)
    for _ in range(100):  # Newton's method (the log-likelihood is concave)
        residual = target - p * weight[:, None]
        grad = np.einsum("rs,rsf->f", residual, feats)
        mean = np.einsum("rs,rsf->rf", p, feats)
        hess = (np.einsum("r,rs,rsf,rsg->fg", weight, p, feats, feats)
                - np.einsum("r,rf,rg->fg", weight, mean, mean))
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(theta)), grad)
        for _ in range(30):  # halve the step until the likelihood does not fall
            trial_p, trial = model(theta + step)
            if trial >= loglik - 1e-12:
                break
            step /= 2
        theta, p, gain, loglik = theta + step, trial_p, trial - loglik, trial
        if gain < 1e-10:
            break
    set_noise = scale / theta[0] if fit_noise else noise
    if not (set_noise > 0 and np.isfinite(set_noise)):  # type: ignore[operator]
        raise ValueError("the set answers do not prefer higher grades: set_noise cannot be fitted")
    biases = (theta[1:] if fit_noise else theta) * set_noise
    first = float(target[:, 0].sum() / weight.sum())
    return SlotFit((*(float(b) for b in biases), 0.0), float(set_noise), len(answers), first,
                   float((p[:, 0] * weight).sum() / weight.sum()))


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
