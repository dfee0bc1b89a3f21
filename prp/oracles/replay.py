"""A judge that replays a real LLM's recorded answers: every ranker on real judgments, at no cost.

A replay set (``bench/replay_matrix.py`` builds one) is a gzipped JSON object::

    {"model": "<the judge's cache identity>", "depth": 20,
     "queries": [{"qid", "query", "doc_ids": [...], "margins": [[...], ...]}]}

``margins[i][j]`` is the judge's margin (score of A minus score of B) for the prompt showing
``doc_ids[i]`` as passage A and ``doc_ids[j]`` as B; the diagonal and unparsed answers are null.

A set may also hold **set and list answers** (k-wise questions are too many to record them all:
these are the ones a run asked, e.g. ``bench/shapes_real.py --replay-out``), under ``"shaped"``:
``[{"qid", "shape": "set" | "list", "ids": [...] (in the order shown), "order": [...] (slots,
best first; a set's winner alone), "probs": [...] | null}]``. The oracle then answers those shapes
too (its ``shapes``), each question from the answer recorded for exactly that query, shape and
order shown, and raises :class:`ReplayMiss` for any other.
:class:`ReplayOracle` answers a prompt from it, and raises :class:`ReplayMiss` (a
:class:`~prp.oracles.base.BackendError`, naming the query and documents) for a prompt the set
does not hold, or one the recorded judge left unparsed - it never guesses. A set that cannot be
read whole (a file cut short, not gzip, not JSON, the wrong shape) is a ``ValueError`` naming the
file (``prp`` commands: one line, exit 2).
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zlib
from pathlib import Path

from prp.oracles.base import BackendError
from prp.oracles.simulated import SimulatedJudge
from prp.types import Choice, Prompt, ShapedPrompt


class ReplayMiss(BackendError):
    """A prompt the replay set has no answer for (that prompt's fault: its batch is split, and
    only the queries that need it fail)."""

    prompt_fault = True


def read_replay(path: str | os.PathLike[str]) -> dict:
    """The replay set at ``path`` (gzipped JSON), checked for shape."""
    path = Path(path)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error, ValueError) as exc:  # e.g. a file cut short: EOFError
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, EOFError) else str(exc)
        raise ValueError(f"{path}: not a replay set (gzipped JSON): {reason}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("queries"), list):
        raise ValueError(f"{path}: not a replay set: no 'queries' list")
    for number, q in enumerate(data["queries"], start=1):
        if not isinstance(q, dict) or "qid" not in q or not isinstance(q.get("doc_ids"), list):
            raise ValueError(f"{path}: query {number} is not an object with a 'qid' and a 'doc_ids' list")
        n, rows = len(q["doc_ids"]), q.get("margins")
        if (not n or not isinstance(rows, list) or len(rows) != n
                or any(not isinstance(row, list) or len(row) != n for row in rows)):
            raise ValueError(f"{path}: query {number} ({q['qid']!r}) needs an n x n margins "
                             f"matrix for its {n} doc ids")
        if any(m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)))
               for row in rows for m in row):
            raise ValueError(f"{path}: query {number} ({q['qid']!r}): margins must be numbers or null")
    shaped = data.get("shaped", [])
    if not isinstance(shaped, list):
        raise ValueError(f"{path}: 'shaped' must be a list of set and list answers")
    for number, a in enumerate(shaped, start=1):
        if not shaped_answer_ok(a):
            raise ValueError(f"{path}: shaped answer {number} is not an object with a 'qid', a 'shape' "
                             "('set' or 'list'), 'ids' (2 or more) and an 'order' of slots that fits them "
                             "(and 'probs': null or one number a slot)")
    return data


def shaped_answer_ok(a: object) -> bool:
    """Whether ``a`` is a recorded set or list answer: an object with a ``qid``, a ``shape``,
    ``ids`` (2 or more, in the order shown), an ``order`` of slots that fits them (a set's winner
    alone, a list's permutation) and ``probs`` null or one number a slot. (Replay sets and
    ``prp calibrate-oracle --set-answers`` files hold such answers.)"""
    if not isinstance(a, dict) or "qid" not in a or a.get("shape") not in ("set", "list"):
        return False
    ids, order, probs = a.get("ids"), a.get("order"), a.get("probs")
    if not isinstance(ids, list) or len(ids) < 2 or not isinstance(order, list) or not order:
        return False
    if any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < len(ids) for x in order):
        return False
    if (len(order) != 1) if a["shape"] == "set" else sorted(order) != list(range(len(ids))):
        return False
    return probs is None or (isinstance(probs, list) and len(probs) == len(ids) and all(
        not isinstance(x, bool) and isinstance(x, (int, float)) for x in probs))


def write_replay(path: str | os.PathLike[str], data: dict) -> None:
    """Write ``data`` to ``path`` as gzipped JSON, atomically (a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
            fh.write(json.dumps(data, separators=(",", ":")).encode("utf-8"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def with_shaped(data: dict, answers: list[dict]) -> dict:
    """A replay set's ``data`` with ``answers`` (set and list answers as
    ``bench/shapes_real.py --answers`` records them) added under ``"shaped"``: the parsed ones,
    the later of two for one question kept."""
    kept = {(str(a["qid"]), a["shape"], tuple(a["ids"])): a for a in data.get("shaped", [])}
    for a in answers:
        if a.get("parsed", True) and a.get("order"):
            row = {"qid": str(a["qid"]), "shape": a["shape"], "ids": [str(i) for i in a["ids"]],
                   "order": list(a["order"]), "probs": a.get("probs")}
            kept[(row["qid"], row["shape"], tuple(row["ids"]))] = row
    return {**data, "shaped": list(kept.values())}


class ReplayOracle(SimulatedJudge):
    """Judges from a replay set: the recorded margin of (qid, first id, second id), and the
    recorded answer of a set or list question (qid, shape, ids in the order shown) when the set
    holds such answers; it reports no prompt tokens (the set does not hold them)."""

    kind = "replay"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        data = read_replay(path)
        self.path = Path(path)
        self.model = str(data.get("model", "?"))
        self.name = f"replay/{self.model}"
        self._index: dict[str, tuple[dict[str, int], list[list[float | None]]]] = {
            str(q["qid"]): ({str(d): pos for pos, d in enumerate(q["doc_ids"])}, q["margins"])
            for q in data["queries"]}
        self._shaped: dict[tuple[str, str, tuple[str, ...]], Choice] = {
            (str(a["qid"]), a["shape"], tuple(str(i) for i in a["ids"])):
                Choice(tuple(a["order"]), None if a.get("probs") is None else tuple(map(float, a["probs"])))
            for a in data.get("shaped", [])}
        self.shapes = ("pair", *sorted({shape for _, shape, _ in self._shaped}, reverse=True))

    def choose(self, p: ShapedPrompt) -> Choice:
        try:
            return self._shaped[(p.qid, p.shape, tuple(p.ids))]
        except KeyError:
            raise ReplayMiss(f"replay set {self.path} has no {p.shape} answer for query {p.qid!r} with "
                             f"{', '.join(p.ids)} shown in that order") from None

    def margin(self, p: Prompt) -> float:
        try:
            pos, margins = self._index[p.qid]
        except KeyError:
            raise ReplayMiss(f"replay set {self.path} has no query {p.qid!r}; it holds "
                             f"{', '.join(sorted(self._index))}") from None
        try:
            value = margins[pos[p.first_id]][pos[p.second_id]]
        except KeyError as exc:
            raise ReplayMiss(f"replay set {self.path} has no document {exc.args[0]!r} for query "
                             f"{p.qid!r} (it holds the top {len(pos)})") from None
        if value is None:
            raise ReplayMiss(f"replay set {self.path} has no answer for query {p.qid!r}, "
                             f"{p.first_id!r} shown before {p.second_id!r}")
        return float(value)

    def tokens(self, p: Prompt) -> int:
        return 0
