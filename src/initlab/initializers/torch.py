"""PyTorch's initializers (``torch.nn.init``) with its exact semantics, registered as ``torch.*``.

Layout: PyTorch stores a Linear weight as ``(out, in)`` and computes ``fan_in = size(1)``,
``fan_out = size(0)``; initlab kernels are ``(in, out)`` as in Keras and JAX. Every ``torch.*``
initializer samples initlab shapes, so it computes PyTorch's fans on the transposed layout:
``fan_in = shape[0]``, ``fan_out = shape[1]`` for a Dense kernel, and for a convolution kernel
``(*receptive_field, in, out)`` (PyTorch's ``(out, in, *receptive_field)``) both times the
receptive field. The result has the distribution of ``torch.nn.init.X_(torch.empty(out, in)).T``.

PyTorch refuses tensors of fewer than 2 dimensions for fan-based initializers, ``sparse_`` and
``eye_``; initlab extends the fan-based ones to a vector ``(n,)`` with Keras's fans ``(n, n)``
and ``sparse`` to any shape (see :func:`sparse`), so that every entry initializes a bias too.

Example:
    >>> init = initializers.build("torch.kaiming_uniform(nonlinearity='relu')")
    >>> weights = init(jax.random.key(0), (784, 64))  # U(+-sqrt(6 / 784))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from initlab._lazy import jax, jnp
from initlab.errors import InitlabError, unknown
from initlab.initializers.base import Initializer, Law, Shape, check, compute_fans, initializers
from initlab.initializers.keras import constant as keras_constant
from initlab.initializers.keras import identity as keras_identity
from initlab.initializers.keras import orthogonal as keras_orthogonal
from initlab.specs import format_spec

LINEAR_NONLINEARITIES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
NONLINEARITIES = (*LINEAR_NONLINEARITIES, "sigmoid", "tanh", "relu", "leaky_relu", "selu")
FAN_MODES = ("fan_in", "fan_out")
LEAKY_RELU_DEFAULT_SLOPE = 0.01


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity``, as ``torch.nn.init.calculate_gain``.

    linear, conv*, conv_transpose*, sigmoid: 1; tanh: 5/3; relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + slope^2)) with ``slope = param`` (default 0.01); selu: 3/4.

    Raises:
        InitlabError: an unknown nonlinearity (naming the closest one), or a leaky_relu slope
            that is not a number.
    """
    if nonlinearity in LINEAR_NONLINEARITIES or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = LEAKY_RELU_DEFAULT_SLOPE
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise InitlabError(f"calculate_gain: leaky_relu's negative slope must be a number, got {param!r}")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4  # PyTorch's empirical value (pytorch/pytorch#50664)
    raise unknown("nonlinearity", nonlinearity, NONLINEARITIES)


def torch_fans(shape: Shape) -> tuple[int, int]:
    """PyTorch's ``(fan_in, fan_out)`` for an initlab-layout shape.

    ``(in, out)`` -> ``(in, out)``: PyTorch's ``(out, in)`` weight has ``fan_in = size(1)``, which
    is ``shape[0]`` here. ``(*receptive_field, in, out)`` multiplies both by the receptive field,
    as PyTorch does for ``(out, in, *receptive_field)``. A vector ``(n,)`` (which PyTorch refuses)
    gets Keras's ``(n, n)``. On initlab's layout this is exactly :func:`compute_fans`.
    """
    return compute_fans(shape)



def _uniform(spec: str, low: float, high: float) -> Initializer:
    def sample(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, minval=low, maxval=high)

    return Initializer(spec, sample, lambda shape: Law("uniform", (low + high) / 2, (high - low) / math.sqrt(12), low, high))


def _normal(spec: str, mean: float, std: float) -> Initializer:
    def sample(key, shape, dtype):
        return mean + std * jax.random.normal(key, shape, dtype)

    return Initializer(spec, sample, lambda shape: Law("normal", mean, std))


def _shaped(spec: str, at: Callable[[Shape], Initializer]) -> Initializer:
    """An initializer whose parameters depend on the shape (through its fans)."""
    return Initializer(
        spec,
        lambda key, shape, dtype: at(shape).sample(key, shape, dtype),
        lambda shape: at(shape).law(shape),
    )


def _renamed(spec: str, built: Initializer) -> Initializer:
    return dataclasses.replace(built, spec=spec)


