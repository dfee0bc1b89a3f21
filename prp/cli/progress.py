"""The progress bar of ``prp rerank``: prompts done out of the planner's estimate, with an ETA.

Rules:

* **The measure is prompts**, which move while every query is still in flight (queries finish
  only at the end when they are all ranked together). A prompt is *done* when it is sent to the
  judge and answered (:class:`ProgressBackend` reports each inference) or answered by the cache
  (:class:`ProgressCache` reports each hit).
* **The total is an estimate**: the cost planner's predicted prompts for the run (no cache
  counted), so the ETA (tqdm's, from the rate of prompts done) is an estimate too. A run that
  needs more raises the total to what was done; the bar ends at what was actually done.
* Beside the bar: queries done, inferences paid and prompts answered by the cache.
* The bar is drawn on stderr, at most every :data:`Progress.REFRESH_SECONDS` between inferences;
  without tqdm, or when disabled, the counters still count.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from prp.cache import Cache, Key
from prp.oracles.base import Backend
from prp.result import RankedResult
from prp.types import BatchResult, Judgment, Prompt


class Progress:
    """Counts prompts judged, prompts cached, inferences and queries done; draws a tqdm bar."""

    REFRESH_SECONDS = 0.2

    def __init__(self, estimate: float, queries: int, enabled: bool) -> None:
        self.queries, self.done_queries = queries, 0
        self.inferences = self.prompts = self.cached = 0
        self.bar, self._drawn = None, 0.0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a core dependency
                return
            self.bar = tqdm(total=max(1, round(estimate)), unit="prompt", file=sys.stderr,
                            dynamic_ncols=True, desc="prompts (estimated total)")
            self._show(force=True)

    @property
    def done(self) -> int:
        """Prompts answered so far, by the judge or the cache."""
        return self.prompts + self.cached

    def judged(self, prompts: int) -> None:
        self.inferences += 1
        self.prompts += prompts
        self._show(force=False)

    def hit(self) -> None:
        self.cached += 1
        self._show(force=False)

    def finished(self, results: Sequence[RankedResult]) -> None:
        self.done_queries += len(results)
        self._show(force=True)

    def _show(self, force: bool) -> None:
        bar = self.bar
        if bar is None or (not force and time.monotonic() - self._drawn < self.REFRESH_SECONDS):
            return
        if self.done > bar.total:
            bar.total = self.done
        bar.update(self.done - bar.n)
        bar.set_postfix_str(f"queries {self.done_queries}/{self.queries}, {self.inferences} inferences, "
                            f"{self.cached} prompts from the cache", refresh=True)
        self._drawn = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self._show(force=True)
            self.bar.total = self.done  # the run is over: what was done is the whole of it
            self.bar.refresh()
            self.bar.close()


class ProgressBackend:
    """Delegates to a backend and reports every inference to a :class:`Progress`."""

    def __init__(self, inner: Backend, progress: Progress) -> None:
        self.inner, self.progress = inner, progress

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def keys_by(self) -> str:
        return self.inner.keys_by

    async def judge(self, prompts: Sequence[Prompt]) -> BatchResult:
        result = await self.inner.judge(prompts)
        self.progress.judged(len(prompts))
        return result

    def __getattr__(self, attr: str) -> object:
        return getattr(self.inner, attr)


class ProgressCache:
    """Delegates to a judgment cache and reports every hit to a :class:`Progress`."""

    def __init__(self, inner: Cache, progress: Progress) -> None:
        self.inner, self.progress = inner, progress

    def get(self, key: Key) -> Judgment | None:
        judged = self.inner.get(key)
        if judged is not None:
            self.progress.hit()
        return judged

    def set(self, key: Key, judgment: Judgment) -> None:
        self.inner.set(key, judgment)
