"""Training initlab's networks beyond the MLP with the one training loop, and looking into them."""

from __future__ import annotations

import json
import math
import re

import jax
import numpy as np
import pytest
from synthetic_data import write_mnist_like
from typer.testing import CliRunner

from initlab.cli import app
from initlab.training.config import TrainConfig
from initlab.training.ensembles import train_many
from initlab.training.run import train


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return str(write_mnist_like(tmp_path_factory.mktemp("images") / "images.npz", train=192, test=64))


def test_an_architecture_is_a_config_field_hashed_only_when_set():
    assert "architecture" not in json.dumps(TrainConfig().to_dict()) or TrainConfig().architecture is None
    assert TrainConfig().config_hash() == TrainConfig(architecture=None).config_hash()
    one, two = TrainConfig(architecture="cnn()"), TrainConfig(architecture="cnn(dense=[128])")
    assert one == two and one.config_hash() == two.config_hash() != TrainConfig().config_hash()


def test_a_cnn_ensemble_trains_each_model_as_alone_with_its_own_initializer(images):
    base = TrainConfig(data_file=images, architecture="cnn(channels=[4], dense=[8])", loss="categorical_crossentropy",
                       optimizer="adam(learning_rate=0.01)", batch_size=32, epochs=3, probe_every=1, probe_size=32)
    configs = [base.__class__(**{**base.to_dict(), "kernel_initializer": spec, "seed": 1})
               for spec in ("he_normal", "glorot_uniform")]
    together = train_many(configs)
    for config, result in zip(configs, together):
        assert result.initializers["Conv_0/kernel"] == config.kernel_initializer
        assert result.history["loss"][-1] < result.history["loss"][0]  # it learns the (memorizable) noise
        assert {row[2] for row in result.probe_rows()} >= {"preactivation_std", "backprop_variance"}
    alone = train(configs[1])
    np.testing.assert_allclose(together[1].history["loss"], alone.history["loss"], rtol=2e-3)


def test_a_resnet_with_batchnorm_trains_and_keeps_its_statistics(images):
    config = TrainConfig(data_file=images, architecture="resnet(depth=1, width=4, norm='batch')", defaults="torch",
                         loss="categorical_crossentropy", optimizer="sgd(learning_rate=0.1)", batch_size=64, epochs=2,
                         probe_every=1, probe_size=32)
    result = train(config)
    assert all(math.isfinite(v) for v in result.history["val_loss"])
    statistics = result.params["batch_stats"]["stem_norm"]
    assert np.any(np.asarray(statistics["mean"]) != 0) and np.any(np.asarray(statistics["var"]) != 1)
    assert result.initializers["stem/kernel"] == "torch.conv_default"
    rows = [row for row in result.probe_rows() if row[1].startswith("block_")]
    assert {row[2] for row in rows} == {"residual_stream_rms"} and len(rows) == 3  # epochs 0, 1, 2


def test_a_transformer_trains_on_the_generated_task():
    config = TrainConfig(dataset="modular_addition", architecture="transformer(layers=1, d_model=16, heads=2, mlp_ratio=2)",
                         loss="categorical_crossentropy", optimizer="adam(learning_rate=0.003)", batch_size=512, epochs=2,
                         probe_every=1, probe_size=64)
    result = train(config)
    assert result.history["loss"][-1] < result.history["loss"][0]
    stats = {row[2] for row in result.probe_rows() if row[1] == "block_1"}
    assert {"attention_entropy", "attention_logit_std", "residual_stream_rms"} <= stats


