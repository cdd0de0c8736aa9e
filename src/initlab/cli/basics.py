"""Part A, Part B and the registries: ``initlab list``, ``saturation`` and ``train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from initlab.checks import memory_budget_bytes, parse_sizes, positive_int
from initlab.cli._app import (
    app,
    configure_process,
    console,
    emit_json,
    err_console,
    new_table,
    parse_seeds,
    progress_bar,
    user_errors,
    written,
)
from initlab.errors import InitlabError, shown
from initlab.files import output_file, output_folder

FAMILIES = ("initializers", "activations", "optimizers", "losses", "datasets", "models")


def _registries(family: str) -> list[Any]:
    if family == "initializers":
        from initlab.initializers import initializers

        return [initializers]
    if family == "activations":
        from initlab.nn.activations import activations

        return [activations]
    if family == "optimizers":
        from initlab.nn.optimizers import optimizers

        return [optimizers]
    if family == "losses":
        from initlab.nn.losses import losses

        return [losses]
    if family == "models":
        from initlab.nn.model_specs import models

        return [models]
    from initlab.data import datasets, inputs

    return [datasets, inputs]


@app.command("list")
@user_errors
def list_command(
    family: Annotated[str, typer.Argument(help="initializers, activations, optimizers, losses, datasets or models.")],
    compare: Annotated[
        bool, typer.Option("--compare", help="initializers: distribution, bounds and std for one layer, all frameworks.")
    ] = False,
    fan_in: Annotated[int, typer.Option("--fan-in", help="With --compare: the layer's inputs.")] = 784,
    fan_out: Annotated[int, typer.Option("--fan-out", help="With --compare: the layer's outputs.")] = 64,
    shape: Annotated[
        Optional[str],
        typer.Option(metavar="SHAPE", help="With --compare: a whole kernel shape instead of the fans, e.g. 3x3x16x32 "
                     "(convolution, channels last) or 1000x64 (embedding table)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the registered initializers, activations, optimizers, losses, datasets or models, with defaults."""
    if family not in FAMILIES:
        from initlab.errors import unknown

        raise unknown("list", family, FAMILIES)
    if compare:
        if family != "initializers":
            raise InitlabError("--compare applies to: initlab list initializers")
        _compare_initializers(fan_in, fan_out, shape, as_json)
        return
    if shape is not None:
        raise InitlabError("--shape applies to: initlab list initializers --compare")
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


def _compare_initializers(fan_in: int, fan_out: int, shape_text: Optional[str], as_json: bool) -> None:
    from initlab.checks import MAX_UNITS
    from initlab.initializers.table import compare_table

    positive_int("--fan-in", fan_in, maximum=MAX_UNITS)
    positive_int("--fan-out", fan_out, maximum=MAX_UNITS)
    shape = None
    if shape_text is not None:
        parts = shape_text.lower().replace(",", "x").split("x")
        if not all(part.strip().isdigit() and 0 < int(part) <= MAX_UNITS for part in parts) or len(parts) > 5:
            raise InitlabError(f"--shape expects up to 5 sizes such as 3x3x16x32, each in [1, {MAX_UNITS}], got '{shown(shape_text)}'")
        shape = tuple(int(part) for part in parts)
    rows = compare_table(fan_in, fan_out, shape)
    if as_json:
        emit_json(rows)
        return
    table = new_table(
        f"every initializer's defaults for a Dense kernel ({fan_in}, {fan_out})" if shape is None else
        f"every initializer's defaults for a kernel of shape {'x'.join(map(str, shape))}",
        [("name", "left"), ("framework", "left"), ("distribution", "left"), ("low", "right"), ("high", "right"),
         ("std", "right")],
    )

    def number(value: Any) -> str:
        return "" if value is None else f"{value:.4g}"

    for row in rows:
        table.add_row(escape(row["name"]), row["framework"], str(row["distribution"] or ""), number(row["low"]),
                      number(row["high"]), number(row["std"]))
    console.print(table)


