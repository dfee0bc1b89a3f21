"""What a ranking returns: the reordered documents and what they cost.

:func:`ranked_result` builds a query's :class:`RankedResult` from its finished scheduler job,
for the engine and the cost planner alike. Rules: the documents are the job's full order
(every candidate once), ``score`` is n for the first of n and falls by one a rank,
``original_rank`` is the first-stage position, and ``k`` is the query's own top-k when it has
one, at most n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cost.ledger import Ledger

if TYPE_CHECKING:
    from prp.scheduler import Job


@dataclass(frozen=True, slots=True)
class RankedDoc:
    """One reranked document: its id and text, its ``rank`` after reranking (1-based), a
    ``score`` that decreases with rank (n for the first of n), and its ``original_rank`` in the
    first-stage order (1-based)."""

    doc_id: str
    text: str
    rank: int  # 1-based position after reranking
    score: float  # higher is better; decreasing with rank
    original_rank: int  # 1-based position in the first-stage order


@dataclass
class RankedResult:
    """One query's reranked documents (all of them: the top-k first, then the rest) and its cost.

    ``docs`` holds every candidate: the top ``k`` in judged order, then the rest in first-stage
    order. ``cost`` is this query's Ledger, ``run_cost`` the Ledger of the whole call (or engine
    request) it came from; ``cut`` is True when a budget or timeout stopped the sorter first (the
    ranking is then the best reached so far).
    """

    qid: str
    query: str
    k: int
    docs: list[RankedDoc]
    cost: Ledger = field(default_factory=Ledger)
    cut: bool = False  # the budget ran out before the sorter finished: the best ranking so far
    #: the whole call (or engine request) this result came from: every query's cost, its wall time
    run_cost: Ledger | None = None

    def top_k(self, k: int | None = None) -> list[RankedDoc]:
        """The first ``k`` documents (default: the k this ranking judged)."""
        return self.docs[: self.k if k is None else k]

    @property
    def doc_ids(self) -> list[str]:
        """Every document id in the new order."""
        return [d.doc_id for d in self.docs]

    def __len__(self) -> int:
        return len(self.docs)


def ranked_result(job: Job, k: int) -> RankedResult:
    """The result of a finished scheduler ``job`` (``k``: the top-k when the job has none)."""
    n = len(job.texts)
    order = job.order or []
    docs = [RankedDoc(job.ids[i], job.texts[i], rank, float(n - rank + 1), i + 1)
            for rank, i in enumerate(order, start=1)]
    k = k if job.k is None else job.k
    return RankedResult(job.qid, job.query, min(k, n), docs, job.ledger, cut=job.cut)
