"""Fitting the latency model to measured inferences, and checking it on other runs.

A measurement record is one inference: ``{"prompts": int, "prompt_tokens": int, "seconds":
float}``, with ``completion_tokens`` (output tokens) when known (0 if missing; other fields are
kept but ignored). :func:`fit` finds the non-negative ``alpha``, ``beta``, ``gamma``, ``delta`` of
``t = alpha + beta*prompts + gamma*prompt_tokens + delta*completion_tokens`` with the least
squared error (every subset of the four terms is solved by least squares and the best feasible
one kept: four unknowns make that exact and cheap; with one output token a prompt, as pairs
have, ``delta`` and ``beta`` are one term, and the fit keeps ``delta`` at 0). :func:`check`
reports how well a model predicts records it was not fitted on. numpy is imported when a fit or
a check runs, not with the module (the command line imports it).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cost.model import LatencyModel

if TYPE_CHECKING:
    import numpy as np


def load_records(path: str | Path) -> list[dict]:
    """Records from a JSON list or a JSON-lines file."""
    text = Path(path).read_text(encoding="utf-8").strip()
    records = json.loads(text) if text.startswith("[") else [json.loads(x) for x in text.splitlines() if x]
    for number, record in enumerate(records):
        missing = {"prompts", "prompt_tokens", "seconds"} - set(record)
        if missing:
            raise ValueError(f"{path}: record {number} lacks {sorted(missing)}")
    return records


def _design(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    x = np.array([[1.0, r["prompts"], r["prompt_tokens"], r.get("completion_tokens", 0)] for r in records],
                 dtype=float)
    y = np.array([r["seconds"] for r in records], dtype=float)
    return x, y


def fit(records: Sequence[dict]) -> LatencyModel:
    """The non-negative least-squares latency model of ``records``."""
    import numpy as np

    if len(records) < 3:
        raise ValueError(f"need at least 3 measured inferences to fit 3 parameters, got {len(records)}")
    x, y = _design(records)
    best, best_error = np.zeros(4), float(np.sum(y**2))
    for size in (1, 2, 3, 4):  # fewer terms first: a tie keeps the simpler model
        for columns in itertools.combinations(range(4), size):
            coef, *_ = np.linalg.lstsq(x[:, columns], y, rcond=None)
            if np.all(coef >= 0):
                full = np.zeros(4)
                full[list(columns)] = coef
                error = float(np.sum((x @ full - y) ** 2))
                if error < best_error - 1e-15:
                    best, best_error = full, error
    return LatencyModel(*(float(v) for v in best))


def check(model: LatencyModel, records: Sequence[dict]) -> dict[str, float]:
    """Prediction quality on ``records``: totals, mean absolute % error per inference, R^2."""
    import numpy as np

    x, y = _design(records)
    predicted = x @ np.array([model.alpha, model.beta, model.gamma, model.delta])
    residual = float(np.sum((y - predicted) ** 2))
    spread = float(np.sum((y - y.mean()) ** 2)) or 1.0
    return {
        "inferences": len(records),
        "measured_seconds": float(y.sum()),
        "predicted_seconds": float(predicted.sum()),
        "total_error_pct": float(100 * (predicted.sum() - y.sum()) / y.sum()) if y.sum() else 0.0,
        "mean_abs_error_pct": float(100 * np.mean(np.abs(predicted - y) / np.maximum(y, 1e-12))),
        "r2": 1.0 - residual / spread,
    }
