"""Width parametrizations and the coordinate check, through the public API and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from initlab.cli import app
from initlab.errors import InitlabError
from initlab.nn.models import MLP, DenseLayer
from initlab.scaling import PARAMETRIZATIONS, coord_check, layer_rules, roles_of

# What "grows with width" and "near zero" mean for a fitted log2-log2 slope (a factor of
# 2**slope per doubling of width): SP's logits grow by about 2x per doubling under Adam.
CLEARLY_POSITIVE = 0.5
NEAR_ZERO = 0.2
WIDTHS = (64, 128, 256, 512, 1024)


@pytest.mark.parametrize("name", PARAMETRIZATIONS)
def test_at_the_base_width_every_parametrization_is_the_standard_one(name):
    for rule in layer_rules(name, roles_of(2 if name == "mf" else 3), width=256, base_width=256):
        assert (rule.init, rule.forward, rule.lr_sgd, rule.lr_adam, rule.bias_init) == (1, 1, 1, 1, 1)


def test_mup_rules_are_microsoft_mups():
    m = 8.0
    input_rule, hidden, output = layer_rules("mup", roles_of(3), width=512, base_width=64)
    assert (input_rule.lr_sgd, input_rule.lr_adam, input_rule.forward) == (m, 1, 1)  # vector-like
    assert (hidden.lr_sgd, hidden.lr_adam, hidden.forward, hidden.bias_lr_sgd) == (1, 1 / m, 1, m)  # matrix-like
    assert (output.forward, output.init, output.lr_sgd, output.lr_adam) == (1 / m, math.sqrt(m), m, 1)  # MuReadout


def test_a_forward_multiplier_is_the_kernel_times_it(getkey):
    import jax

    layers = (DenseLayer(units=8, activation="tanh"), DenseLayer(units=3, input_multiplier=0.25))
    plain = MLP(input_dim=5, layers=(layers[0], DenseLayer(units=3)))
    scaled = MLP(input_dim=5, layers=layers)
    params = plain.init(getkey())
    x = jax.random.normal(getkey(), (4, 5))
    times_kernel = {**params, "Dense_1": {**params["Dense_1"], "kernel": 0.25 * params["Dense_1"]["kernel"]}}
    np.testing.assert_allclose(scaled.apply(params, x), plain.apply(times_kernel, x), rtol=1e-6)
    _, taps = scaled.apply_with_intermediates(params, x)  # the taps see the previous layer's own output
    _, plain_taps = plain.apply_with_intermediates(params, x)
    np.testing.assert_array_equal(taps[0].activation, plain_taps[0].activation)


@pytest.fixture(scope="module")
def checks():
    return {name: coord_check(name, widths=WIDTHS, steps=3, seeds=(0, 1)) for name in ("sp", "mup")}


def test_under_sp_with_adam_coordinates_grow_with_width(checks):
    slopes = checks["sp"].slopes()
    assert slopes[-1, 1:].max() > CLEARLY_POSITIVE  # the logits
    assert slopes[1, 1:].max() > NEAR_ZERO  # the second hidden layer's activations


def test_under_mup_every_layers_coordinates_stay_put(checks):
    slopes = checks["mup"].slopes()
    assert np.abs(slopes[:, 1:]).max() < NEAR_ZERO, slopes
    assert abs(slopes[:-1, 0]).max() < NEAR_ZERO  # the hidden layers at initialization
    assert slopes[-1, 0] == pytest.approx(-0.5, abs=0.15)  # muP's logits start at O(1/sqrt(width))


def test_the_layer_whose_update_breaks_width_scaling_is_named(checks):
    # Each layer's own update, m x_in @ (W_t - W_0): SP's hidden and output updates grow with width
    # under Adam (the layers that break transfer); muP keeps every one O(1).
    layer, slope, step = checks["sp"].worst_layer()
    assert layer in ("Dense_1", "Dense_2") and slope > CLEARLY_POSITIVE and 1 <= step <= 3
    assert np.abs(checks["mup"].update_slopes()).max() < NEAR_ZERO
    assert np.all(checks["mup"].updates[:, 0] == 0)  # nothing has moved at step 0


def test_at_the_base_width_mup_and_sp_record_the_same_numbers(checks):
    np.testing.assert_allclose(checks["mup"].values[:, :, 0], checks["sp"].values[:, :, 0], rtol=1e-5)


def test_the_check_is_reproducible_and_its_json_is_standard(checks):
    again = coord_check("mup", widths=WIDTHS[:2], steps=3, seeds=(0, 1))
    np.testing.assert_array_equal(again.values, checks["mup"].values[:, :, :2])
    document = json.loads(json.dumps(checks["mup"].to_dict(), allow_nan=False))
    assert set(document["layers"]) == {"Dense_0/activation", "Dense_1/activation", "Dense_2/logits"}
    assert len(document["layers"]["Dense_2/logits"]["step 3"]["values"]) == len(WIDTHS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(widths=(128, 64)), "must increase"),
        (dict(widths=(64,)), "at least two"),
        (dict(widths=(64, 128), base_width=256), "larger than every width"),
        (dict(optimizer="rmsprop"), "sgd or adam"),
        (dict(steps=0), "steps"),
        (dict(seeds=()), "at least one seed"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(InitlabError, match=message):
        coord_check("mup", **{"widths": (64, 128), **kwargs})


def test_cli_prints_slopes_and_writes_the_figure(tmp_path):
    plot = tmp_path / "coord.svg"
    result = CliRunner().invoke(app, ["mup", "coord-check", "--widths", "64,128", "--steps", "1", "--seeds", "0",
                                      "--plot", str(plot), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert [r["parametrization"] for r in document["results"]] == ["sp", "mup"]
    assert plot.read_text().lstrip().startswith("<?xml")
