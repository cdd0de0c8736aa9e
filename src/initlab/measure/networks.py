"""Any of initlab's networks at initialization: per-layer and per-block statistics, and dynamical isometry.

:func:`propagate_network` is ``initlab propagate --model SPEC``: for each kernel initializer it
draws the network (``default``: the network's own initialization and scheme), runs the probe of
:mod:`initlab.measure.probes` once on a batch (forward statistics per Dense/Conv layer, the
per-example gradient of each example's own cross-entropy, the residual stream and attention per
block), and, where asked, the singular values of the input-output Jacobian (Xiao et al. 2018:
a deep tanh CNN with delta-orthogonal kernels stays near isometric where Gaussian kernels spread).

The Jacobian is of the last hidden layer's pre-activation (the layer before the readout) with
respect to one input, computed exactly (``jax.jacfwd``) in float32 on inputs of ``input_shape``
(small images keep its cost low: a 200-layer CNN of 16 channels on 8x8 inputs is ~6 GFLOP).

Example:
    >>> # tanh at the edge of chaos (mean-field: sigma_b^2 = 1e-6, sigma_w^2 = 1.01825, q* = 0.00925)
    >>> result = propagate_network("cnn(depth=200, channels=16, activation='tanh')",
    ...     ["delta_orthogonal(gain=1.00909)", "variance_scaling(scale=1.01825, distribution='untruncated_normal')"],
    ...     bias_initializer="random_normal(stddev=0.001)", inputs="normal", input_std=0.0962,
    ...     input_shape=(8, 8, 16), jacobian=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab import data as data_module
from initlab._lazy import jax, jnp
from initlab.checks import MAX_BATCH, positive_int, require_memory, seed_int
from initlab.errors import InitlabError, unknown
from initlab.nn import losses
from initlab.nn.init_rules import InitRule

INPUT_KINDS = ("data", "normal")
PER_LAYER = ("preactivation_std", "activation_std", "saturation_fraction", "dead_fraction", "backprop_variance",
             "weight_grad_norm")
MAX_JACOBIAN_INPUTS = 8192
"""The largest input (and output) size whose Jacobian is formed and decomposed."""


@dataclass
class NetworkRun:
    """One initializer's statistics: ``layers[statistic]`` per tapped layer, ``blocks[statistic]`` per block."""

    initializer: str
    layers: dict[str, list[float]]
    blocks: dict[str, list[float]] = field(default_factory=dict)
    singular_values: list[float] | None = None


@dataclass
class NetworkPropagation:
    """:func:`propagate_network`'s result: the model, its layers, one :class:`NetworkRun` per initializer."""

    model: str
    input_shape: tuple[int, ...]
    inputs: str
    layer_paths: list[str]
    runs: list[NetworkRun]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "input_shape": list(self.input_shape), "inputs": self.inputs, "seed": self.seed,
            "layer_paths": self.layer_paths,
            "conventions": {
                "backprop_variance": "per-example gradient of each example's own categorical cross-entropy",
                "singular_values": "input-output Jacobian of the last hidden layer's pre-activation, one input, float32",
            },
            "runs": [run.__dict__ for run in self.runs],
        }


def _rules(initializer: str, bias_initializer: str | None = None) -> tuple[InitRule, ...]:
    rules = () if initializer == "default" else tuple(
        InitRule(pattern, initializer, required=False) for pattern in ("conv/kernel", "dense/kernel")
    )
    if bias_initializer is not None:
        rules += tuple(InitRule(pattern, bias_initializer, required=False) for pattern in ("conv/bias", "dense/bias"))
    return rules


