"""Bad inputs, table-driven, across every command and file kind.

Each case must end the same way: exit status 2, one short line on stderr naming the problem,
no traceback, and nothing written (no new file in the working folder, every existing file,
stores included, byte for byte as it was).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from synthetic_data import write_mnist_like
from typer.testing import CliRunner

from initlab.cli import app
from initlab.cli._app import MAX_ERROR_LENGTH

LONG_SPEC = "a" * 9000


def _npz(path: Path, *, x_train=None, y_train=None, x_test=None, y_test=None) -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(20) % 10
    arrays = {
        "x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8) if x_train is None else x_train,
        "y_train": labels if y_train is None else y_train,
        "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8) if x_test is None else x_test,
        "y_test": labels[:10] if y_test is None else y_test,
    }
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A folder of every kind of bad (and one good) input file."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    write_mnist_like(folder / "good.npz", train=64, test=32)
    labels = np.arange(20) % 10
    _npz(folder / "huge_label.npz", y_test=np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10**9]))
    _npz(folder / "sparse_labels.npz", y_train=np.r_[labels[:-1], 50000])
    _npz(folder / "negative_label.npz", y_train=np.r_[labels[:-1], -1])
    _npz(folder / "float_labels.npz", y_train=labels.astype(np.float32))
    nan_pixels = np.zeros((20, 28, 28), np.float32)
    nan_pixels[3, 4, 5] = np.nan
    _npz(folder / "nan_pixels.npz", x_train=nan_pixels)
    _npz(folder / "inf_pixels.npz", x_test=np.full((10, 28, 28), np.inf, np.float32))
    _npz(folder / "complex_pixels.npz", x_train=np.zeros((20, 28, 28), np.complex64))
    _npz(folder / "string_pixels.npz", x_train=np.full((20, 4), "a"))
    _npz(folder / "mismatched.npz", x_test=np.zeros((10, 27, 28), np.uint8))
    _npz(folder / "short_labels.npz", y_train=labels[:5])
    np.savez(folder / "missing_keys.npz", x_train=np.zeros((2, 2)))
    np.save(folder / "single.npy", np.zeros(3))
    (folder / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (folder / "text.txt").write_text("notes\n")
    (folder / "empty.sqlite").write_bytes(b"")
    (folder / "garbage.sqlite").write_bytes(b"hello, not a database " * 20)
    with sqlite3.connect(folder / "foreign.sqlite") as db:
        db.execute("CREATE TABLE t (x)")
    from initlab.experiments.store import Store

    with Store(folder / "store.sqlite"):
        pass
    (folder / "truncated.sqlite").write_bytes((folder / "store.sqlite").read_bytes()[:1500])
    with sqlite3.connect(folder / "newer.sqlite") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    (folder / "theory_list.json").write_text("[1, 2, 3]")
    (folder / "theory_bad.json").write_text("{not json")
    (folder / "theory_strings.json").write_text(json.dumps({"1": {"preactivation_variance": ["a"]}}))
    (folder / "a_folder").mkdir()
    sweeps = {
        "syntax.toml": "[base\n",
        "unknown_key.toml": "[base]\nepochz = 3\n",
        "huge_seeds.toml": '[grid]\nseed = "0-4294967300"\n',
        "backwards_seeds.toml": '[grid]\nseed = "5-1"\n',
        "bad_hidden.toml": "[base]\nhidden_units = [0]\n",
        "string_epochs.toml": '[base]\nepochs = "3"\n',
        "inf_rate.toml": '[base]\noptimizer = "sgd(learning_rate=1e400)"\n',
        "twice.toml": '[base]\nseed = 1\n[grid]\nseed = [1, 2]\n',
        "zip_lengths.toml": '[[zip]]\nseed = [1, 2]\nepochs = [1]\n',
        "empty_grid.toml": "[grid]\nseed = []\n",
        "top_level.toml": "runs = 3\n",
        "huge_batch.toml": "[base]\nbatch_size = 100000000000\n",
    }
    for name, text in sweeps.items():
        (folder / name).write_text(text)
    (folder / "binary.toml").write_bytes(b"\xff\xfe\x00\x01" * 10)
    (folder / "models.py").write_text(
        "import torch\n\ndef mlp():\n    return torch.nn.Sequential(torch.nn.Linear(4, 3))\n\n"
        "def broken():\n    raise RuntimeError('no model today')\n\nNOT_A_MODEL = 3\n\n"
        "def flax_dense():\n    import flax.linen\n    return flax.linen.Dense(3)\n\n"
        "def keras_subclassed():\n    import keras\n\n    class Net(keras.Model):\n"
        "        def __init__(self):\n            super().__init__()\n            self.dense = keras.layers.Dense(3)\n\n"
        "        def call(self, x):\n            return self.dense(x)\n\n    return Net()\n"
    )
    (folder / "crashes_on_import.py").write_text("raise ValueError('bad module')\n")
    return folder


# (command line, words the one-line error must contain). {name} is the path of a file above.
CASES = [
    # train: sizes and counts
    ("train --hidden 64,,3", "empty size"),
    ("train --hidden ,", "empty size"),
    ("train --hidden 0", "positive"),
    ("train --hidden -3", "layer sizes"),
    ("train --hidden 64.5", "layer sizes"),
    ("train --hidden abc", "layer sizes"),
    ("train --hidden 100000000000", "at most"),
    ("train --hidden 1000000,1000000", "memory"),
    ("train --batch-size 0", "batch_size"),
    ("train --batch-size -1", "batch_size"),
    ("train --batch-size 100000000000", "at most"),
    ("train --epochs 0", "epochs"),
    ("train --epochs 100000000000", "at most"),
    ("train --probe-every 0", "--probe-every"),
    ("train --probe --probe-every -2", "--probe-every"),
    ("train --seed -1", "seed"),
    ("train --seed 4294967296", "seed"),
    ("train --seed 3 --seeds 0-2", "not both"),
    ("train --seeds 0-4294967295", "more than"),
    ("train --seeds 0-4294967300", "2**32"),
    ("train --seeds 5-1", "backwards"),
    ("train --seeds a-b", "integers"),
    ("train --seeds ,", "at least one"),
    ("train --memory-budget nan --seeds 0-1", "finite"),
    ("train --memory-budget inf --seeds 0-1", "finite"),
    ("train --memory-budget -5 --seeds 0-1", "> 0"),
    ("train --memory-budget 0 --seeds 0-1", "> 0"),
    ("train --memory-budget 0.001 --seeds 0-1 --data-file {good.npz}", "too small"),
    # train: specs
    ("train --init RandomNormal(stddev=1e400)", "finite"),
    ("train --init RandomNormal(stddev=-1e400)", "finite"),
    ("train --init RandomNormal(stddev=1j)", "finite"),
    ("train --init RandomNormal(stddev=-1.0)", "stddev"),
    ("train --init nosuchinit", "unknown initializer"),
    ("train --init he_normall", "did you mean"),
    ("train --init he_normal(scale=2)", "unknown argument"),
    ("train --init __import__('os')", "malformed"),
    ("train --init RandomNormal(stddev=x)", "not a literal"),
    ("train --init " + LONG_SPEC, "unknown initializer"),
    ("train --init he_normal(\n)x", "malformed"),
    ("train --init ''", "malformed"),
    ("train --optimizer sgd(learning_rate=1e400)", "finite"),
    ("train --optimizer sgd(learning_rate=0)", "learning_rate"),
    ("train --optimizer sgd(learning_rate=-0.1)", "learning_rate"),
    ("train --optimizer sgd(momentum=1.0)", "momentum"),
    ("train --optimizer adam(beta_1=1.5)", "beta_1"),
    ("train --optimizer adam(beta_2=-0.1)", "beta_2"),
    ("train --optimizer adam(beta_2=1.0)", "beta_2"),
    ("train --optimizer adam(epsilon=0)", "epsilon"),
    ("train --optimizer adam(epsilon=-1e-7)", "epsilon"),
    ("train --optimizer rmsprop(rho=2)", "rho"),
    ("train --optimizer rmsprop(epsilon=-1)", "epsilon"),
    ("train --optimizer rmsprop(momentum=1.5)", "momentum"),
    ("train --optimizer lbfgs", "unknown optimizer"),
    ("train --loss hinge", "unknown loss"),
    ("train --activation relu(alpha=1e400)", "finite"),
    ("train --activation nope", "unknown activation"),
    ("train --output-activation nope", "unknown activation"),
    ("train --bias-init nope", "unknown initializer"),
    ("train --dataset imagenet", "unknown dataset"),
    ("train --matmul gpu", "unknown matmul"),
    ("train --defaults tensorflow", "tensorflow"),
    ("train --init-rule nothing=zeros", "nothing"),
    ("train --init-rule Dense_0/kernel", "PATTERN=SPEC"),
    ("train --layer-init 5=zeros", "out of range"),
    ("train --layer-init x=zeros", "LAYER=SPEC"),
    ("train --model mlp(hidden=[0])", "hidden sizes must be integers"),
    ("train --model mlp(hidden=[64,,])", "malformed"),
    ("train --model resnet9000", "unknown model"),
    ("train --model mlp() --hidden 32", "not both"),
    # train: data files
    ("train --data-file {huge_label.npz}", "a label of 1000000000"),
    ("train --data-file {sparse_labels.npz}", "no training example"),
    ("train --data-file {negative_label.npz}", "non-negative"),
    ("train --data-file {float_labels.npz}", "integer class labels"),
    ("train --data-file {nan_pixels.npz}", "non-finite"),
    ("train --data-file {inf_pixels.npz}", "non-finite"),
    ("train --data-file {complex_pixels.npz}", "real numbers"),
    ("train --data-file {string_pixels.npz}", "real numbers"),
    ("train --data-file {mismatched.npz}", "differ in shape"),
    ("train --data-file {short_labels.npz}", "labels"),
    ("train --data-file {missing_keys.npz}", "lacks"),
    ("train --data-file {single.npy}", "single .npy"),
    ("train --data-file {binary.bin}", "corrupt"),
    ("train --data-file missing.npz", "not found"),
    ("train --data-file {a_folder}", "not found"),
    # train: outputs
    ("train --out {text.txt} --data-file {good.npz}", "is a file"),
    ("train --out {text.txt}/sub --data-file {good.npz}", "is a file"),
    # saturation
    ("saturation --draws 0", "draws"),
    ("saturation --draws 100000000000", "at most"),
    ("saturation --units 0", "units"),
    ("saturation --units 100000000000", "at most"),
    ("saturation --units 100000 --input-dim 100000", "MiB"),
    ("saturation --input-dim -1", "input_dim"),
    ("saturation --bins 0", "bins"),
    ("saturation --bins 100000000000", "at most"),
    ("saturation --seed -5", "seed"),
    ("saturation --plot out.txt", ".png"),
    ("saturation --plot out", "no extension"),
    ("saturation --plot {a_folder}/x.bmp", ".png"),
    ("saturation --low nan", "finite"),
    ("saturation --high inf", "finite"),
    ("saturation --low 0.9 --high 0.1", "low < high"),
    ("saturation --activation relu", "--low and --high"),
    ("saturation --init RandomNormal(stddev=inf)", "not a literal"),
    ("saturation --inputs uniform(low=1e400)", "finite"),
    ("saturation --inputs normal(std=-1.0)", "std"),
    ("saturation --inputs bogus", "unknown input source"),
    ("saturation --activation nope", "unknown activation"),
    # propagate, isometry, theory
    ("propagate --depth 0", "depth"),
    ("propagate --depth 100000000", "at most"),
    ("propagate --width 0", "width"),
    ("propagate --width 100000000000", "at most"),
    ("propagate --width 100000 --depth 100", "memory"),
    ("propagate --batch 0", "batch"),
    ("propagate --plot bad.ext", ".png"),
    ("propagate --histograms nosuffix", "no extension"),
    ("propagate --init he_normal --init HeNormal()", "given twice"),
    ("propagate --init lsuv", "training data"),
    ("isometry --depth 0", "depth"),
    ("isometry --samples 0", "samples"),
    ("isometry --width 100000000000", "at most"),
    ("isometry --plot x.doc", ".png"),
    ("theory --sigma-w2 nan", "finite"),
    ("theory --sigma-w2 -1", ">= 0"),
    ("theory --sigma-w2 inf", "finite"),
    ("theory --sigma-b2 -1", ">= 0"),
    ("theory --sigma-b2 nan", "finite"),
    ("theory --fan-in 0", "--fan-in"),
    ("theory --activation nope", "unknown activation"),
    ("theory --plot x.bmp", ".png"),
    ("theory --init lsuv", "training data"),
    ("theory --init nope", "unknown initializer"),
    ("isometry --init lsuv", "training data"),
    ("propagate --inputs uniform(low=2,high=1)", "low"),
    ("saturation --inputs mnist --input-dim 100", "784 features"),
    ("saturation --low 1e400", "finite"),
    ("train --memory-budget 1e400 --seeds 0-1", "finite"),
    ("train --init-rule */kernel=RandomNormal(stddev=1e400)", "finite"),
    ("train --layer-init 99999999999999999999=zeros", "out of range"),
    ("train --seeds 99999999999999999999", "2**32"),
    ("plot histograms {store.sqlite} --histogram nope -o h.png", "unknown histogram kind"),
    ("plot curves {store.sqlite} -o {store.sqlite}", ".png"),
    ("reproduce --out {store.sqlite}", "is a file"),
    ("sweep {store.sqlite}", "TOML"),
    # list
    ("list nothing", "unknown list"),
    ("list initializers --compare --fan-in 0", "--fan-in"),
    ("list initializers --compare --fan-out 100000000000", "at most"),
    ("list activations --compare", "--compare applies"),
    # stores: runs, export, report, plot
    ("runs missing.sqlite", "not found"),
    ("runs {empty.sqlite}", "empty file"),
    ("runs {foreign.sqlite}", "not an initlab results store"),
    ("runs {garbage.sqlite}", "not a SQLite database"),
    ("runs {binary.bin}", "not a SQLite database"),
    ("runs {a_folder}", "folder"),
    ("runs {newer.sqlite}", "upgrade initlab"),
    ("runs {truncated.sqlite}", "store"),
    ("runs --status nope {store.sqlite}", "unknown run status"),
    ("export {empty.sqlite}", "empty file"),
    ("export {foreign.sqlite}", "not an initlab results store"),
    ("export {garbage.sqlite}", "not a SQLite database"),
    ("export missing.sqlite", "not found"),
    ("export --format xml {store.sqlite}", "unknown export format"),
    ("export --format tensorbord {store.sqlite}", "tensorboard"),
    ("export --format tensorboard --out {text.txt} {store.sqlite}", "is a file"),
    ("export --format mlflow --out {text.txt} {store.sqlite}", "is a file"),
    ("export --out {text.txt} {store.sqlite}", "is a file"),
    ("export --format json --out {a_folder} {store.sqlite}", "is a folder"),
    ("report {empty.sqlite}", "empty file"),
    ("report {foreign.sqlite}", "not an initlab results store"),
    ("report {garbage.sqlite}", "not a SQLite database"),
    ("report missing.sqlite", "not found"),
    ("report --out {text.txt} {store.sqlite}", "is a file"),
    ("report --notes {binary.bin} {store.sqlite}", "binary"),
    ("report --notes missing.txt {store.sqlite}", "not found"),
    ("report --theory {theory_list.json} {store.sqlite}", "must be an object"),
    ("report --theory {theory_bad.json} {store.sqlite}", "not valid JSON"),
    ("report --theory {theory_strings.json} {store.sqlite}", "finite numbers"),
    ("plot curves {empty.sqlite}", "empty file"),
    ("plot curves {foreign.sqlite}", "not an initlab results store"),
    ("plot nope {store.sqlite}", "unknown plot"),
    ("plot curves {store.sqlite} -o x.txt", ".png"),
    ("plot curves {garbage.sqlite}", "not a SQLite database"),
    # sweeps
    ("sweep missing.toml", "cannot read"),
    ("sweep {binary.toml}", "not a text file"),
    ("sweep {syntax.toml}", "TOML syntax"),
    ("sweep {unknown_key.toml}", "unknown config key"),
    ("sweep {huge_seeds.toml}", "2**32"),
    ("sweep {backwards_seeds.toml}", "backwards"),
    ("sweep {bad_hidden.toml}", "positive"),
    ("sweep {string_epochs.toml}", "epochs"),
    ("sweep {inf_rate.toml}", "finite"),
    ("sweep {twice.toml}", "one place"),
    ("sweep {zip_lengths.toml}", "equal lengths"),
    ("sweep {empty_grid.toml}", "non-empty"),
    ("sweep {top_level.toml}", "top-level"),
    ("sweep {huge_batch.toml}", "at most"),
    ("sweep --store {foreign.sqlite} {inf_rate.toml}", "finite"),
    ("sweep --memory-budget nan {top_level.toml}", "finite"),
    ("sweep --chunk-size 0 {top_level.toml}", "--chunk-size"),
    ("sweep --executor slurm {top_level.toml}", "top-level"),
    # width scaling
    ("mup coord-check --parametrization mfp", "unknown parametrization"),
    ("mup coord-check --parametrization mf", "one hidden layer"),
    ("mup coord-check --widths 128,64", "must increase"),
    ("mup coord-check --widths 64", "at least two"),
    ("mup coord-check --widths 64-100", "powers of two"),
    ("mup coord-check --widths 64-256 --base-width 1024", "larger than every width"),
    ("mup coord-check --widths 64-256 --optimizer rmsprop", "sgd or adam"),
    ("mup coord-check --widths 64-256 --steps 0", "steps"),
    ("mup coord-check --widths 64-256 --plot c.gif", ".png"),
    ("mup transfer --parametrization mupp", "unknown parametrization"),
    ("mup transfer --widths 256,128", "must increase"),
    ("mup transfer --widths 128-512 --base-width 4096", "larger than every width"),
    ("mup transfer --lrs -4:-14", "--lrs"),
    ("mup transfer --lrs -10", "at least two"),
    ("mup transfer --lrs -10,-12", "must increase"),
    ("mup transfer --lrs -100:-90", "[-40, 10]"),
    ("mup transfer --lrs -14:-4:0.01", "at most 64"),
    ("mup transfer --lrs a:b", "--lrs"),
    ("mup transfer --lrs nan,1", "finite"),
    ("mup transfer --optimizer rmsprop", "sgd or adam"),
    ("mup transfer --optimizer 'adam(learning_rate=0.1)'", "grid sets"),
    ("mup transfer --parametrization mf", "one hidden layer"),
    ("mup transfer --examples 0", "training examples"),
    ("mup transfer --examples 100000", "the data set has"),
    ("mup transfer --examples 512 --eval-examples 1024", "measured on training examples"),
    ("mup transfer --seeds 3-1", "backwards"),
    ("mup transfer --plot t.gif", ".png"),
    ("mup transfer --memory-budget -1", "memory"),
    # width parametrizations in training
    ("train --parametrization mupp --base-width 32", "unknown parametrization"),
    ("train --parametrization mup", "needs a base width"),
    ("train --base-width 32", "sp has none"),
    ("train --parametrization mup --base-width 32 --hidden 64,32", "one width"),
    ("train --parametrization mup --base-width 32 --hidden ''", "one width"),
    ("train --parametrization ntk --base-width 0", "base width"),
    ("train --parametrization mup --base-width 32 --optimizer rmsprop", "sgd or adam"),
    ("train --parametrization mup --base-width 32 --init lsuv", "sets its scale from data"),
    ("train --parametrization mf --base-width 32 --hidden 64,64", "one hidden layer"),
    # inspect and check
    ("inspect nope", "package.module:callable"),
    ("inspect nope.module:model --input-shape 3", "cannot import"),
    ("inspect missing.py:model --input-shape 3", "no such file"),
    ("inspect {crashes_on_import.py}:model --input-shape 3", "bad module"),
    ("inspect {models.py}:nothing --input-shape 3", "has no attribute"),
    ("inspect {models.py}:broken --input-shape 3", "no model today"),
    ("inspect {models.py}:NOT_A_MODEL --input-shape 3", "not a model"),
    ("inspect {models.py}:mlp", "give the inputs"),
    ("inspect {models.py}:mlp --input-shape 5", "the model failed"),
    ("inspect {models.py}:mlp --input-shape a,b", "--input-shape"),
    ("inspect {models.py}:mlp --input-shape 0", "positive"),
    ("inspect {models.py}:mlp --input-shape 4 --input-law cauchy", "unknown input law"),
    ("inspect {models.py}:mlp --input-shape 4 --input-law tokens", "vocabulary"),
    ("inspect {models.py}:mlp --input-shape 4 --batch 0", "batch size"),
    ("inspect {models.py}:mlp --input-shape 4 --steps -1", "steps"),
    ("inspect {models.py}:flax_dense --input-shape 4 --steps 2", "PyTorch and Keras models"),
    ("inspect {models.py}:mlp --input-shape 4 --lr 0", "--lr"),
    ("inspect {models.py}:keras_subclassed --input-shape 4", "subclassed keras.Model"),
    ("inspect {models.py}:mlp --input-shape 4 --html x.gif", ".html"),
    ("inspect {models.py}:mlp --input-shape 4 --html {text.txt}/x.html", "is a file"),
    ("inspect {models.py}:mlp --data nope", "unknown dataset"),
    ("check {models.py}:mlp --input-shape 4 --max-dead 2", "fraction"),
    ("check {models.py}:mlp --input-shape 4 --signal-ratio 0.5", "factor"),
    ("check {models.py}:mlp --input-shape 4 --loss-excess nan", "finite"),
    # reproduce
    ("reproduce nope", "unknown reproduction"),
    ("reproduce he2016", "did you mean 'he2015'"),
    ("reproduce he2015 --epochs 3", "for reproduce seed"),
    ("reproduce all --seeds 0-1", "for reproduce seed"),
    ("reproduce seed --full", "for a paper's reproduction"),
    ("reproduce he2015 --out {text.txt}", "is a file"),
    ("reproduce --seeds 0-4294967295", "more than"),
    ("reproduce --epochs 0", "--epochs"),
    ("reproduce --epochs 100000000000", "at most"),
    ("reproduce --seeds 5-1", "backwards"),
    ("reproduce --out {text.txt}", "is a file"),
    # networks beyond the MLP (issue 13)
    ("train --model nope()", "unknown model"),
    ("train --model \"cnn(kernel_size=30, padding='valid')\"", "larger than"),
    ("train --model \"cnn(channels=[8, 8, 8, 8, 8], pool_size=2)\"", "pooling is larger"),
    ("train --model \"cnn(padding='full')\"", "padding"),
    ("train --model \"cnn(pooling='median')\"", "pooling"),
    ("train --model \"cnn(depth=10, channels=[8, 16])\"", "one width"),
    ("train --model \"cnn(depth=0)\"", "depth"),
    ("train --model \"transformer(d_model=30, heads=4)\"", "divisible"),
    ("train --model transformer()", "token ids"),
    ("train --model cnn() --dataset modular_addition", "images"),
    ("train --model \"transformer(scheme='tfixup', norm='pre')\" --dataset modular_addition", "norm='none'"),
    ("train --model \"transformer(scheme='fix')\"", "scheme"),
    ("train --model \"resnet(scheme='fixup')\"", "norm='none'"),
    ("train --model \"resmlp(scheme='depth_mu')\"", "depth_mup"),
    ("train --model \"resnet(norm='group')\"", "norm"),
    ("train --model resnet() --hidden 32", "not both"),
    ("train --model resnet() --parametrization mup --base-width 16", "sp"),
    ("train --model resnet() --layer-init 2=zeros", "init_rules"),
    ("train --model resnet() --init-rule conv/kernel=nope", "unknown initializer"),
    ("train --dataset modular_addition --data-file {good.npz}", "no data file"),
    ("list initializers --compare --shape 3x3x0", "--shape"),
    ("list initializers --compare --shape 3xax3", "--shape"),
    ("list models --shape 3x3", "--compare"),
    ("propagate --model nope()", "unknown model"),
    ("propagate --model cnn() --depth 5", "--depth"),
    ("propagate --model cnn() --input-shape 8x8x3", "--inputs normal"),
    ("propagate --model cnn() --inputs normal --input-shape 8xx3", "--input-shape"),
    ("propagate --model \"cnn(depth=3, channels=4)\" --inputs normal --input-shape 96x96x4 --jacobian", "at most"),
    ("propagate --model transformer() --dataset modular_addition --inputs normal", "token ids"),
    ("propagate --model \"resmlp(depth=2, width=8)\" --inputs normal --input-std -1", "input_std"),
    ("propagate --model \"resmlp(depth=2, width=8)\" --dataset nope", "unknown dataset"),
]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }


def test_there_are_at_least_a_hundred_cases():
    assert len(CASES) >= 100
    assert len({line for line, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[line[:60] for line, _ in CASES])
def test_a_bad_input_is_one_line_exit_2_and_nothing_written(line, expected, files, tmp_path, monkeypatch):
    import shlex

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INITLAB_OFFLINE", "1")
    for path in files.iterdir():
        line = line.replace("{" + path.name + "}", str(path))
    args = shlex.split(line) if "\n" not in line else line.split(" ", 2)
    before_files, before_here = _snapshot(files), _snapshot(tmp_path)
    result = CliRunner().invoke(app, args)
    stderr = result.stderr
    assert result.exit_code == 2, (result.exit_code, stderr[-500:], result.stdout[-500:], result.exception)
    assert "Traceback" not in stderr + result.stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert len(lines[0]) <= MAX_ERROR_LENGTH + len("error: "), lines[0][:200]
    assert lines[0].startswith("error: ")
    assert expected.lower() in lines[0].lower(), lines[0]
    assert _snapshot(files) == before_files
    assert _snapshot(tmp_path) == before_here
