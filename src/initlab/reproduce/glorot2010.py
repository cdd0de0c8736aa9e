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
reproduced here: Shapeset-3x2 (MNIST stands in).

Their Figure 2, the early saturation of the top sigmoid layer: a network of four sigmoid hidden
layers with the standard initialization, trained by SGD, pushes its top hidden layer's
activations to 0 early in training while the lower layers stay near 0.5 (the softmax first
learns from its biases, and the top layer's noisy outputs are driven to zero). Here: four sigmoid
layers of ``SATURATION_WIDTH`` on the first 2000 MNIST training images (1000 test), cross-entropy,
SGD 0.1 in batches of 10 (their small batches), ``SATURATION_EPOCHS`` epochs of 200 steps, every
hidden layer's mean activation probed after each epoch. Bands (fixed before this reproduction's
run, after one exploratory run of the same set-up): the top layer's mean falls below 0.1 (a fifth
of its start at 0.5: saturated at 0) while the first layer's mean stays within 0.3-0.7.
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
SATURATION_WIDTH, SATURATION_EPOCHS, FULL_SATURATION_EPOCHS = 256, 40, 200
SATURATION_TRAIN, SATURATION_TEST = 2000, 1000
TOP_SATURATED, FIRST_UNSATURATED = (0.0, 0.1), (0.3, 0.7)
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
    context.stage("training (their Figure 2)", 0, 1)
    means = _top_layer_saturation(context)
    context.stage("training (their Figure 2)", 1, 1)
    top, first = np.asarray(means[str(4)]), np.asarray(means[str(1)])
    checks.append(Check(
        name="sigmoid, standard init: the top hidden layer's lowest mean activation during training",
        claim="the top sigmoid layer is quickly pushed into saturation at 0 (their Figure 2)", measured=float(top.min()),
        band=TOP_SATURATED, basis="below a fifth of its 0.5 at initialization (fixed before the run)",
    ))  # fmt: skip
    checks.append(Check(
        name="sigmoid, standard init: the first hidden layer's mean activation, farthest from 0.5",
        claim="the lower layers stay unsaturated", measured=float(first[np.argmax(np.abs(first - 0.5))]),
        band=FIRST_UNSATURATED, basis="within 0.3-0.7 at every epoch (fixed before the run)",
    ))  # fmt: skip
    saturation_figure = context.folder / "top_layer_saturation.png"
    _saturation_figure(means, saturation_figure)
    figure = context.folder / "activations_and_gradients.png"
    _figure(layers, figure)
    caption = (
        f"As Glorot & Bengio's Figures 6 and 7: normalized histograms of every hidden layer's activations (left) and "
        f"back-propagated gradients dL/dz (right) at initialization, {DEPTH} tanh layers of {WIDTH} units on {batch} "
        "MNIST images; top: the standard initialization, bottom: the normalized one."
    )
    saturation_caption = (
        f"As Glorot & Bengio's Figure 2: the mean activation of each of four sigmoid hidden layers ({SATURATION_WIDTH} "
        f"units, standard initialization) during training on {SATURATION_TRAIN} MNIST images, SGD 0.1 in batches of 10."
    )
    setup = (f"{DEPTH} tanh layers of {WIDTH} units at initialization, {batch} MNIST images, one network draw per "
             f"initializer; Figure 2: 4 sigmoid layers of {SATURATION_WIDTH} trained on {SATURATION_TRAIN} MNIST images")
    return Outcome(checks=checks, figures=[(saturation_figure, saturation_caption), (figure, caption)],
                   data={"layers": layers, "q0": result.q0, "saturation_means": means}, setup=setup)  # fmt: skip


def _top_layer_saturation(context: Context) -> dict[str, list[float]]:
    """Each hidden layer's mean activation (probes, by layer number) at initialization and after every epoch."""
    from initlab.data import shipped_mnist_path
    from initlab.experiments.store import Store
    from initlab.files import replacing
    from initlab.reproduce.base import train
    from initlab.training.config import TrainConfig

    shipped = np.load(shipped_mnist_path())
    subset = context.folder / "mnist_first_2000.npz"
    with replacing(subset) as temporary, open(temporary, "wb") as file:  # whole or not at all
        np.savez_compressed(file, x_train=shipped["x_train"][:SATURATION_TRAIN],
                            y_train=shipped["y_train"][:SATURATION_TRAIN], x_test=shipped["x_test"][:SATURATION_TEST],
                            y_test=shipped["y_test"][:SATURATION_TEST])  # fmt: skip
    standard = INITIALIZERS["standard U[-1/sqrt(n), 1/sqrt(n)]"]
    config = TrainConfig(
        data_file=str(subset), hidden_units=(SATURATION_WIDTH,) * 4, activation="sigmoid", kernel_initializer=standard,
        output_kernel_initializer=standard, loss="categorical_crossentropy", optimizer="sgd(learning_rate=0.1)",
        batch_size=10, epochs=FULL_SATURATION_EPOCHS if context.full else SATURATION_EPOCHS, probe_every=1,
        seed=context.seed,
    )  # fmt: skip
    run_id = train(context, ["Figure 2"], [config])[config.config_hash()]["run_id"]
    with Store(context.store, read_only=True) as store:
        rows = store.metrics([run_id])
    means: dict[str, dict[int, float]] = {}
    for epoch, layer, statistic, value in zip(rows["epoch"], rows["layer"], rows["statistic"], rows["value"]):
        if statistic == "activation_mean" and layer in ("1", "2", "3", "4"):
            means.setdefault(layer, {})[int(epoch)] = float(value)
    return {layer: [values[e] for e in sorted(values)] for layer, values in sorted(means.items())}


def _saturation_figure(means: dict[str, list[float]], path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(means)))
    with style():
        figure, axis = plt.subplots(figsize=(6, 3.6), layout="constrained")
        for (layer, values), color in zip(means.items(), colors):
            axis.plot(np.arange(len(values)), values, color=color, lw=1.5, label=f"layer {layer}")
        axis.set_xlabel("epoch (0: initialization)")
        axis.set_ylabel("mean sigmoid activation")
        axis.set_ylim(0, 1)
        axis.legend(fontsize=8, frameon=False)
        axis.set_title("Glorot & Bengio 2010, Figure 2: the top hidden layer saturates at 0", fontsize=10)
        save(figure, path)


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
    budget_s=90.0, full_setup=f"the same network on {FULL_BATCH} MNIST images; Figure 2 for {FULL_SATURATION_EPOCHS} epochs",
    run=_run,
))  # fmt: skip
