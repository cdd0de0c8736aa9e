"""Tests of initlab.nn.models: parameter shapes, the forward pass against NumPy, per-layer initializers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy_reference import ACTIVATIONS

from initlab.errors import InitlabError
from initlab.nn.models import MLP, DenseLayer, LayerOutputs, layer_params


def numpy_forward(mlp: MLP, params, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every layer's (pre-activation, activation), computed in float64 NumPy."""
    outputs = []
    a = np.asarray(x, np.float64)
    for layer, weights in zip(mlp.layers, layer_params(params)):
        z = a @ np.asarray(weights["kernel"], np.float64) + np.asarray(weights["bias"], np.float64)
        a = ACTIVATIONS[layer.activation](z)
        outputs.append((z, a))
    return outputs


def three_layer_mlp(hidden_activation: str = "tanh") -> MLP:
    # Non-zero biases everywhere, so that a forgotten bias cannot go unnoticed.
    return MLP(
        input_dim=12,
        layers=(
            DenseLayer(
                units=7,
                activation=hidden_activation,
                kernel_initializer="random_normal(stddev=0.5)",
                bias_initializer="random_uniform(minval=-0.5, maxval=0.5)",
            ),
            DenseLayer(units=5, activation="sigmoid", bias_initializer="random_normal(stddev=0.3)"),
            DenseLayer(units=3, activation="softmax", bias_initializer="ones"),
        ),
    )


@pytest.fixture
def inputs() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(6, 12)).astype(np.float32)


def test_parameter_shapes_are_keras_dense_kernels(getkey):
    mlp = three_layer_mlp()
    params = mlp.init(getkey())
    assert mlp.shapes == [(12, 7), (7, 5), (5, 3)]
    assert list(params) == ["Dense_0", "Dense_1", "Dense_2"]  # Flax's names for nn.Dense layers
    for weights, (fan_in, fan_out) in zip(layer_params(params), mlp.shapes):
        assert set(weights) == {"kernel", "bias"}
        assert weights["kernel"].shape == (fan_in, fan_out)
        assert weights["bias"].shape == (fan_out,)
        assert weights["kernel"].dtype == np.float32
        assert weights["bias"].dtype == np.float32


@pytest.mark.parametrize("hidden_activation", ["linear", "sigmoid", "tanh", "relu"])
def test_apply_equals_numpy_forward_pass(hidden_activation, inputs, getkey):
    mlp = three_layer_mlp(hidden_activation)
    params = mlp.init(getkey())
    expected = numpy_forward(mlp, params, inputs)[-1][1]
    output = np.asarray(mlp.apply(params, inputs))
    assert output.shape == (6, 3)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(output.sum(axis=-1), 1.0, rtol=1e-5)


def test_apply_with_intermediates_gives_every_layer(inputs, getkey):
    mlp = three_layer_mlp("relu")
    params = mlp.init(getkey())
    output, layer_outputs = mlp.apply_with_intermediates(params, inputs)
    reference = numpy_forward(mlp, params, inputs)

    assert len(layer_outputs) == len(mlp.layers)
    previous = inputs
    for layer, weights, outputs, (z_expected, a_expected) in zip(mlp.layers, layer_params(params), layer_outputs, reference):
        assert isinstance(outputs, LayerOutputs)
        z, a = np.asarray(outputs.preactivation), np.asarray(outputs.activation)
        assert z.shape == a.shape == (len(inputs), layer.units)
        np.testing.assert_allclose(z, z_expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a, a_expected, rtol=1e-5, atol=1e-6)
        # Each layer's pre-activation is computed from the previous layer's activation.
        np.testing.assert_allclose(
            z, np.asarray(previous) @ np.asarray(weights["kernel"]) + np.asarray(weights["bias"]), rtol=1e-5, atol=1e-5
        )
        previous = a
    np.testing.assert_array_equal(np.asarray(output), np.asarray(layer_outputs[-1].activation))
    np.testing.assert_allclose(np.asarray(output), np.asarray(mlp.apply(params, inputs)), rtol=1e-6, atol=1e-7)


def test_apply_under_jit_and_vmap_over_stacked_params(inputs, getkey):
    import jax
    import jax.numpy as jnp

    mlp = three_layer_mlp()
    members = [mlp.init(getkey()) for _ in range(2)]
    stacked = jax.tree.map(lambda *arrays: jnp.stack(arrays), *members)
    ensemble = jax.jit(jax.vmap(mlp.apply, in_axes=(0, None)))(stacked, inputs)
    assert ensemble.shape == (2, 6, 3)
    for index, params in enumerate(members):
        np.testing.assert_allclose(np.asarray(ensemble[index]), np.asarray(mlp.apply(params, inputs)), rtol=1e-5, atol=1e-6)


