"""The transformers judge: a Hugging Face model run in-process with PyTorch.

Rules:

* One ``judge`` call is one inference: its prompts go through the model in **one padded,
  batched forward pass** under ``torch.inference_mode()``, in a worker thread (calls serialised
  by a lock), so the event loop stays free.
* Seq2seq models (Flan-T5): the encoder reads the instruction; the decoder reads its start token
  and the answer prefix "Passage". Causal models read the rendered prompt - plain (instruction,
  " Passage") or the chat template's user turn with "Passage" prefilled as the answer - left
  padded, with position ids counted from each prompt's first real token.
* The judgment is score("A") - score("B") at the next position, a side's score being the best
  logit among the single tokens that decode to exactly that letter ("A", " A", "▁A", "ĠA", ...).
* Padding is masked out, so batching never changes an answer (beyond float rounding).
* Set and list questions (:mod:`prp.oracles.llm`) ride in the same inference: the ``set``
  prompts in one more batched forward pass, each answered by the logits of its k labels after
  the answer prefix "Passage" (``probs``: their softmax); the ``list`` prompts by one batched
  greedy ``generate`` (at most :func:`prp.shape_text.answer_room` new tokens), read by
  :func:`prp.shape_text.parse_list`. A seq2seq model's encoder reads a set's or list's
  instruction and its decoder the answer prefix (a set) or nothing (a list).
* Passages are truncated with the model's own tokenizer. ``name`` (the cache identity) holds
  the model id and a weights hash: of the local weight files (or hub revision) and the dtype,
  or of an in-memory model's state dict.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prp.oracles.llm import LLMBackend, file_sha256, shaped_choice, split_shapes
from prp.prompts import judgment_from_scores
from prp.shape_text import TEMPLATES, answer_room, parse_list, set_from_scores
from prp.types import BatchResult, Prompt, ShapedPrompt

DTYPES = ("float32", "bfloat16", "float16")
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")
#: In-memory models with more parameters are not hashed: pass ``weights_hash`` for them.
HASH_LIMIT = 100_000_000
_NOT_AN_LM = "is neither a seq2seq nor a causal language model (use AutoModelFor{Seq2SeqLM,CausalLM})"


def _import() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError("the transformers backend needs torch and transformers: "
                          "pip install 'prp[transformers]'") from exc
    return torch, transformers


class _Tokenizer:
    """A Hugging Face tokenizer seen as prp's Tokenizer: no special tokens added."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf = hf_tokenizer

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=False)

    def chat(self, user: str) -> str:
        """The chat template's user turn, ready for the assistant's answer."""
        return self.hf.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                           add_generation_prompt=True)


def _device(torch: Any, device: str) -> Any:
    try:
        resolved = torch.device(device)
        torch.empty(0, device=resolved)  # fails when the device type is absent from this machine
    except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
        raise ValueError(f"unusable device {device!r} (e.g. 'cpu', 'cuda', 'cuda:1', 'mps'): {exc}") from exc
    return resolved


def _dtype(torch: Any, dtype: Any) -> Any:
    if dtype is None or (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return getattr(torch, dtype)
    raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)} or a floating torch.dtype")


def _load(transformers: Any, source: str, dtype: Any) -> tuple[Any, Any]:
    """Model and tokenizer from a hub id or a local directory."""
    config = transformers.AutoConfig.from_pretrained(source)
    auto = (transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder
            else transformers.AutoModelForCausalLM)
    try:
        model = auto.from_pretrained(source, **({"dtype": dtype} if dtype is not None else {}))
    except ValueError as exc:  # "Unrecognized configuration class ..."
        raise ValueError(f"{source} ({type(config).__name__}) {_NOT_AN_LM}") from exc
    return model, transformers.AutoTokenizer.from_pretrained(source)


def _state_dict_hash(torch: Any, model: Any) -> str:
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def _weights_hash(torch: Any, model: Any, source: str | None) -> str | None:
    """Local weight files (or hub revision) plus dtype for a loaded model, else the state dict."""
    parts: list[str] = []
    if source is not None and Path(source).is_dir():
        files = sorted({f for pattern in WEIGHT_FILES for f in Path(source).glob(pattern)})
        parts = [f"{f.name}={file_sha256(f)}" for f in files]
    elif source is not None and getattr(model.config, "_commit_hash", None):
        parts = [f"revision={model.config._commit_hash}"]
    if parts:
        return hashlib.sha256("\n".join([*parts, f"dtype={model.dtype}"]).encode()).hexdigest()
    if sum(p.numel() for p in model.parameters()) <= HASH_LIMIT:
        return _state_dict_hash(torch, model)
    warnings.warn("model too large to hash: its cache identity is its model id alone; "
                  "pass weights_hash=...", stacklevel=3)
    return None