def _ascii_histogram(edges: list[float], counts: list[int], width: int = 40, rows: int = 25) -> str:
    """One line per group of bins, every group of equal width (the most groups that divide the bins)."""
    import numpy as np

    counts_array = np.asarray(counts)
    groups_count = max(d for d in range(1, min(rows, len(counts_array)) + 1) if len(counts_array) % d == 0)
    if groups_count < 8 and len(counts_array) <= 100:  # a prime number of bins, say: one line each
        groups_count = len(counts_array)
    groups = np.split(np.arange(len(counts_array)), groups_count)
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
    """How saturated one freshly initialized layer is, measured and predicted (the tutorial's first lesson)."""
    if plot is not None:
        from initlab.viz.plots import FIGURE_FORMATS

        output_file(plot, extensions=FIGURE_FORMATS, what="figure")
    configure_process()
    from initlab.measure.saturation import CLT_FAN_IN
    from initlab.measure.saturation import saturation as run_saturation

    result = run_saturation(
        init, units=units, input_dim=input_dim, inputs=inputs, activation=activation, bias_initializer=bias_init,
        draws=draws, seed=seed, low=low, high=high, bins=bins,
    )
    if plot is not None:
        from initlab.viz.plots import SaturationDisplay, save

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
    if result.prediction == "unreliable":
        err_console.print(
            f"[bold yellow]note:[/] the prediction assumes a Gaussian pre-activation; {result.input_dim} inputs of "
            f"{result.initializer} weights are too few for that (it holds from {CLT_FAN_IN}): trust the measurement"
        )
    if plot is not None:
        written(plot, "histogram written to")


def _layer_overrides(values: list[str]) -> tuple[tuple[int, str], ...]:
    pairs = []
    for value in values:
        number, sep, spec = value.partition("=")
        if not sep or not number.strip().isdigit():
            raise InitlabError(f"--layer-init expects LAYER=SPEC (e.g. 2=he_normal), got '{shown(value)}'")
        pairs.append((int(number), spec.strip()))
    return tuple(pairs)


