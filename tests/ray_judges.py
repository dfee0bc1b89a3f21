"""Rerankers for the Ray tests, importable by Ray's worker processes (tests/test_ray.py puts
this directory on their path): a simulated judge that leaves a trace of every prompt it judges."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prp import Reranker
from prp.cache import make_cache
from prp.oracles.judges import make_judge
from prp.ray import shard_cache
from prp.types import BatchResult


class TracedJudge:
    """``inner``'s answers; each batch sleeps ``delay`` s, then appends the prompts it judged
    (``qid first second`` lines) to ``DIR/judged-PID.log``. Writes ``DIR/pid-PID`` when built.
    ``fail``: every batch raises ConnectionError (a judge that died)."""

    def __init__(self, inner, trace: str, delay: float = 0.0, fail: bool = False):
        self.inner, self.delay, self.fail = inner, delay, fail
        self.name, self.keys_by = inner.name, inner.keys_by
        self.trace = Path(trace)
        self.trace.mkdir(parents=True, exist_ok=True)
        (self.trace / f"pid-{os.getpid()}").write_text(str(os.getpid()))
        self.log = open(self.trace / f"judged-{os.getpid()}.log", "a", buffering=1)  # noqa: SIM115

    async def judge(self, prompts):
        if self.fail:
            raise ConnectionError("judge server went away")
        if self.delay:
            time.sleep(self.delay)
        result: BatchResult = await self.inner.judge(prompts)
        self.log.write("".join(f"{p.qid} {p.first_id} {p.second_id}\n" for p in prompts))
        return result


def make(qrels: str, trace: str, judge: str = "perfect", sorter: str = "quicksort", cache: str | None = None,
         delay: float = 0.0, fail: bool = False) -> Reranker:
    """The reranker each actor builds: ``cache`` a redis:// URL, a directory (shards) or None."""
    backend = TracedJudge(make_judge(judge, qrels=qrels), trace, delay, fail)
    if cache is None:
        store = None
    elif cache.startswith("redis://"):
        store = make_cache(cache)
    else:
        store = shard_cache(cache)
    return Reranker(backend, sorter=sorter, k=10, batch_size=8, cache=store)


def judged(trace: str | Path) -> list[tuple[str, str, str]]:
    """Every prompt judged under ``trace``, by every process (duplicates kept)."""
    out = []
    for log in Path(trace).glob("judged-*.log"):
        out += [tuple(line.split()) for line in log.read_text().splitlines()]
    return out
