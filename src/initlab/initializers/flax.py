"""Flax's initializers (``jax.nn.initializers``, which ``flax.linen`` re-exports), as ``flax.*``.

``flax.linen.Dense`` (and ``flax.nnx.Linear``) default to ``lecun_normal()`` for the kernel and
``zeros_init()`` for the bias; Keras's Dense defaults to ``glorot_uniform`` and zeros.

JAX's variance-scaling family is Keras's: same kernel layout ``(in, out)``, same fans
(receptive field times in/out), and the same corrected truncated normal (JAX also divides the
std by 0.87962566103423978 before truncating at 2 std). So ``flax.lecun_normal``,
``flax.glorot_uniform``, ``flax.he_normal`` and the rest are plain aliases of the Keras
entries: same law, same numbers for the same key. JAX refuses 1-D shapes where Keras uses fans
``(n, n)``; these aliases follow Keras there.

What differs, and is implemented here: ``normal`` (default std 0.01, Keras 0.05), ``uniform``
(``[0, scale)``, default scale 0.01; Keras is symmetric, +-0.05), ``truncated_normal`` (default
std 0.01, bounds in std units) and ``variance_scaling``, whose ``"normal"`` is *untruncated*
(Keras's ``"normal"`` means truncated) and which has a ``"fan_geo_avg"`` mode.
"""

from __future__ import annotations

import dataclasses
import math

from initlab._lazy import jax
from initlab.errors import unknown
from initlab.initializers.base import (
    TRUNCATED_NORMAL_STD,
    Initializer,
    Law,
    Shape,
    check,
    compute_fans,
    initializers,
)
from initlab.initializers.keras import orthogonal as keras_orthogonal

FLAX_VARIANCE_SCALING_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
FLAX_VARIANCE_SCALING_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


def _alias(name: str, keras_name: str, summary: str, aliases: tuple[str, ...] = ()) -> None:
    """Register ``name`` as the Keras entry ``keras_name`` under another name (same law, same numbers)."""
    keras_builder = initializers.entry(keras_name).builder

    def builder() -> Initializer:
        return dataclasses.replace(keras_builder(), spec=name)

    builder.__doc__ = summary
    builder.__name__ = name.replace(".", "_")
    initializers.add(name, builder, aliases=aliases)


_alias(
    "flax.dense_default",
    "lecun_normal",
    "Truncated normal, variance 1/fan_in: flax nn.Dense kernel default, lecun_normal() (= Keras lecun_normal).",
)
_alias("flax.dense_bias_default", "zeros", "All zeros: flax nn.Dense bias default, zeros_init().")
_alias("flax.lecun_normal", "lecun_normal", "Truncated normal, variance 1/fan_in (jax lecun_normal = Keras lecun_normal).")
_alias("flax.lecun_uniform", "lecun_uniform", "U(+-sqrt(3/fan_in)) (jax lecun_uniform = Keras lecun_uniform).")
_alias(
    "flax.glorot_normal",
    "glorot_normal",
    "Truncated normal, variance 2/(fan_in+fan_out) (jax glorot_normal = Keras glorot_normal).",
    aliases=("flax.xavier_normal",),
)
_alias(
    "flax.glorot_uniform",
    "glorot_uniform",
    "U(+-sqrt(6/(fan_in+fan_out))) (jax glorot_uniform = Keras glorot_uniform).",
    aliases=("flax.xavier_uniform",),
)
_alias(
    "flax.he_normal",
    "he_normal",
    "Truncated normal, variance 2/fan_in (jax he_normal = Keras he_normal).",
    aliases=("flax.kaiming_normal",),
)
_alias(
    "flax.he_uniform",
    "he_uniform",
    "U(+-sqrt(6/fan_in)) (jax he_uniform = Keras he_uniform).",
    aliases=("flax.kaiming_uniform",),
)


@initializers.register("flax.orthogonal")
def orthogonal(scale: float = 1.0) -> Initializer:
    """Haar-orthogonal matrix times scale (jax orthogonal(scale) = Keras orthogonal(gain=scale))."""
    return dataclasses.replace(keras_orthogonal(scale), spec=f"flax.orthogonal(scale={scale!r})")



def _scaled_normal(spec: str, stddev: float) -> Initializer:
    def sample(key, shape, dtype):
        return jax.random.normal(key, shape, dtype) * stddev

    return Initializer(spec, sample, lambda shape: Law("normal", 0.0, stddev))


def _scaled_truncated_normal(spec: str, stddev: float, lower: float, upper: float) -> Initializer:
    """``stddev * Z``, Z a standard normal truncated to [lower, upper] (JAX's ``truncated_normal``)."""
    alpha, beta = lower, upper
    mass = 0.5 * (math.erf(beta / math.sqrt(2)) - math.erf(alpha / math.sqrt(2)))
    check(mass > 0, f"{spec}: [lower, upper] = [{lower}, {upper}] holds no mass of a standard normal")
    pdf_alpha, pdf_beta = (math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) for t in (alpha, beta))
    shift = (pdf_alpha - pdf_beta) / mass
    variance = 1 + (alpha * pdf_alpha - beta * pdf_beta) / mass - shift**2
    law = Law("truncated_normal", stddev * shift, stddev * math.sqrt(max(variance, 0.0)), stddev * lower, stddev * upper)

    def sample(key, shape, dtype):
        return jax.random.truncated_normal(key, lower, upper, shape, dtype) * stddev

    return Initializer(spec, sample, lambda shape: law)


