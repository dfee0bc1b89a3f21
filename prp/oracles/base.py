"""The one seam between the engine and whatever judges prompts (simulated or a real LLM).

Every backend implements :class:`Backend`. The scheduler never knows which one it drives:
it hands over a batch of at most B prompts and awaits one :class:`~prp.types.Judgment` per
prompt, in order. One ``judge`` call is one **inference** in the cost ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from prp.types import BatchResult, Prompt


class BackendError(RuntimeError):
    """A backend failed for good (after its own bounded retries)."""


@runtime_checkable
class Backend(Protocol):
    """What judges prompts: the one seam every judge (simulated, llama.cpp, transformers, HTTP)
    implements. One ``judge`` call is one inference; see the module's rules above."""

    #: Identity of the judge for cache keys: backend kind, model id, template id.
    name: str
    #: What the judge reads: "text" (LLMs; the cache keys on texts) or "id" (simulated judges
    #: that look up qrels; the cache keys on qid and doc ids).
    keys_by: Literal["text", "id"]
    # Optional (not part of the checked protocol): ``reports_margins`` - True if every parsed
    # judgment carries a margin, False if none does (``aggregate="margin"`` then fails before
    # any inference); absent or None when it depends on the server.

    async def judge(self, prompts: Sequence[Prompt]) -> BatchResult:
        """Judge one batch of prompts as one inference."""
        ...