def test_same_key_same_params_other_key_other_params(getkey):
    mlp = three_layer_mlp()
    key = getkey()
    first, again, other = mlp.init(key), mlp.init(key), mlp.init(getkey())
    for a, b, c in zip(layer_params(first), layer_params(again), layer_params(other)):
        np.testing.assert_array_equal(np.asarray(a["kernel"]), np.asarray(b["kernel"]))
        np.testing.assert_array_equal(np.asarray(a["bias"]), np.asarray(b["bias"]))
        assert not np.array_equal(np.asarray(a["kernel"]), np.asarray(c["kernel"]))
    # Biases drawn at random also depend on the key (the output layer's bias is "ones").
    assert not np.array_equal(np.asarray(first["Dense_0"]["bias"]), np.asarray(other["Dense_0"]["bias"]))


def test_layers_of_equal_shape_draw_different_weights(getkey):
    # One key per layer: identical layers must not share their draws.
    layer = DenseLayer(units=8, activation="tanh", kernel_initializer="random_normal", bias_initializer="random_normal")
    params = MLP(input_dim=8, layers=(layer, layer, layer)).init(getkey())
    kernels = [np.asarray(p["kernel"]) for p in layer_params(params)]
    biases = [np.asarray(p["bias"]) for p in layer_params(params)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.array_equal(kernels[i], kernels[j])
            assert not np.array_equal(biases[i], biases[j])
    # Kernel and bias of one layer come from different keys too.
    for kernel, bias in zip(kernels, biases):
        assert not np.any(np.isin(bias, kernel))


def test_per_layer_initializers_are_honoured(getkey):
    mlp = MLP(
        input_dim=100,
        layers=(
            DenseLayer(units=64, activation="tanh", kernel_initializer="random_normal(stddev=2.0)", bias_initializer="ones"),
            DenseLayer(units=32, activation="relu", kernel_initializer="zeros", bias_initializer="constant(value=-0.25)"),
            DenseLayer(units=10, activation="softmax"),  # Keras defaults: glorot_uniform, zeros
        ),
    )
    first, second, output = layer_params(mlp.init(getkey()))

    kernel = np.asarray(first["kernel"])
    # 6400 draws of N(0, 4): the sample std is within 5% of 2 with overwhelming probability.
    assert abs(kernel.std() - 2.0) < 0.1
    assert abs(kernel.mean()) < 5 * 2.0 / math.sqrt(kernel.size)
    np.testing.assert_array_equal(np.asarray(first["bias"]), np.ones(64, np.float32))

    np.testing.assert_array_equal(np.asarray(second["kernel"]), np.zeros((64, 32), np.float32))
    np.testing.assert_array_equal(np.asarray(second["bias"]), np.full(32, -0.25, np.float32))

    limit = math.sqrt(6.0 / (32 + 10))
    glorot = np.asarray(output["kernel"])
    assert np.all(np.abs(glorot) <= limit)
    assert abs(glorot.std() - limit / math.sqrt(3.0)) < 0.15 * limit / math.sqrt(3.0)
    np.testing.assert_array_equal(np.asarray(output["bias"]), np.zeros(10, np.float32))


def test_dense_layer_defaults_are_keras():
    layer = DenseLayer(units=3)
    assert (layer.activation, layer.kernel_initializer, layer.bias_initializer) == ("linear", "glorot_uniform", "zeros")


@pytest.mark.parametrize("units", [0, -3, 2.5, True, "64", None])
def test_invalid_units_raise(units):
    with pytest.raises(InitlabError, match="units"):
        DenseLayer(units=units)


@pytest.mark.parametrize(
    "field, spec",
    [("activation", "sigmoidd"), ("kernel_initializer", "random_norml"), ("bias_initializer", "RandomNormal(stdev=1.0)")],
)
def test_invalid_layer_specs_raise_at_construction(field, spec):
    with pytest.raises(InitlabError):
        DenseLayer(units=4, **{field: spec})


@pytest.mark.parametrize("input_dim", [0, -1, 2.5])
def test_invalid_input_size_raises(input_dim):
    with pytest.raises(InitlabError, match="input size"):
        MLP(input_dim=input_dim, layers=(DenseLayer(units=2),))


def test_mlp_needs_a_layer():
    with pytest.raises(InitlabError, match="at least one layer"):
        MLP(input_dim=3, layers=())
