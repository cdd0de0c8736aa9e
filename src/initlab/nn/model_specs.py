"""Networks given by readable specs, parsed like initializer specs: ``mlp(64)``, ``mlp(hidden=[256, 128], activation='relu')``.

The registry :data:`models` drives ``initlab list models`` and ``initlab train --model``; importing
it imports no JAX. A spec builds a :class:`ModelSpec`, the architecture's fields of a
:class:`~initlab.training.config.TrainConfig` (its initializers come from the config's rules).

Example:
    >>> models.build("mlp(hidden=[256, 128], activation='relu')").config_fields()
    {'hidden_units': (256, 128), 'activation': 'relu', 'output_activation': 'softmax'}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from initlab.errors import InitlabError
from initlab.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """An architecture: what it is called and the config fields that describe it."""

    spec: str
    fields: tuple[tuple[str, Any], ...]

    def config_fields(self) -> dict[str, Any]:
        return dict(self.fields)


models: Registry[ModelSpec] = Registry("model")


@models.register("mlp", aliases=("multilayer_perceptron", "dense"))
def mlp(hidden: int | tuple = (64,), activation: str = "sigmoid", output_activation: str = "softmax") -> ModelSpec:
    """Dense layers of ``hidden`` units with one activation, then the output layer (Keras Dense semantics)."""
    sizes = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    for size in sizes:
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1_000_000:
            raise InitlabError(f"mlp: hidden sizes must be integers in [1, 1000000], got {hidden!r}")
    from initlab.nn.activations import activations

    for spec in (activation, output_activation):
        activations.resolve(spec)
    fields = (("hidden_units", sizes), ("activation", activation), ("output_activation", output_activation))
    return ModelSpec(models.canonical(f"mlp(hidden={list(sizes)!r}, activation={activation!r}, output_activation={output_activation!r})"), fields)


__all__ = ["ModelSpec", "models", "mlp"]