@app.command()
@user_errors
def train(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(help="Data set (initlab list datasets).")] = "mnist",
    model: Annotated[
        Optional[str],
        typer.Option(
            metavar="SPEC",
            help="The network as a spec (initlab list models), e.g. \"mlp(hidden=[256, 128], activation='relu')\"; "
            "instead of --hidden, --activation and --output-activation.",
        ),
    ] = None,
    data_file: Annotated[Optional[Path], typer.Option("--data-file", help=".npz with Keras's mnist keys.")] = None,
    hidden: Annotated[
        str, typer.Option(metavar="SIZES", help="Hidden layer sizes, comma-separated (e.g. 256,128; '' for none).")
    ] = "64",
    activation: Annotated[str, typer.Option(help="Hidden activation spec.")] = "sigmoid",
    init: Annotated[
        Optional[list[str]],
        typer.Option(
            "--init", show_default="RandomNormal(), Keras's stddev 0.05",
            help="Hidden kernels' initializer spec; several compare in one ensemble.",
        ),
    ] = None,
    bias_init: Annotated[str, typer.Option("--bias-init", help="Hidden biases' initializer spec.")] = "zeros",
    output_activation: Annotated[str, typer.Option("--output-activation", help="Output layer's activation spec.")] = "softmax",
    output_init: Annotated[str, typer.Option("--output-init", help="Output kernel initializer spec.")] = "glorot_uniform",
    layer_init: Annotated[
        Optional[list[str]], typer.Option("--layer-init", help="Override one layer: N=SPEC (1-based, repeatable).")
    ] = None,
    defaults: Annotated[
        Optional[str],
        typer.Option(
            "--defaults", metavar="FRAMEWORK",
            help="Give every layer a framework's default initializers: keras, torch or flax "
            "(the --init options then apply only where given).",
        ),
    ] = None,
    init_rule: Annotated[
        Optional[list[str]],
        typer.Option(
            "--init-rule", metavar="PATTERN=SPEC",
            help="Initializer of the parameters PATTERN matches: a path (Dense_0/kernel, */bias), a name (bias) "
            "or a role (input/, hidden/, output/kernel); repeatable, applied in order, the last match wins.",
        ),
    ] = None,
    loss: Annotated[str, typer.Option(help="Loss: mean_squared_error, categorical_crossentropy.")] = "mean_squared_error",
    optimizer: Annotated[str, typer.Option(help="Optimizer spec.")] = "sgd(learning_rate=0.01)",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per step (Keras's batch_size).")] = 128,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed of a single run.")] = 0,
    seeds: Annotated[Optional[str], typer.Option(help="Several seeds, e.g. 0-4 or 0,2,5: one run each.")] = None,
    probe: Annotated[bool, typer.Option("--probe", help="Per-layer statistics at init and after every epoch.")] = False,
    probe_every: Annotated[
        int, typer.Option("--probe-every", metavar="N", help="Probes every N epochs (implies --probe).")
    ] = 1,
    memory_budget: Annotated[
        Optional[float], typer.Option("--memory-budget", help="MiB for one ensemble chunk (default: half the free memory).")
    ] = None,
    matmul: Annotated[
        str,
        typer.Option(
            metavar="auto|xla|sparse",
            help="First layer's product: auto (initlab's sparse-input kernels on mostly-zero inputs), xla, sparse.",
        ),
    ] = "auto",
    parametrization: Annotated[
        str,
        typer.Option(
            metavar="sp|ntk|mup|mf",
            help="How init, forward multipliers and learning rates scale with the hidden width (needs --base-width "
            "unless sp).",
        ),
    ] = "sp",
    base_width: Annotated[
        Optional[int],
        typer.Option("--base-width", metavar="N", help="The width at which the parametrization equals sp."),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("-o", "--out", help="Write history (JSON, CSV) and learning curves (PNG) here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Train MLPs with Keras's semantics (defaults: the tutorial's 784-64-10 MNIST network).

    Several --init and --seeds train every combination at once, as one vmapped ensemble, and print a comparison table.
    """
    hidden_units = parse_sizes(hidden)
    architecture = None
    budget = memory_budget_bytes(memory_budget)

    def given(name: str) -> bool:  # (typer ships its own click: compare the source by name)
        return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"

    if seeds is not None and given("seed"):
        raise InitlabError("give --seed (one run) or --seeds (several), not both")
    if given("probe_every"):
        positive_int("--probe-every", probe_every)
        probe = True  # documented: --probe-every N implies --probe
    if out is not None:
        output_folder(out, what="training outputs")
    if model is not None:
        from initlab.nn.model_specs import models

        network = [f"--{name.replace('_', '-')}" for name in ("hidden", "activation", "output_activation") if given(name)]
        if network:
            raise InitlabError(f"--model describes the whole network: give it or {', '.join(network)}, not both")
        fields = models.build(model).config_fields()
        if "architecture" in fields:
            architecture = fields["architecture"]
        else:
            hidden_units, activation, output_activation = fields["hidden_units"], fields["activation"], fields["output_activation"]
    prefetch = _prefetch(dataset, None if data_file is None else str(data_file))
    configure_process()

    import dataclasses

    from initlab.training.config import TrainConfig

    base = TrainConfig(
        dataset=dataset, data_file=None if data_file is None else str(data_file), hidden_units=hidden_units,
        activation=activation, kernel_initializer=(init or ["RandomNormal()"])[0], bias_initializer=bias_init,
        output_activation=output_activation, output_kernel_initializer=output_init,
        layer_kernel_initializers=_layer_overrides(layer_init or []), loss=loss, optimizer=optimizer,
        batch_size=batch_size, epochs=epochs, seed=seed, probe_every=probe_every if probe else 0, matmul=matmul,
        defaults=defaults, init_rules=tuple(init_rule or ()), parametrization=parametrization, base_width=base_width,
        architecture=architecture,
    )
    seed_list = parse_seeds(seeds) if seeds is not None else [seed]
    configs = list(dict.fromkeys(  # he_normal and HeNormal() are one configuration: trained once
        dataclasses.replace(base, kernel_initializer=spec, seed=s)
        for spec in dict.fromkeys(init or [base.kernel_initializer])
        for s in seed_list
    ))
    prefetch.join()
    if len(configs) == 1:
        _train_one(configs[0], out, as_json)
    else:
        _train_ensemble(configs, out, as_json, budget)


def _prefetch(name: str, data_file: str | None) -> Any:
    """Start reading (and verifying) the data set in a thread, while JAX is imported and configured.

    Decompressing the shipped MNIST (~0.25 s) releases the GIL, so it overlaps with importing JAX
    on the other core. Errors are not raised here: the command's own ``load`` meets them again and
    reports them as one line (the loads are cached, so a successful one is not repeated).
    """
    import threading

    # Imported here, not in the thread: two threads initializing NumPy's C extension at once
    # (this one and JAX's import in the main thread) can fail with a circular-import error.
    from initlab.data import load

    def read() -> None:
        try:
            load(name, data_file)
        except Exception:  # noqa: BLE001  (reported by the command's own load)
            pass

    thread = threading.Thread(target=read, name="initlab-prefetch", daemon=True)
    thread.start()
    return thread


def _train_one(config: Any, out: Optional[Path], as_json: bool) -> None:
    from initlab.data import load
    from initlab.training.loop import HISTORY_KEYS
    from initlab.training.run import train as run_training

    dataset = load(config.dataset, config.data_file)  # a bad data file fails before the progress bar
    progress = progress_bar("training", "epochs", as_json)

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
        if result.diverged_epoch is not None:
            raise typer.Exit(1)
        return
    if result.diverged_epoch is not None:
        err_console.print(
            f"[bold yellow]warning:[/] the run diverged (a NaN or infinite metric) at epoch {result.diverged_epoch}; "
            "training stopped there (exit status 1)"
        )
    console.print(
        f"final val_accuracy {result.history['val_accuracy'][-1]:.4f}; "
        f"compile {result.timings['compile_s']:.2f} s, training {result.timings['train_s']:.2f} s "
        f"(first layer: {'sparse-input kernels' if result.matmul == 'sparse' else 'XLA matmul'})"
    )
    if out is not None:
        written(out, "history and learning curves written to")
    if result.diverged_epoch is not None:
        raise typer.Exit(1)


def _train_ensemble(configs: list[Any], out: Optional[Path], as_json: bool, memory_budget: Optional[int]) -> None:
    from initlab.analysis.summary import summarize, training_seconds
    from initlab.data import load
    from initlab.training.ensembles import train_many

    dataset = load(configs[0].dataset, configs[0].data_file)  # a bad data file fails before the progress bar
    progress = progress_bar(f"training {len(configs)} models", "epochs", as_json)
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
    table = new_table(
        f"final val_accuracy after {epochs} epochs (mean ± std over seeds)",
        [("initializer", "left"), ("runs", "right"), ("val_accuracy", "right"), ("val_loss", "right")],
    )
    for row in rows:
        mean, std = row["val_accuracy_mean"], row["val_accuracy_std"]
        accuracy = "diverged" if mean is None else f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")
        runs = f"{row['runs']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        table.add_row(row["initializer"], runs, accuracy, "" if row["val_loss_mean"] is None else f"{row['val_loss_mean']:.4f}")
    console.print(table)
    seconds = training_seconds(results)
    console.print(f"{len(results)} models trained together in {seconds:.1f} s ({seconds / len(results):.2f} s per model)")
    if out is not None:
        written(out, "histories and learning curves written to")


def _write_training_outputs(results: list[Any], out: Path) -> None:
    """history.json and history.csv (one run: Keras's layout; several: a run column too), curves PNG."""
    from initlab.files import staged_folder

    with staged_folder(out) as stage:
        _stage_training_outputs(results, stage)


def _stage_training_outputs(results: list[Any], stage: Any) -> None:
    import csv

    from initlab.files import json_text
    from initlab.viz.plots import LearningCurveDisplay, save

    if any(result.probes for result in results):
        with stage.path("probes.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["run", "initializer", "seed", "epoch", "layer", "statistic", "value"])
            for number, result in enumerate(results):
                for row in result.probe_rows():
                    writer.writerow([number, result.config.kernel_initializer, result.config.seed, *row])
    single = len(results) == 1
    document = results[0].to_dict() if single else {"runs": [r.to_dict() for r in results]}
    stage.path("history.json").write_text(json_text(document) + "\n")
    keys = list(results[0].history)
    with stage.path("history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(([] if single else ["run", "initializer", "seed"]) + ["epoch", *keys])
        for number, result in enumerate(results):
            prefix = [] if single else [number, result.config.kernel_initializer, result.config.seed]
            for index in range(len(result.history[keys[0]])):
                writer.writerow(prefix + [index + 1, *(result.history[k][index] for k in keys)])
    curves: dict[str, list[Any]] = {}
    for result in results:
        curves.setdefault(result.config.kernel_initializer, []).append(result.history)
    save(LearningCurveDisplay(curves).plot().figure_, stage.path("learning_curves.png"))
