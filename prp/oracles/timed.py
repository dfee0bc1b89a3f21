"""A backend wrapper that records every inference's size and wall time (for calibration)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prp.types import BatchResult, Prompt


class TimedBackend:
    """Delegates to ``inner`` and appends one record per ``judge`` call to ``records``:
    ``{"prompts", "prompt_tokens", "completion_tokens", "seconds"}`` - the input of
    :func:`cost.calibrate.fit`."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.keys_by = inner.name, inner.keys_by
        self.records: list[dict] = []

    async def judge(self, prompts: Sequence[Prompt]) -> BatchResult:
        started = time.perf_counter()
        result = await self.inner.judge(prompts)
        self.records.append({"prompts": len(prompts), "prompt_tokens": result.prompt_tokens,
                             "completion_tokens": result.completion_tokens,
                             "seconds": time.perf_counter() - started})
        return result
