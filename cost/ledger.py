"""The cost ledger: what a ranking asked for, what it paid, and what it would have paid.

Vocabulary (DEVELOPERS.md): a *comparison* is one judgment of a pair asked by a sorter; a
*prompt* is one LLM input (a comparison in both orders is two); an *inference* is one LLM call
carrying up to B prompts; a *round* is a set of comparisons a sorter issues together. A
*question* has a shape: a pair (a comparison), a set or a list; a set or list question is one
prompt, and the ``*_by_shape`` counters split questions, rounds, prompts and inferences by shape
(``comparisons`` and ``unique_comparisons`` count pairs only).

Physical counts are what was paid; ``virtual_*`` counts are what the same schedule would have
paid with no cache. When several queries share one batch, each query is charged its share of
the inference (its prompts / the batch's prompts), so per-query ``inferences`` may be fractional
and always sum to the run's total.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields, replace

_SUMMED = (
    "comparisons",
    "unique_comparisons",
    "cache_hits",
    "inferred",
    "prompts",
    "inferences",
    "rounds",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "virtual_prompts",
    "virtual_inferences",
    "unparsed",
    "unparsed_retries",
    "repaired",
    "predicted_seconds",
    "wall_seconds",
)

_BY_SHAPE = ("questions_by_shape", "rounds_by_shape", "prompts_by_shape", "inferences_by_shape")


@dataclass
class Ledger:
    """Counts for one query or, once merged, for a whole run.

    Physical counts (``comparisons``, ``unique_comparisons``, ``cache_hits``, ``inferred``,
    ``prompts``, ``inferences``, ``rounds``, tokens, ``unparsed``, ``unparsed_retries``) are what
    was paid; ``virtual_prompts`` and ``virtual_inferences`` what the same schedule would have
    paid with no cache. ``predicted_seconds`` is the schedule's wall time under the latency model,
    ``wall_seconds`` the measured one; ``queries`` how many queries were merged in;
    ``batch_sizes`` maps prompts per inference to how many inferences carried that many.

    Example:
        >>> from prp import PerfectOracle, Reranker
        >>> cost = Reranker(PerfectOracle({"q": {"1": 1}}), k=1).rank("q", ["a", "b"]).cost
        >>> cost.comparisons, cost.prompts, cost.inferences
        (1, 2, 1.0)
    """

    comparisons: int = 0  # asked by the sorter, duplicates within a round included
    unique_comparisons: int = 0  # after (a, b) / (b, a) de-duplication within a round
    cache_hits: int = 0  # unique comparisons answered with no prompt at all
    inferred: int = 0  # unique comparisons answered by transitivity from decided ones (no prompt)
    prompts: int = 0  # prompts sent to the backend
    inferences: float = 0.0  # backend calls (a query's share when batches are shared)
    rounds: int = 0
    input_tokens: float = 0.0  # as reported (or, for simulated judges, estimated) by the backend
    cached_tokens: float = 0.0  # of input_tokens, those a server's prefix cache holds (cost.prefix)
    output_tokens: float = 0.0
    virtual_prompts: int = 0  # prompts with no cache
    virtual_inferences: float = 0.0  # inferences with no cache
    unparsed: int = 0  # prompts unreadable even when asked again: counted as ties, never cached
    unparsed_retries: int = 0  # prompts asked again after an unreadable answer (in ``prompts`` too)
    predicted_seconds: float = 0.0  # wall time under the latency model
    wall_seconds: float = 0.0  # measured
    repaired: int = 0  # set or list answers usable only after a repair (missing or repeated ids)
    queries: int = 1
    batch_sizes: Counter[int] = field(default_factory=Counter)  # prompts per inference -> count
    # per question shape ("pair", "set", "list"): unique questions asked (cache hits and
    # inferred ones included), rounds that held the shape, prompts sent, inferences (shares)
    questions_by_shape: Counter[str] = field(default_factory=Counter)
    rounds_by_shape: Counter[str] = field(default_factory=Counter)
    prompts_by_shape: Counter[str] = field(default_factory=Counter)
    inferences_by_shape: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for name in _BY_SHAPE:  # a ledger read back from JSON holds plain dicts
            if type(getattr(self, name)) is not Counter:
                setattr(self, name, Counter(getattr(self, name)))

    @property
    def saved_inferences(self) -> float:
        """Inferences the cache saved (virtual minus physical)."""
        return self.virtual_inferences - self.inferences

    def merge(self, other: Ledger) -> Ledger:
        """Add ``other`` into this ledger (queries add up) and return self."""
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.queries += other.queries
        self.batch_sizes.update(other.batch_sizes)
        for name in _BY_SHAPE:
            getattr(self, name).update(getattr(other, name))
        return self

    def copy(self) -> Ledger:
        """An independent copy (its counters are copies too)."""
        return replace(self, batch_sizes=Counter(self.batch_sizes),
                       **{name: Counter(getattr(self, name)) for name in _BY_SHAPE})

    @classmethod
    def total(cls, ledgers: list[Ledger]) -> Ledger:
        """The sum of several ledgers; an empty list gives a ledger of zero queries."""
        out = cls(queries=0)
        for ledger in ledgers:
            out.merge(ledger)
        return out

    def per_query(self) -> dict[str, float]:
        """Means per query of every summed count (the simulator's report)."""
        q = max(self.queries, 1)
        return {name: getattr(self, name) / q for name in _SUMMED}

    def to_dict(self) -> dict:
        """Every count as a JSON-ready dict, plus ``saved_inferences`` (what the CLI prints)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["batch_sizes"] = {str(size): n for size, n in sorted(self.batch_sizes.items())}
        for name in _BY_SHAPE:
            out[name] = {shape: n for shape, n in sorted(getattr(self, name).items()) if n}
        out["saved_inferences"] = self.saved_inferences
        return out
