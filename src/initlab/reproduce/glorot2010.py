"""Glorot & Bengio (2010): the standard initialization shrinks activations and back-propagated gradients layer by layer; the normalized one keeps them.

Their analysis (section 4.2, equations 12-16) of a tanh network near its linear regime: each
layer multiplies the forward variance by ``n_in Var[W]`` and the back-propagated gradient's
variance by ``n_out Var[W]``. The standard initialization ``U[-1/sqrt(n), 1/sqrt(n)]`` has
``n Var[W] = 1/3``: both shrink by 3 per layer (their Figures 6 and 7: activations narrowing
going up, gradients going down). The normalized initialization ``U[+-sqrt(6 / (n_in +
n_out))]`` (glorot_uniform) has ``n Var[W] = 1`` between equal layers: both are kept.

Here: their five tanh hidden layers of 1000 units on MNIST inputs at initialization
(:func:`initlab.measure.propagation.propagate`), a fixed 10-unit readout scored against random
targets giving the backward signal. Each check is the geometric mean over the layers of the
measured per-layer factor, against the Gaussian (mean-field) prediction at the measured
pre-activation variances: ``sigma_w^2 E[tanh(z)^2] / q`` forward and ``sigma_w^2 E[tanh'(z)^2]``
backward, ``z ~ N(0, q)``, which tends to the paper's ``n Var[W]`` in the linear regime. Not
reproduced here: their Figure 2 (the top sigmoid layer's early saturation during training).
"""

from __future__ import annotations

import math

import numpy as np

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, register

PAPER = Paper(
    "Xavier Glorot and Yoshua Bengio", 2010,
    "Understanding the difficulty of training deep feedforward neural networks", "AISTATS 2010",
)  # fmt: skip
INITIALIZERS = {
    "standard U[-1/sqrt(n), 1/sqrt(n)]": "variance_scaling(scale=0.3333333333333333, mode='fan_in', distribution='uniform')",
    "normalized (glorot_uniform)": "glorot_uniform",
}
PUBLISHED = {"standard U[-1/sqrt(n), 1/sqrt(n)]": 1 / 3, "normalized (glorot_uniform)": 1.0}
DEPTH, WIDTH, BATCH, FULL_BATCH = 5, 1000, 1000, 10000
TOLERANCE = 0.10
"""Relative half-width of the bands: one network draw's per-layer variance ratios fluctuate by
about sqrt(2 / n) = 4.5% at n = 1000 (their geometric mean over 4 layers by ~2.2%), and the
Gaussian prediction ignores the correlations between units: 10% is about 4.5 of those errors."""


