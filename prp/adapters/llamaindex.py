"""prp as a LlamaIndex node postprocessor: ``PRPRerank(judge, top_n=3)``, e.g. in
``index.as_query_engine(node_postprocessors=[PRPRerank(judge, top_n=3)])``.

``postprocess_nodes(nodes, query_str=...)`` (and ``apostprocess_nodes``) reranks the nodes,
given in retrieval order, and returns the best ``top_n`` as new ``NodeWithScore`` objects around
the same nodes, with ``score`` n for the first of n nodes, decreasing with rank.

Rules: doc ids are the node ids; the query text is the qid (simulated judges look their grades
up by it). ``k`` (the nodes the sorter orders) defaults to ``top_n``; every other
:class:`prp.Reranker` keyword is passed through; one call is one query, so ``max_inferences`` is
a budget per call. Nodes and their metadata are never modified (their text may go to an LLM
next, so the cost is not written into them): the last call's
:class:`~prp.result.RankedResult`, with its cost Ledger, is ``last_result``, and each call is a
``RERANKING`` callback event like LlamaIndex's own rerankers.
"""

from __future__ import annotations

from typing import Any

from prp.adapters._common import make_reranker, require
from prp.result import RankedResult

require("llama_index.core", "llamaindex")

from llama_index.core.bridge.pydantic import Field, PrivateAttr  # noqa: E402
from llama_index.core.callbacks import CBEventType, EventPayload  # noqa: E402
from llama_index.core.postprocessor.types import BaseNodePostprocessor  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle  # noqa: E402


class PRPRerank(BaseNodePostprocessor):
    """Keeps the ``top_n`` nodes a pairwise judge ranks best.

    ``judge`` is a backend (other keywords go to :class:`prp.Reranker`) or a ready Reranker."""

    top_n: int = Field(default=3, description="Nodes to return, best first.")
    reranker: Any = Field(description="The prp Reranker that orders the nodes.", exclude=True)
    _last_result: RankedResult | None = PrivateAttr(default=None)

    def __init__(self, judge: Any, *, top_n: int = 3, **options: Any) -> None:
        super().__init__(top_n=top_n, reranker=make_reranker(judge, options, top_n))

    @classmethod
    def class_name(cls) -> str:
        return "PRPRerank"

    @property
    def last_result(self) -> RankedResult | None:
        return self._last_result

    def _inputs(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
                ) -> tuple[str, list[str], list[str]]:
        if query_bundle is None:
            raise ValueError("PRPRerank needs the query: pass query_bundle or query_str")
        texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        return query_bundle.query_str, texts, [n.node.node_id for n in nodes]

    def _top(self, nodes: list[NodeWithScore], result: RankedResult) -> list[NodeWithScore]:
        self._last_result = result
        return [NodeWithScore(node=nodes[doc.original_rank - 1].node, score=doc.score)
                for doc in result.docs[: self.top_n]]

    def _event(self, query: str, nodes: list[NodeWithScore]) -> Any:
        return self.callback_manager.event(CBEventType.RERANKING, payload={
            EventPayload.NODES: nodes, EventPayload.MODEL_NAME: self.reranker.oracle.name,
            EventPayload.QUERY_STR: query, EventPayload.TOP_K: self.top_n})

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        query, texts, ids = self._inputs(nodes, query_bundle)
        if not nodes:
            return []
        with self._event(query, nodes) as event:
            out = self._top(nodes, self.reranker.rank(query, texts, ids))
            event.on_end(payload={EventPayload.NODES: out})
        return out

    async def _apostprocess_nodes(self, nodes: list[NodeWithScore],
                                  query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        query, texts, ids = self._inputs(nodes, query_bundle)
        if not nodes:
            return []
        with self._event(query, nodes) as event:
            out = self._top(nodes, await self.reranker.arank(query, texts, ids))
            event.on_end(payload={EventPayload.NODES: out})
        return out
