"""LSUV: layer-sequential unit-variance initialization (Mishkin & Matas 2015, "All you need is a good init").

Two steps, as in the paper's Algorithm 1:

1. every kernel whose initializer is ``lsuv`` gets the orthonormal pre-init (Keras's
   ``Orthogonal``, gain 1; Saxe et al. 2013);
2. from the first layer to the last, such a layer's kernel is divided by ``sqrt(var(z))``
   until ``|var(z) - 1| < tol`` or ``max_iter`` rescalings have been made.

``z = x @ W + b`` is the layer's *pre-activation*, the output of the Dense layer before its
nonlinearity: the paper normalizes the output blob of each convolution or inner-product layer,
and the authors' Caffe script measures it before an in-place ReLU (``forward(end=layer)``,
``var_before_relu_if_inplace=True``). ``var`` is taken over every entry of the batch's
``(samples, units)`` block, as that script's ``np.var(blob)``. With ``center=True`` the bias is
also set, each iteration, so that every unit's pre-activation has mean 0 on the batch.

Layers before the one being normalized are final, so its input is computed once and the loop
over rescalings (a ``lax.while_loop``) is one compiled program per kernel shape.

The batch: a trainer passes the first ``batch_size`` training samples (the spec's argument,
1024 by default; the largest among the model's LSUV layers) in the order epoch 1 visits them
for the run's seed (:func:`lsuv_batch`), so that the same seed gives the same parameters.

Example:
    >>> mlp = MLP(input_dim=784, layers=(DenseLayer(units=256, activation="relu", kernel_initializer="lsuv"),
    ...           DenseLayer(units=10, activation="softmax")))
    >>> params, report = initialize(mlp, jax.random.key(0), lsuv_batch(load("mnist"), seed=0))
    >>> report["layers"]  # [{"layer": 1, "iterations": 1, "variance": 1.0, "initial_variance": ...}]
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

from initlab._lazy import jax, jnp, lax
from initlab.errors import InitlabError
from initlab.initializers import Initializer, build
from initlab.initializers.lsuv import DEFAULT_BATCH_SIZE, LSUVInitializer, lsuv
from initlab.nn.models import layer_name

if TYPE_CHECKING:
    from initlab.data import Dataset
    from initlab.nn.models import MLP, Params

def _settings(init: Initializer) -> LSUVInitializer | None:
    """The LSUV settings of a built kernel initializer, ``None`` for a data-free one."""
    if not init.data_dependent:
        return None
    if not isinstance(init, LSUVInitializer):
        raise InitlabError(f"initializer {init.spec} needs data that initlab.nn.lsuv does not know how to give")
    return init


def batch_size(mlp: MLP) -> int | None:
    """How many samples ``mlp``'s initialization needs: the largest LSUV ``batch_size``, ``None`` if none."""
    settings = [_settings(build(layer.kernel_initializer)) for layer in mlp.layers]
    sizes = [s.batch_size for s in settings if s is not None]
    return max(sizes) if sizes else None


def lsuv_batch(dataset: Dataset, seed: int, size: int = DEFAULT_BATCH_SIZE) -> Any:
    """The first ``size`` training inputs (float32 features) in the order epoch 1 of ``seed`` visits them."""
    import numpy as np

    from initlab.data import epoch_order

    rows = epoch_order(seed, 1, len(dataset.x_train))[:size]
    return dataset.x_train[rows].astype(np.float32) / np.float32(dataset.scale)


def _normalize(inputs, kernel, bias, tol, max_iter, center):
    """Rescale ``kernel`` until ``var(inputs @ kernel + bias)`` is within ``tol`` of 1."""

    def measure(kernel, bias):
        z = inputs @ kernel + bias
        if center:
            mean = jnp.mean(z, axis=0)
            bias, z = bias - mean, z - mean
        return bias, jnp.var(z)

    def unfinished(state):
        _, _, variance, iterations = state
        # A dead layer (variance 0) or an overflow cannot be rescaled: stop there.
        usable = jnp.isfinite(variance) & (variance > 0)
        return usable & (jnp.abs(variance - 1.0) >= tol) & (iterations < max_iter)

    def rescale(state):
        kernel, bias, variance, iterations = state
        kernel = kernel / jnp.sqrt(variance)
        bias, variance = measure(kernel, bias)
        return kernel, bias, variance, iterations + 1

    bias, initial = measure(kernel, bias)
    kernel, bias, variance, iterations = lax.while_loop(unfinished, rescale, (kernel, bias, initial, 0))
    return kernel, bias, variance, iterations, initial


@functools.cache
def _compiled_normalize() -> Any:
    # Built on first use: importing this module (which the registry does) must not import JAX.
    return jax.jit(_normalize, static_argnames="center")


