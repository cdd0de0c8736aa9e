"""The results store: idempotent runs, atomic results, resumable sweeps, exports, and a real kill."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import initlab.experiments.store as store_module
from initlab.errors import InitlabError
from initlab.experiments.store import SCHEMA_VERSION, Store, library_versions
from initlab.training.config import TrainConfig

EPOCHS = 5
KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
LAYERS = ("dense", "dense_1", "dense_2")
STATISTICS = ("mean", "std", "saturation_fraction")


def fake_result(seed: int) -> tuple[dict[str, list[float]], list[tuple[int, str, str, float]]]:
    """A history and per-layer rows whose values say which seed, epoch and statistic they belong to."""
    history = {key: [seed + k / 10 + epoch / 1000 for epoch in range(1, EPOCHS + 1)] for k, key in enumerate(KEYS)}
    rows = [(epoch, layer, statistic, seed * 1000 + epoch + i / 10 + j / 100)
            for epoch in range(1, EPOCHS + 1)
            for i, layer in enumerate(LAYERS) for j, statistic in enumerate(STATISTICS)]  # fmt: skip
    return history, rows


def expected_metrics(seed: int) -> set[tuple]:
    history, rows = fake_result(seed)
    expected = {(epoch, "", key, value) for key, values in history.items()
                for epoch, value in enumerate(values, start=1)}  # fmt: skip
    return expected | set(rows)


def drive(path: str, runs: int = 20, pause: float = 0.01, die_inside_result: int | None = None) -> None:
    """A sweep driver as the CLI would run it: add every run, redo whatever is unfinished.

    With ``die_inside_result=n`` the process SIGKILLs itself while writing its n-th result,
    after the metric rows went in and before the status is set (the worst moment).
    """
    with Store(path) as store:
        ids = store.add_runs([TrainConfig(seed=seed, epochs=EPOCHS) for seed in range(runs)])
        store.reset_interrupted()
        for count, run_id in enumerate(store.todo(ids), start=1):
            store.mark_running([run_id])
            time.sleep(pause)
            if count == die_inside_result:
                store_module._now = lambda: os.kill(os.getpid(), signal.SIGKILL)
            history, rows = fake_result(store.run_config(run_id).seed)
            store.record_result(run_id, history, metrics_rows=rows, timings={"train_s": pause})
            print(run_id, flush=True)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "results.db") as opened:
        yield opened


def stored_rows(store: Store, run_id: int) -> set[tuple]:
    columns = store.metrics([run_id])
    return set(zip(columns["epoch"], columns["layer"], columns["statistic"], columns["value"]))


def test_create_then_reopen_keeps_runs_and_schema_version(tmp_path):
    path = tmp_path / "results.db"
    with Store(path) as store:
        ids = store.add_runs([TrainConfig(seed=1), TrainConfig(seed=2)], labels=["a", "b"])
    with Store(path) as store:
        assert [run["run_id"] for run in store.runs()] == ids
        assert [run["label"] for run in store.runs()] == ["a", "b"]
        assert store.run_config(ids[1]) == TrainConfig(seed=2)
    version = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION


def test_wal_mode_is_on(store):
    store.add_runs([TrainConfig()])
    connection = sqlite3.connect(store.path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_add_runs_is_idempotent_by_config_hash(store):
    first = store.add_runs([TrainConfig(seed=0), TrainConfig(seed=1)], labels=["zero", "one"])
    store.mark_running(first[:1])
    store.record_result(first[0], {"loss": [1.0]})
    again = store.add_runs([TrainConfig(seed=1), TrainConfig(seed=2), TrainConfig(seed=0), TrainConfig(seed=2)])
    assert again[0] == first[1] and again[2] == first[0] and again[1] == again[3] not in first
    assert len(store.runs()) == 3
    by_id = {run["run_id"]: run for run in store.runs()}
    assert by_id[first[0]]["status"] == "done" and by_id[first[0]]["label"] == "zero"
    assert store.history(first[0]) == {"loss": [1.0]}


def test_add_runs_rejects_mismatched_labels(store):
    with pytest.raises(InitlabError, match="2 labels for 1 configs"):
        store.add_runs([TrainConfig()], labels=["a", "b"])


def test_record_result_writes_nothing_when_the_transaction_fails(store, monkeypatch):
    (run_id,) = store.add_runs([TrainConfig()])
    store.mark_running([run_id])
    history, rows = fake_result(0)

    def boom() -> str:  # called for the status update, after every metric row went in
        raise RuntimeError("killed mid-transaction")

    monkeypatch.setattr(store_module, "_now", boom)
    with pytest.raises(RuntimeError):
        store.record_result(run_id, history, metrics_rows=rows)
    monkeypatch.undo()
    assert store.metrics([run_id])["value"] == []
    assert store.runs()[0]["status"] == "running"
    # A bad row halfway through also rolls back the rows before it.
    with pytest.raises(sqlite3.IntegrityError):
        store.record_result(run_id, history, metrics_rows=rows + [(1, None, "loss", 0.5)])
    assert store.metrics([run_id])["value"] == [] and store.todo() == [run_id]


def test_recording_twice_replaces_instead_of_duplicating(store):
    (run_id,) = store.add_runs([TrainConfig()])
    history, rows = fake_result(3)
    store.record_result(run_id, history, metrics_rows=rows)
    store.record_result(run_id, history, metrics_rows=rows)
    assert len(store.metrics()["value"]) == len(expected_metrics(3))
    assert stored_rows(store, run_id) == expected_metrics(3)


def test_todo_and_reset_interrupted(store):
    done, diverged, running, failed, pending = store.add_runs([TrainConfig(seed=s) for s in range(5)])
    store.mark_running([done, diverged, running, failed])
    store.record_result(done, {"loss": [0.5]})
    store.record_result(diverged, {"loss": [0.5, math.nan]}, status="diverged", diverged_epoch=2)
    store.record_failure(failed, "ValueError: boom")
    assert store.todo() == [running, failed, pending]
    assert store.todo([pending, done, running]) == [pending, running]
    # A driver killed mid-run may leave rows behind (a probe writing histograms, say).
    raw = sqlite3.connect(store.path)
    with raw:
        raw.execute("INSERT INTO metrics VALUES (?, 1, '', 'loss', 0.1)", (running,))
        raw.execute("INSERT INTO histograms VALUES (?, 1, 'dense', 'weights', '[0, 1]', '[3]')", (running,))
    raw.close()
    assert store.reset_interrupted() == [running]
    assert {run["run_id"]: run["status"] for run in store.runs()}[running] == "pending"
    assert store.metrics([running])["value"] == []
    assert store.history(diverged)["loss"][0] == 0.5 and math.isnan(store.history(diverged)["loss"][1])
    assert store.runs("failed")[0]["error"] == "ValueError: boom"
    assert store.todo() == [running, failed, pending]


def test_metrics_load_into_pandas(store):
    pandas = pytest.importorskip("pandas")
    ids = store.add_runs([TrainConfig(seed=s) for s in range(3)])
    for seed, run_id in enumerate(ids):
        history, rows = fake_result(seed)
        dict_rows = [dict(zip(("epoch", "layer", "statistic", "value"), row)) for row in rows]
        store.record_result(run_id, history, metrics_rows=dict_rows if seed else rows)
    frame = pandas.DataFrame(store.metrics())
    assert list(frame.columns) == ["run_id", "epoch", "layer", "statistic", "value"]
    assert len(frame) == 3 * len(expected_metrics(0)) and frame["value"].dtype == float
    assert not frame.duplicated(["run_id", "epoch", "layer", "statistic"]).any()
    model_level = frame[frame["layer"] == ""].pivot(index=["run_id", "epoch"], columns="statistic", values="value")
    assert model_level.loc[(ids[2], 3), "val_loss"] == pytest.approx(fake_result(2)[0]["val_loss"][2])
    assert set(pandas.DataFrame(store.metrics(ids[1:2]))["run_id"]) == {ids[1]}


def test_history_and_run_details_round_trip(store):
    config = TrainConfig(seed=7, hidden_units=(32, 16), layer_kernel_initializers=((2, "he_normal"),))
    (run_id,) = store.add_runs([config], labels=["deep"])
    history, rows = fake_result(7)
    history["loss"][-1] = math.inf
    store.record_result(run_id, history, metrics_rows=rows, status="diverged", diverged_epoch=EPOCHS,
                        timings={"compile_s": 1.5}, versions={"python": "3.x"})  # fmt: skip
    assert store.history(run_id) == history and list(store.history(run_id)) == list(KEYS)
    assert store.run_config(run_id) == config
    (run,) = store.runs("diverged")
    assert run["config"] == config.to_dict() and run["config_hash"] == config.config_hash()
    assert (run["diverged_epoch"], run["timings"], run["versions"]) == (EPOCHS, {"compile_s": 1.5}, {"python": "3.x"})
    assert run["created_at"] <= run["finished_at"]


def test_library_versions_are_recorded_by_default(store):
    versions = library_versions()
    assert set(versions) == {"python", "initlab", "jax", "jaxlib", "optax", "numpy"}
    assert versions["numpy"] is not None and versions["python"].count(".") == 2
    (run_id,) = store.add_runs([TrainConfig()])
    store.record_result(run_id, {"loss": [1.0]})
    assert store.runs()[0]["versions"] == versions


def test_errors_for_unknown_names(store):
    with pytest.raises(InitlabError, match="did you mean 'csv'"):
        store.export(store.path.parent / "out", "cvs")
    with pytest.raises(InitlabError, match="did you mean 'done'"):
        store.runs("don")
    with pytest.raises(InitlabError, match="no run 42"):
        store.record_result(42, {"loss": [1.0]})
    with pytest.raises(InitlabError, match="no run 42"):
        store.run_config(42)
    with pytest.raises(InitlabError, match="finished status"):
        store.record_result(1, {"loss": [1.0]}, status="running")


def filled(store: Store) -> list[int]:
    ids = store.add_runs([TrainConfig(seed=s) for s in range(2)], labels=["first", None])
    history, rows = fake_result(0)
    history["loss"][1] = math.nan
    store.record_result(ids[0], history, metrics_rows=rows, timings={"train_s": 2.0})
    return ids


def test_export_csv(store, tmp_path):
    pandas = pytest.importorskip("pandas")
    filled(store)
    folder = store.export(tmp_path / "csv", "csv")
    runs = pandas.read_csv(folder / "runs.csv")
    metrics = pandas.read_csv(folder / "metrics.csv", keep_default_na=False, na_values=["nan"])
    assert list(runs["status"]) == ["done", "pending"] and list(runs["seed"]) == [0, 1]
    assert json.loads(runs["timings"][0]) == {"train_s": 2.0}
    assert len(metrics) == len(expected_metrics(0)) and metrics["value"].isna().sum() == 1
    assert set(metrics["layer"]) == {"", *LAYERS}


def test_export_json(store, tmp_path):
    ids = filled(store)
    document = json.loads((store.export(tmp_path / "results.json", "json")).read_text())
    assert [run["run_id"] for run in document["runs"]] == ids
    assert document["runs"][0]["config"] == TrainConfig(seed=0).to_dict()
    assert len(document["metrics"]["value"]) == len(expected_metrics(0))
    assert document["metrics"]["value"].count(None) == 1


def test_export_parquet(store, tmp_path):
    pytest.importorskip("pyarrow")
    pandas = pytest.importorskip("pandas")
    filled(store)
    folder = store.export(tmp_path / "parquet", "parquet")
    assert len(pandas.read_parquet(folder / "metrics.parquet")) == len(expected_metrics(0))
    runs = pandas.read_parquet(folder / "runs.parquet")
    assert runs["label"][0] == "first" and runs["label"].isna()[1] and list(runs["status"]) == ["done", "pending"]


def test_export_parquet_without_pyarrow_says_how_to_install(store, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(InitlabError, match="pip install pyarrow"):
        store.export(tmp_path / "parquet", "parquet")


def test_opening_a_file_that_is_not_a_store(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InitlabError, match="corrupt.db is not a results store") as raised:
        Store(corrupt)
    assert "\n" not in str(raised.value)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE things (x)")
    with pytest.raises(InitlabError, match="foreign.db is a SQLite database but not an initlab results store"):
        Store(foreign)


def test_opening_a_store_of_a_newer_schema(tmp_path):
    path = tmp_path / "future.db"
    Store(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(InitlabError, match=f"future.db has schema version {SCHEMA_VERSION + 1}"):
        Store(path)


def check_consistent(path: Path, runs: int) -> int:
    """Every run done has exactly its metrics, every other run none; returns how many are done."""
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    with Store(path) as store:
        stored = store.runs()
        assert len(stored) == runs and len({run["config_hash"] for run in stored}) == runs
        columns = store.metrics()
        keys = list(zip(columns["run_id"], columns["epoch"], columns["layer"], columns["statistic"]))
        assert len(keys) == len(set(keys))
        for run in stored:
            rows = stored_rows(store, run["run_id"])
            assert rows == (expected_metrics(run["config"]["seed"]) if run["status"] == "done" else set()), run
        return sum(run["status"] == "done" for run in stored)


def driver_command(path: Path, **options: object) -> list[str]:
    arguments = ", ".join(f"{name}={value!r}" for name, value in {"path": str(path), **options}.items())
    tests = str(Path(__file__).parent)
    code = f"import sys; sys.path.insert(0, {tests!r}); import test_store; test_store.drive({arguments})"
    return [sys.executable, "-c", code]


def test_killed_driver_leaves_only_complete_runs_and_a_rerun_finishes(tmp_path):
    path, runs = tmp_path / "sweep.db", 20
    killed = subprocess.run(driver_command(path, die_inside_result=3), stdout=subprocess.PIPE, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL and len(killed.stdout.split()) == 2
    done = check_consistent(path, runs)
    assert done == 2
    for results_before_kill in (2, 4):
        driver = subprocess.Popen(driver_command(path), stdout=subprocess.PIPE, text=True)
        for _ in range(results_before_kill):
            assert driver.stdout.readline(), "the driver stopped before it was killed"
        time.sleep(random.uniform(0.0, 0.03))  # anywhere in the next run or two
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        driver.stdout.close()
        now_done = check_consistent(path, runs)
        assert now_done >= done + results_before_kill
        done = now_done
    subprocess.run(driver_command(path), check=True, stdout=subprocess.DEVNULL, timeout=60)
    assert check_consistent(path, runs) == runs
    with Store(path) as store:
        assert store.todo() == [] and len(store.metrics()["value"]) == runs * len(expected_metrics(0))
