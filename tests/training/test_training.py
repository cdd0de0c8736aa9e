"""Tests of initlab.training.loop and initlab.training.config against hand-written references of Keras's semantics.

- one SGD step of the tutorial's network, gradients derived by hand in NumPy (float64);
- whole epochs against a plain JAX loop with ``model.fit``'s batching and history rules;
- determinism, divergence, configuration validation;
- (slow) the tutorial's Part B over ten seeds against Keras's own numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy_reference import sigmoid, softmax
from synthetic_data import write_mnist_like

import initlab
from initlab.data import Dataset, shipped_mnist_path
from initlab.errors import InitlabError
from initlab.nn import losses, optimizers
from initlab.nn.models import layer_params
from initlab.training import loop as training
from initlab.training.config import TrainConfig

KERAS_REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "keras_reference_seeds0-9.jsonl"
KERAS_EPSILON = 1e-7


# --- data --------------------------------------------------------------------------------------


def synthetic_dataset(train_size: int = 1000, test_size: int = 200, seed: int = 0) -> Dataset:
    """Four noisy clusters of 16 "pixels" (uint8, scale 255): learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    dim, classes = 16, 4
    centers = rng.integers(0, 256, size=(classes, dim))

    def split(size: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, classes, size=size)
        x = np.clip(centers[labels] + rng.normal(0, 60, size=(size, dim)), 0, 255).astype(np.uint8)
        return x, np.eye(classes, dtype=np.float32)[labels]

    x_train, y_train = split(train_size)
    x_test, y_test = split(test_size)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, scale=255.0)


@pytest.fixture(scope="module")
def small_data() -> Dataset:
    # 1000 = 7 x 128 + 104: seven full batches and a partial one.
    return synthetic_dataset()


@pytest.fixture(scope="module")
def mnist_batch() -> tuple[np.ndarray, np.ndarray]:
    dataset = initlab.load_dataset("mnist")
    return dataset.features("train")[:128], dataset.y_train[:128]


# A small network that learns fast, so that semantics which differ (batch weighting, accuracy
# before or after the update, the partial batch) give visibly different numbers. Configs are
# built inside the tests: validating one imports optax, hence JAX, which collection must not.
SMALL_CONFIG = dict(
    hidden_units=(8,),
    activation="tanh",
    kernel_initializer="glorot_uniform",
    optimizer="sgd(learning_rate=0.5)",
    batch_size=128,
    epochs=2,
    seed=3,
)


@pytest.fixture(scope="module")
def small_config() -> TrainConfig:
    return TrainConfig(**SMALL_CONFIG)


# --- 1. one step against NumPy -------------------------------------------------------------------


def numpy_sgd_step(params, x, y, loss_name: str, learning_rate: float):
    """Keras's SGD step on 784-64 sigmoid -> 10 softmax, derived by hand in float64.

    Returns (new params, mean loss over the batch, count of right answers before the update).
    """
    (w1, b1), (w2, b2) = ((np.asarray(p["kernel"], np.float64), np.asarray(p["bias"], np.float64)) for p in layer_params(params))
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    batch, classes = y.shape

    a1 = sigmoid(x @ w1 + b1)
    p = softmax(a1 @ w2 + b2)

    if loss_name == "mean_squared_error":
        # mean over the batch of the mean over classes of (p - y)^2
        per_sample = np.mean((p - y) ** 2, axis=1)
        dp = 2.0 * (p - y) / (batch * classes)
    else:
        # Keras: renormalise q = p / sum(p), clip to [eps, 1 - eps], -sum y log q.
        total = p.sum(axis=1, keepdims=True)
        q = p / total
        clipped = np.clip(q, KERAS_EPSILON, 1.0 - KERAS_EPSILON)
        per_sample = -np.sum(y * np.log(clipped), axis=1)
        inside = (q > KERAS_EPSILON) & (q < 1.0 - KERAS_EPSILON)
        dq = -y / clipped * inside / batch
        dp = dq / total - np.sum(dq * p, axis=1, keepdims=True) / total**2

    dz2 = p * (dp - np.sum(dp * p, axis=1, keepdims=True))  # through softmax
    dw2, db2 = a1.T @ dz2, dz2.sum(axis=0)
    dz1 = (dz2 @ w2.T) * a1 * (1.0 - a1)  # through sigmoid
    dw1, db1 = x.T @ dz1, dz1.sum(axis=0)

    new = (
        {"kernel": w1 - learning_rate * dw1, "bias": b1 - learning_rate * db1},
        {"kernel": w2 - learning_rate * dw2, "bias": b2 - learning_rate * db2},
    )
    correct = int(np.sum(p.argmax(axis=1) == y.argmax(axis=1)))
    return new, float(per_sample.mean()), correct


