"""Ensembles: many models trained in one vmapped program give each model's own numbers.

Every check compares an ensemble with what ``initlab.train`` gives for each config alone (or
with another ensemble), on small synthetic data built in memory, so the whole file stays fast:
most of its time is XLA compiling one program per ensemble or run.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from same_training import assert_same_history, assert_same_params
from synthetic_data import write_mnist_like
from typer.testing import CliRunner

import initlab
from initlab.cli import app, parse_seeds
from initlab.data import Dataset
from initlab.errors import InitlabError
from initlab.training.config import TrainConfig
from initlab.training.ensembles import (
    chunk_size,
    compatibility_key,
    model_bytes,
    train_ensemble,
    train_many,
)
from initlab.training.loop import HISTORY_KEYS, epoch_order


def make_dataset(train_size: int, test_size: int = 64, seed: int = 0) -> Dataset:
    """MNIST-shaped uint8 pixels with random labels, as ``initlab.data`` stores them."""
    rng = np.random.default_rng(seed)
    eye = np.eye(10, dtype=np.float32)
    return Dataset(
        "mnist",
        rng.integers(0, 256, size=(train_size, 784), dtype=np.uint8),
        eye[rng.integers(0, 10, size=train_size)],
        rng.integers(0, 256, size=(test_size, 784), dtype=np.uint8),
        eye[rng.integers(0, 10, size=test_size)],
        scale=255.0,
    )


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """320 = 5 x 64: whole batches only (the cheapest program to compile)."""
    return make_dataset(320)


@pytest.fixture(scope="module")
def ragged_dataset() -> Dataset:
    """200 = 3 x 64 + 8: every epoch ends with a partial batch, as MNIST's 60000 does at 128."""
    return make_dataset(200, seed=1)


# ReLU and cross-entropy at a brisk learning rate: a model's numbers depend on the order of its
# batches well above float noise (under the tutorial's sigmoid, MSE and SGD(0.01) they barely
# move, and an ensemble that fed every model the same batches would pass unnoticed).
BASE = TrainConfig(
    hidden_units=(8,), batch_size=64, epochs=3, activation="relu", loss="categorical_crossentropy",
    optimizer="sgd(learning_rate=0.1)",
)  # fmt: skip
# Linear layers and a linear output under MSE: a large learning rate makes the loss explode.
LINEAR = dataclasses.replace(
    BASE, activation="linear", output_activation="linear", loss="mean_squared_error", epochs=4
)
CALM = "sgd(learning_rate=0.001)"
EXPLOSIVE = dict(kernel_initializer="RandomNormal(stddev=0.05)", optimizer="sgd(learning_rate=0.1)")


@pytest.fixture(scope="module")
def train_alone():
    """``initlab.train(config, dataset=dataset)``, each pair computed once per module."""
    cache: dict[tuple[TrainConfig, int], initlab.TrainResult] = {}

    def run(config: TrainConfig, dataset: Dataset) -> initlab.TrainResult:
        key = (config, id(dataset))
        if key not in cache:
            cache[key] = initlab.train(config, dataset=dataset)
        return cache[key]

    return run


def assert_same_result(actual: initlab.TrainResult, expected: initlab.TrainResult) -> None:
    assert actual.config == expected.config
    assert actual.diverged_epoch == expected.diverged_epoch
    assert set(expected.history) == set(HISTORY_KEYS)
    assert_same_history(actual.history, expected.history)
    assert_same_params(actual.params, expected.params)


# One ensemble equals its models trained one by one


def mixed_configs(slow: str, fast: str, count: int) -> list[TrainConfig]:
    """Configs differing in initializers, seed and learning rate: everything an ensemble lets vary."""
    variants = [
        dict(kernel_initializer="RandomNormal()", seed=0, optimizer=slow),
        dict(kernel_initializer="glorot_uniform", seed=1, optimizer=fast),
        dict(kernel_initializer="he_normal", seed=0, optimizer=fast),
        dict(kernel_initializer="RandomNormal(stddev=0.5)", seed=2, optimizer=slow,
             bias_initializer="RandomUniform(minval=-0.1, maxval=0.1)"),
        dict(kernel_initializer="glorot_uniform", seed=3, optimizer=slow, output_kernel_initializer="he_uniform"),
        dict(kernel_initializer="RandomNormal()", seed=1, optimizer=fast,
             layer_kernel_initializers=((1, "lecun_normal"),)),
    ]  # fmt: skip
    return [dataclasses.replace(BASE, **variant) for variant in variants[:count]]


