"""A store's runs in the tools people already use: TensorBoard event files and MLflow runs.

- :func:`to_tensorboard`: one folder per run (``run_<id>``, TensorBoard's run selector), one
  event file each: the model-level history as scalars (``loss``, ``val_accuracy``, ...), every
  per-layer probe statistic as a scalar ``<layer>/<statistic>``, every stored histogram as a
  TensorBoard histogram ``<layer>/<kind>`` (its own bucket edges and counts), the run's config as
  text; the step is the epoch. Written with TensorBoard's own protos and record writer (no
  TensorFlow), into staged files renamed together: a failed export leaves the old one intact.
- :func:`to_mlflow`: one MLflow run per store run in an experiment named after the store, in a
  tracking folder (MLflow's SQLite backend and the artifacts): the config's fields as parameters, every metric
  (model-level and per layer) per epoch as MLflow metrics with the epoch as step, the config and
  the histograms as JSON artifacts, the run's status. A failed export deletes the runs it made.

Both need an optional dependency (``pip install 'initlab[tensorboard]'`` / ``'initlab[mlflow]'``)
and say so in one line when it is missing.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from initlab.errors import InitlabError
from initlab.files import make_folder, output_folder, staged_folder

Store = Any
"""An open :class:`initlab.experiments.store.Store` (not imported: the store calls this module)."""

MLFLOW_DATABASE = "mlflow.db"
TENSORBOARD_FILE = "events.out.tfevents.initlab"
"""TensorBoard reads every file whose name contains ``tfevents``."""


def _rows(store: Store) -> tuple[list[dict[str, Any]], dict[int, list[tuple[int, str, str, float]]], dict[int, list[tuple]]]:
    with store._transaction(write=False):
        runs, metrics, histograms = store.runs(), store.metrics(), store.histograms()
    by_run: dict[int, list[tuple[int, str, str, float]]] = defaultdict(list)
    for run_id, epoch, layer, statistic, value in zip(*(metrics[k] for k in ("run_id", "epoch", "layer", "statistic", "value"))):
        by_run[run_id].append((epoch, layer, statistic, value))
    histogram_rows: dict[int, list[tuple]] = defaultdict(list)
    for row in zip(*(histograms[k] for k in ("run_id", "epoch", "layer", "kind", "edges", "counts"))):
        histogram_rows[row[0]].append(row[1:])
    return runs, by_run, histogram_rows


def _tag(layer: str, name: str) -> str:
    return f"{layer}/{name}" if layer else name


def to_tensorboard(store: Store, path: str | Path) -> Path:
    """Write ``store``'s runs as TensorBoard event files under the folder ``path`` (see the module docstring)."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:
        raise InitlabError("exporting to TensorBoard needs tensorboard: pip install 'initlab[tensorboard]'") from None
    runs, metrics, histograms = _rows(store)
    path = output_folder(path, what="export")
    now = time.time()

    def event(**fields: Any) -> bytes:
        return event_pb2.Event(wall_time=now, **fields).SerializeToString()

    def text(tag: str, value: str) -> Any:
        tensor = tensor_pb2.TensorProto(dtype=7, string_val=[value.encode()], tensor_shape=tensor_shape_pb2.TensorShapeProto())  # DT_STRING
        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
        return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata)])

    with staged_folder(path) as stage:
        for run in runs:
            folder = make_folder(path / f"run_{run['run_id']}")
            with open(stage.path(f"{folder.name}/{TENSORBOARD_FILE}"), "wb") as file:
                writer = RecordWriter(file)
                writer.write(event(file_version="brain.Event:2"))
                config = json.dumps(run["config"], indent=1)
                writer.write(event(step=0, summary=text("config", f"```\n{config}\n```")))
                for epoch, layer, statistic, value in metrics.get(run["run_id"], []):
                    if math.isfinite(value):  # TensorBoard has no missing value; NaN would draw a gap as a spike
                        scalar = summary_pb2.Summary.Value(tag=_tag(layer, statistic), simple_value=float(value))
                        writer.write(event(step=int(epoch), summary=summary_pb2.Summary(value=[scalar])))
                for epoch, layer, kind, edges, counts in histograms.get(run["run_id"], []):
                    centres = [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:])]
                    histogram = summary_pb2.HistogramProto(
                        min=edges[0], max=edges[-1], num=float(sum(counts)),
                        sum=float(sum(c * n for c, n in zip(centres, counts))),
                        sum_squares=float(sum(c * c * n for c, n in zip(centres, counts))),
                        bucket_limit=[float(edge) for edge in edges[1:]], bucket=[float(count) for count in counts],
                    )  # fmt: skip
                    value = summary_pb2.Summary.Value(tag=_tag(layer, kind), histo=histogram)
                    writer.write(event(step=int(epoch), summary=summary_pb2.Summary(value=[value])))
                writer.flush()
    return path


