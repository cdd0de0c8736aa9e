"""Width scaling: ``initlab mup coord-check`` and ``initlab mup transfer``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from initlab.cli._app import (
    _Group,
    app,
    configure_process,
    console,
    emit_json,
    new_table,
    parse_seeds,
    progress_bar,
    user_errors,
    written,
)

mup = typer.Typer(
    cls=_Group, no_args_is_help=True, help="Width scaling: parametrizations (SP, NTK, muP, MF), the coordinate check and learning-rate transfer."
)
app.add_typer(mup, name="mup")

# Options both commands take.
Parametrizations = Annotated[
    Optional[list[str]],
    typer.Option("--parametrization", metavar="sp|ntk|mup|mf", show_default="sp and mup",
                 help="Width parametrization; several side by side."),
]  # fmt: skip
BaseWidth = Annotated[
    Optional[int], typer.Option("--base-width", help="Width at which every parametrization is the standard one.")
]
Depth = Annotated[int, typer.Option(help="Hidden layers of each width.")]
Activation = Annotated[str, typer.Option(help="Hidden activation spec.")]
Init = Annotated[str, typer.Option("--init", help="Kernel initializer spec (its law; the parametrization scales it).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Examples per step.")]
DataFile = Annotated[Optional[Path], typer.Option("--data-file", help=".npz with Keras's mnist keys.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@mup.command("coord-check")
@user_errors
def coord_check_command(
    parametrization: Parametrizations = None,
    widths: Annotated[
        str, typer.Option(metavar="WIDTHS", help="Increasing widths, e.g. 64,128,256 or a range of powers of two 64-4096.")
    ] = "64-4096",
    base_width: BaseWidth = None,
    steps: Annotated[int, typer.Option(help="Updates; coordinates are recorded before the first and after each.")] = 3,
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-2; one vmapped program per width.")] = "0-2",
    optimizer: Annotated[str, typer.Option(help="sgd or adam spec.")] = "adam(learning_rate=0.01)",
    depth: Depth = 2,
    activation: Activation = "relu",
    init: Init = "torch.linear_default",
    batch_size: BatchSize = 64,
    data_file: DataFile = None,
    plot: Annotated[Optional[Path], typer.Option(help="The check in microsoft/mup's layout, to PNG/SVG/PDF.")] = None,
    as_json: AsJson = False,
) -> None:
    """Coordinate check: every layer's mean |coordinate| against width over the first steps, and its slope."""
    from initlab.cli.inspection import _figure_paths
    from initlab.scaling.coord_check import widths_text
    from initlab.scaling.parametrizations import PARAMETRIZATIONS

    _figure_paths(plot)
    chosen = list(dict.fromkeys(parametrization or ["sp", "mup"]))
    for name in chosen:
        if name not in PARAMETRIZATIONS:
            from initlab.errors import unknown

            raise unknown("parametrization", name, PARAMETRIZATIONS)
    width_list, seed_list = widths_text(widths), parse_seeds(seeds)
    from initlab.scaling.coord_check import check_arguments, coord_check

    for name in chosen:  # every mistake is found before the first width trains
        check_arguments(
            name, widths=width_list, base_width=base_width, steps=steps, seeds=seed_list, optimizer=optimizer,
            hidden_layers=depth, activation=activation, kernel_initializer=init, batch_size=batch_size,
        )  # fmt: skip
    configure_process()

    results = []
    with progress_bar("coordinate check", "parametrizations", as_json) as progress:
        task = progress.add_task("check", total=len(chosen))
        for name in chosen:
            results.append(coord_check(
                name, widths=width_list, base_width=base_width, steps=steps, seeds=seed_list, optimizer=optimizer,
                hidden_layers=depth, activation=activation, kernel_initializer=init, batch_size=batch_size,
                data_file=None if data_file is None else str(data_file),
            ))  # fmt: skip
            progress.advance(task)
    if plot is not None:
        from initlab.viz.plots import save
        from initlab.viz.scaling import CoordCheckDisplay

        save(CoordCheckDisplay(results).plot().figure_, plot)
    if as_json:
        emit_json({"results": [result.to_dict() for result in results]} | ({"plot": str(plot)} if plot else {}))
        return
    first = results[0]
    table = new_table(
        f"slope of log2 mean |coordinate| against log2 width ({first.widths[0]}-{first.widths[-1]}, base "
        f"{first.base_width}), {first.optimizer}, {len(first.seeds)} seed(s); near 0: width-independent",
        [("parametrization", "left"), ("layer", "left"), *[(f"step {s}", "right") for s in range(first.steps + 1)]],
    )
    for result in results:
        slopes = result.slopes()
        for index, layer in enumerate(result.layers):
            table.add_row(result.parametrization if index == 0 else "", escape(layer),
                          *[f"{value:+.2f}" for value in slopes[index]])  # fmt: skip
    console.print(table)
    for result in results:
        layer, slope, step = result.worst_layer()
        verdict = "scales with width" if abs(slope) >= 0.2 else "every layer's update is width-independent"
        console.print(
            f"{result.parametrization}: the layer whose own update scales most with width is {layer} "
            f"(slope {slope:+.2f} at step {step}): {verdict}", highlight=False,
        )
    if plot is not None:
        written(plot)


