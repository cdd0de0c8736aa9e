"""Per-layer probes: what every layer of an MLP does on a fixed probe batch.

A probe costs one forward pass (with intermediates) and one backward pass on the probe batch,
and returns, for every layer, statistics stacked as vectors of shape ``(layers,)`` and
histograms of shape ``(layers, bins)`` on fixed bins, so that probes of different epochs,
runs and models compare bin for bin. It is pure: ``jax.jit`` and ``jax.vmap`` (over stacked
parameters of an ensemble) apply as they are.

Conventions:
    - Means, standard deviations and variances pool every (sample, unit) entry of a layer
      (population statistics, ``ddof=0``).
    - ``backprop_variance`` and the ``backprop`` histogram are of the *per-example* gradient
      dl_n/dz_n: ``z_n`` the layer's pre-activation for example n and ``l_n`` that example's own
      loss (independent of the batch size; ``initlab propagate`` reports the same quantity).
      The weight gradients (``weight_grad_*``) are of the batch-mean loss, the trainer's
      objective.
    - Not-applicable statistics are NaN: saturation for unbounded activations and for the
      softmax output (its probabilities are below 0.1 by design); the mean derivative for
      softmax (not elementwise); ``dead_fraction`` outside the ReLU family; ``update_ratio``
      without ``previous_params``.
    - Histograms: counts of values in ``[edges[i], edges[i+1])``; values below the first edge
      count in the first bin, values above the last in the last bin, NaNs are not counted.

Example (how the training loops call it):
    >>> probe = jax.jit(make_probe(mlp, losses.build("cce"), ProbeConfig()))
    >>> x_probe, y_probe = probe_batch(dataset)              # once per run
    >>> stats = probe(params, x_probe, y_probe)              # epoch 0, before training
    >>> stats = probe(new_params, x_probe, y_probe, params)  # after each epoch
    >>> rows = tidy_rows(stats, epoch)  # (epoch, layer, statistic, value)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from initlab._lazy import jax, jnp
from initlab.checks import positive_int
from initlab.errors import InitlabError
from initlab.measure.histograms import histogram
from initlab.nn.architecture import Architecture
from initlab.nn.flax_model import FlaxModel, flat_params

STATISTICS = (
    "preactivation_mean",
    "preactivation_std",
    "activation_mean",
    "activation_std",
    "saturation_low_fraction",
    "saturation_high_fraction",
    "saturation_fraction",
    "activation_derivative_mean",
    "dead_fraction",
    "zero_fraction",
    "backprop_variance",
    "weight_grad_variance",
    "weight_grad_norm",
    "update_ratio",
)
"""Names of the per-layer statistics, each a vector of shape ``(layers,)`` in a probe's output."""

BLOCK_STATISTICS = {
    "residual_stream_rms": "block",
    "residual_branch_rms": "branch",
    "residual_skip_rms": "branch",
    "branch_to_skip_ratio": "branch",
    "attention_entropy": "block",
    "attention_logit_std": "block",
}
"""Statistics per residual block or branch, for initlab's residual networks and Transformers
(absent for other models), with the unit their rows are labelled by (``block_1``, ``branch_1``...):

- ``residual_stream_rms``: root-mean-square of the stream after each block;
- ``residual_branch_rms``, ``residual_skip_rms``: of each residual branch's output and of the
  stream it is added to; ``branch_to_skip_ratio`` their ratio (0 at initialization under
  Fixup, SkipInit and ReZero; about 1 with normalized branches);
- ``attention_entropy``: mean entropy (nats) of each attention layer's probabilities over the
  keys a query sees (``log(keys)`` is uniform attention);
- ``attention_logit_std``: the mean standard deviation of a query's attention logits over the
  keys it sees (the spread of ``q.k / sqrt(d_head)``; from the log-probabilities, which differ
  from the logits by a constant per query).

They are measured in training mode (BatchNorm on the batch's statistics) on the probe batch.
"""

HISTOGRAMS = ("activation", "preactivation", "backprop")
"""Histogram kinds: ``{kind}_hist`` (counts) and ``{kind}_hist_edges`` in a probe's output."""

