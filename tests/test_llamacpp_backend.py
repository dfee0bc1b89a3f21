"""The embedded llama.cpp judge with the packaged SmolLM2 GGUF (plumbing: it judges at chance)."""

from __future__ import annotations

import asyncio
import hashlib
import math

import pytest
from conftest import packaged_llama

from prp import Reranker
from prp.cache import MemoryCache
from prp.models import MODELS, ModelError, PackagedModel, model_path
from prp.types import Prompt

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def backend():
    return packaged_llama("smollm2-135m")


DOCS = ["Fleas are small insects that live on dogs and cats and feed on blood.",
        "Paris is the capital of France.",
        "The flea life cycle has four stages: egg, larva, pupa and adult.",
        "Concrete flooring costs depend on the finish.",
        "A flea can live up to a year."]
IDS = [f"d{i}" for i in range(len(DOCS))]


def prompts(pairs):
    return [Prompt("q1", "how long is the life cycle of a flea", IDS[a], DOCS[a], IDS[b], DOCS[b])
            for a, b in pairs]


def test_one_judgment_per_prompt_with_margins(backend):
    batch = prompts([(0, 1), (1, 0), (2, 3), (4, 2)])
    result = asyncio.run(backend.judge(batch))
    assert len(result.judgments) == 4
    for judgment in result.judgments:
        assert judgment.parsed and judgment.preferred in ("A", "B")
        assert math.isfinite(judgment.margin) and (judgment.margin > 0) == (judgment.preferred == "A")
    assert result.prompt_tokens > 4 * 40 and result.completion_tokens == 4


def test_deterministic_and_independent_of_batching(backend):
    batch = prompts([(0, 1), (1, 0), (2, 3), (3, 2), (0, 4)])
    first = asyncio.run(backend.judge(batch)).judgments
    again = asyncio.run(backend.judge(batch)).judgments
    alone = [asyncio.run(backend.judge([p])).judgments[0] for p in batch]
    assert [j.preferred for j in first] == [j.preferred for j in again] == [j.preferred for j in alone]
    for a, b in zip(first, alone, strict=True):
        assert a.margin == pytest.approx(b.margin, abs=1e-2)  # prefix reuse may move the last digits


def test_rerank_and_rerun_over_the_cache(backend):
    cache = MemoryCache()
    reranker = Reranker(backend, sorter="quicksort", k=3, batch_size=4, cache=cache)
    result = reranker.rank("how long is the life cycle of a flea", DOCS, IDS)
    assert sorted(result.doc_ids) == sorted(IDS) and result.cost.inferences > 0
    assert result.cost.input_tokens > 0
    again = Reranker(backend, sorter="quicksort", k=3, batch_size=4, cache=cache).rank(
        "how long is the life cycle of a flea", DOCS, IDS)
    assert again.doc_ids == result.doc_ids and again.cost.inferences == 0


def test_truncation_uses_the_model_tokenizer(backend):
    long = " ".join(["fleas"] * 2000)
    text = backend.instruction(Prompt("q", "query", "a", long, "b", "short"))
    passage = text.split('Passage A: "')[1].split('"')[0]
    assert len(backend.tokenizer.encode(passage)) <= backend.passage_tokens
    assert len(passage) < len(long)


def test_name_is_the_cache_identity(backend):
    name = backend.name
    assert name.startswith("llama.cpp:smollm2-135m#" + MODELS["smollm2-135m"].sha256[:16])
    assert "prp-v1" in name and "p128" in name and "q64" in name and name.endswith(":chat")


def test_bad_arguments(tmp_path):
    from prp.oracles.llamacpp import LlamaCppBackend
    with pytest.raises(ValueError, match="not both or neither"):
        LlamaCppBackend()
    with pytest.raises(FileNotFoundError, match="no GGUF model"):
        LlamaCppBackend(model_path=tmp_path / "missing.gguf")
    with pytest.raises(ValueError, match="known: qwen2.5-coder-1.5b"):
        model_path("gpt-9")


def test_split_model_assembly_checks_the_hash(tmp_path, monkeypatch):
    from prp import models
    parts = [tmp_path / f"part{i:02d}.bin" for i in (1, 2, 3)]
    for i, part in enumerate(parts):
        part.write_bytes(bytes([i]) * 1000)
    good = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    monkeypatch.setenv("PRP_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(models, "_part_files", lambda model: parts)
    fake = PackagedModel("fake", "fake.gguf", ("p1", "p2", "p3"), good, "pip install fake")
    monkeypatch.setitem(models.MODELS, "fake", fake)
    path = model_path("fake")
    assert path.read_bytes() == b"".join(p.read_bytes() for p in parts)
    monkeypatch.setitem(models.MODELS, "bad", PackagedModel("bad", "bad.gguf", ("p1", "p2"), "0" * 64, "x"))
    with pytest.raises(ModelError, match="expected 0000"):
        model_path("bad")
    assert not list((tmp_path / "models").glob("bad*"))  # no half-written file left behind
