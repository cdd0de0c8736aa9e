"""Closed forms of initlab's activations in float64 NumPy, with Keras's defaults: the tests' reference."""

from __future__ import annotations

import math

import numpy as np

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _erf(x):
    return np.vectorize(math.erf)(x)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax along the last axis, shifted by the maximum."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# Every registered activation needs one here (tests/test_activations.py checks it).
ACTIVATIONS = {
    "linear": lambda x: x,
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "erf": np.vectorize(math.erf),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "softmax": softmax,
}
