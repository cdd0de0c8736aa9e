"""Many runs in a store: ``initlab sweep``, ``runs`` and ``export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from initlab.checks import memory_budget_bytes, positive_int
from initlab.cli._app import app, configure_process, console, emit_json, new_table, progress_bar, user_errors, written


@app.command()
@user_errors
def sweep(
    file: Annotated[Path, typer.Argument(help=r"Sweep file (TOML): \[base], \[grid], \[\[zip]].")],
    store: Annotated[Optional[Path], typer.Option(help="SQLite store (default: FILE with .sqlite).")] = None,
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: start a local Ray).")] = None,
    memory_budget: Annotated[
        Optional[float], typer.Option("--memory-budget", help="MiB for one ensemble chunk (default: half the free memory).")
    ] = None,
    chunk_size: Annotated[Optional[int], typer.Option("--chunk-size", help="At most this many models per ensemble.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run a sweep into a store; re-running skips completed runs and redoes unfinished ones."""
    configure_process()
    from initlab.experiments.executors import run_configs
    from initlab.experiments.sweeps import load_sweep

    budget = memory_budget_bytes(memory_budget)
    if chunk_size is not None:
        positive_int("--chunk-size", chunk_size)
    plan = load_sweep(file)
    configs = plan.expand()
    store_path = store if store is not None else file.with_suffix(".sqlite")
    progress = progress_bar(f"sweep {plan.name}", "runs", as_json)
    with progress:
        task = progress.add_task("sweep", total=len(configs))
        summary = run_configs(
            configs, store_path, executor=executor, address=address,
            memory_budget=budget, max_chunk=chunk_size,
            progress=lambda finished, total: progress.update(task, completed=finished, total=total),
        )
    if as_json:
        import dataclasses

        emit_json(dataclasses.asdict(summary))
        return
    console.print(
        f"{summary.total} runs in {store_path}: {summary.skipped} already finished, {summary.done} done, "
        f"{summary.diverged} diverged, {summary.failed} failed ({summary.seconds:.1f} s)"
    )


@app.command()
@user_errors
def runs(
    store: Annotated[Path, typer.Argument(help="SQLite store written by sweep.")],
    status: Annotated[Optional[str], typer.Option(help="Only runs with this status.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the runs of a store with their status and final validation accuracy."""
    from initlab.experiments.store import Store

    with Store(store, read_only=True) as opened:
        rows = opened.runs(status)
        finals = {}
        for row in rows:
            history = opened.history(row["run_id"]) if row["status"] in ("done", "diverged") else {}
            finals[row["run_id"]] = (history.get("val_accuracy") or [None])[-1]
    if as_json:
        emit_json([row | {"final_val_accuracy": finals[row["run_id"]]} for row in rows])
        return
    # The columns that tell rows apart: every config field that varies in this store (seed apart).
    configs = [row["config"] or {} for row in rows]
    fields = list(dict.fromkeys(name for config in configs for name in config if name != "seed"))
    varying = [name for name in fields if len({json.dumps(c.get(name), sort_keys=True) for c in configs}) > 1]
    varying = varying or ["kernel_initializer"]
    table = new_table(
        f"{len(rows)} runs in {store}",
        [("run", "right"), ("status", "left"), *[(_SHORT.get(n, n), "left") for n in varying], ("seed", "right"),
         ("val acc", "right")],
    )
    for row, config in zip(rows, configs):
        final = finals[row["run_id"]]
        cells = [escape(_cell(name, config.get(name))) for name in varying]
        table.add_row(str(row["run_id"]), row["status"], *cells, str(config.get("seed", "")),
                      "" if final is None else f"{final:.4f}")
    console.print(table)


_SHORT = {"kernel_initializer": "initializer", "bias_initializer": "bias", "hidden_units": "hidden"}
_LOSSES = {"mean_squared_error": "mse", "categorical_crossentropy": "cross-entropy"}


def _cell(name: str, value: Any) -> str:
    """A config value as short as it can be and still say what it is (the JSON output has it whole)."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if value is None:
        return ""
    if name == "loss":
        return _LOSSES.get(value, value)
    if name == "optimizer":
        return str(value).replace("learning_rate=", "lr ").replace("(", " ").replace(")", "").replace(", ", " ")
    return str(value)


@app.command()
@user_errors
def export(
    store: Annotated[Path, typer.Argument(help="SQLite store written by sweep.")],
    format: Annotated[
        str, typer.Option("--format", help="csv, json, parquet (needs pyarrow), tensorboard (event files, a folder per run) "
                          "or mlflow (runs in an MLflow tracking folder).")
    ] = "csv",
    out: Annotated[
        Optional[Path], typer.Option("-o", "--out", help="Destination folder (a file for json; default: beside the store).")
    ] = None,
) -> None:
    """Write a store's runs and tidy metrics out as CSV, JSON or parquet, or to TensorBoard or MLflow.

    TensorBoard: ``tensorboard --logdir OUT``. MLflow: ``mlflow ui --backend-store-uri OUT``.
    """
    from initlab.experiments.store import Store

    destination = out if out is not None else store.with_name(store.stem + {"json": "-export.json", "tensorboard": "-tensorboard", "mlflow": "-mlruns"}.get(format, "-export"))
    with Store(store, read_only=True) as opened:
        path = opened.export(destination, format)
    written(path)
