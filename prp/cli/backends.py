"""The judge of a command, from its command-line arguments (shared by ``rerank`` and ``bench``).

``add_backend_args(parser)`` adds the options, ``make_backend(args)`` builds the backend:

* ``perfect`` / ``noisy``: simulated judges reading graded ``--qrels`` (required); ``noisy``
  takes ``--oracle-options scale=1,bias=1.5,noise=1.0,seed=0``.
* ``llama.cpp`` (default): ``--model`` is a packaged GGUF name (default
  ``qwen2.5-coder-1.5b``; see :mod:`prp.models`) or a path to a ``.gguf`` file.
* ``transformers``: ``--model`` is a Hugging Face id or a local directory (required).
* ``replay``: ``--model`` is a replay set (``bench/replay_matrix.py`` builds one): a real judge's
  recorded answers, judged again at no cost; a prompt it does not hold is an error.
* ``openai``: an OpenAI-compatible server; ``--model``, ``--base-url`` (repeatable: a pool that
  routes around failing endpoints) and ``--api-key`` default to the environment
  (``PRP_OPENAI_*``, ``OPENAI_*``).

For the LLM backends ``--oracle-options key=value,...`` are passed to the backend's constructor
(e.g. ``n_threads=2`` for llama.cpp, ``device=cpu`` for transformers, ``endpoint=chat`` or
``tokenizer=qwen2.5-coder-0.5b`` for openai). Their keys are checked against the backend's
constructor before anything is loaded: an unknown key raises a ValueError listing the accepted
ones (:func:`accepted_options`).
Building a backend loads its model: commands that only predict must not call
:func:`make_backend`. A missing extra or packaged model raises :class:`BackendUnavailable` (a
ValueError, so the CLI exits 2) whose message says what to install.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path

from prp.data import load_qrels
from prp.models import MODELS, ModelError
from prp.oracles import Backend, make_simulated_oracle
from prp.spec import parse_spec

BACKENDS = ("perfect", "noisy", "llama.cpp", "transformers", "openai", "replay")
SIMULATED = ("perfect", "noisy")
DEFAULT_LLAMA_MODEL = "qwen2.5-coder-1.5b"


class BackendUnavailable(ValueError):
    """The backend cannot be built here: an extra or a packaged model is missing."""


def add_backend_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend``, ``--model``, ``--base-url``, ``--api-key``, ``--qrels`` and
    ``--oracle-options`` to ``parser``."""
    group = parser.add_argument_group("judge")
    group.add_argument("--backend", choices=BACKENDS, default="llama.cpp",
                       help="who judges the pairs (default: llama.cpp)")
    group.add_argument("--model", default=None,
                       help=f"llama.cpp: packaged name ({', '.join(MODELS)}; default "
                            f"{DEFAULT_LLAMA_MODEL}) or a .gguf path; transformers: HF id or path; "
                            "openai: the served model name")
    group.add_argument("--base-url", action="append", default=None, metavar="URL",
                       help="openai: server base URL, repeat for a pool of endpoints "
                            "(default: $PRP_OPENAI_BASE_URL or $OPENAI_BASE_URL)")
    group.add_argument("--api-key", default=None, help="openai: API key (default: from the environment)")
    group.add_argument("--qrels", default=None,
                       help="perfect/noisy: TREC qrels the judge reads (default: none)")
    group.add_argument("--oracle-options", default="", metavar="KEY=VALUE,...",
                       help="noisy: scale,bias,noise,seed; LLM backends: constructor options")


def backend_label(args: argparse.Namespace) -> str:
    """A short description of the configured judge, e.g. ``llama.cpp/qwen2.5-coder-1.5b``."""
    if args.backend in SIMULATED:
        return args.backend + (f":{args.oracle_options}" if args.oracle_options else "")
    model = args.model or (DEFAULT_LLAMA_MODEL if args.backend == "llama.cpp" else "(default)")
    return f"{args.backend}/{model}"


def make_backend(args: argparse.Namespace) -> Backend:
    """The backend ``args`` describe (this loads an LLM backend's model)."""
    options = _options(args.oracle_options)
    if args.backend in SIMULATED:
        return _simulated(args, options)
    if args.qrels:
        raise ValueError(f"--qrels is for the simulated judges, not --backend {args.backend}")
    try:
        _check_options(args.backend, options)
        return _BUILDERS[args.backend](args, options)
    except (ImportError, ModelError) as exc:
        raise BackendUnavailable(f"--backend {args.backend} is not available: {exc}") from exc


