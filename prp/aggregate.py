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

**Infinite margins** (a judge's most decisive answer, see :mod:`prp.judgment`) aggregate by
their sign before any finite margin: a's infinite margins (+inf for a, -inf for b, after the
position flip) are counted, and a wins if more are for a than for b, loses if fewer; when they
cancel (as many for each: one inf each way is a contradiction, not a decision) the finite
margins decide as if the infinite ones were not there. So +inf plus -inf is never NaN, and a
decisive answer outvotes any finite sum. A soft ranker is sent +-:data:`DECISIVE` for a
decision by infinities (it fits numbers; an infinity would break its model). Debiasing leaves
an infinite margin infinite, and the bias estimate (``auto``) skips every comparison with a
non-finite margin, so one decisive answer never poisons it. ``consistent`` reads only the
preferred sides.

``debias`` removes the judge's first-shown bias from every margin before ``margin``
aggregation: a's margin becomes ``(m - bias)`` when a is shown first and ``-(m - bias)`` when
it is second. Under ``both`` the bias cancels anyway; under ``one``/``random`` it is what makes
a single prompt usable. The bias is ``"off"`` (0), a number (e.g. from ``prp calibrate-oracle``)
or ``"auto"``: a per-query online estimate (:class:`BiasEstimate`) from that query's own
unbiased observations so far - the mean of a pair's two margins when it was asked in both
orders, and the margin of a prompt whose direction was a coin (``random``). Under ``one`` there
are no unbiased observations, so ``auto`` subtracts 0 there: give a number. The estimate is per
query so a query's ranking never depends on which other queries share its batches.

A *soft* ranker (one that declares ``soft = True``) is sent the aggregated, debiased margin
itself (a float; its sign is the outcome) instead of WIN / TIE / LOSS.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from prp.types import Judgment

ORDERS = ("both", "one", "random")
AGGREGATES = ("auto", "margin", "consistent")
DEBIAS = ("off", "auto")
#: What a soft ranker is sent for a comparison decided by infinite margins (about the largest
#: log-probability margin a real judge gives; :func:`prp.prompts.judgment_from_scores` uses the
#: same stand-in for a one-sided top-k).
DECISIVE = 30.0


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


def check_debias(value: object) -> str | float:
    """``"off"``, ``"auto"`` or a finite number; ValueError otherwise."""
    if isinstance(value, str) and value in DEBIAS:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueError(f"debias must be 'off', 'auto' or a finite number, got {value!r}")


class BiasEstimate:
    """One query's running estimate of the judge's first-shown bias (see the module docstring)."""

    __slots__ = ("total", "count", "seen")

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0
        self.seen: set = set()  # the pairs (or prompt keys) already observed

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0

    def observe(self, tag: object, answers: Sequence[tuple[bool, Judgment]], coin: bool) -> None:
        """Take one comparison's answers; ``coin``: its single direction was a coin toss."""
        if tag in self.seen or any(not j.parsed or j.margin is None or not math.isfinite(j.margin)
                                   for _, j in answers):
            return
        firsts = {a_first for a_first, _ in answers}
        if len(firsts) == 2 or coin:
            self.seen.add(tag)
            self.total += sum(j.margin for _, j in answers) / len(answers)
            self.count += 1


def needs_margins(why: str) -> ValueError:
    """The error of ``aggregate="margin"`` with a judge that gives no margins (``why``: how we know)."""
    return ValueError(f"aggregate='margin' needs a judge that reports margins; {why} "
                      "(use aggregate='consistent' or 'auto')")


def outcome(answers: Sequence[tuple[bool, Judgment]], aggregate: str, tie_band: float,
            bias: float = 0.0, soft: bool = False) -> float:
    """WIN (+1), TIE (0) or LOSS (-1) for a, from (a shown first?, judgment) pairs; with
    ``soft`` and margin aggregation, a's summed debiased margin instead."""
    total, margins, decisive = 0.0, True, 0
    for a_first, judgment in answers:
        if not judgment.parsed:
            return 0
        if judgment.margin is None:
            margins = False
        elif margins:
            margin = judgment.margin - bias if a_first else bias - judgment.margin
            if math.isinf(margin):  # counted apart: +inf + -inf must not make a NaN
                decisive += 1 if margin > 0 else -1
            else:
                total += margin
    if aggregate == "margin" and not margins:
        raise needs_margins("an answer came without one")
    if margins and aggregate != "consistent":
        if decisive:
            return math.copysign(DECISIVE, decisive) if soft else 1 if decisive > 0 else -1
        if soft:
            return total
        return 1 if total > tie_band else -1 if total < -tie_band else 0
    a_wins = b_wins = True
    for a_first, judgment in answers:
        a_side = "A" if a_first else "B"
        a_wins = a_wins and judgment.preferred == a_side
        b_wins = b_wins and judgment.preferred not in (None, a_side)
    return 1 if a_wins else -1 if b_wins else 0
