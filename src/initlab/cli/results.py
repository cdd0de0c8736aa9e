"""Reading results and the main job: ``initlab report``, ``plot`` and ``reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from initlab.cli._app import app, configure_process, console, emit_json, parse_seeds, progress_bar, user_errors, written
from initlab.errors import InitlabError


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
    written(path, "report written to")


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
    written(write_figure(display, out))


@app.command()
@user_errors
def reproduce(
    ctx: typer.Context,
    what: Annotated[
        str,
        typer.Argument(help="seed (the Keras tutorial), a paper (see --list, e.g. he2015), or all (every paper)."),
    ] = "seed",
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("initlab-out"),
    seeds: Annotated[str, typer.Option(help="seed only: seeds of every configuration, e.g. 0-2.")] = "0-2",
    epochs: Annotated[int, typer.Option(help="seed only: epochs of every training run.")] = 20,
    full: Annotated[bool, typer.Option("--full", help="Papers: the paper's own scale (bigger machines).")] = False,
    list_them: Annotated[bool, typer.Option("--list", help="List every reproduction with its budget, and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Reproduce the tutorial (seed) or a landmark paper: its claim beside initlab's measurement, its figure redrawn.

    A paper's checks each give the claim, the published number, the measured one and the band fixed before the run;
    the exit status is 1 when any check failed.
    """
    from initlab.checks import MAX_EPOCHS, positive_int
    from initlab.files import output_folder

    if list_them:
        _list_reproductions(as_json)
        return
    if what != "seed":
        from initlab.reproduce.base import get

        for name in ("seeds", "epochs"):
            if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE":
                raise InitlabError(f"--{name} is for reproduce seed; a paper's reproduction fixes its own (see --full)")
        if what != "all":
            get(what)  # an unknown name is one line, before any work
        output_folder(out, what="reproductions' outputs")
        configure_process()
        _reproduce_papers(what, out, full, as_json)
        return
    if full:
        raise InitlabError("--full is for a paper's reproduction; seed's scale is set by --seeds and --epochs")
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


def _list_reproductions(as_json: bool) -> None:
    from initlab.cli._app import new_table
    from initlab.reproduce.base import listing

    rows = [{"name": "seed", "paper": "the Keras tutorial on weight initialization (its Part A and Part B)",
             "claim": "N(0, 1) weights saturate a sigmoid layer; Part B reaches about 42%", "budget_s": 300.0},
            *listing()]  # fmt: skip
    if as_json:
        emit_json({"reproductions": rows})
        return
    table = new_table("reproductions (initlab reproduce NAME; all: every paper)",
                      [("name", "left"), ("paper", "left"), ("budget on 2 cores", "right")])  # fmt: skip
    for row in rows:
        table.add_row(row["name"], escape(row["paper"]), f"{row['budget_s']:.0f} s")
    console.print(table)


def _reproduce_papers(what: str, out: Path, full: bool, as_json: bool) -> None:
    import sys
    import time

    from initlab.cli._app import err_console, new_table
    from initlab.report import reproduction_report
    from initlab.reproduce import PAPERS
    from initlab.reproduce.base import run

    names = list(PAPERS) if what == "all" else [what]
    lines = not sys.stderr.isatty() and not as_json
    results = []
    with progress_bar("reproducing", "", as_json or lines) as progress:
        tasks: dict[str, Any] = {}
        for name in names:

            def report_progress(stage: str, done: int, total: int, name: str = name) -> None:
                label = f"{name}: {stage}"
                if label not in tasks:
                    tasks[label] = progress.add_task(label, total=total)
                progress.update(tasks[label], completed=done, total=total, description=label)
                if lines and (done == 0 or done == total):
                    err_console.print(f"{label}: {done}/{total}", highlight=False)

            started = time.monotonic()
            results.append(run(name, out, full=full, progress=report_progress))
            if lines:
                err_console.print(f"{name}: done in {time.monotonic() - started:.0f} s", highlight=False)
    report = out / (f"{names[0]}/report.html" if len(names) == 1 else "report.html")
    if len(names) > 1:
        reproduction_report([r.to_dict() for r in results], report, title="Landmark results on initialization, reproduced")
    failed = sum(not check.passed for result in results for check in result.checks)
    if as_json:
        documents = [result.to_dict() for result in results]
        emit_json(documents[0] | {"report": str(report)} if len(documents) == 1
                  else {"reproductions": documents, "report": str(report), "passed": not failed})  # fmt: skip
    else:
        for result in results:
            paper = result.paper
            console.print(f"\n[bold]{escape(result.name)}[/]: {escape(paper.citation())}", highlight=False)
            console.print(f"claim: {escape(result.claim)}", highlight=False)
            table = new_table(
                f"{sum(c.passed for c in result.checks)}/{len(result.checks)} checks passed; "
                f"{result.elapsed_s:.0f} s (budget {result.budget_s:.0f} s)",
                [("", "left"), ("check", "left"), ("published", "right"), ("measured", "right"), ("band", "right")],
            )
            for check in result.checks:
                table.add_row(
                    "[green]ok[/]" if check.passed else "[bold red]FAILED[/]", escape(check.name),
                    "-" if check.published is None else f"{check.published:.4g}", f"{check.measured:.4g}",
                    f"[{check.band[0]:.4g}, {check.band[1]:.4g}]",
                )  # fmt: skip
            console.print(table)
            for check in result.checks:
                if not check.passed and check.reason:
                    console.print(f"[bold red]FAILED[/] {escape(check.name)}: {escape(check.reason)}", highlight=False)
        written(report, "report:")
    if failed:
        if not as_json:
            err_console.print(f"[bold red]{failed} check(s) failed[/] (exit status 1)")
        raise typer.Exit(1)
