"""Convolutional and residual networks as Flax modules, with Keras's layer semantics.

- :func:`cnn`: ``Conv -> activation [-> pooling]`` stacks, channels last, ``same``/``valid``
  padding as Keras's ``Conv2D``, then ``Dense`` layers (LeNet-like); or, with ``depth``, a
  plain stack of ``depth`` convolutions of one width and a global average pool (the very deep
  CNNs of Xiao et al. 2018: hundreds of layers at initialization).
- :func:`resnet`: a stem convolution, ``depth`` basic blocks ``x + conv-norm-act-conv-norm`` at
  one width, global average pool, Dense; ``norm`` batch, layer or none; and the schemes that
  train deep residual networks without normalization (Fixup, SkipInit, ReZero).
- :func:`resmlp`: the same blocks with Dense layers (a residual MLP).

The schemes, with their papers' constants (``L`` residual branches of ``m = 2`` layers each):

- ``fixup`` (Zhang, Dauphin & Ma 2019, "Fixup Initialization", Sec. 3 and the authors'
  ``fixup_resnet_cifar.py``): the last layer of every branch and the classifier start at zero;
  the branch's other layer is He-normal (fan-out, untruncated, as the authors' code) times
  ``L^(-1/(2m-2)) = L^(-1/2)``; a scalar bias (zero) before each convolution and activation and
  a scalar multiplier (one) per branch; no normalization.
- ``skipinit`` (De & Smith 2020, "Batch Normalization Biases Residual Blocks Towards the Identity
  Function in Deep Networks"): ``x + alpha * f(x)``, the scalar ``alpha`` zero at initialization.
- ``rezero`` (Bachlechner et al. 2021, "ReZero is All You Need"): the same zero-initialized
  residual gain, with normalization removed (``norm='none'``).
- ``depth_mup`` (Yang, Yu, Zhu & Hayou 2023, "Tensor Programs VI: Feature Learning in
  Infinite-Depth Neural Networks", Depth-muP; Bordelon et al. 2023, "Depthwise Hyperparameter
  Transfer in Residual Networks"): every branch multiplied by ``1/sqrt(L)`` in the forward pass
  (a multiplier, not an initialization scale: its gradients are scaled too), the layers' own
  initialization kept. With SGD the learning rate then transfers across depth; with Adam the
  paper also scales the hidden weights' learning rate by ``1/sqrt(L)``, which initlab's
  optimizer specs do not do here.

Every network states its initialization (:class:`~initlab.nn.architecture.Architecture`):
``default`` is Flax's defaults (``lecun_normal`` kernels, zero biases; ``--defaults`` changes
them), the schemes add their rules and multipliers.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from initlab.errors import InitlabError, unknown
from initlab.nn import activations
from initlab.nn.architecture import Architecture, SpatialTrace, image_shape, rms, rules

PADDINGS = ("same", "valid")
POOLINGS = ("max", "average", "none")
NORMS = ("batch", "layer", "none")
RESIDUAL_SCHEMES = ("default", "fixup", "skipinit", "rezero", "depth_mup")

BATCH_NORM = {"keras": (0.99, 1e-3), "torch": (0.9, 1e-5), "flax": (0.99, 1e-5)}
"""``(momentum, epsilon)`` of each framework's BatchNorm, in Flax's convention (the running
average keeps ``momentum`` of itself: PyTorch's ``momentum=0.1`` is 0.9 here)."""

LAYER_NORM_EPSILON = {"keras": 1e-3, "torch": 1e-5, "flax": 1e-6}
"""Each framework's LayerNorm epsilon (Keras ``LayerNormalization``, ``nn.LayerNorm``, ``nn.LayerNorm``)."""


def _linen() -> Any:
    import flax.linen as linen

    return linen


def check_cnn_options(padding: str, pooling: str) -> None:
    """A cnn's padding and pooling are known ones, or a one-line error naming the valid ones."""
    if padding not in PADDINGS:
        raise unknown("cnn padding", padding, PADDINGS)
    if pooling not in POOLINGS:
        raise unknown("cnn pooling", pooling, POOLINGS)


def check_residual_options(model: str, norm: str, scheme: str) -> None:
    """A residual network's normalization and scheme are known and fit together."""
    if norm not in NORMS:
        raise unknown(f"{model} norm", norm, NORMS)
    if scheme not in RESIDUAL_SCHEMES:
        raise unknown(f"{model} scheme", scheme, RESIDUAL_SCHEMES)
    if scheme in ("fixup", "rezero") and norm != "none":
        raise InitlabError(f"{model}: scheme {scheme} trains without normalization; set norm='none' (got norm={norm!r})")


def _normalization(norm: str, framework: str, name: str) -> Any:
    linen = _linen()
    if norm == "batch":
        momentum, epsilon = BATCH_NORM[framework]
        return functools.partial(linen.BatchNorm, momentum=momentum, epsilon=epsilon, name=name)
    if norm == "layer":
        return functools.partial(linen.LayerNorm, epsilon=LAYER_NORM_EPSILON[framework], name=name)
    return None


def _apply_norm(make: Any, x: Any, train: bool) -> Any:
    if make is None:
        return x
    module = make()
    if isinstance(module, _linen().BatchNorm):
        return module(x, use_running_average=not train)
    return module(x)


@functools.cache
def _modules() -> dict[str, type]:
    """The linen module classes, made on first use (importing initlab imports no Flax)."""
    linen = _linen()

    class ConvNet(linen.Module):
        convs: tuple[int, ...]
        kernel_size: int
        padding: str
        pooling: str
        pool_size: int
        dense: tuple[int, ...]
        activation: str
        output_activation: str
        classes: int
        global_pool: bool

        @linen.compact
        def __call__(self, x: Any) -> Any:
            act = activations.build(self.activation)
            for index, channels in enumerate(self.convs):
                x = act(linen.Conv(channels, (self.kernel_size,) * 2, padding=self.padding.upper(), name=f"Conv_{index}")(x))
                if self.pooling != "none":
                    pool = linen.max_pool if self.pooling == "max" else linen.avg_pool
                    x = pool(x, (self.pool_size,) * 2, strides=(self.pool_size,) * 2)
            x = x.mean(axis=(1, 2)) if self.global_pool else x.reshape((x.shape[0], -1))
            for index, units in enumerate(self.dense):
                x = act(linen.Dense(units, name=f"Dense_{index}")(x))
            return activations.build(self.output_activation)(linen.Dense(self.classes, name=f"Dense_{len(self.dense)}")(x))

    class ResidualBlock(linen.Module):
        """The branch ``gain * f(x)`` of ``act(x + gain * f(x))``; ``f`` two layers (3x3 convolutions, or Dense)."""

        width: int
        dense: bool
        norm: str
        framework: str
        scheme: str
        activation: str
        train: bool = True
        branch_scale: float = 1.0

        @linen.compact
        def __call__(self, x: Any) -> Any:
            act = activations.build(self.activation)
            zeros = linen.initializers.zeros

            def layer(name: str) -> Any:
                if self.dense:
                    return linen.Dense(self.width, name=name)
                return linen.Conv(self.width, (3, 3), padding="SAME", use_bias=self.scheme != "fixup", name=name)

            def bias(name: str) -> Any:  # Fixup's scalar biases
                return self.param(name, zeros, (1,)) if self.scheme == "fixup" else 0.0

            h = layer("layer_0")(x + bias("bias_0a"))
            h = _apply_norm(_normalization(self.norm, self.framework, "norm_0"), h, self.train)
            h = act(h + bias("bias_0b"))
            h = layer("layer_1")(h + bias("bias_1a"))
            h = _apply_norm(_normalization(self.norm, self.framework, "norm_1"), h, self.train)
            if self.scheme == "fixup":
                h = h * self.param("multiplier", linen.initializers.ones, (1,)) + bias("bias_1b")
            elif self.scheme in ("skipinit", "rezero"):
                h = h * self.param("residual_gain", zeros, ())
            return h * self.branch_scale if self.branch_scale != 1.0 else h

    class ResNet(linen.Module):
        depth: int
        width: int
        dense: bool
        norm: str
        framework: str
        scheme: str
        activation: str
        output_activation: str
        classes: int
        train: bool = True
        branch_scale: float = 1.0

        @linen.compact
        def __call__(self, x: Any) -> Any:
            act = activations.build(self.activation)
            if self.dense:
                x = x.reshape((x.shape[0], -1))
                x = linen.Dense(self.width, name="stem")(x)
            else:
                x = linen.Conv(self.width, (3, 3), padding="SAME", name="stem")(x)
            x = act(_apply_norm(_normalization(self.norm, self.framework, "stem_norm"), x, self.train))
            for index in range(self.depth):
                branch = ResidualBlock(self.width, self.dense, self.norm, self.framework, self.scheme, self.activation,
                                       self.train, self.branch_scale, name=f"block_{index}")(x)
                self.sow("residual", "branch_norm", rms(branch))
                self.sow("residual", "skip_norm", rms(x))
                x = act(x + branch)
                self.sow("residual", "stream_norm", rms(x))
            if not self.dense:
                x = x.mean(axis=(1, 2))
            if self.scheme == "fixup":
                x = x + self.param("head_bias_in", linen.initializers.zeros, (1,))
            return activations.build(self.output_activation)(linen.Dense(self.classes, name="head")(x))

    return {"ConvNet": ConvNet, "ResNet": ResNet}



def _activation(spec: str) -> str:
    return activations.activations.canonical(spec)


def cnn(
    input_shape: tuple[int, ...],
    classes: int,
    *,
    spec: str,
    channels: int | tuple[int, ...] = (32, 64),
    depth: int | None = None,
    kernel_size: int = 3,
    padding: str = "same",
    pooling: str = "max",
    pool_size: int = 2,
    dense: tuple[int, ...] = (),
    activation: str = "relu",
    output_activation: str = "softmax",
) -> Architecture:
    """A plain convolutional network on images ``input_shape`` (see the module docstring)."""
    check_cnn_options(padding, pooling)
    shape = image_shape("cnn", input_shape)
    if depth is not None:
        if not isinstance(channels, int):
            raise InitlabError(f"cnn(depth={depth}) stacks convolutions of one width: give channels as one number, got {channels!r}")
        convs, global_pool = (channels,) * depth, True
        pooling = "none" if pooling == "max" else pooling
    else:
        convs, global_pool = ((channels,) if isinstance(channels, int) else tuple(channels)), False
    trace = SpatialTrace("cnn", shape[0], shape[1])
    for index in range(len(convs)):
        trace.conv(kernel_size, padding, f"convolution {index + 1}")
        if pooling != "none":
            trace.pool(pool_size, f"convolution {index + 1}")
    module = _modules()["ConvNet"](
        convs=convs, kernel_size=kernel_size, padding=padding, pooling=pooling, pool_size=pool_size, dense=tuple(dense),
        activation=_activation(activation), output_activation=_activation(output_activation), classes=classes,
        global_pool=global_pool,
    )
    return Architecture(module, shape, spec=spec)


def residual(
    input_shape: tuple[int, ...],
    classes: int,
    *,
    spec: str,
    dense: bool,
    depth: int,
    width: int,
    norm: str,
    scheme: str,
    activation: str,
    output_activation: str,
    framework: str | None,
) -> Architecture:
    """A residual network (:func:`resnet`'s and :func:`resmlp`'s body)."""
    model = "resmlp" if dense else "resnet"
    check_residual_options(model, norm, scheme)
    shape = (math.prod(input_shape),) if dense else image_shape(model, input_shape)
    module = _modules()["ResNet"](
        depth=depth, width=width, dense=dense, norm=norm, framework=framework or "flax", scheme=scheme,
        activation=_activation(activation), output_activation=_activation(output_activation), classes=classes,
        branch_scale=1 / math.sqrt(depth) if scheme == "depth_mup" else 1.0,
    )
    own_rules, multipliers = (), ()
    if scheme == "fixup":
        branch_scale = depth ** (-1.0 / (2 * 2 - 2))  # L^(-1/(2m-2)), m = 2 layers per branch
        he = "variance_scaling(scale=2.0, mode='fan_out', distribution='untruncated_normal')"
        own_rules = rules(("stem/kernel", he), ("block_*/layer_0/kernel", he), ("*/bias", "zeros"))
        multipliers = (("block_*/layer_0/kernel", branch_scale), ("block_*/layer_1/kernel", 0.0), ("head/*", 0.0))
    return Architecture(module, shape, spec=spec, rules=own_rules, multipliers=multipliers, scheme=scheme)


__all__ = [
    "BATCH_NORM", "LAYER_NORM_EPSILON", "NORMS", "PADDINGS", "POOLINGS", "RESIDUAL_SCHEMES", "check_cnn_options",
    "check_residual_options", "cnn", "residual",
]  # fmt: skip
