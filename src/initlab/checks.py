"""One argument check per kind of value, shared by the library, the CLI and sweep files.

Example:
    >>> positive_int("units", 64)
    >>> parse_seeds("0-4,7")
    [0, 1, 2, 3, 4, 7]
"""

from __future__ import annotations

from typing import Any

from initlab.errors import InitlabError

MAX_SEEDS = 100_000
"""The most seeds one range may name: more runs than any machine here trains (and a guard
against ``0-4294967295`` allocating the whole range)."""

MAX_SEED = 2**32 - 1


def positive_int(name: str, value: Any, *, maximum: int | None = None) -> None:
    """``value`` is an integer in ``[1, maximum]`` (a bool is not an integer here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InitlabError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise InitlabError(f"{name} must be at most {maximum}, got {value}")


def parse_seeds(text: str, *, name: str = "--seeds") -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; ranges and lists may mix; duplicates dropped.

    Raises:
        InitlabError: not integers and ranges, a range that runs backwards, a seed outside
            ``[0, 2**32)``, or more than :data:`MAX_SEEDS` seeds.
    """
    example = "such as 0-4 or 0,2,5"
    if not isinstance(text, str):
        raise InitlabError(f"{name} expects integers and ranges {example}, got {text!r}")
    shown = text if len(text) <= 60 else text[:57] + "..."
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, sep, high = part.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            raise InitlabError(f"{name} expects integers and ranges {example}, got '{shown}'") from None
        if last < first:
            raise InitlabError(f"{name}: the range '{part}' runs backwards; write it first-last, {example}")
        if first < 0 or last > MAX_SEED:
            raise InitlabError(f"{name}: seeds must lie in [0, 2**32), got '{part}'")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise InitlabError(f"{name}: '{shown}' names more than {MAX_SEEDS} seeds")
        seeds.extend(range(first, last + 1))
    if not seeds:
        raise InitlabError(f"{name} expects at least one seed, {example}, got '{shown}'")
    return list(dict.fromkeys(seeds))


__all__ = ["MAX_SEEDS", "parse_seeds", "positive_int"]
