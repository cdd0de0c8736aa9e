"""Outputs are written whole or not at all (initlab.files), and standard JSON."""

from __future__ import annotations

import errno
import json
import math

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.files import (
    finite_json,
    json_text,
    output_file,
    output_folder,
    read_text,
    replacing,
    staged_folder,
    write_text,
)


def _leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if ".part" in path.name)


def test_a_write_replaces_the_file_whole(tmp_path):
    path = write_text(tmp_path / "out.txt", "first")
    write_text(path, "second")
    assert path.read_text() == "second"
    assert _leftovers(tmp_path) == []


def test_a_written_file_has_the_mode_a_new_file_gets_or_keeps_its_own(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    new = write_text(tmp_path / "report.html", "x")  # not mkstemp's owner-only 0600
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~mask
    kept = tmp_path / "shared.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    write_text(kept, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_a_write_that_fails_half_way_leaves_the_previous_file(tmp_path):
    path = write_text(tmp_path / "out.txt", "previous")
    with pytest.raises(RuntimeError):
        with replacing(path) as temporary:
            temporary.write_text("half of the new")
            raise RuntimeError("killed")
    assert path.read_text() == "previous"
    assert _leftovers(tmp_path) == []


def test_a_full_disk_is_one_line_and_leaves_the_previous_file(tmp_path):
    path = write_text(tmp_path / "out.txt", "previous")
    with pytest.raises(InitlabError, match="No space left on device") as raised:
        with replacing(path) as temporary:
            temporary.write_text("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)
    assert path.read_text() == "previous"
    assert _leftovers(tmp_path) == []


def test_a_figure_that_fails_to_save_leaves_the_previous_figure(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save

    path = tmp_path / "figure.png"
    save(plt.figure(), path)
    before = path.read_bytes()

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", disk_full)
    with pytest.raises(InitlabError, match="No space left"):
        save(plt.figure(), path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_staged_files_replace_their_old_versions_only_together(tmp_path):
    folder = tmp_path / "export"
    with staged_folder(folder) as stage:
        stage.path("a.csv").write_text("a1")
        stage.path("b.csv").write_text("b1")
    with pytest.raises(RuntimeError):
        with staged_folder(folder) as stage:
            stage.path("a.csv").write_text("a2")
            raise RuntimeError("failed before b.csv")
    assert (folder / "a.csv").read_text() == "a1" and (folder / "b.csv").read_text() == "b1"
    assert _leftovers(folder) == []


def test_an_export_that_fails_keeps_the_previous_export(tmp_path, monkeypatch):
    from initlab.experiments import store as store_module
    from initlab.experiments.store import Store
    from initlab.training.config import TrainConfig

    with Store(tmp_path / "runs.sqlite") as store:
        (run_id,) = store.add_runs([TrainConfig(epochs=1)])
        store.record_result(run_id, {"loss": [0.5], "val_accuracy": [0.25]})
        store.export(tmp_path / "export", "csv")
        before = {p.name: p.read_bytes() for p in (tmp_path / "export").iterdir()}

        def full_disk(rows):
            raise OSError(errno.ENOSPC, "No space left on device")

        class Writer:
            def __init__(self, file):
                self.writerows = full_disk

        monkeypatch.setattr(store_module.csv, "writer", Writer)
        with pytest.raises(InitlabError, match="No space left"):
            store.export(tmp_path / "export", "csv")
    assert {p.name: p.read_bytes() for p in (tmp_path / "export").iterdir()} == before


@pytest.mark.parametrize(
    ("make", "check", "message"),
    [
        (lambda p: p.mkdir(), lambda p: output_file(p), "is a folder"),
        (lambda p: p.write_text(""), lambda p: output_folder(p), "is a file"),
        (lambda p: p.write_text(""), lambda p: output_file(p / "x.png"), "is a file, not a folder"),
        (lambda p: None, lambda p: output_file(p, extensions=("png",)), "no extension"),
        (lambda p: None, lambda p: output_file(p.with_suffix(".gif"), extensions=("png", "svg")), "use .png, .svg"),
    ],
)
def test_output_paths_are_checked_before_any_work(tmp_path, make, check, message):
    path = tmp_path / "out"
    make(path)
    with pytest.raises(InitlabError, match=message):
        check(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x00\x01\x02binary", "binary"), (b"\xff\xfe not utf-8", "not UTF-8"), (None, "not found")],
)
def test_a_users_text_file_is_read_or_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "notes.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InitlabError, match=message):
        read_text(path, what="notes file")


def test_json_is_standard_non_finite_numbers_are_null():
    payload = {"loss": [0.5, math.nan, math.inf, -math.inf], "array": np.array([1.0, np.nan]), "scalar": np.float32(2)}
    text = json_text(payload)
    assert json.loads(text) == {"loss": [0.5, None, None, None], "array": [1.0, None], "scalar": 2.0}
    for token in ("NaN", "Infinity"):
        assert token not in text
    assert finite_json((1, 2.5)) == [1, 2.5]


def test_cli_json_of_a_diverged_run_is_standard_json(tmp_path):
    from synthetic_data import write_mnist_like
    from typer.testing import CliRunner

    from initlab.cli import app

    data = write_mnist_like(tmp_path / "data.npz", train=64, test=32)
    result = CliRunner().invoke(app, ["train", "--data-file", str(data), "--epochs", "2", "--batch-size", "32",
                                      "--optimizer", "sgd(learning_rate=1e30)", "--loss", "categorical_crossentropy",
                                      "--activation", "relu", "--json"])
    assert result.exit_code == 1, result.stderr  # a diverged run: exit status 1, its numbers still printed
    document = json.loads(result.stdout, parse_constant=lambda token: pytest.fail(f"non-standard JSON {token}"))
    assert document["diverged_epoch"] == 1
    assert document["history"]["loss"][0] is None
