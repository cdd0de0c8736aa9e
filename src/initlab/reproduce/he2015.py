"""He et al. (2015): with ReLU, weights of variance 2/n keep the forward signal; 1/n ("Xavier") halves it per layer.

He et al.'s equation (10): for ReLU layers, ``Var[y_L] = Var[y_1] prod_l (n_l Var[w_l] / 2)``, so
``Var[w] = 2 / n`` keeps every layer's signal (their equation 10's condition) while ``Var[w] =
1 / n`` (their "Xavier") multiplies it by 1/2 per layer: 2^-29 over a 30-layer net. Their Figure 3:
a 30-layer ReLU net trains with theirs and stalls completely with Xavier's.

Two parts here:

1. **Forward signal by depth**, 30 ReLU layers of width 256 on one Gaussian input, many network
   draws (vmapped over keys): the slope of log2 ||a^l||^2 against l. Exact reference: the
   per-layer log ratio is ``log(c * 2 S / n)`` with ``c = n Var[w] / 2`` and ``S = chi^2_K``,
   ``K ~ Bin(n, 1/2)`` (:mod:`initlab.reproduce.hanin2018`), so its mean is ``log2 c +
   (E[psi(K/2)] + log 2 - log(n/2)) / ln 2`` (-0.014 at n = 256: Jensen's gap) and its variance
   per layer ``v(n) / ln(2)^2``.
2. **Training a 30-layer ReLU MLP on MNIST** (width 128, cross-entropy, SGD with momentum,
   2 epochs, 2 seeds): theirs reaches MNIST's usual accuracy, Xavier's stays at chance.
"""

from __future__ import annotations

import math

import numpy as np

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, final_accuracies, register
from initlab.reproduce.hanin2018 import exact_log_variance

PAPER = Paper(
    "Kaiming He, Xiangyu Zhang, Shaoqing Ren and Jian Sun", 2015,
    "Delving Deep into Rectifiers: Surpassing Human-Level Performance on ImageNet Classification", "ICCV 2015",
)  # fmt: skip
INITIALIZERS = {
    "He (Var 2/n)": "variance_scaling(scale=2.0, mode='fan_in', distribution='untruncated_normal')",
    "Xavier (Var 1/n)": "variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')",
}
GAINS = {"He (Var 2/n)": 1.0, "Xavier (Var 1/n)": 0.5}
"""``n Var[w] / 2``, each layer's factor on the signal (He et al., equation 10)."""
DEPTH, WIDTH, DRAWS, FULL_DRAWS = 30, 256, 64, 1024
TRAIN_DEPTH, TRAIN_WIDTH, EPOCHS, FULL_EPOCHS, SEEDS = 30, 128, 2, 10, (0, 1)
TRAINS, STALLS = (0.9, 1.0), (0.0, 0.2)
""""Trains": MNIST's usual accuracy of an MLP (a one-hidden-layer net reaches ~0.97); "stalls": chance (0.1) with
room for a few lucky classes."""
SE_BAND = 4.0


def _mean_log2_ratio(width: int, gain: float) -> float:
    """The exact mean of log2(||a^l||^2 / ||a^{l-1}||^2) for Gaussian weights of variance ``2 gain / width``."""
    from scipy.special import digamma, gammaln

    k = np.arange(1, width + 1)
    log_p = gammaln(width + 1) - gammaln(k + 1) - gammaln(width - k + 1) - width * math.log(2)
    p = np.exp(log_p - np.logaddexp.reduce(log_p))
    # log(2 gain S / n) with S = chi^2_K: E[log S] = E[psi(K/2)] + log 2.
    return (math.log(2 * gain / width) + float(p @ digamma(k / 2)) + math.log(2)) / math.log(2)


