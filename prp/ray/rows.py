"""The row layouts of :mod:`prp.ray`, in plain Python (no Ray here: the default tests run them).

Two input layouts:

* **one row per candidate** (:data:`ROW_COLUMNS`): ``qid``, ``query``, ``docid``, ``text``,
  ``rank`` (the first-stage rank: an integer, 1 first). :func:`group_rows` turns the rows of
  one query into one query row; every row of a qid must carry the same query text, a docid
  once, and distinct ranks.
* **one row per query** (:data:`QUERY_COLUMNS`): ``qid``, ``query``, ``docids`` and ``texts``
  (lists, in first-stage order).

What a ranking adds to a query row (:func:`ranked_row`): ``docids`` in the new order,
``first_stage_ranks`` (1-based, aligned with ``docids``), ``scores`` (the reranker's: n..1),
``cut`` (the query's budget ran out first) and ``ledger`` (the query's
:class:`~cost.ledger.Ledger` as JSON; :func:`ledger_from_json` reads it back, and
:func:`total_ledger` adds up a job's). :func:`explode` turns ranked query rows back into one
row per candidate with ``rank`` (the new one), ``first_stage_rank`` and ``score``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from cost.ledger import Ledger
from prp.result import RankedResult
from prp.types import RankRequest

ROW_COLUMNS = ("qid", "query", "docid", "text", "rank")
QUERY_COLUMNS = ("qid", "query", "docids", "texts")


class RowError(ValueError):
    """Rows that do not make a query: the message names the qid and the field."""


def layout(columns: Iterable[str]) -> str:
    """``"rows"`` or ``"queries"``: which input layout ``columns`` hold (RowError for neither)."""
    names = set(columns)
    if set(QUERY_COLUMNS) <= names:
        return "queries"
    if set(ROW_COLUMNS) <= names:
        return "rows"
    raise RowError(f"a dataset to rerank needs the columns {', '.join(ROW_COLUMNS)} (one row per "
                   f"candidate) or {', '.join(QUERY_COLUMNS)} (one row per query); it has "
                   f"{', '.join(sorted(names)) or 'none'}")


def group_rows(rows: Sequence[Mapping]) -> dict:
    """The query row of ``rows`` (all of one qid), candidates in first-stage rank order."""
    if not rows:
        raise RowError("no rows to group")
    qid, query = str(rows[0]["qid"]), rows[0]["query"]
    seen: dict[str, int] = {}
    ranks: dict[int, str] = {}
    for row in rows:
        if str(row["qid"]) != qid:
            raise RowError(f"rows of qids {qid!r} and {row['qid']!r} grouped together")
        if row["query"] != query:
            raise RowError(f"query {qid!r}: two query texts ({query!r} and {row['query']!r})")
        docid, rank = str(row["docid"]), row["rank"]
        if isinstance(rank, bool) or not isinstance(rank, int) and not float(rank).is_integer():
            raise RowError(f"query {qid!r}: docid {docid!r} has rank {rank!r}, not an integer")
        rank = int(rank)
        if docid in seen:
            raise RowError(f"query {qid!r}: docid {docid!r} is given twice")
        if rank in ranks:
            raise RowError(f"query {qid!r}: docids {ranks[rank]!r} and {docid!r} both have rank {rank}")
        if not isinstance(row["text"], str):
            raise RowError(f"query {qid!r}: docid {docid!r} has no text")
        seen[docid], ranks[rank] = rank, docid
    ordered = sorted(rows, key=lambda row: int(row["rank"]))
    return {"qid": qid, "query": query, "docids": [str(r["docid"]) for r in ordered],
            "texts": [r["text"] for r in ordered]}


def request(row: Mapping) -> RankRequest:
    """The rank request of one query row."""
    docids, texts = list(row["docids"]), list(row["texts"])
    if len(docids) != len(texts):
        raise RowError(f"query {row['qid']!r}: {len(docids)} docids for {len(texts)} texts")
    return RankRequest(row["query"], texts, [str(d) for d in docids], str(row["qid"]))


def ledger_json(ledger: Ledger) -> str:
    return json.dumps(ledger.to_dict(), sort_keys=True)


def ledger_from_json(text: str) -> Ledger:
    """The ledger :func:`ledger_json` wrote."""
    data = json.loads(text)
    data.pop("saved_inferences", None)
    sizes = Counter({int(size): n for size, n in data.pop("batch_sizes", {}).items()})
    return Ledger(**data, batch_sizes=sizes)


def total_ledger(ledgers: Iterable[str | Ledger]) -> Ledger:
    """The sum of a job's per-query ledgers (JSON or Ledger)."""
    return Ledger.total([ledger_from_json(x) if isinstance(x, str) else x for x in ledgers])


def ranked_row(result: RankedResult, keep_texts: bool = False) -> dict:
    """A ranked query row (see the module docstring); ``keep_texts`` adds ``texts`` (new order)."""
    row = {"qid": result.qid, "query": result.query, "docids": [d.doc_id for d in result.docs],
           "first_stage_ranks": [d.original_rank for d in result.docs],
           "scores": [d.score for d in result.docs], "cut": result.cut, "ledger": ledger_json(result.cost)}
    if keep_texts:
        row["texts"] = [d.text for d in result.docs]
    return row


def explode(rows: Iterable[Mapping]) -> list[dict]:
    """Ranked query rows (with ``texts``) as one row per candidate, in new rank order."""
    out = []
    for row in rows:
        for rank, (docid, text, first, score) in enumerate(
                zip(row["docids"], row["texts"], row["first_stage_ranks"], row["scores"], strict=True), 1):
            out.append({"qid": row["qid"], "query": row["query"], "docid": docid, "text": text,
                        "rank": rank, "first_stage_rank": int(first), "score": float(score),
                        "cut": bool(row["cut"]), "ledger": row["ledger"]})
    return out