OPTIMIZER_CASES = {
    "sgd": ("sgd(learning_rate=0.01)", "sgd(learning_rate=0.1)", 6, "ragged_dataset"),
    "sgd_momentum": ("sgd(learning_rate=0.01, momentum=0.9)", "sgd(learning_rate=0.05, momentum=0.9)", 3, "dataset"),
    "adam": ("adam(learning_rate=0.001)", "adam(learning_rate=0.01)", 3, "dataset"),
}


@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_ensemble_equals_each_model_trained_alone(case, train_alone, request):
    slow, fast, count, data_name = OPTIMIZER_CASES[case]
    data = request.getfixturevalue(data_name)
    configs = mixed_configs(slow, fast, count)
    assert len({compatibility_key(c) for c in configs}) == 1

    results = train_ensemble(configs, dataset=data)

    assert len(results) == len(configs)
    # The configs really give different numbers (else equality below would prove little).
    assert len({round(r.history["loss"][-1], 6) for r in results}) == len(configs)
    for config, result in zip(configs, results):
        assert result.config is config
        assert result.diverged_epoch is None
        assert result.timings["ensemble_size"] == len(configs)
        assert {"load_s", "compile_s", "train_s"} <= set(result.timings)
        assert all(len(result.history[k]) == config.epochs for k in HISTORY_KEYS)
        assert_same_result(result, train_alone(config, data))


def test_empty_ensemble_gives_no_results():
    assert train_ensemble([]) == []
    assert train_many([]) == []


# Paired comparisons: the seed fixes the data order


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    size = 200
    order = epoch_order(3, 1, size)
    assert order.dtype == np.int32
    assert sorted(order.tolist()) == list(range(size))
    np.testing.assert_array_equal(order, epoch_order(3, 1, size))
    assert not np.array_equal(order, epoch_order(4, 1, size))
    assert not np.array_equal(order, epoch_order(3, 2, size))


def test_same_seed_means_same_batches_whatever_the_neighbours(dataset, train_alone):
    # A model's numbers depend on its own config only: beside a model of its own seed with
    # another initializer, a copy of itself, or a model of another seed, it trains on the
    # batches it sees alone (the cross-seed pairs of the test above check the rest).
    paired = dataclasses.replace(BASE, kernel_initializer="glorot_uniform", seed=7)
    partner = dataclasses.replace(BASE, kernel_initializer="he_normal", seed=7)
    stranger = dataclasses.replace(BASE, kernel_initializer="glorot_uniform", seed=8)

    with_partner = train_ensemble([partner, paired, paired], dataset=dataset)
    with_stranger = train_ensemble([stranger, paired], dataset=dataset)

    assert with_partner[1].history == with_partner[2].history
    assert_same_params(with_partner[1].params, with_partner[2].params, atol=0)
    assert_same_result(with_partner[1], train_alone(paired, dataset))
    assert_same_result(with_stranger[1], with_partner[1])
    # Same seed, other initializer: other numbers; same initializer, other seed: other numbers.
    assert with_partner[0].history["loss"] != with_partner[1].history["loss"]
    assert with_stranger[1].history["loss"] != with_stranger[0].history["loss"]


# Divergence


