"""The ``initlab`` command line, through typer's ``CliRunner`` (and real processes where the
question is what a fresh interpreter imports).

Training runs on a small synthetic file in Keras's mnist layout, so these tests stay fast.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import synthetic_data
from typer.testing import CliRunner

import initlab
from initlab.cli import FAMILIES, app

EPOCHS = 2
TRAIN_SIZE, TEST_SIZE = 512, 128


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.output


def error_line(result) -> str:
    """The user error's message, after checking exit status 2, no traceback and nothing on stdout."""
    assert result.exit_code == 2, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    return lines[0]


def assert_single_error_line(result) -> str:
    """As :func:`error_line`, and stderr is exactly that one line (no blank lines around it)."""
    line = error_line(result)
    assert result.stderr == line + "\n", repr(result.stderr)
    return line


def write_mnist_like(path: Path, train: int = TRAIN_SIZE, test: int = TEST_SIZE, seed: int = 0) -> Path:
    return synthetic_data.write_mnist_like(path, train, test, seed)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_mnist_like(tmp_path_factory.mktemp("data") / "tiny_mnist.npz")


# --help and list


def test_help_lists_the_commands():
    result = invoke("--help")
    assert_ok(result)
    for command in ("list", "saturation", "train"):
        assert command in result.stdout


def test_help_shows_square_brackets_as_written():
    # Rich reads [name] as markup and drops it unless escaped.
    result = invoke("sweep", "--help")
    assert_ok(result)
    assert "[base], [grid], [[zip]]" in result.stdout


def test_no_arguments_shows_help():
    result = invoke()
    assert "Usage" in result.output
    assert "saturation" in result.output


def registry_names(family: str) -> list[str]:
    if family == "initializers":
        from initlab.initializers import initializers as registry

        return registry.names
    if family == "activations":
        from initlab.nn.activations import activations as registry

        return registry.names
    if family == "optimizers":
        from initlab.nn.optimizers import optimizers as registry

        return registry.names
    if family == "losses":
        from initlab.nn.losses import losses as registry

        return registry.names
    if family == "models":
        from initlab.nn.model_specs import models as registry

        return registry.names
    from initlab.data import datasets, inputs

    return datasets.names + inputs.names


@pytest.mark.parametrize("family", FAMILIES)
def test_list_shows_every_registered_name(family):
    result = invoke("list", family)
    assert_ok(result)
    names = registry_names(family)
    assert names
    for name in names:
        assert name in result.stdout


@pytest.mark.parametrize("family", FAMILIES)
def test_list_json_has_one_row_per_registered_name(family):
    result = invoke("list", family, "--json")
    assert_ok(result)
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == registry_names(family)
    for row in rows:
        assert set(row) >= {"name", "kind", "aliases", "defaults", "signature", "summary"}
        assert row["signature"].startswith(row["name"] + "(")
        assert row["summary"]


def test_list_initializers_json_gives_keras_defaults():
    rows = {row["name"]: row for row in json.loads(invoke("list", "initializers", "--json").stdout)}
    for name in ("zeros", "ones", "constant", "random_normal", "random_uniform", "truncated_normal",
                 "variance_scaling", "glorot_uniform", "glorot_normal", "he_normal", "he_uniform",
                 "lecun_normal", "lecun_uniform", "orthogonal", "identity"):
        assert name in rows
    assert rows["random_normal"]["defaults"] == {"mean": 0.0, "stddev": 0.05}
    assert rows["random_uniform"]["defaults"] == {"minval": -0.05, "maxval": 0.05}
    assert rows["truncated_normal"]["defaults"] == {"mean": 0.0, "stddev": 0.05}
    assert rows["variance_scaling"]["defaults"] == {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal",
                                                    "input_axes": None, "output_axes": None}  # Keras 3's fan axes
    assert rows["glorot_uniform"]["defaults"] == {"input_axes": None, "output_axes": None}
    assert "normal" in rows["random_normal"]["aliases"]
    assert rows["random_normal"]["signature"] == "random_normal(mean=0.0, stddev=0.05)"