@initializers.register("torch.uniform")
def uniform(a: float = 0.0, b: float = 1.0) -> Initializer:
    """U(a, b), default U(0, 1) (torch ``uniform_``)."""
    check(a <= b, f"torch.uniform: a ({a}) must be <= b ({b})")
    return _uniform(f"torch.uniform(a={a!r}, b={b!r})", a, b)


@initializers.register("torch.normal")
def normal(mean: float = 0.0, std: float = 1.0) -> Initializer:
    """N(mean, std^2), default N(0, 1) (torch ``normal_``)."""
    check(std >= 0, f"torch.normal: std must be >= 0, got {std}")
    return _normal(f"torch.normal(mean={mean!r}, std={std!r})", mean, std)


def _standard_normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def _standard_normal_mass(alpha: float, beta: float) -> float:
    """P(alpha <= Z <= beta) for a standard normal Z, accurate in either tail."""
    if alpha >= 0:
        return 0.5 * (math.erfc(alpha / math.sqrt(2)) - math.erfc(beta / math.sqrt(2)))
    if beta <= 0:
        return 0.5 * (math.erfc(-beta / math.sqrt(2)) - math.erfc(-alpha / math.sqrt(2)))
    return 0.5 * (math.erf(beta / math.sqrt(2)) - math.erf(alpha / math.sqrt(2)))


def truncated_normal_moments(mean: float, std: float, a: float, b: float) -> tuple[float, float]:
    """Mean and standard deviation of N(mean, std^2) conditioned on [a, b] (absolute bounds).

    With ``alpha = (a - mean) / std``, ``beta = (b - mean) / std``, ``Z = Phi(beta) - Phi(alpha)``:
    mean + std * (phi(alpha) - phi(beta)) / Z and
    std * sqrt(1 + (alpha phi(alpha) - beta phi(beta)) / Z - ((phi(alpha) - phi(beta)) / Z)^2).
    """
    alpha, beta = (a - mean) / std, (b - mean) / std
    mass = _standard_normal_mass(alpha, beta)
    check(mass > 0, f"torch.trunc_normal: [a, b] = [{a}, {b}] holds no mass of N({mean}, {std}^2)")
    phi_alpha, phi_beta = _standard_normal_pdf(alpha), _standard_normal_pdf(beta)
    shift = (phi_alpha - phi_beta) / mass
    alpha_term = alpha * phi_alpha if math.isfinite(alpha) else 0.0
    beta_term = beta * phi_beta if math.isfinite(beta) else 0.0
    variance = 1 + (alpha_term - beta_term) / mass - shift**2
    return mean + std * shift, std * math.sqrt(max(variance, 0.0))


@initializers.register("torch.trunc_normal")
def trunc_normal(mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Initializer:
    """N(mean, std^2) kept within the absolute bounds a..b, not std units (torch ``trunc_normal_``; no rescaling)."""
    check(std > 0, f"torch.trunc_normal: std must be > 0, got {std}")
    check(a < b, f"torch.trunc_normal: a ({a}) must be < b ({b})")
    law = Law("truncated_normal", *truncated_normal_moments(mean, std, a, b), a, b)
    alpha, beta = (a - mean) / std, (b - mean) / std

    def sample(key, shape, dtype):
        standard = jax.random.truncated_normal(key, alpha, beta, shape, dtype)
        return jnp.clip(mean + std * standard, a, b)  # rounding must not leave [a, b]

    return Initializer(f"torch.trunc_normal(mean={mean!r}, std={std!r}, a={a!r}, b={b!r})", sample, lambda shape: law)


@initializers.register("torch.xavier_uniform")
def xavier_uniform(gain: float = 1.0) -> Initializer:
    """U(+-gain*sqrt(6/(fan_in+fan_out))), fan_in = shape[0] of an (in, out) kernel (torch ``xavier_uniform_``)."""
    spec = f"torch.xavier_uniform(gain={gain!r})"

    def at(shape: Shape) -> Initializer:
        fan_in, fan_out = torch_fans(shape)
        bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
        return _uniform(spec, -abs(bound), abs(bound))

    return _shaped(spec, at)


@initializers.register("torch.xavier_normal")
def xavier_normal(gain: float = 1.0) -> Initializer:
    """N(0, gain^2*2/(fan_in+fan_out)), not truncated, fan_in = shape[0] (torch ``xavier_normal_``)."""
    spec = f"torch.xavier_normal(gain={gain!r})"
    return _shaped(spec, lambda shape: _normal(spec, 0.0, abs(gain) * math.sqrt(2.0 / sum(torch_fans(shape)))))


def _kaiming_std(name: str, a: float, mode: str, nonlinearity: str) -> Callable[[Shape], float]:
    """``shape -> gain(nonlinearity, a) / sqrt(fan)``, checking mode and nonlinearity now."""
    mode = mode.lower()  # as PyTorch does
    if mode not in FAN_MODES:
        raise unknown(f"{name} mode", mode, FAN_MODES)
    gain = calculate_gain(nonlinearity, a)

    def std(shape: Shape) -> float:
        fan_in, fan_out = torch_fans(shape)
        return gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)

    return std


