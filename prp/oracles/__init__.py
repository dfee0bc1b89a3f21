"""Oracle backends: whatever judges a prompt. See :mod:`prp.oracles.base` for the protocol."""

from __future__ import annotations

import importlib

from prp.oracles.base import Backend, BackendError
from prp.oracles.simulated import NoisyOracle, PerfectOracle, Qrels, ScoresOracle
from prp.spec import parse_spec

SIMULATED = ("perfect", "noisy", "replay")

__all__ = ["Backend", "BackendError", "LlamaCppBackend", "NoisyOracle", "OpenAIBackend",
           "PerfectOracle", "ScoresOracle", "TransformersBackend", "make_simulated_oracle"]

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


def make_simulated_oracle(spec: str, qrels: Qrels) -> Backend:
    """``"perfect"`` or ``"noisy:scale=1,bias=1.5,noise=1.0,seed=0"`` -> a simulated judge."""
    name, options = parse_spec(spec)
    if name == "perfect" and not options:
        return PerfectOracle(qrels)
    if name == "replay":
        if set(options) != {"path"}:
            raise ValueError(f"replay takes one option, path: replay:path=SET.json.gz; got {spec!r}")
        from prp.oracles.replay import ReplayOracle

        return ReplayOracle(str(options["path"]))
    if name == "noisy":
        known = {"scale", "bias", "noise", "seed"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown noisy oracle option(s) {sorted(unknown)}; known: {sorted(known)}")
        return NoisyOracle(qrels, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown simulated oracle {spec!r}; known: {', '.join(SIMULATED)} "
                     "(noisy takes scale, bias, noise, seed: noisy:bias=1.5,noise=1.0,seed=0; "
                     "replay takes path: replay:path=SET.json.gz)")
