"""Per-query budgets with a unit: ``300`` (prompts), ``40inferences``, ``40000tokens``, ``2s``,
``0.002usd``.

A budget caps what one query may spend; the engine stops a query before the round that would
pass it and returns its best ranking so far (as for a budget in prompts). Units, and what a
round of the query costs in each, counted before the round is sent:

* ``prompts`` (a bare number): the prompts its questions need, cache hits included (so a cut
  never depends on the cache);
* ``inferences``: the round's prompts in batches of B, as if the query ran alone (``ceil(prompts
  / B)``; sharing batches with other queries makes the real count smaller, never larger);
* ``tokens``: the round's input tokens, estimated for each prompt from its texts
  (:func:`cost.model.estimate_prompt_tokens` and :func:`cost.model.estimate_question_tokens`,
  passages cut to the judge's ``passage_tokens``): the same estimate the simulated judges
  report, so under them a budget of N tokens is never passed; a real judge's own count differs by
  its tokenizer's ratio to the estimate (about 0.9 for Qwen2.5);
* ``s`` (seconds, predicted): the round's standalone batches under the latency model;
* ``usd``: the round's estimated input tokens and output tokens (1 a pair or set, 4 a passage of
  a list: :func:`cost.model.estimate_answer_tokens`) under the price table given with the budget
  (:mod:`cost.prices`; a budget in usd without one is a ValueError).

A budget in another unit or a negative amount is a ValueError naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: The units a budget may be given in, and their spellings.
UNITS = {"prompts": "prompts", "prompt": "prompts", "inferences": "inferences", "inference": "inferences",
         "tokens": "tokens", "token": "tokens", "s": "s", "sec": "s", "seconds": "s", "second": "s",
         "usd": "usd"}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class Budget:
    """``amount`` of ``unit`` (one of ``prompts``, ``inferences``, ``tokens``, ``s``, ``usd``) per query."""

    amount: float
    unit: str = "prompts"

    def __post_init__(self) -> None:
        if self.unit not in set(UNITS.values()):
            raise ValueError(f"unknown budget unit {self.unit!r}; known: prompts, inferences, tokens, s, usd")
        if isinstance(self.amount, bool) or not isinstance(self.amount, (int, float)) or not (
                math.isfinite(self.amount) and self.amount >= 0):
            raise ValueError(f"a budget must be a finite number >= 0, got {self.amount!r}")

    def to_json(self) -> int | str:
        """How results files write it: the number of prompts, else ``"40000tokens"``."""
        return int(self.amount) if self.unit == "prompts" else str(self)

    def __str__(self) -> str:
        return f"{self.amount:g}" if self.unit == "prompts" else f"{self.amount:g}{self.unit}"


def parse_budget(value: object) -> Budget | None:
    """``None`` -> None; an integer >= 0 -> that many prompts; a :class:`Budget` -> itself; a
    string ``NUMBER[UNIT]`` (``300``, ``300prompts``, ``40inferences``, ``40000tokens``, ``2s``,
    ``0.002usd``)
    -> its budget. ValueError naming the value otherwise."""
    if value is None or isinstance(value, Budget):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"budget must be >= 0, got {value!r}")
        return Budget(value, "prompts")
    if isinstance(value, str):
        match = _BUDGET.match(value)
        unit = UNITS.get(match.group(2).lower() if match and match.group(2) else "prompts") if match else None
        if match and unit:
            amount = float(match.group(1))
            if unit == "prompts" and amount != int(amount):
                raise ValueError(f"a budget in prompts must be a whole number, got {value!r}")
            return Budget(int(amount) if unit == "prompts" else amount, unit)
    raise ValueError(f"budget must be a number with an optional unit (300, 300prompts, 40inferences, "
                     f"40000tokens, 2s, 0.002usd), got {value!r}")
