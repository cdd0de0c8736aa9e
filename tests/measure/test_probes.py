"""Tests of initlab.measure.probes: per-layer statistics against NumPy and independent gradients."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from numpy_reference import sigmoid, softmax

from initlab.data import Dataset
from initlab.errors import InitlabError
from initlab.measure.probes import (
    HISTOGRAMS,
    STATISTICS,
    ProbeConfig,
    histogram_edges,
    histogram_rows,
    make_probe,
    probe_batch,
    tidy_rows,
)
from initlab.nn import losses
from initlab.nn.models import MLP, DenseLayer, layer_name, layer_params

BATCH = 400


# Activation and its derivative in terms of (z, a), float64.
NUMPY_ACTIVATIONS = {
    "sigmoid": (sigmoid, lambda z, a: a * (1.0 - a)),
    "tanh": (np.tanh, lambda z, a: 1.0 - a**2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(np.float64)),
    "linear": (lambda z: z, lambda z, a: np.ones_like(z)),
    "softmax": (softmax, None),
}


def small_mlp() -> MLP:
    return MLP(
        input_dim=12,
        layers=(
            DenseLayer(units=16, activation="sigmoid", kernel_initializer="random_normal(stddev=1.0)",
                       bias_initializer="random_normal(stddev=0.5)"),
            DenseLayer(units=11, activation="tanh", kernel_initializer="random_normal(stddev=0.6)",
                       bias_initializer="random_normal(stddev=0.5)"),
            DenseLayer(units=9, activation="relu", bias_initializer="random_normal(stddev=0.5)"),
            DenseLayer(units=8, activation="linear"),
            DenseLayer(units=4, activation="softmax"),
        ),
    )


def batch(key, input_dim: int, classes: int, size: int = BATCH):
    import jax

    x_key, y_key = jax.random.split(key)
    x = jax.random.normal(x_key, (size, input_dim))
    y = jax.nn.one_hot(jax.random.randint(y_key, (size,), 0, classes), classes)
    return x, y


@functools.lru_cache(maxsize=None)
def jitted_probe(mlp: MLP, loss: str = "cce", config: ProbeConfig | None = None):
    """The probe, jitted and shared between tests: each compilation costs seconds, and eager
    JAX would compile every small op on its own."""
    import jax

    return jax.jit(make_probe(mlp, losses.build(loss), config))


def single_layer(activation: str, kernel: str, bias: str = "zeros") -> MLP:
    return MLP(input_dim=20, layers=(DenseLayer(units=30, activation=activation, kernel_initializer=kernel,
                                                bias_initializer=bias),))


def test_statistics_match_numpy(getkey):
    mlp = small_mlp()
    params = mlp.init(getkey())
    x, y = batch(getkey(), 12, 4)
    stats = jitted_probe(mlp)(params, x, y)
    a = np.asarray(x, np.float64)
    for index, (layer, weights) in enumerate(zip(mlp.layers, layer_params(params))):
        z = a @ np.asarray(weights["kernel"], np.float64) + np.asarray(weights["bias"], np.float64)
        fn, derivative = NUMPY_ACTIVATIONS[layer.activation]
        a = fn(z)
        got = {name: float(stats[name][index]) for name in STATISTICS}
        np.testing.assert_allclose(
            [got["preactivation_mean"], got["preactivation_std"], got["activation_mean"], got["activation_std"]],
            [z.mean(), z.std(), a.mean(), a.std()], rtol=1e-4, atol=1e-6,
        )
        tolerance = 2.0 / a.size  # a value on a threshold may fall either way in float32
        if layer.activation == "sigmoid":
            low, high = (a < 0.1).mean(), (a > 0.9).mean()
        elif layer.activation == "tanh":
            low, high = (a < -0.9).mean(), (a > 0.9).mean()
        else:  # unbounded, and softmax's probabilities: not applicable
            low = high = math.nan
        assert got["saturation_low_fraction"] == pytest.approx(low, abs=tolerance, nan_ok=True)
        assert got["saturation_high_fraction"] == pytest.approx(high, abs=tolerance, nan_ok=True)
        assert got["saturation_fraction"] == pytest.approx(low + high, abs=2 * tolerance, nan_ok=True)
        expected_derivative = math.nan if derivative is None else derivative(z, a).mean()
        assert got["activation_derivative_mean"] == pytest.approx(expected_derivative, rel=1e-4, nan_ok=True)
        expected_dead = (a == 0).all(axis=0).mean() if layer.activation == "relu" else math.nan
        assert got["dead_fraction"] == pytest.approx(expected_dead, abs=1e-6, nan_ok=True)
        assert got["zero_fraction"] == pytest.approx((a == 0).mean(), abs=tolerance)
    # Some of the relu layer's outputs are zero, so the zero checks above are not vacuous.
    assert 0.1 < float(stats["zero_fraction"][2]) < 0.9


def test_weight_gradients_match_jax_grad_of_the_mean_loss(getkey):
    import jax
    import jax.numpy as jnp

    mlp = small_mlp()
    params = mlp.init(getkey())
    x, y = batch(getkey(), 12, 4)
    loss = losses.build("cce")
    grads = jax.jit(jax.grad(lambda p: jnp.mean(loss(y, mlp.apply(p, x)))))(params)
    stats = jitted_probe(mlp)(params, x, y)
    kernels = [np.asarray(g["kernel"], np.float64) for g in layer_params(grads)]
    np.testing.assert_allclose(stats["weight_grad_variance"], [k.var() for k in kernels], rtol=1e-4)
    np.testing.assert_allclose(stats["weight_grad_norm"], [np.linalg.norm(k) for k in kernels], rtol=1e-4)


def test_backprop_variance_is_of_each_examples_own_gradient(getkey):
    # The convention of initlab propagate too: dl_n/dz_n, independent of the batch size.
    import jax
    import jax.numpy as jnp

    mlp = small_mlp()
    params = mlp.init(getkey())
    x, y = batch(getkey(), 12, 4)
    loss = losses.build("cce")

    @jax.jit
    def reference_variances(params, x, y):
        _, outputs = mlp.apply_with_intermediates(params, x)
        variances = []
        for index, (layer, fn) in enumerate(zip(mlp.layers, mlp.activation_functions)):
            # The loss as a function of this layer's pre-activation: the rest of the net as its own MLP.
            rest = mlp.layers[index + 1 :]
            head = MLP(input_dim=layer.units, layers=rest).apply if rest else (lambda _, a: a)
            rest_params = {layer_name(i): p for i, p in enumerate(layer_params(params)[index + 1 :])}
            # The summed loss: its gradient in z_n is example n's own dl_n/dz_n.
            objective = lambda z: jnp.sum(loss(y, head(rest_params, fn(z))))  # noqa: E731
            variances.append(jnp.var(jax.grad(objective)(outputs[index].preactivation)))
        return jnp.stack(variances)

    stats = jitted_probe(mlp)(params, x, y)
    np.testing.assert_allclose(stats["backprop_variance"], reference_variances(params, x, y), rtol=1e-4)


@pytest.mark.parametrize(
    "kernel, expected",
    [("random_normal(stddev=100.0)", 1.0), ("random_normal(stddev=1e-4)", 0.0)],
    ids=["huge-weights-saturate", "tiny-weights-stay-linear"],
)
def test_sigmoid_saturation(getkey, kernel, expected):
    mlp = single_layer("sigmoid", kernel)
    x, y = batch(getkey(), 20, 30)
    stats = jitted_probe(mlp, "mse")(mlp.init(getkey()), x, y)
    # Huge: |z| ~ 100 * sqrt(20), all but a sliver beyond +-2.2 where sigmoid leaves [0.1, 0.9].
    # Tiny: |z| ~ 1e-4 * sqrt(20), every output within 1e-3 of 0.5.
    assert float(stats["saturation_fraction"][0]) == pytest.approx(expected, abs=0.05)
    if expected:  # symmetric weights: as many units stuck at 0 as at 1
        assert float(stats["saturation_low_fraction"][0]) == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize(
    "dead_units, expected_zero_fraction", [(30, 1.0), (0, 0.5), (10, 10 / 30 + 20 / 30 * 0.5)],
    ids=["all-biases-negative", "zero-biases", "a-third-negative"],
)
def test_dead_relu_units(getkey, dead_units, expected_zero_fraction):
    mlp = single_layer("relu", "glorot_uniform")
    (layer,) = layer_params(mlp.init(getkey()))
    bias = np.where(np.arange(30) < dead_units, -100.0, 0.0).astype(np.float32)
    x, y = batch(getkey(), 20, 30)
    stats = jitted_probe(mlp, "mse")({"Dense_0": {**layer, "bias": bias}}, x, y)
    # A bias of -100 kills a unit on every sample. With zero bias and symmetric inputs a unit is
    # negative on all 400 samples with probability 2^-400, and on each sample half the time.
    assert float(stats["dead_fraction"][0]) == pytest.approx(dead_units / 30)
    assert float(stats["zero_fraction"][0]) == pytest.approx(expected_zero_fraction, abs=0.05)


def test_histograms_count_every_value_on_fixed_bins(getkey):
    mlp = small_mlp()
    params = mlp.init(getkey())
    params = {**params, "Dense_0": {**params["Dense_0"], "kernel": 5 * params["Dense_0"]["kernel"]}}  # beyond [-10, 10]
    x, y = batch(getkey(), 12, 4)
    stats = jitted_probe(mlp)(params, x, y)
    _, outputs = mlp.apply_with_intermediates(params, x)
    assert float(np.abs(np.asarray(outputs[0].preactivation)).max()) > 10  # some fall outside [-10, 10]
    for index, layer in enumerate(mlp.layers):
        for kind, values in zip(("preactivation", "activation"), outputs[index]):
            counts = np.asarray(stats[f"{kind}_hist"][index])
            edges = np.asarray(stats[f"{kind}_hist_edges"][index])
            assert counts.shape == (50,) and edges.shape == (51,)
            assert counts.sum() == BATCH * layer.units
            expected, _ = np.histogram(np.clip(np.asarray(values), edges[0], edges[-1]), edges)
            np.testing.assert_array_equal(counts, expected)
        assert int(stats["backprop_hist"][index].sum()) == BATCH * layer.units


@pytest.mark.parametrize("kind", ["activation", "preactivation", "backprop"])
def test_computed_bins_equal_a_search_of_the_edges_even_at_the_edges(kind, getkey):
    import jax

    from initlab.measure.histograms import histogram as _histogram
    from initlab.measure.probes import _symlog

    mlp = MLP(input_dim=3, layers=(DenseLayer(units=2, activation="tanh"),))
    config = ProbeConfig()
    edges = histogram_edges(mlp, config)[kind][0]
    to_uniform = _symlog(config.backprop_threshold) if kind == "backprop" else None
    spread = float(np.abs(edges).max())
    values = np.concatenate([
        edges, np.nextafter(edges, np.float32(-np.inf)), np.nextafter(edges, np.float32(np.inf)),
        [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 3 * spread, -3 * spread],
        np.asarray(jax.random.normal(getkey(), (2000,))) * spread,
        np.asarray(jax.random.normal(getkey(), (2000,))) * 1e-7,
    ]).astype(np.float32)  # fmt: skip
    values = values[~(np.abs(values) < np.finfo(np.float32).tiny) | (values == 0)]  # XLA flushes subnormals to 0
    counts = np.asarray(jax.jit(lambda v: _histogram(v, edges, to_uniform))(values))
    finite_or_inf = values[~np.isnan(values)]
    index = np.clip(np.searchsorted(edges, finite_or_inf, side="right") - 1, 0, len(edges) - 2)
    np.testing.assert_array_equal(counts, np.bincount(index, minlength=len(edges) - 1))


def test_histogram_edges_follow_the_activation_and_a_symmetric_log_scale():
    activations = ("sigmoid", "tanh", "relu", "linear")
    mlp = MLP(input_dim=3, layers=tuple(DenseLayer(units=2, activation=a) for a in activations))
    edges = histogram_edges(mlp, ProbeConfig())
    np.testing.assert_allclose(edges["activation"][:, [0, -1]], [[0, 1], [-1, 1], [0, 5], [-5, 5]])
    np.testing.assert_allclose(edges["preactivation"][:, [0, -1]], [[-10, 10]] * 4)
    backprop = edges["backprop"][0]
    assert backprop.shape == (51,) and backprop[25] == 0 and np.all(np.diff(backprop) > 0)
    np.testing.assert_allclose(backprop, -backprop[::-1], rtol=1e-6)
    np.testing.assert_allclose(backprop[-1], 1.0, rtol=1e-5)
    # Log scale: each bin above the threshold spans the same number of decades.
    ratios = backprop[40:50] / backprop[39:49]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-3)


def test_update_ratio(getkey):
    import jax

    mlp = small_mlp()
    previous = mlp.init(getkey())
    params = jax.tree.map(lambda w: 1.1 * w, previous)
    x, y = batch(getkey(), 12, 4)
    probe = jitted_probe(mlp)
    np.testing.assert_allclose(probe(params, x, y, previous)["update_ratio"], [0.1] * 5, rtol=1e-4)
    assert np.all(np.isnan(probe(params, x, y)["update_ratio"]))


def test_jit_and_vmap_over_three_models_match_one_by_one(getkey):
    import jax

    mlp = small_mlp()
    models = [mlp.init(getkey()) for _ in range(3)]
    previous = [mlp.init(getkey()) for _ in range(3)]
    stacked, stacked_previous = (jax.tree.map(lambda *leaves: np.stack(leaves), *p) for p in (models, previous))
    x, y = batch(getkey(), 12, 4)
    batched = jax.jit(jax.vmap(make_probe(mlp, losses.build("cce")), in_axes=(0, None, None, 0)))(
        stacked, x, y, stacked_previous
    )
    assert batched["backprop_variance"].shape == (3, 5) and batched["activation_hist"].shape == (3, 5, 50)
    for m in range(3):
        single = jitted_probe(mlp)(models[m], x, y, previous[m])  # itself checked against NumPy above
        for name in (*STATISTICS, *(f"{kind}_hist" for kind in HISTOGRAMS)):
            np.testing.assert_allclose(batched[name][m], single[name], rtol=1e-5, atol=1e-12, err_msg=name)


def test_tidy_and_histogram_rows(getkey):
    mlp = small_mlp()
    x, y = batch(getkey(), 12, 4)
    stats = jitted_probe(mlp)(mlp.init(getkey()), x, y)
    rows = tidy_rows(stats, 3)
    assert len(rows) == len(STATISTICS) * 5
    assert {row[1] for row in rows} == {"1", "2", "3", "4", "5"} and {row[2] for row in rows} == set(STATISTICS)
    assert (3, "2", "activation_std", float(stats["activation_std"][1])) in rows
    hist_rows = histogram_rows(stats, 3)
    assert len(hist_rows) == 3 * 5
    epoch, layer, kind, edges, counts = hist_rows[0]
    assert (epoch, layer, kind) == (3, "1", "activation") and len(edges) == 51 and sum(counts) == BATCH * 16
    with pytest.raises(InitlabError, match="one model"):
        tidy_rows({name: np.zeros((3, 5)) for name in STATISTICS}, 0)


def test_probe_batch_takes_the_first_test_samples_as_float32():
    x_test = np.arange(2000 * 4, dtype=np.uint8).reshape(2000, 4)
    y_test = np.eye(3, dtype=np.float32)[np.arange(2000) % 3]
    dataset = Dataset("toy", x_test, y_test, x_test, y_test, scale=255.0)
    x, y = probe_batch(dataset)
    assert x.shape == (1000, 4) and x.dtype == np.float32 and y.shape == (1000, 3)
    np.testing.assert_allclose(x, x_test[:1000] / np.float32(255.0))
    assert probe_batch(dataset, size=10)[0].shape == (10, 4)
    with pytest.raises(InitlabError):
        probe_batch(dataset, size=0)


@pytest.mark.parametrize("kwargs", [{"eps": 0.0}, {"eps": 0.5}, {"bins": 1}, {"preactivation_range": (1.0, -1.0)},
                                    {"backprop_threshold": 0.0}])
def test_probe_config_rejects_bad_values(kwargs):
    with pytest.raises(InitlabError):
        ProbeConfig(**kwargs)


def test_glorot_bengio_backprop_variance_across_layers(getkey):
    """Glorot & Bengio (2010), section 4.2.2: back-propagated gradients vanish toward the input with
    the "standard" U[-1/sqrt(n), 1/sqrt(n)], and keep their variance with glorot_uniform.

    Going down one layer multiplies Var[dL/dz] by about n * Var[W] * E[tanh'(z)^2]. Standard:
    n * Var[W] = 1/3 and the activations shrink to tanh's linear part, so ~1/3 per layer and
    ~1/80 from layer 5 to layer 1. Glorot: n * Var[W] = n * 2 / (n + n) = 1, leaving only
    E[tanh'(z)^2] ~ 0.85 per layer for inputs of std 0.3, a factor below 2 over the net. (The
    tanh factor grows with the pre-activations' scale: unit-variance inputs lose ~6x with Glorot,
    still ~25 times less than standard's ~140x.)
    """
    import jax

    width, depth = 256, 5
    bound = 1 / math.sqrt(width)
    x_key, y_key = jax.random.split(getkey())
    x = 0.3 * jax.random.normal(x_key, (1000, width))
    y = jax.nn.one_hot(jax.random.randint(y_key, (1000,), 0, 10), 10)
    variances, probe = [], None
    for init in (f"random_uniform(minval={-bound!r}, maxval={bound!r})", "glorot_uniform"):
        hidden = tuple(DenseLayer(units=width, activation="tanh", kernel_initializer=init) for _ in range(depth))
        output = DenseLayer(units=10, activation="softmax", kernel_initializer=init)
        mlp = MLP(input_dim=width, layers=(*hidden, output))
        probe = probe or jitted_probe(mlp)  # the probe depends on the architecture only: compile once
        variances.append(np.asarray(probe(mlp.init(getkey()), x, y)["backprop_variance"][:depth]))
    standard, glorot = variances
    steps = standard[:-1] / standard[1:]
    assert np.all((0.2 < steps) & (steps < 0.5)), standard  # ~1/3 at every step toward the input
    assert standard[0] < standard[-1] / 20, standard
    assert glorot.max() / glorot.min() < 2, glorot