@initializers.register("torch.kaiming_uniform")
def kaiming_uniform(a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Initializer:
    """U(+-sqrt(3)*gain/sqrt(fan)), gain = calculate_gain(nonlinearity, a), fan_in = shape[0] (torch kaiming_uniform_)."""
    std = _kaiming_std("torch.kaiming_uniform", a, mode, nonlinearity)
    spec = f"torch.kaiming_uniform(a={a!r}, mode={mode!r}, nonlinearity={nonlinearity!r})"
    return _shaped(spec, lambda shape: _uniform(spec, -math.sqrt(3.0) * std(shape), math.sqrt(3.0) * std(shape)))


@initializers.register("torch.kaiming_normal")
def kaiming_normal(a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Initializer:
    """N(0, (gain/sqrt(fan))^2), gain = calculate_gain(nonlinearity, a), fan_in = shape[0] (torch kaiming_normal_)."""
    std = _kaiming_std("torch.kaiming_normal", a, mode, nonlinearity)
    spec = f"torch.kaiming_normal(a={a!r}, mode={mode!r}, nonlinearity={nonlinearity!r})"
    return _shaped(spec, lambda shape: _normal(spec, 0.0, std(shape)))


@initializers.register("torch.orthogonal")
def orthogonal(gain: float = 1.0) -> Initializer:
    """Haar-orthogonal matrix times gain (torch ``orthogonal_``; its transpose has Keras's law)."""
    # PyTorch orthonormalises the (out, in*k) matrix's shorter side; transposed to (in*k, out)
    # that is the same Haar-distributed matrix as Keras's, whose sampler is reused.
    return _renamed(f"torch.orthogonal(gain={gain!r})", keras_orthogonal(gain))


def _sparse_view(shape: Shape) -> tuple[int, int]:
    """``(groups, width)``: each group of ``width`` entries gets its own zeros (see :func:`sparse`)."""
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


@initializers.register("torch.sparse")
def sparse(sparsity: float = 0.1, std: float = 0.01) -> Initializer:
    """N(0, std^2) with ceil(sparsity*out) zeros among each input's out weights (torch ``sparse_``)."""
    check(0.0 <= sparsity <= 1.0, f"torch.sparse: sparsity must be in [0, 1], got {sparsity}")
    check(std >= 0, f"torch.sparse: std must be >= 0, got {std}")
    # PyTorch zeroes ceil(sparsity * rows) entries of each column of its (out, in) weight: on
    # initlab's (in, out) kernel, ceil(sparsity * out) entries of each row. A vector (n,) is
    # one row, and a larger shape (..., out) is viewed as rows of length out (PyTorch refuses both).

    def zeros_per_row(shape: Shape) -> int:
        return min(math.ceil(sparsity * _sparse_view(shape)[1]), _sparse_view(shape)[1])

    def sample(key, shape, dtype):
        rows, width = _sparse_view(shape)
        value_key, mask_key = jax.random.split(key)
        values = std * jax.random.normal(value_key, (rows, width), dtype)
        # The rank of each entry in a random permutation of its row: exactly k ranks are < k.
        ranks = jnp.argsort(jnp.argsort(jax.random.uniform(mask_key, (rows, width)), axis=1), axis=1)
        return jnp.where(ranks < zeros_per_row(shape), jnp.zeros((), dtype), values).reshape(shape)

    def law(shape: Shape) -> Law:
        kept = 1.0 - zeros_per_row(shape) / _sparse_view(shape)[1]
        return Law("sparse_normal", 0.0, std * math.sqrt(kept))

    return Initializer(f"torch.sparse(sparsity={sparsity!r}, std={std!r})", sample, law)


@initializers.register("torch.zeros")
def zeros() -> Initializer:
    """All zeros (torch ``zeros_``)."""
    return _renamed("torch.zeros", keras_constant(0.0))


@initializers.register("torch.ones")
def ones() -> Initializer:
    """All ones (torch ``ones_``)."""
    return _renamed("torch.ones", keras_constant(1.0))


@initializers.register("torch.constant")
def constant(val: float = 0.0) -> Initializer:
    """Every entry equal to val (torch ``constant_``, whose val has no default; 0 here)."""
    return _renamed(f"torch.constant(val={val!r})", keras_constant(val))


@initializers.register("torch.eye")
def eye() -> Initializer:
    """Identity matrix of a 2-D shape (torch ``eye_``; eye(out, in) transposed is eye(in, out))."""
    return _renamed("torch.eye", keras_identity(1.0))


@initializers.register("torch.linear_default")
def linear_default() -> Initializer:
    """U(+-1/sqrt(fan_in)), fan_in = shape[0]: torch ``nn.Linear`` weight, kaiming_uniform_(a=sqrt(5))."""
    return _renamed("torch.linear_default", kaiming_uniform(a=math.sqrt(5.0)))


@initializers.register("torch.conv_default")
def conv_default() -> Initializer:
    """U(+-1/sqrt(fan_in)), fan_in = in * kernel area: torch ``nn.Conv2d`` weight, kaiming_uniform_(a=sqrt(5))."""
    return _renamed("torch.conv_default", kaiming_uniform(a=math.sqrt(5.0)))


@initializers.register("torch.attention_in_default")
def attention_in_default() -> Initializer:
    """U(+-sqrt(6/(4 d))), d = shape[0]: torch ``nn.MultiheadAttention`` query/key/value projections.

    PyTorch draws the packed ``in_proj_weight`` of shape ``(3 d, d)`` with ``xavier_uniform_``, so
    its fans are ``(d, 3 d)`` and the bound ``sqrt(6 / (d + 3 d))``, not that of a ``(d, d)``
    matrix; the biases are zeros and ``out_proj`` keeps ``nn.Linear``'s weight default. Here the
    shape is Flax's ``(d, heads, head_dim)`` (or ``(d, d)``): ``d`` is its first axis.
    """
    spec = "torch.attention_in_default"

    def at(shape: Shape) -> Initializer:
        bound = math.sqrt(6.0 / (4 * shape[0])) if len(shape) else 0.0
        return _uniform(spec, -bound, bound)

    return _shaped(spec, at)


@initializers.register("torch.linear_bias_default")
def linear_bias_default(fan_in: int | None = None) -> Initializer:
    """U(+-1/sqrt(fan_in)) with the layer's fan_in (torch ``nn.Linear`` bias); see bind_fan_in.

    A bias of shape ``(out,)`` cannot know its layer's fan_in, so the layer passes it:
    ``bind_fan_in(spec, fan_in)`` turns ``torch.linear_bias_default`` into
    ``torch.linear_bias_default(fan_in=784)``. Left as ``None``, the fan is
    ``compute_fans(shape)[0]``: right for an ``(in, out)`` kernel, but a vector's own length
    for a bias, which is not PyTorch's default. ``fan_in=0`` gives zeros, as in PyTorch.
    """
    check(fan_in is None or fan_in >= 0, f"torch.linear_bias_default: fan_in must be >= 0, got {fan_in}")
    spec = "torch.linear_bias_default" if fan_in is None else f"torch.linear_bias_default(fan_in={fan_in!r})"

    def at(shape: Shape) -> Initializer:
        fan = compute_fans(shape)[0] if fan_in is None else fan_in
        bound = 1 / math.sqrt(fan) if fan > 0 else 0.0
        return _uniform(spec, -bound, bound)

    return _shaped(spec, at)


def bind_fan_in(spec: str, fan_in: int) -> str:
    """``spec`` with its layer's ``fan_in`` filled in, where its builder takes one left unset.

    Builders such as ``torch.linear_bias_default`` have a ``fan_in: int | None = None``
    parameter because a bias initializer sees only the bias's shape; a model calls this with
    the kernel's fan_in before building the bias initializer. Other specs, and specs that
    already set ``fan_in``, come back unchanged.

    Example:
        >>> bind_fan_in("torch.linear_bias_default", 784)
        'torch.linear_bias_default(fan_in=784)'
        >>> bind_fan_in("zeros", 784)
        'zeros'
    """
    entry, kwargs = initializers.resolve(spec)
    if "fan_in" not in entry.parameters or kwargs["fan_in"] is not None:
        return spec
    changed = {k: v for k, v in kwargs.items() if entry.defaults.get(k) != v}
    return format_spec(entry.name, {**changed, "fan_in": int(fan_in)})
