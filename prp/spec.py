"""Parsing of ``name:key=value,key=value`` specs, as the CLI writes sorters and oracles."""

from __future__ import annotations


def _value(text: str) -> object:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, object]]:
    """``"noisy:bias=1.5,seed=0"`` -> ``("noisy", {"bias": 1.5, "seed": 0})``.

    Values become int, float or bool where they read as one; keys may use ``-`` for ``_``.
    """
    name, _, rest = spec.strip().partition(":")
    options: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad option {item!r} in {spec!r}: expected key=value")
        options[key.strip().replace("-", "_")] = _value(value.strip())
    return name.strip(), options


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of specs; ``key=value`` items belong to the spec before.

    ``"heapsort,quicksort:pivot=random,seed=1"`` -> ``["heapsort", "quicksort:pivot=random,seed=1"]``
    """
    specs: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" in item and ":" not in item and specs:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs
