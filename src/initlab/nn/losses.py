"""Losses with Keras's exact definitions: per-sample values, averaged over the batch by the trainer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from initlab._lazy import jnp, optax
from initlab.registry import Registry

# Keras's backend.epsilon(): the clipping constant of its probability losses.
KERAS_EPSILON = 1e-7

Loss = Callable[[Any, Any], Any]
"""``loss(y_true, y_pred) -> per-sample values``, shape ``y_true.shape[:-1]``."""

losses: Registry[Loss] = Registry("loss")


@losses.register("mean_squared_error", aliases=("mse",))
def mean_squared_error() -> Loss:
    """Mean over classes of (y_true - y_pred)^2 (Keras ``mean_squared_error``)."""
    return lambda y_true, y_pred: jnp.mean(jnp.square(y_true - y_pred), axis=-1)


@losses.register("categorical_crossentropy", aliases=("cce", "crossentropy"))
def categorical_crossentropy(from_logits: bool = False) -> Loss:
    """-sum y_true log(y_pred), y_pred renormalised and clipped to [1e-7, 1-1e-7] as Keras does.

    ``from_logits=True`` (Keras's ``CategoricalCrossentropy(from_logits=True)``): the outputs are
    logits (a linear output layer) and the loss is the softmax cross-entropy computed from them,
    unclipped and stable (optax's ``softmax_cross_entropy``): a confident wrong answer costs its
    full log-odds instead of Keras's ceiling of -log(1e-7) = 16.1, and its gradient does not vanish.
    """
    if from_logits:
        return lambda y_true, logits: optax.softmax_cross_entropy(logits, y_true)

    def loss(y_true, y_pred):
        y_pred = y_pred / jnp.sum(y_pred, axis=-1, keepdims=True)
        y_pred = jnp.clip(y_pred, KERAS_EPSILON, 1.0 - KERAS_EPSILON)
        return -jnp.sum(y_true * jnp.log(y_pred), axis=-1)

    return loss


def build(spec: str) -> Loss:
    """The loss described by ``spec``, e.g. ``"mse"``."""
    return losses.build(spec)
