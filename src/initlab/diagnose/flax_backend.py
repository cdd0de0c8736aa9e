"""Inspecting a Flax linen module: initlab's taps on its Dense and Conv layers (``initlab.nn.flax_model``).

Each tapped layer's pre-activation is recorded, and what the next tapped layer receives is taken
as its activation (a module applies its nonlinearities as functions, which have no names to
hook): non-negative outputs are counted for dead units, outputs within [-1, 1] or [0, 1] for
two-sided saturation. The gradient with respect to each pre-activation comes from a zero added
to it (initlab's perturbations). Where the module is a plain stack of Dense layers with elementwise
nonlinearities between them (each recognized by applying it to the pre-activation), mean-field
theory's mean square of each pre-activation is put beside the measured one. Flax's defaults: ``nn.Dense``/``nn.Conv`` kernels
``lecun_normal`` (truncated normal, variance 1/fan_in), biases zeros; ``nn.Embed``
``variance_scaling(1, fan_in, normal, out_axis=0)``; normalization scales ones, biases zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from initlab.diagnose.core import SATURATION, Inspection, LayerRecord, ParamRecord
from initlab.diagnose.laws import agreement_with, best_law, fitted_family

DEFAULTS = {
    ("Dense", "kernel"): "flax.lecun_normal", ("Dense", "bias"): "zeros",
    ("DenseGeneral", "kernel"): "flax.lecun_normal", ("DenseGeneral", "bias"): "zeros",
    ("Conv", "kernel"): "flax.lecun_normal", ("Conv", "bias"): "zeros",
    ("LayerNorm", "scale"): "ones", ("LayerNorm", "bias"): "zeros",
    ("BatchNorm", "scale"): "ones", ("BatchNorm", "bias"): "zeros",
    ("BatchNorm", "mean"): "zeros", ("BatchNorm", "var"): "ones",  # the running statistics' start (batch_stats)
    ("Embed", "embedding"): "flax.variance_scaling(scale=1.0, mode='fan_in', distribution='normal')",
}  # fmt: skip
_CALLED_AS = {"dense": "Dense", "conv": "Conv", "embed": "Embed", "norm": "LayerNorm", "attention": "DenseGeneral",
              "attention_out": "DenseGeneral"}
"""A layer kind (:meth:`initlab.nn.flax_model.FlaxModel.layer_kinds`) as the Flax type whose defaults it has."""
CANDIDATES = ["flax.lecun_normal", "glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_uniform",
              "flax.normal(stddev=0.02)", "flax.normal", "zeros", "ones", "orthogonal"]  # fmt: skip


def _kind(path: str) -> str:
    """``"Dense_0/kernel"`` -> ``Dense``: compact modules name their submodules ``Type_index``."""
    module = path.rsplit("/", 1)[0].rsplit("/", 1)[-1]
    return module.rsplit("_", 1)[0] if module.rsplit("_", 1)[-1].isdigit() else module


def _activation_kind(values: np.ndarray) -> str | None:
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= 1 and high > 0.5:
        return "sigmoid"
    if low >= 0:
        return "relu"
    if low >= -1 and high <= 1 and max(-low, high) > 0.5:
        return "tanh"
    return None


def _elementwise() -> dict[str, Any]:
    """The elementwise nonlinearities a Flax stack may apply between its Dense layers, whose mean-field maps
    initlab computes (any JAX callable is one, :func:`initlab.mean_field.theory.variance_map`)."""
    import functools

    import jax
    import jax.numpy as jnp

    return {
        "linear": lambda h: h, "relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
        "gelu": functools.partial(jax.nn.gelu, approximate=True),  # flax.linen.gelu's default
        "gelu_exact": functools.partial(jax.nn.gelu, approximate=False), "silu": jax.nn.silu,
        "softplus": jax.nn.softplus, "soft_sign": jax.nn.soft_sign, "elu": jax.nn.elu, "selu": jax.nn.selu,
    }  # fmt: skip


def _predict(params: Any, paths: list[str], layers_out: list[Any], x: np.ndarray, records: list[LayerRecord]) -> None:
    """Mean-field predictions of each Dense layer's pre-activation mean square, where the module is a plain
    stack: every tapped layer a Dense (2-D kernel) on 2-D inputs, and what each passes to the next its
    pre-activation through one of :func:`_elementwise`'s functions, recognized by applying each (to 1e-5).

    ``q^1 = sigma_w^2 mean(x^2) + sigma_b^2``, ``q^{l+1} = sigma_w^2 E[phi_l(sqrt(q^l) z)^2] + sigma_b^2`` with
    each layer's measured ``sigma_w^2 = fan_in E[W^2]`` and ``sigma_b^2 = E[b^2]``, as for PyTorch and Keras.
    """
    from initlab.mean_field.theory import variance_map
    from initlab.nn.flax_model import flat_params

    flat = flat_params(params)
    kernels = [flat.get(f"{path}/kernel") for path in paths]
    if x.ndim != 2 or not paths or any(k is None or np.ndim(k) != 2 for k in kernels):
        return
    functions = _elementwise()
    between = []
    for layer in layers_out[:-1]:
        pre = np.asarray(layer.preactivation, np.float64)
        passed = np.asarray(layer.activation, np.float64)
        if pre.shape != passed.shape:
            return
        found = next((fn for fn in functions.values()
                      if np.allclose(np.asarray(fn(layer.preactivation), np.float64), passed, rtol=1e-5, atol=1e-6)), None)  # fmt: skip
        if found is None:
            return
        between.append(found)
    q, previous = float(np.mean(np.square(x, dtype=np.float64))), None
    for index, (path, kernel, layer, record) in enumerate(zip(paths, kernels, layers_out, records)):
        kernel = np.asarray(kernel, np.float64)
        bias = flat.get(f"{path}/bias")
        sigma_w2 = float(np.mean(kernel**2)) * kernel.shape[0]
        sigma_b2 = float(np.mean(np.asarray(bias, np.float64) ** 2)) if bias is not None else 0.0
        q = sigma_w2 * q + sigma_b2 if previous is None else float(variance_map(q, sigma_w2, sigma_b2, previous))
        record.second_moment = float(np.mean(np.asarray(layer.preactivation, np.float64) ** 2))
        record.predicted_second_moment = q
        previous = between[index] if index < len(between) else None


def inspect_flax(module: Any, params: Any, x: Any, *, target: str, inputs: str, seed: int = 0) -> Inspection:
    import jax
    import jax.numpy as jnp
    import optax

    from initlab.nn.flax_model import as_model, flat_params

    model = as_model(module, tuple(x.shape[1:]))
    x = jnp.asarray(x)
    if params is None:
        params = jax.jit(model.init)(jax.random.key(seed))  # one program, not one per eager op (ResNet18: ~400)
    perturbations = model.zero_perturbations(params, x.shape[0])
    out = jax.jit(model.apply)(params, x)
    classes = int(out.shape[-1]) if out.ndim == 2 and out.shape[-1] >= 2 else None
    labels = jax.random.randint(jax.random.key(seed + 1), (x.shape[0],), 0, classes or 1)

    def loss(params, perturbations):
        output, _ = model.apply_with_intermediates(params, x, perturbations)
        if classes:
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(output, labels))
        return 0.5 * jnp.mean(output**2)

    value, (param_grads, perturbation_grads) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, perturbations)
    _, layers_out = jax.jit(lambda p: model.apply_with_intermediates(p, x))(params)
    paths = model.layer_paths()
    grads_by_path = flat_params(perturbation_grads)
    layers = []
    for index, (path, layer) in enumerate(zip(paths, layers_out)):
        pre = np.asarray(layer.preactivation, np.float64)
        act = np.asarray(layer.activation, np.float64)
        kind = _activation_kind(act) if index < len(paths) - 1 else None
        dead = saturated = None
        if kind == "relu" and act.ndim >= 2:
            alive = act.reshape(-1, act.shape[-1]) > 0
            dead = float(1 - alive.any(axis=0).mean())
        if kind in SATURATION:
            low, high = SATURATION[kind]
            saturated = float(np.mean((act < low) | (act > high)))
        gradient = next((np.asarray(v) for k, v in grads_by_path.items() if k.startswith(path)), None)
        layers.append(LayerRecord(
            name=path, kind=path.rsplit("/", 1)[-1].rsplit("_", 1)[0], activation=kind, output_shape=list(pre.shape),
            mean=float(act.mean()), std=float(act.std()), dead_fraction=dead, saturated_fraction=saturated,
            gradient_std=None if gradient is None else float(gradient.std()),
        ))  # fmt: skip
    _predict(params, paths, layers_out, np.asarray(x), layers)
    grads = flat_params(param_grads)
    # A module named by its author (``name="conv1"``) has no type in its path: the type it was called as.
    called = {path: _CALLED_AS[kind] for path, kind in model.layer_kinds().items() if kind in _CALLED_AS}
    records = []
    for path, values in flat_params(params).items():
        values = np.asarray(values, np.float64)
        kind, name = _kind(path), path.rsplit("/", 1)[-1]
        if not any(known == kind for known, _ in DEFAULTS):
            kind = called.get(path.rsplit("/", 1)[0].removeprefix("batch_stats/"), kind)
        declared = DEFAULTS.get((kind, name))
        shape = tuple(values.shape)
        tested = agreement_with(values, declared, shape) if declared else None
        agreement = None if tested is None else tested.to_dict()
        # The type's default, where it fits, is what drew it (few entries cannot tell laws apart).
        identified = tested if tested is not None and tested.agrees else best_law(values, shape, CANDIDATES)
        records.append(ParamRecord(
            name=path, layer=path.rsplit("/", 1)[0], kind=kind, shape=list(shape), mean=float(values.mean()),
            std=float(values.std()), declared=agreement, identified=None if identified is None else identified.to_dict(),
            family=None if identified is not None else fitted_family(values),
            gradient_std=float(np.asarray(grads[path]).std()) if path in grads else None,
        ))  # fmt: skip
    return Inspection(
        target=target, framework="flax", inputs=inputs, batch=int(x.shape[0]), layers=layers, params=records,
        loss=float(value), loss_kind="cross_entropy" if classes else "half_mean_square", classes=classes,
        logit_std=float(jnp.std(out)) if classes else None,
        notes=["Flax applies nonlinearities as functions: each layer's activation is what the next tapped layer "
               "receives, its kind guessed from its range"],
    )  # fmt: skip


__all__ = ["inspect_flax"]

