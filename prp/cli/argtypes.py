"""Argument types shared by the ``prp`` subcommands."""

from __future__ import annotations

import argparse

from cost.budget import Budget, parse_budget
from cost.model import LatencyModel
from prp.aggregate import check_debias


def comma_ints(text: str) -> list[int]:
    """``"1,2,8"`` -> ``[1, 2, 8]``."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def budget_arg(text: str) -> Budget:
    """``"300"``, ``"300prompts"``, ``"40inferences"``, ``"40000tokens"``, ``"2s"`` -> a Budget."""
    try:
        return parse_budget(text)  # type: ignore[return-value]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def comma_budgets(text: str) -> list[Budget]:
    """``"100,300,40000tokens"`` -> their Budgets (one run each)."""
    return [budget_arg(x.strip()) for x in text.split(",") if x.strip()]


def in_flight_or_all(text: str) -> int | None:
    """``"all"`` -> None (every query at once), else an integer."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def comma_choices(known: tuple[str, ...]):
    """An argument type: comma-separated words, each one of ``known``."""
    def parse(text: str) -> list[str]:
        words = [w.strip() for w in text.split(",") if w.strip()]
        bad = [w for w in words if w not in known]
        if bad or not words:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values from {', '.join(known)}; got {text!r}")
        return words
    return parse


def latency_arg(text: str) -> LatencyModel:
    """``alpha,beta,gamma`` -> a LatencyModel (its own message on bad input)."""
    try:
        return LatencyModel.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def debias_arg(text: str) -> str | float:
    """``off``, ``auto`` or a finite number (the judge's first-shown bias)."""
    try:
        return check_debias(text if text in ("off", "auto") else float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected off, auto or a number, got {text!r}") from None
