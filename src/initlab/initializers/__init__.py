"""Weight initializers: one registry, every family, one signature ``init(key, shape, dtype) -> Array``.

Modules, imported here in this fixed order so that the registry's listing never depends on
import order:

- :mod:`~initlab.initializers.base`: :class:`Initializer`, :class:`Law`, :func:`compute_fans`,
  the registry :data:`initializers` and :func:`build`;
- :mod:`~initlab.initializers.keras`: Keras 3's initializers and defaults (``glorot_uniform``...);
- :mod:`~initlab.initializers.torch`: ``torch.nn.init``'s semantics (``torch.*``);
- :mod:`~initlab.initializers.flax`: Flax's and ``jax.nn.initializers``' (``flax.*``);
- :mod:`~initlab.initializers.deep`: schemes made for deep networks (``delta_orthogonal``, ``zero_hadamard``);
- :mod:`~initlab.initializers.lsuv`: the LSUV spec (its algorithm is :mod:`initlab.nn.lsuv`);
- :mod:`~initlab.initializers.table`: the cross-framework comparison table.

Example:
    >>> from initlab.initializers import build
    >>> build("HeNormal()").law((784, 64))
"""

from __future__ import annotations

# isort: off
from initlab.initializers import keras, torch, flax, deep, lsuv  # noqa: F401  (registration order: keep it)
# isort: on
from initlab.initializers.base import (
    TRUNCATED_NORMAL_STD,
    Initializer,
    Law,
    Shape,
    build,
    check,
    compute_fans,
    initializers,
)
from initlab.initializers.keras import (
    VARIANCE_SCALING_DISTRIBUTIONS,
    VARIANCE_SCALING_MODES,
    constant,
    identity,
    ones,
    orthogonal,
    random_normal,
    random_uniform,
    truncated_normal,
    variance_scaling,
    zeros,
)

__all__ = [
    "TRUNCATED_NORMAL_STD", "VARIANCE_SCALING_DISTRIBUTIONS", "VARIANCE_SCALING_MODES", "Initializer", "Law",
    "Shape", "build", "check", "compute_fans", "constant", "identity", "initializers", "ones", "orthogonal",
    "random_normal", "random_uniform", "truncated_normal", "variance_scaling", "zeros",
]
