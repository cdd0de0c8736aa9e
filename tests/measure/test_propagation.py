"""Signal propagation at initialization: the classic findings, measured through the public API.

Mean-field bookkeeping used below, for a layer ``z^l = W^l h^(l-1)`` of fan-in ``n`` with
zero-mean weights of variance ``Var(W)``:

* forward:  ``Var(z^l) = n Var(W) E[f(z^(l-1))^2]``;
* backward: ``Var(dL/dz^l) = n Var(W) E[f'(z^l)^2] Var(dL/dz^(l+1))`` (fan-out = n here);
* weights:  ``Var(dL/dW^l) ~ E[h^(l-1)^2] Var(dL/dz^l)``.

Layers are numbered 1 (next to the input) to ``depth`` (next to the readout).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.measure.propagation import PropagationResult, jacobian_singular_values, propagate
from initlab.viz.signal import (
    IsometryDisplay,
    LayerHistogramsDisplay,
    PropagationDisplay,
)

DEPTH = 10
WIDTH = 512
# Glorot & Bengio's "standard" initialization: U[-1/sqrt(n), 1/sqrt(n)], so n Var(W) = 1/3.
STANDARD = f"random_uniform(minval={-1 / math.sqrt(WIDTH)!r}, maxval={1 / math.sqrt(WIDTH)!r})"
# Var(W) = 1/n: LeCun's scale, right for tanh, half of what ReLU needs.
LECUN_GAUSSIAN = f"random_normal(stddev={math.sqrt(1 / WIDTH)!r})"
TINY = {"depth": 3, "width": 32, "batch": 64, "inputs": "normal", "bins": 20}


def per_layer_ratios(values: list[float]) -> np.ndarray:
    values = np.asarray(values)
    return values[1:] / values[:-1]


def geometric_mean_ratio(values: list[float]) -> float:
    """The average factor from one layer to the next, (last / first)^(1 / (depth - 1))."""
    return float((values[-1] / values[0]) ** (1 / (len(values) - 1)))


@pytest.fixture(scope="module")
def tanh_result() -> PropagationResult:
    """Glorot & Bengio's setting: tanh, MNIST inputs, standard vs normalized initialization."""
    return propagate([STANDARD, "glorot_uniform"], depth=DEPTH, width=WIDTH, activation="tanh", inputs="mnist", batch=1000)


@pytest.fixture(scope="module")
def relu_result() -> PropagationResult:
    return propagate([LECUN_GAUSSIAN, "he_normal"], depth=DEPTH, width=WIDTH, activation="relu", inputs="normal", batch=500)


# (1) Glorot & Bengio (2010), section 4.2 and figure 7. With the standard init n Var(W) = 1/3,
# and the activations are so small that tanh'(z) ~ 1, so each step DOWN toward the input
# multiplies Var(dL/dz) by ~1/3: the back-propagated gradient variance shrinks from the top
# layer to the input (over 9 steps, ~3^9 ~ 2e4 times), and the histograms of the lower layers
# are peaked at 0. The forward activations shrink by the same 1/3 per layer going up, so the
# weight gradients Var(dL/dW) ~ Var(h) Var(dL/dz) stay about the same in every layer (their
# eq. 14 discussion). Normalized (Glorot) init has n Var(W) = 1 for the square layers, so only
# E[tanh'(z)^2] < 1 (about 1 - 2 Var(z), with Var(z) falling from 0.14 to 0.04) still shrinks
# the gradient, by ~3x over the 9 steps at depth 10 (G&B's 5 layers: < 2x).


def test_standard_init_backpropagated_gradients_shrink_toward_the_input(tanh_result):
    standard = tanh_result.run(STANDARD)
    ratios = per_layer_ratios(standard.gradient_variance)
    assert np.all(ratios > 1), "Var(dL/dz) must grow from each layer to the one above it"
    assert 1 / geometric_mean_ratio(standard.gradient_variance) == pytest.approx(1 / 3, abs=0.03)
    assert standard.gradient_variance[-1] / standard.gradient_variance[0] > 5_000


def test_standard_init_shrinks_activations_but_keeps_weight_gradients_flat(tanh_result):
    standard = tanh_result.run(STANDARD)
    assert geometric_mean_ratio(standard.preactivation_variance) == pytest.approx(1 / 3, abs=0.03)
    weight_gradients = np.asarray(standard.weight_gradient_variance)
    assert weight_gradients.max() / weight_gradients.min() < 3


def test_glorot_init_keeps_backpropagated_gradients_roughly_flat(tanh_result):
    glorot = tanh_result.run("glorot_uniform")
    first, last = glorot.gradient_variance[0], glorot.gradient_variance[-1]
    assert 1 < last / first < 4
    assert np.all(np.asarray(glorot.preactivation_variance) > 0.03)  # no vanishing forward signal
    assert max(glorot.saturation_fraction) < 0.01  # nor saturation