def _run(context: Context) -> Outcome:
    from initlab.measure.propagation import squared_norms_over_draws

    draws = FULL_DRAWS if context.full else DRAWS
    x = np.random.default_rng(context.seed).normal(size=WIDTH)
    checks, forward = [], {}
    for index, (name, spec) in enumerate(INITIALIZERS.items()):
        context.stage("forward signal", index, len(INITIALIZERS))
        norms = squared_norms_over_draws(spec, x, [WIDTH] * DEPTH, draws=draws, seed=context.seed + index)
        log2_norms = np.log2(norms)
        slopes = (log2_norms[:, -1] - log2_norms[:, 0]) / (DEPTH - 1)  # per draw: the mean per-layer log2 ratio
        exact = _mean_log2_ratio(WIDTH, GAINS[name])
        se = math.sqrt(exact_log_variance(WIDTH) / (DEPTH - 1) / draws) / math.log(2)
        forward[name] = {"mean_log2_norm": log2_norms.mean(axis=0).tolist(), "slope": float(slopes.mean()),
                         "slope_se": float(slopes.std(ddof=1) / math.sqrt(draws)), "exact_slope": exact}  # fmt: skip
        checks.append(Check(
            name=f"forward signal, {name}: log2 change per layer",
            claim=f"each ReLU layer multiplies the signal by n Var[w] / 2 = {GAINS[name]:g}",
            measured=float(slopes.mean()), band=(exact - SE_BAND * se, exact + SE_BAND * se),
            published=math.log2(GAINS[name]),
            basis=f"exact {exact:+.4f} (log2 {GAINS[name]:g} and Jensen's gap at width {WIDTH}) +- {SE_BAND:g} "
                  f"standard errors ({draws} draws)",
        ))  # fmt: skip
    context.stage("forward signal", len(INITIALIZERS), len(INITIALIZERS))

    training = _train(context)
    for name, accuracies in training.items():
        band = TRAINS if GAINS[name] == 1.0 else STALLS
        verb = "trains" if band is TRAINS else "stalls at chance"
        finite = [a for a in accuracies.values() if math.isfinite(a)]
        checks.append(Check(
            name=f"{TRAIN_DEPTH}-layer ReLU MLP on MNIST, {name}: lowest final val accuracy over seeds"
            if band is TRAINS else f"{TRAIN_DEPTH}-layer ReLU MLP on MNIST, {name}: highest final val accuracy over seeds",
            claim=f"a {TRAIN_DEPTH}-layer ReLU net {verb} with this initialization (He et al., Figure 3)",
            measured=(min(finite) if band is TRAINS else max(finite)) if len(finite) == len(accuracies) else math.nan,
            band=band, basis="trains: an MLP's usual MNIST accuracy; stalls: chance (0.1) with margin",
            reason="a seed diverged" if len(finite) < len(accuracies) else "",
        ))  # fmt: skip
    figure = context.folder / "forward_signal.png"
    _figure(forward, training, figure)
    caption = (
        f"Left: the mean over {draws} network draws of log2 ||a^l||^2 (one Gaussian input) through {DEPTH} ReLU layers "
        f"of width {WIDTH}, with He et al.'s initialization (variance 2/n) and Xavier's (1/n); dashed: equation 10's "
        f"prediction. Right: final validation accuracy of {TRAIN_DEPTH}-layer ReLU MLPs (width {TRAIN_WIDTH}) on "
        f"MNIST, per seed."
    )
    epochs = FULL_EPOCHS if context.full else EPOCHS
    setup = (
        f"forward: {DEPTH} ReLU layers of width {WIDTH}, one Gaussian input, {draws} network draws per initializer; "
        f"training: {TRAIN_DEPTH} x {TRAIN_WIDTH} ReLU MLP on MNIST, softmax cross-entropy, SGD 0.01 with momentum "
        f"0.9, batch 128, {epochs} epochs, seeds {', '.join(map(str, SEEDS))}"
    )
    return Outcome(checks=checks, figures=[(figure, caption)], data={"forward": forward, "training": training}, setup=setup)


def _train(context: Context) -> dict[str, dict[int, float]]:
    from initlab.training.config import TrainConfig

    epochs = FULL_EPOCHS if context.full else EPOCHS
    runs = [(name, context.seed + seed) for name in INITIALIZERS for seed in SEEDS]
    configs = [
        TrainConfig(
            hidden_units=(TRAIN_WIDTH,) * TRAIN_DEPTH, activation="relu", kernel_initializer=INITIALIZERS[name],
            output_kernel_initializer=INITIALIZERS[name], loss="categorical_crossentropy",
            optimizer="sgd(learning_rate=0.01, momentum=0.9)", epochs=epochs, seed=seed,
        )
        for name, seed in runs
    ]  # fmt: skip
    return final_accuracies(context, runs, configs)


def _figure(forward: dict, training: dict, path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    colors = {"He (Var 2/n)": "#0072B2", "Xavier (Var 1/n)": "#D55E00"}
    with style():
        figure, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained",
                                             gridspec_kw={"width_ratios": [1.6, 1]})  # fmt: skip
        layers = np.arange(1, DEPTH + 1)
        for name, data in forward.items():
            values = np.asarray(data["mean_log2_norm"])
            left.plot(layers, values, marker="o", ms=3, color=colors[name], label=name)
            left.plot(layers, values[0] + math.log2(GAINS[name]) * (layers - 1), "--", color=colors[name], lw=1)
        left.set_xlabel("layer")
        left.set_ylabel(r"$\log_2 \|a^l\|^2$ (mean over draws)")
        left.legend(frameon=False, fontsize=8)
        for position, (name, accuracies) in enumerate(training.items()):
            values = [accuracies[s] for s in sorted(accuracies)]
            right.scatter([position] * len(values), values, color=colors[name], s=24, zorder=3)
        right.set_xticks(range(len(training)), list(training), fontsize=8)
        right.axhline(0.1, color="grey", lw=0.8, ls=":")
        right.set_ylim(0, 1)
        right.set_xlim(-0.6, len(training) - 0.4)
        right.set_ylabel("final val accuracy")
        right.set_title(f"{TRAIN_DEPTH}-layer ReLU MLP, MNIST", fontsize=9)
        figure.suptitle("He et al. 2015: variance 2/n keeps a ReLU net's signal; 1/n halves it per layer", fontsize=10)
        save(figure, path)


register(Reproduction(
    name="he2015", paper=PAPER,
    claim="For ReLU layers, weights of variance 2/n keep the forward signal's scale at every depth while 1/n "
          "('Xavier') halves it per layer; a 30-layer ReLU net trains with the former and stalls with the latter.",
    setup=f"{DEPTH} ReLU layers of width {WIDTH} at initialization ({DRAWS} draws); a {TRAIN_DEPTH} x "
          f"{TRAIN_WIDTH} ReLU MLP trained on MNIST for {EPOCHS} epochs, {len(SEEDS)} seeds",
    why="Equation 10 is about any stack of ReLU layers, so an MLP tests it as a conv net does; at 30 layers Xavier's "
        "factor 2^-29 leaves no usable gradient, which MNIST shows as surely as ImageNet, in seconds.",
    budget_s=120.0,
    full_setup=f"the same networks, {FULL_DRAWS} draws and {FULL_EPOCHS} training epochs",
    run=_run,
))  # fmt: skip
