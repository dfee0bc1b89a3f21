"""Plain data passed between callers, the engine and oracle backends (Prompt, Judgment and
BatchResult are named tuples: cheap to build, since the engine makes one Prompt and the backend
one Judgment per prompt)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

Side = Literal["A", "B"]


class Prompt(NamedTuple):
    """One LLM input: which of ``first`` (shown as Passage A) or ``second`` (B) is more relevant.

    Texts are what an LLM judge reads; ids are what a simulated judge (qrels) looks up.
    """

    qid: str
    query: str
    first_id: str
    first: str
    second_id: str
    second: str


class Judgment(NamedTuple):
    """The answer to one prompt.

    ``preferred`` is the side the judge chose (None: it could not tell). ``margin`` is the
    judge's score of A minus its score of B (e.g. logit("A") - logit("B")) when it has one.
    ``parsed`` is False when the backend could not read an answer at all: such a judgment
    counts as a tie, is reported as ``unparsed`` and is never cached.
    """

    preferred: Side | None
    margin: float | None = None
    parsed: bool = True


class ShapedPrompt(NamedTuple):
    """One LLM input asking a set or a list question (see :mod:`sorters._base`).

    ``shape`` is ``"set"`` (which passage is the most relevant?) or ``"list"`` (order them);
    ``template`` the id of the prompt template that asks it; ``ids`` and ``texts`` the passages
    in the order shown (slot 0 first). Its answer is a :class:`Choice`.
    """

    qid: str
    query: str
    shape: str
    template: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]


class Choice(NamedTuple):
    """The answer to a :class:`ShapedPrompt`, in slots (positions in the order shown, from 0).

    ``order``: for a set, ``(winner_slot,)``; for a list, a permutation of the slots, best first.
    ``probs``: for a set, the judge's distribution over the slots when it has one (label
    logits). ``parsed`` is False when no usable answer could be read (never cached, asked once
    more, then no decision); ``repaired`` is True when the answer was usable only after a repair
    (a list with missing or repeated ids completed), and is counted as such.
    """

    order: tuple[int, ...] | None
    probs: tuple[float, ...] | None = None
    parsed: bool = True
    repaired: bool = False


class BatchResult(NamedTuple):
    """A backend's answer to one inference: one judgment per prompt, in order, and its usage
    (a :class:`Judgment` for a :class:`Prompt`, a :class:`Choice` for a :class:`ShapedPrompt`)."""

    judgments: list[Judgment]
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class RankRequest:
    """One query to rerank: its text, its candidates in first-stage order, optional ids."""

    query: str
    docs: Sequence[str]
    doc_ids: Sequence[str] | None = None
    qid: str | None = None
