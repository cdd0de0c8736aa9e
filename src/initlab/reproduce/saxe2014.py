"""Saxe, McClelland & Ganguli (2014): products of orthogonal matrices are isometries; products of Gaussian ones spread.

A deep linear network's input-output map is the product of its weight matrices. With random
orthogonal weights every singular value of the product is exactly 1 at any depth ("dynamical
isometry"); with Gaussian weights of variance 1/n the mean squared singular value is still 1,
but the singular values spread with depth: their mean fourth power grows as ``L + 1``
(free probability: the squared singular values of a product of ``L`` square Ginibre matrices
follow the Fuss-Catalan law, whose second moment is ``L + 1``).

Exact at finite width (the reference of the checks, derived by Wick's theorem for the real
Gaussian ensemble, entries N(0, 1/n)): with ``A = J J^T`` after ``l`` layers, ``T = E[(tr A)^2]``
and ``Q = E[tr A^2]`` evolve as ``T' = T + 2Q/n``, ``Q' = T/n + Q(1 + 1/n)`` from ``T = n^2``,
``Q = n``; the mean fourth power of the singular values is ``Q_L / n`` (``2 + 1/n`` for one
layer). Not reproduced here: their learning-time curves of deep linear networks against depth.
"""

from __future__ import annotations

import math

import numpy as np

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, register

PAPER = Paper(
    "Andrew M. Saxe, James L. McClelland and Surya Ganguli", 2014,
    "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks", "ICLR 2014",
)  # fmt: skip
GAUSSIAN = "random_normal(stddev=STD)"
ORTHOGONAL = "orthogonal"
WIDTH, DEPTHS, SAMPLES, FULL_SAMPLES = 128, (1, 2, 4, 8, 16, 32), 16, 128
SE_BAND = 4.0
ISOMETRY_TOLERANCE = 1e-4
"""float32 orthogonal matrices are orthonormal to ~1e-7 each; over 32 layers, 1e-4 is generous."""


def exact_fourth_moment(width: int, depth: int) -> float:
    """``E[(1/n) sum sigma^4]`` of a product of ``depth`` real n x n Gaussian matrices of variance 1/n."""
    n = float(width)
    trace_squared, trace_of_square = n * n, n
    for _ in range(depth):
        trace_squared, trace_of_square = trace_squared + 2 * trace_of_square / n, trace_squared / n + trace_of_square * (1 + 1 / n)
    return trace_of_square / n


def _run(context: Context) -> Outcome:
    from initlab.measure.propagation import jacobian_singular_values

    samples = FULL_SAMPLES if context.full else SAMPLES
    gaussian = GAUSSIAN.replace("STD", repr(1 / math.sqrt(WIDTH)))
    rows, spectra = [], {}
    total = 2 * len(DEPTHS)
    for index, depth in enumerate(DEPTHS):
        context.stage("Jacobians", 2 * index, total)
        measured = {}
        for name, spec in (("orthogonal", ORTHOGONAL), ("Gaussian", gaussian)):
            result = jacobian_singular_values(spec, depth=depth, width=WIDTH, activation="linear", samples=samples,
                                              seed=context.seed + depth)  # fmt: skip
            sigma = result.singular_values.astype(np.float64)
            second = (sigma**2).mean(axis=1)  # per network draw
            fourth = (sigma**4).mean(axis=1)
            measured[name] = {
                "max_deviation": float(np.abs(sigma - 1).max()), "mean_sigma2": float(second.mean()),
                "mean_sigma2_se": float(second.std(ddof=1) / math.sqrt(samples)), "mean_sigma4": float(fourth.mean()),
                "mean_sigma4_se": float(fourth.std(ddof=1) / math.sqrt(samples)),
                "condition_number": float(np.median(sigma.max(axis=1) / sigma.min(axis=1))),
            }  # fmt: skip
            spectra[f"{name} {depth}"] = sigma.ravel().tolist()
        rows.append({"depth": depth, "exact_mean_sigma4": exact_fourth_moment(WIDTH, depth), **measured})
    context.stage("Jacobians", total, total)
    checks = [Check(
        name=f"orthogonal: largest |sigma - 1| over every depth (up to {DEPTHS[-1]}) and draw",
        claim="a product of orthogonal matrices is an isometry: every singular value is 1 at any depth",
        measured=max(r["orthogonal"]["max_deviation"] for r in rows), band=(0.0, ISOMETRY_TOLERANCE), published=0.0,
        basis="exact 0; float32 orthonormality over the layers",
    )]  # fmt: skip
    deepest = rows[-1]
    g = deepest["Gaussian"]
    checks.append(Check(
        name=f"Gaussian, depth {deepest['depth']}: mean sigma^2",
        claim="Gaussian weights of variance 1/n keep the mean squared singular value at 1",
        measured=g["mean_sigma2"], band=(1 - SE_BAND * g["mean_sigma2_se"], 1 + SE_BAND * g["mean_sigma2_se"]),
        published=1.0, basis=f"exact 1 +- {SE_BAND:g} standard errors over {samples} draws",
    ))  # fmt: skip
    for row in rows:
        if row["depth"] not in (1, 4, DEPTHS[-1]):
            continue
        g = row["Gaussian"]
        checks.append(Check(
            name=f"Gaussian, depth {row['depth']}: mean sigma^4 (the spread)",
            claim="the singular values spread with depth: their mean fourth power is L + 1 (free probability)",
            measured=g["mean_sigma4"], published=float(row["depth"] + 1),
            band=(row["exact_mean_sigma4"] - SE_BAND * g["mean_sigma4_se"], row["exact_mean_sigma4"] + SE_BAND * g["mean_sigma4_se"]),
            basis=f"exact at width {WIDTH}: {row['exact_mean_sigma4']:.3f}, +- {SE_BAND:g} standard errors over {samples} draws",
        ))  # fmt: skip
    figure = context.folder / "singular_values.png"
    _figure(rows, spectra, figure)
    caption = (
        f"Left: singular values of the input-output Jacobian of deep linear networks of width {WIDTH} at "
        f"initialization, {samples} draws per depth: orthogonal weights (all at 1) and Gaussian ones of variance 1/n, "
        "spreading with depth. Right: the mean fourth power of the Gaussian products' singular values against "
        "depth, with the exact finite-width value and free probability's L + 1."
    )
    setup = (f"deep linear networks of width {WIDTH}, depths {', '.join(map(str, DEPTHS))}, {samples} draws each, "
             "Jacobians multiplied in float64")  # fmt: skip
    return Outcome(checks=checks, figures=[(figure, caption)], data={"depths": rows}, setup=setup)