class TransformersBackend(LLMBackend):
    """Judge with a Hugging Face seq2seq or causal LM.

    ``TransformersBackend("google/flan-t5-large")`` loads a hub id or local directory (with
    AutoConfig, AutoModelForSeq2SeqLM / AutoModelForCausalLM, AutoTokenizer);
    ``TransformersBackend(model, tokenizer, model_id="my-lm")`` takes a built ``PreTrainedModel``
    (moved to ``device`` and ``dtype`` in place). ``dtype``: a torch dtype or one of
    :data:`DTYPES`; None keeps the model's (or transformers' loading default). ``chat=None``
    uses the chat template when the tokenizer has one and the model is causal. Other keywords
    (``template``, ``passage_tokens``, ``query_tokens``) go to :class:`LLMBackend`.
    """

    kind = "transformers"
    reports_margins = True  # logits of " A" and " B" for every prompt

    def __init__(self, model: Any, tokenizer: Any = None, *, device: str = "cpu", dtype: Any = None,
                 chat: bool | None = None, model_id: str | None = None, weights_hash: str | None = None,
                 **llm_kwargs: Any) -> None:
        torch, transformers = _import()
        self._torch, self.device = torch, _device(torch, device)
        dtype, source = _dtype(torch, dtype), None
        if isinstance(model, (str, os.PathLike)):
            source = os.fspath(model)
            model, loaded = _load(transformers, source, dtype)
            tokenizer = loaded if tokenizer is None else tokenizer
        elif isinstance(model, transformers.PreTrainedModel):
            if tokenizer is None:
                raise ValueError("an in-memory model needs its tokenizer: TransformersBackend(model, tok)")
            model = model.to(dtype=dtype) if dtype is not None else model
        else:
            raise TypeError(f"model must be a model id, a local path or a PreTrainedModel, not {type(model)}")
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer)
        if not model.can_generate():
            raise ValueError(f"{type(model).__name__} {_NOT_AN_LM}")
        self.seq2seq = bool(model.config.is_encoder_decoder)
        has_template = bool(getattr(tokenizer, "chat_template", None))
        chat = (has_template and not self.seq2seq) if chat is None else chat
        if chat and (self.seq2seq or not has_template):
            raise ValueError("chat=True needs a causal model whose tokenizer has a chat template")
        self.model = model.to(self.device).eval()
        super().__init__(model_id or source or model.config._name_or_path or type(model).__name__,
                         weights_hash=weights_hash or _weights_hash(torch, model, source),
                         chat=chat, **llm_kwargs)
        self.hf_tokenizer = tokenizer
        self.tokenizer = _Tokenizer(tokenizer)
        self.answer_ids = {side: self._single_tokens(side) for side in ("A", "B")}
        self.decoder_prefix = self._decoder_prefix() if self.seq2seq else []
        self._pad_id = next((t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None), 0)
        accepts = inspect.signature(model.forward).parameters
        self._extra = {"use_cache": False} if "use_cache" in accepts else {}
        if "logits_to_keep" in accepts and not self.seq2seq:
            self._extra["logits_to_keep"] = 1
        self._position_ids = "position_ids" in accepts and not self.seq2seq
        self._lock = threading.Lock()

    def _single_tokens(self, side: str) -> list[int]:
        """Ids of the single tokens that decode to exactly ``side`` ("A", " A", "▁A", "ĠA"...)."""
        hf, ids = self.hf_tokenizer, set()
        for variant in (side, " " + side, "▁" + side, "Ġ" + side):
            encoded = hf.encode(variant, add_special_tokens=False)
            ids.update(encoded if len(encoded) == 1 else [])
            token_id = hf.convert_tokens_to_ids(variant)
            ids.update([token_id] if isinstance(token_id, int) and token_id != hf.unk_token_id else [])
        found = sorted(i for i in ids if hf.decode([i]).strip() == side)
        if not found:
            raise ValueError(f"the tokenizer has no single token for {side!r}")
        return found

    def _decoder_prefix(self) -> list[int]:
        config = self.model.config
        start = config.decoder_start_token_id
        if start is None and self.model.generation_config is not None:
            start = self.model.generation_config.decoder_start_token_id
        if start is None:
            raise ValueError("the seq2seq model has no decoder_start_token_id in its config")
        return [start, *self.tokenizer.encode(self.template.answer_prefix)]

    def model_input(self, prompt: Prompt) -> str:
        """The text the model reads: the encoder's instruction (seq2seq) or the rendered prompt."""
        return self.instruction(prompt) if self.seq2seq else self.render(prompt)

    def render_shaped(self, prompt: ShapedPrompt) -> str:
        """A set or list prompt as the model reads it: the encoder's instruction (seq2seq), else
        as every judge renders it (:meth:`LLMBackend.render_shaped`)."""
        if not self.seq2seq:
            return super().render_shaped(prompt)
        if prompt.shape not in TEMPLATES:
            raise ValueError(f"shape must be one of {', '.join(TEMPLATES)}, got {prompt.shape!r}")
        return TEMPLATES[prompt.shape].instruction(*self.shaped_texts(prompt))

    async def judge(self, prompts: Sequence[Prompt | ShapedPrompt]) -> BatchResult:
        if not prompts:
            return BatchResult([])
        return await asyncio.to_thread(self.judge_sync, list(prompts))

    def judge_sync(self, prompts: Sequence[Prompt | ShapedPrompt]) -> BatchResult:
        """One inference, blocking: the pairs through the model in one forward pass (the sets
        in one more, the lists in one batched generation)."""
        torch = self._torch
        pairs, shaped = split_shapes(prompts)
        answers: list[Any] = [None] * len(prompts)
        tokens = completion = 0
        with self._lock, torch.inference_mode():
            if pairs:
                logits, spent = self._next_logits([self.model_input(prompts[i]) for i in pairs],  # type: ignore[arg-type]
                                                  self.decoder_prefix)
                a, b = (logits[:, self.answer_ids[s]].max(dim=-1).values.tolist() for s in ("A", "B"))
                for i, x, y in zip(pairs, a, b, strict=True):
                    answers[i] = judgment_from_scores(x, y)
                tokens, completion = tokens + spent, completion + len(pairs)
            if shaped.get("set"):
                sets = [prompts[i] for i in shaped["set"]]
                prefix = self._shape_decoder_prefix("set")
                logits, spent = self._next_logits([self.render_shaped(p) for p in sets], prefix)  # type: ignore[arg-type]
                for row, (i, p) in enumerate(zip(shaped["set"], sets, strict=True)):
                    scores = {j: float(logits[row, self.label_tokens(j)].max()) for j in range(len(p.ids))}
                    answers[i] = shaped_choice(set_from_scores(scores, len(p.ids)))
                tokens, completion = tokens + spent, completion + len(sets)
            if shaped.get("list"):
                lists = [prompts[i] for i in shaped["list"]]
                texts, spent, made = self._generate([self.render_shaped(p) for p in lists],  # type: ignore[arg-type]
                                                    max(answer_room("list", len(p.ids), self.tokenizer)
                                                        for p in lists))
                for i, p, text in zip(shaped["list"], lists, texts, strict=True):
                    answers[i] = shaped_choice(parse_list(text, len(p.ids)))
                tokens, completion = tokens + spent, completion + made
        return BatchResult(answers, prompt_tokens=tokens, completion_tokens=completion)

    def _shape_decoder_prefix(self, shape: str) -> list[int]:
        if not self.seq2seq:
            return []
        return [self.decoder_prefix[0], *self.tokenizer.encode(TEMPLATES[shape].answer_prefix)]

    def _rows(self, texts: list[str]) -> list[list[int]]:
        return [self.hf_tokenizer.encode(t, add_special_tokens=not self.chat) for t in texts]

    def _next_logits(self, texts: list[str], decoder_prefix: list[int]) -> tuple[Any, int]:
        """The next-token logits after each text (one padded forward pass) and the tokens read."""
        torch = self._torch
        rows = self._rows(texts)
        ids, mask = self._pad(rows, left=not self.seq2seq)
        inputs = {"input_ids": ids, "attention_mask": mask, **self._extra}
        if self.seq2seq:
            inputs["decoder_input_ids"] = torch.tensor([decoder_prefix] * len(rows), device=self.device)
        elif self._position_ids:
            inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(**inputs).logits[:, -1, :].float()
        return logits, int(mask.sum()) + len(decoder_prefix) * len(rows)

    def _generate(self, texts: list[str], room: int) -> tuple[list[str], int, int]:
        """Greedy generation of at most ``room`` new tokens after each text, in one batch: the
        texts made, the tokens read and the tokens made (up to each row's end of generation)."""
        rows = self._rows(texts)
        ids, mask = self._pad(rows, left=not self.seq2seq)
        config = self.model.generation_config
        out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=room, do_sample=False,
                                  num_beams=1, pad_token_id=self._pad_id,
                                  **({"temperature": None, "top_p": None, "top_k": None}
                                     if config is not None else {}))
        new = out[:, 1 if self.seq2seq else ids.shape[1]:].tolist()  # past the decoder's start token
        ends = set(_as_list(getattr(config, "eos_token_id", None))) | {self.hf_tokenizer.eos_token_id}
        made, texts_out = 0, []
        for row in new:
            cut = next((k for k, t in enumerate(row) if t in ends), len(row))
            made += cut
            texts_out.append(self.hf_tokenizer.decode(row[:cut], skip_special_tokens=True))
        return texts_out, int(mask.sum()), made

    def _pad(self, rows: list[list[int]], left: bool) -> tuple[Any, Any]:
        torch = self._torch
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span], mask[i, span] = torch.tensor(row, dtype=torch.long), 1
        return ids.to(self.device), mask.to(self.device)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
