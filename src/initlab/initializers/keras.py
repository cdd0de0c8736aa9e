"""Weight initializers with Keras 3's exact semantics and defaults.

Every builder takes only hyperparameters and returns an :class:`~initlab.initializers.base.Initializer`.
Families are one general function specialised, as in Keras and ``jax.nn.initializers``:
``glorot_uniform`` is ``variance_scaling(1.0, "fan_avg", "uniform")``.

Example:
    >>> init = initlab.initializer("RandomNormal(stddev=1.0)")
    >>> weights = init(jax.random.key(0), (784, 256))
"""

from __future__ import annotations

import math

from initlab._lazy import jax, jnp
from initlab.errors import unknown
from initlab.initializers.base import TRUNCATED_NORMAL_STD, Initializer, Law, Shape, check, compute_fans, initializers


def _normal(spec: str, mean: float, stddev: float) -> Initializer:
    def sample(key, shape, dtype):
        return mean + stddev * jax.random.normal(key, shape, dtype)

    return Initializer(spec, sample, lambda shape: Law("normal", mean, stddev))


def _truncated_normal(spec: str, mean: float, stddev: float) -> Initializer:
    """Normal redrawn beyond 2 standard deviations; the entry's std is ``0.8796 * stddev``."""

    def sample(key, shape, dtype):
        return mean + stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)

    def law(shape):
        return Law("truncated_normal", mean, stddev * TRUNCATED_NORMAL_STD, mean - 2 * stddev, mean + 2 * stddev)

    return Initializer(spec, sample, law)


def _uniform(spec: str, low: float, high: float) -> Initializer:
    def sample(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, minval=low, maxval=high)

    return Initializer(spec, sample, lambda shape: Law("uniform", (low + high) / 2, (high - low) / math.sqrt(12), low, high))


@initializers.register("zeros", aliases=("zero",))
def zeros() -> Initializer:
    """All zeros (Keras ``Zeros``)."""
    return constant(0.0)


@initializers.register("ones", aliases=("one",))
def ones() -> Initializer:
    """All ones (Keras ``Ones``)."""
    return constant(1.0)


@initializers.register("constant")
def constant(value: float = 0.0) -> Initializer:
    """Every entry equal to ``value`` (Keras ``Constant``)."""

    def sample(key, shape, dtype):
        return jnp.full(shape, value, dtype)

    spec = {0.0: "zeros", 1.0: "ones"}.get(value, f"constant(value={value!r})")
    return Initializer(spec, sample, lambda shape: Law("constant", value, 0.0, value, value))


@initializers.register("random_normal", aliases=("normal",))
def random_normal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
    """Normal N(mean, stddev^2) (Keras ``RandomNormal``; default stddev 0.05)."""
    check(stddev >= 0, f"random_normal: stddev must be >= 0, got {stddev}")
    return _normal(f"random_normal(mean={mean!r}, stddev={stddev!r})", mean, stddev)


@initializers.register("random_uniform", aliases=("uniform",))
def random_uniform(minval: float = -0.05, maxval: float = 0.05) -> Initializer:
    """Uniform on [minval, maxval) (Keras ``RandomUniform``; default +-0.05)."""
    check(minval <= maxval, f"random_uniform: minval ({minval}) must be <= maxval ({maxval})")
    return _uniform(f"random_uniform(minval={minval!r}, maxval={maxval!r})", minval, maxval)


@initializers.register("truncated_normal")
def truncated_normal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
    """Normal(mean, stddev^2) redrawn beyond 2 stddev, no variance correction (Keras ``TruncatedNormal``)."""
    check(stddev >= 0, f"truncated_normal: stddev must be >= 0, got {stddev}")
    return _truncated_normal(f"truncated_normal(mean={mean!r}, stddev={stddev!r})", mean, stddev)


VARIANCE_SCALING_MODES = ("fan_in", "fan_out", "fan_avg")
VARIANCE_SCALING_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


def _axes_fans(name: str, shape: Shape, input_axes: tuple | None, output_axes: tuple | None) -> tuple[int, int]:
    """Keras 3's ``compute_fans(shape, input_axes, output_axes)``: products over the given axes, else Keras's fans."""
    if input_axes is None or output_axes is None:
        return compute_fans(shape)
    for axis in (*input_axes, *output_axes):
        check(isinstance(axis, int) and -len(shape) <= axis < len(shape), f"{name}: axis {axis!r} is not an axis of shape {tuple(shape)}")
    return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)