def initialize(mlp: MLP, key: Any, x_batch: Any) -> tuple[Params, dict[str, Any]]:
    """Parameters of ``mlp`` with every LSUV kernel normalized on ``x_batch``, and a report.

    Keys are split as :meth:`MLP.init` splits them, so a model without LSUV layers gets exactly
    ``mlp.init(key)`` and the other layers of a model with some get the same draws.

    Returns:
        ``(params, {"layers": [{"layer": n, "iterations": k, "variance": v, "initial_variance": v0}]})``,
        one entry per LSUV layer, ``n`` 1-based; ``variance`` is the last one measured, on ``x_batch``.
    """
    x = jnp.asarray(x_batch, jnp.float32)
    if x.ndim != 2 or x.shape[1] != mlp.input_dim or x.shape[0] < 2:
        raise InitlabError(f"LSUV needs a batch of shape (>= 2, {mlp.input_dim}), got {tuple(x.shape)}")
    params, lsuv_layers = {}, []
    layer_keys = jax.random.split(key, len(mlp.layers))
    for index, (layer, shape, layer_key) in enumerate(zip(mlp.layers, mlp.shapes, layer_keys)):
        kernel_key, bias_key = jax.random.split(layer_key)
        bias_init = build(layer.bias_initializer)
        if bias_init.data_dependent:
            raise InitlabError(f"layer {index + 1}: {bias_init.spec} initializes kernels, not biases")
        kernel_init = build(layer.kernel_initializer)
        params[layer_name(index)] = {"kernel": kernel_init(kernel_key, shape), "bias": bias_init(bias_key, (shape[1],))}
        settings = _settings(kernel_init)
        if settings is not None:
            lsuv_layers.append((index, settings))
    rows = []
    for index, settings in lsuv_layers:
        # The layers before this one are final: its input comes from the model's taps.
        name = layer_name(index)
        inputs = x if index == 0 else mlp.tapped(params, x)[1][name][0]
        kernel, bias, variance, iterations, initial = _compiled_normalize()(
            inputs, params[name]["kernel"], params[name]["bias"], settings.tol, settings.max_iter, center=settings.center
        )
        params[name] = {"kernel": kernel, "bias": bias}
        row = {"layer": index + 1, "iterations": int(iterations), "variance": float(variance)}
        rows.append({**row, "initial_variance": float(initial)})
    return params, {"layers": rows}


def normalize_network(model: Any, params: Any, origins: dict[str, str], x_batch: Any) -> tuple[Any, dict[str, Any]]:
    """LSUV for any Flax network (convolutional, residual, attention): every kernel drawn by ``lsuv``.

    ``origins`` (from :meth:`~initlab.nn.flax_model.FlaxModel.initialize`) says which kernels
    ``lsuv`` drew (the orthonormal pre-init); from the first tapped layer to the last, each such
    layer's kernel is divided by ``sqrt(var(z))``, ``z`` its output (the pre-activation, over
    every entry of the batch), until ``|var(z) - 1| < tol`` or ``max_iter`` rescalings, exactly as
    :func:`initialize` does for the MLP; the layers before it are final. One compiled forward pass
    gives every layer's pre-activation.

    Returns:
        ``(params, {"layers": [{"layer": path, "iterations": k, "variance": v, "initial_variance": v0}]})``.
    """
    from flax.traverse_util import flatten_dict, unflatten_dict

    settings = {}
    for path in model.layer_paths():
        origin = origins.get(f"{path}/kernel", "module").split(" x ")[0]
        if origin != "module":
            found = _settings(build(origin))
            if found is not None:
                settings[path] = found
    if not settings:
        return params, {"layers": []}
    x = jnp.asarray(x_batch, jnp.float32)
    forward = jax.jit(lambda p: {path: z for path, (_, z) in model.tapped(p, x)[1].items() if path in settings})
    rows = []
    for path, layer_settings in settings.items():
        flat = flatten_dict(params, sep="/")
        bias_path = f"{path}/bias"

        def measure(flat):
            z = forward(unflatten_dict(flat, sep="/"))[path]
            if layer_settings.center and bias_path in flat:
                mean = jnp.mean(z.reshape(-1, z.shape[-1]), axis=0)
                flat = {**flat, bias_path: flat[bias_path] - mean.reshape(flat[bias_path].shape)}
                z = z - mean
            return flat, float(jnp.var(z))

        flat, variance = measure(flat)
        initial, iterations = variance, 0
        while (math.isfinite(variance) and variance > 0 and abs(variance - 1.0) >= layer_settings.tol
               and iterations < layer_settings.max_iter):
            flat = {**flat, f"{path}/kernel": flat[f"{path}/kernel"] / math.sqrt(variance)}
            flat, variance = measure(flat)
            iterations += 1
        params = unflatten_dict(flat, sep="/")
        rows.append({"layer": path, "iterations": iterations, "variance": variance, "initial_variance": initial})
    return params, {"layers": rows}


def init_for_training(mlp: MLP, key: Any, dataset: Dataset, seed: int) -> tuple[Params, dict[str, Any]]:
    """What a trainer calls instead of ``mlp.init(key)``: data only where an initializer needs it.

    Without LSUV layers this is ``(mlp.init(key), {"layers": []})``; with them, :func:`initialize`
    on :func:`lsuv_batch` of ``dataset`` for ``seed``.
    """
    size = batch_size(mlp)
    if size is None:
        return mlp.init(key), {"layers": []}
    return initialize(mlp, key, lsuv_batch(dataset, seed, size))


__all__ = ["LSUVInitializer", "batch_size", "init_for_training", "initialize", "lsuv", "lsuv_batch", "normalize_network"]
