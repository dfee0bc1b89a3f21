"""Oracle backends: whatever judges a prompt. See :mod:`prp.oracles.base` for the protocol."""

from __future__ import annotations

import importlib

from prp.oracles.base import Backend, BackendError
from prp.oracles.judges import JudgeUnavailable, make_judge
from prp.oracles.simulated import NoisyOracle, NoJudgments, NoJudgmentsWarning, PerfectOracle, ScoresOracle

__all__ = ["Backend", "BackendError", "JudgeUnavailable", "LlamaCppBackend", "NoJudgments",
           "NoJudgmentsWarning", "NoisyOracle", "OpenAIBackend", "PerfectOracle", "ScoresOracle",
           "TransformersBackend", "make_judge"]

# LLM backends, imported on first use: each needs an optional extra.
_LAZY = {"OpenAIBackend": ("prp.oracles.http", "http"),
         "LlamaCppBackend": ("prp.oracles.llamacpp", "llama"),
         "TransformersBackend": ("prp.oracles.hf", "transformers")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'prp.oracles' has no attribute {name!r}")
    module, extra = _LAZY[name]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(f"{name} needs: pip install 'prp[{extra}]' ({exc})") from exc
