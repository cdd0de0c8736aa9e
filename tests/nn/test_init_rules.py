"""Initializers per parameter: rules by path, name and role; framework presets; what is recorded."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import initlab
from initlab.nn.init_rules import InitRule, parse, preset, resolve
from initlab.training.config import TrainConfig
from initlab.training.loop import init_key

PATHS = [f"Dense_{i}/{name}" for i in range(3) for name in ("kernel", "bias")]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (["Dense_1/kernel=zeros"], {"Dense_1/kernel": "zeros"}),
        (["*/bias=ones"], {"Dense_0/bias": "ones", "Dense_1/bias": "ones", "Dense_2/bias": "ones"}),
        (["kernel=he_normal"], {"Dense_0/kernel": "he_normal", "Dense_1/kernel": "he_normal", "Dense_2/kernel": "he_normal"}),
        (["input/kernel=zeros"], {"Dense_0/kernel": "zeros"}),
        (["hidden/kernel=zeros"], {"Dense_0/kernel": "zeros", "Dense_1/kernel": "zeros"}),
        (["output/bias=ones"], {"Dense_2/bias": "ones"}),
        (["Dense_[01]/kernel=zeros"], {"Dense_0/kernel": "zeros", "Dense_1/kernel": "zeros"}),
        (["kernel=zeros", "Dense_2/kernel=ones"], {"Dense_0/kernel": "zeros", "Dense_1/kernel": "zeros", "Dense_2/kernel": "ones"}),
        (["Dense_2/kernel=ones", "kernel=zeros"], {f"Dense_{i}/kernel": "zeros" for i in range(3)}),  # the last wins
    ],
)
def test_rules_match_paths_names_and_roles_and_the_last_one_wins(rules, expected):
    resolved = resolve(PATHS, [parse(text) for text in rules])
    assert {path: spec for path, spec in resolved.items() if spec is not None} == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Dense_0/kernel", "must read PATTERN=SPEC"),
        ("Dense_0/kernel=", "must read PATTERN=SPEC"),
        ("=zeros", "the pattern before '=' is empty"),
        ("output=zeros", "a role names a layer; say which parameter, e.g. 'output/kernel'"),
        ("kernel=he_normall", "did you mean 'he_normal'"),
        ("kernel=RandomNormal(stdev=1.0)", "did you mean 'stddev'"),
    ],
)
def test_a_malformed_rule_is_one_clear_error(text, fragment):
    with pytest.raises(initlab.InitlabError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_a_rule_that_matches_nothing_is_an_error_not_a_silent_no_op():
    with pytest.raises(initlab.InitlabError, match=r"init rule 'Conv_0/kernel=zeros' matches no parameter \(parameters: Dense_0"):
        resolve(PATHS, [parse("Conv_0/kernel=zeros")])
    with pytest.raises(initlab.InitlabError, match="matches no parameter"):
        TrainConfig(init_rules=("Dense_5/kernel=zeros",))


def test_the_config_resolves_every_parameter_shorthands_first_then_rules():
    config = TrainConfig(hidden_units=(32, 16), layer_kernel_initializers=((2, "orthogonal"),), init_rules=("*/bias=ones",))
    assert config.parameter_initializers() == {
        "Dense_0/kernel": "random_normal", "Dense_0/bias": "ones",
        "Dense_1/kernel": "orthogonal", "Dense_1/bias": "ones",
        "Dense_2/kernel": "glorot_uniform", "Dense_2/bias": "ones",
    }  # fmt: skip
    layers = config.layers(10)
    assert [(layer.kernel_initializer, layer.bias_initializer) for layer in layers] == [
        ("random_normal", "ones"), ("orthogonal", "ones"), ("glorot_uniform", "ones")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("framework", "kernel", "bias"),
    [
        ("keras", "glorot_uniform", "zeros"),
        ("torch", "torch.linear_default", "torch.linear_bias_default"),
        ("flax", "flax.lecun_normal", "zeros"),
    ],
)
def test_a_preset_gives_every_layer_its_framework_defaults_unless_a_shorthand_is_set(framework, kernel, bias):
    config = TrainConfig(defaults=framework)  # the tutorial's RandomNormal() hidden kernel is a default: unset
    assert set(config.parameter_initializers().values()) == {kernel, bias}
    explicit = TrainConfig(defaults=framework, kernel_initializer="he_normal", output_bias_initializer="ones")
    assert explicit.parameter_initializers() == {
        "Dense_0/kernel": "he_normal", "Dense_0/bias": bias, "Dense_1/kernel": kernel, "Dense_1/bias": "ones",
    }
    dense = {rule.pattern: rule.spec for rule in preset(framework) if rule.pattern.startswith("dense/")}
    assert dense == {"dense/kernel": kernel, "dense/bias": bias}


def test_an_unknown_preset_names_the_valid_ones():
    with pytest.raises(initlab.InitlabError, match=r"unknown defaults preset 'pytorch'; did you mean 'torch'\? \(valid: flax, keras, torch\)"):
        TrainConfig(defaults="pytorch")


def _stats(values: np.ndarray) -> tuple[float, float, float]:
    values = np.asarray(values, np.float64).ravel()
    return values.mean(), values.std(), np.abs(values).max()


def test_the_torch_preset_draws_what_torch_nn_linear_draws():
    torch = pytest.importorskip("torch")
    params = TrainConfig(defaults="torch").model(784, 10).init(init_key(0))
    for name, (fan_in, fan_out) in (("Dense_0", (784, 64)), ("Dense_1", (64, 10))):
        torch.manual_seed(0)
        linear = torch.nn.Linear(fan_in, fan_out)
        bound = 1.0 / math.sqrt(fan_in)
        for ours, theirs in ((params[name]["kernel"], linear.weight.detach().numpy().T), (params[name]["bias"], linear.bias.detach().numpy())):
            assert ours.shape == theirs.shape
            (mean, std, top), (t_mean, t_std, t_top) = _stats(ours), _stats(theirs)
            assert top <= bound and t_top <= bound  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both
            n = ours.size
            se_std = bound / math.sqrt(3) / math.sqrt(2 * n) * 2  # std of a sample std of U(-b, b), x2 for the difference
            assert abs(std - t_std) < 4 * se_std + 1e-9
            assert abs(std - bound / math.sqrt(3)) < 4 * se_std
            se_mean = bound / math.sqrt(3) / math.sqrt(n)
            assert abs(mean) < 4 * se_mean and abs(t_mean) < 4 * se_mean


def test_the_flax_preset_draws_what_flax_linen_dense_draws():
    linen = pytest.importorskip("flax.linen")
    import jax
    import jax.numpy as jnp

    params = TrainConfig(defaults="flax").model(784, 10).init(init_key(0))
    theirs = linen.Dense(64).init(jax.random.key(0), jnp.ones((1, 784)))["params"]
    ours = params["Dense_0"]
    assert ours["kernel"].shape == theirs["kernel"].shape
    np.testing.assert_array_equal(ours["bias"], theirs["bias"])  # zeros
    std, their_std = _stats(ours["kernel"])[1], _stats(theirs["kernel"])[1]
    se = (1 / math.sqrt(784)) / math.sqrt(2 * ours["kernel"].size)
    assert abs(std - their_std) < 4 * math.sqrt(2) * se and abs(std - 1 / math.sqrt(784)) < 4 * se


def test_the_resolved_initializers_are_recorded_with_the_run(tmp_path):
    from same_training import assert_same_history  # noqa: F401  (the suite's shared helpers are importable)

    from initlab.data import Dataset
    from initlab.experiments.executors import run_configs
    from initlab.experiments.store import Store

    rng = np.random.default_rng(0)
    eye = np.eye(10, dtype=np.float32)
    data = Dataset("mnist", rng.integers(0, 255, (64, 784)).astype(np.uint8), eye[rng.integers(0, 10, 64)],
                   rng.integers(0, 255, (32, 784)).astype(np.uint8), eye[rng.integers(0, 10, 32)], scale=255.0)  # fmt: skip
    config = TrainConfig(hidden_units=(8,), epochs=1, batch_size=32, defaults="torch", init_rules=("output/kernel=zeros",))
    result = initlab.train(config, dataset=data)
    expected = {"Dense_0/kernel": "torch.linear_default", "Dense_0/bias": "torch.linear_bias_default",
                "Dense_1/kernel": "zeros", "Dense_1/bias": "torch.linear_bias_default"}  # fmt: skip
    assert result.initializers == expected and result.to_dict()["initializers"] == expected
    np.testing.assert_array_equal(initlab.train(config, dataset=data).params["Dense_1"]["kernel"] * 0, 0)
    path = tmp_path / "runs.sqlite"
    file = tmp_path / "data.npz"
    np.savez(file, x_train=data.x_train.reshape(-1, 28, 28), y_train=data.y_train.argmax(1),
             x_test=data.x_test.reshape(-1, 28, 28), y_test=data.y_test.argmax(1))  # fmt: skip
    run_configs([dataclasses.replace(config, data_file=str(file))], path)
    with Store(path) as store:
        (run,) = store.runs()
    assert run["versions"]["initializers"] == expected


def test_a_users_flax_module_keeps_its_own_init_but_for_what_the_rules_redraw():
    linen = pytest.importorskip("flax.linen")
    import jax

    from initlab.nn.flax_model import FlaxModel

    class Net(linen.Module):
        @linen.compact
        def __call__(self, x):
            hidden = linen.relu(linen.Dense(16)(x))
            return linen.softmax(linen.Dense(10)(hidden))

    model = FlaxModel(Net(), (20,))
    key = jax.random.key(1)
    own = model.init(key)
    params, origins = model.initialize(key, preset("torch")[1:] + (InitRule("output/kernel", "zeros"),))
    assert origins == {"Dense_0/kernel": "module", "Dense_0/bias": "torch.linear_bias_default",
                       "Dense_1/kernel": "zeros", "Dense_1/bias": "torch.linear_bias_default"}  # fmt: skip
    np.testing.assert_array_equal(params["Dense_0"]["kernel"], own["Dense_0"]["kernel"])
    np.testing.assert_array_equal(params["Dense_1"]["kernel"], 0)
    assert 0 < np.abs(params["Dense_0"]["bias"]).max() <= 1 / math.sqrt(20)  # its layer's fan-in, bound
    assert 0 < np.abs(params["Dense_1"]["bias"]).max() <= 1 / math.sqrt(16)