@initializers.register("variance_scaling")
def variance_scaling(
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "truncated_normal",
    input_axes: tuple | None = None,
    output_axes: tuple | None = None,
) -> Initializer:
    """Variance scale/fan, as Keras ``VarianceScaling`` (truncated std divided by 0.8796); fans over input_axes/output_axes where given.

    ``input_axes`` and ``output_axes`` are Keras 3's: the fans are the products of those axes'
    sizes, as Keras's ``EinsumDense`` sets them for the multi-head kernels of
    ``MultiHeadAttention`` (a query kernel ``(d, heads, head_dim)`` has fans ``(d, heads*head_dim)``).
    """
    check(scale > 0, f"variance_scaling: scale must be > 0, got {scale}")
    if mode not in VARIANCE_SCALING_MODES:
        raise unknown("variance_scaling mode", mode, VARIANCE_SCALING_MODES)
    mode, distribution = mode.lower(), distribution.lower()
    if distribution == "normal":  # Keras's alias
        distribution = "truncated_normal"
    if distribution not in VARIANCE_SCALING_DISTRIBUTIONS:
        raise unknown("variance_scaling distribution", distribution, VARIANCE_SCALING_DISTRIBUTIONS)
    check((input_axes is None) == (output_axes is None), "variance_scaling: give both input_axes and output_axes, or neither")
    axes = "" if input_axes is None else f", input_axes={tuple(input_axes)!r}, output_axes={tuple(output_axes)!r}"
    spec = f"variance_scaling(scale={scale!r}, mode={mode!r}, distribution={distribution!r}{axes})"

    def variance(shape: Shape) -> float:
        fan_in, fan_out = _axes_fans("variance_scaling", shape, input_axes, output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        return scale / max(1.0, fan)

    def at(shape: Shape) -> Initializer:
        if distribution == "truncated_normal":
            return _truncated_normal(spec, 0.0, math.sqrt(variance(shape)) / TRUNCATED_NORMAL_STD)
        if distribution == "untruncated_normal":
            return _normal(spec, 0.0, math.sqrt(variance(shape)))
        limit = math.sqrt(3.0 * variance(shape))
        return _uniform(spec, -limit, limit)

    return Initializer(
        spec,
        lambda key, shape, dtype: at(shape).sample(key, shape, dtype),
        lambda shape: at(shape).law(shape),
    )


def _specialise(name: str, scale: float, mode: str, distribution: str, summary: str) -> None:
    def builder(input_axes: tuple | None = None, output_axes: tuple | None = None) -> Initializer:
        built = variance_scaling(scale, mode, distribution, input_axes, output_axes)
        axes = "" if input_axes is None else f"(input_axes={tuple(input_axes)!r}, output_axes={tuple(output_axes)!r})"
        return Initializer(name + axes, built.sample, built.law)

    builder.__doc__ = summary
    builder.__name__ = name
    initializers.add(name, builder)


_specialise("glorot_uniform", 1.0, "fan_avg", "uniform", "U(+-sqrt(6/(fan_in+fan_out))) (Keras ``GlorotUniform``, Dense default).")
_specialise("glorot_normal", 1.0, "fan_avg", "truncated_normal", "Truncated normal, variance 2/(fan_in+fan_out) (Keras ``GlorotNormal``).")
_specialise("he_uniform", 2.0, "fan_in", "uniform", "U(+-sqrt(6/fan_in)) (Keras ``HeUniform``).")
_specialise("he_normal", 2.0, "fan_in", "truncated_normal", "Truncated normal, variance 2/fan_in (Keras ``HeNormal``).")
_specialise("lecun_uniform", 1.0, "fan_in", "uniform", "U(+-sqrt(3/fan_in)) (Keras ``LecunUniform``).")
_specialise("lecun_normal", 1.0, "fan_in", "truncated_normal", "Truncated normal, variance 1/fan_in (Keras ``LecunNormal``).")
_specialise(
    "standard_uniform", 1.0 / 3.0, "fan_in", "uniform",
    "U(+-1/sqrt(fan_in)): Glorot & Bengio's 'standard' heuristic (not in Keras).",
)


@initializers.register("orthogonal", aliases=("orthogonal_initializer",))
def orthogonal(gain: float = 1.0) -> Initializer:
    """Orthogonal matrix from the QR of a Gaussian, times gain (Keras ``Orthogonal``)."""

    def sample(key, shape, dtype):
        rows = math.prod(shape[:-1])
        columns = shape[-1]
        gaussian = jax.random.normal(key, (max(rows, columns), min(rows, columns)), jnp.float32)
        q, r = jnp.linalg.qr(gaussian)
        q = q * jnp.sign(jnp.diag(r))  # makes the distribution uniform (Haar), as Keras does
        if rows < columns:
            q = q.T
        return (gain * q.reshape(shape)).astype(dtype)

    def law(shape):
        check(len(shape) >= 2, f"orthogonal: needs a shape of at least 2 dimensions, got {tuple(shape)}")
        return Law("orthogonal", 0.0, abs(gain) / math.sqrt(max(math.prod(shape[:-1]), shape[-1])), -abs(gain), abs(gain))

    def checked_sample(key, shape, dtype):
        law(shape)
        return sample(key, shape, dtype)

    return Initializer("orthogonal" if gain == 1.0 else f"orthogonal(gain={gain!r})", checked_sample, law)


@initializers.register("identity", aliases=("identity_initializer",))
def identity(gain: float = 1.0) -> Initializer:
    """Identity matrix (ones on the diagonal of a 2-D shape) times gain (Keras ``Identity``)."""

    def law(shape):
        check(len(shape) == 2, f"identity: needs a 2-dimensional shape, got {tuple(shape)}")
        entries = shape[0] * shape[1]
        diagonal = min(shape)
        mean = gain * diagonal / entries
        return Law("identity", mean, math.sqrt(max(gain**2 * diagonal / entries - mean**2, 0.0)), min(0.0, gain), max(0.0, gain))

    def sample(key, shape, dtype):
        law(shape)
        return gain * jnp.eye(shape[0], shape[1], dtype=dtype)

    return Initializer("identity" if gain == 1.0 else f"identity(gain={gain!r})", sample, law)
