"""First-stage candidates whose topics and passages come through ir_datasets (``prp[datasets]``).

``load_ir_dataset("msmarco-passage/trec-dl-2019/judged", "bm25.run")`` reads a TREC run and
takes each query's text from the dataset's queries and each passage from its docs store; with
no run it uses the dataset's own first-stage results (its ``scoreddocs``, by score, descending).

Rules: ir_datasets is imported only here, only when a dataset is asked for, and it reads the
data where the user has it (its own cache, ``$IR_DATASETS_HOME``); nothing else of prp depends
on it. A query's text is the query's ``default_text()``, a passage's the doc's. An unknown
dataset id, a run query the dataset does not have or a docid missing from its docs store is a
:class:`~prp.data.DataError` naming the id, or the run file and line; a dataset that cannot be
read (not installed, not downloaded) is a DataError too, naming the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prp.data import DataError, load_run, run_requests
from prp.types import RankRequest


def _ir_datasets() -> Any:
    try:
        import ir_datasets
    except ImportError as exc:
        raise DataError(f"--dataset needs ir_datasets: pip install 'prp[datasets]' ({exc})") from exc
    return ir_datasets


def _text(item: Any) -> str:
    text = item.default_text() if hasattr(item, "default_text") else getattr(item, "text", None)
    if not isinstance(text, str):
        raise DataError(f"{type(item).__name__} {item[0]!r} has no text")
    return text


def open_dataset(dataset_id: str) -> Any:
    """The ir_datasets dataset ``dataset_id``; DataError if ir_datasets does not know it."""
    irds = _ir_datasets()
    try:
        return irds.load(dataset_id)
    except KeyError as exc:
        raise DataError(f"ir_datasets has no dataset {dataset_id!r}") from exc


def _scoreddocs_rows(dataset: Any, dataset_id: str) -> dict[str, list[tuple[str, str]]]:
    """``{qid: [(docid, where), ...]}`` of the dataset's own first-stage results, by score."""
    if not dataset.has_scoreddocs():
        raise DataError(f"dataset {dataset_id!r} has no first-stage results (scoreddocs): give --run")
    by_qid: dict[str, list[tuple[float, int, str]]] = {}
    for number, row in enumerate(dataset.scoreddocs_iter(), start=1):
        by_qid.setdefault(row.query_id, []).append((-float(row.score), number, row.doc_id))
    return {qid: [(d, f"{dataset_id} scoreddocs #{n}") for _, n, d in sorted(rows)]
            for qid, rows in by_qid.items()}


def load_ir_dataset(dataset_id: str, run: str | Path | None = None) -> list[RankRequest]:
    """One request per query of ``run`` (file order; candidates in rank order), or of the
    dataset's scoreddocs when ``run`` is None, with texts from the dataset."""
    dataset = open_dataset(dataset_id)
    if not dataset.has_queries() or not dataset.has_docs():
        raise DataError(f"dataset {dataset_id!r} has no queries or no docs")
    if run is None:
        rows = _scoreddocs_rows(dataset, dataset_id)
    else:
        rows = {qid: [(d, f"{run}:{line}") for d, _, line in hits] for qid, hits in load_run(run).items()}
    wanted = sorted({docid for hits in rows.values() for docid, _ in hits})
    try:
        queries = {q.query_id: _text(q) for q in dataset.queries_iter() if q.query_id in rows}
        docs = {docid: _text(doc) for docid, doc in dataset.docs_store().get_many(wanted).items()}
    except OSError as exc:  # not downloaded, not readable
        raise DataError(f"cannot read dataset {dataset_id!r} ({type(exc).__name__}: {exc})") from exc
    return run_requests(rows, queries, docs, f"is not in dataset {dataset_id!r}",
                        f"is not in the docs of {dataset_id!r}")
