"""A SQLite results store for many training runs, safe against being killed at any moment.

A run is a row of ``runs`` (its config, status and timings); its numbers are tidy rows of
``metrics`` ``(run_id, epoch, layer, statistic, value)``. A run's metrics and its final status
are written in one transaction, so after a crash a run is either complete or has no metrics.

One process writes at a time (a second writer is refused, naming the first); any number of
readers (plots, reports) may read while it runs, since WAL mode lets readers see the last
committed state without blocking the writer. Readers open the file read-only and never change it.

Storage conventions: model-level rows have ``layer == ''`` (so the primary key works; SQLite
treats NULLs as distinct) and epochs are 1-based. SQLite cannot store NaN, which becomes NULL;
reading back turns NULL into NaN.

Example:
    >>> with Store("results.db") as store:
    ...     for run_id in store.todo(store.add_runs(configs)):
    ...         store.mark_running([run_id])
    ...         result = initlab.train(store.run_config(run_id))
    ...         store.record_result(run_id, result.history, timings=result.timings)
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import json
import math
import os
import platform
import socket
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initlab.errors import InitlabError, unknown
from initlab.files import output_file, output_folder, staged_folder, write_text

if TYPE_CHECKING:
    from initlab.training.config import TrainConfig

SCHEMA_VERSION = 1
STATUSES = ("pending", "running", "done", "diverged", "failed")
FINISHED = ("done", "diverged")
EXPORT_FORMATS = ("csv", "json", "parquet", "tensorboard", "mlflow")
METRIC_COLUMNS = ("run_id", "epoch", "layer", "statistic", "value")
_RUN_COLUMNS = (
    "run_id", "config_hash", "config_json", "label", "status", "error", "diverged_epoch",
    "created_at", "started_at", "finished_at", "timings_json", "versions_json",
)  # fmt: skip
_RUN_SELECT = ", ".join(_RUN_COLUMNS)
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY, config_hash TEXT NOT NULL UNIQUE, config_json TEXT NOT NULL,
    label TEXT, status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN {STATUSES}),
    error TEXT, diverged_epoch INTEGER, created_at TEXT NOT NULL, started_at TEXT,
    finished_at TEXT, timings_json TEXT, versions_json TEXT);
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, epoch INTEGER NOT NULL,
    layer TEXT NOT NULL DEFAULT '', statistic TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, epoch, layer, statistic));
CREATE TABLE histograms (
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, epoch INTEGER NOT NULL,
    layer TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL, edges_json TEXT NOT NULL,
    counts_json TEXT NOT NULL, PRIMARY KEY (run_id, epoch, layer, kind));
INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""
# Run ids go to SQL as one JSON array, so any number of them fits in one statement.
_IDS = "run_id IN (SELECT value FROM json_each(?))"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _id_list(run_ids: Iterable[int]) -> str:
    return json.dumps([int(run_id) for run_id in run_ids])


def library_versions() -> dict[str, str | None]:
    """The versions of Python and of the libraries that decide a run's numbers (``None``: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("initlab", "jax", "jaxlib", "optax", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


_SQLITE_HEADER = b"SQLite format 3\x00"


def _file_kind(path: Path) -> str:
    """``missing``, ``folder``, ``empty``, ``sqlite`` or ``other`` (read from the first 16 bytes only)."""
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "folder"
    try:
        with open(path, "rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise InitlabError(f"cannot read results store {path}: {error.strerror or error}") from None
    if not header:
        return "empty"
    return "sqlite" if header == _SQLITE_HEADER else "other"


def _writer_identity() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()})


