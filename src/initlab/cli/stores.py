"""Many runs in a store: ``initlab sweep``, ``runs`` and ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from initlab.cli._app import app, configure_process, console, emit_json, progress_bar, user_errors
from initlab.errors import InitlabError


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

    plan = load_sweep(file)
    configs = plan.expand()
    store_path = store if store is not None else file.with_suffix(".sqlite")
    if memory_budget is not None and memory_budget <= 0:
        raise InitlabError(f"--memory-budget must be positive (MiB), got {memory_budget}")
    progress = progress_bar(f"sweep {plan.name}", "runs", as_json)
    with progress:
        task = progress.add_task("sweep", total=len(configs))
        summary = run_configs(
            configs, store_path, executor=executor, address=address,
            memory_budget=None if memory_budget is None else int(memory_budget * 2**20), max_chunk=chunk_size,
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

    if not store.is_file():
        raise InitlabError(f"store not found: {store}")
    with Store(store) as opened:
        rows = opened.runs(status)
        finals = {}
        for row in rows:
            history = opened.history(row["run_id"]) if row["status"] in ("done", "diverged") else {}
            finals[row["run_id"]] = (history.get("val_accuracy") or [None])[-1]
    if as_json:
        emit_json([row | {"final_val_accuracy": finals[row["run_id"]]} for row in rows])
        return
    table = Table(title=f"{len(rows)} runs in {store}", title_justify="left")
    for column in ("run", "status", "initializer", "seed", "optimizer", "val_accuracy"):
        table.add_column(column)
    for row in rows:
        config = row["config"]
        final = finals[row["run_id"]]
        table.add_row(
            str(row["run_id"]), row["status"], escape(config["kernel_initializer"]), str(config["seed"]),
            escape(config["optimizer"]), "" if final is None else f"{final:.4f}",
        )
    console.print(table)


@app.command()
@user_errors
def export(
    store: Annotated[Path, typer.Argument(help="SQLite store written by sweep.")],
    format: Annotated[str, typer.Option("--format", help="csv, json or parquet (needs pyarrow).")] = "csv",
    out: Annotated[Optional[Path], typer.Option(help="Destination (default: beside the store).")] = None,
) -> None:
    """Write a store's runs and tidy metrics out as CSV, JSON or parquet."""
    from initlab.experiments.store import Store

    if not store.is_file():
        raise InitlabError(f"store not found: {store}")
    destination = out if out is not None else store.with_name(store.stem + ("-export.json" if format == "json" else "-export"))
    with Store(store) as opened:
        written = opened.export(destination, format)
    console.print(f"written {written}")
