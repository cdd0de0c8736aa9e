"""Running many configs into a store: chunks, skipping finished runs, divergence, failures,
surviving a ``kill -9`` of the driver, the ``runs`` and ``export`` commands, and Ray.

Training runs on a small synthetic ``.npz`` in Keras's mnist layout, so that configs name their
data by file, as a sweep's do.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from same_training import assert_same_history
from typer.testing import CliRunner

import initlab
from initlab.cli import app
from initlab.errors import InitlabError
from initlab.experiments import executors
from initlab.experiments.executors import plan_chunks, run_configs
from initlab.experiments.store import Store
from initlab.training.config import TrainConfig
from initlab.training.ensembles import train_ensemble
from initlab.training.loop import HISTORY_KEYS

EPOCHS = 3
INITIALIZERS = ("RandomNormal()", "glorot_uniform", "he_normal")


def write_mnist_like(path: Path, train: int = 256, test: int = 64) -> Path:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, size=train).astype(np.uint8),
        x_test=rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, size=test).astype(np.uint8),
    )
    return path


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_mnist_like(tmp_path_factory.mktemp("data") / "tiny_mnist.npz")


@pytest.fixture(scope="module")
def base(data_file) -> TrainConfig:
    return TrainConfig(
        data_file=str(data_file), hidden_units=(8,), batch_size=64, epochs=EPOCHS, activation="relu",
        loss="categorical_crossentropy", optimizer="sgd(learning_rate=0.1)",
    )  # fmt: skip


@pytest.fixture(scope="module")
def configs(base) -> list[TrainConfig]:
    return [dataclasses.replace(base, kernel_initializer=spec, seed=seed) for spec in INITIALIZERS for seed in (0, 1)]


def labels_of(configs: list[TrainConfig]) -> list[str]:
    return [f"{c.kernel_initializer}/{c.seed}" for c in configs]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, configs):
    """A store in which ``configs`` were run once (one chunk), with what ``run_configs`` reported."""
    path = tmp_path_factory.mktemp("finished") / "runs.sqlite"
    calls = []
    summary = run_configs(configs, path, labels=labels_of(configs), progress=lambda *call: calls.append(call))
    return path, summary, calls


@pytest.fixture
def finished_copy(finished, tmp_path) -> Path:
    """A copy of the finished store that a test may change."""
    copy = tmp_path / "copy.sqlite"
    shutil.copy(finished[0], copy)
    return copy


def snapshot(path: Path) -> tuple[list[dict], dict[str, list]]:
    with Store(path) as store:
        return store.runs(), store.metrics()


def histories_by_config(path: Path) -> dict[str, dict[str, list[float]]]:
    with Store(path) as store:
        return {run["config_hash"]: store.history(run["run_id"]) for run in store.runs()}


def refuse_to_train(configs):
    raise AssertionError(f"retrained {len(configs)} runs that were finished")


# run_configs


def test_every_run_is_done_with_its_metrics(finished, configs):
    path, summary, _ = finished
    assert (summary.total, summary.skipped, summary.done, summary.diverged, summary.failed) == (6, 0, 6, 0, 0)
    assert summary.store == str(path)

    expected = train_ensemble(configs)
    with Store(path) as store:
        runs = store.runs()
        assert [run["config"] for run in runs] == [c.to_dict() for c in configs]
        assert [run["label"] for run in runs] == labels_of(configs)
        for run, result in zip(runs, expected):
            assert run["status"] == "done" and run["error"] is None and run["diverged_epoch"] is None
            assert run["started_at"] <= run["finished_at"]
            assert run["timings"]["ensemble_size"] == len(configs)
            assert run["versions"]["jax"] and run["versions"]["numpy"]
            assert run["versions"]["matmul"] == result.matmul  # the code path, recorded with the run
            history = store.history(run["run_id"])
            assert set(history) == set(HISTORY_KEYS)
            assert_same_history(history, result.history)
        metrics = store.metrics()
    assert len(metrics["run_id"]) == len(configs) * len(HISTORY_KEYS) * EPOCHS
    assert set(metrics["layer"]) == {""}
    assert sorted(set(metrics["epoch"])) == list(range(1, EPOCHS + 1))


def test_progress_reports_finished_runs_out_of_all(finished):
    _, _, calls = finished
    assert calls[0] == (0, 6)
    assert calls[-1] == (6, 6)
    assert all(total == 6 for _, total in calls)
    done = [count for count, _ in calls]
    assert done == sorted(done)


def test_rerunning_skips_every_finished_run(finished_copy, configs, monkeypatch):
    before = snapshot(finished_copy)
    monkeypatch.setattr(executors, "train_chunk", refuse_to_train)
    calls = []

    summary = run_configs(configs, finished_copy, progress=lambda *call: calls.append(call))

    assert (summary.total, summary.skipped, summary.done, summary.diverged, summary.failed) == (6, 6, 0, 0, 0)
    assert calls == [(6, 6)]
    assert snapshot(finished_copy) == before


def test_new_configs_are_the_only_ones_trained(finished_copy, configs, base, monkeypatch):
    new = [dataclasses.replace(base, kernel_initializer="lecun_normal", seed=s) for s in (0, 1)]
    old_runs, old_metrics = snapshot(finished_copy)
    trained = []
    real_train_chunk = executors.train_chunk

    def spy(chunk):
        trained.extend(chunk)
        return real_train_chunk(chunk)

    monkeypatch.setattr(executors, "train_chunk", spy)

    summary = run_configs(configs + new, finished_copy)

    assert trained == new
    assert (summary.total, summary.skipped, summary.done) == (8, 6, 2)
    runs, metrics = snapshot(finished_copy)
    assert runs[:6] == old_runs  # same ids, values and finishing times
    assert [run["status"] for run in runs[6:]] == ["done", "done"]
    assert [run["config"] for run in runs[6:]] == [c.to_dict() for c in new]
    old_ids = {run["run_id"] for run in old_runs}
    old_rows = [row for row in zip(*metrics.values()) if row[0] in old_ids]
    assert old_rows == list(zip(*old_metrics.values()))


def test_a_diverging_run_is_recorded_as_diverged_beside_done_runs(tmp_path, base):
    linear = dataclasses.replace(
        base, activation="linear", output_activation="linear", loss="mean_squared_error", epochs=4
    )
    calm = "sgd(learning_rate=0.001)"
    configs = [
        dataclasses.replace(linear, kernel_initializer="glorot_uniform", optimizer=calm),
        dataclasses.replace(linear, kernel_initializer="RandomNormal(stddev=0.05)", optimizer="sgd(learning_rate=0.1)"),
        dataclasses.replace(linear, kernel_initializer="he_normal", optimizer=calm, seed=1),
    ]
    path = tmp_path / "runs.sqlite"

    summary = run_configs(configs, path)

    assert (summary.done, summary.diverged, summary.failed) == (2, 1, 0)
    with Store(path) as store:
        runs = store.runs()
        assert [run["status"] for run in runs] == ["done", "diverged", "done"]
        wild = runs[1]
        epoch = wild["diverged_epoch"]
        assert isinstance(epoch, int) and 1 <= epoch < 4
        history = store.history(wild["run_id"])
        assert all(len(history[k]) == epoch for k in HISTORY_KEYS)
        assert not math.isfinite(history["loss"][-1])
        assert all(math.isfinite(v) for v in history["loss"][:-1])
        for run in (runs[0], runs[2]):
            assert run["diverged_epoch"] is None
            history = store.history(run["run_id"])
            assert all(len(values) == 4 and all(map(math.isfinite, values)) for values in history.values())
    # A diverged run is finished: a re-run does not redo it.
    assert run_configs(configs, path).skipped == 3


def test_a_smaller_chunk_size_gives_the_same_results(finished, configs, tmp_path):
    path = tmp_path / "chunked.sqlite"
    calls = []

    summary = run_configs(configs, path, max_chunk=4, progress=lambda *call: calls.append(call))

    assert summary.done == 6
    assert calls == [(0, 6), (4, 6), (6, 6)]
    with Store(path) as store:
        assert [run["timings"]["ensemble_size"] for run in store.runs()] == [4, 4, 4, 4, 2, 2]
    chunked, whole = histories_by_config(path), histories_by_config(finished[0])
    assert set(chunked) == set(whole)
    for config_hash, history in whole.items():
        assert_same_history(chunked[config_hash], history)


def test_a_failing_chunk_is_recorded_and_redone_next_time(tmp_path, configs, monkeypatch):
    path = tmp_path / "runs.sqlite"

    def explode(chunk):
        raise RuntimeError("out of luck\nsecond line of the message")

    monkeypatch.setattr(executors, "train_chunk", explode)
    summary = run_configs(configs[:2], path)
    assert (summary.done, summary.failed) == (0, 2)
    with Store(path) as store:
        assert [(run["status"], run["error"]) for run in store.runs()] == [("failed", "RuntimeError: out of luck")] * 2
        assert store.metrics()["run_id"] == []

    monkeypatch.undo()
    summary = run_configs(configs[:2], path)
    assert (summary.skipped, summary.done, summary.failed) == (0, 2, 0)
    with Store(path) as store:
        assert [(run["status"], run["error"]) for run in store.runs()] == [("done", None)] * 2


def test_plan_chunks_groups_compatible_configs_and_caps_their_size(base):
    other = dataclasses.replace(base, hidden_units=(4,))
    configs = [dataclasses.replace(base if i % 3 else other, seed=i) for i in range(7)]  # other at 0, 3, 6
    assert plan_chunks(configs, None, None) == [[0, 3, 6], [1, 2, 4, 5]]
    assert plan_chunks(configs, None, 2) == [[0, 3], [6], [1, 2], [4, 5]]
    assert plan_chunks(configs, None, 1) == [[i] for i in (0, 3, 6, 1, 2, 4, 5)]


def test_plan_chunks_follows_the_memory_budget(base, data_file):
    from initlab.data import load
    from initlab.training.ensembles import model_bytes

    data = load("mnist", data_file)
    data_bytes = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_test, data.y_test))
    per_model = model_bytes(base, data.input_dim, data.classes, len(data.x_test))
    configs = [dataclasses.replace(base, seed=i) for i in range(5)]
    budget = data_bytes + 2 * per_model
    assert plan_chunks(configs, budget, None) == [[0, 1], [2, 3], [4]]
    assert plan_chunks(configs, budget, 10) == [[0, 1], [2, 3], [4]]
    with pytest.raises(InitlabError, match="too small"):
        plan_chunks(configs, data_bytes, None)


@pytest.mark.parametrize(
    "options, fragment",
    [(dict(executor="dask"), "unknown executor 'dask'"), (dict(max_chunk=0), "chunk size must be a positive integer")],
)
def test_bad_options_are_user_errors_before_the_store_is_touched(options, fragment, tmp_path, configs):
    path = tmp_path / "runs.sqlite"
    with pytest.raises(InitlabError, match=fragment):
        run_configs(configs, path, **options)
    assert not path.exists()


# A driver killed with SIGKILL, then resumed


KILL_EPOCHS = 5


def read_store(path: Path) -> tuple[dict[int, dict], dict[int, list[tuple]]]:
    """Runs by id and their metric rows, read without writing (as a plot would, mid-sweep)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        runs = {
            row[0]: dict(zip(("config_hash", "status", "finished_at"), row[1:]))
            for row in connection.execute("SELECT run_id, config_hash, status, finished_at FROM runs")
        }
        metrics: dict[int, list[tuple]] = {run_id: [] for run_id in runs}
        for row in connection.execute("SELECT run_id, epoch, layer, statistic, value FROM metrics ORDER BY 1, 2, 4"):
            metrics[row[0]].append(row[1:])
    finally:
        connection.close()
    return runs, metrics


