"""What every initializer is: :class:`Initializer` (``init(key, shape, dtype) -> Array``), the
distribution of one entry (:class:`Law`), Keras's fans (:func:`compute_fans`) and the one registry.

The families register into :data:`initializers` when :mod:`initlab.initializers` is imported, in
a fixed order (Keras, PyTorch, Flax, deep networks, LSUV), so that listings never depend on import order.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from initlab._lazy import jnp
from initlab.errors import InitlabError
from initlab.registry import Registry

# Standard deviation of a standard normal truncated to [-2, 2] (Keras's constant).
TRUNCATED_NORMAL_STD = 0.87962566103423978

Shape = Sequence[int]


@dataclass(frozen=True)
class Law:
    """The distribution of one entry of an initialized array of a given shape.

    Attributes:
        distribution: ``normal``, ``truncated_normal``, ``uniform``, ``constant``,
            ``orthogonal``, ``identity`` (and other families' kinds).
        mean: the entry's mean.
        std: the entry's standard deviation (over entries, for structured initializers).
        low, high: the support's bounds, where it is bounded.
    """

    distribution: str
    mean: float
    std: float
    low: float | None = None
    high: float | None = None

    @property
    def variance(self) -> float:
        return self.std**2

    @property
    def second_moment(self) -> float:
        return self.std**2 + self.mean**2


@dataclass(frozen=True)
class Initializer:
    """A built initializer: call it as ``init(key, shape, dtype=float32)``.

    Attributes:
        spec: the canonical spec it was built from, e.g. ``random_normal(stddev=1.0)``.
        sample: ``(key, shape, dtype) -> Array``.
        law: ``shape -> Law``, the distribution of one entry for that shape.
        data_dependent: whether it needs a batch of training data (LSUV and friends).
    """

    spec: str
    sample: Callable[..., Any] = field(repr=False)
    law: Callable[[Shape], Law] = field(repr=False)
    data_dependent: bool = False

    def __call__(self, key: Any, shape: Shape, dtype: Any = None) -> Any:
        shape = tuple(int(s) for s in shape)
        if any(s <= 0 for s in shape):
            raise InitlabError(f"initializer {self.spec}: every dimension of shape {shape} must be positive")
        return self.sample(key, shape, jnp.float32 if dtype is None else dtype)


def compute_fans(shape: Shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` as Keras computes them.

    A Dense kernel of shape ``(in, out)`` has fans ``(in, out)``; a bias ``(n,)`` has ``(n, n)``;
    a convolution kernel ``(*receptive_field, in, out)`` multiplies both by the receptive field.
    """
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


initializers: Registry[Initializer] = Registry("initializer")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise InitlabError(message)


def build(spec: str) -> Initializer:
    """The initializer described by ``spec``, e.g. ``"RandomNormal(stddev=1.0)"``.

    Its ``spec`` attribute is the canonical text: registered name, non-default arguments only.
    """
    return dataclasses.replace(initializers.build(spec), spec=initializers.canonical(spec))
