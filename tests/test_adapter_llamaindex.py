"""The LlamaIndex adapter against the real llama-index-core: inside a query engine over an
in-memory vector index with a mock embedding (the README example), sync and async, callback
events, options, untouched nodes; the packaged judge (slow) in the same engine."""

from __future__ import annotations

import asyncio

import pytest
from conftest import packaged_llama
from doc_examples import run_doc_example

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import NodeWithScore, TextNode  # noqa: E402

from prp import MemoryCache, PerfectOracle, Reranker  # noqa: E402
from prp.adapters.llamaindex import PRPRerank  # noqa: E402
from prp.data import load_dataset  # noqa: E402

QUERY = "which passage"
GRADES = {f"d{i}": g for i, g in enumerate([0, 3, 1, 0, 2, 3, 0, 1])}


def nodes() -> list[TextNode]:
    return [TextNode(text=f"passage number {i}", id_=f"d{i}", metadata={"source": f"s{i}"}) for i in range(8)]


def engine(rerank: PRPRerank, index_nodes: list[TextNode], **options):
    """(query engine with ``rerank``, its retriever) over an in-memory index of ``index_nodes``."""
    index = VectorStoreIndex(index_nodes, embed_model=MockEmbedding(embed_dim=8))
    retriever = index.as_retriever(similarity_top_k=len(index_nodes))
    return (RetrieverQueryEngine.from_args(retriever, llm=MockLLM(), node_postprocessors=[rerank], **options),
            retriever)


def best(order: list[str], grades: dict[str, int], n: int) -> list[str]:
    return sorted(order, key=lambda d: -grades[d])[:n]


def test_docs_example_answers_from_the_best_two(monkeypatch):
    ns = run_doc_example("llamaindex", monkeypatch)
    assert [(n.node_id, n.score) for n in ns["response"].source_nodes] == [("p2", 5.0), ("p4", 4.0)]
    assert ns["rerank"].last_result.cost.inferences > 0


def test_query_engine_reranks_like_the_engine_and_leaves_nodes_alone():
    index_nodes = nodes()
    debug = LlamaDebugHandler()
    rerank = PRPRerank(PerfectOracle({QUERY: GRADES}), top_n=3, batch_size=4)
    query_engine, retriever = engine(rerank, index_nodes, callback_manager=CallbackManager([debug]))
    response = query_engine.query(QUERY)
    order = [n.node_id for n in retriever.retrieve(QUERY)]
    got = [n.node_id for n in response.source_nodes]
    assert got == best(order, GRADES, 3)
    direct = Reranker(PerfectOracle({QUERY: GRADES}), k=3, batch_size=4).rank(
        QUERY, [f"passage number {d[1:]}" for d in order], order)
    assert got == direct.doc_ids[:3] and rerank.last_result.doc_ids == direct.doc_ids
    assert [n.score for n in response.source_nodes] == [8.0, 7.0, 6.0]
    assert rerank.last_result.cost.inferences == direct.cost.inferences
    assert len(debug.get_event_pairs(CBEventType.RERANKING)) == 1
    assert [n.metadata for n in index_nodes] == [{"source": f"s{i}"} for i in range(8)]


def test_async_query_and_postprocess_nodes():
    rerank = PRPRerank(PerfectOracle({QUERY: GRADES}), top_n=2, cache=False)
    query_engine, retriever = engine(rerank, nodes())
    response = asyncio.run(query_engine.aquery(QUERY))
    order = [n.node_id for n in retriever.retrieve(QUERY)]
    assert [n.node_id for n in response.source_nodes] == best(order, GRADES, 2)
    given = [NodeWithScore(node=n, score=0.5) for n in nodes()]
    out = asyncio.run(rerank.apostprocess_nodes(given, query_str=QUERY))
    assert [n.node_id for n in out] == ["d1", "d5"] and [n.score for n in given] == [0.5] * 8
    assert out[0].node is given[1].node


def test_options_pass_through_and_bad_calls_fail():
    judge = PerfectOracle({QUERY: GRADES})
    assert PRPRerank(judge, top_n=4).reranker.k == 4
    rerank = PRPRerank(judge, top_n=2, k=6, sorter="mergesort", batch_size=3, orders="random",
                       max_inferences=1)
    r = rerank.reranker
    assert (r.k, r.sorter_spec, r.settings.batch_size, r.settings.orders, r.settings.max_inferences) == (
        6, "mergesort", 3, "random", 1)
    out = rerank.postprocess_nodes([NodeWithScore(node=n) for n in nodes()], query_str=QUERY)
    assert len(out) == 2 and rerank.last_result.cut and rerank.last_result.cost.inferences == 1
    with pytest.raises(ValueError, match="query"):
        rerank.postprocess_nodes([NodeWithScore(node=n) for n in nodes()])
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(ValueError, match="top_n"):
        PRPRerank(judge, top_n=-1)
    with pytest.raises(TypeError, match="sorter"):
        PRPRerank(Reranker(judge), sorter="heapsort")


@pytest.mark.slow
def test_packaged_judge_in_a_query_engine(dl19_dir):
    pytest.importorskip("llama_cpp")
    judge = packaged_llama("smollm2-135m", passage_tokens=48)
    requests, _ = load_dataset(dl19_dir, depth=4)
    req = requests[0]
    index_nodes = [TextNode(text=text, id_=doc_id)
                   for doc_id, text in zip(req.doc_ids, req.docs, strict=True)]
    cache = MemoryCache()
    rerank = PRPRerank(judge, top_n=2, batch_size=8, cache=cache)
    query_engine, retriever = engine(rerank, index_nodes)
    response = query_engine.query(req.query)
    assert len(response.source_nodes) == 2 and rerank.last_result.cost.inferences > 0
    assert rerank.last_result.cost.unparsed == 0
    order = [n.node_id for n in retriever.retrieve(req.query)]
    texts = dict(zip(req.doc_ids, req.docs, strict=True))
    direct = Reranker(judge, k=2, batch_size=8, cache=cache).rank(req.query, [texts[d] for d in order], order)
    assert direct.cost.inferences == 0
    assert [n.node_id for n in response.source_nodes] == direct.doc_ids[:2]
