"""Reading results and the main job: ``initlab report``, ``plot`` and ``reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from initlab.cli._app import app, configure_process, console, emit_json, parse_seeds, progress_bar, user_errors


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
    from initlab.files import output_file, output_folder, read_text
    from initlab.report import build_report

    output_folder(out, what="report")
    output_file(out / "report.html", what="report")
    text = None if notes is None else read_text(notes, what="notes file")
    with progress_bar("writing the report", "", False) as progress:
        progress.add_task("report", total=None)
        path = build_report(store, out, title=title, theory=theory, notes=text)
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
    from initlab.report import write_figure
    from initlab.viz import figures

    if kind not in PLOTS:
        from initlab.errors import unknown

        raise unknown("plot", kind, PLOTS)
    from initlab.files import output_file
    from initlab.viz.plots import FIGURE_FORMATS

    output_file(out, extensions=FIGURE_FORMATS, what="figure")
    from initlab.measure.probes import HISTOGRAMS

    if histogram not in HISTOGRAMS:
        from initlab.errors import unknown

        raise unknown("histogram kind", histogram, HISTOGRAMS)
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
    epochs: Annotated[int, typer.Option(help="Epochs of every training run (the panel and the ablation).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The main job: the tutorial's saturation and training, a panel of initializers, an ablation, a report."""
    from initlab.checks import MAX_EPOCHS, positive_int
    from initlab.files import output_folder

    if what != "seed":
        from initlab.errors import unknown

        raise unknown("experiment", what, ["seed"])
    positive_int("--epochs", epochs, maximum=MAX_EPOCHS)
    seed_list = parse_seeds(seeds)
    output_folder(out, what="main job's outputs")
    configure_process()
    import sys
    import time

    from initlab.cli._app import err_console
    from initlab.reproduce import reproduce_seed

    lines = not sys.stderr.isatty() and not as_json  # a log, not a terminal: progress as lines
    with progress_bar("reproducing", "", as_json or lines) as progress:
        tasks: dict[str, Any] = {}
        printed: dict[str, float] = {}

        def report_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total, description=stage)
            now = time.monotonic()
            if lines and (stage not in printed or done == total or now - printed[stage] >= 10):
                printed[stage] = now
                err_console.print(f"{stage}: {done}/{total}", highlight=False)

        result = reproduce_seed(out, seeds=seed_list, epochs=epochs, progress=report_progress)
    if as_json:
        emit_json(result)
        return
    for note in result["conclusions"]:
        console.print(escape(note), highlight=False)
    console.print(
        f"\n{result['runs']} runs: {result['reused']} reused from the store, {result['trained']} trained"
        + (f", {result['failed']} failed" if result["failed"] else "")
        + f" ({result['seconds']:.0f} s); everything is in [bold]{escape(result['out'])}[/]"
    )
    console.print(f"open {escape(result['report'])}")
