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


class BatchResult(NamedTuple):
    """A backend's answer to one inference: one judgment per prompt, in order, and its usage."""

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
