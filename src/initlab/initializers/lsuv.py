"""The LSUV initializer spec (Mishkin & Matas 2015): ``lsuv(tol=0.1, max_iter=10, center=False, batch_size=1024)``.

Sampling gives the orthonormal pre-init; the data-dependent rescaling, layer by layer, is
:func:`initlab.nn.lsuv.initialize`, which the trainer calls with a batch of training data.
"""

from __future__ import annotations

from dataclasses import dataclass

from initlab.errors import InitlabError
from initlab.initializers.base import Initializer, initializers
from initlab.initializers.keras import orthogonal
from initlab.specs import format_spec

DEFAULT_BATCH_SIZE = 1024


@dataclass(frozen=True)
class LSUVInitializer(Initializer):
    """An LSUV initializer: samples the orthonormal pre-init; :func:`initialize` does the rest."""

    tol: float = 0.1
    max_iter: int = 10
    center: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE


@initializers.register("lsuv", aliases=("layer_sequential_unit_variance",))
def lsuv(tol: float = 0.1, max_iter: int = 10, center: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> Initializer:
    """Orthonormal pre-init, then each layer's pre-activation scaled to unit variance on a batch (LSUV)."""
    if not tol > 0:
        raise InitlabError(f"lsuv: tol must be > 0, got {tol}")
    if max_iter < 1:
        raise InitlabError(f"lsuv: max_iter must be >= 1, got {max_iter}")
    if batch_size < 2:
        raise InitlabError(f"lsuv: batch_size must be >= 2 (a variance needs two samples), got {batch_size}")
    arguments = {"tol": tol, "max_iter": max_iter, "center": center, "batch_size": batch_size}
    defaults = {"tol": 0.1, "max_iter": 10, "center": False, "batch_size": DEFAULT_BATCH_SIZE}
    spec = format_spec("lsuv", {k: v for k, v in arguments.items() if v != defaults[k]})
    pre_init = orthogonal(1.0)
    return LSUVInitializer(spec, pre_init.sample, pre_init.law, True, **arguments)
