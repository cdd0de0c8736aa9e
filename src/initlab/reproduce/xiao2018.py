"""Xiao et al. (2018): delta-orthogonal kernels make a deep tanh CNN at the edge of chaos dynamically isometric.

The claim reproduced is the one at initialization (their Figs. 1 and 4): a plain tanh CNN at the
order-to-chaos transition whose kernels are delta-orthogonal (zero but an orthogonal matrix at the
spatial centre) keeps the singular values of its input-output Jacobian concentrated around 1,
hundreds of layers deep, while Gaussian kernels of the same variance spread them over many orders
of magnitude. Not reproduced: the 10,000-layer training runs on CIFAR-10.

Set-up: ``cnn(depth=DEPTH, channels=16, activation='tanh')`` with 'same' padding (with zero padding
the Gaussian kernels also lose weight at the borders; a delta-orthogonal kernel reads only the
centre pixel, which padding never touches), sigma_b^2 = 1e-6 and sigma_w^2 on the critical line of
mean-field theory (initlab.mean_field: chi_1 = 1), inputs N(0, q*) of 8x8x16, so that every layer
sits at the fixed point; the Jacobian of the last convolution's pre-activation with respect to one
input, exactly (``jax.jacfwd``), its singular values by SVD.

Bands, fixed before any run: isometry means the spectrum's spread (the standard deviation of
log10 sigma) stays well under half a decade and the median near 1 (0.5-2); "spread over orders of
magnitude" means a largest-to-smallest ratio above 10^3 for the Gaussian kernels. The critical
sigma_w^2 is checked against the closed-form chi_1 = 1 (quadrature, 1e-6).
"""

from __future__ import annotations

import math

import numpy as np

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, register

PAPER = Paper(
    "Lechao Xiao, Yasaman Bahri, Jascha Sohl-Dickstein, Samuel S. Schoenholz and Jeffrey Pennington", 2018,
    "Dynamical Isometry and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks",
    "ICML 2018",
)  # fmt: skip
DEPTH, FULL_DEPTH, CHANNELS, SIDE = 100, 400, 16, 8
SIGMA_B2 = 1e-6
SPREAD_BAND = (0.0, 0.5)
MEDIAN_BAND = (0.5, 2.0)
GAUSSIAN_RATIO_FLOOR = 1e3


