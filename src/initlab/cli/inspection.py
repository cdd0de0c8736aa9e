"""Inside networks at initialization: ``initlab propagate``, ``isometry`` and ``theory``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from initlab.checks import MAX_UNITS, finite_float, positive_int
from initlab.cli._app import app, configure_process, console, emit_json, new_table, progress_bar, user_errors, written
from initlab.errors import InitlabError


def _figure_paths(*paths: Optional[Path]) -> None:
    """Figure paths checked before any work: a bad one costs nothing."""
    from initlab.files import output_file
    from initlab.viz.plots import FIGURE_FORMATS

    for path in paths:
        if path is not None:
            output_file(path, extensions=FIGURE_FORMATS, what="figure")


@app.command()
@user_errors
def propagate(
    ctx: typer.Context,
    init: Annotated[Optional[list[str]], typer.Option("--init", help="Initializer spec; repeat to compare.")] = None,
    depth: Annotated[int, typer.Option(help="Hidden layers.")] = 10,
    width: Annotated[int, typer.Option(help="Units per hidden layer.")] = 512,
    activation: Annotated[str, typer.Option(help="Hidden activation spec.")] = "tanh",
    inputs: Annotated[str, typer.Option(help="Input source: mnist, uniform, normal.")] = "mnist",
    batch: Annotated[int, typer.Option(help="Inputs propagated.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed of the networks and inputs.")] = 0,
    bias_init: Annotated[str, typer.Option("--bias-init", help="Bias initializer spec.")] = "zeros",
    plot: Annotated[Optional[Path], typer.Option(help="Variance vs depth (with theory) to PNG/SVG/PDF.")] = None,
    histograms: Annotated[Optional[Path], typer.Option(help="Per-layer histograms (activations) to PNG/SVG/PDF.")] = None,
    model: Annotated[
        Optional[str],
        typer.Option(metavar="SPEC", help="Another network (initlab list models), e.g. \"cnn(depth=200, channels=16, "
                     "activation='tanh')\"; --init then sets every Dense and Conv kernel ('default': its own)."),
    ] = None,
    dataset: Annotated[str, typer.Option(help="With --model: the data set whose examples, classes and tokens it takes.")] = "mnist",
    input_shape: Annotated[
        Optional[str], typer.Option("--input-shape", metavar="HxWxC", help="With --model and --inputs normal: one input's shape.")
    ] = None,
    input_std: Annotated[float, typer.Option("--input-std", help="With --model: the normal inputs' standard deviation.")] = 1.0,
    jacobian: Annotated[bool, typer.Option("--jacobian", help="With --model: the input-output Jacobian's singular values.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A deep MLP at initialization: forward and backward statistics per layer, theory beside them.

    With --model, any of initlab's networks: per-layer statistics, the residual stream and attention per block,
    and (--jacobian) dynamical isometry.
    """
    _figure_paths(plot, histograms)
    if model is not None:
        def given(name: str) -> bool:
            return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"

        mlp_only = [f"--{name.replace('_', '-')}" for name in ("depth", "width", "activation", "histograms", "plot") if given(name)]
        if mlp_only:
            raise InitlabError(f"{', '.join(mlp_only)} describe the MLP of propagate; --model gives the whole network")
        _propagate_network(model, init, dataset, inputs if given("inputs") else "data", input_shape, input_std, batch, seed,
                           bias_init if given("bias_init") else None, jacobian, as_json)
        return
    configure_process()
    from initlab.measure.propagation import predicted_preactivation_variance
    from initlab.measure.propagation import propagate as run_propagate

    with progress_bar("propagating", "initializers", as_json) as progress:
        task = progress.add_task("propagate", total=None)
        result = run_propagate(
            init or ["standard_uniform", "glorot_uniform"], depth=depth, width=width,
            activation=activation, inputs=inputs, batch=batch, seed=seed, bias_initializer=bias_init,
        )
        progress.update(task, completed=1, total=1)
    theory = predicted_preactivation_variance(result)
    if plot is not None:
        from initlab.viz.plots import save
        from initlab.viz.signal import PropagationDisplay

        save(PropagationDisplay.from_result(result, theory_forward=theory).plot().figure_, plot)
    if histograms is not None:
        from initlab.viz.plots import save
        from initlab.viz.signal import LayerHistogramsDisplay

        save(LayerHistogramsDisplay.from_result(result).plot().figure_, histograms)
    if as_json:
        emit_json(result.to_dict() | {"predicted_preactivation_variance": theory})
        return
    table = new_table(
        f"{result.activation}, {result.depth} x {result.width}, {result.inputs} inputs (q0 = {result.q0:.4g}); "
        "dl/dz: each example's gradient of its own loss",
        [("initializer", "left"), ("layer", "right"), ("Var z", "right"), ("theory", "right"),
         ("Var dl/dz", "right"), ("saturated", "right")],
    )
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
            written(path)


