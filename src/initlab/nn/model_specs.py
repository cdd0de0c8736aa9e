"""Networks given by readable specs, parsed like initializer specs: ``mlp(64)``, ``cnn(depth=200, channels=64)``.

The registry :data:`models` drives ``initlab list models`` and ``initlab train --model``; importing
it imports no JAX. A spec builds a :class:`ModelSpec`, the architecture's fields of a
:class:`~initlab.training.config.TrainConfig`: the MLP's are the config's own fields; every other
network is the config's ``architecture`` (its canonical spec), built for a data set's example shape
by :func:`build_architecture` (:mod:`initlab.nn.convnets`, :mod:`initlab.nn.transformer`).

Example:
    >>> models.build("mlp(hidden=[256, 128], activation='relu')").config_fields()
    {'hidden_units': (256, 128), 'activation': 'relu', 'output_activation': 'softmax'}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from initlab.checks import MAX_DEPTH, MAX_UNITS, positive_int
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


def _architecture(name: str, **kwargs: Any) -> ModelSpec:
    spec = models.canonical(name + "(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")")
    return ModelSpec(spec, (("architecture", spec),))


def _sizes(model: str, name: str, value: Any, *, maximum: int = MAX_UNITS) -> tuple[int, ...]:
    sizes = (value,) if isinstance(value, int) and not isinstance(value, bool) else tuple(value) if isinstance(value, (list, tuple)) else None
    if sizes is None:
        raise InitlabError(f"{model}: {name} must be a number or a list of numbers, got {value!r}")
    for size in sizes:
        positive_int(f"{model}: {name}", size, maximum=maximum)
    return sizes


def _activations(*specs: str) -> None:
    from initlab.nn.activations import activations

    for spec in specs:
        activations.resolve(spec)


MAX_CONV_DEPTH = 2000
"""The deepest plain CNN (Xiao et al. trained 10,000 layers; a laptop's memory stops far earlier)."""


@models.register("cnn", aliases=("convnet",))
def cnn(
    channels: int | tuple = (32, 64),
    depth: int | None = None,
    kernel_size: int = 3,
    padding: str = "same",
    pooling: str = "max",
    pool_size: int = 2,
    dense: int | tuple | None = None,
    activation: str = "relu",
    output_activation: str = "softmax",
) -> ModelSpec:
    """Conv2D (channels last, Keras padding) -> activation -> pooling per entry of channels, Dense layers (default [128]); depth=N: N convolutions of one width, global average pool, no hidden Dense."""
    channels = _sizes("cnn", "channels", channels)
    if depth is not None:
        positive_int("cnn: depth", depth, maximum=MAX_CONV_DEPTH)
        if len(channels) != 1:
            raise InitlabError(f"cnn(depth={depth}) stacks convolutions of one width: give channels as one number, got {list(channels)}")
    positive_int("cnn: kernel_size", kernel_size, maximum=99)
    positive_int("cnn: pool_size", pool_size, maximum=99)
    if dense is None:
        dense = () if depth is not None else (128,)
    dense = () if dense == () or dense == [] else _sizes("cnn", "dense", dense)
    from initlab.nn.convnets import check_cnn_options

    check_cnn_options(padding, pooling)
    _activations(activation, output_activation)
    return _architecture(
        "cnn", channels=channels[0] if depth is not None else list(channels), depth=depth, kernel_size=kernel_size,
        padding=padding, pooling=pooling, pool_size=pool_size, dense=list(dense), activation=activation,
        output_activation=output_activation,
    )


def _residual(model: str, depth: int, width: int, norm: str, scheme: str, activation: str, output_activation: str) -> ModelSpec:
    from initlab.nn.convnets import check_residual_options

    positive_int(f"{model}: depth", depth, maximum=MAX_DEPTH)
    positive_int(f"{model}: width", width, maximum=MAX_UNITS)
    check_residual_options(model, norm, scheme)
    _activations(activation, output_activation)
    return _architecture(model, depth=depth, width=width, norm=norm, scheme=scheme, activation=activation,
                         output_activation=output_activation)


@models.register("resnet")
def resnet(depth: int = 8, width: int = 16, norm: str = "batch", scheme: str = "default", activation: str = "relu",
           output_activation: str = "softmax") -> ModelSpec:
    """A 3x3 stem, depth basic blocks x + conv-norm-act-conv-norm of one width, global average pool, Dense; schemes fixup, skipinit, rezero, depth_mup."""
    return _residual("resnet", depth, width, norm, scheme, activation, output_activation)


@models.register("resmlp", aliases=("residual_mlp",))
def resmlp(depth: int = 8, width: int = 256, norm: str = "none", scheme: str = "default", activation: str = "relu",
           output_activation: str = "softmax") -> ModelSpec:
    """A Dense stem, depth residual blocks x + Dense-norm-act-Dense-norm, Dense output; schemes fixup, skipinit, rezero, depth_mup."""
    return _residual("resmlp", depth, width, norm, scheme, activation, output_activation)


@models.register("transformer")
def transformer(layers: int = 2, d_model: int = 64, heads: int = 4, mlp_ratio: int = 4, norm: str | None = None,
                causal: bool = True, scheme: str = "default", output_activation: str = "softmax") -> ModelSpec:
    """Token and position embeddings, blocks of multi-head attention and MLP with LayerNorm pre or post; schemes gpt2, tfixup, deepnorm, rezero."""
    from initlab.nn.transformer import check_options

    positive_int("transformer: layers", layers, maximum=MAX_DEPTH)
    positive_int("transformer: d_model", d_model, maximum=MAX_UNITS)
    positive_int("transformer: heads", heads, maximum=MAX_UNITS)
    positive_int("transformer: mlp_ratio", mlp_ratio, maximum=64)
    check_options(d_model, heads, norm, scheme)
    _activations(output_activation)
    return _architecture("transformer", layers=layers, d_model=d_model, heads=heads, mlp_ratio=mlp_ratio, norm=norm,
                         causal=causal, scheme=scheme, output_activation=output_activation)


def build_architecture(
    spec: str, input_shape: tuple[int, ...], classes: int, *, vocabulary: int | None = None, framework: str | None = None
) -> Any:
    """The :class:`~initlab.nn.architecture.Architecture` of ``spec`` for examples of ``input_shape``.

    Args:
        spec: a model spec other than ``mlp`` (``cnn(...)``, ``resnet(...)``, ``transformer(...)``).
        input_shape: one example's shape (``(28, 28, 1)``; ``(length,)`` token ids).
        classes: the output layer's size.
        vocabulary: how many token ids a sequence data set has (a Transformer's embedding table).
        framework: the config's ``defaults`` preset; normalization layers take its constants.

    Raises:
        InitlabError: the spec does not fit the data (a kernel larger than the image, images for a
            Transformer...), in one line.
    """
    if models.resolve(spec)[0].name == "mlp":
        raise InitlabError("mlp is built from the config's own fields (TrainConfig.model), not as an architecture")
    canonical = models.build(spec).spec  # checked, with the defaults that depend on other arguments filled in
    entry, kwargs = models.resolve(canonical)
    if entry.name == "mlp":
        raise InitlabError("mlp is built from the config's own fields (TrainConfig.model), not as an architecture")
    shape = tuple(int(s) for s in input_shape)
    if entry.name == "cnn":
        from initlab.nn.convnets import cnn as build

        kwargs["channels"] = kwargs["channels"] if isinstance(kwargs["channels"], int) else tuple(kwargs["channels"])
        kwargs["dense"] = (kwargs["dense"],) if isinstance(kwargs["dense"], int) else tuple(kwargs["dense"])
        return build(shape, classes, spec=canonical, **kwargs)
    if entry.name in ("resnet", "resmlp"):
        from initlab.nn.convnets import residual

        return residual(shape, classes, spec=canonical, dense=entry.name == "resmlp", framework=framework, **kwargs)
    from initlab.nn.transformer import transformer as build

    return build(shape, classes, spec=canonical, vocabulary=vocabulary, framework=framework, **kwargs)


__all__ = ["ModelSpec", "build_architecture", "cnn", "mlp", "models", "resmlp", "resnet", "transformer"]
