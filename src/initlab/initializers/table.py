"""Keras, PyTorch and Flax initializers side by side: each entry's law for one kernel.

Backs ``initlab list initializers --compare --fan-in N --fan-out M`` (a Dense kernel) and
``--shape 3x3x16x32`` (a convolution kernel, channels last), ``--shape 1000x64`` (an embedding
table: its framework defaults are ``random_uniform``, ``torch.normal`` and ``flax.embed_default``). Laws are closed forms in
plain Python, so the table is computed without importing JAX.

Example:
    >>> rows = compare_table(784, 64)
    >>> {row["name"]: row["high"] for row in rows}["torch.linear_default"]  # 1 / sqrt(784)
    0.03571428571428571
"""

from __future__ import annotations

from typing import Any

from initlab.checks import positive_int
from initlab.errors import InitlabError
from initlab.initializers import initializers

FRAMEWORKS = ("keras", "torch", "flax")
COLUMNS = ("name", "framework", "distribution", "low", "high", "mean", "std")


def framework_of(name: str) -> str:
    """``torch`` or ``flax`` for ``torch.*`` / ``flax.*`` entries, ``initlab`` for ours, else ``keras``."""
    prefix = name.split(".", 1)[0] if "." in name else ""
    if prefix in FRAMEWORKS:
        return prefix
    return "initlab" if name in INITLAB_ONLY else "keras"


# Entries that no framework ships under that name.
INITLAB_ONLY = frozenset({"lsuv", "standard_uniform", "delta_orthogonal", "zero_hadamard", "xavier_normal_projection"})


def compare_table(fan_in: int, fan_out: int, shape: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """One row per registered initializer (its defaults) for a kernel of shape ``(fan_in, fan_out)``, or ``shape``.

    Each row holds the columns ``name, framework, distribution, low, high, mean, std``, ready for
    ``pandas.DataFrame``; ``low``/``high`` are ``None`` for unbounded laws. An entry that cannot
    describe that shape without data keeps its row, with ``None`` in the law's columns.

    Raises:
        InitlabError: a fan that is not a positive integer.
    """
    for label, fan in (("fan_in", fan_in), ("fan_out", fan_out)):
        positive_int(f"compare table: {label}", fan)
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    for size in shape:
        positive_int("compare table: a shape's size", size)
    rows = []
    for entry in initializers:
        row: dict[str, Any] = {"name": entry.name, "framework": framework_of(entry.name)}
        try:
            law = initializers.build(entry.name).law(shape)
        except InitlabError:
            row.update(distribution=None, low=None, high=None, mean=None, std=None)
        else:
            row.update(distribution=law.distribution, low=law.low, high=law.high, mean=law.mean, std=law.std)
        rows.append(row)
    return rows
