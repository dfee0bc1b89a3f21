"""Shared fixtures: the DL19 data (read from ../shared, never copied) and small judges."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from prp import ScoresOracle
from prp.types import BatchResult, Judgment

DL19 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trec-dl-2019"


@pytest.fixture(scope="session")
def dl19_dir() -> Path:
    if not (DL19 / "bm25-top100.json").is_file():
        pytest.skip(f"DL19 data not found at {DL19}")
    return DL19


def packaged_llama(name: str, **options):
    """A llama.cpp judge on packaged model ``name`` (``options`` go to LlamaCppBackend); the test
    skips if the model is not installed."""
    from prp.models import ModelError
    from prp.oracles.llamacpp import LlamaCppBackend
    try:
        return LlamaCppBackend(name, **options)
    except ModelError as exc:
        pytest.skip(str(exc))


class CountingOracle:
    """Wraps a backend and records every batch it is sent (the ground truth for inferences)."""

    def __init__(self, inner, fail_after: int | None = None, exc: Exception | None = None):
        self.inner, self.fail_after, self.exc = inner, fail_after, exc
        self.name, self.keys_by = inner.name, inner.keys_by
        self.batches: list[int] = []

    async def judge(self, prompts):
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise self.exc or ConnectionError("server went away")
        self.batches.append(len(prompts))
        return await self.inner.judge(prompts)


class FixedTokensOracle(ScoresOracle):
    """A scores judge that reports exactly ``tokens`` prompt tokens per prompt."""

    def __init__(self, scores, tokens: int = 10):
        super().__init__(scores)
        self.per_prompt = tokens

    async def judge(self, prompts):
        result = await super().judge(prompts)
        return BatchResult(result.judgments, self.per_prompt * len(prompts), len(prompts))


class UnparsedOracle(ScoresOracle):
    """A scores judge that cannot read its answer for prompts showing ``bad_id`` first."""

    def __init__(self, scores, bad_id: str):
        super().__init__(scores)
        self.bad_id = bad_id

    async def judge(self, prompts):
        result = await super().judge(prompts)
        return BatchResult([Judgment(None, None, parsed=False) if p.first_id == self.bad_id else j
                            for p, j in zip(prompts, result.judgments, strict=True)])


def score_docs(n: int, seed: int = 0, levels: int | None = None) -> tuple[list[str], dict[str, float]]:
    """``n`` docs with ids "d0".."d{n-1}" and random scores (integers in 0..levels-1 if given)."""
    rng = random.Random(seed)
    ids = [f"d{i}" for i in range(n)]
    scores = {d: float(rng.randrange(levels)) if levels else rng.random() for d in ids}
    return ids, scores


def expected_order(ids: list[str], scores: dict[str, float], k: int) -> list[str]:
    """Stable sort's top-k by score, then the rest in first-stage order."""
    top = sorted(ids, key=lambda d: -scores[d])[:k]
    return top + [d for d in ids if d not in top]


def free_port() -> int:
    """A loopback port free now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
