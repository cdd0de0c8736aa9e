"""Width scaling: ``initlab mup coord-check``."""

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
)

mup = typer.Typer(
    cls=_Group, no_args_is_help=True, help="Width scaling: parametrizations (SP, NTK, muP) and their coordinate check."
)
app.add_typer(mup, name="mup")


@mup.command("coord-check")
@user_errors
def coord_check_command(
    parametrization: Annotated[
        Optional[list[str]],
        typer.Option("--parametrization", metavar="sp|ntk|mup", show_default="sp and mup",
                     help="Width parametrization to check; several side by side."),
    ] = None,  # fmt: skip
    widths: Annotated[
        str, typer.Option(metavar="WIDTHS", help="Increasing widths, e.g. 64,128,256 or a range of powers of two 64-4096.")
    ] = "64-4096",
    base_width: Annotated[
        Optional[int], typer.Option("--base-width", help="Width at which every parametrization is the standard one.")
    ] = None,
    steps: Annotated[int, typer.Option(help="Updates; coordinates are recorded before the first and after each.")] = 3,
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-2; one vmapped program per width.")] = "0-2",
    optimizer: Annotated[str, typer.Option(help="sgd or adam spec.")] = "adam(learning_rate=0.01)",
    depth: Annotated[int, typer.Option(help="Hidden layers of each width.")] = 2,
    activation: Annotated[str, typer.Option(help="Hidden activation spec.")] = "relu",
    init: Annotated[str, typer.Option("--init", help="Kernel initializer spec (its law; the parametrization scales it).")]
    = "torch.linear_default",  # fmt: skip
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per step.")] = 64,
    data_file: Annotated[Optional[Path], typer.Option("--data-file", help=".npz with Keras's mnist keys.")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="The check in microsoft/mup's layout, to PNG/SVG/PDF.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
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
        console.print(f"written {plot}")