def test_train_cli_takes_a_model_spec(images, tmp_path):
    result = CliRunner().invoke(app, ["train", "--model", "cnn(channels=[4], dense=[])", "--data-file", images, "--epochs", "1",
                                      "--batch-size", "64", "--loss", "categorical_crossentropy", "--init", "he_normal",
                                      "--json", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["config"]["architecture"] == "cnn(channels=(4,), dense=())"
    assert payload["initializers"]["Conv_0/kernel"] == "he_normal"


def test_delta_orthogonal_keeps_a_deep_tanh_cnn_near_isometric_where_gaussian_kernels_spread():
    """Xiao et al. 2018 at the edge of chaos (mean-field: sigma_b^2 = 1e-6), inputs at the fixed point q*."""
    from initlab.mean_field.theory import critical_sigma_w2, fixed_point_q
    from initlab.measure.networks import propagate_network, singular_value_summary

    sigma_b2 = 1e-6
    sigma_w2 = critical_sigma_w2(sigma_b2, "tanh")
    q_star = fixed_point_q(sigma_w2, sigma_b2, "tanh").q_star
    result = propagate_network(
        "cnn(depth=24, channels=8, activation='tanh')",
        [f"delta_orthogonal(gain={math.sqrt(sigma_w2)!r})", f"variance_scaling(scale={sigma_w2!r}, distribution='untruncated_normal')"],
        inputs="normal", input_shape=(4, 4, 8), input_std=math.sqrt(q_star), batch=4, jacobian=True,
        bias_initializer=f"random_normal(stddev={math.sqrt(sigma_b2)!r})",
    )
    delta, gaussian = (singular_value_summary(run.singular_values) for run in result.runs)
    assert 0.5 < delta["median"] < 2 and delta["max_over_min"] < 1e3
    assert gaussian["max_over_min"] > 1e3


def test_propagate_cli_reports_per_block_statistics_of_a_model():
    result = CliRunner().invoke(app, ["propagate", "--model", "resmlp(depth=4, width=16)", "--init", "default",
                                      "--init", "he_normal", "--batch", "32", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [run["initializer"] for run in payload["runs"]] == ["default", "he_normal"]
    for run in payload["runs"]:
        assert len(run["blocks"]["residual_stream_rms"]) == 4 and len(run["layers"]["preactivation_std"]) == 10
    text = CliRunner().invoke(app, ["propagate", "--model", "resmlp(depth=2, width=8, scheme='rezero')", "--batch", "8"])
    assert text.exit_code == 0 and "branch_to_skip_ratio" in text.stdout


def test_a_convolutional_ensemble_trained_step_by_step_equals_the_one_program_epoch(images, monkeypatch):
    """CNNs train one compiled program per step (XLA:CPU's convolutions are slow inside loops): the same numbers."""
    import initlab.training.run as run

    configs = [TrainConfig(data_file=images, architecture="cnn(channels=[3], dense=[])", loss="categorical_crossentropy",
                           epochs=2, batch_size=50, probe_every=1, probe_size=16, seed=seed) for seed in range(2)]
    stepwise = run.train_ensemble(configs)
    monkeypatch.setattr(run, "uses_convolutions", lambda model: False)
    programs = _compiled_grid_programs(monkeypatch)
    scanned = run.train_ensemble(configs)
    # Split across the devices, the scanned epoch exchanges nothing between them: XLA's partitioner once put
    # all-gathers in this program's convolution gradient, and XLA:CPU deadlocked on them (an abort, 1 run in ~8).
    assert programs and jax.device_count() >= 2
    for text in programs:
        assert not re.search(r"all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter", text)
    for a, b in zip(stepwise, scanned):
        np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-6)
        np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], rtol=1e-6)
        np.testing.assert_allclose(a.probes[-1][1]["update_ratio"], b.probes[-1][1]["update_ratio"], rtol=1e-4)


def _compiled_grid_programs(monkeypatch) -> list[str]:
    """The optimized HLO of every program :meth:`Layout.distribute` makes from now on (split grids only)."""
    from types import SimpleNamespace

    from initlab.training.grid import Layout

    texts: list[str] = []
    distribute = Layout.distribute

    def spied(self, fn, extra_inputs=0):
        jitted = distribute(self, fn, extra_inputs)
        if self.shard_axis is None:
            return jitted

        def lower(*args):
            compiled = jitted.lower(*args).compile()
            texts.append(compiled.as_text())
            return SimpleNamespace(compile=lambda: compiled)

        return SimpleNamespace(lower=lower)

    monkeypatch.setattr(Layout, "distribute", spied)
    return texts
