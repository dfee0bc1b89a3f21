"""Simulated judges: no LLM, for tests, the simulator and cost planning.

* :class:`ScoresOracle` - any numeric score per doc id: margin = score(A) - score(B); in a set
  or list, utility = score.
* :class:`PerfectOracle` - graded qrels (unjudged = 0): margin = grade(A) - grade(B); equal
  grades tie.
* :class:`NoisyOracle` - a judge that errs like a small LLM: margin = scale * (grade(A) -
  grade(B)) + bias + Gaussian noise, the bias favouring whichever passage is shown first. The
  noise is a seeded function of (seed, qid, first id, second id), so the same prompt always
  gets the same answer, whatever the batching.

Rules:

* **A bare noisy judge is noisy.** Give none of ``scale``, ``bias``, ``noise``
  (``NoisyOracle(qrels)``, ``--judge noisy``) and the judge is :data:`FITTED_QWEN_1_5B`: scale
  0.2377, bias 1.523, noise 0.7707, the fit of ``prp calibrate-oracle`` to the packaged llama.cpp
  judge qwen2.5-coder-1.5b on DL19 (96 prompts, ``bench/results/qwen1.5b-oracle-fit.txt``).
  Give any of the three and the ones left out are scale 1, bias 0, noise 0 - but a judge left
  with bias 0 and noise 0 that way has no errors (at a positive scale it ranks exactly like
  :class:`PerfectOracle`), so it is a ValueError (``bias=0, noise=0`` given explicitly is
  accepted). ``seed`` (default 0) does not count: ``noisy:seed=1`` is the fitted judge with
  another seed.
* **No judgments, no silence.** A query none of whose candidates is in the qrels (its qid is
  not there, or none of its doc ids is) gets no grades from a perfect or noisy judge: the
  perfect one sees only ties and keeps its input order, the noisy one orders it by its bias and
  noise alone. :func:`no_judgments` finds
  such queries (the one place that decides it); the callers say so once per call: the library
  (:meth:`prp.Reranker.rank_many`) with a :class:`NoJudgmentsWarning`, ``prp rerank`` / ``bench``
  / ``simulate`` with one ``warning:`` line on stderr, ``prp serve`` with a ``warnings`` list in
  the response. A query that has some judged candidates does not warn: its unjudged ones are
  grade 0, as in trec_eval (DL19's BM25 top-100 holds 2,043 unjudged of 4,300).

``delay`` (seconds, default 0) makes each inference take that long (yielding to the event loop),
standing in for an LLM's latency in load tests of the service.

Simulated judges report estimated prompt tokens (4 characters a token, passages truncated to
``passage_tokens``) so the latency model has something to work with.

**Every shape.** The perfect and noisy judges answer set and list prompts
(:class:`~prp.types.ShapedPrompt`) too, by one *utility* per passage shown:

* Perfect: utility = grade. A set's winner is the highest utility, a list is sorted by
  utility; equal utilities go to the passage shown first. ``ties=off`` (``perfect:ties=off``)
  adds to every grade a small jitter fixed per (qid, doc id), in [0, 0.5), so that no two
  passages tie, in pairs (margin = utility(A) - utility(B)) as in sets and lists. Default
  ``ties=on``: pair margins are the grade difference, as always.
* Noisy (a random-utility choice model): utility of the passage in slot s = ``scale`` x grade
  + ``slot_bias[s]`` + doc error + ``set_noise`` x G (``set_noise`` defaults to ``noise``;
  ``prp calibrate-oracle --sets`` fits both from a real judge), G a standard Gumbel draw seeded
  by (seed, qid, the ids in the order shown, s), so the same prompt always gets the same
  answer. A set's winner is the highest utility (a multinomial logit choice), a list is sorted by utility (a
  Plackett-Luce draw). ``slot_bias`` defaults to ``bias`` on slot 0 and 0 elsewhere (the pair
  judge's bias for what is shown first); ``NoisyOracle(slot_bias=(...))`` sets it per slot
  (slots past its end get 0). ``doc_noise=SD`` (``noisy:doc_noise=0.5``) adds to every
  passage an error N(0, SD^2) fixed per (seed, qid, doc id) for the run, in every shape
  (pairs: margin += error(A) - error(B)): the judge over- or under-rates some passages
  whatever they are compared with. Default 0: pair margins are what they always were.
* Tokens: prompt tokens by :func:`cost.model.estimate_question_tokens`, completion tokens by
  :func:`cost.model.estimate_answer_tokens` (one rule for every shape, so shapes compare).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cost.model import estimate_answer_tokens, estimate_prompt_tokens, estimate_question_tokens
from prp.types import BatchResult, Choice, Judgment, Prompt, ShapedPrompt

Qrels = Mapping[str, Mapping[str, int]]

#: The noisy judge's parameters when none is given: ``prp calibrate-oracle`` fitted to the
#: packaged llama.cpp judge qwen2.5-coder-1.5b on DL19 (48 pairs, 96 prompts; margin = 0.2377 x
#: grade gap + 1.523 + N(0, 0.7707^2); ``bench/results/qwen1.5b-oracle-fit.txt``).
FITTED_QWEN_1_5B = {"scale": 0.2377, "bias": 1.523, "noise": 0.7707}


class NoJudgmentsWarning(UserWarning):
    """A simulated judge had no judgments for some queries of a call (none of their candidates
    is in its qrels), so it had no grades to rank them by. Likely cause: query or document ids
    that are not the qrels' ids. Emitted once per call (see :func:`no_judgments`)."""


