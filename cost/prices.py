"""Dollars from tokens: a price table the user gives, never prices built in as truths.

The table is a small TOML or JSON file, prices in US dollars per million tokens::

    # prices.toml (an example: put your provider's current prices here)
    input = 0.40          # per million input tokens
    cached_input = 0.10   # per million input tokens read from the provider's prefix cache
    output = 1.60         # per million output tokens

``cached_input`` defaults to ``input`` and ``output`` is required. :func:`load_prices` reads it
and names the file and the field on any problem; :meth:`Prices.usd` prices a count of tokens.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

FIELDS = ("input", "cached_input", "output")


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens: ``input``, ``cached_input`` (input tokens read from a
    prefix cache) and ``output``."""

    input: float
    output: float
    cached_input: float | None = None

    def __post_init__(self) -> None:
        for name in FIELDS:
            value = getattr(self, name)
            if name == "cached_input" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0):
                raise ValueError(f"price {name!r} must be a number >= 0 (dollars per million tokens), "
                                 f"got {value!r}")

    def usd(self, input_tokens: float, output_tokens: float, cached_tokens: float = 0.0) -> float:
        """The dollars of ``input_tokens`` (of which ``cached_tokens`` were read from a prefix
        cache) and ``output_tokens``."""
        cached_price = self.input if self.cached_input is None else self.cached_input
        fresh = max(0.0, input_tokens - cached_tokens)
        return (fresh * self.input + cached_tokens * cached_price + output_tokens * self.output) / 1e6


def load_prices(path: str | os.PathLike[str]) -> Prices:
    """The price table at ``path`` (``.toml``, else JSON); ValueError naming the file and what is
    wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the price table: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            table = tomllib.loads(text)
        else:
            table = json.loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors
        raise ValueError(f"{path}: not a {'TOML' if path.suffix == '.toml' else 'JSON'} price table: "
                         f"{exc}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{path}: a price table is an object with input, cached_input, output")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown or "input" not in table or "output" not in table:
        raise ValueError(f"{path}: a price table holds input and output (and optionally cached_input), "
                         f"dollars per million tokens; got {', '.join(sorted(table)) or 'nothing'}")
    try:
        return Prices(table["input"], table["output"], table.get("cached_input"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
