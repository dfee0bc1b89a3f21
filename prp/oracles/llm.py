"""What every LLM backend shares: rendering, truncation budgets and the cache identity.

A subclass sets ``kind``, gives a tokenizer (or None for a character estimate) and implements
``judge``. ``name`` - the cache identity - holds everything that changes an answer: backend
kind, model id and weights hash, template id, both truncation budgets and the prompt format.

Every LLM judge answers the three question shapes (:attr:`LLMBackend.shapes`): a ``judge``
batch may mix pairs (:class:`~prp.types.Prompt`, answered by a Judgment) with set and list
questions (:class:`~prp.types.ShapedPrompt`, answered by a :class:`~prp.types.Choice`). Set and
list prompts use the templates of :data:`prp.shape_text.TEMPLATES` (their ids are
:attr:`LLMBackend.shape_templates`, part of the scheduler's cache key), with the query and
passages cut to the same budgets as a pair's (:meth:`LLMBackend.render_shaped`), and their
answers are read by the rules of :mod:`prp.shape_text` (:func:`shaped_choice`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache

from prp.prompts import PRP_TEMPLATE, Template, Tokenizer, truncate
from prp.shape_text import SET_LABELS, TEMPLATES, ShapeAnswer
from prp.types import BatchResult, Choice, Prompt, ShapedPrompt


def shaped_choice(answer: ShapeAnswer) -> Choice:
    """A read answer (:class:`~prp.shape_text.ShapeAnswer`) as the scheduler's Choice: a set's
    winner as a one-slot order (with its ``probs`` when read from label scores), a list's
    permutation; unparsed when the answer says nothing."""
    if answer.value is None:
        return Choice(None, parsed=False)
    order = (answer.value,) if isinstance(answer.value, int) else tuple(answer.value)
    return Choice(order, answer.probs, True, answer.repaired)


def split_shapes(prompts: Sequence[Prompt | ShapedPrompt]) -> tuple[list[int], dict[str, list[int]]]:
    """The positions of the pair prompts in a batch, and of the set and list prompts by shape."""
    pairs: list[int] = []
    shaped: dict[str, list[int]] = {}
    for index, prompt in enumerate(prompts):
        if type(prompt) is ShapedPrompt:
            shaped.setdefault(prompt.shape, []).append(index)
        else:
            pairs.append(index)
    return pairs, shaped


@lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file (memoised per path, size and modification time)."""
    st = os.stat(path)
    return _file_sha256(os.fspath(path), st.st_size, st.st_mtime_ns)


class LLMBackend:
    """Base of the LLM judges (transformers, llama.cpp, HTTP)."""

    kind = "llm"
    keys_by = "text"
    shapes: tuple[str, ...] = ("pair", "set", "list")  # the question shapes it answers

    def __init__(self, model_id: str, *, weights_hash: str | None = None,
                 template: Template = PRP_TEMPLATE, passage_tokens: int | None = 128,
                 query_tokens: int | None = 64, chat: bool = False) -> None:
        for label, budget in (("passage_tokens", passage_tokens), ("query_tokens", query_tokens)):
            if budget is not None and (not isinstance(budget, int) or budget < 1):
                raise ValueError(f"{label} must be an integer >= 1 or None, got {budget!r}")
        self.model_id = model_id
        self.weights_hash = weights_hash
        self.template = template
        self.passage_tokens, self.query_tokens = passage_tokens, query_tokens
        self.chat = chat
        self.tokenizer: Tokenizer | None = None
        self._labels: dict[str, list[int]] = {}  # a set label's single tokens, found when first asked

    @property
    def prompt_format(self) -> str:
        """How the instruction reaches the model: "plain", or "chat" (its chat template)."""
        return "chat" if self.chat else "plain"

    @property
    def exact_truncation(self) -> bool:
        """True when budgets count the model's tokens (False: a character estimate)."""
        return self.tokenizer is not None

    @property
    def name(self) -> str:
        weights = (self.weights_hash or "-")[:16]
        approx = "" if self.exact_truncation else "~"  # "~": truncated by a character estimate
        return (f"{self.kind}:{self.model_id}#{weights}:{self.template.id}:"
                f"p{approx}{self.passage_tokens}:q{approx}{self.query_tokens}:{self.prompt_format}")

    def shape_name(self, shape: str) -> str:
        """The cache identity of this judge's ``set`` or ``list`` questions: :attr:`name` with
        that shape's template id (:data:`prp.shape_text.TEMPLATES`) in place of the pair's."""
        from prp.shape_text import TEMPLATES

        if shape not in TEMPLATES:
            raise ValueError(f"shape must be one of {', '.join(TEMPLATES)}, got {shape!r}")
        head, _, tail = self.name.partition(f":{self.template.id}:")
        return f"{head}:{TEMPLATES[shape].id}:{tail}"

    @property
    def shape_templates(self) -> dict[str, str]:
        """The template id of each k-wise shape (the scheduler puts it in the cache key)."""
        return {shape: template.id for shape, template in TEMPLATES.items()}

    def shaped_texts(self, prompt: ShapedPrompt) -> tuple[str, list[str]]:
        """A set or list prompt's query and passages (in the order shown), cut to the budgets."""
        tok = self.tokenizer
        return (truncate(prompt.query, self.query_tokens, tok),
                [truncate(text, self.passage_tokens, tok) for text in prompt.texts])

    def render_shaped(self, prompt: ShapedPrompt) -> str:
        """A set or list prompt's full model input: its template (:data:`prp.shape_text.TEMPLATES`)
        filled with the cut texts, through the chat template in chat format."""
        if prompt.shape not in TEMPLATES:
            raise ValueError(f"shape must be one of {', '.join(TEMPLATES)}, got {prompt.shape!r}")
        query, passages = self.shaped_texts(prompt)
        chat = self.tokenizer.chat if self.chat else None  # type: ignore[union-attr]
        return TEMPLATES[prompt.shape].render(query, passages, chat)

    def label_tokens(self, index: int) -> list[int]:
        """The single tokens of the label of slot ``index`` of a set (``A``, ``B``, ...), found by
        the judge's ``_single_tokens`` the first time they are needed."""
        label = SET_LABELS[index]
        if label not in self._labels:
            self._labels[label] = self._single_tokens(label)  # type: ignore[attr-defined]
        return self._labels[label]

    def instruction(self, prompt: Prompt) -> str:
        """The template filled with the truncated query and passages."""
        tok = self.tokenizer
        return self.template.render(truncate(prompt.query, self.query_tokens, tok),
                                    truncate(prompt.first, self.passage_tokens, tok),
                                    truncate(prompt.second, self.passage_tokens, tok))

    def render(self, prompt: Prompt) -> str:
        """The full model input: the chat template around the instruction (chat format, through
        ``self.tokenizer.chat``), or the instruction (plain); then the answer prefix."""
        if self.chat:
            return self.tokenizer.chat(self.instruction(prompt)) + self.template.answer_prefix  # type: ignore[union-attr]
        return f"{self.instruction(prompt)} {self.template.answer_prefix}"

    async def judge(self, prompts: Sequence[Prompt | ShapedPrompt]) -> BatchResult:  # pragma: no cover
        """Judge one batch of prompts as one inference: one Judgment per pair prompt and one
        Choice per set or list prompt, in order."""
        raise NotImplementedError
