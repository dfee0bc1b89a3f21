"""A job's checkpoint: the queries it finished, one file per block, so a rerun does the rest.

Rules:

* A checkpoint is a directory holding ``job.json`` (what the job is: its settings and input, as
  given to :meth:`Checkpoint.open`) and ``block-*.jsonl`` files, one per block of ranked queries
  the driver received, each written to a temp file and renamed into place: a block is there
  whole or not at all, so a driver killed at any moment loses at most the blocks in flight.
* Opening a checkpoint of another job (settings or input differ) is an error naming the
  directory: a rerun never mixes rankings made with different settings.
* A record is a ranked query row of :mod:`prp.ray.rows` without texts: ``qid``, ``docids`` in
  the new order, ``first_stage_ranks``, ``scores``, ``cut`` and ``ledger``. A qid met in two
  blocks (a block retried after its first copy was written) keeps its first record: rankings
  are deterministic, and the first one's ledger is what was paid for it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

JOB = "job.json"


class Checkpoint:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._blocks = itertools.count()

    def open(self, job: Mapping) -> dict[str, dict]:
        """Start or resume the checkpoint of ``job`` (JSON-able); returns the finished queries'
        records by qid. ValueError if the directory holds another job's checkpoint."""
        described = json.dumps(job, sort_keys=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / JOB
        if path.exists():
            try:
                found = json.dumps(json.loads(path.read_text(encoding="utf-8")), sort_keys=True)
            except ValueError:
                found = None
            if found != described:
                raise ValueError(f"checkpoint {self.directory} belongs to another job (other settings or "
                                 "input): remove it, or give another --checkpoint")
        else:
            self._atomic(path, described + "\n")
        done: dict[str, dict] = {}
        numbers = []
        for block in sorted(self.directory.glob("block-*.jsonl")):
            numbers.append(int(block.stem.split("-")[1]))
            for number, line in enumerate(block.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    record = json.loads(line)
                    qid = record["qid"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{block}:{number}: not a checkpoint record: {exc}") from exc
                done.setdefault(qid, record)
        self._blocks = itertools.count(max(numbers, default=-1) + 1)
        return done

    def write(self, records: Iterable[Mapping]) -> None:
        """One block of finished queries, whole or not at all."""
        text = "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in records)
        if text:
            self._atomic(self.directory / f"block-{next(self._blocks):08d}.jsonl", text)

    def _atomic(self, path: Path, text: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
