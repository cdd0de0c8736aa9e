"""Part A through the public API: ``initlab.saturation`` and its Gaussian prediction.

The measured fraction of saturated outputs is checked against the prediction within a few of
its own standard errors, and the prediction against closed forms worked out by hand for the
tutorial's setups.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import initlab
from initlab.measure.saturation import gaussian_mass_where

DRAWS = 200
# A small layer for the tests that check plumbing rather than statistics.
SMALL = {"units": 64, "input_dim": 100, "draws": 100}


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def mass_outside(mean: float, std: float, low: float, high: float) -> float:
    """P(Z < low or Z > high) for Z ~ N(mean, std^2), in closed form."""
    return normal_cdf((low - mean) / std) + 1.0 - normal_cdf((high - mean) / std)


def assert_agrees_within_standard_errors(result: initlab.SaturationResult, errors: float = 4.0) -> None:
    assert result.saturation_fraction_se > 0
    gap = abs(result.saturation_fraction - result.predicted_saturation_fraction)
    assert gap <= errors * result.saturation_fraction_se, (
        f"measured {result.saturation_fraction:.5f} vs predicted {result.predicted_saturation_fraction:.5f}: "
        f"{gap / result.saturation_fraction_se:.1f} standard errors apart"
    )


@pytest.fixture(scope="module")
def tutorial() -> initlab.SaturationResult:
    """The tutorial's Part A: RandomNormal(stddev=1.0), Dense(256) on 784 U[0, 1) inputs, sigmoid."""
    return initlab.saturation(draws=DRAWS)


@pytest.fixture(scope="module")
def glorot() -> initlab.SaturationResult:
    return initlab.saturation("glorot_uniform", draws=DRAWS)


@pytest.fixture(scope="module")
def tanh_he() -> initlab.SaturationResult:
    return initlab.saturation("he_normal", activation="tanh", inputs="normal", draws=DRAWS)


def test_defaults_are_the_tutorials_setup(tutorial):
    assert tutorial.initializer == "random_normal(stddev=1.0)"
    assert tutorial.activation == "sigmoid"
    assert (tutorial.units, tutorial.input_dim, tutorial.draws) == (256, 784, DRAWS)
    assert tutorial.inputs == "uniform"
    assert (tutorial.low, tutorial.high) == pytest.approx((0.1, 0.9))
    assert tutorial.outputs.shape == (DRAWS, 256)


def test_tutorial_layer_is_mostly_saturated_as_predicted(tutorial):
    assert tutorial.saturation_fraction > 0.85
    assert_agrees_within_standard_errors(tutorial)


def test_tutorial_prediction_matches_hand_computed_value(tutorial):
    # z ~ N(0, sum x^2) with E[x^2] = 1/3, so std ~ sqrt(784/3); sigmoid(z) > 0.9 iff z > ln 9.
    std = math.sqrt(784 / 3)
    expected = mass_outside(0.0, std, -math.log(9.0), math.log(9.0))
    assert tutorial.predicted_preactivation_std == pytest.approx(std, rel=0.01)
    assert tutorial.predicted_saturation_fraction == pytest.approx(expected, abs=3e-3)


def test_tutorial_saturates_symmetrically(tutorial):
    # Zero-mean weights: as many outputs stuck near 0 as near 1.
    assert tutorial.low_fraction + tutorial.high_fraction == pytest.approx(tutorial.saturation_fraction, abs=1e-9)
    assert tutorial.low_fraction == pytest.approx(tutorial.high_fraction, abs=0.03)
    outputs = tutorial.outputs
    assert tutorial.low_fraction == pytest.approx(float((outputs < 0.1).mean()), abs=1e-6)
    assert tutorial.high_fraction == pytest.approx(float((outputs > 0.9).mean()), abs=1e-6)


def test_glorot_uniform_barely_saturates_and_agrees_with_prediction(glorot):
    assert glorot.initializer == "glorot_uniform"
    assert glorot.saturation_fraction < 0.01
    assert glorot.predicted_saturation_fraction < 0.01
    assert_agrees_within_standard_errors(glorot)
    # Var(w) = 2 / (784 + 256): pre-activation std sqrt(784/3 * 2/1040).
    assert glorot.predicted_preactivation_std == pytest.approx(math.sqrt(784 / 3 * 2 / 1040), rel=0.01)


