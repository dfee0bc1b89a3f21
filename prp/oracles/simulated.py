"""Simulated judges: no LLM, for tests, the simulator and cost planning.

* :class:`ScoresOracle` - any numeric score per doc id: margin = score(A) - score(B).
* :class:`PerfectOracle` - graded qrels (unjudged = 0): margin = grade(A) - grade(B); equal
  grades tie.
* :class:`NoisyOracle` - a judge that errs like a small LLM: margin = scale * (grade(A) -
  grade(B)) + bias + Gaussian noise, the bias favouring whichever passage is shown first. The
  noise is a seeded function of (seed, qid, first id, second id), so the same prompt always
  gets the same answer, whatever the batching.

``delay`` (seconds, default 0) makes each inference take that long (yielding to the event loop),
standing in for an LLM's latency in load tests of the service.

Simulated judges report estimated prompt tokens (4 characters a token, passages truncated to
``passage_tokens``) so the latency model has something to work with.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence

from cost.model import estimate_prompt_tokens
from prp.types import BatchResult, Judgment, Prompt

Qrels = Mapping[str, Mapping[str, int]]


class _Simulated:
    keys_by = "id"
    kind = "simulated"
    reports_margins = True
    delay = 0.0  # seconds each inference takes

    def __init__(self, passage_tokens: int = 128) -> None:
        self.passage_tokens = passage_tokens

    def margin(self, prompt: Prompt) -> float:
        """The judge's margin for ``prompt``: positive prefers Passage A, negative B, 0 a tie."""
        raise NotImplementedError

    def tokens(self, p: Prompt) -> int:
        return estimate_prompt_tokens(p.query, p.first, p.second, self.passage_tokens)

    async def judge(self, prompts: Sequence[Prompt]) -> BatchResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        judgments = []
        for p in prompts:
            m = self.margin(p)
            judgments.append(Judgment("A" if m > 0 else "B" if m < 0 else None, m))
        return BatchResult(judgments, prompt_tokens=sum(self.tokens(p) for p in prompts),
                           completion_tokens=len(prompts))


class ScoresOracle(_Simulated):
    """Judges by a score per doc id (a mapping, or a callable ``(qid, doc_id) -> float``)."""

    def __init__(self, scores: Mapping[str, float] | Callable[[str, str], float], name: str = "scores"):
        super().__init__()
        self._score = scores if callable(scores) else (lambda qid, doc_id: scores[doc_id])
        self.name = f"simulated/{name}"

    def margin(self, p: Prompt) -> float:
        return float(self._score(p.qid, p.first_id) - self._score(p.qid, p.second_id))


class PerfectOracle(_Simulated):
    """Judges by graded relevance: the best any judge could do on these candidates."""

    def __init__(self, qrels: Qrels) -> None:
        super().__init__()
        self.qrels = qrels
        self.name = "simulated/perfect"

    def grade(self, qid: str, doc_id: str) -> int:
        """The qrels grade of ``doc_id`` for ``qid``; 0 when the qrels do not hold it."""
        return self.qrels.get(qid, {}).get(doc_id, 0)

    def margin(self, p: Prompt) -> float:
        return float(self.grade(p.qid, p.first_id) - self.grade(p.qid, p.second_id))


class NoisyOracle(PerfectOracle):
    """Graded relevance seen through position bias and Gaussian noise."""

    def __init__(self, qrels: Qrels, scale: float = 1.0, bias: float = 0.0, noise: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__(qrels)
        for label, value in (("scale", scale), ("bias", bias), ("noise", noise)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"noisy oracle: {label} must be a finite number, got {value!r}")
        if noise < 0:
            raise ValueError(f"noisy oracle: noise must be >= 0, got {noise}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"noisy oracle: seed must be an integer, got {seed!r}")
        self.scale, self.bias, self.noise, self.seed = scale, bias, noise, seed
        self.name = f"simulated/noisy:scale={scale},bias={bias},noise={noise},seed={seed}"

    def _gauss(self, p: Prompt) -> float:
        key = f"{self.seed}\x1f{p.qid}\x1f{p.first_id}\x1f{p.second_id}".encode()
        h = hashlib.blake2b(key, digest_size=16).digest()
        u1 = (int.from_bytes(h[:8], "big") + 1) / (2**64 + 1)
        u2 = int.from_bytes(h[8:], "big") / 2**64
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)  # Box-Muller

    def margin(self, p: Prompt) -> float:
        signal = self.scale * (self.grade(p.qid, p.first_id) - self.grade(p.qid, p.second_id))
        return signal + self.bias + self.noise * self._gauss(p)
