"""initlab's MLP: a Flax (linen) module whose every layer can be looked into.

:class:`MLP` describes the network (input size, Dense layers with their activations and
initializer specs) and is a :class:`~initlab.nn.flax_model.FlaxModel`: its module is a stack of
``flax.linen.Dense`` layers named ``Dense_0``, ``Dense_1``... with kernels ``(in, out)`` as in Keras
(so fans are Keras's), and its parameters are Flax's ``{"Dense_0": {"kernel", "bias"}, ...}``.
The taps, the probes and the training loop treat it as any Flax module; what initlab knows
beyond a user's module is each layer's activation, so activation statistics are measured.

Initialization is initlab's, not Flax's RNG folding, so that a seed gives the numbers it always
gave: the key is split once per layer, each layer's key into its kernel's and its bias's. The
module also declares each layer's initializer (``kernel_init``, ``bias_init``) so that it states
its initialization where a reader looks, as torchvision's models do.

Deviation from plain Flax, for speed (``benchmarks/README.md``): the first layer's product may be
initlab's sparse-input kernels (:mod:`initlab.accel.sparse_dense`), passed to ``Dense`` as its
``dot_general``.

Example:
    >>> mlp = MLP(input_dim=784, layers=(DenseLayer(units=64, activation="sigmoid",
    ...           kernel_initializer="RandomNormal()"), DenseLayer(units=10, activation="softmax")))
    >>> params = mlp.init(jax.random.key(0))       # {"Dense_0": {"kernel": (784, 64), ...}, ...}
    >>> probabilities = mlp.apply(params, x)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from initlab._lazy import jax
from initlab.checks import positive_int
from initlab.errors import InitlabError
from initlab.initializers import build as build_initializer
from initlab.initializers.torch import bind_fan_in
from initlab.nn import activations as activations_module
from initlab.nn.flax_model import FlaxModel, LayerOutputs

Params = dict[str, dict[str, Any]]
"""An MLP's parameters: ``{"Dense_0": {"kernel": (in, out), "bias": (out,)}, ...}``."""


@dataclass(frozen=True, kw_only=True)
class DenseLayer:
    """One Dense layer: ``activation(x @ kernel + bias)``, with Keras's defaults."""

    units: int
    activation: str = "linear"
    kernel_initializer: str = "glorot_uniform"
    bias_initializer: str = "zeros"
    input_multiplier: float = 1.0
    """A constant the layer's input is multiplied by (a width parametrization's forward
    multiplier, as microsoft/mup's ``MuReadout`` has: ``(m x) @ kernel + bias``)."""

    def __post_init__(self) -> None:
        positive_int("layer units", self.units)
        # Parse now, so that a bad spec fails before any work is done.
        activations_module.activations.resolve(self.activation)
        build_initializer(self.kernel_initializer)
        build_initializer(self.bias_initializer)


def layer_name(index: int) -> str:
    """The name of the MLP's ``index``-th layer (0-based) in its parameters: ``Dense_0``..."""
    return f"Dense_{index}"


@functools.cache
def _module_class() -> type:
    """The linen module class, made on first use so that importing initlab does not import Flax."""
    import flax.linen as linen

    class MLPModule(linen.Module):
        """Dense layers with their activations; ``first_matmul`` replaces the first product."""

        layers: tuple[DenseLayer, ...]
        input_dim: int
        first_matmul: Callable[[Any, Any], Any] | None = None

        @linen.compact
        def __call__(self, x: Any) -> Any:
            for index, layer in enumerate(self.layers):
                fan_in = self.input_dim if index == 0 else self.layers[index - 1].units
                dot_general = None
                if index == 0 and self.first_matmul is not None:
                    dot_general = _as_dot_general(self.first_matmul)
                if layer.input_multiplier != 1.0:
                    # Inside the product, so that the taps still see the previous layer's own output.
                    dot_general = _scaled(dot_general, layer.input_multiplier)
                z = linen.Dense(
                    layer.units,
                    kernel_init=build_initializer(layer.kernel_initializer),
                    bias_init=build_initializer(bind_fan_in(layer.bias_initializer, fan_in)),
                    dot_general=dot_general,
                    name=layer_name(index),
                )(x)
                x = activations_module.build(layer.activation)(z)
            return x

    return MLPModule


