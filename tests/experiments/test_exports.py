"""A store's runs exported to TensorBoard and MLflow, read back with those tools' own readers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from initlab.cli import app
from initlab.errors import InitlabError
from initlab.experiments.store import Store
from initlab.training.config import TrainConfig

HISTORY = {"loss": [2.0, 1.0, 0.5], "val_accuracy": [0.3, 0.6, math.nan]}
LAYER_ROWS = [(epoch, "Dense_0", "activation_std", 0.1 * epoch) for epoch in (1, 2, 3)]
EDGES, COUNTS = [-1.0, -0.5, 0.0, 0.5, 1.0], [1, 4, 3, 2]


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        ids = store.add_runs([TrainConfig(seed=1, epochs=3), TrainConfig(seed=2, epochs=3)], labels=["first", None])
        for run_id in ids:
            store.mark_running([run_id])
            store.record_histograms(run_id, [(2, "Dense_0", "activation", EDGES, COUNTS)])
            store.record_result(run_id, HISTORY, metrics_rows=LAYER_ROWS, timings={"train_s": 1.0})
    return path


def test_tensorboard_reads_back_every_scalar_histogram_and_the_config(store_path, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Store(store_path, read_only=True) as store:
        out = store.export(tmp_path / "tb", "tensorboard")
    assert sorted(p.name for p in out.iterdir()) == ["run_1", "run_2"]
    events = EventAccumulator(str(out / "run_1"), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert set(scalars) == {"loss", "val_accuracy", "Dense_0/activation_std"}
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, 2.0), (2, 1.0), (3, 0.5)]
    assert [e.step for e in events.Scalars("val_accuracy")] == [1, 2]  # NaN is left out, not drawn
    assert [round(e.value, 6) for e in events.Scalars("Dense_0/activation_std")] == [0.1, 0.2, 0.3]
    (histogram,) = events.Histograms("Dense_0/activation")
    assert histogram.step == 2
    assert list(histogram.histogram_value.bucket_limit) == EDGES[1:]
    assert list(histogram.histogram_value.bucket) == COUNTS and histogram.histogram_value.num == sum(COUNTS)
    (config,) = events.Tensors("config")
    assert '"seed": 1' in config.tensor_proto.string_val[0].decode()


def test_mlflows_client_reads_back_the_runs_params_metrics_and_artifacts(store_path, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    with Store(store_path, read_only=True) as store:
        out = store.export(tmp_path / "mlruns", "mlflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("results")
    runs = sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.data.tags["initlab.run_id"])
    assert [r.info.run_name for r in runs] == ["first", "run 2"]
    assert all(r.info.status == "FINISHED" for r in runs)
    first = runs[0]
    assert first.data.params["seed"] == "1" and first.data.params["epochs"] == "3"
    history = client.get_metric_history(first.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 2.0), (2, 1.0), (3, 0.5)]
    per_layer = client.get_metric_history(first.info.run_id, "Dense_0/activation_std")
    np.testing.assert_allclose(sorted(m.value for m in per_layer), [0.1, 0.2, 0.3])
    artifacts = {a.path for a in client.list_artifacts(first.info.run_id)}
    assert artifacts == {"config.json", "histograms.json"}
    local = client.download_artifacts(first.info.run_id, "config.json", str(tmp_path))
    assert json.loads(open(local).read())["seed"] == 1


def test_the_cli_exports_to_tensorboard_beside_the_store(store_path):
    pytest.importorskip("tensorboard")
    result = CliRunner().invoke(app, ["export", str(store_path), "--format", "tensorboard"])
    assert result.exit_code == 0, result.output
    folder = store_path.with_name("results-tensorboard")
    assert f"written {folder}" in result.stdout and (folder / "run_2").is_dir()


def test_a_missing_exporter_is_one_line_naming_the_extra(store_path, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.startswith(("tensorboard", "mlflow")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with Store(store_path, read_only=True) as store:
        with pytest.raises(InitlabError, match=r"pip install 'initlab\[tensorboard\]'"):
            store.export(tmp_path / "tb", "tensorboard")
        with pytest.raises(InitlabError, match=r"pip install 'initlab\[mlflow\]'"):
            store.export(tmp_path / "ml", "mlflow")
    assert not (tmp_path / "tb").exists()