def test_tanh_with_he_normal_on_normal_inputs_agrees_with_prediction(tanh_he):
    assert tanh_he.activation == "tanh"
    assert tanh_he.inputs == "normal"
    assert (tanh_he.low, tanh_he.high) == pytest.approx((-0.9, 0.9))
    assert_agrees_within_standard_errors(tanh_he)
    # Var(w) = 2 / 784 and E[x^2] = 1: pre-activation std sqrt(2); |tanh z| > 0.9 iff |z| > atanh(0.9).
    assert tanh_he.predicted_preactivation_std == pytest.approx(math.sqrt(2.0), rel=0.02)
    expected = mass_outside(0.0, math.sqrt(2.0), -math.atanh(0.9), math.atanh(0.9))
    assert tanh_he.predicted_saturation_fraction == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("name", ["tutorial", "glorot", "tanh_he"])
def test_measured_preactivation_std_agrees_with_prediction(name, request):
    result = request.getfixturevalue(name)
    assert result.preactivation_std == pytest.approx(result.predicted_preactivation_std, rel=0.02)


@pytest.mark.parametrize("name", ["tutorial", "glorot"])
def test_histogram_covers_sigmoid_range_and_every_output(name, request):
    result = request.getfixturevalue(name)
    edges = np.asarray(result.histogram["edges"])
    counts = np.asarray(result.histogram["counts"])
    assert len(edges) == len(counts) + 1 == 51
    assert edges[0] == pytest.approx(0.0)
    assert edges[-1] == pytest.approx(1.0)
    assert np.all(np.diff(edges) > 0)
    assert np.all(counts >= 0)
    assert counts.sum() == result.units * result.draws
    # Bin edges fall on multiples of 0.02, so the first five bins hold the outputs below 0.1.
    assert counts[:5].sum() / counts.sum() == pytest.approx(result.low_fraction, abs=1e-3)


def test_histogram_bins_follow_the_argument():
    result = initlab.saturation(**SMALL, bins=7)
    assert len(result.histogram["counts"]) == 7
    assert sum(result.histogram["counts"]) == SMALL["units"] * SMALL["draws"]


def test_explicit_thresholds_are_used():
    default = initlab.saturation(**SMALL, seed=3)
    wider = initlab.saturation(**SMALL, seed=3, low=0.2, high=0.8)
    assert (wider.low, wider.high) == (0.2, 0.8)
    np.testing.assert_array_equal(default.outputs, wider.outputs)
    outputs = wider.outputs
    assert wider.saturation_fraction == pytest.approx(float(((outputs < 0.2) | (outputs > 0.8)).mean()), abs=1e-6)
    assert wider.saturation_fraction > default.saturation_fraction
    assert wider.predicted_saturation_fraction > default.predicted_saturation_fraction


def test_one_explicit_threshold_keeps_the_other_default():
    result = initlab.saturation(**SMALL, low=0.05)
    assert (result.low, result.high) == pytest.approx((0.05, 0.9))


def test_unbounded_activation_with_both_thresholds_works():
    result = initlab.saturation("he_normal", **SMALL, activation="relu", inputs="normal", low=0.01, high=3.0)
    assert (result.low, result.high) == (0.01, 3.0)
    outputs = result.outputs
    assert result.saturation_fraction == pytest.approx(float(((outputs < 0.01) | (outputs > 3.0)).mean()), abs=1e-6)
    # Half the pre-activations are negative, so at least about half the outputs are below 0.01.
    assert result.saturation_fraction > 0.45
    assert_agrees_within_standard_errors(result)
    edges = result.histogram["edges"]
    assert edges[0] == pytest.approx(0.0)
    assert edges[-1] == pytest.approx(float(outputs.max()), rel=1e-5)


@pytest.mark.parametrize("thresholds", [{}, {"low": 0.1}, {"high": 2.0}])
def test_unbounded_activation_without_both_thresholds_is_an_error(thresholds):
    with pytest.raises(initlab.InitlabError, match="thresholds"):
        initlab.saturation(**SMALL, activation="relu", **thresholds)


@pytest.mark.parametrize(("low", "high"), [(0.9, 0.1), (0.5, 0.5)])
def test_low_not_below_high_is_an_error(low, high):
    with pytest.raises(initlab.InitlabError, match="low < high"):
        initlab.saturation(**SMALL, low=low, high=high)


