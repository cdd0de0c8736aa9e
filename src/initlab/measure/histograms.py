"""One histogram routine for every measurement: counts on given bin edges, exactly ``[e_i, e_{i+1})``.

Probes use fixed edges (comparable bin for bin across epochs and runs); propagation uses equal
bins over a range computed from the values (:func:`on_range`). Values beyond the edges count in
the end bins; NaNs are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from initlab._lazy import jax, jnp


def histogram(values: Any, edges: Any, to_uniform: Callable[[Any], Any] | None = None) -> Any:
    """Counts on fixed ``edges``, outside values in the end bins, NaNs dropped.

    ``to_uniform`` maps the edges (monotonically) to evenly spaced points, so that each value's
    bin is computed, not searched: the guess is then corrected by comparing the value with the
    float32 edges themselves, so bins are exactly ``[edges[i], edges[i+1])``.
    """
    values = values.reshape(-1)
    bins = len(edges) - 1
    transform = to_uniform or (lambda v: v)
    bounds = jnp.asarray(edges, jnp.float32)
    low, high = transform(bounds[0]), transform(bounds[-1])
    guess = jnp.floor((transform(values) - low) * (bins / (high - low)))
    index = jnp.clip(jnp.nan_to_num(guess, nan=0.0), 0, bins - 1).astype(jnp.int32)
    index = jnp.clip(index - (values < bounds[index]) + (values >= bounds[index + 1]), 0, bins - 1)
    return jnp.bincount(index, weights=(~jnp.isnan(values)).astype(jnp.int32), length=bins)


def on_range(values: Any, low: Any, high: Any, bins: int) -> dict[str, Any]:
    """Counts of each layer's values ``(layers, ...)`` on ``bins`` equal bins over ``[low, high]``.

    Returns ``{"edges": (bins + 1,), "counts": (layers, bins)}``; an empty range becomes ``[low, low + 1]``.
    """
    high = jnp.where(high > low, high, low + 1.0)
    edges = jnp.linspace(low, high, bins + 1).astype(jnp.float32)
    return {"edges": edges, "counts": jax.vmap(lambda layer: histogram(layer, edges))(values)}
