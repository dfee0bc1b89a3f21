"""Reading first-stage results and judgments: the TREC DL layout in ``shared/data``.

* ``bm25-top100.json`` - a list of ``{"query", "hits": [{"qid", "docid", "rank", "score",
  "content"}]}`` (the "retrieve_results" layout).
* ``qrels.txt`` - TREC qrels, ``qid iteration docid grade``.
* ``topics.tsv`` - ``qid<TAB>query``; ``*.run`` - TREC run ``qid Q0 docid rank score tag``.
* ``docs.jsonl`` - one ``{"docid", "text"}`` per line (the passages a run names).
* candidates JSONL - one ``{"qid", "query", "candidates": [{"docid", "text", "score"?}]}`` per
  line, candidates in first-stage order (by score, descending and stable, when all have one).

:func:`load_candidates` reads any of the three first-stage layouts ``prp rerank`` takes. Every
reader raises :class:`DataError` naming the file and line (and, in a JSON list, the entry) of
anything it cannot read: bytes that are not UTF-8, JSON that is not strict JSON (``NaN`` and
``Infinity`` are not numbers), a missing or null text, a lone surrogate (``"\ud800"``) in any
string, a qid or docid that is empty or holds whitespace (it would break a TREC line), a score
that is not a finite number, a rank that is not an integer. A query may not name the same docid
twice. Writers: :func:`trec_run_lines` and :func:`atomic_output`
(a temp file renamed into place, so a failed run leaves no half-written file).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from prp.types import RankRequest


class DataError(ValueError):
    """An input file is missing or malformed. The message names the file and the line (and, in
    a JSON list, the entry) of the problem, e.g. ``qrels.txt:3: expected 'qid 0 docid grade'``."""


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    return path


def _decoded(raw: bytes, path: Path, number: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{number}: not valid UTF-8 (byte {raw[exc.start]:#04x} at column "
                        f"{exc.start + 1})") from None
    return text[1:] if number == 1 and text.startswith("\ufeff") else text


def _text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for every line of a UTF-8 file (a leading BOM dropped)."""
    path = _existing(path)
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            yield number, _decoded(raw, path, number)


