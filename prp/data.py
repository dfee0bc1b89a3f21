"""Reading first-stage results and judgments: the TREC DL layout in ``shared/data``.

* ``bm25-top100.json`` - a list of ``{"query", "hits": [{"qid", "docid", "rank", "score",
  "content"}]}`` (the "retrieve_results" layout).
* ``qrels.txt`` - TREC qrels, ``qid iteration docid grade``.
* ``topics.tsv`` - ``qid<TAB>query``; ``*.run`` - TREC run ``qid Q0 docid rank score tag``.
Every reader raises :class:`DataError` naming the file and line of anything it cannot read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from prp.reranker import RankRequest


class DataError(ValueError):
    """An input file is missing or malformed."""


def _lines(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, line.split()


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``{qid: {docid: grade}}`` from a TREC qrels file."""
    qrels: dict[str, dict[str, int]] = {}
    for number, parts in _lines(path):
        try:
            qid, _, docid, grade = parts
            qrels.setdefault(qid, {})[docid] = int(grade)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: expected 'qid 0 docid grade'") from exc
    return qrels


def load_run(path: str | Path) -> dict[str, list[tuple[str, float]]]:
    """``{qid: [(docid, score), ...]}`` from a TREC run, each list in rank order."""
    rows: dict[str, list[tuple[int, str, float]]] = {}
    for number, parts in _lines(path):
        try:
            qid, _, docid, rank, score = parts[:5]
            rows.setdefault(qid, []).append((int(rank), docid, float(score)))
        except ValueError as exc:
            raise DataError(f"{path}:{number}: expected 'qid Q0 docid rank score tag'") from exc
    return {qid: [(d, s) for _, d, s in sorted(r)] for qid, r in rows.items()}


def load_retrieve_results(path: str | Path, depth: int | None = None) -> list[RankRequest]:
    """Queries and their candidates (first ``depth``) from a ``bm25-top100.json`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        requests = []
        for entry in data:
            hits = sorted(entry["hits"], key=lambda h: h["rank"])[:depth]
            qid = str(hits[0]["qid"]) if hits else str(entry.get("qid", entry["query"]))
            requests.append(RankRequest(entry["query"], [h["content"] for h in hits],
                                        [str(h["docid"]) for h in hits], qid))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a retrieve_results JSON list ({type(exc).__name__}: {exc})") from exc
    return requests


def load_dataset(directory: str | Path, depth: int | None = None
                 ) -> tuple[list[RankRequest], dict[str, dict[str, int]]]:
    """(requests, qrels) from a directory in the TREC DL layout."""
    directory = Path(directory)
    return (load_retrieve_results(directory / "bm25-top100.json", depth),
            load_qrels(directory / "qrels.txt"))
