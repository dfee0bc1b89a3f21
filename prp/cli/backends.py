"""The judge of a command, from its command-line arguments (``rerank``, ``bench``, ``simulate``,
``serve``, ``calibrate-oracle``).

``add_backend_args(parser)`` adds the options, ``make_backend(args)`` builds the backend. The
judge is one word on every command: ``--judge NAME[:KEY=VALUE,...]``, its options after the
colon (``prp plan --judge`` takes the simulated ones):

* ``perfect`` / ``noisy``: simulated judges reading graded ``--qrels``; ``noisy`` takes
  ``scale,bias,noise,seed`` (``--judge noisy:scale=1,bias=1.5,noise=1.0,seed=0``).
* ``llama.cpp`` (default): ``--model`` is a packaged GGUF name (default
  ``qwen2.5-coder-1.5b``; see :mod:`prp.models`) or a path to a ``.gguf`` file.
* ``transformers``: ``--model`` is a Hugging Face id or a local directory (required).
* ``replay``: ``--judge replay:path=SET.json.gz``, a replay set (``bench/replay_matrix.py``
  builds one): a real judge's recorded answers, judged again at no cost; a prompt it does not
  hold is an error.
* ``openai``: an OpenAI-compatible server; ``--model``, ``--base-url`` (repeatable: a pool that
  routes around failing endpoints) and ``--api-key`` default to the environment
  (``PRP_OPENAI_*``, ``OPENAI_*``).

An LLM judge's options are passed to its backend's constructor (``llama.cpp:n_threads=2``,
``transformers:device=cpu``, ``openai:endpoint=chat,tokenizer=qwen2.5-coder-0.5b``). Their keys
are checked against the constructor before anything is loaded: an unknown key raises a
ValueError listing the accepted ones (:func:`accepted_options`).
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


class JudgeSpec(argparse.Action):
    """``--judge NAME[:KEY=VALUE,...]``: sets ``judge`` (the name) and ``judge_options`` (the
    text after the colon)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: object,
                 option: str | None = None) -> None:
        name, _, options = str(value).partition(":")
        if name not in BACKENDS:
            parser.error(f"argument --judge: unknown judge {name!r}; choose from {', '.join(BACKENDS)}")
        namespace.judge, namespace.judge_options = name, options


def add_backend_args(parser: argparse.ArgumentParser, default: str = "llama.cpp") -> None:
    """Add ``--judge``, ``--model``, ``--base-url``, ``--api-key`` and ``--qrels`` to ``parser``."""
    group = parser.add_argument_group("judge")
    group.add_argument("--judge", action=JudgeSpec, default=default, metavar="NAME[:OPTIONS]",
                       help=f"who judges the pairs: {', '.join(BACKENDS)}, with options after a colon "
                            f"(noisy:scale=1,bias=1.5; replay:path=SET.json.gz; llama.cpp:n_threads=2) "
                            f"(default: {default})")
    parser.set_defaults(judge_options="")
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


def backend_label(args: argparse.Namespace) -> str:
    """A short description of the configured judge, e.g. ``llama.cpp/qwen2.5-coder-1.5b``."""
    if args.judge in SIMULATED:
        return args.judge + (f":{args.judge_options}" if args.judge_options else "")
    model = args.model or (DEFAULT_LLAMA_MODEL if args.judge == "llama.cpp" else "(default)")
    return f"{args.judge}/{model}"


def make_backend(args: argparse.Namespace) -> Backend:
    """The backend ``args`` describe (this loads an LLM backend's model)."""
    options = _options(args.judge_options)
    if args.judge in SIMULATED:
        return _simulated(args, options)
    if args.qrels:
        raise ValueError(f"--qrels is for the simulated judges, not --judge {args.judge}")
    try:
        _check_options(args.judge, options)
        return _BUILDERS[args.judge](args, options)
    except (ImportError, ModelError) as exc:
        raise BackendUnavailable(f"--judge {args.judge} is not available: {exc}") from exc


# Constructor parameters that are not judge options: set by other flags, or not plain values.
_NOT_OPTIONS = frozenset({"self", "model", "model_path", "base_url", "api_key", "model_id", "weights_hash",
                          "template", "transport"})
_CLASSES = {"llama.cpp": "LlamaCppBackend", "transformers": "TransformersBackend", "openai": "OpenAIBackend"}


def accepted_options(backend: str) -> list[str]:
    """The judge options ``backend`` accepts (``--judge NAME:KEY=VALUE``): its constructor's
    keyword parameters, and those of :class:`prp.oracles.llm.LLMBackend` when it passes extra
    keywords on. Importing the class loads no model (an ImportError means its extra is missing)."""
    if backend == "noisy":
        return ["bias", "noise", "scale", "seed"]
    if backend == "replay":
        return ["path"]
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
        raise ValueError(f"--judge {backend}: unknown option{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)}; accepted: "
                         f"{', '.join(accepted_options(backend)) or 'none'}")


def _options(text: str) -> dict[str, object]:
    if not text.strip():
        return {}
    _, options = parse_spec(f"options:{text}")
    return options


def _simulated(args: argparse.Namespace, options: dict[str, object]) -> Backend:
    if not args.qrels:
        raise ValueError(f"--judge {args.judge} needs --qrels (the graded judgments it reads)")
    for flag, value in (("--model", args.model), ("--base-url", args.base_url), ("--api-key", args.api_key)):
        if value:
            raise ValueError(f"{flag} is for the LLM judges, not --judge {args.judge}")
    if args.judge == "perfect" and options:
        raise ValueError("--judge perfect takes no options")
    spec = args.judge + ("" if args.judge == "perfect" else ":" + args.judge_options)
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
        raise ValueError("--judge transformers needs --model (a Hugging Face id or a local path)")
    from prp.oracles import TransformersBackend

    return TransformersBackend(args.model, **options)


def _openai(args: argparse.Namespace, options: dict[str, object]) -> Backend:
    from prp.oracles import OpenAIBackend

    return OpenAIBackend(model=args.model, base_url=args.base_url, api_key=args.api_key, **options)


def _replay(args: argparse.Namespace, options: dict[str, object]) -> Backend:
    from prp.oracles.replay import ReplayOracle

    if set(options) != {"path"} or args.model:
        raise ValueError("--judge replay takes one option, the replay set: --judge replay:path=SET.json.gz")
    if not Path(str(options["path"])).is_file():
        raise ValueError(f"--judge replay: no replay set at {options['path']}")
    return ReplayOracle(str(options["path"]))


_BUILDERS: dict[str, Callable[[argparse.Namespace, dict[str, object]], Backend]] = {
    "llama.cpp": _llama, "transformers": _transformers, "openai": _openai, "replay": _replay}
