"""Activation functions with Keras's definitions and defaults, in one registry.

Each builder returns an :class:`Activation`: the function on arrays plus what the probes and
the saturation experiment need to know (its output range, where it is bounded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from initlab._lazy import jax, jnp
from initlab.registry import Registry


@dataclass(frozen=True)
class Activation:
    """A built activation.

    Attributes:
        spec: canonical spec, e.g. ``leaky_relu(alpha=0.1)``.
        fn: elementwise function on arrays (softmax works along the last axis).
        output_range: ``(low, high)`` bounds of the output, ``None`` where unbounded.
        relu_family: whether a unit can be "dead" (output exactly zero for negative inputs).
    """

    spec: str
    fn: Callable[[Any], Any] = field(repr=False)
    output_range: tuple[float | None, float | None] = (None, None)
    relu_family: bool = False

    def __call__(self, x: Any) -> Any:
        return self.fn(x)

    @property
    def bounded(self) -> bool:
        return self.output_range[0] is not None and self.output_range[1] is not None

    def saturation_thresholds(self, eps: float = 0.1) -> tuple[float, float] | None:
        """``(low + eps, high - eps)``: outputs beyond these count as saturated; ``None`` if unbounded.

        For sigmoid that is below 0.1 or above 0.9; for tanh and softsign, ``|a| > 1 - eps``.
        """
        if not self.bounded:
            return None
        low, high = self.output_range
        return low + eps, high - eps


activations: Registry[Activation] = Registry("activation")


@activations.register("linear", aliases=("identity", "none"))
def linear() -> Activation:
    """f(x) = x."""
    return Activation("linear", lambda x: x)


@activations.register("sigmoid")
def sigmoid() -> Activation:
    """1 / (1 + exp(-x)), outputs in (0, 1)."""
    return Activation("sigmoid", lambda x: jax.nn.sigmoid(x), (0.0, 1.0))


@activations.register("tanh")
def tanh() -> Activation:
    """tanh(x), outputs in (-1, 1)."""
    return Activation("tanh", lambda x: jnp.tanh(x), (-1.0, 1.0))


@activations.register("relu")
def relu() -> Activation:
    """max(x, 0)."""
    return Activation("relu", lambda x: jax.nn.relu(x), (0.0, None), relu_family=True)


@activations.register("leaky_relu")
def leaky_relu(alpha: float = 0.2) -> Activation:
    """x for x > 0, alpha * x otherwise (Keras 3 ``leaky_relu``: alpha 0.2)."""
    return Activation(f"leaky_relu(alpha={alpha!r})", lambda x: jax.nn.leaky_relu(x, alpha), relu_family=True)


@activations.register("elu")
def elu(alpha: float = 1.0) -> Activation:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return Activation(f"elu(alpha={alpha!r})", lambda x: jax.nn.elu(x, alpha), (-alpha, None))


@activations.register("selu")
def selu() -> Activation:
    """Scaled ELU with the self-normalising constants (Klambauer et al. 2017)."""
    return Activation("selu", lambda x: jax.nn.selu(x), (-1.6732632423543772 * 1.0507009873554805, None))


@activations.register("gelu")
def gelu(approximate: bool = False) -> Activation:
    """x * Phi(x), exact by default as in Keras (``approximate=True``: tanh form)."""
    return Activation(f"gelu(approximate={approximate!r})", lambda x: jax.nn.gelu(x, approximate=approximate))


@activations.register("softsign")
def softsign() -> Activation:
    """x / (1 + |x|), outputs in (-1, 1)."""
    return Activation("softsign", lambda x: jax.nn.soft_sign(x), (-1.0, 1.0))


@activations.register("erf")
def erf() -> Activation:
    """The error function, outputs in (-1, 1): the sigmoid-like nonlinearity whose Gaussian integrals
    are closed forms (Williams 1997), used by Pennington et al. (2017) beside tanh. Not a Keras
    activation."""
    return Activation("erf", lambda x: jax.scipy.special.erf(x), (-1.0, 1.0))


@activations.register("softplus")
def softplus() -> Activation:
    """log(1 + exp(x))."""
    return Activation("softplus", lambda x: jax.nn.softplus(x), (0.0, None))


@activations.register("swish", aliases=("silu",))
def swish() -> Activation:
    """x * sigmoid(x) (also called SiLU)."""
    return Activation("swish", lambda x: jax.nn.silu(x))


@activations.register("softmax")
def softmax() -> Activation:
    """exp(x) / sum(exp(x)) over the last axis: for output layers."""
    return Activation("softmax", lambda x: jax.nn.softmax(x, axis=-1), (0.0, 1.0))


def build(spec: str) -> Activation:
    """The activation described by ``spec``, e.g. ``"tanh"`` or ``"leaky_relu(alpha=0.1)"``."""
    import dataclasses

    return dataclasses.replace(activations.build(spec), spec=activations.canonical(spec))