def _shape(text: str) -> tuple[int, ...]:
    parts = text.lower().replace(",", "x").split("x")
    if not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise InitlabError(f"--input-shape expects sizes such as 8x8x16, got '{text}'")
    return tuple(int(part) for part in parts)


def _propagate_network(model: str, init: Optional[list[str]], dataset: str, inputs: str, input_shape: Optional[str],
                       input_std: float, batch: int, seed: int, bias_init: Optional[str], jacobian: bool, as_json: bool) -> None:
    from initlab.nn.model_specs import models

    models.build(model)  # a bad spec fails before JAX starts
    shape = _shape(input_shape) if input_shape is not None else None
    if shape is not None and inputs != "normal":
        raise InitlabError("--input-shape is the shape of normal inputs: add --inputs normal")
    configure_process()
    from initlab.measure.networks import propagate_network, singular_value_summary

    with progress_bar("propagating", "initializers", as_json) as progress:
        task = progress.add_task("propagate", total=None)
        result = propagate_network(model, init or ["default"], dataset=dataset, inputs=inputs, input_shape=shape,
                                   batch=batch, seed=seed, jacobian=jacobian, bias_initializer=bias_init, input_std=input_std)
        progress.update(task, completed=1, total=1)
    if as_json:
        payload = result.to_dict()
        for run in payload["runs"]:
            if run["singular_values"] is not None:
                run["singular_value_summary"] = singular_value_summary(run["singular_values"])
        emit_json(payload)
        return
    shown_shape = "x".join(map(str, result.input_shape))
    table = new_table(
        f"{result.model} at initialization, {result.inputs} inputs {shown_shape}; dl/dz: each example's gradient of its "
        "own cross-entropy",
        [("initializer", "left"), ("layer", "left"), ("std z", "right"), ("std a", "right"), ("Var dl/dz", "right"),
         ("|dL/dW|", "right")],
    )
    for run in result.runs:
        for index, path in enumerate(result.layer_paths):
            table.add_row(escape(run.initializer) if index == 0 else "", escape(path),
                          *(f"{run.layers[name][index]:.4g}" for name in ("preactivation_std", "activation_std",
                                                                            "backprop_variance", "weight_grad_norm")))
    console.print(table)
    if any(run.blocks for run in result.runs):
        blocks = new_table("per residual block (rms: root-mean-square per example)", [("initializer", "left"), ("statistic", "left"),
                           ("first", "right"), ("middle", "right"), ("last", "right")])
        for run in result.runs:
            for index, (name, values) in enumerate(run.blocks.items()):
                middle = values[len(values) // 2]
                blocks.add_row(escape(run.initializer) if index == 0 else "", name, f"{values[0]:.4g}", f"{middle:.4g}",
                               f"{values[-1]:.4g}")
        console.print(blocks)
    if jacobian:
        svd = new_table("input-output Jacobian's singular values (last hidden layer, one input)",
                        [("initializer", "left"), ("max", "right"), ("median", "right"), ("min", "right"),
                         ("std log10", "right")])
        for run in result.runs:
            summary = singular_value_summary(run.singular_values)
            svd.add_row(escape(run.initializer), *(f"{summary[k]:.4g}" for k in ("max", "median", "min", "log10_spread")))
        console.print(svd)


@app.command()
@user_errors
def isometry(
    init: Annotated[Optional[list[str]], typer.Option("--init", help="Initializer spec; repeat to compare.")] = None,
    depth: Annotated[int, typer.Option(help="Hidden layers.")] = 10,
    width: Annotated[int, typer.Option(help="Units per layer.")] = 256,
    activation: Annotated[str, typer.Option(help="Activation spec.")] = "linear",
    samples: Annotated[int, typer.Option(help="Input vectors (one Jacobian each).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed of the networks and inputs.")] = 0,
    plot: Annotated[Optional[Path], typer.Option(help="Histogram of singular values to PNG/SVG/PDF.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Dynamical isometry: singular values of the input-output Jacobian at initialization."""
    _figure_paths(plot)
    configure_process()
    import numpy as np

    from initlab.measure.propagation import jacobian_singular_values
    from initlab.viz.signal import IsometryDisplay

    results = [
        jacobian_singular_values(spec, depth=depth, width=width, activation=activation, samples=samples, seed=seed)
        for spec in (init or ["orthogonal", "random_normal(stddev=0.0625)"])
    ]
    if plot is not None:
        from initlab.viz.plots import save

        save(IsometryDisplay.from_results(*results).plot().figure_, plot)
    if as_json:
        emit_json([result.to_dict() for result in results])
        return
    table = Table(
        title=f"Jacobian singular values, {activation}, depth {depth}, width {width} (products in float64; "
        "<x: below what float64 resolves, 1e-13 of the largest)",
        title_justify="left",
    )
    for column in ("initializer", "min", "median", "max", "mean square", "spread"):
        if column == "initializer":
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for result in results:
        values = result.singular_values.ravel()
        def shown(value: float) -> str:  # below float64's resolution of the product: rounding noise
            return f"<{result.resolution:.2g}" if value < result.resolution else f"{value:.4g}"

        table.add_row(escape(result.initializer), shown(values.min()), shown(float(np.median(values))),
                      f"{values.max():.4g}", f"{result.mean_squared:.4g}", f"{result.spread:.4g}")
    console.print(table)
    if plot is not None:
        written(plot, "histogram written to")


@app.command()
@user_errors
def theory(
    activation: Annotated[str, typer.Option(help="Activation spec.")] = "tanh",
    sigma_w2: Annotated[Optional[float], typer.Option("--sigma-w2", help="Weight variance x fan-in.")] = None,
    sigma_b2: Annotated[float, typer.Option("--sigma-b2", help="Bias variance.")] = 0.0,
    init: Annotated[
        Optional[list[str]], typer.Option("--init", help="Where does this initializer put the network? (repeatable)")
    ] = None,
    fan_in: Annotated[int, typer.Option("--fan-in", help="With --init: the layer's inputs.")] = 512,
    fan_out: Annotated[int, typer.Option("--fan-out", help="With --init: the layer's outputs.")] = 512,
    bias_init: Annotated[str, typer.Option("--bias-init", help="Bias initializer spec.")] = "zeros",
    critical: Annotated[bool, typer.Option("--critical", help="Also the critical sigma_w2 for --sigma-b2.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Phase diagram (xi_c contours, chi1 = 1 line) to PNG/SVG/PDF.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Mean-field theory: q*, c*, chi1, depth scales, the order-to-chaos boundary, the phase diagram."""
    _figure_paths(plot)
    positive_int("--fan-in", fan_in, maximum=MAX_UNITS)
    positive_int("--fan-out", fan_out, maximum=MAX_UNITS)
    for name, value in (("--sigma-w2", sigma_w2), ("--sigma-b2", sigma_b2)):
        if value is not None:
            finite_float(name, value, minimum=0.0)
    configure_process()
    from initlab.mean_field import theory as mean_field

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
        from initlab.viz.plots import save
        from initlab.viz.signal import PhaseDiagramDisplay

        display = PhaseDiagramDisplay.from_activation(activation)
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
        if column in ("point", "phase"):
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column.replace("sigma_", "σ").replace("2", "²"), justify="right", no_wrap=True)

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
        written(plot, "phase diagram written to")
