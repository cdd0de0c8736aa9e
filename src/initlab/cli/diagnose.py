"""Your own model: ``initlab inspect TARGET`` and ``initlab check TARGET``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from initlab.cli._app import app, console, emit_json, err_console, new_table, user_errors, written
from initlab.errors import InitlabError

MAX_INFO_LINES = 12


def _shape(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise InitlabError(f"--input-shape expects sizes per example such as 3,224,224, got '{text[:60]}'") from None
    if not shape or any(size <= 0 for size in shape):
        raise InitlabError(f"--input-shape sizes must be positive, got '{text[:60]}'")
    return shape


def _inspect(target: str, input_shape: Optional[str], data: Optional[str], batch: int, input_law: str, steps: int,
             learning_rate: float, seed: int) -> Any:  # fmt: skip
    from initlab.checks import finite_float
    from initlab.diagnose import inspect_target

    finite_float("--lr", learning_rate)
    if learning_rate <= 0:
        raise InitlabError(f"--lr must be > 0, got {learning_rate:g}")
    return inspect_target(target, data=data, input_shape=_shape(input_shape), batch_size=batch, input_law=input_law,
                          steps=steps, learning_rate=learning_rate, seed=seed)  # fmt: skip


def _short(spec: str) -> str:
    """A spec without its family's prefix, for the table (``torch.linear_default`` -> ``linear_default``)."""
    return spec.split(".", 1)[1] if spec.startswith(("torch.", "flax.")) else spec


def _print(inspection: Any, thresholds: Any) -> list[Any]:
    console.print(f"[bold]{escape(inspection.target)}[/] ({inspection.framework}) on {escape(inspection.inputs)}",
                  highlight=False)  # fmt: skip
    theory = any(layer.predicted_second_moment is not None for layer in inspection.layers)
    columns = [("layer", "left"), ("type", "left"), ("std", "right"), ("dead / saturated", "right"),
               ("std dL/d(out)", "right")]  # fmt: skip
    if theory:
        columns += [("mean sq", "right"), ("theory", "right")]
    layers = new_table("layer outputs at initialization" + (" (theory: mean-field, for the plain stack)" if theory else ""),
                       columns)  # fmt: skip
    for layer in inspection.layers:
        state = "" if layer.dead_fraction is None else f"{layer.dead_fraction:.0%} dead"
        if layer.saturated_fraction is not None:
            state = f"{layer.saturated_fraction:.0%} sat."
        row = [escape(layer.name), layer.kind, f"{layer.std:.3g}", state,
               "" if layer.gradient_std is None else f"{layer.gradient_std:.3g}"]  # fmt: skip
        if theory:
            predicted = layer.predicted_second_moment
            row += ["" if predicted is None else f"{layer.second_moment:.3g}", "" if predicted is None else f"{predicted:.3g}"]
        layers.add_row(*row)
    console.print(layers)
    stepped = inspection.steps > 0
    params = new_table("parameters: measured std, the type's default (KS p-value), the law that fits",
                       [("parameter", "left"), ("shape", "left"), ("std", "right"), ("default", "left"), ("p", "right"),
                        ("fits", "left")] + ([("update/weight", "right")] if stepped else []))  # fmt: skip
    for param in inspection.params:
        declared = param.declared
        fits = param.identified["spec"] if param.identified else (
            f"{param.family['family']} (fitted)" if param.family else "none")  # fmt: skip
        row = [escape(param.name), "x".join(map(str, param.shape)), f"{param.std:.3g}",
               escape(_short(declared["spec"])) if declared else "?", f"{declared['p_value']:.2g}" if declared else "",
               escape(_short(fits))]  # fmt: skip
        if stepped:
            row.append("" if param.update_ratio is None else f"{param.update_ratio:.2g}")
        params.add_row(*row)
    console.print(params)
    if inspection.loss is not None:
        import math

        extra = f" against log({inspection.classes}) = {math.log(inspection.classes):.3g}" if inspection.classes else ""
        console.print(f"initial loss ({inspection.loss_kind}) {inspection.loss:.4g}{extra}"
                      + (f"; logit std {inspection.logit_std:.3g}" if inspection.logit_std is not None else ""),
                      highlight=False)  # fmt: skip
    for note in inspection.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    found = inspection.findings(thresholds)
    failing = [f for f in found if f.severity == "fail"]
    infos = [f for f in found if f.severity != "fail"]
    for finding in failing:
        console.print(f"[bold red]problem[/] {escape(str(finding))}", highlight=False)
    for finding in infos[:MAX_INFO_LINES]:
        console.print(f"[cyan]note[/] {escape(str(finding))}", highlight=False)
    if len(infos) > MAX_INFO_LINES:
        console.print(f"[cyan]note[/] ... and {len(infos) - MAX_INFO_LINES} more parameters not at their type's default"
                      " (--json lists them all)")  # fmt: skip
    if not failing:
        console.print("[green]no problem found[/] at the thresholds of initlab check")
    return failing