@pytest.mark.parametrize("loss_name", ["mean_squared_error", "categorical_crossentropy"])
def test_step_equals_numpy_sgd_step(loss_name, mnist_batch):
    import jax

    x, y = mnist_batch
    mlp = TrainConfig(loss=loss_name).model(784, 10)
    params = mlp.init(training.init_key(0))
    optimizer = optimizers.build("sgd(learning_rate=0.01)")
    step = jax.jit(training.make_step(mlp, losses.build(loss_name), optimizer))

    new_params, _, loss_sum, correct = step(params, optimizer.init(params), x, y)
    expected, expected_mean_loss, expected_correct = numpy_sgd_step(params, x, y, loss_name, 0.01)

    np.testing.assert_allclose(float(loss_sum), expected_mean_loss * 128, rtol=1e-5)
    assert int(correct) == expected_correct
    for old, new, reference in zip(layer_params(params), layer_params(new_params), expected):
        for name in ("kernel", "bias"):
            old_value = np.asarray(old[name], np.float64)
            new_value = np.asarray(new[name], np.float64)
            np.testing.assert_allclose(new_value, reference[name], rtol=1e-4, atol=1e-6)
            # The update itself is ~1e-6 for MSE, far below the tolerance above: check it to
            # float32 rounding of the new weight (2 ulps) plus 0.1% of its size.
            update, expected_update = new_value - old_value, reference[name] - old_value
            tolerance = 2 * np.spacing(np.abs(new_value).astype(np.float32)) + 1e-3 * np.abs(expected_update)
            assert np.all(np.abs(update - expected_update) <= tolerance), f"{name}: update differs from Keras's SGD"
            assert np.abs(expected_update).max() > 1e-6  # the step moved the weights


# --- 2. epochs against a plain loop ------------------------------------------------------------


