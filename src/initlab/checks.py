"""One argument check per kind of value, shared by the library, the CLI and sweep files.

Example:
    >>> positive_int("units", 64)
    >>> parse_seeds("0-4,7")
    [0, 1, 2, 3, 4, 7]
"""

from __future__ import annotations

import math
import os
from typing import Any

from initlab.errors import InitlabError, shown

MAX_SEEDS = 100_000
"""The most seeds one range may name: more runs than any machine here trains (and a guard
against ``0-4294967295`` allocating the whole range)."""

MAX_SEED = 2**32 - 1


MAX_UNITS = 2**24
"""The most units (or inputs) of one layer: a 2**24 x 2**24 kernel is far beyond any machine."""

MAX_BATCH = 2**24
MAX_EPOCHS = 100_000
MAX_DEPTH = 10_000
MAX_DRAWS = 10**7
MAX_BINS = 100_000
MAX_MEMORY_MIB = 2**30
"""1 PiB: a memory budget above it is a typing mistake."""


def positive_int(name: str, value: Any, *, maximum: int | None = None) -> None:
    """``value`` is an integer in ``[1, maximum]`` (a bool is not an integer here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InitlabError(f"{name} must be a positive integer, got {shown(repr(value))}")
    if maximum is not None and value > maximum:
        raise InitlabError(f"{name} must be at most {maximum}, got {value}")


def seed_int(name: str, value: Any) -> None:
    """``value`` is a seed: an integer in ``[0, 2**32)``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEED:
        raise InitlabError(f"{name} must be an integer in [0, 2**32), got {shown(repr(value))}")


def finite_float(
    name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None, strict: bool = False
) -> float:
    """``value`` as a finite float, in ``[minimum, maximum]`` (``(minimum, ...`` when ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InitlabError(f"{name} must be a number, got {shown(repr(value))}")
    number = float(value)
    if not math.isfinite(number):
        raise InitlabError(f"{name} must be a finite number, got {shown(repr(value))}")
    if minimum is not None and (number < minimum or (strict and number == minimum)):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise InitlabError(f"{name} must be {bound}, got {shown(repr(value))}")
    if maximum is not None and number > maximum:
        raise InitlabError(f"{name} must be at most {maximum:g}, got {shown(repr(value))}")
    return number


def memory_budget_bytes(mebibytes: float | None, *, name: str = "--memory-budget") -> int | None:
    """A memory budget given in MiB as bytes (``None`` stays ``None``: the default budget)."""
    if mebibytes is None:
        return None
    return int(finite_float(f"{name} (MiB)", mebibytes, minimum=0, maximum=MAX_MEMORY_MIB, strict=True) * 2**20)


def available_memory_bytes() -> int:
    """Memory available to this process now (MemAvailable on Linux; 4 GiB where unknown)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def require_memory(needed: float, what: str) -> None:
    """Refuse, in one line, work whose estimated memory ``needed`` (bytes) exceeds what is available."""
    available = available_memory_bytes()
    if needed > available:
        raise InitlabError(
            f"{what} needs about {_size(needed)} of memory and {_size(available)} is available: ask for less"
        )


def _size(count: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count / 2**10:.3g} KiB"


def parse_sizes(text: str, *, name: str = "--hidden") -> tuple[int, ...]:
    """``"256,128"`` -> (256, 128); ``""`` -> () (no hidden layer); anything else is an error.

    Raises:
        InitlabError: an empty item (``64,,3``, ``,``), a non-integer, or a size outside
            ``[1, MAX_UNITS]``.
    """
    example = "such as 64 or 256,128"
    if not isinstance(text, str):
        raise InitlabError(f"{name} expects comma-separated layer sizes {example}, got {text!r}")
    if not text.strip():
        return ()
    shown = text if len(text) <= 60 else text[:57] + "..."
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not part.isascii():
            what = "an empty size" if not part else f"'{part[:20]}'"
            raise InitlabError(f"{name} expects comma-separated layer sizes {example}; '{shown}' has {what}")
        size = int(part)
        positive_int(f"{name}: a layer size", size, maximum=MAX_UNITS)
        sizes.append(size)
    return tuple(sizes)


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


__all__ = [
    "MAX_BATCH", "MAX_BINS", "MAX_DEPTH", "MAX_DRAWS", "MAX_EPOCHS", "MAX_MEMORY_MIB", "MAX_SEEDS", "MAX_UNITS",
    "available_memory_bytes", "finite_float", "memory_budget_bytes", "require_memory", "parse_seeds", "parse_sizes", "positive_int", "seed_int",
]