def propagate_network(
    spec: str,
    initializers: Sequence[str] = ("default",),
    *,
    dataset: str = "mnist",
    inputs: str = "data",
    input_shape: tuple[int, ...] | None = None,
    batch: int = 256,
    seed: int = 0,
    jacobian: bool = False,
    defaults: str | None = None,
    bias_initializer: str | None = None,
    input_std: float = 1.0,
) -> NetworkPropagation:
    """The network ``spec`` at initialization, once per kernel initializer (see the module docstring).

    Args:
        spec: a model spec (``initlab list models``) other than ``mlp`` (``initlab propagate`` without
            ``--model`` is the MLP's).
        initializers: kernel initializer specs for every Dense and Conv kernel, or ``default``.
        dataset: the data set whose examples (``inputs='data'``), classes and vocabulary are used.
        inputs: ``data`` (the data set's first test examples) or ``normal`` (standard normal inputs
            of ``input_shape``; not for token models).
        input_shape: one example's shape for ``normal`` inputs (default: the data set's).
        batch: examples in the probe batch.
        seed: the networks' and the inputs' seed.
        jacobian: also the input-output Jacobian's singular values.
        defaults: a framework preset (``keras``, ``torch``, ``flax``) applied before the initializer.
        bias_initializer: every Dense and Conv bias's initializer (default: the network's own).
        input_std: the standard deviation of ``normal`` inputs (mean-field's ``sqrt(q0)``: start
            at the fixed point ``q*`` to see a critical network's Jacobian, not its transient).
    """
    from initlab.measure.probes import make_probe
    from initlab.nn.init_rules import preset
    from initlab.nn.model_specs import build_architecture, models

    if inputs not in INPUT_KINDS:
        raise unknown("inputs", inputs, INPUT_KINDS)
    positive_int("batch", batch, maximum=MAX_BATCH)
    seed_int("seed", seed)
    if not initializers:
        raise InitlabError("give at least one initializer (or 'default')")
    data = data_module.load(dataset)
    canonical = models.build(spec).spec
    shape = tuple(input_shape) if input_shape is not None else data.input_shape
    if inputs == "normal" and data.vocabulary is not None:
        raise InitlabError(f"{dataset} holds token ids: propagate a token model with inputs='data'")
    model = build_architecture(canonical, shape, data.classes, vocabulary=data.vocabulary, framework=defaults)
    example = int(np.prod(model.input_shape))
    if inputs == "data":
        if input_shape is not None and tuple(input_shape) != data.input_shape:
            raise InitlabError(f"input_shape {input_shape} differs from {dataset}'s examples {data.input_shape}; use inputs='normal'")
        x = data.x_test[:batch].astype(np.float32) / np.float32(data.scale)
        y = data.y_test[:batch]
    else:
        rng = np.random.default_rng(seed)
        if not (isinstance(input_std, (int, float)) and 0 < input_std < 1e6):
            raise InitlabError(f"input_std must be a positive number, got {input_std!r}")
        x = (input_std * rng.standard_normal((batch, example))).astype(np.float32)
        y = np.eye(data.classes, dtype=np.float32)[rng.integers(0, data.classes, batch)]
    require_memory(4 * 64 * batch * example, f"propagating {batch} inputs through {canonical}")
    paths = model.layer_paths()
    if jacobian:  # an impossible Jacobian fails before any work
        _jacobian_sizes(model, paths)
    probe = jax.jit(make_probe(model, losses.build("categorical_crossentropy")))
    base = preset(defaults) if defaults else ()
    runs = []
    for initializer in initializers:
        params, _ = model.initialize(jax.random.key(seed), (*base, *_rules(initializer, bias_initializer)))
        stats = jax.tree.map(np.asarray, probe(params, jnp.asarray(x), jnp.asarray(y)))
        layers = {name: [float(v) for v in stats[name]] for name in PER_LAYER}
        from initlab.measure.probes import BLOCK_STATISTICS

        blocks = {name: [float(v) for v in np.ravel(stats[name])] for name in BLOCK_STATISTICS if name in stats}
        values = _singular_values(model, params, x[0], paths) if jacobian else None
        runs.append(NetworkRun(initializer, layers, blocks, values))
    return NetworkPropagation(canonical, tuple(model.input_shape), inputs, paths, runs, seed)


def _jacobian_sizes(model: Any, paths: list[str]) -> None:
    """The Jacobian's input and output sizes are within :data:`MAX_JACOBIAN_INPUTS` (from shapes only)."""
    if len(paths) < 2:
        raise InitlabError(f"{model.name} has no hidden layer before its readout to take a Jacobian of")
    size = int(np.prod(model.input_shape))
    params = jax.eval_shape(model.init, jax.random.key(0))
    example = jax.ShapeDtypeStruct((size,), jnp.float32)
    out_size = int(np.prod(jax.eval_shape(lambda p, v: model.tapped(p, v[None])[1][paths[-2]][1], params, example).shape))
    for what, count in (("input", size), ("output", out_size)):
        if count > MAX_JACOBIAN_INPUTS:
            raise InitlabError(
                f"the Jacobian's {what} has {count} entries (at most {MAX_JACOBIAN_INPUTS}): use smaller inputs "
                "(inputs='normal' with a smaller input_shape)"
            )


def _singular_values(model: Any, params: Any, example: np.ndarray, paths: list[str]) -> list[float]:
    """Singular values (descending) of d z / d x: z the last hidden layer's pre-activation, x one input."""
    hidden = paths[-2]

    def features(v: Any) -> Any:
        return model.tapped(params, v[None])[1][hidden][1].reshape(-1)

    jacobian = np.asarray(jax.jit(jax.jacfwd(features))(jnp.asarray(example)), np.float64)
    return [float(s) for s in np.linalg.svd(jacobian, compute_uv=False)]


def singular_value_summary(values: Sequence[float]) -> dict[str, float]:
    """Quantiles of singular values and the standard deviation of their log10 (0: an isometry up to scale)."""
    s = np.asarray(values, np.float64)
    positive = s[s > 0]
    return {
        "max": float(s.max()), "median": float(np.median(s)), "min": float(s.min()),
        "log10_spread": float(np.std(np.log10(positive))) if positive.size else float("nan"),
        "max_over_min": float(s.max() / s.min()) if s.min() > 0 else float("inf"),
    }


__all__ = ["INPUT_KINDS", "NetworkPropagation", "NetworkRun", "propagate_network", "singular_value_summary"]
