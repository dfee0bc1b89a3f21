"""Oracle backends: whatever judges a prompt. See :mod:`prp.oracles.base` for the protocol."""

from __future__ import annotations

from prp.oracles.base import Backend, BackendError
from prp.oracles.judges import JudgeUnavailable, make_judge
from prp.oracles.lazy import LLM_BACKENDS, llm_backend
from prp.oracles.simulated import NoisyOracle, NoJudgments, NoJudgmentsWarning, PerfectOracle, ScoresOracle

__all__ = ["Backend", "BackendError", "JudgeUnavailable", "LlamaCppBackend", "NoJudgments",
           "NoJudgmentsWarning", "NoisyOracle", "OpenAIBackend", "PerfectOracle", "ScoresOracle",
           "TransformersBackend", "make_judge"]


def __getattr__(name: str):
    if name not in LLM_BACKENDS:
        raise AttributeError(f"module 'prp.oracles' has no attribute {name!r}")
    return llm_backend(name)  # imported on first use: each needs an optional extra
