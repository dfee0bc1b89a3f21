"""prp as a PyTerrier transformer: ``bm25 >> PRPReranker(judge, sorter="quicksort", k=10)``.

Input: a results frame with ``qid``, ``query``, ``docno`` and the passage text (``text_field``,
default ``text``); ``score`` and ``rank`` are optional. Each query's candidates are taken in
first-stage order: by ``rank`` when the frame has it, else by ``score`` (descending, stable),
else in frame order.

Output: every input row once, with every input column, queries in input order and each query's
rows in the new order; ``score`` is replaced by n..1 (n candidates) and ``rank`` by 0..n-1
(PyTerrier's first rank is 0). With ``cost_columns=True`` each row also carries its query's
cost: ``prp_comparisons``, ``prp_prompts``, ``prp_inferences``, ``prp_cache_hits``,
``prp_rounds`` and ``prp_cut``.

Rules: one ``transform`` call is one :meth:`prp.Reranker.rank_many`, so the queries of a frame
share batches and ``max_inferences`` is a budget for the call. ``last_results`` holds the last
call's :class:`~prp.result.RankedResult` per query, ``cost`` the Ledger of every call so far.
The input frame is never modified. No Java is needed: nothing here starts Terrier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cost.ledger import Ledger
from prp.adapters._common import make_reranker, require
from prp.result import RankedResult
from prp.types import RankRequest

pt = require("pyterrier", "pyterrier")
pd = require("pandas", "pyterrier")

COST_COLUMNS = ("comparisons", "prompts", "inferences", "cache_hits", "rounds")


class PRPReranker(pt.Transformer):
    """Reranks each query's results with pairwise judgments from ``judge``.

    ``judge`` is a backend (every other keyword goes to :class:`prp.Reranker`: ``sorter``,
    ``k``, ``batch_size``, ``orders``, ``aggregate``, ``cache``, ``max_inferences``, ...) or a
    ready Reranker."""

    def __init__(self, judge: Any, *, text_field: str = "text", cost_columns: bool = False,
                 **options: Any) -> None:
        self.reranker = make_reranker(judge, options)
        self.text_field, self.cost_columns = text_field, cost_columns
        self.last_results: list[RankedResult] = []
        self.cost = Ledger(queries=0)

    def __repr__(self) -> str:
        r = self.reranker
        return (f"PRPReranker({r.oracle.name}, sorter={r.sorter_spec!r}, k={r.k}, "
                f"batch_size={r.settings.batch_size})")

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Every row of ``inp`` reranked per query (all queries together, sharing batches), with
        ``score`` n..1 and ``rank`` 0..n-1; ``inp`` is not modified."""
        pt.validate.result_frame(inp, extra_columns=["query", self.text_field], context=self)
        _check(inp, self.text_field)
        out = inp.copy()
        if out.empty:
            out["score"], out["rank"] = pd.Series(dtype="float64"), pd.Series(dtype="int64")
            return self._with_cost_columns(out, [])
        groups = _first_stage_order(out)
        requests = [RankRequest(rows["query"].iat[0], list(rows[self.text_field]),
                                [str(d) for d in rows["docno"]], str(qid)) for qid, rows in groups]
        results = self.reranker.rank_many(requests)
        self.last_results = results
        self.cost.merge(Ledger.total([r.cost for r in results]))
        frames = [_reordered(rows, result) for (_, rows), result in zip(groups, results, strict=True)]
        return self._with_cost_columns(pd.concat(frames), results)

    def _with_cost_columns(self, frame: pd.DataFrame, results: Sequence[RankedResult]) -> pd.DataFrame:
        if not self.cost_columns:
            return frame
        by_qid = {r.qid: r for r in results}
        qids = frame["qid"].astype(str)
        for name in COST_COLUMNS:
            frame[f"prp_{name}"] = qids.map(lambda q, n=name: float(getattr(by_qid[q].cost, n)))
        frame["prp_cut"] = qids.map(lambda q: by_qid[q].cut).astype(bool)
        return frame


def _check(inp: pd.DataFrame, text_field: str) -> None:
    """A ValueError naming the first row whose text or query is not a string, or whose docno
    its query lists twice."""
    for column in (text_field, "query"):
        bad = inp[~inp[column].map(lambda value: isinstance(value, str))]
        if not bad.empty:
            row = bad.iloc[0]
            raise ValueError(f"results frame: {column!r} of qid {row['qid']!r} docno {row['docno']!r} "
                             f"must be a string, got {row[column]!r}")
    dupes = inp[inp.duplicated(["qid", "docno"])]
    if not dupes.empty:
        row = dupes.iloc[0]
        raise ValueError(f"results frame lists docno {row['docno']!r} twice for qid {row['qid']!r}")


def _first_stage_order(frame: pd.DataFrame) -> list[tuple[Any, pd.DataFrame]]:
    """``(qid, rows)`` per query, queries in order of first appearance, rows in first-stage
    order (rank, else score descending, else as given; ties keep frame order)."""
    groups = []
    for qid, rows in frame.groupby("qid", sort=False):
        if "rank" in rows.columns:
            rows = rows.sort_values("rank", kind="stable")
        elif "score" in rows.columns:
            rows = rows.sort_values("score", ascending=False, kind="stable")
        groups.append((qid, rows))
    return groups


def _reordered(rows: pd.DataFrame, result: RankedResult) -> pd.DataFrame:
    """``rows`` (in first-stage order) in the result's order, with new score and rank."""
    n = len(rows)
    positions = [doc.original_rank - 1 for doc in result.docs]
    out = rows.iloc[positions].copy()
    out["score"] = [float(n - i) for i in range(n)]
    out["rank"] = [pt.model.FIRST_RANK + i for i in range(n)]
    return out


# --- frames from prp's own data types -----------------------------------------------------------

def results_frame(requests: Sequence[RankRequest]) -> pd.DataFrame:
    """A PyTerrier results frame (``qid, query, docno, text, score, rank``) of first-stage
    candidates, e.g. those :func:`prp.data.load_dataset` reads: scores n..1 in candidate order."""
    rows = []
    for req in requests:
        ids = list(req.doc_ids) if req.doc_ids is not None else [str(i) for i in range(len(req.docs))]
        n = len(ids)
        qid = req.query if req.qid is None else str(req.qid)
        rows.extend((qid, req.query, docno, text, float(n - i), i)
                    for i, (docno, text) in enumerate(zip(ids, req.docs, strict=True)))
    return pd.DataFrame(rows, columns=["qid", "query", "docno", "text", "score", "rank"])


def topics_frame(requests: Sequence[RankRequest]) -> pd.DataFrame:
    """The ``qid, query`` frame of ``requests``."""
    return pd.DataFrame([(req.query if req.qid is None else str(req.qid), req.query) for req in requests],
                        columns=["qid", "query"])


def qrels_frame(qrels: Mapping[str, Mapping[str, int]]) -> pd.DataFrame:
    """A PyTerrier qrels frame (``qid, docno, label``) of ``{qid: {docno: grade}}``."""
    rows = [(qid, docno, int(grade)) for qid, docs in qrels.items() for docno, grade in docs.items()]
    return pd.DataFrame(rows, columns=["qid", "docno", "label"])