def _run(context: Context) -> Outcome:
    from initlab.mean_field.theory import analyze, critical_sigma_w2, fixed_point_q
    from initlab.measure.networks import propagate_network, singular_value_summary

    depth = FULL_DEPTH if context.full else DEPTH
    context.stage("mean-field critical point", 0, 3)
    sigma_w2 = critical_sigma_w2(SIGMA_B2, "tanh")
    q_star = fixed_point_q(sigma_w2, SIGMA_B2, "tanh").q_star
    chi1 = float(analyze("tanh", sigma_w2, SIGMA_B2).chi1)
    specs = {
        "delta-orthogonal": f"delta_orthogonal(gain={math.sqrt(sigma_w2)!r})",
        "Gaussian": f"variance_scaling(scale={sigma_w2!r}, distribution='untruncated_normal')",
    }
    context.stage("Jacobians", 1, 3)
    result = propagate_network(
        f"cnn(depth={depth}, channels={CHANNELS}, activation='tanh')", list(specs.values()), inputs="normal",
        input_shape=(SIDE, SIDE, CHANNELS), input_std=math.sqrt(q_star), batch=8, seed=context.seed, jacobian=True,
        bias_initializer=f"random_normal(stddev={math.sqrt(SIGMA_B2)!r})",
    )
    spectra = {name: run.singular_values for name, run in zip(specs, result.runs)}
    summaries = {name: singular_value_summary(values) for name, values in spectra.items()}
    context.stage("Jacobians", 3, 3)
    delta, gaussian = summaries["delta-orthogonal"], summaries["Gaussian"]
    checks = [
        Check(name="critical line: chi_1 at the chosen sigma_w^2", claim="the edge of chaos: chi_1 = 1",
              measured=chi1, band=(1 - 1e-6, 1 + 1e-6), published=1.0, basis="mean-field theory, quadrature"),
        Check(name=f"delta-orthogonal, depth {depth}: std of log10 sigma",
              claim="delta-orthogonal kernels keep the Jacobian near isometric at depth", measured=delta["log10_spread"],
              band=SPREAD_BAND, basis="isometry: well under half a decade of spread (fixed before the run)"),
        Check(name=f"delta-orthogonal, depth {depth}: median sigma", claim="the singular values concentrate around 1",
              measured=delta["median"], band=MEDIAN_BAND, published=1.0, basis="within a factor 2 of 1 (fixed before the run)"),
        Check(name=f"Gaussian, depth {depth}: largest / smallest sigma",
              claim="Gaussian kernels of the same variance spread the spectrum over orders of magnitude",
              measured=gaussian["max_over_min"], band=(GAUSSIAN_RATIO_FLOOR, math.inf),
              basis="more than three orders of magnitude (fixed before the run)"),
    ]  # fmt: skip
    figure = context.folder / "jacobian_spectra.png"
    _figure(spectra, depth, figure)
    caption = (f"Singular values of the input-output Jacobian of a {depth}-layer tanh CNN ({CHANNELS} channels, 8x8 inputs) "
               "at the edge of chaos (sigma_b^2 = 1e-6), delta-orthogonal against Gaussian kernels of the same variance.")
    setup = (f"cnn(depth={depth}, channels={CHANNELS}, tanh), sigma_w^2 = {sigma_w2:.5f} (critical), sigma_b^2 = {SIGMA_B2:g}, "
             f"inputs N(0, q* = {q_star:.4g}) of {SIDE}x{SIDE}x{CHANNELS}, one Jacobian per kernel kind")
    data = {"sigma_w2": sigma_w2, "q_star": q_star, "chi1": chi1, "summaries": summaries}
    return Outcome(checks=checks, figures=[(figure, caption)], data=data, setup=setup)


def _figure(spectra: dict, depth: int, path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    with style():
        figure, axis = plt.subplots(figsize=(5.5, 3.6), layout="constrained")
        logs = {name: np.log10(np.maximum(np.asarray(values), 1e-30)) for name, values in spectra.items()}
        bins = np.linspace(min(v.min() for v in logs.values()), max(v.max() for v in logs.values()) + 0.05, 60)
        for (name, values), color in zip(logs.items(), ("#D55E00", "#0072B2")):
            axis.hist(values, bins=bins, histtype="step", lw=1.5, color=color, density=True, label=name)
        axis.axvline(0.0, color="black", lw=0.8, ls="--")
        axis.set_xlabel(r"$\log_{10}\sigma$, singular values of the input-output Jacobian")
        axis.set_ylabel("density")
        axis.legend(frameon=False, fontsize=8)
        axis.set_title(f"Xiao et al. 2018: a {depth}-layer tanh CNN at the edge of chaos", fontsize=10)
        save(figure, path)


register(Reproduction(
    name="xiao2018", paper=PAPER,
    claim="A vanilla tanh CNN at the edge of chaos with delta-orthogonal kernels is dynamically isometric at great "
          "depth (the Jacobian's singular values concentrate around 1), while Gaussian kernels spread them.",
    setup=f"cnn(depth={DEPTH}, channels={CHANNELS}, tanh) on 8x8 inputs at the mean-field fixed point",
    why="Isometry is a property of the network at initialization; 8x8 inputs keep the exact Jacobian (1024 x 1024) "
        "cheap, and delta-orthogonal convolutions act on each pixel alone, so the image size does not change the claim.",
    budget_s=60.0, full_setup=f"depth {FULL_DEPTH}",
    run=_run,
))  # fmt: skip