def _figure(rows: list[dict], spectra: dict, path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(rows)))
    with style():
        figure, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
        logs = {row["depth"]: np.log10(np.maximum(spectra[f"Gaussian {row['depth']}"], 1e-300)) for row in rows}
        low = max(min(float(v.min()) for v in logs.values()), -30.0)
        bins = np.linspace(low, max(float(v.max()) for v in logs.values()) + 0.1, 70)
        for color, row in zip(colors, rows):
            left.hist(logs[row["depth"]], bins=bins, histtype="step", color=color, lw=1.2, density=True,
                      label=f"Gaussian, L={row['depth']}")  # fmt: skip
        left.axvline(0.0, color="black", lw=2, label="orthogonal, every L")
        from initlab.measure.propagation import FLOAT64_RESOLUTION

        deepest = np.asarray(spectra[f"Gaussian {rows[-1]['depth']}"])
        floor = math.log10(float(deepest.max()) * FLOAT64_RESOLUTION)
        if floor > low:
            left.axvspan(low, floor, color="grey", alpha=0.15, lw=0, label="below float64's resolution (deepest)")
        left.set_xlabel(r"$\log_{10}\sigma$, singular values of the Jacobian")
        left.set_ylabel(r"density of $\log_{10}\sigma$")
        left.legend(fontsize=7, frameon=False)
        depths = [row["depth"] for row in rows]
        right.errorbar(depths, [row["Gaussian"]["mean_sigma4"] for row in rows],
                       yerr=[2 * row["Gaussian"]["mean_sigma4_se"] for row in rows], fmt="o", color="#0072B2",
                       ms=4, capsize=2, label="measured (Gaussian)")  # fmt: skip
        right.plot(depths, [row["exact_mean_sigma4"] for row in rows], "x", color="grey", ms=7, label=f"exact, n={WIDTH}")
        right.plot(depths, [d + 1 for d in depths], color="black", lw=1, label="L + 1 (free probability)")
        right.plot(depths, [row["orthogonal"]["mean_sigma4"] for row in rows], "s", color="#D55E00", ms=4,
                   label="measured (orthogonal)")  # fmt: skip
        right.set_xscale("log", base=2)
        right.set_yscale("log", base=2)
        right.set_xlabel("depth L")
        right.set_ylabel(r"mean $\sigma^4$")
        right.legend(fontsize=7, frameon=False)
        figure.suptitle("Saxe et al. 2014: orthogonal products are isometries, Gaussian ones spread", fontsize=10)
        save(figure, path)


register(Reproduction(
    name="saxe2014", paper=PAPER,
    claim="Products of random orthogonal matrices keep every singular value at 1 at any depth, while products of "
          "scaled Gaussian matrices, with the same mean squared singular value, spread ever wider with depth.",
    setup=f"deep linear networks of width {WIDTH}, depths up to {DEPTHS[-1]}, {SAMPLES} draws each",
    why="The claim is about the product of the weight matrices at initialization, which is the Jacobian of a deep "
        "linear network; width 128 resolves the spread, and the exact finite-width moments remove the n -> infinity "
        "approximation from the bands.",
    budget_s=60.0, full_setup=f"the same depths, {FULL_SAMPLES} draws each",
    run=_run,
))  # fmt: skip
