"""A user's own Flax module, written as the Flax documentation writes one, trains and is probed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from same_training import assert_same_history

import initlab
from initlab.data import Dataset
from initlab.measure.probes import STATISTICS, make_probe
from initlab.nn import losses
from initlab.nn.flax_model import FlaxModel
from initlab.nn.models import layer_params
from initlab.training.config import TrainConfig
from initlab.training.loop import init_key

linen = pytest.importorskip("flax.linen")
jax = pytest.importorskip("jax")
jnp = jax.numpy


class MLP(linen.Module):
    """As in Flax's documentation: layers declared inline, activations as functions."""

    features: tuple[int, ...] = (16, 10)
    kernel_inits: tuple = ()
    bias_inits: tuple = ()

    @linen.compact
    def __call__(self, x):
        for index, features in enumerate(self.features):
            extra = {}
            if self.kernel_inits:
                extra = {"kernel_init": self.kernel_inits[index], "bias_init": self.bias_inits[index]}
            x = linen.Dense(features, **extra)(x)
            x = linen.relu(x) if index < len(self.features) - 1 else linen.softmax(x)
        return x


class CNN(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = linen.relu(linen.Conv(4, (3, 3))(x))
        x = linen.avg_pool(x, (2, 2), (2, 2))
        return linen.softmax(linen.Dense(10)(x.reshape((x.shape[0], -1))))


def learnable_dataset(train: int = 384, test: int = 128, side: int = 8, seed: int = 0) -> Dataset:
    """Images whose class is the brightest of ten fixed pixel blocks: a task a small net learns."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, 10, n)
        pixels = rng.integers(0, 60, (n, side * side))
        pixels[np.arange(n), labels * 6] += 190
        return pixels.astype(np.uint8), np.eye(10, dtype=np.float32)[labels]

    x_train, y_train = split(train)
    x_test, y_test = split(test)
    return Dataset("mnist", x_train, y_train, x_test, y_test, scale=255.0)


CONFIG = TrainConfig(
    hidden_units=(16,), activation="relu", batch_size=32, epochs=3, loss="categorical_crossentropy",
    optimizer="sgd(learning_rate=0.5)", matmul="xla",
)  # fmt: skip


def test_a_flax_module_trains_with_the_same_loop_and_numbers_as_initlab_mlp():
    data = learnable_dataset()
    mlp_params = layer_params(CONFIG.model(data.input_dim, data.classes).init(init_key(CONFIG.seed)))
    fixed = lambda array: (lambda key, shape, dtype=jnp.float32: jnp.asarray(array, dtype))  # noqa: E731
    module = MLP(
        kernel_inits=tuple(fixed(layer["kernel"]) for layer in mlp_params),
        bias_inits=tuple(fixed(layer["bias"]) for layer in mlp_params),
    )
    ours = initlab.train(CONFIG, dataset=data)
    theirs = initlab.train(CONFIG, dataset=data, model=module)
    assert theirs.model == "MLP" and theirs.to_dict()["model"] == "MLP" and ours.model is None
    assert_same_history(theirs.history, ours.history)
    np.testing.assert_allclose(theirs.params["Dense_1"]["kernel"], ours.params["Dense_1"]["kernel"], rtol=1e-5, atol=1e-6)


def test_a_flax_module_with_its_own_initialization_learns_and_is_probed():
    data = learnable_dataset(seed=1)
    config = dataclasses.replace(CONFIG, epochs=4, probe_every=1, probe_size=64)
    result = initlab.train(config, dataset=data, model=MLP())
    assert result.history["val_accuracy"][-1] > 0.5  # chance is 0.1
    assert [epoch for epoch, _ in result.probes] == [0, 1, 2, 3, 4]
    stats = result.probes[-1][1]
    for name in STATISTICS:
        assert stats[name].shape == (2,), name
    assert np.all(np.isnan(stats["saturation_fraction"]))  # the activation is unknown: not guessed
    assert np.all(np.isfinite(stats["backprop_variance"])) and np.all(stats["backprop_variance"] > 0)
    assert np.all(stats["update_ratio"] > 0)
    assert np.isnan(result.probes[0][1]["update_ratio"]).all()
    assert stats["activation_hist"].sum(axis=1).tolist() == [64 * 16, 64 * 10]
    rows = result.probe_rows()
    assert {(layer, name) for _, layer, name, _ in rows} >= {("1", "dead_fraction"), ("2", "preactivation_std")}


def test_flax_taps_equal_the_mlp_probe_on_the_same_parameters():
    data = learnable_dataset()
    mlp = CONFIG.model(data.input_dim, data.classes)
    params = mlp.init(jax.random.key(3))
    flax_params = params  # initlab's MLP is a Flax module: the same parameter tree
    x = jnp.asarray(data.x_test[:50], jnp.float32) / 255.0
    y = jnp.asarray(data.y_test[:50])
    loss = losses.build("categorical_crossentropy")
    ours = jax.jit(make_probe(mlp, loss))(params, x, y, params)
    theirs = jax.jit(make_probe(FlaxModel(MLP(), (64,)), loss))(flax_params, x, y, flax_params)
    unknown_activation = {"saturation_low_fraction", "saturation_high_fraction", "saturation_fraction",
                          "activation_derivative_mean", "dead_fraction"}  # fmt: skip
    for name in sorted(set(STATISTICS) - unknown_activation):
        np.testing.assert_allclose(theirs[name], ours[name], rtol=1e-5, atol=1e-7, err_msg=name)
    np.testing.assert_array_equal(theirs["preactivation_hist"], ours["preactivation_hist"])
    np.testing.assert_array_equal(theirs["backprop_hist"], ours["backprop_hist"])
    assert ours["dead_fraction"][0] == theirs["dead_fraction"][0]  # ReLU: the same units found dead


def test_a_convolutional_module_on_images_trains_and_its_conv_layer_is_probed():
    data = learnable_dataset(side=8)
    model = FlaxModel(CNN(), (8, 8, 1))
    assert model.layer_paths() == ["Conv_0", "Dense_0"]
    config = dataclasses.replace(CONFIG, epochs=2, probe_every=1, probe_size=32, optimizer="adam(learning_rate=0.01)")
    result = initlab.train(config, dataset=data, model=model)
    assert all(np.isfinite(result.history["loss"]))
    stats = result.probes[-1][1]
    assert stats["preactivation_hist"].sum(axis=1).tolist() == [32 * 8 * 8 * 4, 32 * 10]
    assert stats["weight_grad_norm"].shape == (2,) and np.all(stats["weight_grad_norm"] > 0)


def test_layers_come_in_the_order_they_are_called_not_by_name():
    class Named(linen.Module):
        @linen.compact
        def __call__(self, x):
            x = linen.relu(linen.Dense(16, name="zeta")(x))
            x = linen.relu(linen.Dense(12, name="alpha")(x))
            return linen.softmax(linen.Dense(10, name="mid")(x))

    model = FlaxModel(Named(), (20,))
    assert model.layer_paths() == ["zeta", "alpha", "mid"]
    params = model.init(jax.random.key(0))
    _, layers = model.apply_with_intermediates(params, jnp.ones((3, 20)))
    assert [layer.preactivation.shape for layer in layers] == [(3, 16), (3, 12), (3, 10)]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: FlaxModel(object(), (4,)), "model must be a flax.linen.Module, got object"),
        (lambda: FlaxModel(MLP(), (0,)), "input_shape must be positive integers"),
        (lambda: FlaxModel(MLP(), ()), "input_shape must be positive integers"),
    ],
)
def test_bad_models_are_one_clear_error(make, fragment):
    with pytest.raises(initlab.InitlabError, match=fragment):
        make()


def test_a_module_taking_train_as_an_argument_trains_its_batchnorm_and_is_evaluated_on_running_statistics():
    # As flaxmodels' and many Flax examples' modules: __call__(x, train=True), BatchNorm(use_running_average=not train).
    class CallArgument(linen.Module):
        @linen.compact
        def __call__(self, x, train: bool = True):
            x = linen.BatchNorm(use_running_average=not train, momentum=0.9)(linen.Dense(16)(x))
            return linen.softmax(linen.Dense(10)(linen.relu(x)))

    data = learnable_dataset(train=128, test=32)
    model = FlaxModel(CallArgument(), (data.input_dim,))
    assert model.stateful
    result = initlab.train(dataclasses.replace(CONFIG, epochs=2), dataset=data, model=model)
    statistics = result.params["batch_stats"]["BatchNorm_0"]
    assert float(jax.numpy.abs(statistics["mean"]).max()) > 0  # moved by training batches
    x = data.features("test")[:8]
    # inference mode reads the running statistics: the same as BatchNorm applied with them by hand
    expected = CallArgument().apply({"params": {k: v for k, v in result.params.items() if k != "batch_stats"},
                                     "batch_stats": result.params["batch_stats"]}, x, train=False)  # fmt: skip
    np.testing.assert_allclose(model.apply(result.params, x), expected, rtol=1e-6)


def test_state_beside_parameters_and_the_sparse_matmul_are_refused_clearly():
    class WithBatchNorm(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.softmax(linen.BatchNorm(use_running_average=False)(linen.Dense(10)(x)))

    data = learnable_dataset(train=64, test=32)
    with pytest.raises(initlab.InitlabError, match="keeps state beside its parameters \\(batch_stats\\)"):
        initlab.train(dataclasses.replace(CONFIG, epochs=1), dataset=data, model=WithBatchNorm())
    with pytest.raises(initlab.InitlabError, match="matmul 'sparse' is for initlab's MLP"):
        initlab.train(dataclasses.replace(CONFIG, matmul="sparse"), dataset=data, model=MLP())
