"""The progress bar of ``prp rerank``: prompts done out of the planner's estimate, with an ETA.

Rules:

* **The measure is prompts**, which move while every query is still in flight (queries finish
  only at the end when they are all ranked together). A prompt is *done* when it is sent to the
  judge and answered, or answered by the cache: the engine's hooks report both
  (:meth:`Progress.hooks`), as they report each query that finishes.
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

from prp.judging import Inference
from prp.result import RankedResult


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

    def hooks(self) -> dict:
        """The engine hooks that move the bar (``Engine(..., **progress.hooks())``)."""
        return {"on_inference": self.judged, "on_cached": self.hit, "on_result": self.finished}

    def judged(self, inference: Inference) -> None:
        self.inferences += 1
        self.prompts += len(inference.prompts)
        self._show(force=False)

    def hit(self, prompts: int) -> None:
        self.cached += prompts
        self._show(force=False)

    def finished(self, result: RankedResult) -> None:
        self.done_queries += 1
        self._show(force=self.done_queries == self.queries)

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
