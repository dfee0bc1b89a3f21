"""The embedded judge: a GGUF model run in-process by llama.cpp (``llama-cpp-python``).

Rules: the model is loaded once; one ``judge`` call (one inference) evaluates its prompts one
after another on the CPU - llama.cpp's Python API runs one sequence at a time - sorted by their
text, so that consecutive prompts share the longest prefix and the shared query (and, under
``orders="both"``, a shared first passage) is not evaluated twice. (Where a sequence is split
between cached prefix and new tokens changes the logits in their second decimal: the HTTP
backend sends a llama.cpp server single prompts in this same order to get the same margins.)
Judgments come from the next-token logits of "A" and "B" after the answer prefix. Calls are
serialised by a lock and run in a worker thread, so the event loop stays free.

Set and list questions (:mod:`prp.oracles.llm`) go through the same pass, in the same text
order: a ``set`` of k is answered by the next-token logits of its k labels after the answer
prefix "Passage" (one evaluation, like a pair; ``probs`` is their softmax), a ``list`` by greedy
generation (at most :func:`prp.shape_text.answer_room` tokens, stopping at the end of
generation or at a line break after a whole order), read by :func:`prp.shape_text.parse_list`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prp.oracles.llm import LLMBackend, file_sha256, shaped_choice
from prp.oracles.tokenizers import GGUFTokenizer
from prp.prompts import judgment_from_scores
from prp.shape_text import answer_room, parse_list, set_from_scores
from prp.types import BatchResult, Choice, Judgment, Prompt, ShapedPrompt


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

    async def judge(self, prompts: Sequence[Prompt | ShapedPrompt]) -> BatchResult:
        asked = [(p.shape, len(p.ids), self.render_shaped(p)) if type(p) is ShapedPrompt
                 else ("pair", 2, self.render(p)) for p in prompts]
        async with self._lock:
            return await asyncio.to_thread(self._judge_texts, asked)

    def _judge_texts(self, asked: list[tuple[str, int, str]]) -> BatchResult:
        llm = self.llm
        tokenized = [llm.tokenize(t.encode("utf-8"), add_bos=True, special=True) for _, _, t in asked]
        rooms = [answer_room(shape, n, self.tokenizer) for shape, n, _ in asked]
        for (shape, _, _), tokens, room in zip(asked, tokenized, rooms, strict=True):
            if len(tokens) + room >= llm.n_ctx():
                raise ValueError(f"a {shape} prompt of {len(tokens)} tokens (+{room} to answer) does not fit "
                                 f"n_ctx={llm.n_ctx()}; lower passage_tokens or raise n_ctx")
        answers: list[Judgment | Choice | None] = [None] * len(asked)
        generated = 0
        for index in sorted(range(len(asked)), key=lambda i: asked[i][2]):  # neighbours share prefixes
            shape, n, _ = asked[index]
            logits = self._next_logits(tokenized[index])
            if shape == "pair":
                answers[index] = judgment_from_scores(
                    *(float(max(logits[t] for t in self._answer_ids[s])) for s in ("A", "B")))
                generated += 1
            elif shape == "set":
                scores = {i: float(max(logits[t] for t in self.label_tokens(i))) for i in range(n)}
                answers[index] = shaped_choice(set_from_scores(scores, n))
                generated += 1
            else:
                text, spent = self._generate(logits, rooms[index], n)
                answers[index] = shaped_choice(parse_list(text, n))
                generated += spent
        return BatchResult(answers, sum(map(len, tokenized)), generated)  # type: ignore[arg-type]

    @staticmethod
    def _complete(text: str, n: int) -> bool:
        answer = parse_list(text, n)
        return answer.parsed and not answer.repaired

    def _generate(self, logits: np.ndarray, room: int, n: int) -> tuple[str, int]:
        """Greedy generation from ``logits`` (after the prompt) of a list of ``n``: the text and
        the tokens made. It stops at the end of generation, after ``room`` tokens, or at a line
        break once the text holds a whole order."""
        llm = self.llm
        llama_cpp = _import_llama()
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        made: list[int] = []
        while len(made) < room:
            token = int(np.argmax(logits))
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            piece = llm.detokenize([token]).decode("utf-8", errors="ignore")
            if "\n" in piece and self._complete(llm.detokenize(made).decode("utf-8", errors="replace"), n):
                break
            made.append(token)
            llm.eval([token])
            self.evaluated_tokens += 1
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1),
                                           shape=(llm.n_vocab(),))
        return llm.detokenize(made).decode("utf-8", errors="replace"), len(made)

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
