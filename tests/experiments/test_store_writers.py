"""One writer per store, and readers that never write.

A second writer (in this process or another) is refused with a line naming the one that holds
the store; a killed writer releases it. Two sweeps on one store, the second killed at any
moment, leave every run the first finished done, and train no run twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic_data import write_mnist_like

from initlab.errors import InitlabError
from initlab.experiments.store import Store
from initlab.training.config import TrainConfig


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path)


def test_a_second_writer_in_this_process_is_refused_naming_the_first(tmp_path):
    path = tmp_path / "runs.sqlite"
    with Store(path):
        with pytest.raises(InitlabError, match=rf"being written by process {os.getpid()} on .*wait for it"):
            Store(path)
    with Store(path):  # released on close
        pass


def test_a_second_writer_in_another_process_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    script = (
        "import sys\nfrom initlab.experiments.store import Store\nfrom initlab.errors import InitlabError\n"
        f"try:\n    Store({str(path)!r})\nexcept InitlabError as error:\n    print(error); sys.exit(3)\n"
    )
    with Store(path):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert f"being written by process {os.getpid()}" in result.stdout


def test_a_killed_writer_releases_the_store(tmp_path):
    path = tmp_path / "runs.sqlite"
    script = (
        "import time\nfrom initlab.experiments.store import Store\nfrom initlab.training.config import TrainConfig\n"
        f"store = Store({str(path)!r})\n(run,) = store.add_runs([TrainConfig(epochs=1)])\n"
        "store.mark_running([run])\nprint('holding', flush=True)\ntime.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "holding"
        with pytest.raises(InitlabError, match=f"process {process.pid}"):
            Store(path)
    finally:
        process.kill()
        process.wait(timeout=30)
    with Store(path) as store:  # the lock went with the process; its interrupted run is redone
        assert store.reset_interrupted() == [1]


def test_a_reader_works_beside_a_live_writer_and_sees_its_commits(tmp_path):
    path = tmp_path / "runs.sqlite"
    with Store(path) as writer:
        (run_id,) = writer.add_runs([TrainConfig(epochs=1)])
        writer.record_result(run_id, {"loss": [0.5]})
        with Store(path, read_only=True) as reader:
            assert [run["status"] for run in reader.runs()] == ["done"]
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.add_runs([TrainConfig(epochs=2)])


def test_reading_a_store_at_rest_changes_nothing_beside_it(tmp_path):
    path = tmp_path / "runs.sqlite"
    with Store(path) as writer:
        writer.add_runs([TrainConfig(epochs=1)])
    # At rest the store is in rollback-journal mode (header bytes 18-19 are 1, not WAL's 2),
    # so reading it needs no -wal or -shm file: it reads in a read-only folder too.
    assert path.read_bytes()[18:20] == b"\x01\x01"
    assert _siblings(path) == []
    before = _digest(path)
    with Store(path, read_only=True) as reader:
        reader.runs()
        reader.metrics()
    assert _digest(path) == before and _siblings(path) == []


@pytest.mark.parametrize("kind", ["empty", "foreign", "garbage"])
def test_a_read_never_turns_a_file_into_a_store(tmp_path, kind):
    path = tmp_path / "file.sqlite"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"not a database" * 100)
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE t (x)")
    before = _digest(path)
    with pytest.raises(InitlabError, match="empty file|not an initlab results store|not a SQLite database"):
        Store(path, read_only=True)
    assert _digest(path) == before and _siblings(path) == []
    if kind == "foreign":  # a writer refuses it too, before switching it to WAL
        with pytest.raises(InitlabError, match="not an initlab results store"):
            Store(path)
        assert _digest(path) == before


def test_hand_edited_configs_are_one_line_errors(tmp_path):
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        store.add_runs([TrainConfig(epochs=1)])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET config_json = '{\"epochs\": 0}'")
    with Store(path, read_only=True) as store:
        (run,) = store.runs()
        with pytest.raises(InitlabError, match="epochs"):
            store.run_config(run["run_id"])


# Two sweeps on one store


def _read(path: Path) -> dict[int, tuple]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        return {row[0]: row[1:] for row in connection.execute("SELECT run_id, status, started_at, finished_at FROM runs")}
    finally:
        connection.close()


def test_two_sweeps_on_one_store_the_second_killed_at_any_moment(tmp_path):
    data = write_mnist_like(tmp_path / "data.npz", train=256, test=64)
    sweep = tmp_path / "two.toml"
    sweep.write_text(
        f"[base]\ndata_file = {json.dumps(str(data))}\nhidden_units = [8]\nbatch_size = 8\nepochs = 200\n"
        '[grid]\nkernel_initializer = ["glorot_uniform", "he_normal"]\nseed = "0-3"\n'
    )
    store = tmp_path / "two.sqlite"
    command = [sys.executable, "-m", "initlab.cli", "sweep", str(sweep), "--store", str(store), "--chunk-size", "1"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # until the first has finished a run
            try:
                if any(status == "done" for status, *_ in _read(store).values()):
                    break
            except sqlite3.Error:
                pass
            assert first.poll() is None, first.stderr.read().decode()
            time.sleep(0.05)
        rng = random.Random(0)
        refused = 0
        # The second sweep: once left to run until it stops by itself, then killed at random moments.
        for delay in (None, *(rng.uniform(0.0, 6.0) for _ in range(3))):
            done_before = {run_id: row for run_id, row in _read(store).items() if row[0] == "done"}
            second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if delay is not None:
                time.sleep(delay)
                if second.poll() is None:
                    second.send_signal(signal.SIGKILL)
            _, stderr = second.communicate(timeout=120)
            if delay is None:
                assert first.poll() is None, "the first sweep ended before the second could meet it"
            if second.returncode == 2:
                refused += 1
                assert "is being written by process" in stderr.decode()
                assert f"process {first.pid} " in stderr.decode()
            after = _read(store)
            for run_id, row in done_before.items():
                assert after[run_id] == row  # a finished run stays done, untouched
        _, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stderr.decode()
    finally:
        for process in (first,):
            if process.poll() is None:
                process.kill()
    assert refused >= 1  # at least one second sweep lived long enough to be refused
    runs = _read(store)
    assert len(runs) == 8 and {status for status, *_ in runs.values()} == {"done"}
    # No run was trained twice: a rerun finds everything finished and trains nothing.
    rerun = subprocess.run(command + ["--json"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert (summary["skipped"], summary["done"]) == (8, 0)
    assert _read(store) == runs
