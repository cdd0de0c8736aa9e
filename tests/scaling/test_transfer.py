"""Width parametrizations in the training engine, and learning-rate transfer across width."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from synthetic_data import write_mnist_like
from typer.testing import CliRunner

from initlab.cli import app
from initlab.errors import InitlabError
from initlab.scaling import layer_rules, roles_of
from initlab.scaling.parametrizations import init_scales
from initlab.scaling.transfer import TransferResult, log2_grid_text, transfer
from initlab.training.config import TrainConfig
from initlab.training.loop import init_key
from initlab.training.run import train


@pytest.fixture(scope="module")
def one_batch(tmp_path_factory):
    """64 training examples: one epoch of batch 64 is one update."""
    return str(write_mnist_like(tmp_path_factory.mktemp("data") / "batch.npz", train=64, test=64))


def _config(data_file, **changes):
    base = TrainConfig(
        data_file=data_file, hidden_units=(32, 32), activation="relu", kernel_initializer="he_normal",
        output_activation="softmax", loss="categorical_crossentropy", optimizer="adam(learning_rate=0.001)",
        batch_size=64, epochs=1,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_mf_is_mups_one_hidden_layer_case_and_refuses_depth():
    assert layer_rules("mf", roles_of(2), width=512, base_width=64) == layer_rules("mup", roles_of(2), width=512, base_width=64)
    with pytest.raises(InitlabError, match="one hidden layer.*use mup"):
        layer_rules("mf", roles_of(3), width=512, base_width=64)


def test_at_its_base_width_a_mup_run_is_the_sp_run(one_batch):
    sp = train(_config(one_batch, epochs=2))
    mup = train(_config(one_batch, epochs=2, parametrization="mup", base_width=32))
    assert sp.history == pytest.approx(mup.history, rel=1e-6)
    assert sp.config.config_hash() != mup.config.config_hash()


def test_mup_logits_at_initialization_are_sps_over_sqrt_m(one_batch):
    # MuReadout: input x 1/m, weights x sqrt(m): with zero biases the logits are exactly SP's / sqrt(m).
    import jax.numpy as jnp

    from initlab.data import load

    data = load("mnist", one_batch)
    x = jnp.asarray(data.features("train"))
    logits = {}
    for name, base in (("sp", None), ("mup", 8)):
        config = _config(one_batch, parametrization=name, base_width=base, output_activation="linear")
        mlp = config.model(data.input_dim, data.classes)
        params = mlp.init(init_key(config.seed))
        rules = config.width_rules()
        if rules is not None:
            params = {layer: {k: v * init_scales(rules)[layer][k] for k, v in p.items()} for layer, p in params.items()}
        logits[name] = np.asarray(mlp.apply(params, x))
    np.testing.assert_allclose(logits["mup"], logits["sp"] / math.sqrt(32 / 8), rtol=2e-5, atol=1e-7)


def test_mup_scales_adams_first_step_per_layer(one_batch):
    # Adam's first update of a coordinate is lr * g / (|g| + eps): lr wherever |g| >> eps. Under muP
    # with m = 4 the hidden (matrix-like) kernel's is lr / 4; the input and output kernels' stay lr.
    lr, m = 0.001, 4
    updates = {}
    for name, base in (("sp", None), ("mup", 32 // m)):
        config = _config(one_batch, parametrization=name, base_width=base)
        from initlab.data import load

        data = load("mnist", one_batch)
        initial = config.model(data.input_dim, data.classes).init(init_key(config.seed))
        rules = config.width_rules()
        if rules is not None:
            initial = {layer: {k: v * init_scales(rules)[layer][k] for k, v in p.items()} for layer, p in initial.items()}
        final = train(config).params
        updates[name] = {layer: float(np.abs(final[layer]["kernel"] - initial[layer]["kernel"]).max()) for layer in final}
    assert updates["sp"] == pytest.approx({"Dense_0": lr, "Dense_1": lr, "Dense_2": lr}, rel=1e-3)
    assert updates["mup"] == pytest.approx({"Dense_0": lr, "Dense_1": lr / m, "Dense_2": lr}, rel=1e-3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(parametrization="np"), "unknown parametrization 'np'"),
        (dict(parametrization="mup"), "needs a base width"),
        (dict(base_width=16), "sp has none"),
        (dict(parametrization="mup", base_width=16, hidden_units=(32, 16)), "one width, got 32-16"),
        (dict(parametrization="mup", base_width=16, optimizer="rmsprop"), "sgd or adam, not rmsprop"),
        (dict(parametrization="mup", base_width=16, kernel_initializer="lsuv"), "from data"),
        (dict(parametrization="mf", base_width=16), "one hidden layer"),
    ],
)
def test_bad_parametrizations_are_refused(changes, message):
    with pytest.raises(InitlabError, match=message):
        _config(None, **changes)


@pytest.fixture(scope="module")
def small():
    return transfer(("sp", "mup"), widths=(32, 64), log2_learning_rates=(-10, -8, -6), seeds=(0, 1),
                    optimizer="sgd", train_examples=512, eval_examples=256, batch_size=64)  # fmt: skip


def test_each_loss_is_the_engines_final_training_loss_of_that_run(small):
    # One grid point retrained alone, on the same subset: the loss on its first 256 training examples.
    from initlab.data import Dataset, load
    from initlab.scaling.transfer import _config as transfer_config

    data = load("mnist")
    subset = Dataset(name="subset", x_train=data.x_train[:512], y_train=data.y_train[:512], x_test=data.x_train[:256],
                     y_test=data.y_train[:256], scale=data.scale)  # fmt: skip
    config = transfer_config("mup", 64, 32, 2.0**-8, 1, "sgd", 2, "relu", "torch.linear_default", 1, 64)
    alone = train(config, dataset=subset).history["val_loss"][-1]
    assert small.losses[1, 1, 1, 1] == pytest.approx(alone, rel=1e-4)


def test_optima_and_shift_are_read_from_the_losses(small):
    assert small.losses.shape == (2, 2, 3, 2)
    assert np.isfinite(small.losses).all()
    for p, name in enumerate(small.parametrizations):
        means = small.losses[p].mean(axis=-1)
        expected = np.asarray(small.log2_learning_rates)[np.argmin(means, axis=-1)]
        np.testing.assert_array_equal(small.optimal_log2_lr(name), expected)
        assert small.shift_steps(name) == (expected[-1] - expected[0]) / 2
        per_seed = np.asarray(small.log2_learning_rates)[np.argmin(small.losses[p], axis=1)]  # (widths, seeds)
        np.testing.assert_array_equal(small.seed_optima(name), per_seed)
    document = json.loads(json.dumps(small.to_dict(), allow_nan=False))
    assert document["parametrizations"]["mup"]["optimal_log2_lr"] == dict(zip(("32", "64"), small.optimal_log2_lr("mup")))


def test_at_the_base_width_mup_and_sp_measure_the_same_losses(small):
    np.testing.assert_allclose(small.losses[1, 0], small.losses[0, 0], rtol=1e-5)


def test_a_diverged_run_is_never_an_optimum_and_wider_is_better_counts_where_every_width_trained():
    losses = np.array([[[[3.0], [2.0], [np.inf]], [[2.5], [2.2], [1.0]]]])  # (1, widths 2, lrs 3, seeds 1)
    result = TransferResult(
        parametrizations=["mup"], widths=[64, 128], base_width=64, log2_learning_rates=[-3.0, -2.0, -1.0], seeds=[0],
        optimizer="sgd", hidden_layers=2, activation="relu", kernel_initializer="k", train_examples=1, eval_examples=1,
        epochs=1, batch_size=1, losses=losses,
    )  # fmt: skip
    assert result.wider_is_better("mup") == {"learning_rates_compared": 2, "fraction": 0.5, "at_optimum": None}
    assert list(result.optimal_log2_lr("mup")) == [-2.0, -1.0]
    assert result.shift_steps("mup") == 1.0
    document = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert document["parametrizations"]["mup"]["mean_loss"]["64"] == [3.0, 2.0, None]
    assert document["parametrizations"]["mup"]["diverged_runs"] == 1


def test_from_logits_is_the_unclipped_softmax_cross_entropy_and_wants_a_linear_output():
    import jax.numpy as jnp

    from initlab.nn import losses

    logits = jnp.array([[40.0, 0.0, -3.0]])  # a confident wrong answer
    y = jnp.array([[0.0, 1.0, 0.0]])
    expected = -(0.0 - np.log(np.exp(40.0) + 1 + np.exp(-3.0)))
    assert float(losses.build("categorical_crossentropy(from_logits=True)")(y, logits)[0]) == pytest.approx(expected, rel=1e-6)
    assert float(losses.build("categorical_crossentropy")(y, jnp.array([[1.0, 0.0, 0.0]]))[0]) == pytest.approx(-np.log(1e-7))
    with pytest.raises(InitlabError, match="expects logits.*set it to linear"):
        TrainConfig(loss="categorical_crossentropy(from_logits=True)")


def test_grid_text():
    assert log2_grid_text("-14:-10") == [-14, -13, -12, -11, -10]
    assert log2_grid_text("-2:-1:0.5") == [-2, -1.5, -1]
    assert log2_grid_text("-12,-8") == [-12, -8]
    with pytest.raises(InitlabError, match="--lrs"):
        log2_grid_text("-4:-14")


def test_cli_prints_the_optima_and_draws_the_papers_figure(tmp_path):
    plot = tmp_path / "transfer.png"
    result = CliRunner().invoke(app, ["mup", "transfer", "--widths", "32,64", "--lrs", "-9:-7", "--seeds", "0",
                                      "--examples", "256", "--eval-examples", "128", "--plot", str(plot)])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "optimal log2 learning rate by width" in result.stdout and "grid step" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_json = CliRunner().invoke(app, ["mup", "transfer", "--widths", "32,64", "--lrs", "-9:-8", "--seeds", "0",
                                       "--examples", "256", "--eval-examples", "128", "--json"])  # fmt: skip
    assert as_json.exit_code == 0, as_json.stderr
    assert set(json.loads(as_json.stdout)["parametrizations"]) == {"sp", "mup"}