@pytest.mark.parametrize(
    "sizes", [{"units": 0}, {"input_dim": -3}, {"draws": 0}, {"draws": -1}, {"bins": 0}, {"units": True}, {"draws": 2.5}]
)
def test_non_positive_sizes_are_errors(sizes):
    with pytest.raises(initlab.InitlabError, match="positive integer"):
        initlab.saturation(**(SMALL | sizes))


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"initializer": "glorot_unifrom"}, "glorot_uniform"),
        ({"initializer": "RandomNormal(stdev=1.0)"}, "stddev"),
        ({"activation": "sigmoidd"}, "sigmoid"),
        ({"inputs": "unifrom"}, "uniform"),
    ],
)
def test_unknown_names_are_errors_that_suggest_the_closest(arguments, fragment):
    with pytest.raises(initlab.InitlabError, match=f"did you mean '{fragment}'"):
        initlab.saturation(**SMALL, **arguments)


def test_same_seed_gives_identical_results():
    first = initlab.saturation(**SMALL, seed=11)
    second = initlab.saturation(**SMALL, seed=11)
    np.testing.assert_array_equal(first.outputs, second.outputs)
    assert first.to_dict() == second.to_dict()


def test_different_seeds_give_different_results():
    first = initlab.saturation(**SMALL, seed=11)
    second = initlab.saturation(**SMALL, seed=12)
    assert not np.array_equal(first.outputs, second.outputs)
    assert first.saturation_fraction != second.saturation_fraction


def test_to_dict_holds_every_column_but_the_raw_outputs():
    result = initlab.saturation(**SMALL)
    columns = result.to_dict()
    assert "outputs" not in columns
    for key in ("saturation_fraction", "saturation_fraction_se", "predicted_saturation_fraction", "histogram"):
        assert columns[key] == getattr(result, key)


# gaussian_mass_where: P(fn(Z) < low or fn(Z) > high) for Z ~ N(mean, std^2).

MASS_CASES = [
    # (mean, std, low, high)
    (0.0, 1.0, -1.0, 1.0),
    (0.0, 1.0, -1.959964, 1.959964),
    (0.5, 2.0, -1.0, 3.0),
    (-1.0, 0.5, -2.0, 0.0),
    (0.0, 1.0, -20.0, 1.281552),
    (3.0, 1.5, 0.0, 1.0),
]


def identity(z):
    return z


def test_gaussian_mass_where_is_elementwise_over_mean_and_std():
    means = np.array([0.0, 0.5, -1.0])
    stds = np.array([1.0, 2.0, 0.5])
    masses = gaussian_mass_where(identity, means, stds, -1.0, 1.0)
    assert masses.shape == (3,)
    expected = [mass_outside(m, s, -1.0, 1.0) for m, s in zip(means, stds)]
    np.testing.assert_allclose(masses, expected, atol=2e-3)
    # Larger spread around zero puts more mass outside [-1, 1].
    assert masses[1] > masses[0]


def test_gaussian_mass_where_applies_the_function():
    # 2Z < -1 or 2Z > 1  <=>  Z < -0.5 or Z > 0.5.
    mass = float(gaussian_mass_where(lambda z: 2 * z, 0.0, 1.0, -1.0, 1.0))
    assert mass == pytest.approx(mass_outside(0.0, 1.0, -0.5, 0.5), abs=2e-3)
    assert mass != pytest.approx(mass_outside(0.0, 1.0, -1.0, 1.0), abs=0.05)


@pytest.mark.parametrize(("mean", "std", "low", "high"), MASS_CASES)
def test_gaussian_mass_where_matches_closed_form_coarsely(mean, std, low, high):
    # The midpoint rule on 4001 cells over +-8 std can be off by half a cell's mass at each
    # threshold: at most 2 * 0.5 * 0.399 * 16 / 4001 = 1.6e-3.
    mass = float(gaussian_mass_where(identity, mean, std, low, high))
    assert mass == pytest.approx(mass_outside(mean, std, low, high), abs=2e-3)


def test_gaussian_mass_where_matches_closed_form_to_1e_4():
    errors = [
        abs(float(gaussian_mass_where(identity, mean, std, low, high)) - mass_outside(mean, std, low, high))
        for mean, std, low, high in MASS_CASES
    ]
    assert max(errors) < 1e-4, errors