def test_a_diverging_model_stops_alone_and_leaves_the_others_unaffected(dataset, train_alone):
    calm = [
        dataclasses.replace(LINEAR, kernel_initializer="glorot_uniform", optimizer=CALM, seed=0),
        dataclasses.replace(LINEAR, kernel_initializer="he_normal", optimizer=CALM, seed=1),
    ]
    wild = dataclasses.replace(LINEAR, seed=0, **EXPLOSIVE)
    assert compatibility_key(wild) == compatibility_key(calm[0])
    epochs_seen = []

    def callback(epoch, metrics):
        epochs_seen.append(epoch)
        assert all(np.shape(metrics[k]) == (3,) for k in HISTORY_KEYS)

    together = train_ensemble([calm[0], wild, calm[1]], dataset=dataset, callback=callback)
    without = train_ensemble(calm, dataset=dataset)

    diverged = together[1]
    assert diverged.diverged_epoch is not None
    assert 1 <= diverged.diverged_epoch < LINEAR.epochs  # it stopped before the end
    for key in HISTORY_KEYS:
        assert len(diverged.history[key]) == diverged.diverged_epoch
    # Diverged at the first epoch with a non-finite metric (the validation loss may go first).
    assert not all(math.isfinite(diverged.history[key][-1]) for key in HISTORY_KEYS)
    assert all(math.isfinite(diverged.history[key][e]) for key in HISTORY_KEYS for e in range(diverged.diverged_epoch - 1))
    alone = train_alone(wild, dataset)
    assert alone.diverged_epoch == diverged.diverged_epoch
    for key in HISTORY_KEYS:
        np.testing.assert_allclose(diverged.history[key], alone.history[key], rtol=1e-5, equal_nan=True)

    assert epochs_seen == list(range(1, LINEAR.epochs + 1))  # the others went on
    for beside, apart in zip((together[0], together[2]), without):
        assert beside.diverged_epoch is None
        assert len(beside.history["loss"]) == LINEAR.epochs
        assert all(math.isfinite(v) for k in HISTORY_KEYS for v in beside.history[k])
        assert_same_result(beside, apart)


def test_an_ensemble_stops_when_every_model_has_diverged(dataset):
    wild = [dataclasses.replace(LINEAR, seed=s, **EXPLOSIVE) for s in (0, 1)]
    epochs_seen = []
    results = train_ensemble(wild, dataset=dataset, callback=lambda epoch, metrics: epochs_seen.append(epoch))
    last = max(r.diverged_epoch for r in results)
    assert all(r.diverged_epoch is not None for r in results)
    assert last < LINEAR.epochs
    assert epochs_seen == list(range(1, last + 1))


# Compatibility and grouping


INCOMPATIBLE = {
    "epochs": dict(epochs=2),
    "hidden_units": dict(hidden_units=(4,)),
    "two_hidden_layers": dict(hidden_units=(8, 8)),
    "optimizer_kind": dict(optimizer="adam(learning_rate=0.01)"),
    "momentum": dict(optimizer="sgd(learning_rate=0.01, momentum=0.9)"),
    "batch_size": dict(batch_size=32),
    "activation": dict(activation="tanh"),
    "loss": dict(loss="mean_squared_error"),
    "data_file": dict(data_file="other.npz"),
}


@pytest.mark.parametrize("change", list(INCOMPATIBLE))
def test_incompatible_configs_cannot_share_an_ensemble(change, dataset):
    other = dataclasses.replace(BASE, **INCOMPATIBLE[change])
    assert compatibility_key(other) != compatibility_key(BASE)
    with pytest.raises(InitlabError, match="cannot be trained in one ensemble"):
        train_ensemble([BASE, other], dataset=dataset)


COMPATIBLE = {
    "learning_rate": dict(optimizer="sgd(learning_rate=0.5)"),
    "default_momentum_spelled_out": dict(optimizer="sgd(learning_rate=0.01, momentum=0.0)"),
    "seed": dict(seed=9),
    "kernel_initializer": dict(kernel_initializer="he_uniform"),
    "bias_initializer": dict(bias_initializer="ones"),
    "output_initializers": dict(output_kernel_initializer="zeros", output_bias_initializer="ones"),
    "layer_override": dict(layer_kernel_initializers=((2, "orthogonal"),)),
}


@pytest.mark.parametrize("change", list(COMPATIBLE))
def test_initializers_seeds_and_learning_rates_may_differ(change):
    assert compatibility_key(dataclasses.replace(BASE, **COMPATIBLE[change])) == compatibility_key(BASE)


