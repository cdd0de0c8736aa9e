"""Sweep files: expansion, zips, conversion, grouping, and one-line errors naming file and key."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from initlab.errors import InitlabError
from initlab.experiments.sweeps import Sweep, group, group_key, load_sweep
from initlab.training.config import TrainConfig

EXAMPLE = """
name = "initializers"
[base]
epochs = 3
hidden_units = [64]
[grid]
kernel_initializer = ["RandomNormal()", "glorot_uniform", "he_normal"]
seed = [0, 1, 2, 3, 4]
"""

ZIP = """
[[zip]]
loss = ["mean_squared_error", "categorical_crossentropy"]
optimizer = ["sgd(learning_rate=0.01)", "sgd(learning_rate=0.1)"]
"""


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "sweep.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


# Expansion


def test_grid_expands_to_the_product_in_file_order(write):
    sweep = load_sweep(write(EXAMPLE))
    runs = sweep.expand()
    assert len(runs) == 15
    assert [(r.kernel_initializer, r.seed) for r in runs[:6]] == [
        *[("random_normal", seed) for seed in range(5)],
        ("glorot_uniform", 0),
    ]
    assert all(r.epochs == 3 and r.batch_size == TrainConfig().batch_size for r in runs)
    assert sweep.name == "initializers"
    assert sweep.expand() == runs


def test_zip_multiplies_the_grid_and_varies_fastest(write):
    runs = load_sweep(write(EXAMPLE + ZIP)).expand()
    assert len(runs) == 30
    assert [(r.seed, r.loss) for r in runs[:3]] == [
        (0, "mean_squared_error"),
        (0, "categorical_crossentropy"),
        (1, "mean_squared_error"),
    ]


def test_zip_fields_vary_together(write):
    runs = load_sweep(write(EXAMPLE + ZIP)).expand()
    pairs = {(r.loss, r.optimizer) for r in runs}
    assert pairs == {
        ("mean_squared_error", "sgd(learning_rate=0.01)"),
        ("categorical_crossentropy", "sgd(learning_rate=0.1)"),
    }


def test_two_zips_are_crossed(write):
    path = write(ZIP + '[[zip]]\nbatch_size = [16, 32, 64]\nactivation = ["relu", "tanh", "sigmoid"]\n')
    runs = load_sweep(path).expand()
    assert len(runs) == 6
    assert {(r.batch_size, r.activation) for r in runs} == {(16, "relu"), (32, "tanh"), (64, "sigmoid")}


def test_no_grid_gives_the_base_alone_and_name_defaults_to_stem(write):
    sweep = load_sweep(write("[base]\nepochs = 2\n", name="tiny.toml"))
    assert sweep.name == "tiny"
    assert sweep.expand() == [TrainConfig(epochs=2)]


def test_seed_range_string(write):
    ranged = load_sweep(write('[grid]\nseed = "0-4"\n', name="a.toml")).expand()
    listed = load_sweep(write("[grid]\nseed = [0, 1, 2, 3, 4]\n", name="b.toml")).expand()
    assert ranged == listed
    assert [r.seed for r in ranged] == [0, 1, 2, 3, 4]


def test_lists_become_tuples(write):
    path = write(
        """
        [base]
        layer_kernel_initializers = [[1, "he_normal"]]
        [grid]
        hidden_units = [[64], [128, 64]]
        """
    )
    sweep = load_sweep(path)
    assert sweep.grid["hidden_units"] == [(64,), (128, 64)]
    assert sweep.base["layer_kernel_initializers"] == ((1, "he_normal"),)
    runs = sweep.expand()
    assert [r.hidden_units for r in runs] == [(64,), (128, 64)]
    assert runs[1].layer_kernel_initializers == ((1, "he_normal"),)


# A TOML value for every TrainConfig field, other than its default.
EVERY_FIELD = {
    "dataset": '"fashion_mnist"',
    "data_file": '"digits.npz"',
    "hidden_units": "[32, 32]",
    "activation": '"tanh"',
    "kernel_initializer": '"he_normal"',
    "bias_initializer": '"ones"',
    "output_activation": '"sigmoid"',
    "output_kernel_initializer": '"lecun_normal"',
    "output_bias_initializer": '"ones"',
    "layer_kernel_initializers": '[[2, "orthogonal"]]',
    "loss": '"categorical_crossentropy"',
    "optimizer": '"adam(learning_rate=0.001)"',
    "batch_size": "32",
    "epochs": "3",
    "seed": "7",
    "probe_every": "2",
    "probe_size": "500",
    "defaults": '"torch"',
    "init_rules": '["*/bias=ones"]',
    "matmul": '"xla"',
    "parametrization": '"mup"',
    "base_width": "16",
    "architecture": '"cnn(channels=[4])"',
}
# Fields that are valid only together: each one's single-field grid gets its partner in [base].
COUPLED = {"parametrization": "base_width = 16\n", "base_width": 'parametrization = "mup"\n'}
# Fields that exclude others of the table (a network other than the MLP has no MLP layer numbers,
# no width parametrization): set alone.
ALONE = {"architecture"}


def test_every_config_field_can_be_set_in_base_and_grid(write):
    assert set(EVERY_FIELD) == {field.name for field in dataclasses.fields(TrainConfig)}
    together = {k: v for k, v in EVERY_FIELD.items() if k not in ALONE}
    base = load_sweep(write("[base]\n" + "".join(f"{k} = {v}\n" for k, v in together.items()), "base.toml"))
    (config,) = base.expand()
    for key in together:
        assert getattr(config, key) != getattr(TrainConfig(), key), key
    for key, value in EVERY_FIELD.items():
        text = (f"[base]\n{COUPLED[key]}" if key in COUPLED else "") + f"[grid]\n{key} = [{value}]\n"
        (single,) = load_sweep(write(text, f"grid_{key}.toml")).expand()
        expected = getattr(config, key) if key not in ALONE else getattr(TrainConfig(**{key: value.strip('"')}), key)
        assert getattr(single, key) == expected != getattr(TrainConfig(), key), key


def test_sweep_is_frozen(write):
    sweep = load_sweep(write(EXAMPLE))
    assert isinstance(sweep, Sweep) and sweep.source == write(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.name = "other"  # type: ignore[misc]


# Grouping

BASE = TrainConfig(epochs=2)


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "sgd(learning_rate=0.5)"},
        {"optimizer": "SGD"},
        {"kernel_initializer": "he_normal", "bias_initializer": "ones", "seed": 7},
        {"output_kernel_initializer": "zeros", "output_bias_initializer": "ones"},
        {"layer_kernel_initializers": ((1, "he_uniform"),)},
    ],
)
def test_same_group(changes):
    assert group_key(dataclasses.replace(BASE, **changes)) == group_key(BASE)


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "adam(learning_rate=0.01)"},
        {"optimizer": "sgd(learning_rate=0.01, momentum=0.9)"},
        {"epochs": 3},
        {"hidden_units": (32,)},
        {"batch_size": 64},
        {"loss": "categorical_crossentropy"},
    ],
)
def test_different_group(changes):
    assert group_key(dataclasses.replace(BASE, **changes)) != group_key(BASE)


def test_group_keeps_order(write):
    text = EXAMPLE.replace("epochs = 3\n", "") + '[[zip]]\nepochs = [1, 2]\noptimizer = ["sgd(learning_rate=0.1)", "sgd"]\n'
    runs = load_sweep(write(text)).expand()
    groups = group(runs)
    assert [len(g) for g in groups] == [15, 15]
    assert [g[0].epochs for g in groups] == [1, 2]
    assert groups[0] == [r for r in runs if r.epochs == 1]


def test_group_of_nothing():
    assert group([]) == []


# Errors: one line, naming the file and the key

ERRORS = {
    "syntax": ("[base]\nepochs = = 3\n", ["TOML syntax error", "line 2"]),
    "top-level table": ("[grd]\nseed = [1]\n", ["'grd'", "did you mean 'grid'", "valid: base, grid, name, zip"]),
    "top-level key": ("seeds = [1]\n", ["'seeds'", "valid: base, grid, name, zip"]),
    "base key": ("[base]\nkernal_initializer = 'he_normal'\n", ["[base]", "'kernal_initializer'", "did you mean 'kernel_initializer'", "valid:"]),
    "grid key": ("[grid]\nkernal_initializer = ['he_normal']\n", ["[grid]", "did you mean 'kernel_initializer'"]),
    "zip key": ("[[zip]]\nkernal_initializer = ['he_normal']\n", ["[[zip]] #1", "did you mean 'kernel_initializer'"]),
    "grid scalar": ("[grid]\nseed = 3\n", ["[grid] 'seed'", "non-empty list"]),
    "grid empty": ("[grid]\nepochs = []\n", ["[grid] 'epochs'", "non-empty list"]),
    "zip scalar": ("[[zip]]\nepochs = 3\n", ["[[zip]] #1 'epochs'", "non-empty list"]),
    "zip lengths": ("[[zip]]\nepochs = [1, 2]\nseed = [1, 2, 3]\n", ["[[zip]] #1", "equal lengths", "epochs: 2", "seed: 3"]),
    "zip empty": ("[[zip]]\n", ["[[zip]] #1", "empty"]),
    "zip as table": ("[zip]\nepochs = [1]\n", ["'zip'", "[[zip]]"]),
    "base and grid": ("[base]\nseed = 1\n[grid]\nseed = [1, 2]\n", ["[grid] 'seed'", "already given in [base]"]),
    "grid and zip": ("[grid]\nseed = [1]\n[[zip]]\nseed = [2]\n", ["[[zip]] #1 'seed'", "already given in [grid]"]),
    "zip and zip": ("[[zip]]\nseed = [1]\n[[zip]]\nseed = [2]\n", ["[[zip]] #2 'seed'", "already given in [[zip]] #1"]),
    "base value": ("[base]\nepochs = 0\n", ["[base] 'epochs'", "positive integer"]),
    "grid value": ("[grid]\nkernel_initializer = ['he_normal', 'he_nromal']\n", ["[grid] 'kernel_initializer'", "he_nromal"]),
    "zip value": ("[[zip]]\noptimizer = ['sgd(lr=0.1)']\n", ["[[zip]] #1 'optimizer'", "unknown argument 'lr'"]),
    "string type": ("[base]\nactivation = 5\n", ["[base] 'activation'", "must be a string"]),
    "hidden_units scalar": ("[base]\nhidden_units = 64\n", ["[base] 'hidden_units'", "list of layer sizes"]),
    "hidden_units flat grid": ("[grid]\nhidden_units = [64, 128]\n", ["[grid] 'hidden_units'", "list of lists"]),
    "layer overrides": ("[base]\nlayer_kernel_initializers = [[1]]\n", ["[base] 'layer_kernel_initializers'", "pairs"]),
    "layer out of range": ("[grid]\nlayer_kernel_initializers = [[[3, 'he_normal']]]\n", ["[grid] 'layer_kernel_initializers'", "out of range"]),
    "seed range": ('[grid]\nseed = "4-0"\n', ["[grid] 'seed'", "runs backwards", "0-4"]),
    "name": ("name = 3\n", ["'name'", "string"]),
    "base not a table": ("base = 3\n", ["'base'", "[base]"]),
}


@pytest.mark.parametrize("text, expected", list(ERRORS.values()), ids=list(ERRORS))
def test_errors_name_file_and_key(write, text, expected):
    path = write(text)
    with pytest.raises(InitlabError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(InitlabError, match="absent.toml: cannot read sweep file"):
        load_sweep(path)


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(InitlabError, match="cannot read sweep file"):
        load_sweep(tmp_path)


def test_cross_field_values_are_checked_together_not_alone(write):
    # Layer 3 exists only with two hidden layers: valid here, though not over the defaults.
    path = write("[base]\nhidden_units = [8, 8]\n[grid]\nlayer_kernel_initializers = [[[3, 'he_normal']], []]\n")
    assert len(load_sweep(path).expand()) == 2
    bad = write("[grid]\nhidden_units = [[8, 8], [8]]\nlayer_kernel_initializers = [[[3, 'he_normal']]]\n", "bad.toml")
    with pytest.raises(InitlabError, match=r"bad.toml: \[grid\] 'layer_kernel_initializers': layer number 3"):
        load_sweep(bad)


def test_error_only_in_combination_names_the_run(write):
    path = write("[grid]\nhidden_units = [[8, 8]]\nlayer_kernel_initializers = [[[4, 'he_normal']]]\n")
    with pytest.raises(InitlabError, match=r"sweep.toml: the run with hidden_units=\(8, 8\), layer_kernel_init"):
        load_sweep(path)