def test_first_layer_variance_follows_the_measured_input_moment(tanh_result):
    # Mean field: q^1 = sigma_w^2 q0 + sigma_b^2, with q0 the mean squared input entry.
    assert tanh_result.q0 == pytest.approx(tanh_result.input_variance + tanh_result.input_mean**2, rel=1e-6)
    for run in tanh_result.runs:
        predicted = run.sigma_w2[0] * tanh_result.q0 + run.sigma_b2
        assert run.preactivation_variance[0] == pytest.approx(predicted, rel=0.1)
    assert tanh_result.run("glorot_uniform").sigma_w2[1:] == pytest.approx([1.0] * (DEPTH - 1))
    assert tanh_result.run(STANDARD).sigma_w2[1:] == pytest.approx([1 / 3] * (DEPTH - 1))


# (2) He et al. (2015), section 2.2: a ReLU zeroes half of a symmetric pre-activation, so
# E[relu(z)^2] = Var(z) / 2 and Var(z^(l+1)) = n Var(W) Var(z^l) / 2. With Var(W) = 1/n the
# variance halves at every layer; He's Var(W) = 2/n keeps it. Finite width makes each layer's
# ratio fluctuate by ~6% (relative), so single layers get +-20% and the average over 9 layers +-0.05.


def test_relu_with_variance_one_over_n_halves_the_variance_per_layer(relu_result):
    values = relu_result.run(LECUN_GAUSSIAN).preactivation_variance
    assert geometric_mean_ratio(values) == pytest.approx(0.5, abs=0.05)
    assert np.all(np.abs(per_layer_ratios(values) - 0.5) < 0.1)


def test_he_normal_keeps_the_relu_variance(relu_result):
    values = relu_result.run("he_normal").preactivation_variance
    assert geometric_mean_ratio(values) == pytest.approx(1.0, abs=0.05)
    assert np.all(np.abs(per_layer_ratios(values) - 1.0) < 0.2)


# (3) Saxe et al. (2014), Pennington et al. (2017): a linear net's Jacobian is the product of
# its kernels. Orthogonal kernels multiply to an orthogonal matrix (every singular value 1:
# dynamical isometry); Gaussian ones of variance 1/n keep the mean squared singular value at 1
# but spread the values over orders of magnitude as depth grows.


def test_orthogonal_linear_network_is_an_isometry():
    result = jacobian_singular_values("orthogonal", depth=DEPTH, width=256, activation="linear")
    assert result.singular_values.shape == (1, 256)
    np.testing.assert_allclose(result.singular_values, 1.0, atol=1e-4)


def test_gaussian_linear_network_spreads_the_singular_values():
    result = jacobian_singular_values(f"random_normal(stddev={1 / 16!r})", depth=DEPTH, width=256, activation="linear")
    assert result.spread > 0.5
    assert result.singular_values.min() < 0.1 < 2 < result.singular_values.max()
    assert result.mean_squared == pytest.approx(1.0, rel=0.3)
    json.dumps(result.to_dict(), allow_nan=False)


def test_orthogonal_gain_scales_every_singular_value_by_gain_to_the_depth():
    result = jacobian_singular_values("orthogonal(gain=1.1)", depth=3, width=32, samples=2)
    assert result.singular_values.shape == (2, 32)
    np.testing.assert_allclose(result.singular_values, 1.1**3, rtol=1e-4)


# Plumbing: histograms, result layout, determinism, errors, displays.


