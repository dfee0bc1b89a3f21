"""The PRP prompt, passage truncation, and reading an answer.

Every LLM backend renders a :class:`~prp.types.Prompt` the same way: query and passages cut to a
token budget with the backend's own tokenizer, filled into :data:`PRP_TEMPLATE`, and ended with
the answer prefix ``Passage`` (as plain text after the instruction, or as the prefilled start of
the assistant turn of a chat template), so that the next token is " A" or " B". The judgment is
the difference of the two tokens' scores (logits or log-probabilities): the **margin**.

Reading log-probabilities (:func:`scores_from_top_logprobs`): a value of an " A" or " B" token
that is not a real number (a string, null, a bool), NaN or +inf is :class:`UnusableLogprob`,
and the answer is then unparsed (the rule is :mod:`prp.judgment`'s); -inf is probability 0.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from prp.types import Judgment


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class Template:
    """A pairwise prompt. ``id`` names it in cache keys: change the text, change the id."""

    id: str
    instruction: str  # with {query}, {a}, {b}
    answer_prefix: str = "Passage"

    def render(self, query: str, a: str, b: str) -> str:
        return self.instruction.format(query=query, a=a, b=b)


PRP_TEMPLATE = Template(
    id="prp-v1",
    instruction=('Given a query "{query}", which of the following two passages is more relevant '
                 'to the query?\n\nPassage A: "{a}"\n\nPassage B: "{b}"\n\n'
                 "Output Passage A or Passage B:"),
)


def truncate(text: str, budget: int | None, tokenizer: Tokenizer | None) -> str:
    """``text`` cut to its first ``budget`` tokens (4 characters a token without a tokenizer)."""
    if budget is None:
        return text
    if tokenizer is None:
        return text[: budget * 4]
    ids = tokenizer.encode(text)
    return text if len(ids) <= budget else tokenizer.decode(ids[:budget]).strip()


def judgment_from_scores(score_a: float | None, score_b: float | None) -> Judgment:
    """A judgment from the next-token scores of "A" and "B" (logits or log-probabilities).

    A missing score counts as minus infinity; when both are missing the answer is unreadable.
    """
    if score_a is None and score_b is None:
        return Judgment(None, None, parsed=False)
    a = -math.inf if score_a is None else score_a
    b = -math.inf if score_b is None else score_b
    margin = a - b
    if math.isnan(margin):  # a NaN score, or both sides +-inf: nothing to read
        return Judgment(None, None, parsed=False)
    if math.isinf(margin):  # only one side seen: a decided answer, with a finite stand-in margin
        margin = math.copysign(30.0, margin)
    return Judgment("A" if margin > 0 else "B" if margin < 0 else None, margin)


class UnusableLogprob(ValueError):
    """A log-probability of " A" or " B" that cannot be read (see the module docstring)."""


def usable_logprob(value: object) -> bool:
    """A real number (not a bool), not NaN, not +inf."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and not math.isnan(value) and value != math.inf)


def scores_from_top_logprobs(top: Mapping[str, object] | Iterable[tuple[object, object]]
                             ) -> tuple[float | None, float | None]:
    """The best log-probability of "A" and of "B" among a next-token top-k (" A", "A", ...), as
    a mapping or (token, logprob) pairs; :class:`UnusableLogprob` if one of theirs is unusable."""
    best: dict[str, float] = {}
    for token, logprob in top.items() if isinstance(top, Mapping) else top:
        side = token.strip() if isinstance(token, str) else None
        if side not in ("A", "B"):
            continue
        if not usable_logprob(logprob):
            raise UnusableLogprob(f"the log-probability of {token!r} is {logprob!r}")
        if logprob > best.get(side, -math.inf) or side not in best:  # type: ignore[operator]
            best[side] = float(logprob)  # type: ignore[arg-type]
    return best.get("A"), best.get("B")


_ANSWER = re.compile(r"^\W*(?:passage\s*)?([AB])\b", re.IGNORECASE)


def parse_answer(text: str) -> Judgment:
    """A judgment (no margin) from generated text such as " A", "Passage B." or "A"."""
    found = _ANSWER.match(text or "")
    if not found:
        return Judgment(None, None, parsed=False)
    return Judgment(found.group(1).upper(), None)  # type: ignore[arg-type]
