"""What every LLM backend shares: rendering, truncation budgets and the cache identity.

A subclass sets ``kind``, gives a tokenizer (or None for a character estimate) and implements
``judge``. ``name`` - the cache identity - holds everything that changes an answer: backend
kind, model id and weights hash, template id, both truncation budgets and the prompt format.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache

from prp.prompts import PRP_TEMPLATE, Template, Tokenizer, truncate
from prp.types import BatchResult, Prompt


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

    async def judge(self, prompts: Sequence[Prompt]) -> BatchResult:  # pragma: no cover
        """Judge one batch of prompts as one inference: one Judgment per prompt, in order."""
        raise NotImplementedError