def test_train_many_groups_incompatible_configs_and_keeps_input_order(dataset):
    narrow = dataclasses.replace(BASE, hidden_units=(4,), epochs=2)
    configs = [
        dataclasses.replace(BASE, seed=0),
        dataclasses.replace(narrow, seed=0),
        dataclasses.replace(BASE, seed=1, kernel_initializer="he_normal"),
        dataclasses.replace(narrow, seed=1, optimizer="sgd(learning_rate=0.1)"),
        dataclasses.replace(BASE, seed=2, optimizer="sgd(learning_rate=0.1)"),
    ]
    chunks = []
    results = train_many(configs, dataset=dataset, on_chunk=chunks.append)

    assert [r.config for r in results] == configs
    assert [[r.config for r in chunk] for chunk in chunks] == [
        [configs[0], configs[2], configs[4]],
        [configs[1], configs[3]],
    ]
    for chunk in chunks:
        assert all(r.timings["ensemble_size"] == len(chunk) for r in chunk)
    assert [results[i] for i in (0, 2, 4, 1, 3)] == [r for chunk in chunks for r in chunk]
    for config, result in zip(configs, results):
        assert len(result.history["loss"]) == config.epochs
        assert result.params["Dense_0"]["kernel"].shape == (784, config.hidden_units[0])


# Chunking to a memory budget


def data_bytes(dataset: Dataset) -> int:
    return sum(a.nbytes for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))


def per_model_bytes(config: TrainConfig, dataset: Dataset) -> int:
    return model_bytes(config, dataset.input_dim, dataset.classes, len(dataset.x_test))


@pytest.mark.parametrize("models", [1, 2, 5])
def test_chunk_size_is_what_fits_beside_the_data(models, dataset):
    per_model = per_model_bytes(BASE, dataset)
    budget = data_bytes(dataset) + models * per_model + per_model // 2
    assert chunk_size(BASE, dataset, budget) == models


def test_chunk_size_shrinks_as_models_grow(dataset):
    budget = data_bytes(dataset) + 100 * per_model_bytes(BASE, dataset)
    wide = dataclasses.replace(BASE, hidden_units=(256, 256))
    assert per_model_bytes(wide, dataset) > per_model_bytes(BASE, dataset)
    assert 1 <= chunk_size(wide, dataset, budget) < chunk_size(BASE, dataset, budget) == 100


def test_chunk_size_defaults_to_the_free_memory(dataset):
    assert chunk_size(BASE, dataset) >= 1


@pytest.mark.parametrize("short_by", [1, 10**5])
def test_a_budget_too_small_for_the_data_is_a_user_error(short_by, dataset):
    budget = data_bytes(dataset) + per_model_bytes(BASE, dataset) - short_by
    with pytest.raises(InitlabError, match="too small"):
        chunk_size(BASE, dataset, budget)
    with pytest.raises(InitlabError, match="too small"):
        train_many([BASE], dataset=dataset, memory_budget=budget)


def test_train_many_in_small_chunks_equals_one_big_ensemble(dataset):
    configs = [
        dataclasses.replace(BASE, kernel_initializer=spec, seed=seed)
        for spec in ("RandomNormal()", "glorot_uniform")
        for seed in (0, 1)
    ][:3]
    per_model = per_model_bytes(BASE, dataset)
    budget = data_bytes(dataset) + 2 * per_model + per_model // 2
    chunks = []

    chunked = train_many(configs, dataset=dataset, memory_budget=budget, on_chunk=chunks.append)
    whole = train_ensemble(configs, dataset=dataset)

    assert [len(chunk) for chunk in chunks] == [2, 1]
    assert [r.config for chunk in chunks for r in chunk] == configs
    for a, b in zip(chunked, whole):
        assert_same_result(a, b)


# The command line




