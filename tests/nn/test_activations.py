"""Activations against NumPy closed forms and against ``keras.activations``."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from numpy_reference import ACTIVATIONS

from initlab.nn.activations import activations, build

os.environ.setdefault("KERAS_BACKEND", "jax")

NON_DEFAULT = {
    "leaky_relu(alpha=0.1)": lambda x: np.where(x > 0, x, 0.1 * x),
    "elu(alpha=0.5)": lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)),
    "gelu(approximate=True)": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
}

# Float32 inputs on a grid through the interesting region, as a (rows, columns) batch for softmax.
X = (
    np.concatenate([np.linspace(-8, 8, 161), [-20.0, -1e-3, 0.0, 1e-3, 20.0, 0.5, -0.5]])
    .astype(np.float32)
    .reshape(8, 21)
)
# float32 results differ from float64 closed forms by a few ulps (rtol); near zero, where a
# difference of nearly equal numbers is tiny (gelu at -8), the absolute tolerance takes over.
RTOL, ATOL = 1e-6, 1e-6


def _apply(activation, x):
    return np.asarray(activation(x), dtype=np.float64)


def test_every_activation_has_a_reference():
    assert set(activations.names) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", activations.names)
def test_matches_numpy_closed_form(name):
    expected = ACTIVATIONS[name](X.astype(np.float64))
    np.testing.assert_allclose(_apply(build(name), X), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("spec", list(NON_DEFAULT))
def test_non_default_hyperparameters_match_numpy(spec):
    expected = NON_DEFAULT[spec](X.astype(np.float64))
    np.testing.assert_allclose(_apply(build(spec), X), expected, rtol=RTOL, atol=ATOL)


def test_keras_defaults():
    assert activations.resolve("leaky_relu")[1] == {"alpha": 0.2}
    assert activations.resolve("elu")[1] == {"alpha": 1.0}
    assert activations.resolve("gelu")[1] == {"approximate": False}
    x = np.array([-1.0, 1.0], np.float32)
    np.testing.assert_allclose(_apply(build("leaky_relu"), x), [-0.2, 1.0], rtol=1e-6)
    np.testing.assert_allclose(_apply(build("elu"), x), [math.exp(-1) - 1, 1.0], rtol=1e-6)
    # Exact gelu: x * Phi(x); the tanh approximation gives 0.841192 at 1.
    np.testing.assert_allclose(_apply(build("gelu"), x)[1], 0.5 * (1 + math.erf(1 / math.sqrt(2))), rtol=1e-6)


@pytest.mark.parametrize(
    ("written", "name"), [("LeakyReLU", "leaky_relu"), ("silu", "swish"), ("identity", "linear"), ("none", "linear")]
)
def test_aliases(written, name):
    assert activations.entry(written).name == name


def test_softmax_rows_sum_to_one_along_the_last_axis():
    rows = _apply(build("softmax"), X)
    np.testing.assert_allclose(rows.sum(axis=-1), 1.0, rtol=1e-6)
    assert not np.allclose(rows.sum(axis=0), 1.0)


@pytest.mark.parametrize(
    ("name", "thresholds"),
    [
        ("sigmoid", (0.1, 0.9)),
        ("tanh", (-0.9, 0.9)),
        ("softsign", (-0.9, 0.9)),
        ("relu", None),
        ("elu", None),
        ("linear", None),
    ],
)
def test_saturation_thresholds(name, thresholds):
    result = build(name).saturation_thresholds()
    if thresholds is None:
        assert result is None
    else:
        assert result == pytest.approx(thresholds, abs=1e-12)


def test_saturation_thresholds_with_custom_margin():
    assert build("sigmoid").saturation_thresholds(0.05) == pytest.approx((0.05, 0.95), abs=1e-12)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softsign"])
def test_bounded_outputs_lie_in_their_range(name):
    activation = build(name)
    low, high = activation.output_range
    outputs = _apply(activation, X)
    assert activation.bounded
    assert outputs.min() >= low and outputs.max() <= high


def test_relu_family():
    assert build("relu").relu_family and build("leaky_relu").relu_family
    assert not build("tanh").relu_family and not build("sigmoid").relu_family


# Keras's names for arguments that initlab names differently.
KERAS_ARGUMENT_NAMES = {("leaky_relu", "alpha"): "negative_slope"}
NOT_KERAS = {"erf"}
"""initlab's activations that Keras does not have (their NumPy closed form is the reference)."""


@pytest.mark.parametrize("spec", [name for name in activations.names if name not in NOT_KERAS] + list(NON_DEFAULT))
def test_matches_keras(spec, keras):
    entry, kwargs = activations.resolve(spec)
    keras_function = getattr(keras.activations, entry.name)
    keras_kwargs = {
        KERAS_ARGUMENT_NAMES.get((entry.name, k), k): v for k, v in kwargs.items() if v != entry.defaults[k]
    }
    expected = np.asarray(keras_function(X, **keras_kwargs), dtype=np.float64)
    np.testing.assert_allclose(_apply(build(spec), X), expected, rtol=RTOL, atol=1e-7)
