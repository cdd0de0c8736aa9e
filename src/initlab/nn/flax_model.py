"""Any Flax (linen) module as an initlab model: initialized, applied, trained and probed.

:class:`FlaxModel` wraps a module written as the Flax documentation writes one (``nn.Dense``,
``nn.Conv``, activations as functions) and gives it what initlab's training loop and probes
need: ``init(key)``, ``apply(params, x)``, and **taps**: for every ``Dense``, ``DenseGeneral``,
``Conv`` and ``ConvTranspose`` layer, its input and its output (the pre-activation), and the
gradient of a loss with respect to that output, from one forward pass and one backward pass.

Taps come from Flax's own mechanisms, on any module, without changing it:
``nn.intercept_methods`` sees every layer's call, ``Module.sow`` keeps the values and
``Module.perturb`` adds a zero perturbation whose gradient is ``dL/dz``.

What initlab cannot know about a user's module, it does not guess: the activation function
between layers is unknown, so the probes' activation-specific statistics (saturation, the mean
derivative) are NaN; a layer's "activation" is what the next tapped layer receives (the model's
output for the last one).

Example:
    >>> class CNN(nn.Module):
    ...     @nn.compact
    ...     def __call__(self, x):
    ...         x = nn.relu(nn.Conv(8, (3, 3))(x))
    ...         return nn.softmax(nn.Dense(10)(x.reshape((x.shape[0], -1))))
    >>> result = initlab.train(TrainConfig(epochs=2, probe_every=1), model=FlaxModel(CNN(), (28, 28, 1)))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from initlab._lazy import jax, jnp
from initlab.errors import InitlabError


def _linen() -> Any:
    try:
        import flax.linen as linen
    except ImportError:  # pragma: no cover - flax is a dependency of this path only
        raise InitlabError("a Flax model needs Flax: pip install 'initlab[flax]'") from None
    return linen


def _tapped_types() -> tuple[type, ...]:
    linen = _linen()
    return (linen.Dense, linen.DenseGeneral, linen.Conv, linen.ConvTranspose)


def _interceptor(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
    output = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and isinstance(context.module, _tapped_types()):
        module = context.module
        module.sow("taps", "input", args[0])
        output = module.perturb("preactivation", output)
        module.sow("taps", "preactivation", output)
    return output


def _flatten(tree: Any) -> dict[str, Any]:
    from flax.traverse_util import flatten_dict

    return flatten_dict(dict(tree), sep="/")


@dataclass(frozen=True, eq=False)
class FlaxModel:
    """A Flax linen module on inputs of one example's shape ``input_shape``.

    Attributes:
        module: the ``flax.linen.Module``; its output is what the loss compares with the labels
            (probabilities, for Keras's losses).
        input_shape: one example's shape, e.g. ``(784,)`` or ``(28, 28, 1)``; a batch of flat
            inputs is reshaped to it.
    """

    module: Any
    input_shape: tuple[int, ...]
    _layers: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.module, _linen().Module):
            raise InitlabError(f"model must be a flax.linen.Module, got {type(self.module).__name__}")
        shape = tuple(self.input_shape)
        if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in shape):
            raise InitlabError(f"input_shape must be positive integers such as (784,) or (28, 28, 1), got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)

    @property
    def name(self) -> str:
        """The module's class name, recorded with a run."""
        return type(self.module).__name__

    def _batch(self, x: Any) -> Any:
        return x.reshape((x.shape[0], *self.input_shape))

    def init(self, key: Any) -> Any:
        """The module's own initialization (its ``kernel_init`` and ``bias_init``) from ``key``."""
        variables = self.module.init(key, jnp.zeros((1, *self.input_shape), jnp.float32))
        others = sorted(set(variables) - {"params"})
        if others:
            raise InitlabError(
                f"{self.name} keeps state beside its parameters ({', '.join(others)}): initlab trains modules "
                "with parameters only so far (no BatchNorm statistics)"
            )
        return variables["params"]

    def apply(self, params: Any, x: Any, *, input_matmul: Any = None) -> Any:
        """The module's output for a batch ``x`` (``input_matmul`` is for initlab's MLP and is ignored)."""
        return self.module.apply({"params": params}, self._batch(x))

    def tapped(self, params: Any, x: Any, perturbations: Any = None) -> tuple[Any, dict[str, tuple[Any, Any]]]:
        """The output and, per tapped layer (by path, in call order), its ``(input, pre-activation)``.

        ``perturbations`` (from :meth:`zero_perturbations`) are added to the pre-activations: the
        gradient of a loss with respect to them is the gradient with respect to the pre-activations.
        """
        variables = {"params": params} | ({"perturbations": perturbations} if perturbations is not None else {})
        mutable = ["taps"] if perturbations is not None else ["taps", "perturbations"]
        with _linen().intercept_methods(_interceptor):
            output, state = self.module.apply(variables, self._batch(x), mutable=mutable)
        taps = _flatten(state["taps"])
        layers = {}
        for key in taps:
            path, _, kind = key.rpartition("/")
            if kind == "input":
                layers[path] = (taps[key][0], taps[f"{path}/preactivation"][0])
        return output, layers

    def zero_perturbations(self, params: Any, batch_size: int) -> Any:
        """Zeros shaped like every tapped layer's pre-activation for a batch of ``batch_size``."""
        x = jnp.zeros((batch_size, *self.input_shape), jnp.float32)
        with _linen().intercept_methods(_interceptor):
            shapes = jax.eval_shape(
                lambda p: self.module.apply({"params": p}, x, mutable=["taps", "perturbations"])[1]["perturbations"], params
            )
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def layer_paths(self) -> list[str]:
        """The tapped layers' paths, in call order (``["Dense_0", "Dense_1"]``); computed on shapes only."""
        if not self._layers:
            x = jnp.zeros((1, *self.input_shape), jnp.float32)
            params = jax.eval_shape(self.init, jax.random.key(0))
            _, layers = jax.eval_shape(lambda p: self.tapped(p, x), params)
            if not layers:
                raise InitlabError(f"{self.name} has no Dense or Conv layer for initlab to look into")
            self._layers.extend(layers)
        return list(self._layers)


def as_model(model: Any, input_shape: tuple[int, ...]) -> FlaxModel:
    """``model`` as a :class:`FlaxModel`: a module is wrapped with ``input_shape``; a FlaxModel is kept."""
    if isinstance(model, FlaxModel):
        return model
    return FlaxModel(model, tuple(input_shape))


def flat_params(params: Any) -> dict[str, Any]:
    """A module's parameters flattened to ``{"Dense_0/kernel": array, ...}``."""
    return _flatten(params)


__all__ = ["FlaxModel", "as_model", "flat_params"]
