"""Initializers made for deep networks: delta-orthogonal convolution kernels and ZerO.

- ``delta_orthogonal`` (Xiao et al. 2018, "Dynamical Isometry and a Mean Field Theory of CNNs",
  Algorithm 2): a convolution kernel of zeros except its spatial centre, which holds an
  orthogonal ``(in, out)`` matrix times ``gain``. With ``in <= out`` a layer maps the centre
  pixel of every patch isometrically, so a deep tanh CNN at the edge of chaos keeps its
  input-output Jacobian's singular values near 1 (dynamical isometry). The centre is
  ``(k - 1) // 2`` along each spatial axis, as ``jax.nn.initializers.delta_orthogonal`` and
  TensorFlow's ``ConvolutionDeltaOrthogonal``; a 2-D ``(in, out)`` shape (a 1x1 convolution, a
  Dense layer) is the orthogonal matrix itself.
- ``zero_hadamard`` (Zhao et al. 2022, "ZerO Initialization: Initializing Neural Networks with
  only Zeros and Ones", Algorithm 1 for Dense, Algorithm 2 for convolutions at the centre tap):
  deterministic. With PyTorch's ``(out, in)`` orientation: ``out <= in`` gives the partial
  identity ``I*``; ``out > in`` gives ``I*_(out x p) H_p I*_(p x in) / sqrt(p)`` with ``p`` the
  power of two ``2^ceil(log2 out)`` and ``H_p`` Sylvester's Hadamard matrix. The constant
  ``1/sqrt(p) = 2^(-ceil(log2 out)/2)`` is the one of the authors' code
  (``jiaweizzhao/ZerO-initialization``, ``example_mnist.ipynb``: ``hadamard(p) / 2**(clog_m/2)``),
  which makes ``H_p / sqrt(p)`` orthogonal; the paper's Algorithm 1 prints
  ``c = 2^(-(m-1)/2)``, sqrt(2) larger. initlab stores kernels ``(in, out)``, the transpose.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from initlab._lazy import jax, jnp
from initlab.initializers.base import Initializer, Law, Shape, check, initializers
from initlab.initializers.keras import orthogonal


def _centre(shape: Shape) -> tuple[int, ...]:
    return tuple((size - 1) // 2 for size in shape[:-2])


@initializers.register("delta_orthogonal", aliases=("conv_delta_orthogonal",))
def delta_orthogonal(gain: float = 1.0) -> Initializer:
    """Zeros but the kernel's spatial centre, an orthogonal (in, out) matrix times gain (Xiao et al. 2018, Alg. 2)."""
    centre_matrix = orthogonal(gain)
    spec = "delta_orthogonal" if gain == 1.0 else f"delta_orthogonal(gain={gain!r})"

    def law(shape: Shape) -> Law:
        check(len(shape) >= 2, f"delta_orthogonal: needs a kernel shape (..., in, out), got {tuple(shape)}")
        receptive_field = math.prod(shape[:-2])
        # The centre's squared entries sum to gain^2 min(in, out); spread over every entry of the kernel.
        mean_square = gain**2 * min(shape[-2:]) / (receptive_field * shape[-2] * shape[-1])
        return Law("orthogonal", 0.0, math.sqrt(mean_square), -abs(gain), abs(gain))

    def sample(key, shape, dtype):
        law(shape)
        matrix = centre_matrix(key, shape[-2:], dtype)
        if len(shape) == 2:
            return matrix
        return jnp.zeros(shape, dtype).at[_centre(shape)].set(matrix)

    return Initializer(spec, sample, law)


@functools.lru_cache(maxsize=32)
def _zero_matrix(fan_in: int, fan_out: int) -> np.ndarray:
    """ZerO's ``(in, out)`` matrix (the transpose of the paper's ``(out, in)``), float64."""
    if fan_out <= fan_in:
        return np.eye(fan_in, fan_out)
    from scipy.linalg import hadamard

    power = 2 ** math.ceil(math.log2(fan_out))
    transform = hadamard(power).astype(np.float64) / math.sqrt(power)
    return transform[:fan_out, :fan_in].T


@initializers.register("zero_hadamard")
def zero_hadamard() -> Initializer:
    """Deterministic partial identity, or Hadamard where the layer widens (ZerO, Zhao et al. 2022, Algs. 1-2)."""

    def law(shape: Shape) -> Law:
        check(len(shape) >= 2, f"zero_hadamard: needs a kernel shape (..., in, out), got {tuple(shape)}")
        matrix = _zero_matrix(shape[-2], shape[-1])
        entries = math.prod(shape)
        mean = float(matrix.sum()) / entries
        variance = float((matrix**2).sum()) / entries - mean**2
        bound = float(np.abs(matrix).max())
        return Law("hadamard", mean, math.sqrt(max(variance, 0.0)), min(0.0, -bound if (matrix < 0).any() else 0.0), bound)

    def sample(key, shape, dtype):
        law(shape)
        matrix = jnp.asarray(_zero_matrix(shape[-2], shape[-1]), dtype)
        if len(shape) == 2:
            return matrix
        return jnp.zeros(shape, dtype).at[_centre(shape)].set(matrix)

    return Initializer("zero_hadamard", sample, law)


@initializers.register("xavier_normal_projection")
def xavier_normal_projection(gain: float = 1.0, in_axes: int = 1) -> Initializer:
    """N(0, gain^2 * 2/(fan_in + fan_out)) of the kernel read as a (prod(shape[:in_axes]), rest) matrix.

    PyTorch's ``xavier_normal_`` of a projection ``nn.Linear(d_in, d_out)``, for Flax's multi-head
    kernels: a query kernel ``(d, heads, head_dim)`` is the ``(d, d)`` map it computes
    (``in_axes=1``), an attention output kernel ``(heads, head_dim, d)`` too (``in_axes=2``).
    DeepNorm (Wang et al. 2022) and T-Fixup (Huang et al. 2020) start from it.
    """
    check(isinstance(in_axes, int) and in_axes >= 1, f"xavier_normal_projection: in_axes must be >= 1, got {in_axes!r}")
    spec = "xavier_normal_projection" + (
        "" if (gain, in_axes) == (1.0, 1) else "(" + ", ".join(
            part for part in (f"gain={gain!r}" if gain != 1.0 else "", f"in_axes={in_axes!r}" if in_axes != 1 else "") if part
        ) + ")"
    )

    def std(shape: Shape) -> float:
        check(len(shape) > in_axes, f"{spec}: a kernel of shape {tuple(shape)} has no output axes after {in_axes} input axes")
        return abs(gain) * math.sqrt(2.0 / (math.prod(shape[:in_axes]) + math.prod(shape[in_axes:])))

    def sample(key, shape, dtype):
        return jax.random.normal(key, shape, dtype) * std(shape)

    return Initializer(spec, sample, lambda shape: Law("normal", 0.0, std(shape)))


__all__ = ["delta_orthogonal", "xavier_normal_projection", "zero_hadamard"]
