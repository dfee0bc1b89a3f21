"""The judge options of a command (``rerank``, ``bench``, ``simulate``, ``serve``,
``calibrate-oracle``): ``--judge NAME[:KEY=VALUE,...]`` (one word on every command; ``prp plan
--judge`` takes the simulated ones), ``--model``, ``--base-url`` (repeatable: a pool),
``--api-key`` and ``--qrels``. ``make_backend(args)`` builds the judge with
:func:`prp.oracles.judges.make_judge` (which says what each judge takes). Building a backend
loads its model: commands that only predict must not call :func:`make_backend`.
"""

from __future__ import annotations

import argparse

from prp.models import MODELS
from prp.oracles import Backend
from prp.oracles.judges import DEFAULT_LLAMA_MODEL, JUDGES, OFFLINE, SIMULATED, describe, make_judge
from prp.oracles.simulated import FITTED_QWEN_1_5B

__all__ = ["DEFAULT_LLAMA_MODEL", "OFFLINE", "SIMULATED", "add_backend_args", "backend_label", "judge_spec",
           "make_backend"]


class JudgeSpec(argparse.Action):
    """``--judge NAME[:KEY=VALUE,...]``: sets ``judge`` (the name) and ``judge_options`` (the
    text after the colon)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: object,
                 option: str | None = None) -> None:
        name, _, options = str(value).partition(":")
        if name not in JUDGES:
            parser.error(f"argument --judge: unknown judge {name!r}; choose from {', '.join(JUDGES)}")
        namespace.judge, namespace.judge_options = name, options


def add_backend_args(parser: argparse.ArgumentParser, default: str = "llama.cpp",
                     qrels_help: str | None = None) -> None:
    """Add ``--judge``, ``--model``, ``--base-url``, ``--api-key`` and ``--qrels`` to ``parser``
    (``qrels_help``: the command's own help for ``--qrels``)."""
    group = parser.add_argument_group("judge")
    group.add_argument("--judge", action=JudgeSpec, default=default, metavar="NAME[:OPTIONS]",
                       help=f"who judges the pairs: {', '.join(JUDGES)}, with options after a colon "
                            f"(noisy:scale=1,bias=1.5; replay:path=SET.json.gz; llama.cpp:n_threads=2); "
                            f"a bare noisy is fitted to qwen2.5-coder-1.5b: "
                            f"noisy:{','.join(f'{k}={v}' for k, v in FITTED_QWEN_1_5B.items())},seed=0 "
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
                       help=qrels_help or "perfect/noisy: TREC qrels the judge reads (default: none)")


def judge_spec(args: argparse.Namespace) -> str:
    return args.judge + (f":{args.judge_options}" if args.judge_options else "")


def backend_label(args: argparse.Namespace) -> str:
    """A short description of the configured judge, e.g. ``llama.cpp/qwen2.5-coder-1.5b``."""
    return describe(judge_spec(args), args.model)


def make_backend(args: argparse.Namespace, qrels: object = None) -> Backend:
    """The judge ``args`` describe (this loads an LLM judge's model); ``qrels``: the graded
    judgments already loaded from ``--qrels``, not read again."""
    if args.judge in SIMULATED and not args.qrels:
        raise ValueError(f"--judge {args.judge} needs qrels: give --qrels FILE (the graded judgments)")
    return make_judge(judge_spec(args), model=args.model, base_url=args.base_url, api_key=args.api_key,
                      qrels=args.qrels if qrels is None else qrels)