def test_histograms_count_every_value_of_every_layer(tanh_result):
    for run in tanh_result.runs:
        for histogram in (run.activation_histogram, run.gradient_histogram):
            assert len(histogram["edges"]) == tanh_result.bins + 1
            assert len(histogram["counts"]) == DEPTH
            assert all(sum(counts) == tanh_result.batch * WIDTH for counts in histogram["counts"])
        assert run.activation_histogram["edges"][0] == -1.0 and run.activation_histogram["edges"][-1] == 1.0
    # The standard init's lowest layer has the narrowest gradients: most mass in the central bins.
    counts = np.asarray(tanh_result.run(STANDARD).gradient_histogram["counts"], float)
    central = counts[:, tanh_result.bins // 2 - 1 : tanh_result.bins // 2 + 1].sum(1) / counts.sum(1)
    assert central[0] > 0.99 and central[0] > central[-1]


def test_result_is_tidy_and_json_able(tanh_result):
    out = tanh_result.to_dict()
    assert json.loads(json.dumps(out, allow_nan=False))["runs"][1]["initializer"] == "glorot_uniform"
    assert out["initializers"] == [STANDARD, "glorot_uniform"]
    assert out["input_dim"] == 784 and out["inputs"] == "mnist_images"
    rows = tanh_result.rows()
    assert len(rows) == 2 * 6 * DEPTH  # two runs, six statistics, every layer
    assert set(rows[0]) == {"initializer", "layer", "statistic", "value"}


def test_unbounded_activation_has_no_saturation_and_data_range_bins(relu_result):
    run = relu_result.run("he_normal")
    assert run.saturation_fraction is None
    assert run.activation_histogram["edges"][0] == 0.0  # ReLU's smallest output
    assert len(relu_result.rows()) == 2 * 5 * DEPTH  # no saturation rows


def test_crossentropy_readout_and_fixed_bins():
    fixed = propagate("he_normal", activation="relu", loss="categorical_crossentropy", activation_range=(0.0, 1.0),
                      gradient_range=(-1e-3, 1e-3), **TINY)
    assert fixed.loss == "categorical_crossentropy" and "softmax" in fixed.readout
    assert fixed.runs[0].activation_histogram["edges"][-1] == 1.0
    assert fixed.runs[0].gradient_histogram["edges"][-1] == pytest.approx(1e-3)
    for histogram in (fixed.runs[0].activation_histogram, fixed.runs[0].gradient_histogram):
        assert all(sum(c) == TINY["batch"] * TINY["width"] for c in histogram["counts"])


def test_same_seed_same_numbers_other_seed_other_numbers():
    first = propagate("orthogonal", seed=3, **TINY).to_dict()
    assert propagate("orthogonal", seed=3, **TINY).to_dict() == first
    assert propagate("orthogonal", seed=4, **TINY).to_dict() != first
    assert (jacobian_singular_values("glorot_uniform", depth=2, width=16, seed=1).singular_values
            == jacobian_singular_values("glorot_uniform", depth=2, width=16, seed=1).singular_values).all()


@pytest.mark.parametrize(
    "arguments",
    [
        {"depth": 0},
        {"width": -1},
        {"batch": 0},
        {"initializers": "no_such_initializer"},
        {"initializers": []},
        {"initializers": ["glorot_uniform", "GlorotUniform"]},
        {"inputs": "no_such_source"},
        {"loss": "no_such_loss"},
    ],
)
def test_bad_requests_raise_initlab_error(arguments):
    arguments = {"initializers": "glorot_uniform", **TINY, **arguments}
    with pytest.raises(InitlabError):
        propagate(**arguments)


@pytest.mark.parametrize("arguments", [{"depth": 0}, {"initializer": "no_such_initializer"}, {"samples": 0}])
def test_bad_jacobian_requests_raise_initlab_error(arguments):
    with pytest.raises(InitlabError):
        jacobian_singular_values(**{"initializer": "orthogonal", "depth": 2, "width": 8, **arguments})


def test_displays_draw_results_and_theory(tanh_result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    theory = np.geomspace(0.1, 0.01, DEPTH + 1)  # depth + 1 values: starts at layer 0
    display = PropagationDisplay.from_result(tanh_result, theory_forward={"glorot_uniform": theory}).plot()
    assert len(display.axes_[0].lines) == 3 and len(display.axes_[1].lines) == 2
    assert display.axes_[0].get_yscale() == "log"
    assert display.axes_[0].lines[2].get_xdata()[0] == 0
    grid = LayerHistogramsDisplay.from_result(tanh_result, kind="gradient").plot()
    assert sum(ax.get_visible() for ax in grid.axes_) == 2 and len(grid.axes_[0].patches) == DEPTH
    isometry = IsometryDisplay({"orthogonal": [1.0] * 8, "gaussian": [0.01, 0.5, 3.0]}).plot()
    assert isometry.ax_.get_xscale() == "log"
    with pytest.raises(InitlabError):
        LayerHistogramsDisplay.from_result(tanh_result, kind="weights")
    plt.close("all")


def test_deep_gaussian_products_resolve_singular_values_far_below_float32():
    # A 64-layer linear product of 64 x 64 Gaussian kernels (variance 1/n): its log singular
    # values per layer approach the Lyapunov exponents of real Gaussian matrices,
    # lambda_i = (log(2/n) + digamma((n - i + 1)/2)) / 2 (Newman 1986). The median sits near
    # exp(-22) of the largest: a float32 product reports rounding noise there instead.
    from scipy.special import digamma

    n, depth = 64, 64
    result = jacobian_singular_values(f"random_normal(stddev={1 / math.sqrt(n)})", depth=depth, width=n, samples=4)
    assert result.precision == "float64"
    lyapunov = (np.log(2 / n) + digamma((n - np.arange(1, n + 1) + 1) / 2)) / 2
    median_exponent = np.mean(np.log(np.median(result.singular_values, axis=1))) / depth
    assert median_exponent == pytest.approx((lyapunov[n // 2 - 1] + lyapunov[n // 2]) / 2, abs=0.02)
    assert np.median(result.singular_values) > result.resolution


def test_the_cli_marks_singular_values_below_float64s_resolution():
    from typer.testing import CliRunner

    from initlab.cli import app

    result = CliRunner().invoke(app, ["isometry", "--init", "random_normal(stddev=0.0625)", "--depth", "10",
                                      "--width", "256"], env={"COLUMNS": "120"})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "random_normal" in line)
    assert row.split("│")[2].strip().startswith("<"), row  # its smallest value is rounding noise