@mup.command("transfer")
@user_errors
def transfer_command(
    parametrization: Parametrizations = None,
    widths: Annotated[
        str, typer.Option(metavar="WIDTHS", help="Increasing widths, e.g. 128,256,512 or a range of powers of two 128-2048.")
    ] = "128-2048",
    base_width: BaseWidth = None,
    lrs: Annotated[
        str, typer.Option("--lrs", metavar="LOW:HIGH[:STEP]", help="log2 learning rates, e.g. -14:-4 or -12,-10,-8.")
    ] = "-14:-4",
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-2: each its own draw and data order.")] = "0-2",
    optimizer: Annotated[str, typer.Option(help="sgd or adam (its other arguments kept; the grid sets the rate).")]
    = "adam",  # fmt: skip
    depth: Depth = 2,
    activation: Activation = "relu",
    init: Init = "torch.linear_default",
    examples: Annotated[int, typer.Option(help="Training examples (the first of the training set).")] = 4096,
    eval_examples: Annotated[
        int, typer.Option("--eval-examples", help="Of those, how many measure the final training loss.")
    ] = 2048,
    epochs: Annotated[int, typer.Option(help="Passes over the training examples.")] = 1,
    batch_size: BatchSize = 64,
    data_file: DataFile = None,
    memory_budget: Annotated[
        Optional[float], typer.Option("--memory-budget", help="MiB for one ensemble chunk (default: half the free memory).")
    ] = None,
    plot: Annotated[Optional[Path], typer.Option(help="The muP paper's figure (loss against log2 lr), PNG/SVG/PDF.")]
    = None,  # fmt: skip
    as_json: AsJson = False,
) -> None:
    """Learning-rate transfer: train a learning-rate grid at every width and see where the optimum goes.

    Each width's grid (learning rates x seeds) is one vmapped ensemble. Default: about 4 minutes on 2 cores and 7 GB (its widest grid; --memory-budget chunks it).
    """
    import numpy as np

    from initlab.checks import memory_budget_bytes
    from initlab.cli.inspection import _figure_paths
    from initlab.scaling.coord_check import widths_text
    from initlab.scaling.transfer import check_arguments, log2_grid_text, transfer

    _figure_paths(plot)
    budget = memory_budget_bytes(memory_budget)
    width_list, seed_list, grid = widths_text(widths), parse_seeds(seeds), log2_grid_text(lrs)
    arguments = dict(
        widths=width_list, base_width=base_width, log2_learning_rates=grid, seeds=seed_list, optimizer=optimizer,
        hidden_layers=depth, activation=activation, kernel_initializer=init, train_examples=examples,
        eval_examples=eval_examples, epochs=epochs, batch_size=batch_size,
    )  # fmt: skip
    chosen = check_arguments(parametrization or ["sp", "mup"], **arguments)[0]  # every mistake before any training
    configure_process()
    with progress_bar("transfer", "widths", as_json) as progress:
        task = progress.add_task("transfer", total=len(chosen) * len(width_list))
        result = transfer(
            chosen, **arguments, data_file=None if data_file is None else str(data_file), memory_budget=budget,
            on_width=lambda name, width, models: progress.advance(task),
        )  # fmt: skip
    if plot is not None:
        from initlab.viz.plots import save
        from initlab.viz.scaling import TransferDisplay

        save(TransferDisplay(result).plot().figure_, plot)
    if as_json:
        emit_json(result.to_dict() | ({"plot": str(plot)} if plot else {}))
        return
    table = new_table(
        f"optimal log2 learning rate by width ({result.optimizer}; grid {grid[0]:g}..{grid[-1]:g}, step "
        f"{result.grid_step:g}; {len(seed_list)} seed(s)): optimum of the mean loss, spread of the seeds' own optima",
        [("parametrization", "left"), ("width", "right"), ("optimal log2 lr", "right"), ("seeds' optima", "right"),
         ("least mean loss", "right"), ("diverged", "right")],
    )  # fmt: skip
    for name in result.parametrizations:
        optima, seed_optima, means = result.optimal_log2_lr(name), result.seed_optima(name), result.mean_losses(name)
        losses = result.losses[result.parametrizations.index(name)]
        for w, width in enumerate(result.widths):
            finite = means[w][np.isfinite(means[w])]
            table.add_row(
                name if w == 0 else "", str(width), f"{optima[w]:g}",
                " ".join("-" if np.isnan(v) else f"{v:g}" for v in seed_optima[w]),
                f"{finite.min():.4f}" if finite.size else "-", str(int((~np.isfinite(losses[w])).sum())),
            )  # fmt: skip
    console.print(table)
    for name in result.parametrizations:
        better = result.wider_is_better(name)
        console.print(
            f"{name}: the optimum moves {result.shift_steps(name):+.0f} grid step(s) from width {result.widths[0]} to "
            f"{result.widths[-1]} (at most {result.max_shift_steps(name):.0f} between any two widths); wider is better "
            f"at {better['fraction']:.0%} of the {better['learning_rates_compared']} learning rates every width trained "
            f"at", highlight=False,
        )  # fmt: skip
    console.print(f"{result.seconds:.0f} s", highlight=False)
    if plot is not None:
        written(plot)
