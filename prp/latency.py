"""Which latency model predicts a judge's seconds, where it came from, and its refits.

Rules:

* **Order of choice** (:func:`resolve`): a model given explicitly (``--latency``), else one
  refitted on earlier real runs of the same judge and stored in the cache directory, else the
  judge's default (:func:`default_for`). Every choice carries a ``source`` saying which it is, and
  every prediction prints it.
* **Defaults** are per backend and measured on this project's 2-core CPU machines where there is
  a measurement; otherwise they are stated guesses, and say so:

  - llama.cpp, ``qwen2.5-coder-1.5b``: 1.32 s per inference + 0.00644 s per prompt token (about
    1.7 s for a 233-token prompt in a batch of 8, consecutive prompts sharing their KV prefix):
    the first ``make demo`` on an idle 2-core machine, 10 inferences, 129 s
    (``bench/results/demo-idle-latency.json``). The earlier figure, 0.0131 s a token from the run
    of ``bench/results/real-qwen1.5b-dl19.json``, was measured under load and predicted the
    idle demo +93 %.
  - llama.cpp, ``qwen2.5-coder-0.5b``: 0.425 s + 0.304 s per prompt + 0.00158 s per prompt token,
    fitted by ``prp calibrate`` on ``bench/results/llama-qwen0.5b-latency.json``.
  - llama.cpp, ``smollm2-135m``: the 0.5B's figures (a guess: an upper bound).
  - llama.cpp, any other GGUF, and transformers: the 1.5B's figure (a guess: a ~1.5B judge on
    this CPU).
  - openai (HTTP): a guess, a mid-size judge on one GPU server: 0.1 s a request, 10 ms a prompt,
    0.2 ms a prompt token (:data:`cost.model.DEFAULT_LATENCY`).
  - simulated judges: the same illustrative GPU figures.

* **Refits** (:func:`record_run`): after a real run with a cache directory, the run's timed
  inferences are added to the judge's records in ``<cache-dir>/latency.json`` (the last
  :data:`KEEP` kept) and the model is refitted on them: :func:`cost.calibrate.fit` when they hold
  at least 3 inferences of at least 2 sizes, else one rate per prompt token (per prompt when no
  tokens were reported), which extrapolates in proportion. The file is replaced atomically; two
  runs finishing at once may lose one run's records, never corrupt the file. A file that cannot
  be read is ignored with a warning (the default is used) and rewritten by the next run.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cost.calibrate import fit
from cost.model import DEFAULT_LATENCY, LatencyModel

FILENAME = "latency.json"
KEEP = 1000  # most recent timed inferences kept per judge

QWEN_1_5B_CPU = LatencyModel(1.32, 0.0, 0.00644)
QWEN_0_5B_CPU = LatencyModel(0.425, 0.304, 0.00158)

_QWEN_1_5B = "measured on an idle 2-core CPU: bench/results/demo-idle-latency.json"
_QWEN_0_5B = "measured on a 2-core CPU: bench/results/llama-qwen0.5b-calibration.txt"
_GPU_GUESS = "a guess: a mid-size judge on one GPU"
_LLAMA_MODELS = {
    "qwen2.5-coder-1.5b": (QWEN_1_5B_CPU, _QWEN_1_5B),
    "qwen2.5-coder-0.5b": (QWEN_0_5B_CPU, _QWEN_0_5B),
    "smollm2-135m": (QWEN_0_5B_CPU, "a guess: the 0.5B's figures, " + _QWEN_0_5B),
}


@dataclass(frozen=True)
class LatencyChoice:
    """A latency model and where it came from (printed beside every prediction)."""

    model: LatencyModel
    source: str

    def describe(self) -> str:
        m = self.model
        decode = f" + {m.delta:.3g}*output_tokens" if m.delta else ""
        return (f"t = {m.alpha:.3g} + {m.beta:.3g}*prompts + {m.gamma:.3g}*prompt_tokens{decode} s "
                f"({self.source})")

    def to_dict(self) -> dict:
        m = self.model
        return {"alpha": m.alpha, "beta": m.beta, "gamma": m.gamma, "delta": m.delta, "source": self.source}


def default_for(kind: str | None, model: str | None = None) -> LatencyChoice:
    """The default latency model of a judge: backend ``kind`` and model name or path."""
    label = (f"{kind}/{model}" if model else kind) if kind else "this judge"
    if kind == "llama.cpp":
        name = model or "qwen2.5-coder-1.5b"
        if name in _LLAMA_MODELS:
            latency, source = _LLAMA_MODELS[name]
            return LatencyChoice(latency, f"default for {kind}/{name}, {source}")
        return LatencyChoice(QWEN_1_5B_CPU, f"default for {label}: a guess, the 1.5B's figure "
                                            f"({_QWEN_1_5B})")
    if kind == "transformers":
        return LatencyChoice(QWEN_1_5B_CPU, f"default for {label}: a guess, a ~1.5B judge on this "
                                            f"CPU ({_QWEN_1_5B})")
    if kind == "openai":
        return LatencyChoice(DEFAULT_LATENCY, f"default for {label}: {_GPU_GUESS} server")
    return LatencyChoice(DEFAULT_LATENCY, f"default for {label}: illustrative, {_GPU_GUESS}")


def default_for_backend(backend: object) -> LatencyChoice:
    """:func:`default_for` a backend object (its ``kind`` and ``model_id``, when it has them)."""
    return default_for(getattr(backend, "kind", None), getattr(backend, "model_id", None))


def _path(cache_dir: str | os.PathLike[str]) -> Path:
    return Path(cache_dir).expanduser() / FILENAME


def _read(cache_dir: str | os.PathLike[str]) -> dict:
    path = _path(cache_dir)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        judges = data["judges"]
        if not isinstance(judges, dict):
            raise TypeError("'judges' is not an object")
        return judges
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"{path}: unreadable latency fits ({type(exc).__name__}: {exc}); using the "
                      "default latency model", RuntimeWarning, stacklevel=3)
        return {}


def stored(cache_dir: str | os.PathLike[str] | None, judge: str) -> LatencyChoice | None:
    """The model refitted for ``judge`` on earlier runs kept in ``cache_dir``, if any."""
    if cache_dir is None:
        return None
    entry = _read(cache_dir).get(judge)
    if not isinstance(entry, dict):
        return None
    try:
        model = LatencyModel(float(entry["alpha"]), float(entry["beta"]), float(entry["gamma"]),
                             float(entry.get("delta", 0.0)))
        count = int(entry["inferences"])
    except (KeyError, TypeError, ValueError):
        return None
    return LatencyChoice(model, f"fitted on {count} timed inferences of earlier runs, {_path(cache_dir)}")


def resolve(explicit: LatencyModel | None, cache_dir: str | os.PathLike[str] | None, judge: str,
            default: LatencyChoice) -> LatencyChoice:
    """The latency model a run of ``judge`` uses (see the order of choice above)."""
    if explicit is not None:
        return LatencyChoice(explicit, "given with --latency")
    return stored(cache_dir, judge) or default


def refit(records: Sequence[dict]) -> LatencyModel | None:
    """The latency model of timed inferences (see *Refits* above); None for no usable record."""
    if len(records) >= 3 and len({r["prompts"] for r in records}) >= 2:
        return fit(records)
    seconds = sum(r["seconds"] for r in records)
    tokens = sum(r["prompt_tokens"] for r in records)
    prompts = sum(r["prompts"] for r in records)
    if tokens > 0:
        return LatencyModel(0.0, 0.0, seconds / tokens)
    if prompts > 0:
        return LatencyModel(0.0, seconds / prompts, 0.0)
    return None


def record_run(cache_dir: str | os.PathLike[str], judge: str,
               records: Sequence[dict]) -> LatencyChoice | None:
    """Add a run's timed inferences to ``judge``'s records in ``cache_dir``, refit and store the
    model; returns it (None when the run timed no inference: nothing changes)."""
    new = [[int(r["prompts"]), float(r["prompt_tokens"]), float(r["seconds"]),
            float(r.get("completion_tokens", 0))] for r in records]
    if not new:
        return None
    judges = _read(cache_dir)
    entry = judges.get(judge) if isinstance(judges.get(judge), dict) else {}
    kept = [row + [0.0] * (4 - len(row)) for row in entry.get("records", [])
            if isinstance(row, list) and len(row) in (3, 4)]  # 3: written before output tokens were
    kept = (kept + new)[-KEEP:]
    model = refit([{"prompts": p, "prompt_tokens": t, "seconds": s, "completion_tokens": c}
                   for p, t, s, c in kept])
    if model is None:
        return None
    judges[judge] = {"alpha": model.alpha, "beta": model.beta, "gamma": model.gamma, "delta": model.delta,
                     "inferences": len(kept), "records": kept}
    path = _path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=FILENAME, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "judges": judges}, fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return LatencyChoice(model, f"refitted on {len(kept)} timed inferences, stored in {path}")


def judge_key(spec: str, model: str | None = None, base_url: Sequence[str] | None = None) -> str:
    """The name a judge's latency model is stored under: its label and, for a server, its URLs."""
    from prp.oracles.judges import describe

    name = spec.partition(":")[0]
    urls = f"@{','.join(base_url)}" if name == "openai" and base_url else ""
    return describe(spec, model) + urls


def choose(explicit: LatencyModel | None, cache_dir: str | os.PathLike[str] | None, spec: str,
           model: str | None = None, base_url: Sequence[str] | None = None) -> LatencyChoice:
    """The latency model of a run of judge ``spec``: ``explicit``, else the one refitted on earlier
    runs of this judge in ``cache_dir`` (never for the offline judges: simulated, replay), else
    the judge's default."""
    from prp.oracles.judges import DEFAULT_LLAMA_MODEL, OFFLINE

    name = spec.partition(":")[0]
    if name in OFFLINE:
        return resolve(explicit, None, judge_key(spec), default_for(name))
    model = model or (DEFAULT_LLAMA_MODEL if name == "llama.cpp" else None)
    return resolve(explicit, cache_dir, judge_key(spec, model, base_url), default_for(name, model))