_MLFLOW_KEY = re.compile(r"[^0-9A-Za-z_\-. /:]")


def to_mlflow(store: Store, path: str | Path, experiment: str | None = None) -> Path:
    """Record ``store``'s runs as MLflow runs in the tracking folder ``path`` (see the module docstring).

    The folder holds MLflow's SQLite backend ``mlflow.db`` (MLflow 3 keeps file stores in
    maintenance mode) and the runs' artifacts; ``mlflow ui --backend-store-uri
    sqlite:///PATH/mlflow.db`` shows them. Exporting into the same folder again adds the runs
    to the experiment of that name.
    """
    import logging

    try:
        from mlflow.entities import Metric, Param, RunStatus
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InitlabError("exporting to MLflow needs mlflow: pip install 'initlab[mlflow]'") from None
    runs, metrics, histograms = _rows(store)
    path = make_folder(output_folder(path, what="export")).resolve()
    quiet = logging.getLogger("mlflow")
    level, quiet.level = quiet.level, logging.WARNING  # its database set-up logs at INFO
    try:
        client = MlflowClient(tracking_uri=f"sqlite:///{path / MLFLOW_DATABASE}")
        name = experiment or Path(store.path).stem
        found = client.get_experiment_by_name(name)
        experiment_id = (found.experiment_id if found is not None
                         else client.create_experiment(name, artifact_location=(path / "artifacts" / name).as_uri()))  # fmt: skip
    finally:
        quiet.level = level
    created: list[str] = []
    try:
        for run in runs:
            label = run.get("label") or f"run {run['run_id']}"
            tags = {"initlab.run_id": str(run["run_id"]), "initlab.store": str(store.path), "initlab.status": run["status"]}
            made = client.create_run(experiment_id, run_name=label, tags=tags)
            run_id = made.info.run_id
            created.append(run_id)
            config = run["config"] or {}
            params = [Param(key, json.dumps(value) if isinstance(value, (dict, list, tuple)) or value is None else str(value))
                      for key, value in config.items()]  # fmt: skip
            millis = int(time.time() * 1000)
            rows = [Metric(_MLFLOW_KEY.sub("_", _tag(layer, statistic)), float(value), millis, int(epoch))
                    for epoch, layer, statistic, value in metrics.get(run["run_id"], []) if math.isfinite(value)]  # fmt: skip
            for start in range(0, len(params), 100):  # MLflow's batch limits: 100 parameters, 1000 metrics
                client.log_batch(run_id, params=params[start : start + 100])
            for start in range(0, len(rows), 1000):
                client.log_batch(run_id, metrics=rows[start : start + 1000])
            client.log_dict(run_id, config, "config.json")
            if histograms.get(run["run_id"]):
                client.log_dict(run_id, [dict(zip(("epoch", "layer", "kind", "edges", "counts"), row))
                                         for row in histograms[run["run_id"]]], "histograms.json")  # fmt: skip
            finished = RunStatus.to_string(RunStatus.FINISHED if run["status"] == "done" else RunStatus.FAILED)
            client.set_terminated(run_id, status=finished)
    except BaseException:
        for run_id in created:
            try:
                client.delete_run(run_id)
            except Exception:  # noqa: BLE001 - best effort: the error that matters is the one re-raised
                pass
        raise
    return path