def _scaled(dot_general: Callable[..., Any] | None, multiplier: float) -> Callable[..., Any]:
    """``multiplier * (x @ kernel)``: ``(multiplier x) @ kernel`` without changing ``x``."""
    product = dot_general or jax.lax.dot_general

    def scaled(lhs, rhs, *args, **kwargs):
        return multiplier * product(lhs, rhs, *args, **kwargs)

    return scaled


def _as_dot_general(matmul: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """``matmul(x, kernel)`` with ``lax.dot_general``'s signature, as ``Dense`` calls it."""

    def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
        return matmul(lhs, rhs)

    return dot_general


class MLP(FlaxModel):
    """A stack of Dense layers on inputs of size ``input_dim``, as a Flax module.

    Args:
        input_dim: the input size.
        layers: the Dense layers, the last being the output layer.
    """

    input_dim: int
    layers: tuple[DenseLayer, ...]

    def __init__(self, *, input_dim: int, layers: tuple[DenseLayer, ...]) -> None:
        positive_int("input size", input_dim)
        layers = tuple(layers)
        if not layers:
            raise InitlabError("an MLP needs at least one layer")
        object.__setattr__(self, "input_dim", input_dim)
        object.__setattr__(self, "layers", layers)
        super().__init__(_module_class()(layers=layers, input_dim=input_dim), (input_dim,))

    def __repr__(self) -> str:
        return f"MLP(input_dim={self.input_dim}, layers={self.layers!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MLP) and (self.input_dim, self.layers) == (other.input_dim, other.layers)

    def __hash__(self) -> int:
        return hash((self.input_dim, self.layers))

    @property
    def name(self) -> str:
        return "MLP"

    @property
    def stateful(self) -> bool:
        return False

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Kernel shapes ``(in, out)``, layer by layer."""
        sizes = [self.input_dim] + [layer.units for layer in self.layers]
        return list(zip(sizes[:-1], sizes[1:]))

    @functools.cached_property
    def activation_functions(self) -> tuple[activations_module.Activation, ...]:
        return tuple(activations_module.build(layer.activation) for layer in self.layers)

    def layer_paths(self) -> list[str]:
        return [layer_name(index) for index in range(len(self.layers))]

    def init(self, key: Any) -> Params:
        """Fresh parameters: one key per layer, split into kernel and bias keys."""
        params = {}
        for index, (layer, shape, layer_key) in enumerate(
            zip(self.layers, self.shapes, jax.random.split(key, len(self.layers)))
        ):
            kernel_key, bias_key = jax.random.split(layer_key)
            kernel_init = build_initializer(layer.kernel_initializer)
            if kernel_init.data_dependent:
                raise InitlabError(
                    f"{kernel_init.spec} needs training data: use initlab.nn.lsuv.initialize(mlp, key, x_batch) "
                    "or the trainer, not MLP.init"
                )
            # PyTorch's nn.Linear bias default needs the layer's fan_in, which a bias shape lacks.
            bias_init = build_initializer(bind_fan_in(layer.bias_initializer, shape[0]))
            params[layer_name(index)] = {"kernel": kernel_init(kernel_key, shape), "bias": bias_init(bias_key, (shape[1],))}
        return params

    def apply(self, params: Params, x: Any, *, input_matmul: Callable[[Any, Any], Any] | None = None) -> Any:
        """The network's output for inputs ``x`` of shape ``(batch, input_dim)``.

        ``input_matmul(x, kernel)``, when given, replaces ``x @ kernel`` in the first layer
        (:func:`initlab.accel.sparse_dense.input_matmul`: the same product, skipping zero inputs).
        """
        module = self.module if input_matmul is None else self.module.clone(first_matmul=input_matmul)
        return module.apply({"params": params}, x)


def layer_params(params: Params) -> list[dict[str, Any]]:
    """An MLP's parameters layer by layer, first to last: ``[{"kernel", "bias"}, ...]``."""
    return [params[layer_name(index)] for index in range(len(params))]


__all__ = ["DenseLayer", "LayerOutputs", "MLP", "Params", "layer_name", "layer_params"]