def reference_fit(params, dataset: Dataset, *, learning_rate: float, batch_size: int, seed: int, epochs: int):
    """``model.fit`` for tanh -> softmax with MSE and plain SGD, one eager step at a time.

    Returns the history, the final parameters, and two wrong variants of the training metrics
    (mean of batch means; accuracy measured after each update) to show the test can tell.
    """
    import jax
    import jax.numpy as jnp

    def forward(params, x):
        hidden = jnp.tanh(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
        return jax.nn.softmax(hidden @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"], axis=-1)

    def objective(params, x, y):
        probabilities = forward(params, x)
        return jnp.mean(jnp.mean(jnp.square(y - probabilities), axis=-1)), probabilities

    grad_fn = jax.jit(jax.value_and_grad(objective, has_aux=True))
    forward = jax.jit(forward)
    x_train = dataset.x_train.astype(np.float32) / np.float32(dataset.scale)
    x_test = dataset.x_test.astype(np.float32) / np.float32(dataset.scale)
    size = len(x_train)
    history = {key: [] for key in training.HISTORY_KEYS}
    wrong = {"unweighted_loss": [], "accuracy_after_update": []}
    for epoch in range(1, epochs + 1):
        order = training.epoch_order(seed, epoch, size)
        loss_total, correct_total, batch_losses, correct_after = 0.0, 0, [], 0
        for start in range(0, size, batch_size):
            indices = order[start : start + batch_size]
            x, y = x_train[indices], dataset.y_train[indices]
            (loss, probabilities), grads = grad_fn(params, x, y)
            loss_total += float(loss) * len(indices)
            batch_losses.append(float(loss))
            correct_total += int(jnp.sum(jnp.argmax(probabilities, -1) == jnp.argmax(y, -1)))
            params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
            correct_after += int(jnp.sum(jnp.argmax(forward(params, x), -1) == jnp.argmax(y, -1)))
        val_probabilities = forward(params, x_test)
        history["loss"].append(loss_total / size)
        history["accuracy"].append(correct_total / size)
        history["val_loss"].append(float(jnp.mean(jnp.mean(jnp.square(dataset.y_test - val_probabilities), axis=-1))))
        history["val_accuracy"].append(float(jnp.mean(jnp.argmax(val_probabilities, -1) == jnp.argmax(dataset.y_test, -1))))
        wrong["unweighted_loss"].append(float(np.mean(batch_losses)))
        wrong["accuracy_after_update"].append(correct_after / size)
    return history, params, wrong


def assert_history_matches(history, expected, dataset: Dataset):
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(history["val_loss"], expected["val_loss"], rtol=1e-5)
    # Accuracies are counts: allow one sample flipped by float rounding of a near tie.
    np.testing.assert_allclose(history["accuracy"], expected["accuracy"], rtol=0, atol=1.01 / len(dataset.x_train))
    np.testing.assert_allclose(history["val_accuracy"], expected["val_accuracy"], rtol=0, atol=1.01 / len(dataset.x_test))


def assert_params_match(params, expected):
    assert list(params) == list(expected)
    for got, want in zip(layer_params(params), layer_params(expected)):
        for name in ("kernel", "bias"):
            np.testing.assert_allclose(np.asarray(got[name]), np.asarray(want[name]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "train_size",
    [
        pytest.param(1000, id="7-full-batches-and-104"),
        pytest.param(1024, id="8-full-batches"),
        pytest.param(100, id="one-partial-batch"),
    ],
)
def test_make_epoch_equals_reference_loop(train_size, small_config):
    import jax

    dataset = synthetic_dataset(train_size=train_size)
    config = small_config
    mlp = config.model(dataset.input_dim, dataset.classes)
    optimizer = optimizers.build(config.optimizer)
    params = mlp.init(training.init_key(config.seed))
    epoch = jax.jit(
        training.make_epoch(mlp, losses.build(config.loss), optimizer, train_size, config.batch_size, dataset.scale)
    )
    order = training.epoch_order(config.seed, 1, train_size)
    new_params, _, metrics = epoch(
        params, optimizer.init(params), order, dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test
    )
    history = {key: [float(metrics[key])] for key in training.HISTORY_KEYS}

    expected, expected_params, wrong = reference_fit(
        params,
        dataset,
        learning_rate=optimizers.learning_rate_of(config.optimizer),
        batch_size=config.batch_size,
        seed=config.seed,
        epochs=1,
    )
    assert_history_matches(history, expected, dataset)
    assert_params_match(new_params, expected_params)
    # The reference's accuracy really is measured before each update: after it, it differs.
    assert abs(expected["accuracy"][0] - wrong["accuracy_after_update"][0]) > 2.5 / train_size


def test_train_follows_keras_epoch_semantics(small_data, small_config):
    result = initlab.train(small_config, dataset=small_data)
    mlp = small_config.model(small_data.input_dim, small_data.classes)
    expected, expected_params, wrong = reference_fit(
        mlp.init(training.init_key(small_config.seed)),
        small_data,
        learning_rate=optimizers.learning_rate_of(small_config.optimizer),
        batch_size=small_config.batch_size,
        seed=small_config.seed,
        epochs=small_config.epochs,
    )
    assert_history_matches(result.history, expected, small_data)
    assert_params_match(result.params, expected_params)
    # Weighting batches by size is distinguishable here from averaging the 8 batch means.
    for got, unweighted in zip(result.history["loss"], wrong["unweighted_loss"]):
        assert not math.isclose(got, unweighted, rel_tol=1e-4)
    for got, after in zip(result.history["accuracy"], wrong["accuracy_after_update"]):
        assert abs(got - after) > 2.5 / len(small_data.x_train)


def test_epoch_order_is_a_seeded_permutation():
    first = training.epoch_order(0, 1, 1000)
    assert sorted(first.tolist()) == list(range(1000))
    np.testing.assert_array_equal(first, training.epoch_order(0, 1, 1000))
    assert not np.array_equal(first, training.epoch_order(0, 2, 1000))
    assert not np.array_equal(first, training.epoch_order(1, 1, 1000))


# --- 3. determinism ------------------------------------------------------------------------------


def test_train_is_deterministic_by_seed(small_data, small_config):
    calls = []
    first = initlab.train(small_config, dataset=small_data, callback=lambda epoch, metrics: calls.append((epoch, metrics)))
    again = initlab.train(small_config, dataset=small_data)
    other = initlab.train(dataclasses.replace(small_config, seed=small_config.seed + 1), dataset=small_data)

    assert list(first.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    for key in training.HISTORY_KEYS:
        assert len(first.history[key]) == small_config.epochs
        assert all(isinstance(value, float) and math.isfinite(value) for value in first.history[key])
    assert first.history == again.history
    for a, b in zip(layer_params(first.params), layer_params(again.params)):
        np.testing.assert_array_equal(a["kernel"], b["kernel"])
        np.testing.assert_array_equal(a["bias"], b["bias"])

    assert other.history["loss"] != first.history["loss"]
    assert not np.array_equal(other.params["Dense_0"]["kernel"], first.params["Dense_0"]["kernel"])

    assert first.diverged_epoch is None
    assert set(first.timings) == {"load_s", "compile_s", "train_s", "ensemble_size"}
    assert first.timings["ensemble_size"] == 1  # one model is an ensemble of one: the same loop
    assert all(value >= 0 for value in first.timings.values())
    assert [epoch for epoch, _ in calls] == [1, 2]
    for epoch, metrics in calls:
        assert metrics == {key: first.history[key][epoch - 1] for key in training.HISTORY_KEYS}
    assert isinstance(first.params["Dense_0"]["kernel"], np.ndarray)
    assert json.loads(json.dumps(first.to_dict()))["history"] == first.history


# --- 4. divergence -------------------------------------------------------------------------------


def test_divergence_stops_training_without_raising(small_data):
    # A linear output layer with SGD at 1e6: the loss overflows in the first epochs. (With a
    # softmax output the network saturates instead and the loss stays finite.)
    config = TrainConfig(
        hidden_units=(32,),
        activation="relu",
        kernel_initializer="random_normal(stddev=10.0)",
        output_activation="linear",
        optimizer="sgd(learning_rate=1e6)",
        epochs=20,
    )
    epochs_seen = []
    result = initlab.train(config, dataset=small_data, callback=lambda epoch, metrics: epochs_seen.append(epoch))

    assert result.diverged_epoch is not None
    assert 1 <= result.diverged_epoch < config.epochs
    for key in training.HISTORY_KEYS:
        assert len(result.history[key]) == result.diverged_epoch
    assert not math.isfinite(result.history["loss"][-1])
    assert all(math.isfinite(value) for value in result.history["loss"][:-1])
    assert epochs_seen == list(range(1, result.diverged_epoch + 1))
    assert json.loads(json.dumps(result.to_dict()))["diverged_epoch"] == result.diverged_epoch


# --- 5. the tutorial against Keras ----------------------------------------------------------------


@pytest.mark.slow
def test_tutorial_part_b_matches_keras_over_ten_seeds():
    keras_runs = [json.loads(line) for line in KERAS_REFERENCE.read_text().splitlines() if line.strip()]
    assert sorted(run["seed"] for run in keras_runs) == list(range(10))
    assert all(len(run["history"]["val_accuracy"]) == 20 for run in keras_runs)
    keras_final = np.array([run["history"]["val_accuracy"][-1] for run in keras_runs])

    ours_final = []
    for seed in range(10):
        result = initlab.train(TrainConfig(seed=seed))
        assert result.diverged_epoch is None
        assert len(result.history["val_accuracy"]) == 20
        ours_final.append(result.history["val_accuracy"][-1])
    ours_final = np.array(ours_final)

    # Two independent samples of 10 seeds each: their means differ by less than 3 standard
    # errors of the difference, sqrt(s_ours^2 / n_ours + s_keras^2 / n_keras), sample stds (ddof=1).
    combined_standard_error = math.sqrt(
        ours_final.var(ddof=1) / len(ours_final) + keras_final.var(ddof=1) / len(keras_final)
    )
    difference = ours_final.mean() - keras_final.mean()
    assert abs(difference) <= 3 * combined_standard_error, (
        f"mean final val_accuracy {ours_final.mean():.4f} vs Keras {keras_final.mean():.4f} "
        f"(3 combined standard errors = {3 * combined_standard_error:.4f})"
    )


# --- 6. configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, fragment",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=-5), "batch_size"),
        (dict(batch_size=2.5), "batch_size"),
        (dict(batch_size=True), "batch_size"),
        (dict(epochs=-1), "epochs"),
        (dict(epochs=0), "epochs"),
        (dict(seed=-1), "seed"),
        (dict(hidden_units=(64, 0)), "hidden layer size"),
        (dict(activation="sigmoidd"), "did you mean 'sigmoid'"),
        (dict(output_activation="sofmax"), "did you mean 'softmax'"),
        (dict(kernel_initializer="RandomNormall()"), "random_normal"),
        (dict(bias_initializer="zeross"), "zeros"),
        (dict(output_kernel_initializer="glorot_uniform(scale=2.0)"), "scale"),
        (dict(loss="mean_squared_eror"), "mean_squared_error"),
        (dict(optimizer="sgdd(learning_rate=0.01)"), "did you mean 'sgd'"),
        (dict(optimizer="sgd(learning_rate=-0.01)"), "learning_rate"),
        (dict(optimizer="sgd(lr=0.01)"), "lr"),
        (dict(dataset="mnistt"), "did you mean 'mnist'"),
        (dict(layer_kernel_initializers=((3, "zeros"),)), "layer number 3 is out of range"),
        (dict(layer_kernel_initializers=((0, "zeros"),)), "layer number 0 is out of range"),
        (dict(hidden_units=(64, 32), layer_kernel_initializers=((4, "zeros"),)), "layers 1-3"),
        (dict(layer_kernel_initializers=((1, "bogus_initializer"),)), "bogus_initializer"),
        (dict(hidden_units=64), "hidden_units"),
        (dict(hidden_units="64"), "hidden_units"),
        pytest.param(
            dict(layer_kernel_initializers=((1.5, "zeros"),)),
            "layer number",
        ),
        pytest.param(
            dict(seed=2**64),
            "seed",
        ),
    ],
)
def test_bad_config_values_raise(changes, fragment):
    with pytest.raises(InitlabError) as raised:
        TrainConfig(**changes)
    assert fragment in str(raised.value)


def test_replace_validates():
    with pytest.raises(InitlabError, match="epochs"):
        dataclasses.replace(TrainConfig(), epochs=0)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3  # type: ignore[misc]


def test_defaults_are_the_tutorial_part_b():
    layers = TrainConfig().layers(10)
    assert [(layer.units, layer.activation) for layer in layers] == [(64, "sigmoid"), (10, "softmax")]
    assert initlab.initializer(layers[0].kernel_initializer).spec == initlab.initializer("RandomNormal()").spec
    assert initlab.initializer(layers[1].kernel_initializer).spec == "glorot_uniform"
    config = TrainConfig()
    assert (config.loss, config.batch_size, config.epochs) == ("mean_squared_error", 128, 20)
    assert optimizers.learning_rate_of(config.optimizer) == 0.01


def test_layer_overrides_are_honoured():
    config = TrainConfig(hidden_units=(16, 8), layer_kernel_initializers=((2, "zeros"), (3, "ones")))
    assert [layer.kernel_initializer for layer in config.layers(10)] == ["random_normal", "zeros", "ones"]
    first, second, output = layer_params(config.model(20, 10).init(training.init_key(0)))
    assert np.all(np.asarray(first["kernel"]) != 0)
    np.testing.assert_array_equal(np.asarray(second["kernel"]), 0.0)
    np.testing.assert_array_equal(np.asarray(output["kernel"]), 1.0)


NON_DEFAULT = dict(
    data_file=str(shipped_mnist_path()),
    hidden_units=(32, 16),
    activation="tanh",
    kernel_initializer="he_normal",
    bias_initializer="constant(value=0.1)",
    output_activation="softmax",
    output_kernel_initializer="glorot_normal",
    layer_kernel_initializers=((2, "orthogonal"), (3, "zeros")),
    loss="categorical_crossentropy",
    optimizer="sgd(learning_rate=0.1, momentum=0.9)",
    batch_size=64,
    epochs=3,
    seed=7,
)


@pytest.mark.parametrize("changes", [{}, NON_DEFAULT], ids=["defaults", "non-default"])
def test_to_dict_from_dict_round_trip(changes):
    config = TrainConfig(**changes)
    data = json.loads(json.dumps(config.to_dict()))  # as a file would store it
    assert set(data) == {field.name for field in dataclasses.fields(TrainConfig)}
    restored = TrainConfig.from_dict(data)
    assert restored == config
    assert restored.config_hash() == config.config_hash()
    assert isinstance(restored.hidden_units, tuple)
    assert all(isinstance(pair, tuple) for pair in restored.layer_kernel_initializers)


def test_from_dict_rejects_unknown_key_with_suggestion():
    with pytest.raises(InitlabError, match="did you mean 'batch_size'"):
        TrainConfig.from_dict({"batchsize": 64})


def test_from_dict_validates_values():
    with pytest.raises(InitlabError, match="epochs"):
        TrainConfig.from_dict({"epochs": 0})


@pytest.mark.parametrize(
    "changes",
    [
        dict(seed=1),
        dict(batch_size=64),
        dict(epochs=21),
        dict(hidden_units=(64, 32)),
        dict(activation="tanh"),
        dict(kernel_initializer="glorot_uniform"),
        dict(optimizer="sgd(learning_rate=0.1)"),
        dict(loss="categorical_crossentropy"),
        dict(layer_kernel_initializers=((1, "zeros"),)),
        dict(data_file=str(shipped_mnist_path())),
    ],
)
def test_config_hash_changes_with_any_field(changes):
    base = TrainConfig()
    changed = dataclasses.replace(base, **changes)
    assert changed.config_hash() != base.config_hash()
    assert changed.config_hash() == dataclasses.replace(base, **changes).config_hash()


@pytest.mark.parametrize("spellings", [("he_normal", "HeNormal()", "HE_NORMAL", "henormal"),
                                       ("RandomNormal(stddev=1.0)", "random_normal(stddev=1)", "RANDOM_NORMAL(0.0, 1.0)")])
def test_equivalent_spellings_are_one_configuration(spellings):
    configs = [TrainConfig(kernel_initializer=spec, layer_kernel_initializers=((2, spec),)) for spec in spellings]
    assert len({config.config_hash() for config in configs}) == 1
    assert len({config.kernel_initializer for config in configs}) == 1
    assert configs[0].kernel_initializer == initlab.initializers.initializers.canonical(spellings[0])
    assert configs[0].layer_kernel_initializers[0][1] == configs[0].kernel_initializer


def test_optimizer_and_loss_spellings_are_one_configuration():
    one = TrainConfig(optimizer="SGD(learning_rate=0.01)", loss="MeanSquaredError", activation="Sigmoid")
    other = TrainConfig(optimizer="sgd", loss="mean_squared_error", activation="sigmoid")
    assert one == other and one.config_hash() == other.config_hash()
    assert one.optimizer == "sgd(learning_rate=0.01)"  # the learning rate is always written


def test_a_data_file_is_identified_by_its_content_not_its_path(tmp_path, monkeypatch):
    first, copy = tmp_path / "a" / "data.npz", tmp_path / "b" / "renamed.npz"
    first.parent.mkdir()
    write_mnist_like(first, train=32, test=16, seed=0)
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    monkeypatch.chdir(tmp_path / "a")
    relative = TrainConfig(data_file="data.npz")
    assert relative.data_file == str(first)  # stored absolute: the same file from any folder
    assert relative.config_hash() == TrainConfig(data_file=str(copy)).config_hash()
    monkeypatch.chdir(tmp_path)
    assert TrainConfig(data_file="a/data.npz").config_hash() == relative.config_hash()
    before = relative.config_hash()
    stamp = first.stat().st_mtime_ns
    write_mnist_like(first, train=32, test=16, seed=1)  # the same path, other content
    os.utime(first, ns=(stamp + 10**9, stamp + 10**9))  # a later time, whatever the clock's resolution
    assert TrainConfig(data_file="a/data.npz").config_hash() != before
    with pytest.raises(InitlabError, match="not found"):
        TrainConfig(data_file="nowhere.npz").config_hash()


def test_config_hash_is_stable_across_processes():
    # A fresh interpreter with another str-hash seed: the hash must not depend on either.
    script = (
        "from initlab.training.config import TrainConfig\n"
        f"print(TrainConfig().config_hash(), TrainConfig(**{NON_DEFAULT!r}).config_hash())"
    )
    hashes = set()
    for hash_seed in ("1", "2"):
        output = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        hashes.add(tuple(output))
    assert hashes == {(TrainConfig().config_hash(), TrainConfig(**NON_DEFAULT).config_hash())}
    default_hash = TrainConfig().config_hash()
    assert len(default_hash) == 16 and all(c in "0123456789abcdef" for c in default_hash)


def test_a_non_finite_validation_metric_is_divergence(tmp_path):
    # Training data are ordinary; the validation images are so large that the first layer's
    # sums overflow to +-inf and meet as NaN: the training loss is finite, val_loss is not.
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 10
    np.savez(
        tmp_path / "data.npz",
        x_train=rng.random((64, 28, 28), dtype=np.float32), y_train=labels,
        x_test=np.full((32, 28, 28), 3e38, np.float32), y_test=labels[:32],
    )
    result = initlab.train(TrainConfig(data_file=str(tmp_path / "data.npz"), batch_size=32, epochs=3))
    assert math.isfinite(result.history["loss"][0])
    assert not math.isfinite(result.history["val_loss"][0])
    assert result.diverged_epoch == 1
