"""The ``initlab`` command line: thin over the Python API, one function per command.

Nothing heavy is imported at module level: ``initlab --help`` and ``initlab list`` answer
without importing JAX. A user's mistake ends in one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from initlab.errors import InitlabError

app = typer.Typer(
    help="initlab: a laboratory for neural-network weight initialization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def user_errors(command: Any) -> Any:
    """Turn an :class:`InitlabError` into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InitlabError as error:
            err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=float) + "\n")


FAMILIES = ("initializers", "activations", "optimizers", "losses", "datasets")


def _registries(family: str) -> list[Any]:
    if family == "initializers":
        from initlab.initializers import initializers

        return [initializers]
    if family == "activations":
        from initlab.activations import activations

        return [activations]
    if family == "optimizers":
        from initlab.optimizers import optimizers

        return [optimizers]
    if family == "losses":
        from initlab.losses import losses

        return [losses]
    from initlab.data import datasets, inputs

    return [datasets, inputs]


@app.command("list")
@user_errors
def list_command(
    family: Annotated[str, typer.Argument(help="initializers, activations, optimizers, losses or datasets.")],
    compare: Annotated[
        bool, typer.Option("--compare", help="initializers: distribution, bounds and std for one layer, all frameworks.")
    ] = False,
    fan_in: Annotated[int, typer.Option("--fan-in", help="With --compare: the layer's inputs.")] = 784,
    fan_out: Annotated[int, typer.Option("--fan-out", help="With --compare: the layer's outputs.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the registered initializers, activations, optimizers, losses or datasets, with defaults."""
    if family not in FAMILIES:
        from initlab.errors import unknown

        raise unknown("list", family, FAMILIES)
    if compare:
        if family != "initializers":
            raise InitlabError("--compare applies to: initlab list initializers")
        _compare_initializers(fan_in, fan_out, as_json)
        return
    rows = [
        {
            "name": entry.name,
            "kind": registry.kind,
            "aliases": list(entry.aliases),
            "defaults": entry.defaults,
            "signature": entry.signature_text,
            "summary": entry.summary.replace("``", ""),
        }
        for registry in _registries(family)
        for entry in registry
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"initlab {family}", title_justify="left", header_style="bold", expand=True)
    table.add_column("spec (defaults)", style="cyan", overflow="fold", ratio=2)
    if family == "datasets":
        table.add_column("kind", ratio=1)
    table.add_column("description", ratio=3)
    for row in rows:
        cells = [escape(row["signature"])] + ([row["kind"]] if family == "datasets" else []) + [escape(row["summary"])]
        table.add_row(*cells)
    console.print(table)


def _compare_initializers(fan_in: int, fan_out: int, as_json: bool) -> None:
    from initlab.initializer_table import compare_table

    if fan_in <= 0 or fan_out <= 0:
        raise InitlabError(f"--fan-in and --fan-out must be positive, got {fan_in} and {fan_out}")
    rows = compare_table(fan_in, fan_out)
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"every initializer's defaults for a Dense kernel ({fan_in}, {fan_out})", title_justify="left")
    for column, justify in (("name", "left"), ("framework", "left"), ("distribution", "left"), ("low", "right"),
                            ("high", "right"), ("std", "right")):
        table.add_column(column, justify=justify, style="cyan" if column == "name" else None)

    def number(value: Any) -> str:
        return "" if value is None else f"{value:.4g}"

    for row in rows:
        table.add_row(escape(row["name"]), row["framework"], str(row["distribution"] or ""), number(row["low"]),
                      number(row["high"]), number(row["std"]))
    console.print(table)


def _ascii_histogram(edges: list[float], counts: list[int], width: int = 40, rows: int = 20) -> str:
    import numpy as np

    counts_array = np.asarray(counts)
    groups = np.array_split(np.arange(len(counts_array)), min(rows, len(counts_array)))
    total = max(counts_array.sum(), 1)
    lines = []
    biggest = max(counts_array[g].sum() for g in groups) or 1
    for group in groups:
        share = counts_array[group].sum()
        bar = "█" * int(round(width * share / biggest))
        lines.append(f"{edges[group[0]]:7.3f} .. {edges[group[-1] + 1]:7.3f} | {bar} {share / total:6.1%}")
    return "\n".join(lines)


@app.command()
@user_errors
def saturation(
    init: Annotated[str, typer.Option("--init", help="Kernel initializer spec.")] = "RandomNormal(stddev=1.0)",
    units: Annotated[int, typer.Option(help="Units of the layer.")] = 256,
    input_dim: Annotated[int, typer.Option("--input-dim", help="Inputs to the layer.")] = 784,
    inputs: Annotated[str, typer.Option(help="Input source spec: uniform, normal, mnist.")] = "uniform",
    activation: Annotated[str, typer.Option(help="Activation spec.")] = "sigmoid",
    bias_init: Annotated[str, typer.Option("--bias-init", help="Bias initializer spec.")] = "zeros",
    draws: Annotated[int, typer.Option(help="Independent draws of weights and input.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    low: Annotated[Optional[float], typer.Option(help="Saturated below this output (default: range low + 0.1).")] = None,
    high: Annotated[Optional[float], typer.Option(help="Saturated above this output (default: range high - 0.1).")] = None,
    bins: Annotated[int, typer.Option(help="Histogram bins.")] = 50,
    plot: Annotated[Optional[Path], typer.Option(help="Write the histogram to this PNG/SVG/PDF.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Part A: saturation of one freshly initialized layer, measured and predicted."""
    from initlab.layer_saturation import saturation as run_saturation

    result = run_saturation(
        init, units=units, input_dim=input_dim, inputs=inputs, activation=activation, bias_initializer=bias_init,
        draws=draws, seed=seed, low=low, high=high, bins=bins,
    )
    if plot is not None:
        from initlab.plots import SaturationDisplay, save

        save(SaturationDisplay.from_result(result).plot().figure_, plot)
    if as_json:
        emit_json(result.to_dict() | ({"plot": str(plot)} if plot else {}))
        return
    console.print(
        f"[bold]{result.initializer}[/] -> Dense({result.units}) on {result.input_dim} {result.inputs} inputs "
        f"-> {result.activation}, {result.draws} draws, seed {result.seed}"
    )
    console.print(_ascii_histogram(result.histogram["edges"], result.histogram["counts"]), highlight=False)
    console.print(
        f"saturated (output < {result.low:g} or > {result.high:g}): "
        f"[bold]{result.saturation_fraction:.2%}[/] measured (± {result.saturation_fraction_se:.2%} s.e.), "
        f"[bold]{result.predicted_saturation_fraction:.2%}[/] predicted "
        f"(low {result.low_fraction:.2%}, high {result.high_fraction:.2%}); "
        f"pre-activation std {result.preactivation_std:.3g} measured, {result.predicted_preactivation_std:.3g} predicted"
    )
    if plot is not None:
        console.print(f"histogram written to {plot}")


def _layer_overrides(values: list[str]) -> tuple[tuple[int, str], ...]:
    pairs = []
    for value in values:
        number, sep, spec = value.partition("=")
        if not sep or not number.strip().isdigit():
            raise InitlabError(f"--layer-init expects LAYER=SPEC (e.g. 2=he_normal), got '{value}'")
        pairs.append((int(number), spec.strip()))
    return tuple(pairs)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; ranges and lists may mix."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            low, sep, high = part.partition("-")
            if sep and int(high) < int(low):
                raise ValueError(part)
            seeds.extend(range(int(low), int(high) + 1) if sep else [int(low)])
    except ValueError:
        raise InitlabError(f"--seeds expects integers and ranges such as 0-4 or 0,2,5, got '{text}'") from None
    if not seeds or any(s < 0 for s in seeds):
        raise InitlabError(f"--seeds expects non-negative integers such as 0-4, got '{text}'")
    return list(dict.fromkeys(seeds))


@app.command()
@user_errors
def train(
    dataset: Annotated[str, typer.Option(help="Data set (initlab list datasets).")] = "mnist",
    data_file: Annotated[Optional[Path], typer.Option("--data-file", help=".npz with Keras's mnist keys.")] = None,
    hidden: Annotated[str, typer.Option(help="Hidden layer sizes, comma-separated (e.g. 256,128).")] = "64",
    activation: Annotated[str, typer.Option(help="Hidden activation spec.")] = "sigmoid",
    init: Annotated[
        Optional[list[str]],
        typer.Option("--init", help="Hidden kernels' initializer spec; repeat to compare several in one ensemble."),
    ] = None,
    bias_init: Annotated[str, typer.Option("--bias-init", help="Hidden biases' initializer spec.")] = "zeros",
    output_activation: Annotated[str, typer.Option("--output-activation")] = "softmax",
    output_init: Annotated[str, typer.Option("--output-init", help="Output kernel initializer spec.")] = "glorot_uniform",
    layer_init: Annotated[
        Optional[list[str]], typer.Option("--layer-init", help="Override one layer: N=SPEC (1-based, repeatable).")
    ] = None,
    loss: Annotated[str, typer.Option(help="Loss: mean_squared_error, categorical_crossentropy.")] = "mean_squared_error",
    optimizer: Annotated[str, typer.Option(help="Optimizer spec.")] = "sgd(learning_rate=0.01)",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    epochs: Annotated[int, typer.Option()] = 20,
    seed: Annotated[int, typer.Option(help="Random seed of a single run.")] = 0,
    seeds: Annotated[Optional[str], typer.Option(help="Several seeds, e.g. 0-4 or 0,2,5: one run each.")] = None,
    probe: Annotated[bool, typer.Option("--probe", help="Per-layer statistics at init and after every epoch.")] = False,
    probe_every: Annotated[int, typer.Option("--probe-every", help="With --probe: every N epochs.")] = 1,
    memory_budget: Annotated[
        Optional[float], typer.Option("--memory-budget", help="MiB for one ensemble chunk (default: half the free memory).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write history (JSON, CSV) and learning curves (PNG) here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Part B: train MLPs with Keras's semantics (defaults: the tutorial's MNIST network).

    Several --init and --seeds train every combination at once, as one vmapped ensemble, and
    print a comparison table.
    """
    try:
        hidden_units = tuple(int(h) for h in hidden.split(",") if h.strip())
    except ValueError:
        raise InitlabError(f"--hidden expects comma-separated integers such as 64 or 256,128, got '{hidden}'") from None
    if memory_budget is not None and memory_budget <= 0:
        raise InitlabError(f"--memory-budget must be positive (MiB), got {memory_budget}")

    import dataclasses

    from initlab.config import TrainConfig

    base = TrainConfig(
        dataset=dataset, data_file=None if data_file is None else str(data_file), hidden_units=hidden_units,
        activation=activation, kernel_initializer=(init or ["RandomNormal()"])[0], bias_initializer=bias_init,
        output_activation=output_activation, output_kernel_initializer=output_init,
        layer_kernel_initializers=_layer_overrides(layer_init or []), loss=loss, optimizer=optimizer,
        batch_size=batch_size, epochs=epochs, seed=seed, probe_every=probe_every if probe else 0,
    )
    seed_list = parse_seeds(seeds) if seeds is not None else [seed]
    configs = [
        dataclasses.replace(base, kernel_initializer=spec, seed=s)
        for spec in dict.fromkeys(init or [base.kernel_initializer])
        for s in seed_list
    ]
    if len(configs) == 1:
        _train_one(configs[0], out, as_json)
    else:
        budget = None if memory_budget is None else int(memory_budget * 2**20)
        _train_ensemble(configs, out, as_json, budget)


def _progress(label: str, unit: str, disable: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=True,
        disable=disable,
    )


def _train_one(config: Any, out: Optional[Path], as_json: bool) -> None:
    from initlab.data import load
    from initlab.training import HISTORY_KEYS
    from initlab.training import train as run_training

    dataset = load(config.dataset, config.data_file)  # a bad data file fails before the progress bar
    progress = _progress("training", "epochs", as_json)

    def report(epoch: int, metrics: dict[str, float]) -> None:
        progress.advance(task)
        if not as_json:
            console.print(
                f"Epoch {epoch}/{config.epochs} - " + " - ".join(f"{k}: {metrics[k]:.4f}" for k in HISTORY_KEYS),
                highlight=False,
                soft_wrap=True,
            )

    with progress:
        task = progress.add_task("train", total=config.epochs)
        result = run_training(config, callback=report, dataset=dataset)
    if out is not None:
        _write_training_outputs([result], out)
    if as_json:
        emit_json(result.to_dict() | ({"out": str(out)} if out else {}))
        return
    if result.diverged_epoch is not None:
        err_console.print(
            f"[bold yellow]warning:[/] the loss diverged (NaN or inf) at epoch {result.diverged_epoch}; training stopped there"
        )
    console.print(
        f"final val_accuracy {result.history['val_accuracy'][-1]:.4f}; "
        f"compile {result.timings['compile_s']:.2f} s, training {result.timings['train_s']:.2f} s"
    )
    if out is not None:
        console.print(f"history and learning curves written to {out}")


def summarize(results: list[Any]) -> list[dict[str, Any]]:
    """Final metrics per initializer: mean and std over seeds, best first."""
    import numpy as np

    groups: dict[str, list[Any]] = {}
    for result in results:
        groups.setdefault(result.config.kernel_initializer, []).append(result)
    rows = []
    for spec, members in groups.items():
        finals = np.array([m.history["val_accuracy"][-1] if m.diverged_epoch is None else np.nan for m in members])
        losses = np.array([m.history["val_loss"][-1] if m.diverged_epoch is None else np.nan for m in members])
        ok = ~np.isnan(finals)
        rows.append(
            {
                "initializer": spec,
                "runs": len(members),
                "diverged": int((~ok).sum()),
                "val_accuracy_mean": float(finals[ok].mean()) if ok.any() else None,
                "val_accuracy_std": float(finals[ok].std(ddof=1)) if ok.sum() > 1 else None,
                "val_loss_mean": float(losses[ok].mean()) if ok.any() else None,
            }
        )
    return sorted(rows, key=lambda r: -(r["val_accuracy_mean"] if r["val_accuracy_mean"] is not None else -1))


def _train_ensemble(configs: list[Any], out: Optional[Path], as_json: bool, memory_budget: Optional[int]) -> None:
    from initlab.data import load
    from initlab.ensembles import train_many

    dataset = load(configs[0].dataset, configs[0].data_file)  # a bad data file fails before the progress bar
    progress = _progress(f"training {len(configs)} models", "epochs", as_json)
    epochs = configs[0].epochs
    with progress:
        task = progress.add_task("train", total=epochs)
        results = train_many(
            configs,
            dataset=dataset,
            memory_budget=memory_budget,
            callback=lambda epoch, metrics: progress.update(task, completed=epoch),
        )
    rows = summarize(results)
    if out is not None:
        _write_training_outputs(results, out)
    if as_json:
        emit_json({"runs": [r.to_dict() for r in results], "summary": rows} | ({"out": str(out)} if out else {}))
        return
    table = Table(title=f"final val_accuracy after {epochs} epochs (mean ± std over seeds)", title_justify="left")
    table.add_column("initializer", style="cyan")
    table.add_column("runs", justify="right")
    table.add_column("val_accuracy", justify="right")
    table.add_column("val_loss", justify="right")
    for row in rows:
        mean, std = row["val_accuracy_mean"], row["val_accuracy_std"]
        accuracy = "diverged" if mean is None else f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")
        runs = f"{row['runs']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        table.add_row(row["initializer"], runs, accuracy, "" if row["val_loss_mean"] is None else f"{row['val_loss_mean']:.4f}")
    console.print(table)
    seconds = sum(r.timings["train_s"] for r in {id(r.timings): r for r in results}.values())
    console.print(f"{len(results)} models trained together in {seconds:.1f} s ({seconds / len(results):.2f} s per model)")
    if out is not None:
        console.print(f"histories and learning curves written to {out}")


def _write_training_outputs(results: list[Any], out: Path) -> None:
    """history.json and history.csv (one run: Keras's layout; several: a run column too), curves PNG."""
    import csv

    from initlab.plots import LearningCurveDisplay, save

    out.mkdir(parents=True, exist_ok=True)
    if any(result.probes for result in results):
        with (out / "probes.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["run", "initializer", "seed", "epoch", "layer", "statistic", "value"])
            for number, result in enumerate(results):
                for row in result.probe_rows():
                    writer.writerow([number, result.config.kernel_initializer, result.config.seed, *row])
    single = len(results) == 1
    document = results[0].to_dict() if single else {"runs": [r.to_dict() for r in results]}
    (out / "history.json").write_text(json.dumps(document, indent=2) + "\n")
    keys = list(results[0].history)
    with (out / "history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(([] if single else ["run", "initializer", "seed"]) + ["epoch", *keys])
        for number, result in enumerate(results):
            prefix = [] if single else [number, result.config.kernel_initializer, result.config.seed]
            for index in range(len(result.history[keys[0]])):
                writer.writerow(prefix + [index + 1, *(result.history[k][index] for k in keys)])
    curves: dict[str, list[Any]] = {}
    for result in results:
        curves.setdefault(result.config.kernel_initializer, []).append(result.history)
    save(LearningCurveDisplay(curves).plot().figure_, out / "learning_curves.png")


@app.command()
@user_errors
def sweep(
    file: Annotated[Path, typer.Argument(help="Sweep file (TOML): [base], [grid], [[zip]].")],
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
    from initlab.executors import run_configs
    from initlab.sweeps import load_sweep

    plan = load_sweep(file)
    configs = plan.expand()
    store_path = store if store is not None else file.with_suffix(".sqlite")
    if memory_budget is not None and memory_budget <= 0:
        raise InitlabError(f"--memory-budget must be positive (MiB), got {memory_budget}")
    progress = _progress(f"sweep {plan.name}", "runs", as_json)
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
    from initlab.store import Store

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
    from initlab.store import Store

    if not store.is_file():
        raise InitlabError(f"store not found: {store}")
    destination = out if out is not None else store.with_name(store.stem + ("-export.json" if format == "json" else "-export"))
    with Store(store) as opened:
        written = opened.export(destination, format)
    console.print(f"written {written}")


@app.command()
@user_errors
def propagate(
    init: Annotated[Optional[list[str]], typer.Option("--init", help="Initializer spec; repeat to compare.")] = None,
    depth: Annotated[int, typer.Option(help="Hidden layers.")] = 10,
    width: Annotated[int, typer.Option(help="Units per hidden layer.")] = 512,
    activation: Annotated[str, typer.Option(help="Hidden activation spec.")] = "tanh",
    inputs: Annotated[str, typer.Option(help="Input source: mnist, uniform, normal.")] = "mnist",
    batch: Annotated[int, typer.Option(help="Inputs propagated.")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    bias_init: Annotated[str, typer.Option("--bias-init")] = "zeros",
    plot: Annotated[Optional[Path], typer.Option(help="Variance vs depth (with theory) to PNG/SVG/PDF.")] = None,
    histograms: Annotated[Optional[Path], typer.Option(help="Per-layer histograms (activations) to PNG/SVG/PDF.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A deep MLP at initialization: forward and backward statistics per layer, theory beside them."""
    from initlab.propagation import predicted_preactivation_variance
    from initlab.propagation import propagate as run_propagate

    with _progress("propagating", "initializers", as_json) as progress:
        task = progress.add_task("propagate", total=None)
        result = run_propagate(
            init or ["standard_uniform", "glorot_uniform"], depth=depth, width=width,
            activation=activation, inputs=inputs, batch=batch, seed=seed, bias_initializer=bias_init,
        )
        progress.update(task, completed=1, total=1)
    theory = predicted_preactivation_variance(result)
    if plot is not None:
        from initlab.plots import save
        from initlab.propagation import PropagationDisplay

        save(PropagationDisplay.from_result(result, theory_forward=theory).plot().figure_, plot)
    if histograms is not None:
        from initlab.plots import save
        from initlab.propagation import LayerHistogramsDisplay

        save(LayerHistogramsDisplay.from_result(result).plot().figure_, histograms)
    if as_json:
        emit_json(result.to_dict() | {"predicted_preactivation_variance": theory})
        return
    table = Table(
        title=f"{result.activation}, {result.depth} x {result.width}, {result.inputs} inputs (q0 = {result.q0:.4g})",
        title_justify="left",
    )
    table.add_column("initializer", style="cyan")
    table.add_column("layer", justify="right")
    table.add_column("Var z (measured)", justify="right")
    table.add_column("Var z (theory)", justify="right")
    table.add_column("Var dL/dz", justify="right")
    table.add_column("saturated", justify="right")
    for run in result.runs:
        for layer in range(result.depth):
            saturated = "" if run.saturation_fraction is None else f"{run.saturation_fraction[layer]:.1%}"
            table.add_row(
                escape(run.initializer) if layer == 0 else "", str(layer + 1), f"{run.preactivation_variance[layer]:.4g}",
                f"{theory[run.initializer][layer]:.4g}", f"{run.gradient_variance[layer]:.4g}", saturated,
            )
    console.print(table)
    for path in (plot, histograms):
        if path is not None:
            console.print(f"written {path}")


@app.command()
@user_errors
def isometry(
    init: Annotated[Optional[list[str]], typer.Option("--init", help="Initializer spec; repeat to compare.")] = None,
    depth: Annotated[int, typer.Option(help="Hidden layers.")] = 10,
    width: Annotated[int, typer.Option(help="Units per layer.")] = 256,
    activation: Annotated[str, typer.Option(help="Activation spec.")] = "linear",
    samples: Annotated[int, typer.Option(help="Input vectors (one Jacobian each).")] = 1,
    seed: Annotated[int, typer.Option()] = 0,
    plot: Annotated[Optional[Path], typer.Option(help="Histogram of singular values to PNG/SVG/PDF.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Dynamical isometry: singular values of the input-output Jacobian at initialization."""
    import numpy as np

    from initlab.propagation import IsometryDisplay, jacobian_singular_values

    results = [
        jacobian_singular_values(spec, depth=depth, width=width, activation=activation, samples=samples, seed=seed)
        for spec in (init or ["orthogonal", "random_normal(stddev=0.0625)"])
    ]
    if plot is not None:
        from initlab.plots import save

        save(IsometryDisplay.from_results(*results).plot().figure_, plot)
    if as_json:
        emit_json([result.to_dict() for result in results])
        return
    table = Table(title=f"Jacobian singular values, {activation}, depth {depth}, width {width}", title_justify="left")
    for column in ("initializer", "min", "median", "max", "mean square", "spread"):
        table.add_column(column, justify="left" if column == "initializer" else "right")
    for result in results:
        values = result.singular_values.ravel()
        table.add_row(escape(result.initializer), f"{values.min():.4g}", f"{float(np.median(values)):.4g}",
                      f"{values.max():.4g}", f"{result.mean_squared:.4g}", f"{result.spread:.4g}")
    console.print(table)
    if plot is not None:
        console.print(f"histogram written to {plot}")


@app.command()
@user_errors
def theory(
    activation: Annotated[str, typer.Option(help="Activation spec.")] = "tanh",
    sigma_w2: Annotated[Optional[float], typer.Option("--sigma-w2", help="Weight variance x fan-in.")] = None,
    sigma_b2: Annotated[float, typer.Option("--sigma-b2", help="Bias variance.")] = 0.0,
    init: Annotated[
        Optional[list[str]], typer.Option("--init", help="Where does this initializer put the network? (repeatable)")
    ] = None,
    fan_in: Annotated[int, typer.Option("--fan-in")] = 512,
    fan_out: Annotated[int, typer.Option("--fan-out")] = 512,
    bias_init: Annotated[str, typer.Option("--bias-init")] = "zeros",
    critical: Annotated[bool, typer.Option("--critical", help="Also the critical sigma_w2 for --sigma-b2.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Phase diagram (xi_c contours, chi1 = 1 line) to PNG/SVG/PDF.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Mean-field theory: q*, c*, chi1, depth scales, the order-to-chaos boundary, the phase diagram."""
    from initlab import theory as mean_field

    points = {}
    for spec in init or []:
        point = mean_field.initializer_point(spec, fan_in, fan_out, bias_init)
        points[point.kernel] = point
    analyses = [
        (name, point.to_dict(), mean_field.analyze(activation, point.sigma_w2, point.sigma_b2))
        for name, point in points.items()
    ]
    if sigma_w2 is not None or not points:
        analyses.insert(0, (f"sigma_w2={sigma_w2 if sigma_w2 is not None else 1.0:g}", None,
                            mean_field.analyze(activation, 1.0 if sigma_w2 is None else sigma_w2, sigma_b2)))
    critical_value = mean_field.critical_sigma_w2(sigma_b2, activation) if critical else None
    if plot is not None:
        from initlab.plots import save

        display = mean_field.PhaseDiagramDisplay.from_activation(activation)
        save(display.plot(points={name: (p.sigma_w2, p.sigma_b2) for name, p in points.items()}).figure_, plot)
    if as_json:
        payload: dict[str, Any] = {"results": [analysis.to_dict() | ({"initializer": point} if point else {})
                                               for _, point, analysis in analyses]}
        if len(analyses) == 1:
            payload |= analyses[0][2].to_dict()
        if critical_value is not None:
            payload["critical_sigma_w2"] = critical_value
        emit_json(payload)
        return
    table = Table(title=f"mean-field theory for {activation}", title_justify="left")
    for column in ("point", "sigma_w2", "sigma_b2", "q*", "c*", "chi1", "xi_q", "xi_c", "phase"):
        table.add_column(column, justify="left" if column in ("point", "phase") else "right")

    def number(value: float) -> str:
        return f"{value:.4g}"

    for name, _, analysis in analyses:
        table.add_row(escape(name), number(analysis.sigma_w2), number(analysis.sigma_b2), number(analysis.q_star),
                      number(analysis.c_star), number(analysis.chi1), number(analysis.xi_q), number(analysis.xi_c),
                      analysis.phase)
    console.print(table)
    if critical_value is not None:
        console.print(f"critical sigma_w2 at sigma_b2 = {sigma_b2:g}: {critical_value:.6g}")
    if plot is not None:
        console.print(f"phase diagram written to {plot}")


@app.command()
@user_errors
def report(
    store: Annotated[Path, typer.Argument(help="SQLite store written by sweep or reproduce.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for report.html.")] = Path("initlab-report"),
    title: Annotated[Optional[str], typer.Option(help="Report title.")] = None,
    notes: Annotated[Optional[Path], typer.Option(help="A text file of conclusions to include (yours).")] = None,
    theory: Annotated[Optional[Path], typer.Option(help="JSON of theory predictions per run or label.")] = None,
) -> None:
    """One self-contained HTML report of a store: summary, curves with seed bands, layers, configs."""
    from initlab.report import build_report

    if not store.is_file():
        raise InitlabError(f"store not found: {store}")
    if notes is not None and not notes.is_file():
        raise InitlabError(f"notes file not found: {notes}")
    with _progress("writing the report", "", False) as progress:
        progress.add_task("report", total=None)
        path = build_report(store, out, title=title, theory=theory,
                            notes=None if notes is None else notes.read_text())
    console.print(f"report written to {path}")


PLOTS = ("curves", "saturation", "dead", "histograms", "gradients")


@app.command()
@user_errors
def plot(
    kind: Annotated[str, typer.Argument(help="curves, saturation, dead, histograms or gradients.")],
    store: Annotated[Path, typer.Argument(help="SQLite store.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Figure file: .png, .svg or .pdf.")] = Path("figure.png"),
    label: Annotated[Optional[str], typer.Option(help="histograms: the configuration to show.")] = None,
    histogram: Annotated[str, typer.Option(help="histograms: activation, preactivation or backprop.")] = "activation",
) -> None:
    """Write one figure of a store's results (figures read results only; nothing is re-run)."""
    from initlab import figures
    from initlab.report import write_figure

    if kind not in PLOTS:
        from initlab.errors import unknown

        raise unknown("plot", kind, PLOTS)
    if not store.is_file():
        raise InitlabError(f"store not found: {store}")
    if kind == "curves":
        display = figures.SeedBandCurvesDisplay.from_results(store)
    elif kind in ("saturation", "dead"):
        display = figures.SaturationOverEpochsDisplay.from_results(store, f"{kind}_fraction")
    elif kind == "histograms":
        display = figures.LayerHistogramGridDisplay.from_results(store, label, histogram)
    else:
        display = figures.GradientVarianceByDepthDisplay.from_results(store)
    console.print(f"written {write_figure(display, out)}")


@app.command()
@user_errors
def reproduce(
    what: Annotated[str, typer.Argument(help="What to reproduce: seed (the Keras tutorial).")] = "seed",
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("initlab-out"),
    seeds: Annotated[str, typer.Option(help="Seeds of every configuration, e.g. 0-2.")] = "0-2",
    epochs: Annotated[int, typer.Option(help="Epochs of Part B and the ablation.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The main job: the tutorial's Part A and Part B, the initializer panel, the ablation, a report."""
    if what != "seed":
        from initlab.errors import unknown

        raise unknown("experiment", what, ["seed"])
    if epochs <= 0:
        raise InitlabError(f"--epochs must be a positive integer, got {epochs}")
    from initlab.reproduce import reproduce_seed

    with _progress("reproducing", "", as_json) as progress:
        tasks: dict[str, Any] = {}

        def report_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total, description=stage)

        result = reproduce_seed(out, seeds=parse_seeds(seeds), epochs=epochs, progress=report_progress)
    if as_json:
        emit_json(result)
        return
    for note in result["conclusions"]:
        console.print(escape(note), highlight=False)
    console.print(f"\n{result['runs']} runs in {result['seconds']:.0f} s; everything is in [bold]{escape(result['out'])}[/]")
    console.print(f"open {escape(result['report'])}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