# Constructor parameters that are not --oracle-options: set by other flags, or not plain values.
_NOT_OPTIONS = frozenset({"self", "model", "model_path", "base_url", "api_key", "model_id", "weights_hash",
                          "template", "transport"})
_CLASSES = {"llama.cpp": "LlamaCppBackend", "transformers": "TransformersBackend", "openai": "OpenAIBackend"}


def accepted_options(backend: str) -> list[str]:
    """The ``--oracle-options`` keys ``backend`` accepts: its constructor's keyword parameters,
    and those of :class:`prp.oracles.llm.LLMBackend` when it passes extra keywords on. Importing
    the class loads no model (an ImportError means its extra is missing)."""
    if backend == "noisy":
        return ["bias", "noise", "scale", "seed"]
    if backend not in _CLASSES:
        return []
    import prp.oracles
    from prp.oracles.llm import LLMBackend

    init = getattr(prp.oracles, _CLASSES[backend]).__init__
    params = list(inspect.signature(init).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        params += inspect.signature(LLMBackend.__init__).parameters.values()
    return sorted({p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                        inspect.Parameter.KEYWORD_ONLY)} - _NOT_OPTIONS)


def _check_options(backend: str, options: dict[str, object]) -> None:
    unknown = sorted(set(options) - set(accepted_options(backend)))
    if unknown:
        raise ValueError(f"--oracle-options: unknown key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} for --backend {backend}; accepted: "
                         f"{', '.join(accepted_options(backend)) or 'none'}")


def _options(text: str) -> dict[str, object]:
    if not text.strip():
        return {}
    _, options = parse_spec(f"options:{text}")
    return options


def _simulated(args: argparse.Namespace, options: dict[str, object]) -> Backend:
    if not args.qrels:
        raise ValueError(f"--backend {args.backend} needs --qrels (the graded judgments it reads)")
    for flag, value in (("--model", args.model), ("--base-url", args.base_url), ("--api-key", args.api_key)):
        if value:
            raise ValueError(f"{flag} is for the LLM backends, not --backend {args.backend}")
    if args.backend == "perfect" and options:
        raise ValueError("--backend perfect takes no --oracle-options")
    spec = args.backend + ("" if args.backend == "perfect" else ":" + args.oracle_options)
    return make_simulated_oracle(spec, load_qrels(args.qrels))


def _llama(args: argparse.Namespace, options: dict[str, object]) -> Backend:
    from prp.oracles import LlamaCppBackend

    model = args.model or DEFAULT_LLAMA_MODEL
    if model in MODELS:
        return LlamaCppBackend(model, **options)
    if not model.endswith(".gguf") and not Path(model).exists():
        raise ValueError(f"--model {model!r} is neither a packaged model ({', '.join(MODELS)}) "
                         "nor a .gguf file")
    return LlamaCppBackend(model_path=model, **options)


def _transformers(args: argparse.Namespace, options: dict[str, object]) -> Backend:
    if not args.model:
        raise ValueError("--backend transformers needs --model (a Hugging Face id or a local path)")
    from prp.oracles import TransformersBackend

    return TransformersBackend(args.model, **options)


def _openai(args: argparse.Namespace, options: dict[str, object]) -> Backend:
    from prp.oracles import OpenAIBackend

    return OpenAIBackend(model=args.model, base_url=args.base_url, api_key=args.api_key, **options)


def _replay(args: argparse.Namespace, options: dict[str, object]) -> Backend:
    from prp.oracles.replay import ReplayOracle

    if not args.model:
        raise ValueError("--backend replay needs --model REPLAY_SET (a .json.gz replay set)")
    if options:
        raise ValueError("--backend replay takes no --oracle-options")
    if not Path(args.model).is_file():
        raise ValueError(f"--backend replay: no replay set at {args.model}")
    return ReplayOracle(args.model)


_BUILDERS: dict[str, Callable[[argparse.Namespace, dict[str, object]], Backend]] = {
    "llama.cpp": _llama, "transformers": _transformers, "openai": _openai, "replay": _replay}