def _write_html(inspection: Any, thresholds: Any, path: Path) -> None:
    from initlab.report import inspection_report

    inspection_report(inspection.to_dict(thresholds), path)


TARGET_HELP = "package.module:callable or path/to/file.py:callable returning a torch, Keras or Flax model."
# Options both commands take.
Target = Annotated[str, typer.Argument(help=TARGET_HELP)]
InputShape = Annotated[Optional[str], typer.Option("--input-shape", metavar="SHAPE",
                                                   help="Per-example input shape, e.g. 3,224,224.")]  # fmt: skip
Data = Annotated[Optional[str], typer.Option(help="Inputs from a data set (mnist) or an .npz instead.")]
Batch = Annotated[int, typer.Option(help="Examples in the batch.")]
InputLaw = Annotated[str, typer.Option("--input-law", metavar="normal|uniform|tokens",
                                       help="Random inputs: N(0, 1), U[0, 1) or token ids below the embedding's size.")]  # fmt: skip
Seed = Annotated[int, typer.Option(help="Seed of the inputs and labels.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
@user_errors
def inspect(
    target: Target,
    input_shape: InputShape = None,
    data: Data = None,
    batch: Batch = 8,
    input_law: InputLaw = "normal",
    steps: Annotated[int, typer.Option(help="SGD steps before measuring update-to-weight ratios (PyTorch; Keras on JAX).")] = 0,
    learning_rate: Annotated[float, typer.Option("--lr", help="Learning rate of those steps.")] = 0.01,
    seed: Seed = 0,
    html: Annotated[Optional[Path], typer.Option(help="Also write the inspection as an HTML report section.")] = None,
    as_json: AsJson = False,
) -> None:  # fmt: skip
    """Inspect a model's initialization: per layer and parameter, measured against its framework's defaults."""
    from initlab.diagnose import Thresholds
    from initlab.files import output_file

    if html is not None:
        if html.suffix.lower() not in (".html", ".htm"):
            raise InitlabError(f"--html writes an HTML page: give a .html file, not '{html.name[:60]}'")
        output_file(html)
    inspection = _inspect(target, input_shape, data, batch, input_law, steps, learning_rate, seed)
    thresholds = Thresholds()
    if html is not None:
        _write_html(inspection, thresholds, html)
    if as_json:
        emit_json(inspection.to_dict(thresholds) | ({"html": str(html)} if html else {}))
        return
    _print(inspection, thresholds)
    if html is not None:
        written(html)


@app.command()
@user_errors
def check(
    target: Target,
    input_shape: InputShape = None,
    data: Data = None,
    batch: Batch = 8,
    input_law: InputLaw = "normal",
    seed: Seed = 0,
    max_dead: Annotated[float, typer.Option("--max-dead", help="Largest fraction of dead ReLU units.")] = 0.5,
    max_saturated: Annotated[float, typer.Option("--max-saturated", help="Largest fraction of saturated outputs.")]
    = 0.5,
    signal_ratio: Annotated[float, typer.Option("--signal-ratio",
                                                help="Largest change of the outputs' std across the network.")] = 1e3,
    gradient_ratio: Annotated[float, typer.Option("--gradient-ratio",
                                                  help="Largest change of the gradients' std across it.")] = 1e3,
    loss_excess: Annotated[float, typer.Option("--loss-excess", help="Largest initial loss above log(classes).")]
    = 1.0,
    as_json: AsJson = False,
) -> None:  # fmt: skip
    """Check a model's initialization against thresholds: exit status 1, with the findings, when any is crossed."""
    from initlab.diagnose import Thresholds

    thresholds = Thresholds(dead=max_dead, saturated=max_saturated, signal_ratio=signal_ratio,
                            gradient_ratio=gradient_ratio, loss_excess=loss_excess)  # fmt: skip
    inspection = _inspect(target, input_shape, data, batch, input_law, 0, 0.01, seed)
    if as_json:
        document = inspection.to_dict(thresholds)
        emit_json(document)
        if not document["healthy"]:
            raise typer.Exit(1)
        return
    failing = _print(inspection, thresholds)
    if failing:
        err_console.print(f"[bold red]{len(failing)} problem(s)[/] (exit status 1)")
        raise typer.Exit(1)
