"""What the framework adapters share: building the Reranker and importing the framework.

Rules: an adapter takes either a judge (a backend) plus :class:`~prp.reranker.Reranker`
keywords, every one of which is passed through, or a ready Reranker and no keywords.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from prp.reranker import Reranker
from prp.validate import positive_int


def make_reranker(judge: Any, options: dict[str, Any], top_n: int | None = None) -> Reranker:
    """``judge`` itself if it is a Reranker (then ``options`` must be empty), else
    ``Reranker(judge, **options)``, ordering the ``top_n`` it returns unless ``options`` set ``k``
    (``top_n``: an integer >= 1, checked here)."""
    if top_n is not None:
        positive_int("top_n", top_n)
        if not isinstance(judge, Reranker):
            options = {"k": top_n, **options}
    if isinstance(judge, Reranker):
        if options:
            raise TypeError("pass Reranker options to the Reranker, not beside it: got "
                            + ", ".join(sorted(options)))
        return judge
    return Reranker(judge, **options)


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or fail with an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"this adapter needs {module!r}: pip install 'prp[{extra}]' ({exc})") from exc