def _gaussian_moment(fn, q: float, points: int = 80) -> float:
    """``E[fn(z)]``, ``z ~ N(0, q)``, by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    return float(weights @ fn(math.sqrt(q) * nodes) / math.sqrt(2 * math.pi))


def _run(context: Context) -> Outcome:
    from initlab.measure.propagation import propagate

    batch = FULL_BATCH if context.full else BATCH
    context.stage("propagation", 0, 1)
    result = propagate(list(INITIALIZERS.values()), depth=DEPTH, width=WIDTH, activation="tanh", inputs="mnist",
                       batch=batch, seed=context.seed)  # fmt: skip
    context.stage("propagation", 1, 1)
    checks, layers = [], {}
    for name, spec in INITIALIZERS.items():
        run = result.run(spec)
        q = np.asarray(run.preactivation_variance)
        gradients = np.asarray(run.gradient_variance)
        sigma_w2 = np.asarray(run.sigma_w2)  # each hidden kernel's measured variance x fan-in
        forward = q[1:] / q[:-1]
        backward = gradients[:-1] / gradients[1:]
        predicted_forward = np.array(
            [sigma_w2[l + 1] * _gaussian_moment(lambda z: np.tanh(z) ** 2, q[l]) / q[l] for l in range(DEPTH - 1)]
        )
        predicted_backward = np.array(
            [sigma_w2[l + 1] * _gaussian_moment(lambda z: (1 - np.tanh(z) ** 2) ** 2, q[l]) for l in range(DEPTH - 1)]
        )
        layers[name] = {"preactivation_variance": q.tolist(), "gradient_variance": gradients.tolist(),
                        "sigma_w2": sigma_w2.tolist(), "forward_factor": forward.tolist(),
                        "backward_factor": backward.tolist(), "predicted_forward_factor": predicted_forward.tolist(),
                        "predicted_backward_factor": predicted_backward.tolist(),
                        "activation_histogram": run.activation_histogram,
                        "gradient_histogram": run.gradient_histogram}  # fmt: skip
        for direction, measured, predicted in (("forward", forward, predicted_forward),
                                               ("backward", backward, predicted_backward)):  # fmt: skip
            expected = float(np.exp(np.mean(np.log(predicted))))
            what = "pre-activation variance, layer to layer going up" if direction == "forward" else \
                "back-propagated gradient variance, layer to layer going down"  # fmt: skip
            checks.append(Check(
                name=f"{name}: {direction} factor per layer (geometric mean over {DEPTH - 1} layers)",
                claim=f"each tanh layer multiplies the {what} by n Var[W] = {PUBLISHED[name]:.3g} near the linear regime",
                measured=float(np.exp(np.mean(np.log(measured)))),
                band=(expected * (1 - TOLERANCE), expected * (1 + TOLERANCE)), published=PUBLISHED[name],
                basis=f"Gaussian prediction {expected:.4f} at the measured variances, +-{TOLERANCE:.0%}",
            ))  # fmt: skip
    figure = context.folder / "activations_and_gradients.png"
    _figure(layers, figure)
    caption = (
        f"As Glorot & Bengio's Figures 6 and 7: normalized histograms of every hidden layer's activations (left) and "
        f"back-propagated gradients dL/dz (right) at initialization, {DEPTH} tanh layers of {WIDTH} units on {batch} "
        "MNIST images; top: the standard initialization, bottom: the normalized one."
    )
    setup = f"{DEPTH} tanh layers of {WIDTH} units at initialization, {batch} MNIST images, one network draw per initializer"
    return Outcome(checks=checks, figures=[(figure, caption)], data={"layers": layers, "q0": result.q0}, setup=setup)


def _figure(layers: dict, path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, DEPTH))
    with style():
        figure, axes = plt.subplots(2, 2, figsize=(9.5, 6), layout="constrained")
        for row, (name, data) in zip(axes, layers.items()):
            for column, key, label in ((0, "activation_histogram", "activation value"),
                                       (1, "gradient_histogram", "back-propagated gradient dL/dz")):  # fmt: skip
                histogram = data[key]
                edges = np.asarray(histogram["edges"], float)
                centers = (edges[:-1] + edges[1:]) / 2
                for layer, counts in enumerate(histogram["counts"]):
                    counts = np.asarray(counts, float)
                    row[column].plot(centers, counts / counts.sum(), color=colors[layer], lw=1.2, label=f"layer {layer + 1}")
                row[column].set_xlabel(label)
                row[column].set_title(name, fontsize=9)
            row[0].set_ylabel("fraction")
        axes[0][1].legend(fontsize=7, frameon=False)
        figure.suptitle("Glorot & Bengio 2010: activations and gradients by layer at initialization (tanh)", fontsize=10)
        save(figure, path)


register(Reproduction(
    name="glorot2010", paper=PAPER,
    claim="With the standard initialization U[-1/sqrt(n), 1/sqrt(n)] the variances of a tanh network's activations "
          "(going up) and back-propagated gradients (going down) shrink by about 3 per layer; the normalized "
          "initialization keeps them.",
    setup=f"{DEPTH} tanh layers of {WIDTH} units at initialization on {BATCH} MNIST images",
    why="The claim is about a network at initialization, whose statistics need no training; their 5 x 1000 tanh "
        "network is small enough to use as it is, on MNIST images instead of Shapeset.",
    budget_s=60.0, full_setup=f"the same network on {FULL_BATCH} MNIST images",
    run=_run,
))  # fmt: skip