Probe = Callable[..., dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """What the probes measure and on which bins.

    Attributes:
        eps: saturation margin: sigmoid outputs below ``eps`` or above ``1 - eps``, tanh and
            softsign outputs with ``|a| > 1 - eps`` count as saturated.
        bins: number of bins of every histogram.
        activation_range: histogram range for the *unbounded* ends of an activation's output;
            a bounded end uses the bound itself (sigmoid [0, 1], tanh [-1, 1], relu [0, 5],
            elu [-1, 5], linear/swish/gelu [-5, 5]).
        preactivation_range: histogram range of pre-activations.
        backprop_threshold: the back-propagated gradients' histogram is uniform in
            ``sign(g) * log10(1 + |g| / backprop_threshold)``: logarithmic for
            ``|g| >> threshold``, linear below, symmetric around 0.
        backprop_max: largest ``|g|`` with its own bin (edges span ``[-max, max]``).
    """

    eps: float = 0.1
    bins: int = 50
    activation_range: tuple[float, float] = (-5.0, 5.0)
    preactivation_range: tuple[float, float] = (-10.0, 10.0)
    backprop_threshold: float = 1e-9
    backprop_max: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.eps < 0.5:
            raise InitlabError(f"probe eps must lie in (0, 0.5), got {self.eps!r}")
        if not isinstance(self.bins, int) or isinstance(self.bins, bool) or self.bins < 2:
            raise InitlabError(f"probe bins must be an integer >= 2, got {self.bins!r}")
        for name in ("activation_range", "preactivation_range"):
            low, high = getattr(self, name)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise InitlabError(f"probe {name} must be finite (low, high) with low < high, got {(low, high)!r}")
        if not 0.0 < self.backprop_threshold < self.backprop_max:
            raise InitlabError("probe backprop_threshold must be positive and below backprop_max")


def histogram_edges(model: FlaxModel, config: ProbeConfig) -> dict[str, np.ndarray]:
    """The fixed bin edges of each histogram kind, shape ``(layers, bins + 1)``, float32."""
    functions = model.activation_functions
    layers = len(functions)
    activation = []
    for fn in functions:
        low, high = (None, None) if fn is None else fn.output_range
        low = config.activation_range[0] if low is None else low
        high = config.activation_range[1] if high is None else high
        activation.append(np.linspace(low, high if high > low else low + 1.0, config.bins + 1))
    symlog_max = math.log10(1.0 + config.backprop_max / config.backprop_threshold)
    u = np.linspace(-symlog_max, symlog_max, config.bins + 1)
    backprop = np.sign(u) * config.backprop_threshold * (10.0 ** np.abs(u) - 1.0)
    edges = {
        "activation": np.stack(activation),
        "preactivation": np.tile(np.linspace(*config.preactivation_range, config.bins + 1), (layers, 1)),
        "backprop": np.tile(backprop, (layers, 1)),
    }
    return {kind: e.astype(np.float32) for kind, e in edges.items()}


def _symlog(threshold: float) -> Callable[[Any], Any]:
    """``sign(g) * log10(1 + |g| / threshold)``: the backprop histogram's evenly spaced scale."""
    return lambda g: jnp.sign(g) * jnp.log1p(jnp.abs(g) / threshold) / math.log(10.0)


def _frobenius(x: Any) -> Any:
    return jnp.sqrt(jnp.sum(jnp.square(x)))


def make_probe(model: FlaxModel, loss: Callable[[Any, Any], Any], config: ProbeConfig | None = None) -> Probe:
    """Build ``probe(params, x, y, previous_params=None) -> dict[str, Array]``.

    Args:
        model: initlab's :class:`~initlab.nn.models.MLP`, or any Flax module as a
            :class:`~initlab.nn.flax_model.FlaxModel`: its Dense and Conv layers are the probed
            layers, through Flax's taps; statistics that need the activation function are NaN
            where it is unknown (a user's module).
        loss: per-sample loss ``loss(y_true, y_pred)`` (from :mod:`initlab.nn.losses`).
        config: bins and saturation margin (defaults: :class:`ProbeConfig`).

    Returns:
        A pure function of the parameters, the probe batch and, optionally, the parameters
        before the last update. Its output holds every name in :data:`STATISTICS` (shape
        ``(layers,)``) and, for each kind in :data:`HISTOGRAMS`, ``{kind}_hist`` (int32,
        ``(layers, bins)``) and ``{kind}_hist_edges`` (``(layers, bins + 1)``).
    """
    config = config or ProbeConfig()
    functions = model.activation_functions
    edges = histogram_edges(model, config)
    to_uniform = {"backprop": _symlog(config.backprop_threshold)}
    nan = float("nan")
    paths = model.layer_paths()

    sows = isinstance(model, Architecture) and _sows(model)

    def kernel(params: Any, index: int) -> Any:
        return flat_params(params)[f"{paths[index]}/kernel"]

    def probe(params: Any, x: Any, y: Any, previous_params: Any | None = None) -> dict[str, Any]:
        def objective(params, perturbations):
            # The model's taps: zero perturbations of every pre-activation, whose gradient is dL/dz.
            output, layers = model.apply_with_intermediates(params, x, perturbations)
            return jnp.mean(loss(y, output)), ([layer.preactivation for layer in layers], [layer.activation for layer in layers])

        (params_grad, perturbation_grads), (preactivations, activations) = jax.grad(
            objective, argnums=(0, 1), has_aux=True
        )(params, model.zero_perturbations(params, x.shape[0]))
        flat_grads = flat_params(perturbation_grads)
        # d(mean loss)/dz_n = (1/B) dl_n/dz_n: times B, each example's gradient of its own loss.
        backprop = [flat_grads[f"{path}/preactivation"] * x.shape[0] for path in paths]
        rows: dict[str, list[Any]] = {name: [] for name in STATISTICS}
        hists: dict[str, list[Any]] = {kind: [] for kind in HISTOGRAMS}
        for index, (fn, z, a, g) in enumerate(zip(functions, preactivations, activations, backprop)):
            rows["preactivation_mean"].append(jnp.mean(z))
            rows["preactivation_std"].append(jnp.std(z))
            rows["activation_mean"].append(jnp.mean(a))
            rows["activation_std"].append(jnp.std(a))
            thresholds = None if fn is None else fn.saturation_thresholds(config.eps)
            if thresholds is None or fn.spec == "softmax":
                low = high = jnp.float32(nan)
            else:
                low, high = jnp.mean(a < thresholds[0]), jnp.mean(a > thresholds[1])
            rows["saturation_low_fraction"].append(low)
            rows["saturation_high_fraction"].append(high)
            rows["saturation_fraction"].append(low + high)
            if fn is None or fn.spec == "softmax":
                rows["activation_derivative_mean"].append(jnp.float32(nan))
            else:
                rows["activation_derivative_mean"].append(jnp.mean(jax.jvp(fn, (z,), (jnp.ones_like(z),))[1]))
            zero = a == 0
            # Dead units: in the ReLU family, or anywhere when the activation is unknown (a unit that is
            # 0 on every sample of the batch is dead whatever made it so).
            dead = fn is None or fn.relu_family
            rows["dead_fraction"].append(jnp.mean(jnp.all(zero, axis=0)) if dead else jnp.float32(nan))
            rows["zero_fraction"].append(jnp.mean(zero))
            rows["backprop_variance"].append(jnp.var(g))
            kernel_grad = kernel(params_grad, index)
            rows["weight_grad_variance"].append(jnp.var(kernel_grad))
            rows["weight_grad_norm"].append(_frobenius(kernel_grad))
            if previous_params is None:
                rows["update_ratio"].append(jnp.float32(nan))
            else:
                previous = kernel(previous_params, index)
                rows["update_ratio"].append(_frobenius(kernel(params, index) - previous) / _frobenius(previous))
            for kind, values in zip(HISTOGRAMS, (a, z, g)):
                hists[kind].append(histogram(values, edges[kind][index], to_uniform.get(kind)))
        stats = {name: jnp.stack([jnp.asarray(v, jnp.float32) for v in values]) for name, values in rows.items()}
        for kind in HISTOGRAMS:
            stats[f"{kind}_hist"] = jnp.stack(hists[kind])
            stats[f"{kind}_hist_edges"] = jnp.asarray(edges[kind])
        if sows:
            stats.update(block_statistics(model.sown(params, x)))
        return stats

    return probe


def _sows(model: FlaxModel) -> bool:
    """Whether the module sows block statistics (from shapes only)."""
    x = jnp.zeros((1, *model.input_shape), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0))
    return bool(jax.eval_shape(lambda p: {k: 0 for k in model.sown(p, x)}, params))