class Store:
    """The results of a sweep in one SQLite file, with one writer at a time.

    A store opened for writing (the default) is locked for as long as it is open: a second
    writer, in this process or another, is refused with a line naming the process that holds it
    (the lock is the operating system's, so a killed writer releases it). A store opened with
    ``read_only=True`` is never changed: the file is checked to be an initlab store before
    SQLite opens it, and it is opened read-only.

    Args:
        path: the database file; when writing, created with the schema if missing or empty.
        read_only: open for reading only (``runs``, ``export``, ``report``, ``plot``).

    Raises:
        InitlabError: the file is missing (reading), a folder, empty (reading), not a SQLite
            database, not an initlab store, written by a newer initlab (a newer schema version),
            or being written by another process (writing).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock_file: Any = None
        kind = _file_kind(self.path)
        if kind == "folder":
            raise InitlabError(f"{self.path} is a folder, not a results store")
        if kind == "other":
            raise InitlabError(f"{self.path} is not a results store (not a SQLite database)")
        if read_only and kind == "missing":
            raise InitlabError(f"store not found: {self.path}")
        if read_only and kind == "empty":
            raise InitlabError(f"{self.path} is an empty file, not a results store")
        if not read_only:
            self._lock()
        try:
            self._connection = self._connect()
            self._open()
        except BaseException:
            if getattr(self, "_connection", None) is not None:
                self._connection.close()
            self._unlock()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode=ro"
                return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
            return sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except sqlite3.Error as error:
            raise InitlabError(f"cannot open results store {self.path}: {error}") from None

    def _lock(self) -> None:
        """Take the store's writer lock (``flock`` on the file: SQLite's own locks are ``fcntl``'s)."""
        try:
            import fcntl
        except ImportError:  # Windows: no lock (one writer per store is then the user's care)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.path, "ab")
        except OSError as error:
            raise InitlabError(f"cannot open results store {self.path} for writing: {error.strerror or error}") from None
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise InitlabError(
                f"{self.path} is being written by {self._holder()}; wait for it to finish, or give another store"
            ) from None

    def _holder(self) -> str:
        """Which process holds the writer lock, as the store records it."""
        try:
            uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=2.0)) as db:
                row = db.execute("SELECT value FROM meta WHERE key='writer'").fetchone()
            holder = json.loads(row[0])
            return f"process {holder['pid']} on {holder['host']} (since {holder['since']})"
        except Exception:  # noqa: BLE001  (the lock is held; who holds it is a courtesy)
            return "another process"

    def _unlock(self) -> None:
        # After the connection is closed: closing a descriptor of the file drops the process's
        # fcntl locks on it, SQLite's included.
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _open(self) -> None:
        db = self._connection
        try:
            # Before anything changes the file: is it an initlab store (or, to write, empty)?
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as error:
            raise InitlabError(f"{self.path} is not a results store ({error})") from None
        if not tables and not self.read_only:
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
            tables = {"meta", "runs", "metrics", "histograms"}
        try:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if "meta" in tables else None
        except sqlite3.DatabaseError as error:
            raise InitlabError(f"{self.path} is not a readable results store ({error})") from None
        if row is None or not str(row[0]).isdigit():
            raise InitlabError(f"{self.path} is a SQLite database but not an initlab results store")
        version = row[0]
        if int(version) > SCHEMA_VERSION:
            raise InitlabError(
                f"{self.path} has schema version {version}, newer than this initlab's {SCHEMA_VERSION}: upgrade initlab"
            )
        if "runs" not in tables or "metrics" not in tables or "histograms" not in tables:
            raise InitlabError(f"{self.path} is a damaged results store: tables are missing")
        db.execute("PRAGMA foreign_keys=ON")
        if self.read_only:
            return
        # WAL lets readers see the last committed state while the writer works. NORMAL is safe
        # in WAL mode against the process being killed: every commit is in the WAL file (in the
        # OS cache) before COMMIT returns. Only a power cut or OS crash can lose the last commits
        # (never corrupt the file), and those runs are redone.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            db.execute("INSERT OR REPLACE INTO meta VALUES ('writer', ?)", (_writer_identity(),))

    def close(self) -> None:
        """Close the database and, when writing, release the writer lock (idempotent)."""
        if self._connection is None:
            return
        try:
            if not self.read_only:
                with contextlib.suppress(sqlite3.Error):
                    with self._transaction():
                        self._connection.execute("DELETE FROM meta WHERE key='writer'")
                    # A store at rest in rollback-journal mode can be read in a read-only folder
                    # without SQLite creating -wal and -shm files beside it; while a reader has it
                    # open this fails (busy), and the store stays in WAL mode, which is also fine.
                    self._connection.execute("PRAGMA busy_timeout=100")
                    self._connection.execute("PRAGMA journal_mode=DELETE")
        finally:
            self._connection.close()
            self._connection = None
            self._unlock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front; a read transaction gives one consistent snapshot.
        self._connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield self._connection
        except BaseException:
            if self._connection.in_transaction:  # SQLite may already have rolled back (disk full, say)
                self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def _require(self, run_id: int) -> dict[str, Any]:
        values = self._connection.execute(f"SELECT {_RUN_SELECT} FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if values is None:
            raise InitlabError(f"no run {run_id} in {self.path}")
        return dict(zip(_RUN_COLUMNS, values))

    def _clear(self, run_ids: list[int]) -> None:
        for table in ("metrics", "histograms"):
            self._connection.execute(f"DELETE FROM {table} WHERE {_IDS}", (_id_list(run_ids),))

    def add_runs(self, configs: Iterable[TrainConfig], labels: Sequence[str | None] | None = None) -> list[int]:
        """Add runs as pending, one per config; a config already stored keeps its row, status and label.

        Returns:
            the run id of every config, in order (the same id for equal configs).
        """
        configs = list(configs)
        labels = [None] * len(configs) if labels is None else list(labels)
        if len(labels) != len(configs):
            raise InitlabError(f"got {len(labels)} labels for {len(configs)} configs")
        ids = []
        with self._transaction() as db:
            for config, label in zip(configs, labels):
                config_hash = config.config_hash()
                db.execute(
                    "INSERT INTO runs (config_hash, config_json, label, created_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (config_hash) DO NOTHING",
                    (config_hash, json.dumps(config.to_dict(), sort_keys=True), label, _now()),
                )
                ids.append(db.execute("SELECT run_id FROM runs WHERE config_hash=?", (config_hash,)).fetchone()[0])
        return ids

    def mark_running(self, run_ids: Iterable[int]) -> None:
        """Mark runs as started now."""
        with self._transaction() as db:
            db.execute(
                f"UPDATE runs SET status='running', started_at=?, finished_at=NULL, error=NULL WHERE {_IDS}",
                (_now(), _id_list(run_ids)),
            )

    def record_result(
        self,
        run_id: int,
        history: Mapping[str, Sequence[float]],
        *,
        status: str = "done",
        diverged_epoch: int | None = None,
        timings: Mapping[str, float] | None = None,
        versions: Mapping[str, str | None] | None = None,
        metrics_rows: Iterable[Mapping[str, Any] | Sequence[Any]] | None = None,
    ) -> None:
        """Write a finished run's metrics and status in one transaction (all of it or nothing).

        Args:
            run_id: the run.
            history: Keras-style ``{statistic: [value per epoch]}``, stored as model-level rows.
            status: ``"done"`` or ``"diverged"``.
            diverged_epoch: the first non-finite epoch of a diverged run.
            timings: seconds per phase (``TrainResult.timings``).
            versions: library versions and the code path (``matmul``: ``sparse`` or ``xla``;
                ``initializers``: each parameter's); by default :func:`library_versions`.
            metrics_rows: more tidy rows, ``(epoch, layer, statistic, value)`` tuples or mappings
                with those keys; ``layer`` ``None`` or ``''`` means model-level.
        """
        if status not in FINISHED:
            raise unknown("finished status", status, FINISHED)
        rows = [(run_id, epoch, "", statistic, float(value))
                for statistic, values in history.items() for epoch, value in enumerate(values, start=1)]  # fmt: skip
        for row in metrics_rows or ():
            epoch, layer, statistic, value = (
                (row["epoch"], row["layer"], row["statistic"], row["value"]) if isinstance(row, Mapping) else row
            )
            rows.append((run_id, int(epoch), layer or "", str(statistic), None if value is None else float(value)))
        versions = library_versions() if versions is None else versions
        with self._transaction() as db:
            self._require(run_id)
            # Replacing, not appending: recording a run twice must not duplicate its rows.
            db.execute("DELETE FROM metrics WHERE run_id=?", (run_id,))
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", rows)
            db.execute(
                "UPDATE runs SET status=?, diverged_epoch=?, error=NULL, finished_at=?, timings_json=?,"
                " versions_json=? WHERE run_id=?",
                (status, diverged_epoch, _now(), json.dumps(dict(timings or {})), json.dumps(dict(versions)), run_id),
            )

    def record_failure(self, run_id: int, error: str) -> None:
        """Mark a run failed with its error message; any rows it had are removed."""
        with self._transaction() as db:
            self._require(run_id)
            self._clear([run_id])
            update = "UPDATE runs SET status='failed', error=?, finished_at=? WHERE run_id=?"
            db.execute(update, (error, _now(), run_id))

    def todo(self, run_ids: Iterable[int] | None = None) -> list[int]:
        """The runs still to do (pending, running, i.e. interrupted, or failed), among ``run_ids`` if given."""
        unfinished = [row[0] for row in self._connection.execute(
            f"SELECT run_id FROM runs WHERE status NOT IN {FINISHED} ORDER BY run_id")]  # fmt: skip
        if run_ids is None:
            return unfinished
        wanted = set(unfinished)
        return [run_id for run_id in dict.fromkeys(run_ids) if run_id in wanted]

    def reset_interrupted(self) -> list[int]:
        """Turn runs left ``running`` (by a killed driver) back into pending, dropping their partial rows."""
        with self._transaction() as db:
            ids = [row[0] for row in db.execute("SELECT run_id FROM runs WHERE status='running' ORDER BY run_id")]
            self._clear(ids)
            db.execute(f"UPDATE runs SET status='pending', started_at=NULL WHERE {_IDS}", (_id_list(ids),))
        return ids

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every run (or those with ``status``) as a dict: config, timings and versions parsed back."""
        if status is not None and status not in STATUSES:
            raise unknown("run status", status, STATUSES)
        where, parameters = ("", ()) if status is None else (" WHERE status=?", (status,))
        cursor = self._connection.execute(f"SELECT {_RUN_SELECT} FROM runs{where} ORDER BY run_id", parameters)
        result = []
        for values in cursor:
            row = dict(zip(_RUN_COLUMNS, values))
            for key in ("config", "timings", "versions"):
                text = row.pop(f"{key}_json")
                try:
                    row[key] = None if text is None else json.loads(text)
                except (TypeError, ValueError):
                    raise InitlabError(
                        f"{self.path}: run {row['run_id']}'s {key} is not valid JSON (was the store edited by hand?)"
                    ) from None
            result.append(row)
        return result

    def run_config(self, run_id: int) -> TrainConfig:
        """The configuration of a run."""
        from initlab.training.config import TrainConfig

        text = self._require(run_id)["config_json"]
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            data = None
        if not isinstance(data, dict):
            raise InitlabError(f"{self.path}: run {run_id}'s config is not a JSON object (was the store edited by hand?)")
        return TrainConfig.from_dict(data)

    def metrics(self, run_ids: Iterable[int] | None = None) -> dict[str, list[Any]]:
        """Tidy metric rows as a dict of columns, for ``pandas.DataFrame``; model-level rows have ``layer=''``."""
        where, parameters = ("", ()) if run_ids is None else (f" WHERE {_IDS}", (_id_list(run_ids),))
        order = "ORDER BY run_id, layer, statistic, epoch"
        cursor = self._connection.execute(f"SELECT {', '.join(METRIC_COLUMNS)} FROM metrics{where} {order}", parameters)
        columns: dict[str, list[Any]] = {name: [] for name in METRIC_COLUMNS}
        for row in cursor:
            for name, value in zip(METRIC_COLUMNS, row):
                columns[name].append(math.nan if name == "value" and value is None else value)
        return columns

    def history(self, run_id: int) -> dict[str, list[float]]:
        """A run's model-level metrics as a Keras-style history ``{statistic: [value per epoch]}``."""
        history: dict[str, list[float]] = {}
        for statistic, value in self._connection.execute(
            "SELECT statistic, value FROM metrics WHERE run_id=? AND layer='' ORDER BY epoch, rowid", (run_id,)
        ):
            history.setdefault(statistic, []).append(math.nan if value is None else value)
        return history

    def record_document(self, name: str, value: Any) -> None:
        """Keep a JSON document beside the runs (the main job's saturation numbers, say); replaces one of that name."""
        from initlab.files import json_text

        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"document:{name}", json_text(value, indent=None)))

    def document(self, name: str) -> Any:
        """The document stored under ``name``, or ``None``."""
        row = self._connection.execute("SELECT value FROM meta WHERE key=?", (f"document:{name}",)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            raise InitlabError(f"{self.path}: the document '{name}' is not valid JSON (was the store edited by hand?)") from None

    def record_histograms(
        self, run_id: int, rows: Iterable[Mapping[str, Any] | Sequence[Any]]
    ) -> None:
        """Write a run's histograms in one transaction (all of them or none).

        Call it before :meth:`record_result`: a driver killed in between leaves the run
        ``running``, and :meth:`reset_interrupted` drops its histograms with its other rows.

        Args:
            run_id: the run.
            rows: ``(epoch, layer, kind, edges, counts)`` tuples (as
                :func:`initlab.measure.probes.histogram_rows` makes) or mappings with those keys, with
                ``len(edges) == len(counts) + 1``. A row already stored for the same
                ``(epoch, layer, kind)`` is replaced.
        """
        values = []
        for row in rows:
            epoch, layer, kind, edges, counts = (
                tuple(row[key] for key in ("epoch", "layer", "kind", "edges", "counts"))
                if isinstance(row, Mapping)
                else row
            )
            edges, counts = [float(edge) for edge in edges], [int(count) for count in counts]
            if len(edges) != len(counts) + 1:
                raise InitlabError(
                    f"a histogram needs one more edge than counts, got {len(edges)} edges and {len(counts)} counts"
                )
            values.append((run_id, int(epoch), layer or "", str(kind), json.dumps(edges), json.dumps(counts)))
        with self._transaction() as db:
            self._require(run_id)
            db.executemany("INSERT OR REPLACE INTO histograms VALUES (?, ?, ?, ?, ?, ?)", values)

    def histograms(
        self, run_ids: Iterable[int] | None = None, *, kinds: Iterable[str] | None = None
    ) -> dict[str, list[Any]]:
        """Histogram rows as a dict of columns ``run_id, epoch, layer, kind, edges, counts`` (lists parsed back)."""
        clauses, parameters = [], []
        if run_ids is not None:
            clauses.append(_IDS)
            parameters.append(_id_list(run_ids))
        if kinds is not None:
            clauses.append("kind IN (SELECT value FROM json_each(?))")
            parameters.append(json.dumps([str(kind) for kind in kinds]))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        cursor = self._connection.execute(
            "SELECT run_id, epoch, layer, kind, edges_json, counts_json FROM histograms"
            f"{where} ORDER BY run_id, kind, layer, epoch",
            parameters,
        )
        columns: dict[str, list[Any]] = {name: [] for name in ("run_id", "epoch", "layer", "kind", "edges", "counts")}
        for run_id, epoch, layer, kind, edges, counts in cursor:
            for name, value in zip(columns, (run_id, epoch, layer, kind, json.loads(edges), json.loads(counts))):
                columns[name].append(value)
        return columns

    def export(self, path: str | Path, format: str = "csv") -> Path:
        """Write runs and metrics out of SQLite, from one consistent snapshot.

        Formats: ``csv`` and ``parquet`` write a folder holding ``runs.<ext>`` (one column per
        config field, nested values as JSON text) and ``metrics.<ext>``; ``json`` writes one
        document ``{"runs": [...], "metrics": {column: [...]}}``, non-finite values as ``null``.

        ``tensorboard`` writes a folder of TensorBoard event files (a run per folder) and ``mlflow``
        records every run in the MLflow tracking folder ``path`` (:mod:`initlab.experiments.exports`).

        Every file is written atomically, the files of a folder together: a failed export
        leaves the previous one intact.

        Returns:
            the folder or file written.
        """
        if format not in EXPORT_FORMATS:
            raise unknown("export format", format, EXPORT_FORMATS)
        if format in ("tensorboard", "mlflow"):
            from initlab.experiments import exports

            return exports.to_tensorboard(self, path) if format == "tensorboard" else exports.to_mlflow(self, path)
        if format == "parquet":
            try:
                import pyarrow
                import pyarrow.parquet
            except ImportError:
                raise InitlabError("exporting parquet needs pyarrow: pip install pyarrow") from None
        with self._transaction(write=False):
            runs, metrics = self.runs(), self.metrics()
        if format == "json":
            path = output_file(path, what="export")
            metrics["value"] = [value if math.isfinite(value) else None for value in metrics["value"]]
            return write_text(path, json.dumps({"runs": runs, "metrics": metrics}, indent=1, allow_nan=False))
        path = output_folder(path, what="export")
        flat = [{**{k: v for k, v in run.items() if k != "config"}, **(run["config"] or {})} for run in runs]
        flat = [{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in run.items()} for run in flat]
        with staged_folder(path) as stage:
            if format == "parquet":
                pyarrow.parquet.write_table(pyarrow.Table.from_pylist(flat), stage.path("runs.parquet"))
                pyarrow.parquet.write_table(pyarrow.table(metrics), stage.path("metrics.parquet"))
                return path
            header = list(dict.fromkeys(key for run in flat for key in run))
            for name, columns, rows in (("runs", header, ([run.get(k) for k in header] for run in flat)),
                                        ("metrics", METRIC_COLUMNS, zip(*metrics.values()))):  # fmt: skip
                with open(stage.path(f"{name}.csv"), "w", newline="") as file:
                    csv.writer(file).writerows([columns, *rows])
        return path
