"""The main job's conclusions say only what the seeds support (paired intervals), with computed facts."""

from __future__ import annotations

import math

import pytest

from initlab.analysis.summary import paired_difference
from initlab.reproduce import conclusions, plan

PART_A = [
    {"initializer": "random_normal(stddev=1.0)", "saturation_fraction": 0.89, "saturation_fraction_se": 0.001,
     "predicted_saturation_fraction": 0.892, "units": 256, "activation": "sigmoid", "low": 0.1, "high": 0.9,
     "prediction": "exact"},
    {"initializer": "glorot_uniform", "saturation_fraction": 0.002, "saturation_fraction_se": 0.0003,
     "predicted_saturation_fraction": 0.002, "units": 256, "activation": "sigmoid", "low": 0.1, "high": 0.9,
     "prediction": "approximate"},
]  # fmt: skip
TUTORIAL = "random_normal (the tutorial)"


def test_paired_difference_is_students_t_over_the_seed_pairs():
    a, b = {0: 0.50, 1: 0.52, 2: 0.55}, {0: 0.40, 1: 0.45, 2: 0.43, 3: 0.9}  # seed 3 has no pair
    difference = paired_difference(a, b)
    pairs = [0.10, 0.07, 0.12]
    mean = sum(pairs) / 3
    sd = math.sqrt(sum((p - mean) ** 2 for p in pairs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert (difference.n, difference.mean) == (3, pytest.approx(mean))
    assert (difference.low, difference.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert difference.distinguishable
    assert paired_difference({0: 0.5}, {0: 0.4}).low is None
    assert paired_difference({0: 0.5}, {1: 0.4}) is None


def test_overlapping_configurations_are_called_indistinguishable_not_ranked():
    accuracies = {
        TUTORIAL: {0: 0.40, 1: 0.44, 2: 0.42},
        "glorot_uniform": {0: 0.41, 1: 0.43, 2: 0.44},  # within noise of the tutorial's
        "random_normal(stddev=1.0)": {0: 0.30, 1: 0.31, 2: 0.29},
    }
    text = " ".join(conclusions(PART_A, accuracies, epochs=7))
    assert "indistinguishable" in text and "the best is" not in text
    assert "after 7 epochs" in text and "20 epochs" in text  # ours computed; 20 is the tutorial's own claim
    assert "89.0%" in text and "0.1% s.e." in text


def test_a_clear_winner_is_named_with_its_interval():
    accuracies = {
        TUTORIAL: {0: 0.40, 1: 0.44, 2: 0.42},
        "he_normal": {0: 0.80, 1: 0.83, 2: 0.82},
        "random_normal(stddev=1.0)": {0: 0.30, 1: 0.31, 2: 0.29},
    }
    text = " ".join(conclusions(PART_A, accuracies, epochs=1))
    assert "the best is he_normal" in text and "95% CI" in text and "after 1 epoch " in text


def test_the_plan_names_every_configuration_in_its_one_spelling():
    labels = plan(seeds=(0,), epochs=1).labels
    assert TUTORIAL in labels and "random_normal(stddev=1.0)" in labels
    assert not any("RandomNormal" in label for label in labels)
