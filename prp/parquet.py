"""Parquet in and out for large query sets (``pip install 'prp[parquet]'``: pyarrow; ``prp[ray]``
brings it too). pyarrow is imported when a function runs, never with :mod:`prp`.

* :func:`load_parquet_candidates` reads either layout of :mod:`prp.ray.rows`: one row per
  candidate (``qid``, ``query``, ``docid``, ``text``, ``rank``) or one row per query (``qid``,
  ``query``, ``docids``, ``texts``). Queries come in the order of their first row; a query's
  candidates by ``rank``. Errors are :class:`~prp.data.DataError` naming the file and the qid.
* :func:`write_parquet_run` writes a run as one row per candidate (``qid``, ``docid``,
  ``rank``, ``score``: ranks 1..n, scores n..1 as in a TREC run) to a temp file beside the path,
  renamed into place: the file appears only once complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from prp.data import DataError
from prp.types import RankRequest


def _pyarrow():  # noqa: ANN202
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError("Parquet needs pyarrow: pip install 'prp[parquet]'") from exc
    return pyarrow


def load_parquet_candidates(path: str | os.PathLike[str]) -> list[RankRequest]:
    """The queries of a Parquet file (see the module docstring)."""
    from prp.ray.rows import RowError, group_rows, layout, request

    pa = _pyarrow()
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    try:
        table = pa.parquet.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet file: {exc}") from exc
    try:
        kind = layout(table.column_names)
        rows = table.to_pylist()
        if kind == "rows":
            grouped: dict[str, list[dict]] = {}
            for row in rows:
                grouped.setdefault(str(row["qid"]), []).append(row)
            rows = [group_rows(group) for group in grouped.values()]
        requests, seen = [], set()
        for row in rows:
            req = request(row)
            if req.qid in seen:
                raise RowError(f"query {req.qid!r} is given twice")
            seen.add(req.qid)
            requests.append(req)
        return requests
    except (RowError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: {exc}") from exc


def write_parquet_run(path: str | os.PathLike[str], rankings: Iterable[tuple[str, list[str]]]) -> None:
    """Write ``(qid, docids in rank order)`` pairs as a Parquet run (see the module docstring)."""
    pa = _pyarrow()
    qids, docids, ranks, scores = [], [], [], []
    for qid, ids in rankings:
        for rank, docid in enumerate(ids, start=1):
            qids.append(qid)
            docids.append(docid)
            ranks.append(rank)
            scores.append(float(len(ids) - rank + 1))
    table = pa.table({"qid": pa.array(qids, pa.string()), "docid": pa.array(docids, pa.string()),
                      "rank": pa.array(ranks, pa.int64()), "score": pa.array(scores, pa.float64())})
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pa.parquet.write_table(table, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