def test_list_optimizers_json_gives_keras_defaults():
    rows = {row["name"]: row for row in json.loads(invoke("list", "optimizers", "--json").stdout)}
    assert rows["sgd"]["defaults"]["learning_rate"] == 0.01
    assert rows["adam"]["defaults"] == {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}


def test_list_datasets_includes_input_sources():
    rows = json.loads(invoke("list", "datasets", "--json").stdout)
    kinds = {row["name"]: row["kind"] for row in rows}
    assert kinds["mnist"] == "dataset"
    assert kinds["uniform"] == "input source"


JAX_PROBE = """
import atexit, sys
atexit.register(lambda: print("JAX_IMPORTED=" + str("jax" in sys.modules)))
sys.argv = ["initlab", *sys.argv[1:]]
from initlab.cli import main
main()
"""


@pytest.mark.parametrize("args", [["--help"], *(["list", family] for family in FAMILIES), ["list", "initializers", "--json"]])
def test_help_and_list_do_not_import_jax(args):
    process = subprocess.run(
        [sys.executable, "-c", JAX_PROBE, *args], capture_output=True, text=True, timeout=60
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.rstrip().endswith("JAX_IMPORTED=False"), process.stdout[-500:]
    assert len(process.stdout) > 200


def test_jax_probe_detects_an_import_of_jax():
    # The probe must be able to fail: a command that does need JAX reports it.
    process = subprocess.run(
        [sys.executable, "-c", JAX_PROBE, "saturation", "--units", "4", "--input-dim", "4", "--draws", "2", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.rstrip().endswith("JAX_IMPORTED=True")


# saturation


@pytest.fixture(scope="module")
def saturation_json() -> dict:
    result = invoke("saturation", "--json", "--draws", "100")
    assert_ok(result)
    return json.loads(result.stdout)


def test_saturation_json_has_the_results_columns(saturation_json):
    for key in ("saturation_fraction", "saturation_fraction_se", "predicted_saturation_fraction", "low_fraction",
                "high_fraction", "preactivation_std", "predicted_preactivation_std", "low", "high", "histogram"):
        assert key in saturation_json
    assert set(saturation_json["histogram"]) == {"edges", "counts"}
    assert saturation_json["initializer"] == "random_normal(stddev=1.0)"
    assert (saturation_json["units"], saturation_json["input_dim"], saturation_json["draws"]) == (256, 784, 100)


def test_saturation_json_values_are_the_apis(saturation_json):
    api = initlab.saturation(draws=100).to_dict()
    for key in ("saturation_fraction", "saturation_fraction_se", "predicted_saturation_fraction", "preactivation_std"):
        assert saturation_json[key] == pytest.approx(api[key], rel=1e-12)
    assert saturation_json["histogram"]["counts"] == api["histogram"]["counts"]
    assert saturation_json["histogram"]["edges"] == pytest.approx(api["histogram"]["edges"])


def test_saturation_json_values_are_the_tutorials_finding(saturation_json):
    assert saturation_json["saturation_fraction"] > 0.85
    gap = abs(saturation_json["saturation_fraction"] - saturation_json["predicted_saturation_fraction"])
    assert gap <= 4 * saturation_json["saturation_fraction_se"]
    assert sum(saturation_json["histogram"]["counts"]) == 256 * 100
    assert saturation_json["histogram"]["edges"][0] == pytest.approx(0.0)
    assert saturation_json["histogram"]["edges"][-1] == pytest.approx(1.0)


def test_saturation_options_reach_the_experiment():
    result = invoke("saturation", "--json", "--units", "32", "--input-dim", "50", "--draws", "20", "--bins", "10",
                    "--activation", "tanh", "--inputs", "normal", "--low", "-0.5", "--high", "0.7", "--seed", "4")
    assert_ok(result)
    payload = json.loads(result.stdout)
    assert (payload["units"], payload["input_dim"], payload["draws"], payload["seed"]) == (32, 50, 20, 4)
    assert (payload["activation"], payload["inputs"]) == ("tanh", "normal")
    assert (payload["low"], payload["high"]) == (-0.5, 0.7)
    assert len(payload["histogram"]["counts"]) == 10
    assert sum(payload["histogram"]["counts"]) == 32 * 20


def test_saturation_glorot_uniform_gives_a_small_fraction():
    result = invoke("saturation", "--json", "--draws", "100", "--init", "glorot_uniform")
    assert_ok(result)
    payload = json.loads(result.stdout)
    assert payload["initializer"] == "glorot_uniform"
    assert payload["saturation_fraction"] < 0.01
    assert payload["predicted_saturation_fraction"] < 0.01


def test_saturation_plot_writes_a_png_and_reports_in_text(tmp_path):
    plot = tmp_path / "figures" / "saturation.png"
    result = invoke("saturation", "--units", "64", "--draws", "20", "--plot", str(plot))
    assert_ok(result)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 1000
    assert "saturated" in result.stdout
    assert "predicted" in result.stdout
    # rich wraps long lines at the terminal's width: compare without whitespace.
    assert "histogramwrittento" + str(plot) in re.sub(r"\s", "", result.stdout)


def test_saturation_plot_with_json_names_the_file(tmp_path):
    plot = tmp_path / "saturation.png"
    result = invoke("saturation", "--json", "--units", "16", "--draws", "5", "--plot", str(plot))
    assert_ok(result)
    assert json.loads(result.stdout)["plot"] == str(plot)
    assert plot.read_bytes()[:4] == b"\x89PNG"


# train


@pytest.fixture(scope="module")
def trained(data_file, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("run") / "out"
    result = invoke("train", "--json", "--data-file", str(data_file), "--epochs", str(EPOCHS), "--out", str(out))
    assert_ok(result)
    return json.loads(result.stdout), out


def test_train_json_history_has_keras_keys_one_value_per_epoch(trained):
    payload, _ = trained
    history = payload["history"]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key, values in history.items():
        assert len(values) == EPOCHS, key
        assert all(math.isfinite(v) for v in values), key
    for key in ("accuracy", "val_accuracy"):
        assert all(0.0 <= v <= 1.0 for v in history[key])
    # Mean squared error of softmax outputs against one-hot labels over 10 classes lies in (0, 0.2].
    assert all(0.0 < v <= 0.2 for v in history["loss"] + history["val_loss"])
    assert payload["diverged_epoch"] is None


def test_train_json_records_the_config(trained, data_file):
    config = trained[0]["config"]
    assert config["epochs"] == EPOCHS
    assert config["data_file"] == str(data_file)
    assert config["hidden_units"] == [64]
    assert config["loss"] == "mean_squared_error"
    assert trained[0]["out"]


def test_train_out_writes_history_json(trained):
    payload, out = trained
    saved = json.loads((out / "history.json").read_text())
    assert saved["history"] == payload["history"]
    assert saved["config"] == payload["config"]


def test_train_out_writes_history_csv(trained):
    payload, out = trained
    with (out / "history.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(rows) == 1 + EPOCHS
    for epoch, row in enumerate(rows[1:], start=1):
        assert int(row[0]) == epoch
        for key, value in zip(rows[0][1:], row[1:]):
            assert float(value) == pytest.approx(payload["history"][key][epoch - 1], rel=1e-12)


def test_train_out_writes_learning_curves_png(trained):
    _, out = trained
    png = out / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000


def epoch_reports(output: str) -> dict[int, dict[str, float]]:
    """``{epoch: {metric: value}}`` from the "Epoch N/M - name: value - ..." lines (rich may wrap them)."""
    text = re.sub(r"\s+", " ", output)
    reports = {}
    for match in re.finditer(rf"Epoch (\d+)/{EPOCHS} - (.*?)(?= Epoch \d+/| final |$)", text):
        pairs = re.findall(r"(\w+): (\S+?)(?: -|$)", match.group(2).strip())
        reports[int(match.group(1))] = {name: float(value) for name, value in pairs}
    return reports


@pytest.fixture(scope="module")
def trained_text(data_file):
    result = invoke("train", "--data-file", str(data_file), "--epochs", str(EPOCHS))
    assert_ok(result)
    return result


def test_train_text_prints_keras_like_epoch_lines(trained_text, trained):
    reports = epoch_reports(trained_text.output)
    assert sorted(reports) == list(range(1, EPOCHS + 1)), trained_text.output
    history = trained[0]["history"]
    for epoch, metrics in reports.items():
        assert set(metrics) == set(history)
        # Same seed, same data: the numbers are the JSON run's, printed to 4 decimals.
        for name, value in metrics.items():
            assert value == pytest.approx(history[name][epoch - 1], abs=6e-5)
    assert "final val_accuracy" in trained_text.stdout


def test_train_text_epoch_report_is_one_line(trained_text):
    lines = [line for line in trained_text.output.splitlines() if line.startswith("Epoch ")]
    assert len(lines) == EPOCHS
    for line in lines:
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert re.search(rf"\b{name}: \d", line), line


def test_train_accepts_the_full_set_of_options(data_file):
    result = invoke(
        "train", "--json", "--data-file", str(data_file), "--epochs", str(EPOCHS), "--batch-size", "64",
        "--hidden", "32,16", "--activation", "tanh", "--init", "he_normal", "--layer-init", "3=zeros",
        "--optimizer", "adam(learning_rate=0.001)", "--loss", "categorical_crossentropy", "--seed", "1",
    )
    assert_ok(result)
    payload = json.loads(result.stdout)
    config = payload["config"]
    assert config["hidden_units"] == [32, 16]
    assert config["activation"] == "tanh"
    assert config["kernel_initializer"] == "he_normal"
    assert config["layer_kernel_initializers"] == [[3, "zeros"]]
    assert config["optimizer"] == "adam(learning_rate=0.001)"
    assert config["loss"] == "categorical_crossentropy"
    assert (config["batch_size"], config["seed"]) == (64, 1)
    history = payload["history"]
    assert all(len(values) == EPOCHS for values in history.values())
    # Cross-entropy on 10 classes starts near ln 10 = 2.3; mean squared error would be below 0.2.
    assert 1.5 < history["loss"][0] < 3.5


def test_train_is_deterministic_by_seed(data_file, trained):
    result = invoke("train", "--json", "--data-file", str(data_file), "--epochs", str(EPOCHS))
    assert_ok(result)
    assert json.loads(result.stdout)["history"] == trained[0]["history"]


# User errors: exit status 2, one line on stderr starting with "error:", no traceback.

USER_ERRORS = [
    pytest.param(["train", "--model", "convnext(3)"], ["unknown model 'convnext'", "(valid: cnn, mlp, resmlp"], id="unknown-model"),
    pytest.param(["train", "--model", "mlp(hidden=[0])"], ["hidden sizes must be integers in [1, 1000000]"],
                 id="model-zero-width"),
    pytest.param(["train", "--model", "mlp(hidden=[8], activation='sigmod')"], ["did you mean 'sigmoid'"],
                 id="model-unknown-activation"),
    pytest.param(["train", "--model", "mlp(32)", "--hidden", "16"], ["--model describes the whole network",
                 "--hidden, not both"], id="model-and-hidden"),
    pytest.param(["train", "--defaults", "pytorch"], ["unknown defaults preset 'pytorch'", "did you mean 'torch'"],
                 id="unknown-preset"),
    pytest.param(["train", "--init-rule", "Conv_0/kernel=zeros"], ["matches no parameter", "Dense_0/kernel"],
                 id="rule-matches-nothing"),
    pytest.param(["train", "--init-rule", "kernel"], ["must read PATTERN=SPEC"], id="rule-without-spec"),
    pytest.param(["train", "--init-rule", "output=zeros"], ["a role names a layer", "'output/kernel'"],
                 id="rule-role-without-parameter"),
    pytest.param(["train", "--init-rule", "*/bias=onez"], ["did you mean 'ones'"], id="rule-unknown-initializer"),
    pytest.param(["train", "--matmul", "dense"], ["unknown matmul 'dense'", "(valid: auto, sparse, xla)"],
                 id="unknown-matmul"),
    pytest.param(["saturation", "--init", "glorot_unifrom"], ["glorot_unifrom", "did you mean 'glorot_uniform'"],
                 id="unknown-initializer"),
    pytest.param(["train", "--init", "he_normall"], ["did you mean 'he_normal'"], id="train-unknown-initializer"),
    pytest.param(["saturation", "--init", "RandomNormal(stddev="], ["malformed spec", "RandomNormal(stddev="],
                 id="malformed-spec"),
    pytest.param(["saturation", "--init", "RandomNormal(stddev=x)"], ["not a literal"], id="non-literal-argument"),
    pytest.param(["saturation", "--init", "RandomNormal(stdev=1.0)"], ["unknown argument 'stdev'",
                 "did you mean 'stddev'"], id="unknown-spec-argument"),
    pytest.param(["saturation", "--init", "RandomNormal(stddev='wide')"], ["stddev", "must be float"],
                 id="ill-typed-argument"),
    pytest.param(["train", "--optimizer", "sgd(learning_rate='fast')"], ["learning_rate", "must be float"],
                 id="ill-typed-optimizer-argument"),
    pytest.param(["train", "--optimizer", "sgd(learning_rate=-1.0)"], ["learning_rate must be a finite number > 0"],
                 id="negative-learning-rate"),
    pytest.param(["saturation", "--activation", "sigmoidd"], ["unknown activation", "did you mean 'sigmoid'"],
                 id="unknown-activation"),
    pytest.param(["train", "--activation", "tahn"], ["unknown activation", "did you mean 'tanh'"],
                 id="train-unknown-activation"),
    pytest.param(["saturation", "--inputs", "unifrom"], ["unknown input source", "did you mean 'uniform'"],
                 id="unknown-input-source"),
    pytest.param(["train", "--optimizer", "adamm"], ["unknown optimizer", "did you mean 'adam'"],
                 id="unknown-optimizer"),
    pytest.param(["train", "--dataset", "cifar100"], ["unknown dataset 'cifar100'", "mnist"], id="unknown-dataset"),
    pytest.param(["train", "--loss", "mean_squared_eror"], ["unknown loss", "did you mean 'mean_squared_error'"],
                 id="unknown-loss"),
    pytest.param(["saturation", "--units", "0"], ["units must be a positive integer"], id="zero-units"),
    pytest.param(["saturation", "--input-dim", "0"], ["input_dim must be a positive integer"], id="zero-input-dim"),
    pytest.param(["saturation", "--draws", "-1"], ["draws must be a positive integer"], id="negative-draws"),
    pytest.param(["saturation", "--bins", "0"], ["bins must be a positive integer"], id="zero-bins"),
    pytest.param(["saturation", "--activation", "relu"], ["--low and --high"], id="unbounded-without-thresholds"),
    pytest.param(["saturation", "--low", "0.9", "--high", "0.1"], ["low < high"], id="low-above-high"),
    pytest.param(["train", "--hidden", "0"], ["a layer size must be a positive integer"], id="zero-hidden"),
    pytest.param(["train", "--hidden", "64,-8"], ["--hidden expects comma-separated layer sizes", "'-8'"],
                 id="negative-hidden"),
    pytest.param(["train", "--hidden", "a,b"], ["--hidden expects comma-separated layer sizes", "a,b"],
                 id="non-integer-hidden"),
    pytest.param(["train", "--batch-size", "0"], ["batch_size must be a positive integer"], id="zero-batch-size"),
    pytest.param(["train", "--epochs", "0"], ["epochs must be a positive integer"], id="zero-epochs"),
    pytest.param(["train", "--layer-init", "x=zeros"], ["--layer-init expects LAYER=SPEC"], id="malformed-layer-init"),
    pytest.param(["train", "--layer-init", "5=zeros"], ["layer number 5 is out of range", "1-2"],
                 id="layer-init-out-of-range"),
    pytest.param(["list", "foo"], ["unknown list 'foo'", "initializers"], id="unknown-list-family"),
    pytest.param(["list", "initializer"], ["did you mean 'initializers'"], id="list-family-typo"),
]


@pytest.mark.parametrize(("args", "fragments"), USER_ERRORS)
def test_user_error_is_one_line_on_stderr_with_exit_status_2(args, fragments):
    line = assert_single_error_line(invoke(*args))
    for fragment in fragments:
        assert fragment in line


def test_error_lists_the_valid_choices():
    line = error_line(invoke("train", "--optimizer", "adamm"))
    assert "(valid: adam, rmsprop, sgd)" in line


@pytest.fixture
def corrupt_file(tmp_path) -> Path:
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"this is not a zip archive, let alone an npz")
    return path


@pytest.fixture
def truncated_file(tmp_path, data_file) -> Path:
    path = tmp_path / "truncated.npz"
    path.write_bytes(data_file.read_bytes()[:5000])
    return path


@pytest.fixture
def keyless_file(tmp_path) -> Path:
    path = tmp_path / "keyless.npz"
    np.savez(path, images=np.zeros((4, 28, 28), np.uint8), labels=np.zeros(4, np.uint8))
    return path


@pytest.fixture
def missing_file(tmp_path) -> Path:
    return tmp_path / "nowhere" / "mnist.npz"


DATA_FILE_ERRORS = [
    ("missing_file", "data file not found"),
    ("corrupt_file", "is corrupt or not an .npz archive"),
    ("truncated_file", "is corrupt or not an .npz archive"),
    ("keyless_file", "lacks array(s) x_train, y_train, x_test, y_test"),
]


@pytest.mark.parametrize(("file_fixture", "fragment"), DATA_FILE_ERRORS)
def test_bad_data_file_is_a_user_error(file_fixture, fragment, request):
    path = request.getfixturevalue(file_fixture)
    line = error_line(invoke("train", "--data-file", str(path), "--epochs", "1"))
    assert fragment in line
    assert path.name in line


@pytest.mark.parametrize(("file_fixture", "fragment"), DATA_FILE_ERRORS[:2])
def test_bad_data_file_error_is_exactly_one_line(file_fixture, fragment, request):
    path = request.getfixturevalue(file_fixture)
    line = assert_single_error_line(invoke("train", "--data-file", str(path), "--epochs", "1"))
    assert fragment in line


def test_bad_data_file_in_a_real_process_ends_in_one_error_line(missing_file):
    process = subprocess.run(
        [sys.executable, "-m", "initlab.cli", "train", "--data-file", str(missing_file)],
        capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 2
    assert process.stdout == ""
    assert "Traceback" not in process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: data file not found")


# Error text from the user's input must be printed literally, never read as rich markup.


def test_error_message_keeps_square_brackets_from_the_spec():
    line = error_line(invoke("saturation", "--init", "glorot[uniform]"))
    assert "glorot[uniform]" in line


def test_error_message_with_a_closing_tag_is_still_a_user_error():
    line = error_line(invoke("saturation", "--init", "glorot[/]"))
    assert "glorot[/]" in line


def test_error_message_keeps_square_brackets_from_a_path(tmp_path):
    path = tmp_path / "[red]mnist.npz"
    line = error_line(invoke("train", "--data-file", str(path), "--epochs", "1"))
    assert "[red]mnist.npz" in line


def test_model_spec_builds_the_network_the_flags_build(data_file):
    by_spec = json.loads(invoke("train", "--model", "mlp(hidden=[12, 8], activation='tanh')", "--epochs", "1",
                                "--json", "--data-file", str(data_file)).stdout)  # fmt: skip
    by_flags = json.loads(invoke("train", "--hidden", "12,8", "--activation", "tanh", "--epochs", "1", "--json",
                                 "--data-file", str(data_file)).stdout)  # fmt: skip
    assert by_spec["config"] == by_flags["config"] and by_spec["history"] == by_flags["history"]
    assert list(by_spec["initializers"]) == [f"Dense_{i}/{p}" for i in range(3) for p in ("kernel", "bias")]


def test_defaults_and_init_rules_reach_the_run_and_its_record(data_file):
    out = json.loads(invoke("train", "--defaults", "torch", "--init-rule", "output/bias=ones", "--epochs", "1",
                            "--json", "--data-file", str(data_file)).stdout)  # fmt: skip
    assert out["config"]["defaults"] == "torch" and out["config"]["init_rules"] == ["output/bias=ones"]
    assert out["initializers"] == {"Dense_0/kernel": "torch.linear_default", "Dense_0/bias": "torch.linear_bias_default",
                                   "Dense_1/kernel": "torch.linear_default", "Dense_1/bias": "ones"}  # fmt: skip
