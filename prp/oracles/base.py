"""The one seam between the engine and whatever judges prompts (simulated or a real LLM).

Every backend implements :class:`Backend`. The scheduler never knows which one it drives:
it hands over a batch of at most B prompts and awaits one :class:`~prp.types.Judgment` per
prompt, in order. One ``judge`` call is one **inference** in the cost ledger.

**Whose fault is a failed call** (:func:`prompt_fault`, the one place that decides it). A
failed ``judge`` call either *may be one prompt's fault* - the scheduler then splits the batch in
halves and retries each (see :mod:`prp.scheduler`), so that the prompt at fault fails its own
query only - or *says the judge is down*, and fails as it is. May be a prompt's fault:

* a :class:`BackendError` whose ``prompt_fault`` is True: an HTTP judge's answer
  :data:`PROMPT_FAULT_STATUSES` (400, 413, 414, 422: the request was wrong for the server), a
  malformed answer to a batch (the wrong number of judgments, not a ``BatchResult``: see
  :mod:`prp.judgment`), a replay set's miss, or :class:`PromptError` raised by a judge itself;
* any other exception raised by a judge's own code (a custom judge's bug, a text that cannot be
  encoded), except those below.

Says the judge is down, never split: a :class:`BackendError` with ``prompt_fault`` False (the
default: 5xx after retries, 401/403/404, the HTTP pool's "every endpoint is down"),
``OSError`` (connection refused or reset) and ``TimeoutError``. A custom judge that wants a
failure to fail the whole step raises ``BackendError``; one that knows a prompt is at fault may
raise :class:`PromptError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from prp.types import BatchResult, Prompt

#: HTTP statuses that say the request (hence maybe one prompt of it) was wrong for the server.
PROMPT_FAULT_STATUSES = frozenset({400, 413, 414, 422})


class BackendError(RuntimeError):
    """A backend failed for good (after its own bounded retries). ``prompt_fault``: the failure
    may be the fault of one prompt of the batch (see the module docstring)."""

    prompt_fault: bool = False


class PromptError(BackendError):
    """A judge cannot take a prompt of its batch (the batch is split to find which)."""

    prompt_fault = True


class PromptFailed(BackendError):
    """One prompt failed alone (after its batch was split down to it): the error of the queries
    whose comparisons needed it. ``qid``, ``first_id``, ``second_id`` name the prompt (the
    document shown first, then second); the judge's error is the ``__cause__``."""

    def __init__(self, message: str, qid: str, first_id: str, second_id: str) -> None:
        super().__init__(message)
        self.qid, self.first_id, self.second_id = qid, first_id, second_id


def prompt_fault(exc: BaseException) -> bool:
    """May ``exc``, raised by a ``judge`` call, be the fault of one prompt of the batch?"""
    if isinstance(exc, BackendError):
        return exc.prompt_fault
    if isinstance(exc, (OSError, TimeoutError)):  # connection refused or reset, timeouts: down
        return False
    return isinstance(exc, Exception)


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
