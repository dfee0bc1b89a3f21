"""prp as a LangChain document compressor: ``PRPCompressor(judge, top_n=3)``, e.g. as the
``base_compressor`` of a ``ContextualCompressionRetriever``.

``compress_documents(documents, query)`` (and ``acompress_documents``) reranks the documents,
given in retrieval order, and returns the best ``top_n`` as new Documents whose metadata adds:
``relevance_score`` (n for the first of n documents, decreasing with rank), ``prp_rank``
(1-based), ``prp_cut`` (the budget ran out first) and ``prp_cost`` (the query's
:class:`~cost.ledger.Ledger` as a dict: comparisons, prompts, inferences, cache hits, ...).

Rules: a document's id is ``Document.id``, else ``metadata[id_key]``; if some document has
neither, positions ``"0".."n-1"`` are the ids of all. The query text is the qid (simulated judges
look their grades up by it). ``k`` (the documents the sorter orders) defaults to ``top_n``; every
other :class:`prp.Reranker` keyword is passed through; one call is one query, so
``max_inferences`` is a budget per call. The input documents are never modified;
``last_result`` holds the last call's :class:`~prp.result.RankedResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prp.adapters._common import make_reranker, require
from prp.result import RankedResult

require("langchain_core", "langchain")

from langchain_core.callbacks import Callbacks  # noqa: E402
from langchain_core.documents import BaseDocumentCompressor, Document  # noqa: E402
from pydantic import ConfigDict, PrivateAttr  # noqa: E402


class PRPCompressor(BaseDocumentCompressor):
    """Keeps the ``top_n`` documents a pairwise judge ranks best.

    ``judge`` is a backend (other keywords go to :class:`prp.Reranker`) or a ready Reranker."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reranker: Any
    top_n: int = 3
    id_key: str = "id"
    _last_result: RankedResult | None = PrivateAttr(default=None)

    def __init__(self, judge: Any, *, top_n: int = 3, id_key: str = "id", **options: Any) -> None:
        super().__init__(reranker=make_reranker(judge, options, top_n), top_n=top_n, id_key=id_key)

    @property
    def last_result(self) -> RankedResult | None:
        return self._last_result

    def _ids(self, documents: Sequence[Document]) -> list[str]:
        ids = [doc.id if doc.id is not None else doc.metadata.get(self.id_key) for doc in documents]
        if any(doc_id is None for doc_id in ids):
            return [str(i) for i in range(len(documents))]
        return [str(doc_id) for doc_id in ids]

    def _top(self, documents: Sequence[Document], result: RankedResult) -> list[Document]:
        self._last_result = result
        cost = result.cost.to_dict()
        out = []
        for doc in result.docs[: self.top_n]:
            source = documents[doc.original_rank - 1]
            metadata = {**source.metadata, "relevance_score": doc.score, "prp_rank": doc.rank,
                        "prp_cut": result.cut, "prp_cost": dict(cost)}
            out.append(Document(page_content=source.page_content, metadata=metadata, id=source.id))
        return out

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        """The best ``top_n`` of ``documents`` (in retrieval order) for ``query``, as new Documents
        whose metadata adds ``relevance_score``, ``prp_rank``, ``prp_cut`` and ``prp_cost``."""
        documents = list(documents)
        if not documents:
            return []
        texts = [doc.page_content for doc in documents]
        return self._top(documents, self.reranker.rank(query, texts, self._ids(documents)))

    async def acompress_documents(self, documents: Sequence[Document], query: str,
                                  callbacks: Callbacks | None = None) -> Sequence[Document]:
        """:meth:`compress_documents` from async code: awaits the engine."""
        documents = list(documents)
        if not documents:
            return []
        texts = [doc.page_content for doc in documents]
        return self._top(documents, await self.reranker.arank(query, texts, self._ids(documents)))