def block_statistics(sown: dict[str, Any]) -> dict[str, Any]:
    """:data:`BLOCK_STATISTICS` from what a module sowed (:meth:`~initlab.nn.flax_model.FlaxModel.sown`)."""
    stats = {}
    if "stream_norm" in sown:
        stats["residual_stream_rms"] = sown["stream_norm"].astype(jnp.float32)
    if "branch_norm" in sown:
        stats["residual_branch_rms"] = sown["branch_norm"].astype(jnp.float32)
        stats["residual_skip_rms"] = sown["skip_norm"].astype(jnp.float32)
        stats["branch_to_skip_ratio"] = stats["residual_branch_rms"] / stats["residual_skip_rms"]
    if "attention_weights" in sown:
        entropies, spreads = [], []
        for weights in sown["attention_weights"]:
            seen = weights > 0  # a causal mask's keys have probability 0 exactly
            logs = jnp.where(seen, jnp.log(jnp.where(seen, weights, 1.0)), 0.0)
            count = jnp.sum(seen, axis=-1)
            entropies.append(jnp.mean(-jnp.sum(weights * logs, axis=-1)))
            mean = jnp.sum(logs, axis=-1) / count
            variance = jnp.sum(jnp.where(seen, (logs - mean[..., None]) ** 2, 0.0), axis=-1) / count
            spreads.append(jnp.mean(jnp.sqrt(variance)))
        stats["attention_entropy"] = jnp.stack(entropies).astype(jnp.float32)
        stats["attention_logit_std"] = jnp.stack(spreads).astype(jnp.float32)
    return stats


