"""The latency model: predicted wall time of one inference, and of a schedule of them.

    t(batch) = alpha + beta * prompts + gamma * prompt_tokens + delta * output_tokens

``alpha`` is the fixed cost of a call (request, scheduling, kernel launch), ``beta`` the cost of
each prompt beyond its tokens (decoding the answer token), ``gamma`` the cost of each prompt
token (the forward pass, prefill), ``delta`` the cost of each output token (decoding: one token
for a pair or set answer, several per passage for a list, so ``delta`` prices listwise answers;
it is 0 in the defaults, and ``prp calibrate`` fits it when the runs it reads vary in output
tokens). The defaults are illustrative figures for a mid-size judge served on
one GPU (0.1 s per call, 10 ms per prompt, 0.2 ms per prompt token): batching pays there. A CPU
judge is dominated by ``gamma`` (Qwen2.5-Coder-1.5B through llama.cpp on this machine: about
2.8 s per 250-token prompt, i.e. gamma ~ 0.011); fit your own figures from measured runs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass

# PRP's prompt around the passages, in tokens (query, passages and answer slots excluded).
TEMPLATE_TOKENS = 40
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str, budget: int | None = None) -> int:
    """A tokenizer-free estimate (4 characters a token), truncated to ``budget`` tokens."""
    n = (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN  # ceil, in integers
    return n if budget is None or n <= budget else budget


#: Tokens each passage beyond the first two adds to a set or list prompt (its label, "[3] ").
LABEL_TOKENS = 3
#: Tokens a list answer takes per passage ("[3] > "); a pair or set answer is one token.
LIST_ANSWER_TOKENS = 4


def estimate_question_tokens(query: str, passages: list[str] | tuple[str, ...],
                             passage_budget: int | None = 128, *, template_tokens: int | None = None,
                             query_budget: int | None = None) -> int:
    """Any question's prompt tokens, estimated by one rule for every shape: the template, the
    query (truncated to ``query_budget`` tokens) and every passage (each truncated to
    ``passage_budget`` tokens). The template is ``template_tokens`` when the caller knows its
    text (:func:`prp.shape_text.input_tokens` passes its own templates' estimate), else
    :data:`TEMPLATE_TOKENS` (which holds two passage labels) plus :data:`LABEL_TOKENS` for each
    passage beyond two. A pair gives exactly :func:`estimate_prompt_tokens`."""
    passage_tokens = sum(estimate_tokens(p, passage_budget) for p in passages)
    if template_tokens is None:
        template_tokens = TEMPLATE_TOKENS + LABEL_TOKENS * max(0, len(passages) - 2)
    return template_tokens + estimate_tokens(query, query_budget) + passage_tokens


def estimate_answer_tokens(shape: str, passages: int) -> int:
    """Output tokens of an answer, estimated: 1 for a pair or a set (one label),
    :data:`LIST_ANSWER_TOKENS` a passage for a list (``"[3] > [1] > ..."``)."""
    return LIST_ANSWER_TOKENS * passages if shape == "list" else 1


def estimate_prompt_tokens(query: str, first: str, second: str, passage_budget: int | None = 128) -> int:
    """A PRP prompt's tokens, estimated: the template, the query and both passages (each
    truncated to ``passage_budget`` tokens)."""
    return (TEMPLATE_TOKENS + estimate_tokens(query) + estimate_tokens(first, passage_budget)
            + estimate_tokens(second, passage_budget))


@dataclass(frozen=True)
class LatencyModel:
    """Predicted seconds of an inference: ``alpha + beta * prompts + gamma * prompt_tokens +
    delta * output_tokens``.

    Args:
        alpha: seconds per inference (the fixed cost of a call).
        beta: seconds per prompt beyond its tokens.
        gamma: seconds per prompt token (the forward pass, prefill).
        delta: seconds per output token (decoding).

    Raises:
        ValueError: a coefficient that is negative or not a number.

    Example:
        >>> model = LatencyModel.parse("1.32,0,0.00644")   # the default judge on a 2-core CPU
        >>> round(model.batch_seconds(prompts=8, prompt_tokens=8 * 250), 2)
        14.2
    """

    alpha: float = 0.1
    beta: float = 0.01
    gamma: float = 0.0002
    delta: float = 0.0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma", "delta"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise ValueError(f"latency {name} must be a number >= 0, got {value!r}")

    def __str__(self) -> str:
        """``"alpha,beta,gamma"`` (``",delta"`` added when it is not 0), as :meth:`parse` reads it."""
        text = f"{self.alpha:g},{self.beta:g},{self.gamma:g}"
        return f"{text},{self.delta:g}" if self.delta else text

    @classmethod
    def parse(cls, text: str) -> LatencyModel:
        """``"alpha,beta,gamma"`` or ``"alpha,beta,gamma,delta"`` -> LatencyModel (the CLI's
        ``--latency``)."""
        parts = text.split(",")
        if len(parts) not in (3, 4):
            raise ValueError(f"latency must be 'alpha,beta,gamma' or 'alpha,beta,gamma,delta', got {text!r}")
        try:
            return cls(*(float(p) for p in parts))
        except ValueError as exc:
            raise ValueError(f"latency must be three or four numbers 'alpha,beta,gamma[,delta]', got {text!r}"
                             ) from exc

    def batch_seconds(self, prompts: int, prompt_tokens: float, output_tokens: float = 0) -> float:
        """Predicted seconds of one inference carrying ``prompts`` prompts."""
        return self.alpha + self.beta * prompts + self.gamma * prompt_tokens + self.delta * output_tokens

    @staticmethod
    def makespan(seconds: Iterable[float], concurrency: int) -> float:
        """Wall time of independent inferences run ``concurrency`` at a time (greedy list schedule)."""
        workers = [0.0] * max(1, concurrency)
        for t in seconds:
            heapq.heapreplace(workers, workers[0] + t)
        return max(workers)


DEFAULT_LATENCY = LatencyModel()
"""The illustrative default: a mid-size judge on one GPU (0.1 s a call, 10 ms a prompt, 0.2 ms a
prompt token). Each judge has its own default in :mod:`prp.latency`."""