def assert_complete(metrics: list[tuple]) -> None:
    assert len(metrics) == len(HISTORY_KEYS) * KILL_EPOCHS
    assert {(epoch, statistic) for epoch, _, statistic, _ in metrics} == {
        (epoch, statistic) for epoch in range(1, KILL_EPOCHS + 1) for statistic in HISTORY_KEYS
    }
    assert all(value is not None and math.isfinite(value) for *_, value in metrics)


def test_a_sweep_killed_mid_way_keeps_its_finished_runs_and_resumes(tmp_path, data_file):
    sweep = tmp_path / "kill.toml"
    sweep.write_text(
        f"""
[base]
data_file = {json.dumps(str(data_file))}
hidden_units = [8]
batch_size = 64
epochs = {KILL_EPOCHS}
[grid]
kernel_initializer = {json.dumps(list(INITIALIZERS))}
seed = "0-3"
"""
    )
    store = tmp_path / "kill.sqlite"
    command = [sys.executable, "-m", "initlab.cli", "sweep", str(sweep), "--store", str(store), "--chunk-size", "2"]
    total = len(INITIALIZERS) * 4

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 120
    done_count = 0
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                runs, _ = read_store(store)
            except sqlite3.Error:  # not created yet, or no schema yet
                runs = {}
            done_count = sum(run["status"] == "done" for run in runs.values())
            if 0 < done_count < total:
                break
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, f"the sweep ended before it could be killed\n{stderr.decode()}"
    assert 0 < done_count < total

    runs, metrics = read_store(store)
    assert len(runs) == total
    assert len({run["config_hash"] for run in runs.values()}) == total
    assert {run["status"] for run in runs.values()} <= {"pending", "running", "done"}
    finished_before = {run_id: run for run_id, run in runs.items() if run["status"] == "done"}
    assert 0 < len(finished_before) < total
    for run_id, run in runs.items():
        if run_id in finished_before:
            assert run["finished_at"] is not None
            assert_complete(metrics[run_id])
        else:
            assert metrics[run_id] == []  # an unfinished run has no rows at all

    resumed = subprocess.run(command + ["--json"], capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["total"] == total
    assert summary["skipped"] == len(finished_before)
    assert summary["done"] == total - len(finished_before)
    assert summary["failed"] == summary["diverged"] == 0

    runs_after, metrics_after = read_store(store)
    assert sorted(runs_after) == sorted(runs)  # no new, no duplicated run
    for run_id, run in runs_after.items():
        assert run["config_hash"] == runs[run_id]["config_hash"]
        assert run["status"] == "done"
        assert_complete(metrics_after[run_id])
    for run_id, run in finished_before.items():
        assert runs_after[run_id]["finished_at"] == run["finished_at"]  # not retrained
        assert metrics_after[run_id] == metrics[run_id]


# The runs and export commands


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_error_line(result, fragment: str) -> None:
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert fragment in lines[0]


def test_runs_json_lists_every_run_with_its_final_accuracy(finished):
    path = finished[0]
    result = invoke("runs", path, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    with Store(path) as store:
        expected = store.runs()
        finals = [store.history(run["run_id"])["val_accuracy"][-1] for run in expected]
    assert [row["run_id"] for row in rows] == [run["run_id"] for run in expected]
    assert [row["config"] for row in rows] == [run["config"] for run in expected]
    assert [row["status"] for row in rows] == ["done"] * 6
    assert [row["final_val_accuracy"] for row in rows] == pytest.approx(finals)


def test_runs_filters_by_status(finished):
    assert json.loads(invoke("runs", finished[0], "--status", "done", "--json").stdout) != []
    assert json.loads(invoke("runs", finished[0], "--status", "failed", "--json").stdout) == []
    assert_one_error_line(invoke("runs", finished[0], "--status", "finished"), "unknown run status 'finished'")


def test_runs_prints_a_table(finished):
    result = invoke("runs", finished[0])
    assert result.exit_code == 0, result.output
    assert "6 runs" in result.stdout and "glorot_uniform" in result.stdout and "done" in result.stdout


def test_export_csv_writes_runs_and_tidy_metrics(finished, tmp_path):
    out = tmp_path / "exported"
    result = invoke("export", finished[0], "--format", "csv", "--out", out)
    assert result.exit_code == 0, result.output
    with open(out / "runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    with open(out / "metrics.csv", newline="") as handle:
        metrics = list(csv.DictReader(handle))
    canonical = [initlab.initializers.initializers.canonical(spec) for spec in INITIALIZERS]
    assert [row["kernel_initializer"] for row in runs] == [spec for spec in canonical for _ in (0, 1)]
    assert {row["status"] for row in runs} == {"done"}
    assert list(metrics[0]) == ["run_id", "epoch", "layer", "statistic", "value"]
    assert len(metrics) == 6 * len(HISTORY_KEYS) * EPOCHS
    with Store(finished[0]) as store:
        stored = store.metrics()
    assert [float(row["value"]) for row in metrics] == pytest.approx(stored["value"])


def test_export_json_writes_one_document(finished, tmp_path):
    out = tmp_path / "exported.json"
    result = invoke("export", finished[0], "--format", "json", "--out", out)
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    document = json.loads(out.read_text())
    assert len(document["runs"]) == 6
    assert len(document["metrics"]["value"]) == 6 * len(HISTORY_KEYS) * EPOCHS
    assert set(document["metrics"]) == {"run_id", "epoch", "layer", "statistic", "value"}


def test_export_defaults_beside_the_store(finished_copy):
    result = invoke("export", finished_copy)
    assert result.exit_code == 0, result.output
    assert (finished_copy.parent / "copy-export" / "metrics.csv").is_file()


def test_export_unknown_format_is_a_one_line_error(finished, tmp_path):
    result = invoke("export", finished[0], "--format", "xml", "--out", tmp_path / "out")
    assert_one_error_line(result, "unknown export format 'xml'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [("runs",), ("runs", "--json"), ("export",), ("export", "--format", "json")])
def test_a_missing_store_is_a_one_line_error(command, tmp_path):
    missing = tmp_path / "nowhere.sqlite"
    result = invoke(command[0], missing, *command[1:])
    assert_one_error_line(result, "store not found")
    assert not missing.exists()


# Ray


@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
def test_ray_executor_stores_what_the_local_executor_stores(finished, configs, tmp_path):
    ray = pytest.importorskip("ray")
    path = tmp_path / "ray.sqlite"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_configs(configs, path, executor="ray", max_chunk=3)
    finally:
        ray.shutdown()
    assert (summary.done, summary.failed) == (6, 0)
    on_ray, local = histories_by_config(path), histories_by_config(finished[0])
    assert set(on_ray) == set(local)
    for config_hash, history in local.items():
        assert_same_history(on_ray[config_hash], history)


def test_an_infeasible_run_does_not_stop_the_feasible_ones(tmp_path, base):
    # A hidden layer of 2**24 units cannot fit this machine's memory: that group fails with
    # the reason, and every other run of the sweep is trained and stored.
    huge = dataclasses.replace(base, hidden_units=(2**24,))
    feasible = [dataclasses.replace(base, seed=seed) for seed in (0, 1)]
    path = tmp_path / "runs.sqlite"
    summary = run_configs([feasible[0], huge, feasible[1]], path)
    assert (summary.done, summary.failed) == (2, 1)
    with Store(path, read_only=True) as store:
        statuses = {tuple(run["config"]["hidden_units"]): run for run in store.runs()}
    assert statuses[(2**24,)]["status"] == "failed"
    assert "memory" in statuses[(2**24,)]["error"]
    assert statuses[(8,)]["status"] == "done"


def test_a_chunk_that_fails_is_retried_run_by_run(tmp_path, base, monkeypatch):
    # Runs chunked together share a program; if the chunk fails, each run is tried alone and
    # only the one that fails alone is recorded as failed.
    configs = [dataclasses.replace(base, seed=seed) for seed in range(3)]
    real = executors.train_chunk

    def train_chunk(chunk):
        if any(config.seed == 1 for config in chunk):
            raise RuntimeError("seed 1 cannot be trained")
        return real(chunk)

    monkeypatch.setattr(executors, "train_chunk", train_chunk)
    summary = run_configs(configs, tmp_path / "runs.sqlite")
    assert (summary.done, summary.failed) == (2, 1)
