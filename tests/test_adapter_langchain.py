"""The LangChain adapter against the real langchain-core: inside a ContextualCompressionRetriever
over an in-memory vector store (the README example), sync and async, ids, options, metadata;
the packaged judge (slow) in the same retriever."""

from __future__ import annotations

import asyncio

import pytest
from conftest import packaged_llama
from doc_examples import run_doc_example

pytest.importorskip("langchain_core")
retrievers = pytest.importorskip("langchain_classic.retrievers")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from prp import MemoryCache, PerfectOracle, Reranker  # noqa: E402
from prp.adapters.langchain import PRPCompressor  # noqa: E402
from prp.data import load_dataset  # noqa: E402

QUERY = "which passage"
GRADES = {f"d{i}": g for i, g in enumerate([0, 3, 1, 0, 2, 3, 0, 1])}


def docs() -> list[Document]:
    return [Document(f"passage number {i}", id=f"d{i}", metadata={"source": f"s{i}"}) for i in range(8)]


def retriever(compressor: PRPCompressor, documents: list[Document]):
    store = InMemoryVectorStore.from_documents(documents, DeterministicFakeEmbedding(size=16))
    base = store.as_retriever(search_kwargs={"k": len(documents)})
    return retrievers.ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base), base


def best(order: list[str], grades: dict[str, int], n: int) -> list[str]:
    """Stable sort by grade: ties keep retrieval order."""
    return sorted(order, key=lambda d: -grades[d])[:n]


def test_docs_example_keeps_the_best_two(monkeypatch):
    ns = run_doc_example("langchain", monkeypatch)
    got = ns["docs"]
    assert [d.id for d in got] == ["p2", "p4"]
    assert [d.metadata["relevance_score"] for d in got] == [5.0, 4.0]
    assert [d.metadata["prp_rank"] for d in got] == [1, 2]
    assert got[0].metadata["prp_cost"]["inferences"] == ns["compressor"].last_result.cost.inferences > 0


def test_retriever_reranks_like_the_engine_and_writes_cost():
    documents = docs()
    compressor = PRPCompressor(PerfectOracle({QUERY: GRADES}), top_n=3, batch_size=4)
    chain, base = retriever(compressor, documents)
    got = chain.invoke(QUERY)
    order = [d.id for d in base.invoke(QUERY)]
    assert [d.id for d in got] == best(order, GRADES, 3)
    direct = Reranker(PerfectOracle({QUERY: GRADES}), k=3, batch_size=4).rank(
        QUERY, [f"passage number {d[1:]}" for d in order], order)
    assert [d.id for d in got] == direct.doc_ids[:3]
    for doc in got:
        assert doc.metadata["prp_cost"] == direct.cost.to_dict() | {"wall_seconds": doc.metadata["prp_cost"]
                                                                    ["wall_seconds"]}
        assert doc.metadata["source"] == f"s{doc.id[1:]}" and doc.metadata["prp_cut"] is False
    assert [d.metadata for d in documents] == [{"source": f"s{i}"} for i in range(8)]  # inputs untouched


def test_async_retriever_awaits_the_engine():
    compressor = PRPCompressor(PerfectOracle({QUERY: GRADES}), top_n=2, cache=False)
    chain, base = retriever(compressor, docs())
    got = asyncio.run(chain.ainvoke(QUERY))
    assert [d.id for d in got] == best([d.id for d in base.invoke(QUERY)], GRADES, 2)
    assert compressor.last_result.cost.inferences > 0


def test_ids_come_from_document_id_else_metadata_else_positions():
    grades_by_key = {"m0": 0, "m1": 2, "m2": 1}
    by_key = [Document(f"t{i}", metadata={"key": f"m{i}"}) for i in range(3)]
    got = PRPCompressor(PerfectOracle({QUERY: grades_by_key}), top_n=1, id_key="key").compress_documents(
        by_key, QUERY)
    assert got[0].metadata["key"] == "m1"
    by_position = [Document(f"t{i}") for i in range(3)]
    got = PRPCompressor(PerfectOracle({QUERY: {"0": 0, "1": 0, "2": 5}}), top_n=1).compress_documents(
        by_position, QUERY)
    assert got[0].page_content == "t2"
    assert PRPCompressor(PerfectOracle({}), top_n=2).compress_documents([], QUERY) == []


def test_options_pass_through_and_k_defaults_to_top_n():
    judge = PerfectOracle({QUERY: GRADES})
    assert PRPCompressor(judge, top_n=4).reranker.k == 4
    c = PRPCompressor(judge, top_n=2, k=5, sorter="heapsort", batch_size=2, orders="one", max_inferences=1)
    r = c.reranker
    assert (r.k, r.sorter_spec, r.settings.batch_size, r.settings.orders, r.settings.max_inferences) == (
        5, "heapsort", 2, "one", 1)
    got = c.compress_documents(docs(), QUERY)
    assert len(got) == 2 and got[0].metadata["prp_cut"] is True and c.last_result.cost.inferences == 1
    ready = Reranker(judge, k=2)
    assert PRPCompressor(ready, top_n=2).reranker is ready
    with pytest.raises(TypeError, match="k"):
        PRPCompressor(ready, top_n=2, k=3)
    with pytest.raises(ValueError, match="top_n"):
        PRPCompressor(judge, top_n=0)
    dupes = [Document("a", id="x"), Document("b", id="x")]
    with pytest.raises(ValueError, match="duplicate doc ids"):
        PRPCompressor(judge).compress_documents(dupes, QUERY)


@pytest.mark.slow
def test_packaged_judge_in_a_compression_retriever(dl19_dir):
    pytest.importorskip("llama_cpp")
    judge = packaged_llama("smollm2-135m", passage_tokens=48)
    requests, _ = load_dataset(dl19_dir, depth=4)
    req = requests[0]
    documents = [Document(text, id=doc_id) for doc_id, text in zip(req.doc_ids, req.docs, strict=True)]
    cache = MemoryCache()
    compressor = PRPCompressor(judge, top_n=2, batch_size=8, cache=cache)
    chain, base = retriever(compressor, documents)
    got = chain.invoke(req.query)
    assert len(got) == 2 and compressor.last_result.cost.inferences > 0
    assert compressor.last_result.cost.unparsed == 0
    order = [d.id for d in base.invoke(req.query)]
    texts = dict(zip(req.doc_ids, req.docs, strict=True))
    direct = Reranker(judge, k=2, batch_size=8, cache=cache).rank(req.query, [texts[d] for d in order], order)
    assert direct.cost.inferences == 0 and [d.id for d in got] == direct.doc_ids[:2]
