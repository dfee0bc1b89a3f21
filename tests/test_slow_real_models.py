"""Real packaged judges on DL19 (slow: run with ``pytest -m slow``; CI runs them once).

Qwen2.5-Coder-0.5B through llama.cpp: the split model assembles and verifies, judges real DL19
pairs with finite margins, and a second rerank over a persistent cache makes no inference.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from conftest import packaged_llama

from prp import Reranker
from prp.data import load_dataset
from prp.types import Prompt

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def qwen():
    return packaged_llama("qwen2.5-coder-0.5b")


def test_judges_dl19_pairs_with_margins(qwen, dl19_dir):
    requests, qrels = load_dataset(dl19_dir, depth=30)
    req = requests[0]
    grades = qrels[req.qid]
    good = [i for i, d in enumerate(req.doc_ids) if grades.get(d, 0) >= 2][:2]
    bad = [i for i, d in enumerate(req.doc_ids) if grades.get(d, 0) == 0][:2]
    prompts = []
    for g, b in zip(good, bad, strict=True):
        prompts.append(Prompt(req.qid, req.query, req.doc_ids[g], req.docs[g], req.doc_ids[b], req.docs[b]))
        prompts.append(Prompt(req.qid, req.query, req.doc_ids[b], req.docs[b], req.doc_ids[g], req.docs[g]))
    result = asyncio.run(qwen.judge(prompts))
    assert len(result.judgments) == len(prompts) and result.prompt_tokens > 100 * len(prompts)
    assert all(j.parsed and math.isfinite(j.margin) for j in result.judgments)


def test_rerank_then_rerun_over_a_disk_cache_pays_nothing(qwen, dl19_dir, tmp_path):
    requests, _ = load_dataset(dl19_dir, depth=6)
    req = requests[0]
    first = Reranker(qwen, sorter="quicksort", k=3, batch_size=8, cache=tmp_path).rank(
        req.query, req.docs, req.doc_ids, qid=req.qid)
    assert first.cost.inferences > 0
    again = Reranker(qwen, sorter="quicksort", k=3, batch_size=8, cache=tmp_path).rank(
        req.query, req.docs, req.doc_ids, qid=req.qid)
    assert again.cost.inferences == 0 and again.doc_ids == first.doc_ids