def probe_batch(dataset: Any, size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The probe batch: the first ``size`` test samples, as float32 features and one-hot labels.

    The same samples every epoch, so that probes differ only because the parameters did.
    """
    positive_int("probe batch size", size)
    x = dataset.x_test[:size].astype(np.float32) / np.float32(dataset.scale)
    return x, np.asarray(dataset.y_test[:size], np.float32)


def tidy_rows(stats: dict[str, Any], epoch: int) -> list[tuple[int, str, str, float]]:
    """One model's probe as tidy rows ``(epoch, layer, statistic, value)``, layers "1", "2", ...

    Histograms are left out (see :func:`histogram_rows`); NaN (not applicable) rows are kept, so
    every epoch has the same rows. Block statistics (:data:`BLOCK_STATISTICS`), where the model
    has them, are rows of ``block_1``, ``branch_1``...
    """
    rows = []
    for name in STATISTICS:
        values = np.asarray(stats[name], np.float64)
        if values.ndim != 1:
            raise InitlabError(f"tidy_rows takes one model's probe: {name} has shape {values.shape}")
        rows.extend((epoch, str(layer), name, float(value)) for layer, value in enumerate(values, start=1))
    for name, unit in BLOCK_STATISTICS.items():
        if name in stats:
            values = np.asarray(stats[name], np.float64).ravel()
            rows.extend((epoch, f"{unit}_{index}", name, float(value)) for index, value in enumerate(values, start=1))
    return rows


def histogram_rows(stats: dict[str, Any], epoch: int) -> list[tuple[int, str, str, list[float], list[int]]]:
    """One model's histograms as rows ``(epoch, layer, kind, edges, counts)``, ``len(edges) == len(counts) + 1``."""
    rows = []
    for kind in HISTOGRAMS:
        counts, edges = np.asarray(stats[f"{kind}_hist"]), np.asarray(stats[f"{kind}_hist_edges"])
        if counts.ndim != 2:
            raise InitlabError(f"histogram_rows takes one model's probe: {kind}_hist has shape {counts.shape}")
        for layer, (layer_edges, layer_counts) in enumerate(zip(edges, counts), start=1):
            rows.append((epoch, str(layer), kind, layer_edges.tolist(), layer_counts.astype(int).tolist()))
    return rows