def _lines(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    for number, line in _text_lines(path):
        if line.strip():
            yield number, line.split()


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``{qid: {docid: grade}}`` from a TREC qrels file.

    One judgment a line, four fields separated by whitespace: ``qid iteration docid grade``
    (the iteration, usually ``0`` or ``Q0``, is ignored; the grade is an integer, higher is more
    relevant). Blank lines are skipped; a docid given twice for a query keeps its last grade::

        19335 0 1017759 0
        19335 0 1082489 2

    Args:
        path: the qrels file (UTF-8).

    Raises:
        DataError: no such file, bytes that are not UTF-8, or a line that is not four fields
            with an integer grade (the message names the file and line).

    Example::

        qrels = load_qrels("qrels.txt")
        qrels["19335"]["1082489"]   # 2
    """
    qrels: dict[str, dict[str, int]] = {}
    for number, parts in _lines(path):
        try:
            qid, _, docid, grade = parts
            qrels.setdefault(qid, {})[docid] = int(grade)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: expected 'qid 0 docid grade'") from exc
    return qrels


def _run_rows(path: str | Path) -> Iterator[tuple[int, str, str, int, float]]:
    """``(line, qid, docid, rank, score)`` for every line of a TREC run."""
    for number, parts in _lines(path):
        try:
            qid, _, docid, rank, score = parts[:5]
            yield number, qid, docid, int(rank), float(score)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: expected 'qid Q0 docid rank score tag'") from exc


def load_run(path: str | Path) -> dict[str, list[tuple[str, float, int]]]:
    """``{qid: [(docid, score, line), ...]}`` in rank order (ties: file order), queries in file
    order; a docid listed twice for one query is a DataError."""
    rows: dict[str, list[tuple[int, int, str, float]]] = {}
    seen: dict[tuple[str, str], int] = {}
    for number, qid, docid, rank, score in _run_rows(path):
        first = seen.setdefault((qid, docid), number)
        if first != number:
            raise DataError(f"{path}:{number}: duplicate docid {docid!r} for query {qid!r} "
                            f"(first at line {first})")
        rows.setdefault(qid, []).append((rank, number, docid, score))
    return {qid: [(d, s, n) for _, n, d, s in sorted(r)] for qid, r in rows.items()}


def load_retrieve_results(path: str | Path, depth: int | None = None) -> list[RankRequest]:
    """Queries and their candidates (first ``depth`` by rank) from a ``bm25-top100.json`` file."""
    requests = []
    for number, entry in _json_list(path):
        where = f"{path}:{number}: entry {len(requests)}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object with 'query' and 'hits', got "
                            f"{type(entry).__name__}")
        query, hits = _field_text(entry, "query", where), entry.get("hits")
        if not isinstance(hits, list):
            raise DataError(f"{where}: 'hits' must be a list, got {hits!r}")
        rows, qids = [], set()
        for pos, hit in enumerate(hits):
            at = f"{where}, hits[{pos}]"
            if not isinstance(hit, dict):
                raise DataError(f"{at}: expected an object, got {type(hit).__name__}")
            rank = hit.get("rank")
            if isinstance(rank, bool) or not isinstance(rank, int):
                raise DataError(f"{at}: 'rank' must be an integer, got {rank!r}")
            if "qid" in hit:
                qids.add(_field_id(hit, "qid", at))
            rows.append((rank, pos, _field_id(hit, "docid", at), _field_text(hit, "content", at)))
        if "qid" in entry:
            qids.add(_field_id(entry, "qid", where))
        if len(qids) > 1:
            raise DataError(f"{where}: one entry names several qids: {', '.join(sorted(qids))}")
        if not qids and rows:
            raise DataError(f"{where}: no 'qid' (give it in the entry or in its hits)")
        rows = sorted(rows)[:depth]  # by rank; equal ranks keep the file's order
        qid = qids.pop() if qids else query
        requests.append(RankRequest(query, [row[3] for row in rows], [row[2] for row in rows], qid))
    return requests


def load_dataset(directory: str | Path, depth: int | None = None
                 ) -> tuple[list[RankRequest], dict[str, dict[str, int]]]:
    """(requests, qrels) from a directory in the TREC DL layout."""
    directory = Path(directory)
    return (load_retrieve_results(directory / "bm25-top100.json", depth),
            load_qrels(directory / "qrels.txt"))


# --- first-stage candidates for ``prp rerank`` ------------------------------------------------

def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_SPACE = re.compile(r"[ \t\n\r]*")


def _json(text: str, path: Path, number: int) -> Any:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except ValueError as exc:  # NaN, Infinity
        raise DataError(f"{path}:{number}: not valid JSON ({exc})") from None


def _json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed object)`` for every non-blank line of a JSONL file."""
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        obj = _json(line, path, number)
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def _json_list(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number where it starts, parsed value)`` for every item of a file holding one
    JSON list."""
    path = _existing(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"{path}:{number}: not valid UTF-8 (byte {raw[exc.start]:#04x} at column "
                        f"{column})") from None
    del raw
    pos = _SPACE.match(text, 1 if text.startswith("\ufeff") else 0).end()
    if text[pos: pos + 1] != "[":
        raise DataError(f"{path}: not a retrieve_results JSON list (it must start with '[')")
    number, counted = 1, 0

    def line_at(at: int) -> int:
        nonlocal number, counted
        number += text.count("\n", counted, at)
        counted = at
        return number

    pos = _SPACE.match(text, pos + 1).end()
    if text[pos: pos + 1] == "]":
        pos += 1
    else:
        while True:
            start = line_at(pos)
            try:
                item, pos = _DECODER.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, "
                                f"column {exc.colno})") from None
            except ValueError as exc:  # NaN, Infinity
                raise DataError(f"{path}:{start}: not valid JSON ({exc})") from None
            yield start, item
            pos = _SPACE.match(text, pos).end()
            sep = text[pos: pos + 1]
            if sep == "]":
                pos += 1
                break
            if sep != ",":
                raise DataError(f"{path}:{line_at(pos)}: not valid JSON (expected ',' or ']' after an item)")
            pos = _SPACE.match(text, pos + 1).end()
    if _SPACE.match(text, pos).end() < len(text):
        raise DataError(f"{path}:{line_at(pos)}: not valid JSON (extra data after the list)")


_WHITESPACE = re.compile(r"\s")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_surrogate(value: str, key: str, where: str) -> str:
    found = _SURROGATE.search(value)
    if found:
        raise DataError(f"{where}: {key!r} holds a lone surrogate (U+{ord(found.group()):04X}) at "
                        f"character {found.start()}: not valid Unicode")
    return value


def _field_id(obj: dict, key: str, where: str) -> str:
    """A qid or docid: a non-empty string or integer with no whitespace (a TREC field)."""
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise DataError(f"{where}: {key!r} must be a non-empty string or integer, got {value!r}")
    value = str(value)
    if _WHITESPACE.search(value):
        raise DataError(f"{where}: {key!r} {value!r} holds whitespace (it would break a TREC run line)")
    return _no_surrogate(value, key, where)


def _field_text(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string, got {value!r}")
    return _no_surrogate(value, key, where)


def load_topics(path: str | Path) -> dict[str, str]:
    """``{qid: query}`` from a ``qid<TAB>query`` file."""
    topics: dict[str, str] = {}
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        qid, tab, query = line.rstrip("\r\n").partition("\t")
        if not tab or not qid.strip() or not query.strip():
            raise DataError(f"{path}:{number}: expected 'qid<TAB>query'")
        qid = qid.strip()
        if _WHITESPACE.search(qid):
            raise DataError(f"{path}:{number}: qid {qid!r} holds whitespace (it would break a TREC run line)")
        if qid in topics and topics[qid] != query.strip():
            raise DataError(f"{path}:{number}: query {qid!r} is given twice, with different texts")
        topics[qid] = query.strip()
    return topics


def load_docs(path: str | Path) -> dict[str, str]:
    """``{docid: text}`` from a JSONL file of ``{"docid", "text"}`` objects."""
    docs: dict[str, str] = {}
    for number, obj in _json_lines(path):
        where = f"{path}:{number}"
        docid, text = _field_id(obj, "docid", where), _field_text(obj, "text", where)
        if docid in docs and docs[docid] != text:
            raise DataError(f"{where}: docid {docid!r} is given twice, with different texts")
        docs[docid] = text
    return docs


def load_run_candidates(run: str | Path, topics: str | Path, docs: str | Path) -> list[RankRequest]:
    """One request per query of a TREC ``run`` (file order), with query texts from ``topics``
    and passages from ``docs``; candidates in rank order (ties: file order).

    Args:
        run: TREC run lines ``qid Q0 docid rank score tag`` (the first stage's results).
        topics: ``qid<TAB>query`` lines.
        docs: JSONL, one ``{"docid": ..., "text": ...}`` object a line.

    Raises:
        DataError: a file that is missing or malformed, a query of the run with no text in
            ``topics``, a docid with no passage in ``docs``, a docid listed twice for a query
            (each names the file and line).

    Example::

        requests = load_run_candidates("bm25.run", "topics.tsv", "docs.jsonl")
    """
    rows = {qid: [(docid, f"{run}:{number}") for docid, _, number in hits]
            for qid, hits in load_run(run).items()}
    return run_requests(rows, load_topics(topics), load_docs(docs), f"has no text in {topics}",
                        f"is not in {docs}")


def run_requests(rows: Mapping[str, Sequence[tuple[str, str]]], queries: Mapping[str, str],
                 texts: Mapping[str, str], no_query: str, no_doc: str) -> list[RankRequest]:
    """One request per query of ``rows`` (``qid -> [(docid, where it is given)]``, in rank
    order), its text from ``queries`` and its passages from ``texts``; a query or docid they
    lack is a DataError at its place: "WHERE: query 'q' NO_QUERY" / "WHERE: docid 'd' NO_DOC"."""
    requests = []
    for qid, hits in rows.items():
        if qid not in queries:
            raise DataError(f"{hits[0][1]}: query {qid!r} {no_query}")
        for docid, where in hits:
            if docid not in texts:
                raise DataError(f"{where}: docid {docid!r} {no_doc}")
        ids = [docid for docid, _ in hits]
        requests.append(RankRequest(queries[qid], [texts[d] for d in ids], ids, qid))
    return requests


def _candidates(obj: dict, where: str) -> tuple[list[str], list[str]]:
    """(docids, texts) of one candidates-JSONL line, in first-stage order."""
    items = obj.get("candidates")
    if not isinstance(items, list):
        raise DataError(f"{where}: 'candidates' must be a list of {{\"docid\", \"text\"}} objects")
    rows, seen = [], set()
    for pos, item in enumerate(items):
        at = f"{where}: candidates[{pos}]"
        if not isinstance(item, dict):
            raise DataError(f"{at}: expected an object, got {type(item).__name__}")
        docid, text = _field_id(item, "docid", at), _field_text(item, "text", at)
        score = item.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                  or not math.isfinite(score)):
            raise DataError(f"{at}: 'score' must be a finite number, got {score!r}")
        if docid in seen:
            raise DataError(f"{at}: duplicate docid {docid!r} in query {obj.get('qid')!r}")
        seen.add(docid)
        rows.append((docid, text, score))
    if rows and all(score is not None for _, _, score in rows):
        rows.sort(key=lambda row: -row[2])  # stable: equal scores keep the file's order
    return [docid for docid, _, _ in rows], [text for _, text, _ in rows]


def load_candidates_jsonl(path: str | Path) -> list[RankRequest]:
    """One request per line of ``{"qid", "query", "candidates": [{"docid", "text", "score"?}]}``.

    Candidates are taken in file order, or by score (descending, stable) when every candidate
    of the query has one."""
    requests, lines = [], {}
    for number, obj in _json_lines(path):
        where = f"{path}:{number}"
        qid, query = _field_id(obj, "qid", where), _field_text(obj, "query", where)
        if qid in lines:
            raise DataError(f"{where}: query {qid!r} is given twice (first at line {lines[qid]})")
        lines[qid] = number
        ids, texts = _candidates(obj, where)
        requests.append(RankRequest(query, texts, ids, qid))
    return requests


def _check_unique(path: str | Path, requests: list[RankRequest]) -> None:
    seen_qids: set[str] = set()
    for req in requests:
        if req.qid in seen_qids:
            raise DataError(f"{path}: query {req.qid!r} is given twice")
        seen_qids.add(str(req.qid))
        seen: set[str] = set()
        for docid in req.doc_ids or ():
            if docid in seen:
                raise DataError(f"{path}: duplicate docid {docid!r} in query {req.qid!r}")
            seen.add(docid)


def load_candidates(path: str | Path) -> list[RankRequest]:
    """Queries and their candidates, one :class:`~prp.types.RankRequest` per query (file order),
    from either layout (told apart by the first character: ``[`` is the JSON list):

    * **candidates JSONL** - one object a line, candidates in first-stage order (or by
      ``score``, descending and stable, when every candidate of the query has one)::

        {"qid": "q1", "query": "how long do fleas live", "candidates": [
            {"docid": "d1", "text": "A flea can live up to a year...", "score": 12.5},
            {"docid": "d2", "text": "Fleas are wingless insects..."}]}

      (one line in the file; wrapped here).
    * **retrieve_results JSON list** (rank_llm's layout, e.g. ``bm25-top100.json``)::

        [{"query": "...", "hits": [{"qid": "q1", "docid": "d1", "rank": 1, "score": 12.5,
                                    "content": "..."}]}]

      hits are taken by ``rank``; the qid is the entry's or its hits' ``qid``.

    qids and docids are non-empty strings or integers without whitespace (they are written into
    TREC run lines); ``query`` and ``text`` are strings. Blank lines are skipped; a UTF-8 BOM is
    allowed.

    Args:
        path: the file.

    Raises:
        DataError: a missing file, bytes that are not UTF-8, invalid JSON (``NaN`` is not a
            number), a missing field, a qid given twice, a docid given twice in one query, a
            score that is not a finite number... (the message names the file, line and field).

    Example::

        requests = load_candidates("candidates.jsonl")
        requests[0].qid, requests[0].doc_ids[:2]   # ('q1', ['d1', 'd2'])
    """
    path = _existing(path)
    with path.open("rb") as fh:
        head = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"["):
        requests = load_retrieve_results(path)
        _check_unique(path, requests)
        return requests
    return load_candidates_jsonl(path)


# --- writers ----------------------------------------------------------------------------------

def trec_run_lines(qid: str, doc_ids: Iterable[str], tag: str = "prp") -> Iterator[str]:
    """TREC run lines ``qid Q0 docid rank score tag`` for one ranking: ranks 1..n and integer
    scores n..1, so rank order and score order agree.

    Raises:
        ValueError: an id that is empty or holds whitespace (it would break the line).

    Example::

        with open("reranked.run", "w") as fh:
            for result in results:
                fh.writelines(trec_run_lines(result.qid, result.doc_ids))
    """
    ids = list(doc_ids)
    for field in (qid, *ids):
        if not field or _WHITESPACE.search(field):
            raise ValueError(f"id {field!r} cannot be written in a TREC run (empty or holds whitespace)")
    for rank, docid in enumerate(ids, start=1):
        yield f"{qid} Q0 {docid} {rank} {len(ids) - rank + 1} {tag}\n"


@contextmanager
def atomic_output(path: str | Path) -> Iterator[TextIO]:
    """A text stream for ``path`` (``"-"``: stdout). The output appears only when the block ends
    without an exception: it is written to a temp file beside ``path`` (or in the temp
    directory, for stdout), then renamed into place (or copied to stdout)."""
    if str(path) == "-":
        with tempfile.TemporaryFile("w+", encoding="utf-8") as fh:
            yield fh
            fh.seek(0)
            shutil.copyfileobj(fh, sys.stdout)
        sys.stdout.flush()
        return
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_output_path(path: str | Path) -> None:
    """Fail early (before any work) if ``path`` cannot be written: DataError naming why."""
    if str(path) == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise DataError(f"output {target} is a directory")
    parent = target.parent
    if not parent.is_dir():
        raise DataError(f"output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise DataError(f"output directory {parent} is not writable")
