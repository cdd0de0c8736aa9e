"""Signal propagation through a deep MLP at initialization (Glorot & Bengio 2010, figs. 6-7).

:func:`propagate` builds, per initializer, ``depth`` hidden Dense layers of ``width`` units topped
by a fixed readout of 10 units (``glorot_uniform``; linear for MSE, softmax for cross-entropy)
scored against random one-hot targets: the readout gives the hidden stack a backward signal, as
the classifier does in Glorot & Bengio, and is the same for every initializer compared. Layer by
layer (1 = next to the input) it reports forward statistics (pre-activation variance, the
mean-field ``q^l``; activation mean, std, saturated fraction) and backward ones (variance of the
per-example ``dL/dz``, the mean-field ``q~^l``; of the batch-mean ``dL/dW``), with histograms.
:func:`jacobian_singular_values` measures dynamical isometry (Saxe et al. 2014).

Example:
    >>> result = propagate(["glorot_uniform", "he_normal"], activation="relu")
    >>> signal_figures.PropagationDisplay.from_result(result).plot()
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab import data as data_module
from initlab import initializers as initializers_module
from initlab._lazy import jax, jnp
from initlab.checks import MAX_BATCH, MAX_BINS, MAX_DEPTH, MAX_DRAWS, MAX_UNITS, positive_int, require_memory, seed_int
from initlab.errors import InitlabError
from initlab.mean_field.theory import jsonable, variance_map
from initlab.measure import histograms
from initlab.nn import activations, losses
from initlab.nn.models import MLP, DenseLayer, layer_name
from initlab.runtime import LIGHTLY_OPTIMIZED


@dataclass
class PropagationRun:
    """One initializer's layer-by-layer statistics; every list has one entry per hidden layer.

    ``sigma_w2`` is the kernel variance times fan-in (mean-field ``sigma_w^2``), ``sigma_b2``
    the bias variance. Histograms are ``{"edges": bins + 1 values, "counts": depth lists}``; the
    bins are shared by all layers and values beyond them are counted in the end bins.

    Conventions (the same as ``train --probe``'s): ``gradient_variance`` and
    ``gradient_histogram`` are of the per-example gradient dl_n/dz_n of each example's own
    loss; ``weight_gradient_variance`` is of dL/dW for the batch-mean loss.
    """

    initializer: str
    sigma_w2: list[float]
    sigma_b2: float
    preactivation_variance: list[float]
    activation_mean: list[float]
    activation_std: list[float]
    saturation_fraction: list[float] | None
    gradient_variance: list[float]
    weight_gradient_variance: list[float]
    activation_histogram: dict[str, list]
    gradient_histogram: dict[str, list]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


LAYER_STATISTICS = ("preactivation_variance", "activation_mean", "activation_std", "saturation_fraction",
                    "gradient_variance", "weight_gradient_variance")


@dataclass
class PropagationResult:
    """The outcome of :func:`propagate`; ``q0`` is the mean squared input entry ``E||x||^2 / n0``."""

    initializers: list[str]
    activation: str
    depth: int
    width: int
    input_dim: int
    inputs: str
    batch: int
    seed: int
    bias_initializer: str
    loss: str
    readout: str
    bins: int
    q0: float
    input_mean: float
    input_variance: float
    runs: list[PropagationRun] = field(repr=False)

    def run(self, initializer: str) -> PropagationRun:
        """The run of ``initializer`` (any spelling of its spec)."""
        spec = initializers_module.build(initializer).spec
        for run in self.runs:
            if run.initializer == spec:
                return run
        raise InitlabError(f"no run for initializer {spec} (runs: {', '.join(self.initializers)})")

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows ``(initializer, layer, statistic, value)``, ready for ``pandas.DataFrame``."""
        return [
            {"initializer": run.initializer, "layer": layer + 1, "statistic": name, "value": jsonable(value)}
            for run in self.runs
            for name in LAYER_STATISTICS
            if getattr(run, name) is not None
            for layer, value in enumerate(getattr(run, name))
        ]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


def _input_dim(inputs: str, input_dim: int | None, default: int) -> int:
    if input_dim is not None:
        return input_dim
    return 784 if data_module.inputs.resolve(inputs)[0].name == "mnist_images" else default


def _hidden_layers(initializer: str, depth: int, width: int, activation: str, bias_initializer: str) -> tuple[DenseLayer, ...]:
    return tuple(DenseLayer(units=width, activation=activation, kernel_initializer=initializer,
                            bias_initializer=bias_initializer) for _ in range(depth))


def propagate(
    initializers: Sequence[str] | str,
    *,
    depth: int = 10,
    width: int = 512,
    activation: str = "tanh",
    inputs: str = "mnist",
    input_dim: int | None = None,
    batch: int = 1000,
    seed: int = 0,
    bias_initializer: str = "zeros",
    bins: int = 50,
    loss: str = "mean_squared_error",
    readout_units: int = 10,
    readout_initializer: str = "glorot_uniform",
    activation_range: tuple[float, float] | None = None,
    gradient_range: tuple[float, float] | None = None,
) -> PropagationResult:
    """Forward and backward statistics of a deep MLP at initialization, one run per initializer.

    Args:
        initializers: kernel initializer spec(s) of the hidden layers.
        inputs: input source spec (``mnist``, ``uniform``, ``normal(std=2.0)``...); its size is
            784 for MNIST, else ``input_dim`` (default ``width``).
        loss: ``mean_squared_error`` (linear readout) or ``categorical_crossentropy`` (softmax).
        activation_range, gradient_range: fixed histogram bins for every initializer; by default
            the activation's output range (bounded ones) or each run's ``[min, max]`` over layers,
            and ``+-max|dL/dz|`` for the gradients.

    The seed draws the inputs and targets (numpy) and one network key (JAX), the same for every
    initializer, so that runs differ only by their initializer. One ``jit`` per initializer.
    """
    specs = [initializers] if isinstance(initializers, str) else list(initializers)
    positive_int("depth", depth, maximum=MAX_DEPTH)
    positive_int("width", width, maximum=MAX_UNITS)
    positive_int("batch", batch, maximum=MAX_BATCH)
    positive_int("bins", bins, maximum=MAX_BINS)
    positive_int("readout_units", readout_units, maximum=MAX_UNITS)
    seed_int("seed", seed)
    if not specs:
        raise InitlabError("give at least one initializer")
    act = activations.build(activation)
    loss_spec = losses.losses.canonical(loss)
    loss_fn = losses.build(loss)
    readout_activation = "softmax" if loss_spec == "categorical_crossentropy" else "linear"
    readout = DenseLayer(units=readout_units, activation=readout_activation, kernel_initializer=readout_initializer)
    n0 = _input_dim(inputs, input_dim, width)
    positive_int("input_dim", n0, maximum=MAX_UNITS)
    # Parameters and their gradients, and eight (depth, batch, width) stacks of float32.
    parameters = n0 * width + (depth - 1) * width * width + width * readout_units
    require_memory(4 * (3 * parameters + 8 * depth * batch * width + batch * n0), f"propagating {depth} x {width} on {batch} inputs")
    networks = {}
    for spec in specs:
        kernel_init = initializers_module.build(spec)
        if kernel_init.data_dependent:
            raise InitlabError(f"{kernel_init.spec} needs training data: propagate measures plain initializers only")
        if kernel_init.spec in networks:
            raise InitlabError(f"initializer {kernel_init.spec} given twice")
        layers = _hidden_layers(spec, depth, width, activation, bias_initializer)
        networks[kernel_init.spec] = (kernel_init, MLP(input_dim=n0, layers=layers + (readout,)))

    rng = np.random.default_rng(seed)
    x = data_module.inputs.build(inputs)(rng, batch, n0)
    targets = np.eye(readout_units, dtype=np.float32)[rng.integers(0, readout_units, batch)]
    key = jax.random.key(seed)
    thresholds = act.saturation_thresholds()

    def measure(mlp: MLP, params: Any, x: Any, targets: Any) -> dict[str, Any]:
        def total_loss(params, perturbations):
            # The model's taps: every layer's pre-activation and activation, and a zero added to each
            # pre-activation whose gradient is dL/dz.
            output, layers = mlp.apply_with_intermediates(params, x, perturbations)
            hidden = layers[:depth]
            return jnp.sum(loss_fn(targets, output)), (
                jnp.stack([layer.preactivation for layer in hidden]), jnp.stack([layer.activation for layer in hidden])
            )

        # Per-example dL/dz (gradient of the summed loss); dL/dW of the batch-mean loss, as trained.
        (weight_grads, perturbation_grads), (zs, hs) = jax.grad(total_loss, argnums=(0, 1), has_aux=True)(
            params, mlp.zero_perturbations(params, batch))  # every stack is (depth, batch, width)
        deltas = jnp.stack([perturbation_grads[layer_name(i)]["preactivation"] for i in range(depth)])
        weight_grads = [weight_grads[layer_name(i)] for i in range(depth)]
        stats = {
            "preactivation_variance": jnp.var(zs, axis=(1, 2)),
            "activation_mean": jnp.mean(hs, axis=(1, 2)),
            "activation_std": jnp.std(hs, axis=(1, 2)),
            "gradient_variance": jnp.var(deltas, axis=(1, 2)),
            "weight_gradient_variance": jnp.stack([jnp.var(g["kernel"] / batch) for g in weight_grads]),
        }
        if thresholds is not None:
            stats["saturation_fraction"] = jnp.mean((hs < thresholds[0]) | (hs > thresholds[1]), axis=(1, 2))
        default_range = act.output_range if act.bounded else (hs.min(), hs.max())
        stats["activation_histogram"] = histograms.on_range(hs, *(activation_range or default_range), bins)
        bound = jnp.abs(deltas).max()
        stats["gradient_histogram"] = histograms.on_range(deltas, *(gradient_range or (-bound, bound)), bins)
        return stats

    runs = []
    for spec, (kernel_init, mlp) in networks.items():
        # Initialized outside the jit: XLA compiles random-number kernels slowly, eager ones are cached.
        measured = jax.jit(functools.partial(measure, mlp))(mlp.init(key), jnp.asarray(x), jnp.asarray(targets))
        measured = jax.tree_util.tree_map(lambda v: np.asarray(v).tolist(), measured)
        runs.append(PropagationRun(
            initializer=spec,
            sigma_w2=[kernel_init.law(shape).variance * shape[0] for shape in mlp.shapes[:depth]],
            sigma_b2=initializers_module.build(bias_initializer).law((width,)).variance,
            saturation_fraction=measured.pop("saturation_fraction", None),
            **measured,
        ))
    x64 = x.astype(np.float64)
    return PropagationResult(
        initializers=list(networks), activation=act.spec, depth=depth, width=width, input_dim=n0,
        inputs=data_module.inputs.canonical(inputs), batch=batch, seed=seed,
        bias_initializer=initializers_module.build(bias_initializer).spec, loss=loss_spec,
        readout=f"Dense({readout_units}, {readout_activation}, {initializers_module.build(readout_initializer).spec})",
        bins=bins, q0=float(np.mean(x64**2)), input_mean=float(x64.mean()), input_variance=float(x64.var()), runs=runs,
    )


MAX_ISOMETRY_WIDTH = 8192
MAX_ISOMETRY_SAMPLES = 10_000
ISOMETRY_METHOD = "float64"
"""How :func:`jacobian_singular_values` computes: the network in float32 (as trained), the
Jacobian's chain of layer factors multiplied in float64 and its SVD in float64 (LAPACK)."""
FLOAT64_RESOLUTION = 1e-13
"""Singular values below this fraction of the largest are beyond what a float64 product resolves."""


@dataclass
class IsometryResult:
    """Singular values of the input-output Jacobian of the hidden stack, ``(samples, min(width, input_dim))``.

    ``precision`` says how they were computed (:data:`ISOMETRY_METHOD`); values below
    ``resolution`` (a fraction :data:`FLOAT64_RESOLUTION` of the largest) are rounding noise.
    """

    initializer: str
    activation: str
    depth: int
    width: int
    input_dim: int
    inputs: str
    seed: int
    samples: int
    singular_values: np.ndarray = field(repr=False)

    @property
    def spread(self) -> float:
        """Largest minus smallest singular value: 0 for perfect dynamical isometry."""
        return float(self.singular_values.max() - self.singular_values.min())

    @property
    def mean_squared(self) -> float:
        """Mean squared singular value, ``tr(J J^T) / n``: the mean-field ``chi^depth``."""
        return float(np.mean(self.singular_values.astype(np.float64) ** 2))

    @property
    def precision(self) -> str:
        return ISOMETRY_METHOD

    @property
    def resolution(self) -> float:
        """The smallest singular value distinguishable from rounding noise."""
        return float(self.singular_values.max()) * FLOAT64_RESOLUTION

    def to_dict(self) -> dict[str, Any]:
        return jsonable({**self.__dict__, "spread": self.spread, "mean_squared": self.mean_squared,
                         "precision": self.precision, "resolution": self.resolution})


def jacobian_singular_values(
    initializer: str,
    *,
    depth: int = 10,
    width: int = 256,
    activation: str = "linear",
    inputs: str = "normal",
    input_dim: int | None = None,
    bias_initializer: str = "zeros",
    seed: int = 0,
    samples: int = 1,
) -> IsometryResult:
    """Singular values of ``d h^depth / d x`` at ``samples`` (fresh network, input vector) pairs.

    ``input_dim`` defaults to ``width`` (784 for MNIST), so every factor of the chain is square.
    A linear stack of orthogonal kernels is an isometry (all values ``gain^depth``); Gaussian
    kernels of variance ``1/n`` spread them over orders of magnitude (Saxe et al. 2014).
    """
    positive_int("depth", depth, maximum=MAX_DEPTH)
    positive_int("width", width, maximum=MAX_ISOMETRY_WIDTH)
    positive_int("samples", samples, maximum=MAX_ISOMETRY_SAMPLES)
    seed_int("seed", seed)
    n0 = _input_dim(inputs, input_dim, width)
    positive_int("input_dim", n0, maximum=MAX_ISOMETRY_WIDTH)
    require_memory(8 * (3 * n0 * n0 + depth * width * width), f"the Jacobian of {depth} x {width} in float64")
    mlp = MLP(input_dim=n0, layers=_hidden_layers(initializer, depth, width, activation, bias_initializer))
    act = activations.build(activation)
    x = data_module.inputs.build(inputs)(np.random.default_rng(seed), samples, n0)
    slope = jax.jit(jax.vmap(jax.grad(lambda t: act(t))))

    values = []
    for key, vector in zip(jax.random.split(jax.random.key(seed), samples), x):
        params = mlp.init(key)
        _, layers = mlp.apply_with_intermediates(params, jnp.asarray(vector)[None])
        # The chain J = D_L W_L^T ... D_1 W_1^T multiplied in float64: a float32 product resolves
        # singular values only down to ~1e-7 of the largest, and deep products go far below.
        jacobian = np.eye(n0)
        for index, layer in enumerate(layers):
            kernel = np.asarray(params[layer_name(index)]["kernel"], np.float64)
            derivative = np.asarray(slope(layer.preactivation[0]), np.float64)
            jacobian = (derivative[:, None] * kernel.T) @ jacobian
        values.append(np.linalg.svd(jacobian, compute_uv=False))
    return IsometryResult(
        initializer=initializers_module.build(initializer).spec, activation=act.spec, depth=depth,
        width=width, input_dim=n0, inputs=data_module.inputs.canonical(inputs), seed=seed, samples=samples,
        singular_values=np.stack(values),
    )


def predicted_preactivation_variance(result: PropagationResult) -> dict[str, list[float]]:
    """Mean-field prediction of each hidden layer's pre-activation variance, per initializer.

    Layer 1 gets ``sigma_w2 * q0 + sigma_b2`` from the measured inputs; each next layer the
    variance map ``q' = sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2`` (:mod:`initlab.mean_field.theory`).
    """
    predictions = {}
    for run in result.runs:
        q = [run.sigma_w2[0] * result.q0 + run.sigma_b2]
        for sigma_w2 in run.sigma_w2[1:]:
            q.append(float(variance_map(q[-1], sigma_w2, run.sigma_b2, result.activation)))
        predictions[run.initializer] = q
    return predictions


DRAW_CHUNK_BYTES = 256 * 2**20


def squared_norms_over_draws(
    initializer: str,
    x: Any,
    widths: Sequence[int],
    *,
    activation: str = "relu",
    draws: int = 1000,
    seed: int = 0,
    bias_initializer: str = "zeros",
) -> np.ndarray:
    """``||a^l(x)||^2`` at every hidden layer of ``draws`` independently drawn networks, one input.

    The networks are Dense layers of ``widths`` (``activation``, kernels from ``initializer``,
    biases from ``bias_initializer``) on the input vector ``x``; draw ``i`` is initialized from
    ``jax.random.fold_in(key(seed), i)``, so any draw can be recomputed alone and more draws
    extend the same sample. Draws are vmapped in chunks of at most 256 MiB of parameters (one
    compiled program), so memory stays bounded at any ``draws``.

    Returns:
        float64 array ``(draws, len(widths))`` (the squares summed in float32 per draw).

    Raises:
        InitlabError: a data-dependent initializer, sizes out of bounds.

    Example (Hanin & Rolnick 2018: He-initialized ReLU nets keep E||a^L||^2 and spread its log):
        >>> norms = squared_norms_over_draws("he_normal", np.ones(64), [64] * 10, draws=4096)
        >>> np.log(norms[:, -1]).var()   # about 5 * sum(1/n_l) = 0.78
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 1 or not x.size:
        raise InitlabError(f"x must be one input vector, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InitlabError("x has NaN or infinite entries")
    widths = list(widths)
    for width in widths:
        positive_int("width", width, maximum=MAX_UNITS)
    if not widths:
        raise InitlabError("give at least one hidden layer width")
    if len(widths) > MAX_DEPTH:
        raise InitlabError(f"at most {MAX_DEPTH} layers, got {len(widths)}")
    positive_int("draws", draws, maximum=MAX_DRAWS)
    seed_int("seed", seed)
    if initializers_module.build(initializer).data_dependent:
        raise InitlabError(f"{initializer} needs training data: draws measure plain initializers only")
    layers = tuple(
        DenseLayer(units=w, activation=activation, kernel_initializer=initializer, bias_initializer=bias_initializer)
        for w in widths
    )
    mlp = MLP(input_dim=x.size, layers=layers)
    parameters = sum(a * b + b for a, b in zip([x.size, *widths], widths))
    chunk = int(max(1, min(draws, DRAW_CHUNK_BYTES // (4 * parameters))))
    require_memory(4 * chunk * (parameters + sum(widths)), f"{chunk} draws of a {x.size}-{'-'.join(map(str, widths))} network")
    inputs = jnp.asarray(x)[None]

    def one(index):
        params = mlp.init(jax.random.fold_in(jax.random.key(seed), index))
        _, outputs = mlp.apply_with_intermediates(params, inputs)
        return jnp.stack([jnp.sum(jnp.square(layer.activation[0])) for layer in outputs])

    program = jax.jit(jax.vmap(one), compiler_options=LIGHTLY_OPTIMIZED)
    out = np.empty((draws, len(widths)))
    for start in range(0, draws, chunk):
        indices = np.arange(start, start + chunk, dtype=np.uint32)  # the last chunk is padded: one program
        out[start : start + chunk] = np.asarray(program(indices), np.float64)[: draws - start]
    return out
