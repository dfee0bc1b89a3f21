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

from prp.oracles.llm import LLMBackend, file_sha256
from prp.prompts import judgment_from_scores
from prp.types import BatchResult, Prompt

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

    def render(self, prompt: Prompt) -> str:
        """Plain: instruction + " Passage"; chat: the template's user turn, then "Passage"."""
        if not self.chat:
            return super().render(prompt)
        messages = [{"role": "user", "content": self.instruction(prompt)}]
        text = self.hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + self.template.answer_prefix

    def model_input(self, prompt: Prompt) -> str:
        """The text the model reads: the encoder's instruction (seq2seq) or the rendered prompt."""
        return self.instruction(prompt) if self.seq2seq else self.render(prompt)

    async def judge(self, prompts: Sequence[Prompt]) -> BatchResult:
        if not prompts:
            return BatchResult([])
        return await asyncio.to_thread(self.judge_sync, list(prompts))

    def judge_sync(self, prompts: Sequence[Prompt]) -> BatchResult:
        """One inference, blocking: the batch through the model in one forward pass."""
        torch = self._torch
        with self._lock, torch.inference_mode():
            rows = [self.hf_tokenizer.encode(self.model_input(p), add_special_tokens=not self.chat)
                    for p in prompts]
            ids, mask = self._pad(rows, left=not self.seq2seq)
            inputs = {"input_ids": ids, "attention_mask": mask, **self._extra}
            if self.seq2seq:
                prefix = torch.tensor([self.decoder_prefix] * len(rows), device=self.device)
                inputs["decoder_input_ids"] = prefix
            elif self._position_ids:
                inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(**inputs).logits[:, -1, :].float()
            a, b = (logits[:, self.answer_ids[s]].max(dim=-1).values.tolist() for s in ("A", "B"))
        judgments = [judgment_from_scores(x, y) for x, y in zip(a, b, strict=True)]
        tokens = int(mask.sum()) + len(self.decoder_prefix) * len(rows)
        return BatchResult(judgments, prompt_tokens=tokens, completion_tokens=len(rows))

    def _pad(self, rows: list[list[int]], left: bool) -> tuple[Any, Any]:
        torch = self._torch
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span], mask[i, span] = torch.tensor(row, dtype=torch.long), 1
        return ids.to(self.device), mask.to(self.device)
