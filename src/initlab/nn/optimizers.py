"""Optimizers from optax, with Keras's names, argument names and defaults.

The learning rate (and the other float hyperparameters) live in the optimizer state through
``optax.inject_hyperparams``, so that models trained together can each have their own.

Keras and optax agree exactly for SGD (with momentum and Nesterov) and RMSprop (Keras 3
divides by sqrt(v + epsilon): epsilon under the root, optax's ``eps_in_sqrt=True``). For Adam, Keras adds epsilon to sqrt(v) before the bias correction
and optax after it: with epsilon = 1e-7 an update differs by about 3e-6 relative for |g| = 1
(3e-5 for |g| = 0.1) in the first steps, and by less as the bias correction fades.
"""

from __future__ import annotations

import math
from typing import Any

from initlab._lazy import optax
from initlab.errors import InitlabError
from initlab.registry import Registry

optimizers: Registry[Any] = Registry("optimizer")


def _check_rate(learning_rate: float) -> None:
    if not 0 < learning_rate < math.inf:
        raise InitlabError(f"learning_rate must be a finite number > 0, got {learning_rate}")


def _check_range(optimizer: str, name: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
    """``value`` in ``[low, high)``, as Keras's decay rates and momenta must be."""
    if not low <= value < high:
        raise InitlabError(f"{optimizer}: {name} must be in [{low:g}, {high:g}), got {value}")


def _check_epsilon(optimizer: str, epsilon: float) -> None:
    if not 0 < epsilon < math.inf:
        raise InitlabError(f"{optimizer}: epsilon must be a finite number > 0, got {epsilon}")


@optimizers.register("sgd")
def sgd(learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> Any:
    """Stochastic gradient descent, optional (Nesterov) momentum (Keras ``SGD``)."""
    _check_rate(learning_rate)
    _check_range("sgd", "momentum", momentum)
    if momentum == 0.0:
        return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate)
    return optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))(
        learning_rate=learning_rate, momentum=momentum, nesterov=nesterov
    )


@optimizers.register("adam")
def adam(learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7) -> Any:
    """Adam (Keras ``Adam`` defaults)."""
    _check_rate(learning_rate)
    _check_range("adam", "beta_1", beta_1)
    _check_range("adam", "beta_2", beta_2)
    _check_epsilon("adam", epsilon)
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate, b1=beta_1, b2=beta_2, eps=epsilon)


@optimizers.register("rmsprop")
def rmsprop(
    learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False
) -> Any:
    """RMSprop (Keras ``RMSprop``: lr * g / sqrt(v + epsilon))."""
    _check_rate(learning_rate)
    _check_range("rmsprop", "rho", rho)
    _check_range("rmsprop", "momentum", momentum)
    _check_epsilon("rmsprop", epsilon)
    return optax.inject_hyperparams(optax.rmsprop, static_args=("eps_in_sqrt", "centered"))(
        learning_rate=learning_rate,
        decay=rho,
        eps=epsilon,
        eps_in_sqrt=True,
        centered=centered,
        momentum=momentum if momentum > 0 else None,
    )


def build(spec: str) -> Any:
    """The optax transformation described by ``spec``, e.g. ``"sgd(learning_rate=0.01)"``."""
    return optimizers.build(spec)


def learning_rate_of(spec: str) -> float:
    """The learning rate that ``spec`` sets (explicitly or by default)."""
    _, kwargs = optimizers.resolve(spec)
    return float(kwargs["learning_rate"])
