"""Results of a store as figures read them: bands over seeds, layer order, labels, colours."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initlab.analysis.results import (
    PALETTE,
    Band,
    Results,
    configuration_labels,
    layer_sort_key,
    theory_by_label,
)
from initlab.errors import InitlabError


def test_band_is_mean_and_sample_std_over_seeds_at_each_epoch() -> None:
    curves = [{1: 0.2, 2: 0.5}, {1: 0.4, 2: 0.7}, {1: 0.9}]
    band = Band.over(curves)
    np.testing.assert_array_equal(band.x, [1.0, 2.0])
    np.testing.assert_allclose(band.center, [np.mean([0.2, 0.4, 0.9]), 0.6])
    spread = np.array([np.std([0.2, 0.4, 0.9], ddof=1), np.std([0.5, 0.7], ddof=1)])
    np.testing.assert_allclose(band.high - band.center, spread)
    np.testing.assert_allclose(band.center - band.low, spread)
    np.testing.assert_array_equal(band.n, [3, 2])


def test_band_skips_non_finite_values_and_gives_one_seed_no_spread() -> None:
    band = Band.over([{0: 1.0, 1: math.nan}, {0: math.inf, 1: None}])
    np.testing.assert_array_equal(band.x, [0.0])
    np.testing.assert_array_equal(band.low, band.high)
    assert Band.over([{0: math.nan}]) is None
    assert Band.over([]) is None


def test_geometric_band_averages_logs_and_drops_non_positive_values() -> None:
    band = Band.over([{3: 1e-2}, {3: 1e-4}, {3: 0.0}], geometric=True)
    np.testing.assert_allclose(band.center, [1e-3])
    np.testing.assert_allclose(np.log10(band.high) - np.log10(band.center), [np.std([-2, -4], ddof=1)])
    np.testing.assert_array_equal(band.n, [2])


def test_layers_sort_by_depth_then_name() -> None:
    assert sorted(["10", "output", "2", "1"], key=layer_sort_key) == ["1", "2", "10", "output"]


def _runs() -> list[dict]:
    configs = [("glorot_uniform", 0), ("glorot_uniform", 1), ("he_normal", 0)]
    return [
        {"run_id": i, "label": None, "status": "done", "config": {"kernel_initializer": init, "seed": seed}}
        for i, (init, seed) in enumerate(configs)
    ]


def _metrics(rows: list[tuple[int, int, str, str, float]]) -> dict[str, list]:
    names = ("run_id", "epoch", "layer", "statistic", "value")
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def test_results_group_seeds_into_configurations_with_one_colour_each() -> None:
    results = Results(_runs(), _metrics([(0, 1, "", "val_accuracy", 0.5), (2, 1, "1", "activation_std", 2.0)]))
    assert results.order == ["glorot_uniform", "he_normal"]
    assert results.run_ids("glorot_uniform") == [0, 1]
    assert results.colors == {"glorot_uniform": PALETTE[0], "he_normal": PALETTE[1]}
    assert results.series("val_accuracy") == {0: {1: 0.5}}
    # A variance is derived from a stored standard deviation.
    assert results.series("activation_variance", "1") == {2: {1: 4.0}}
    assert results.layers("activation_std") == ["1"]
    assert configuration_labels(_runs()) == results.labels


def test_theory_is_keyed_by_run_or_label_and_averaged_over_a_configuration() -> None:
    results = Results(_runs(), _metrics([]))
    theory = {0: {"q": [1.0, 2.0]}, "1": {"q": [3.0, 4.0]}, "he_normal": {"q": {"2": 5.0}}}
    assert theory_by_label(theory, results) == {
        "glorot_uniform": {"q": {"1": 2.0, "2": 3.0}},
        "he_normal": {"q": {"2": 5.0}},
    }
    with pytest.raises(InitlabError, match="run 7"):
        theory_by_label({7: {"q": [1.0]}}, results)
    with pytest.raises(InitlabError, match="glorot_unifrom"):
        theory_by_label({"glorot_unifrom": {"q": [1.0]}}, results)


def test_a_networks_label_names_its_spec_not_the_mlps_activation_field():
    from initlab.analysis.results import configuration_labels

    one = configuration_labels([{"run_id": 1, "config": {"architecture": "cnn()", "kernel_initializer": "he_normal",
                                                          "activation": "sigmoid", "seed": 0}}])
    assert one == {1: "cnn() · he_normal"}
    two = configuration_labels([{"run_id": 1, "config": {"architecture": "cnn()", "seed": 0}},
                                {"run_id": 2, "config": {"architecture": "resnet()", "seed": 0}}])
    assert two == {1: "cnn()", 2: "resnet()"}
