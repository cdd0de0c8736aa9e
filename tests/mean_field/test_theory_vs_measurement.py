"""Theory beside measurement: the measured pre-activation variance of wide networks (12 layers)
against the mean-field prediction (:func:`predicted_preactivation_variance`), which starts from
the measured mean square of the inputs and iterates the variance map with each layer's sigma_w^2.

The theory predicts the expectation over network draws. One draw of a finite network scatters
around it: each layer's weights multiply the variance by 1 + O(sqrt(2 / width)), and where the
map does not contract these factors compound over depth (for ReLU at the critical he_normal,
a random walk of about sqrt(2 * layer / width) in relative terms; Hanin & Rolnick 2018). So:
- tanh and sigmoid (contracting maps): every layer within 5% of theory, averaged over 4 draws;
- relu: the map itself within 5% (or 3 standard errors of the 8 draws, if larger) at every
  layer, each layer predicted from the measured one below it; and the compounded prediction within 3 standard errors of the draws'
  scatter (about 15% per draw at layer 12, width 1024).
"""

from __future__ import annotations

import numpy as np
import pytest

from initlab.mean_field import theory
from initlab.measure.propagation import predicted_preactivation_variance, propagate

DEPTH, WIDTH, DRAWS = 12, 1024, 4


def measure(activation: str, initializer: str, draws: int = DRAWS) -> tuple[np.ndarray, np.ndarray, list]:
    measured, predicted, results = [], [], []
    for seed in range(draws):
        result = propagate([initializer], depth=DEPTH, width=WIDTH, activation=activation, inputs="normal",
                           batch=128, seed=seed)
        measured.append(result.runs[0].preactivation_variance)
        predicted.append(predicted_preactivation_variance(result)[result.runs[0].initializer])
        results.append(result)
    return np.array(measured), np.array(predicted), results


@pytest.mark.parametrize(
    "activation, initializer",
    [("tanh", "glorot_uniform"), ("tanh", "he_normal"), ("sigmoid", "glorot_normal"), ("sigmoid", "lecun_uniform")],
)
def test_contracting_maps_agree_layer_by_layer(activation, initializer):
    measured, predicted, _ = measure(activation, initializer)
    relative = np.abs(measured.mean(0) / predicted.mean(0) - 1)
    assert relative.max() < 0.05, f"worst layer off by {relative.max():.1%}: {np.round(relative, 3)}"


def test_relu_variance_map_and_its_compounding():
    measured, predicted, results = measure("relu", "he_normal", draws=8)
    # The map, layer by layer: q(l+1) = sigma_w2 E[relu(sqrt(q(l)) z)^2] from the measured q(l).
    one_step = np.array([
        [theory.variance_map(q, result.runs[0].sigma_w2[layer + 1], 0.0, "relu") for layer, q in enumerate(row[:-1])]
        for row, result in zip(measured, results)
    ])
    ratios = measured[:, 1:] / one_step
    relative = np.abs(ratios.mean(0) - 1)
    tolerance = np.maximum(0.05, 3 * ratios.std(0, ddof=1) / np.sqrt(len(ratios)))
    assert np.all(relative < tolerance), f"one-step map off by {np.round(relative, 3)} (tolerance {np.round(tolerance, 3)})"
    # Compounded over depth: within 3 standard errors of the draws' own scatter.
    ratio = measured / predicted
    standard_error = ratio.std(0, ddof=1) / np.sqrt(len(ratio))
    assert np.all(np.abs(ratio.mean(0) - 1) < 3 * standard_error + 0.01)


def test_the_comparison_can_fail():
    """A wrong map (sigma_w^2 off by 20%) is caught: the check is not vacuous."""
    measured, predicted, _ = measure("tanh", "glorot_uniform")
    assert np.abs(measured.mean(0) / (1.2 * predicted.mean(0)) - 1).max() > 0.05