@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_mnist_like(tmp_path_factory.mktemp("data") / "tiny_mnist.npz")


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_trains_every_initializer_and_seed_and_summarizes(data_file):
    inits = ["glorot_uniform", "RandomNormal(stddev=1.0)"]
    result = invoke(
        "train", "--init", inits[0], "--init", inits[1], "--seeds", "0-1", "--epochs", 2, "--hidden", "8",
        "--batch-size", 64, "--data-file", data_file, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)

    runs = document["runs"]
    canonical = ["glorot_uniform", "random_normal(stddev=1.0)"]  # every name in its one spelling
    assert sorted((r["config"]["kernel_initializer"], r["config"]["seed"]) for r in runs) == sorted(
        (spec, seed) for spec in canonical for seed in (0, 1)
    )
    assert all(len(r["history"]["val_accuracy"]) == 2 and r["diverged_epoch"] is None for r in runs)
    assert {r["config"]["data_file"] for r in runs} == {str(data_file)}

    summary = document["summary"]
    assert sorted(row["initializer"] for row in summary) == sorted(canonical)
    for row in summary:
        members = [r["history"] for r in runs if r["config"]["kernel_initializer"] == row["initializer"]]
        finals = [history["val_accuracy"][-1] for history in members]
        losses = [history["val_loss"][-1] for history in members]
        assert row["runs"] == 2 and row["diverged"] == 0
        assert row["val_accuracy_mean"] == pytest.approx(np.mean(finals))
        assert row["val_accuracy_std"] == pytest.approx(np.std(finals, ddof=1))
        assert row["val_loss_mean"] == pytest.approx(np.mean(losses))
    means = [row["val_accuracy_mean"] for row in summary]
    assert means == sorted(means, reverse=True)


def test_the_cli_counts_each_ensembles_training_time_once():
    from initlab.analysis.summary import training_seconds

    def result(seconds: float, size: int) -> initlab.TrainResult:
        return initlab.TrainResult(BASE, {}, (), timings={"train_s": seconds, "ensemble_size": size})

    # Two chunks, of two models (3 s) and one model (1 s), each result with its own timings dict.
    assert training_seconds([result(3.0, 2), result(3.0, 2), result(1.0, 1)]) == pytest.approx(4.0)


@pytest.mark.parametrize("seeds", ["3-1", "0-1,3-1", "a", "1-", "-1", ""])
def test_cli_rejects_bad_seeds_with_exit_status_2(seeds, data_file):
    result = invoke("train", "--seeds", seeds, "--epochs", 1, "--data-file", data_file, "--json")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "--seeds" in lines[0], result.stderr
    with pytest.raises(InitlabError, match="--seeds"):
        parse_seeds(seeds)


def learnable_dataset(train_size: int = 512, test_size: int = 256, seed: int = 0) -> Dataset:
    """Pixels whose class is the argmax of a fixed random projection: a task a network learns."""
    rng = np.random.default_rng(seed)
    projection = rng.normal(size=(784, 10))
    eye = np.eye(10, dtype=np.float32)
    x = rng.integers(0, 256, size=(train_size + test_size, 784), dtype=np.uint8)
    y = eye[np.argmax((x / 255.0 - 0.5) @ projection, axis=1)]
    return Dataset("mnist", x[:train_size], y[:train_size], x[train_size:], y[train_size:], scale=255.0)


def test_in_a_chaotic_regime_an_ensemble_gives_the_distribution_a_model_alone_gives(train_alone):
    # What holds exactly: each model of an ensemble starts from the parameters it starts from
    # alone and sees the batches it sees alone; its steps differ from training alone only by
    # float32 rounding (a vmapped product may sum in another order). A deep ReLU network at a
    # high learning rate amplifies that rounding, so single runs can end apart; what must hold
    # is that the ensemble's runs are draws from the same distribution as runs alone.
    data = learnable_dataset()
    config = TrainConfig(
        hidden_units=(32,) * 8, activation="relu", kernel_initializer="he_normal", loss="categorical_crossentropy",
        optimizer="sgd(learning_rate=0.05)", batch_size=32, epochs=3,
    )
    seeds = range(16)
    configs = [dataclasses.replace(config, seed=seed) for seed in seeds]
    together = train_ensemble(configs, dataset=data)
    alone = [train_alone(c, data) for c in configs]
    for a, b in zip(together, alone):  # the same start: the first epoch's numbers barely differ
        assert a.initializers == b.initializers
    losses_together = np.array([r.history["val_loss"][-1] for r in together])
    losses_alone = np.array([r.history["val_loss"][-1] for r in alone])
    assert np.isfinite(losses_together).all() and np.isfinite(losses_alone).all()
    difference = losses_together.mean() - losses_alone.mean()
    standard_error = math.sqrt(losses_together.var(ddof=1) / len(seeds) + losses_alone.var(ddof=1) / len(seeds))
    assert abs(difference) <= 4 * standard_error, (difference, standard_error)
    from scipy.stats import ks_2samp

    assert ks_2samp(losses_together, losses_alone).pvalue > 1e-3
