"""The LLM judges, imported on first use: each needs an optional extra, named when it is missing.

:func:`llm_backend` is the one place that knows which module holds each LLM backend class and
which extra it needs; the package face (``prp.oracles.LlamaCppBackend``) and the judge specs
(:mod:`prp.oracles.judges`) both go through it.
"""

from __future__ import annotations

import importlib

#: Class name -> (module, the ``pip install 'prp[EXTRA]'`` it needs).
LLM_BACKENDS = {"OpenAIBackend": ("prp.oracles.http", "http"),
                "LlamaCppBackend": ("prp.oracles.llamacpp", "llama"),
                "TransformersBackend": ("prp.oracles.hf", "transformers")}


def llm_backend(name: str) -> type:
    """The LLM backend class ``name`` (a key of :data:`LLM_BACKENDS`); ImportError naming the
    extra to install when its packages are missing, KeyError for an unknown name."""
    module, extra = LLM_BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(f"{name} needs: pip install 'prp[{extra}]' ({exc})") from exc