@dataclass(frozen=True)
class NoJudgments:
    """The queries of a call that have no judgments in the qrels (from :func:`no_judgments`).

    ``queries``: queries looked at (those with 2 or more candidates); ``missing``: qids not in
    the qrels; ``unmatched``: qids in the qrels none of whose candidates is; ``documents``: the
    candidates of both kinds; ``consequence``: what the judge did with them."""

    queries: int
    missing: tuple[str, ...]
    unmatched: tuple[str, ...]
    documents: int
    consequence: str = "the judge had no grades to rank them by"

    @property
    def count(self) -> int:
        """How many queries had no judgments."""
        return len(self.missing) + len(self.unmatched)

    def message(self, consequence: str | None = None) -> str:
        """One line naming how many queries and documents had no judgments, why, and the likely
        cause, e.g. ``1 of 1 queries (3 documents) had no judgments in the qrels (qid not in the
        qrels: 'what is a flea'): ...``."""
        parts = []
        if self.missing:
            parts.append(f"{_plural(len(self.missing), 'qid')} not in the qrels: {_sample(self.missing)}")
        if self.unmatched:
            parts.append(f"{_plural(len(self.unmatched), 'query', 'queries')} in the qrels but none of "
                         f"{'its' if len(self.unmatched) == 1 else 'their'} documents: "
                         f"{_sample(self.unmatched)}")
        return (f"{self.count} of {_plural(self.queries, 'query', 'queries')} "
                f"({_plural(self.documents, 'document')}) had no judgments in the qrels "
                f"({'; '.join(parts)}): {consequence or self.consequence}; likely cause: query or "
                "document ids that are not the ones in the qrels")

    def __str__(self) -> str:
        return self.message()


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _sample(ids: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(repr(i if len(i) <= 40 else i[:37] + "...") for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _ids(item: Any) -> tuple[str, list[str]]:
    """(qid, doc ids) of a RankRequest (defaults as the Reranker's: qid = query, ids = positions),
    a RankedResult or a ``(qid, doc_ids)`` pair."""
    if isinstance(item, tuple):
        qid, doc_ids = item
        return str(qid), [str(d) for d in doc_ids]
    qid = item.qid if item.qid is not None else item.query
    doc_ids = item.doc_ids
    if doc_ids is None:
        doc_ids = [str(pos) for pos in range(len(item.docs))]
    return str(qid), [str(d) for d in doc_ids]


def no_judgments(qrels: Qrels, requests: Iterable[Any],
                 consequence: str | None = None) -> NoJudgments | None:
    """The queries of ``requests`` that have no judgments in ``qrels``, or None when every one
    has some. This is the one place that decides it (see the module docstring).

    ``requests``: RankRequests, RankedResults or ``(qid, doc_ids)`` pairs. A query with fewer
    than 2 candidates is not looked at (it needs no comparison). A query has no judgments when
    its qid is not in ``qrels`` or none of its doc ids is in ``qrels[qid]``; one with some judged
    candidates is fine (the others are grade 0)."""
    looked, missing, unmatched, documents = 0, [], [], 0
    for item in requests:
        qid, doc_ids = _ids(item)
        if len(doc_ids) < 2:
            continue
        looked += 1
        judged = qrels.get(qid)
        if not judged:
            missing.append(qid)
        elif not any(d in judged for d in doc_ids):
            unmatched.append(qid)
        else:
            continue
        documents += len(doc_ids)
    if not missing and not unmatched:
        return None
    report = NoJudgments(looked, tuple(missing), tuple(unmatched), documents)
    return report if consequence is None else NoJudgments(looked, report.missing, report.unmatched,
                                                          documents, consequence)


def unjudged(backend: object, requests: Iterable[Any]) -> NoJudgments | None:
    """:func:`no_judgments` for ``backend``'s qrels when it is a perfect or noisy judge (a
    backend with an ``unjudged`` method); None for any other backend."""
    check = getattr(backend, "unjudged", None)
    return check(requests) if callable(check) else None


def warn_unjudged(backend: object, requests: Iterable[Any], stacklevel: int = 2) -> NoJudgments | None:
    """:func:`unjudged`, and a :class:`NoJudgmentsWarning` (one) when some query had none."""
    report = unjudged(backend, requests)
    if report is not None:
        warnings.warn(report.message(), NoJudgmentsWarning, stacklevel=stacklevel + 1)
    return report


class SimulatedJudge:
    keys_by = "id"
    kind = "simulated"
    reports_margins = True
    shapes: tuple[str, ...] = ("pair",)  # the question shapes it answers
    delay = 0.0  # seconds each inference takes

    def __init__(self, passage_tokens: int = 128) -> None:
        self.passage_tokens = passage_tokens

    def margin(self, prompt: Prompt) -> float:
        """The judge's margin for ``prompt``: positive prefers Passage A, negative B, 0 a tie."""
        raise NotImplementedError

    def tokens(self, p: Prompt | ShapedPrompt) -> int:
        if type(p) is ShapedPrompt:
            return estimate_question_tokens(p.query, p.texts, self.passage_tokens)
        return estimate_prompt_tokens(p.query, p.first, p.second, self.passage_tokens)

    def utilities(self, p: ShapedPrompt) -> list[float]:
        """The judge's utility of each passage shown in a set or list prompt, by slot."""
        raise NotImplementedError(f"{type(self).__name__} answers pairs only")

    def choose(self, p: ShapedPrompt) -> Choice:
        """The answer to a set or list prompt: by utility, equal ones to the first shown."""
        u = self.utilities(p)
        order = tuple(sorted(range(len(u)), key=lambda s: -u[s]))
        return Choice(order[:1] if p.shape == "set" else order)

    async def judge(self, prompts: Sequence[Prompt | ShapedPrompt]) -> BatchResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        judgments: list = []
        completion = tokens = 0
        margin, tokens_of, new = self.margin, self.tokens, tuple.__new__  # (a hot loop in simulations)
        for p in prompts:
            tokens += tokens_of(p)
            if type(p) is ShapedPrompt:
                judgments.append(self.choose(p))
                completion += estimate_answer_tokens(p.shape, len(p.ids))
                continue
            m = margin(p)
            judgments.append(new(Judgment, ("A" if m > 0 else "B" if m < 0 else None, m, True)))
            completion += 1
        return BatchResult(judgments, prompt_tokens=tokens, completion_tokens=completion)


class ScoresOracle(SimulatedJudge):
    """Judges by a score per doc id (a mapping, or a callable ``(qid, doc_id) -> float``)."""

    def __init__(self, scores: Mapping[str, float] | Callable[[str, str], float], name: str = "scores"):
        super().__init__()
        self._score = scores if callable(scores) else (lambda qid, doc_id: scores[doc_id])
        self.name = f"simulated/{name}"

    shapes = ("pair", "set", "list")

    def margin(self, p: Prompt) -> float:
        return float(self._score(p.qid, p.first_id) - self._score(p.qid, p.second_id))

    def utilities(self, p: ShapedPrompt) -> list[float]:
        return [float(self._score(p.qid, d)) for d in p.ids]


class PerfectOracle(SimulatedJudge):
    """Judges by graded relevance: the best any judge could do on these candidates."""

    shapes = ("pair", "set", "list")
    #: what this judge does with a query it has no judgments for
    unjudged_consequence = "the judge saw only ties and kept their input order"

    def __init__(self, qrels: Qrels, ties: bool = True) -> None:
        super().__init__()
        if not isinstance(ties, bool):
            raise ValueError(f"perfect oracle: ties must be on or off, got {ties!r}")
        self.qrels = qrels
        self.ties = ties
        self.name = "simulated/perfect" if ties else "simulated/perfect:ties=off"

    def grade(self, qid: str, doc_id: str) -> int:
        """The qrels grade of ``doc_id`` for ``qid``; 0 when the qrels do not hold it."""
        return self.qrels.get(qid, {}).get(doc_id, 0)

    def value(self, qid: str, doc_id: str) -> float:
        """The grade, plus the fixed jitter in [0, 0.5) when ``ties`` is off."""
        grade = self.grade(qid, doc_id)
        return grade if self.ties else grade + 0.5 * _uniform(f"jitter\x1f{qid}\x1f{doc_id}")

    def utilities(self, p: ShapedPrompt) -> list[float]:
        return [self.value(p.qid, d) for d in p.ids]

    def unjudged(self, requests: Iterable[Any]) -> NoJudgments | None:
        """The queries of ``requests`` this judge has no judgments for (:func:`no_judgments`)."""
        return no_judgments(self.qrels, requests, self.unjudged_consequence)

    def margin(self, p: Prompt) -> float:
        if not self.ties:
            return self.value(p.qid, p.first_id) - self.value(p.qid, p.second_id)
        return float(self.grade(p.qid, p.first_id) - self.grade(p.qid, p.second_id))


def _uniform(key: str) -> float:
    """A number in [0, 1) fixed by ``key``."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


def _normal(key: str) -> float:
    """A standard normal draw fixed by ``key`` (Box-Muller)."""
    h = hashlib.blake2b(key.encode(), digest_size=16).digest()
    u1 = (int.from_bytes(h[:8], "big") + 1) / (2**64 + 1)
    u2 = int.from_bytes(h[8:], "big") / 2**64
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


class NoisyOracle(PerfectOracle):
    """Graded relevance seen through position bias and Gaussian noise.

    margin = ``scale`` x (grade(A) - grade(B)) + ``bias`` + ``noise`` x N(0, 1), the noise a seeded
    function of (``seed``, qid, first id, second id). With none of ``scale``, ``bias``, ``noise``
    the judge is :data:`FITTED_QWEN_1_5B` (fitted to the packaged qwen2.5-coder-1.5b judge); with
    any of them the others are 1, 0, 0. Raises ValueError for a value that is not a finite number
    (``noise`` must be >= 0, ``seed`` an integer), and when bias and noise are both 0 with one of
    them left out (that judge would rank exactly like :class:`PerfectOracle`).

    Example::

        NoisyOracle(qrels)                        # errs like qwen2.5-coder-1.5b
        NoisyOracle(qrels, bias=1.5, noise=1.0)   # scale 1, seed 0
    """

    unjudged_consequence = "the judge ranked them on its bias and noise alone"

    def __init__(self, qrels: Qrels, scale: float | None = None, bias: float | None = None,
                 noise: float | None = None, seed: int = 0, doc_noise: float = 0.0,
                 slot_bias: Sequence[float] | None = None, set_noise: float | None = None) -> None:
        super().__init__(qrels)
        if isinstance(doc_noise, bool) or not isinstance(doc_noise, numbers.Real) or not (
                math.isfinite(doc_noise) and doc_noise >= 0):
            raise ValueError(f"noisy oracle: doc_noise must be a finite number >= 0, got {doc_noise!r}")
        if slot_bias is not None and any(isinstance(b, bool) or not isinstance(b, numbers.Real)
                                         or not math.isfinite(b) for b in slot_bias):
            raise ValueError(f"noisy oracle: slot_bias must be finite numbers, got {slot_bias!r}")
        self.doc_noise = float(doc_noise)
        if set_noise is not None and (isinstance(set_noise, bool) or not isinstance(set_noise, numbers.Real)
                                      or not (math.isfinite(set_noise) and set_noise >= 0)):
            raise ValueError(f"noisy oracle: set_noise must be a finite number >= 0, got {set_noise!r}")
        given = {k: v for k, v in (("scale", scale), ("bias", bias), ("noise", noise)) if v is not None}
        if not given:
            scale, bias, noise = (FITTED_QWEN_1_5B[k] for k in ("scale", "bias", "noise"))
        else:
            scale, bias, noise = given.get("scale", 1.0), given.get("bias", 0.0), given.get("noise", 0.0)
        for label, value in (("scale", scale), ("bias", bias), ("noise", noise)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"noisy oracle: {label} must be a finite number, got {value!r}")
        if noise < 0:
            raise ValueError(f"noisy oracle: noise must be >= 0, got {noise}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"noisy oracle: seed must be an integer, got {seed!r}")
        if bias == 0 and noise == 0 and not {"bias", "noise"} <= set(given):
            left = " and ".join(k for k in ("bias", "noise") if k not in given)
            raise ValueError(f"noisy oracle: {left} left out {'is' if ' ' not in left else 'are'} 0, so "
                             f"with {', '.join(f'{k}={v}' for k, v in given.items())} the judge has no bias "
                             "and no noise (at a positive scale it ranks exactly like the perfect judge); "
                             "give bias and/or noise (bias=0,noise=0 is accepted when given), or none of "
                             "scale, bias, noise for the judge fitted to qwen2.5-coder-1.5b "
                             "(scale=0.2377,bias=1.523,noise=0.7707)")
        self.scale, self.bias, self.noise, self.seed = scale, bias, noise, seed
        self.slot_bias = (bias,) if slot_bias is None else tuple(float(b) for b in slot_bias)
        self.set_noise = noise if set_noise is None else float(set_noise)  # sets' and lists' Gumbel scale
        self.name = f"simulated/noisy:scale={scale},bias={bias},noise={noise},seed={seed}"
        if doc_noise:
            self.name += f",doc_noise={doc_noise:g}"
        if slot_bias is not None:
            self.name += ",slot_bias=" + "/".join(f"{b:g}" for b in self.slot_bias)
        if set_noise is not None:
            self.name += f",set_noise={self.set_noise:g}"

    def error(self, qid: str, doc_id: str) -> float:
        """The judge's error on ``doc_id``, fixed for the run (0 unless ``doc_noise``)."""
        if not self.doc_noise:
            return 0.0
        return self.doc_noise * _normal(f"doc\x1f{self.seed}\x1f{qid}\x1f{doc_id}")

    def utilities(self, p: ShapedPrompt) -> list[float]:
        shown = "\x1f".join(p.ids)
        out = []
        for slot, doc in enumerate(p.ids):
            u = _uniform(f"gumbel\x1f{self.seed}\x1f{p.qid}\x1f{p.shape}\x1f{shown}\x1f{slot}")
            gumbel = -math.log(-math.log(max(u, 1e-300)))
            bias = self.slot_bias[slot] if slot < len(self.slot_bias) else 0.0
            signal = self.scale * self.grade(p.qid, doc) + self.error(p.qid, doc)
            out.append(signal + bias + self.set_noise * gumbel)
        return out

    def _gauss(self, p: Prompt) -> float:
        key = f"{self.seed}\x1f{p.qid}\x1f{p.first_id}\x1f{p.second_id}".encode()
        h = hashlib.blake2b(key, digest_size=16).digest()
        u1 = (int.from_bytes(h[:8], "big") + 1) / (2**64 + 1)
        u2 = int.from_bytes(h[8:], "big") / 2**64
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)  # Box-Muller

    def margin(self, p: Prompt) -> float:
        signal = self.scale * (self.grade(p.qid, p.first_id) - self.grade(p.qid, p.second_id))
        margin = signal + self.bias + self.noise * self._gauss(p)
        if self.doc_noise:
            margin += self.error(p.qid, p.first_id) - self.error(p.qid, p.second_id)
        return margin
