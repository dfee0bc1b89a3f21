"""Judges from a spec: ``make_judge("noisy:bias=1.5,noise=1.0", qrels=...)``,
``make_judge("llama.cpp:n_threads=2")``, ``make_judge("openai", base_url=[...])``.

Every command and the library build judges here (one place for judge specs). Rules:

* A spec is ``NAME[:KEY=VALUE,...]`` (:mod:`prp.spec`), ``NAME`` one of :data:`JUDGES`:

  * ``perfect`` / ``noisy``: simulated judges reading graded ``qrels`` (a mapping, or a path to
    TREC qrels); ``perfect`` takes ``ties`` (``perfect:ties=off``: equal grades broken by a fixed
    per-document jitter); ``noisy`` takes ``scale``, ``bias``, ``noise``, ``seed`` and
    ``doc_noise`` (an error fixed per document; see :mod:`prp.oracles.simulated`). A bare ``noisy`` is
    the judge fitted to the packaged qwen2.5-coder-1.5b (``scale=0.2377,bias=1.523,noise=0.7707``,
    :data:`~prp.oracles.simulated.FITTED_QWEN_1_5B`); with some options the others are scale 1,
    bias 0, noise 0, seed 0, and one that leaves bias and noise at 0 that way is a ValueError (it
    would rank like ``perfect``; see :class:`~prp.oracles.simulated.NoisyOracle`). Labels
    (:func:`describe`) spell a noisy judge's parameters out: ``noisy`` is labelled
    ``noisy:scale=0.2377,bias=1.523,noise=0.7707,seed=0``.
  * ``replay``: ``replay:path=SET.json.gz``, a real judge's recorded answers
    (:class:`~prp.oracles.replay.ReplayOracle`).
  * ``llama.cpp`` (``model``: a packaged GGUF name, default :data:`DEFAULT_LLAMA_MODEL`, or a
    ``.gguf`` path), ``transformers`` (``model``: a Hugging Face id or directory, required),
    ``openai`` (``model``, ``base_url`` - one or a pool -, ``api_key``; default from the
    environment). Their options are the backend constructor's keyword parameters, checked
    before anything loads: an unknown key raises a ValueError listing the accepted ones
    (:func:`accepted_options`).

* Errors are ValueErrors naming the problem; a missing extra or packaged model raises
  :class:`JudgeUnavailable` (a ValueError) saying what to install. Building an LLM judge loads
  its model.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from prp.oracles.base import Backend
from prp.oracles.lazy import llm_backend
from prp.oracles.simulated import NoisyOracle, PerfectOracle
from prp.spec import parse_spec

JUDGES = ("perfect", "noisy", "llama.cpp", "transformers", "openai", "replay")
SIMULATED = ("perfect", "noisy")  # they read qrels
OFFLINE = ("perfect", "noisy", "replay")  # no model answers: their timings say nothing of a judge's
DEFAULT_LLAMA_MODEL = "qwen2.5-coder-1.5b"


class JudgeUnavailable(ValueError):
    """The judge cannot be built here: an extra or a packaged model is missing."""


def split(spec: str) -> tuple[str, dict[str, object]]:
    """``"noisy:bias=1.5"`` -> ``("noisy", {"bias": 1.5})``; ValueError for an unknown judge."""
    name, options = parse_spec(spec)
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; known: {', '.join(JUDGES)} (noisy takes scale, bias, "
                         "noise, seed: noisy:bias=1.5,noise=1.0,seed=0, or none: fitted to "
                         "qwen2.5-coder-1.5b; replay takes path: replay:path=SET.json.gz)")
    return name, options


def make_judge(spec: str, *, model: str | None = None, base_url: str | Sequence[str] | None = None,
               api_key: str | None = None,
               qrels: Mapping[str, Mapping[str, int]] | str | os.PathLike[str] | None = None) -> Backend:
    """The judge ``spec`` names (see the module docstring)."""
    name, options = split(spec)
    if name in OFFLINE:
        for what, value in (("model", model), ("base_url", base_url), ("api_key", api_key)):
            if value:
                raise ValueError(f"{what} is for the LLM judges, not judge {name}")
    if name in SIMULATED:
        return _simulated(name, options, qrels)
    if qrels is not None:
        raise ValueError(f"qrels are for the simulated judges, not judge {name}")
    _check_options(name, options)
    try:
        return _BUILDERS[name](options, model, base_url, api_key)
    except ImportError as exc:
        raise JudgeUnavailable(f"judge {name} is not available: {exc}") from exc


def describe(spec: str, model: str | None = None) -> str:
    """A short label, e.g. ``llama.cpp/qwen2.5-coder-1.5b``, ``perfect`` or
    ``noisy:scale=1,bias=1.5,noise=0,seed=0`` (a noisy judge's parameters spelled out, those it
    defaults included; a spec it cannot read is returned as it is)."""
    name = spec.partition(":")[0]
    if name == "noisy":
        try:
            options = split(spec)[1]
            if "slot_bias" in options:
                options["slot_bias"] = slot_biases(options["slot_bias"])
            judge = NoisyOracle({}, **options)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            return spec
        label = f"noisy:scale={judge.scale:g},bias={judge.bias:g},noise={judge.noise:g},seed={judge.seed}"
        label += f",doc_noise={judge.doc_noise:g}" if judge.doc_noise else ""
        label += f",{_slot_option(judge.slot_bias)}" if "slot_bias" in options else ""
        return label + (f",set_noise={judge.set_noise:g}" if "set_noise" in options else "")
    if name in OFFLINE:
        return spec
    return f"{name}/{model or (DEFAULT_LLAMA_MODEL if name == 'llama.cpp' else '(default)')}"


# Constructor parameters that are not judge options: separate arguments, or not plain values.
_NOT_OPTIONS = frozenset({"self", "model", "model_path", "base_url", "api_key", "model_id", "weights_hash",
                          "template", "transport"})
_CLASSES = {"llama.cpp": "LlamaCppBackend", "transformers": "TransformersBackend", "openai": "OpenAIBackend"}


def accepted_options(name: str) -> list[str]:
    """The options judge ``name`` accepts: for an LLM judge its constructor's keyword parameters,
    and those of :class:`prp.oracles.llm.LLMBackend` when it passes extra keywords on. Importing
    the class loads no model (an ImportError means its extra is missing)."""
    if name == "noisy":
        return ["bias", "doc_noise", "noise", "scale", "seed", "set_noise", "slot_bias"]
    if name == "perfect":
        return ["ties"]
    if name == "replay":
        return ["path"]
    if name not in _CLASSES:
        return []
    from prp.oracles.llm import LLMBackend

    try:
        init = llm_backend(_CLASSES[name]).__init__
    except ImportError as exc:
        raise JudgeUnavailable(f"judge {name} is not available: {exc}") from exc
    params = list(inspect.signature(init).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        params += inspect.signature(LLMBackend.__init__).parameters.values()
    return sorted({p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                        inspect.Parameter.KEYWORD_ONLY)} - _NOT_OPTIONS)


def _check_options(name: str, options: Mapping[str, object]) -> None:
    unknown = sorted(set(options) - set(accepted_options(name)))
    if unknown:
        raise ValueError(f"judge {name}: unknown option{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)}; accepted: {', '.join(accepted_options(name)) or 'none'}")


def _simulated(name: str, options: dict[str, object], qrels: object) -> Backend:
    if qrels is None:
        raise ValueError(f"judge {name} needs qrels (the graded judgments it reads)")
    if isinstance(qrels, (str, os.PathLike)):
        from prp.data import load_qrels

        qrels = load_qrels(qrels)
    if name == "perfect":
        _check_options(name, options)
        return PerfectOracle(qrels, **options)  # type: ignore[arg-type]
    _check_options(name, options)
    if "slot_bias" in options:
        options = {**options, "slot_bias": slot_biases(options["slot_bias"])}
    return NoisyOracle(qrels, **options)  # type: ignore[arg-type]


def slot_biases(value: object) -> tuple[float, ...]:
    """A ``slot_bias`` option (``1.2/0.5/0.2/0``, or one number) as numbers; ValueError naming it."""
    parts = str(value).split("/") if isinstance(value, str) else [value]
    try:
        if isinstance(value, bool) or not parts:
            raise ValueError
        return tuple(float(p) for p in parts)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"judge noisy: slot_bias must be numbers separated by '/' (e.g. "
                         f"slot_bias=1.2/0.5/0.2/0), got {value!r}") from None


def _slot_option(biases: Sequence[float]) -> str:
    return "slot_bias=" + "/".join(f"{b:g}" for b in biases)


def _llama(options: dict, model: str | None, base_url: object, api_key: object) -> Backend:
    from prp.models import MODELS, ModelError
    LlamaCppBackend = llm_backend("LlamaCppBackend")  # noqa: N806

    model = model or DEFAULT_LLAMA_MODEL
    try:
        if model in MODELS:
            return LlamaCppBackend(model, **options)
        if not model.endswith(".gguf") and not Path(model).exists():
            raise ValueError(f"model {model!r} is neither a packaged model ({', '.join(MODELS)}) "
                             "nor a .gguf file")
        return LlamaCppBackend(model_path=model, **options)
    except ModelError as exc:
        raise JudgeUnavailable(f"judge llama.cpp is not available: {exc}") from exc


def _transformers(options: dict, model: str | None, base_url: object, api_key: object) -> Backend:
    if not model:
        raise ValueError("judge transformers needs a model (a Hugging Face id or a local path)")
    TransformersBackend = llm_backend("TransformersBackend")  # noqa: N806

    return TransformersBackend(model, **options)


def _openai(options: dict, model: str | None, base_url: object, api_key: object) -> Backend:
    OpenAIBackend = llm_backend("OpenAIBackend")  # noqa: N806

    return OpenAIBackend(model=model, base_url=base_url, api_key=api_key, **options)  # type: ignore[arg-type]


def _replay(options: dict, model: str | None, base_url: object, api_key: object) -> Backend:
    from prp.oracles.replay import ReplayOracle

    if "path" not in options:  # the only option _check_options lets through
        raise ValueError("judge replay takes one option, the replay set: replay:path=SET.json.gz")
    if not Path(str(options["path"])).is_file():
        raise ValueError(f"judge replay: no replay set at {options['path']}")
    return ReplayOracle(str(options["path"]))


_BUILDERS: dict[str, Callable[[dict, str | None, object, object], Backend]] = {
    "llama.cpp": _llama, "transformers": _transformers, "openai": _openai, "replay": _replay}
