"""Adapters that put prp inside the frameworks people already rank with.

* :mod:`prp.adapters.pyterrier` - a ``pt.Transformer`` for PyTerrier pipelines (``prp[pyterrier]``).
* :mod:`prp.adapters.langchain` - a LangChain ``BaseDocumentCompressor`` (``prp[langchain]``).
* :mod:`prp.adapters.llamaindex` - a LlamaIndex ``BaseNodePostprocessor`` (``prp[llamaindex]``).

Rules: this package imports no framework; each module imports only its own, so ``import prp``
and ``import prp.adapters`` stay lean and a missing extra fails only when its adapter is
imported, with a message naming the extra. Every adapter takes a judge (any backend) and passes
every other keyword to :class:`prp.Reranker`, or takes a ready Reranker; it never mutates the
caller's frames, documents or nodes.
"""