@initializers.register("flax.normal")
def normal(stddev: float = 0.01) -> Initializer:
    """N(0, stddev^2), default stddev 0.01 (jax normal; Keras's default is 0.05)."""
    check(stddev >= 0, f"flax.normal: stddev must be >= 0, got {stddev}")
    return _scaled_normal(f"flax.normal(stddev={stddev!r})", stddev)


@initializers.register("flax.uniform")
def uniform(scale: float = 0.01) -> Initializer:
    """U[0, scale), default scale 0.01 (jax uniform; not symmetric, unlike Keras's +-0.05)."""
    check(scale >= 0, f"flax.uniform: scale must be >= 0, got {scale}")

    def sample(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype) * scale

    return Initializer(
        f"flax.uniform(scale={scale!r})", sample, lambda shape: Law("uniform", scale / 2, scale / math.sqrt(12), 0.0, scale)
    )


@initializers.register("flax.truncated_normal")
def truncated_normal(stddev: float = 0.01, lower: float = -2.0, upper: float = 2.0) -> Initializer:
    """stddev * N(0, 1) truncated to lower..upper in std units, no variance correction (jax truncated_normal)."""
    check(stddev >= 0, f"flax.truncated_normal: stddev must be >= 0, got {stddev}")
    check(lower < upper, f"flax.truncated_normal: lower ({lower}) must be < upper ({upper})")
    return _scaled_truncated_normal(
        f"flax.truncated_normal(stddev={stddev!r}, lower={lower!r}, upper={upper!r})", stddev, lower, upper
    )


@initializers.register("flax.variance_scaling")
def variance_scaling(scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal") -> Initializer:
    """Variance scale/fan, as jax variance_scaling: 'normal' is untruncated, 'fan_geo_avg' = sqrt(fan_in*fan_out)."""
    check(scale > 0, f"flax.variance_scaling: scale must be > 0, got {scale}")
    if mode not in FLAX_VARIANCE_SCALING_MODES:
        raise unknown("flax.variance_scaling mode", mode, FLAX_VARIANCE_SCALING_MODES)
    if distribution not in FLAX_VARIANCE_SCALING_DISTRIBUTIONS:
        raise unknown("flax.variance_scaling distribution", distribution, FLAX_VARIANCE_SCALING_DISTRIBUTIONS)
    spec = f"flax.variance_scaling(scale={scale!r}, mode={mode!r}, distribution={distribution!r})"

    def at(shape: Shape) -> Initializer:
        fan_in, fan_out = compute_fans(shape)
        fan = {
            "fan_in": fan_in,
            "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out),
        }[mode]
        std = math.sqrt(scale / fan)
        if distribution == "truncated_normal":
            return _scaled_truncated_normal(spec, std / TRUNCATED_NORMAL_STD, -2.0, 2.0)
        if distribution == "normal":
            return _scaled_normal(spec, std)
        limit = math.sqrt(3.0) * std

        def sample(key, shape, dtype):
            return jax.random.uniform(key, shape, dtype, -1) * limit

        return Initializer(spec, sample, lambda shape: Law("uniform", 0.0, std, -limit, limit))

    return Initializer(
        spec,
        lambda key, shape, dtype: at(shape).sample(key, shape, dtype),
        lambda shape: at(shape).law(shape),
    )


@initializers.register("flax.embed_default")
def embed_default() -> Initializer:
    """N(0, 1/features), not truncated: flax nn.Embed, variance_scaling(1.0, 'fan_in', 'normal', out_axis=0).

    On an embedding table ``(vocabulary, features)`` JAX's fans with ``in_axis=-2, out_axis=0``
    leave ``fan_in = features``; Keras's ``Embedding`` draws U(+-0.05) and PyTorch's N(0, 1).
    """
    spec = "flax.embed_default"
    return Initializer(
        spec,
        lambda key, shape, dtype: jax.random.normal(key, shape, dtype) * (1.0 / math.sqrt(shape[-1])),
        lambda shape: Law("normal", 0.0, 1.0 / math.sqrt(shape[-1])),
    )


@initializers.register("flax.dense_general_default")
def dense_general_default(in_axes: int = 1) -> Initializer:
    """lecun_normal of the kernel flattened to (prod(shape[:in_axes]), rest): flax nn.DenseGeneral's default.

    ``DenseGeneral`` (the projections of ``nn.MultiHeadDotProductAttention``) draws its kernel
    flat, so a query kernel ``(d, heads, head_dim)`` has fan_in ``d`` (``in_axes=1``) and the
    output kernel ``(heads, head_dim, d)`` fan_in ``heads * head_dim`` (``in_axes=2``), where
    Keras's fans of the unflattened shape would multiply in a receptive field.
    """
    check(isinstance(in_axes, int) and in_axes >= 1, f"flax.dense_general_default: in_axes must be >= 1, got {in_axes!r}")
    spec = "flax.dense_general_default" if in_axes == 1 else f"flax.dense_general_default(in_axes={in_axes!r})"

    def std(shape: Shape) -> float:
        check(len(shape) > in_axes, f"{spec}: a kernel of shape {tuple(shape)} has no output axes after {in_axes} input axes")
        return math.sqrt(1.0 / math.prod(shape[:in_axes])) / TRUNCATED_NORMAL_STD

    return Initializer(
        spec,
        lambda key, shape, dtype: jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * std(shape),
        lambda shape: _scaled_truncated_normal(spec, std(shape), -2.0, 2.0).law(shape),
    )
