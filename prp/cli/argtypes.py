"""Argument types shared by the ``prp`` subcommands."""

from __future__ import annotations

import argparse


def comma_ints(text: str) -> list[int]:
    """``"1,2,8"`` -> ``[1, 2, 8]``."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def in_flight_or_all(text: str) -> int | None:
    """``"all"`` -> None (every query at once), else an integer."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None
