"""Multi-layer perceptrons whose every layer can be looked into.

An :class:`MLP` is a frozen description (input size, Dense layers); its parameters are a plain
pytree (a tuple of ``{"kernel", "bias"}`` dicts, kernel shape ``(in, out)`` as in Keras), so
that they can be stacked and ``vmap``-ed over for ensembles.

Example:
    >>> mlp = MLP(input_dim=784, layers=(DenseLayer(units=64, activation="sigmoid",
    ...           kernel_initializer="RandomNormal()"), DenseLayer(units=10, activation="softmax")))
    >>> params = mlp.init(jax.random.key(0))
    >>> probabilities = mlp.apply(params, x)
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from initlab.nn import activations as activations_module
from initlab import initializers as initializers_module
from initlab._lazy import jax
from initlab.errors import InitlabError
from initlab.initializers.torch import bind_fan_in

Params = tuple[dict[str, Any], ...]


@dataclass(frozen=True, kw_only=True)
class DenseLayer:
    """One Dense layer: ``activation(x @ kernel + bias)``, with Keras's defaults."""

    units: int
    activation: str = "linear"
    kernel_initializer: str = "glorot_uniform"
    bias_initializer: str = "zeros"

    def __post_init__(self) -> None:
        if not isinstance(self.units, int) or isinstance(self.units, bool) or self.units <= 0:
            raise InitlabError(f"layer units must be a positive integer, got {self.units!r}")
        # Parse now, so that a bad spec fails before any work is done.
        activations_module.activations.resolve(self.activation)
        initializers_module.initializers.resolve(self.kernel_initializer)
        initializers_module.initializers.resolve(self.bias_initializer)


def dense(x: Any, kernel: Any, bias: Any, matmul: Callable[[Any, Any], Any] = operator.matmul) -> Any:
    """``x @ kernel + bias``: one Dense layer's pre-activation (the product computed by ``matmul``)."""
    return matmul(x, kernel) + bias


class LayerOutputs(NamedTuple):
    """What one layer computed: pre-activation ``z = x @ W + b`` and activation ``a = f(z)``."""

    preactivation: Any
    activation: Any


@dataclass(frozen=True, kw_only=True)
class MLP:
    """A stack of Dense layers on inputs of size ``input_dim``."""

    input_dim: int
    layers: tuple[DenseLayer, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.input_dim, int) or self.input_dim <= 0:
            raise InitlabError(f"input size must be a positive integer, got {self.input_dim!r}")
        if not self.layers:
            raise InitlabError("an MLP needs at least one layer")
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Kernel shapes ``(in, out)``, layer by layer."""
        sizes = [self.input_dim] + [layer.units for layer in self.layers]
        return list(zip(sizes[:-1], sizes[1:]))

    @functools.cached_property
    def activation_functions(self) -> tuple[activations_module.Activation, ...]:
        return tuple(activations_module.build(layer.activation) for layer in self.layers)

    def init(self, key: Any) -> Params:
        """Fresh parameters: one key per layer, split into kernel and bias keys."""
        params = []
        for layer, shape, layer_key in zip(self.layers, self.shapes, jax.random.split(key, len(self.layers))):
            kernel_key, bias_key = jax.random.split(layer_key)
            kernel_init = initializers_module.build(layer.kernel_initializer)
            if kernel_init.data_dependent:
                raise InitlabError(
                    f"{kernel_init.spec} needs training data: use initlab.nn.lsuv.initialize(mlp, key, x_batch) "
                    "or the trainer, not MLP.init"
                )
            params.append(
                {
                    "kernel": kernel_init(kernel_key, shape),
                    # PyTorch's nn.Linear bias default needs the layer's fan_in, which a bias shape lacks.
                    "bias": initializers_module.build(bind_fan_in(layer.bias_initializer, shape[0]))(
                        bias_key, (shape[1],)
                    ),
                }
            )
        return tuple(params)

    def apply(self, params: Params, x: Any, *, input_matmul: Callable[[Any, Any], Any] | None = None) -> Any:
        """The network's output for inputs ``x`` of shape ``(batch, input_dim)``.

        ``input_matmul(x, kernel)``, when given, replaces ``x @ kernel`` in the first layer
        (:func:`initlab.accel.sparse_dense.input_matmul`: the same product, skipping zero inputs).
        """
        matmul = input_matmul or operator.matmul
        for layer_params, activation in zip(params, self.activation_functions):
            x = activation(dense(x, layer_params["kernel"], layer_params["bias"], matmul))
            matmul = operator.matmul
        return x

    def apply_with_intermediates(self, params: Params, x: Any) -> tuple[Any, list[LayerOutputs]]:
        """The output and, for every layer, its pre-activation and activation."""
        outputs = []
        for layer_params, activation in zip(params, self.activation_functions):
            z = dense(x, layer_params["kernel"], layer_params["bias"])
            x = activation(z)
            outputs.append(LayerOutputs(z, x))
        return x, outputs
