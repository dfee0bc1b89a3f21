"""From judged prompts to a comparison's outcome: the ``orders`` and ``aggregate`` settings.

``orders`` says which prompts a comparison (a, b) costs, with a before b in first-stage order:
  * ``both``   - (a, b) and (b, a): two prompts, PRP's defence against position bias;
  * ``one``    - (a, b) only;
  * ``random`` - one prompt whose direction is a seeded coin per pair.
``aggregate`` says how the answers become WIN / TIE / LOSS for a:
  * ``margin``     - sum of a's margins over the prompts asked (a's margin is the judge's margin
    when a is shown first, its negation when a is second); above ``tie_band`` a wins, below
    ``-tie_band`` b wins, else tie. Position bias cancels under ``both``.
  * ``consistent`` - a wins only if preferred in every prompt asked; b likewise; else tie.
  * ``auto``       - ``margin`` when every judgment has a margin, else ``consistent``.
Unparsed judgments count as ties: they never decide a comparison.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from prp.types import Judgment

ORDERS = ("both", "one", "random")
AGGREGATES = ("auto", "margin", "consistent")


def check_choice(name: str, value: str, known: Sequence[str]) -> str:
    if value not in known:
        raise ValueError(f"unknown {name} {value!r}; known: {', '.join(known)}")
    return value


#: The prompt directions of the orders that do not depend on the pair.
FIXED_DIRECTIONS = {"both": (True, False), "one": (True,)}


def directions(orders: str, a_key: bytes, b_key: bytes, seed: int) -> tuple[bool, ...]:
    """Which prompts comparison (a, b) costs: True = a shown first, False = b shown first."""
    if orders in FIXED_DIRECTIONS:
        return FIXED_DIRECTIONS[orders]
    coin = hashlib.blake2b(seed.to_bytes(8, "big", signed=True) + a_key + b_key, digest_size=1)
    return (coin.digest()[0] & 1 == 0,)


def outcome(answers: Sequence[tuple[bool, Judgment]], aggregate: str, tie_band: float) -> int:
    """WIN (+1), TIE (0) or LOSS (-1) for a, from (a shown first?, judgment) pairs."""
    total, margins = 0.0, True
    for a_first, judgment in answers:
        if not judgment.parsed:
            return 0
        if judgment.margin is None:
            margins = False
        elif margins:
            total += judgment.margin if a_first else -judgment.margin
    if aggregate == "margin" and not margins:
        raise ValueError("aggregate='margin' needs a judge that reports margins; "
                         "use aggregate='consistent' or 'auto'")
    if margins and aggregate != "consistent":
        return 1 if total > tie_band else -1 if total < -tie_band else 0
    a_wins = b_wins = True
    for a_first, judgment in answers:
        a_side = "A" if a_first else "B"
        a_wins = a_wins and judgment.preferred == a_side
        b_wins = b_wins and judgment.preferred not in (None, a_side)
    return 1 if a_wins else -1 if b_wins else 0
