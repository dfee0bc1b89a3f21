"""Plain-text tables for the ``prp`` subcommands' output."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def cell(value: object) -> str:
    """A table cell: on/off for booleans, floats to 3 significant places or so, else ``str``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return str(value)


def aligned(rows: Sequence[Sequence[str]], left: Collection[int] = (0,)) -> str:
    """``rows`` (the first is the header) as columns two spaces apart; the columns in ``left``
    are left-aligned (text), the others right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i in left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                     for row in rows)
