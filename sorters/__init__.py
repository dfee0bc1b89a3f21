"""Sans-IO top-k sorters driven by pair, set and list questions (see :mod:`sorters._base`).

Every sorter is a generator ``sorter(n, k, **options)`` registered in :data:`SORTERS`;
:func:`make_sorter` builds one by name after checking its arguments and options. In a spec,
``k`` is the top-k of the run, so the set size of ``setwise`` and the match size of
``tournament`` are written ``setwise:k=4`` / ``tournament:k=4`` and reach the sorter as its
``size`` option (:data:`SIZE_ALIAS`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ._base import (
    LOSS,
    TIE,
    WIN,
    Answer,
    Cut,
    ListQuestion,
    Outcome,
    Pair,
    Pick,
    Question,
    Round,
    SetQuestion,
    SorterGen,
    before,
    check_args,
    drive,
    finish,
    order_by,
    pick_by,
    shape_of,
)
from .active import active
from .allpair import allpair
from .bubblesort import bubblesort
from .graph import PreferenceGraph
from .heapsort import heapsort
from .listwise import listwise
from .mergesort import mergesort
from .quicksort import quicksort
from .setwise import setwise
from .tournament import tournament

__all__ = [
    "LOSS",
    "SIZE_ALIAS",
    "Answer",
    "Cut",
    "ListQuestion",
    "PreferenceGraph",
    "Pick",
    "Question",
    "SORTERS",
    "SetQuestion",
    "TIE",
    "WIN",
    "Outcome",
    "Pair",
    "Round",
    "SorterGen",
    "active",
    "allpair",
    "before",
    "bubblesort",
    "check_args",
    "drive",
    "finish",
    "get_sorter",
    "heapsort",
    "listwise",
    "make_sorter",
    "mergesort",
    "order_by",
    "pick_by",
    "quicksort",
    "setwise",
    "shape_of",
    "sorter_options",
    "tournament",
]

SORTERS: dict[str, Callable[..., SorterGen]] = {
    "heapsort": heapsort,
    "bubblesort": bubblesort,
    "quicksort": quicksort,
    "mergesort": mergesort,
    "allpair": allpair,
    "tournament": tournament,
    "active": active,
    "setwise": setwise,
    "listwise": listwise,
}
"""Every sorter by name: what ``sorter="NAME"`` and ``--sorter NAME`` accept."""


SIZE_ALIAS = "size"
"""The option a spec's ``k`` names for a sorter that has it (``setwise:k=4`` is ``size=4``)."""


def get_sorter(name: str) -> Callable[..., SorterGen]:
    """The sorter registered as ``name``; ValueError listing the known ones otherwise."""
    try:
        return SORTERS[name]
    except (KeyError, TypeError):
        known = ", ".join(SORTERS)
        raise ValueError(f"unknown sorter {name!r}; known sorters: {known}") from None


def sorter_options(name: str) -> dict[str, object]:
    """The options of sorter ``name`` (everything but ``n`` and ``k``) with defaults."""
    params = inspect.signature(get_sorter(name)).parameters
    return {p: v.default for p, v in params.items() if p not in ("n", "k")}


def make_sorter(name: str, n: int, k: int, /, **options: object) -> SorterGen:
    """A fresh sorter generator, with name, n, k and options checked right away.

    Unknown option names and bad option values raise ValueError here, not at the first
    ``next()``.

    Example:
        >>> grades = [0, 3, 1, 2]
        >>> sorter = make_sorter("quicksort", 4, 2, pivot="median-of-three")
        >>> drive(sorter, lambda i, j: (grades[i] > grades[j]) - (grades[i] < grades[j]))
        [1, 3, 0, 2]
    """
    sorter = get_sorter(name)
    accepted = sorter_options(name)
    if "k" in options and SIZE_ALIAS in accepted:
        options = {(SIZE_ALIAS if key == "k" else key): value for key, value in options.items()}
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(f"k ({o})" if o == SIZE_ALIAS else o for o in accepted) or "none"
        raise ValueError(
            f"sorter {name!r} got unknown option(s) {', '.join(unknown)}; accepted options: {allowed}"
        )
    check_args(n, k)
    drive(sorter(0, 1, **options), _no_judge)  # n=0 only validates the option values
    return sorter(n, k, **options)


def _no_judge(i: int, j: int) -> Outcome:
    raise AssertionError("an empty sorter asked for a comparison")  # pragma: no cover
