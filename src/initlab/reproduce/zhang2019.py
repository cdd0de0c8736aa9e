"""Zhang, Dauphin & Ma (2019): Fixup trains deep residual networks without normalization.

Their argument (Sec. 2, Theorem 1): with a standard initialization (He et al.), every residual
branch adds variance to the stream, so a normalization-free residual network's activations, and
with them its logits and gradients, grow exponentially with depth, and training blows up. Fixup
(Sec. 3) zeroes the last layer of every branch and the classifier, scales the other branch layers
by ``L^(-1/(2m-2))`` and adds scalar biases and multipliers: the network starts as the identity
of its stem and trains, at the learning rates BatchNorm networks use, as well as they do.

Set-up (scaled down): ``resmlp`` networks (``relu(x + W2 relu(W1 x))`` blocks, ``initlab list
models``) on MNIST. At initialization, ``INIT_DEPTH`` blocks of width ``INIT_WIDTH``, He-normal
(fan-in) kernels and zero biases, ``DRAWS`` network draws on 256 test images: the stream's
root-mean-square per block. Its reference is the mean-field recursion, an independent NumPy
computation: at infinite width a branch adds ``N(0, s^2)`` with ``s^2 = sigma_1^2 sigma_2^2 q / 2``
(``q`` the stream's mean square; 2 q for He) to each coordinate, then ``x <- relu(x + s z)``,
sampled with 10^6 coordinates. Training: ``TRAIN_DEPTH`` blocks of width ``TRAIN_WIDTH``, SGD 0.1
with momentum 0.9 (the paper's rate), softmax cross-entropy, batch 128, ``EPOCHS`` epochs, seeds
0 and 1: He without normalization, Fixup without normalization, He with BatchNorm.

Bands, fixed before any run: the mean log growth of the stream's mean square over the blocks
agrees with mean-field within 4 standard errors over draws plus the finite-width Jensen gap
``5 L / (2 n)`` of a log-normal spread (Hanin & Rolnick 2018); Fixup's stream is unchanged by
every block (to float32 rounding, 1e-6); Fixup and BatchNorm train (validation accuracy >= 0.9,
MNIST's usual for an MLP), He without normalization does not (diverged, or at most 0.2); Fixup's
accuracy is within 0.03 of BatchNorm's (the paper's CIFAR-10 gap is 0.6 points).
"""

from __future__ import annotations

import math

import numpy as np

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, final_accuracies, register

PAPER = Paper(
    "Hongyi Zhang, Yann N. Dauphin and Tengyu Ma", 2019, "Fixup Initialization: Residual Learning Without Normalization",
    "ICLR 2019",
)  # fmt: skip
HE = "he_normal"
INIT_DEPTH, INIT_WIDTH, DRAWS, FULL_DRAWS = 16, 256, 8, 32
TRAIN_DEPTH, TRAIN_WIDTH, EPOCHS, FULL_EPOCHS, SEEDS = 32, 64, 2, 10, (0, 1)
OPTIMIZER = "sgd(learning_rate=0.1, momentum=0.9)"
SE_BAND = 4.0
TRAINS, FAILS, GAP = (0.9, 1.0), (0.0, 0.2), 0.03
NETWORKS = {
    "He, no normalization": ("resmlp(depth={depth}, width={width}, norm='none')", HE),
    "Fixup, no normalization": ("resmlp(depth={depth}, width={width}, norm='none', scheme='fixup')", None),
    "He, BatchNorm": ("resmlp(depth={depth}, width={width}, norm='batch')", HE),
}


def mean_field_growth(depth: int, samples: int = 1_000_000, seed: int = 0, branch_scale: float = 1.0) -> np.ndarray:
    """``q_l / q_0`` for ``l = 1..depth`` of ``x <- relu(x + c sqrt(2 q) z)`` from ``x_0 = relu(z)``.

    He branches (``sigma_1^2 = sigma_2^2 = 2``) times ``c = branch_scale`` (Depth-muP: ``1/sqrt(L)``).
    """
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal(samples), 0.0)
    q0, growth = float(np.mean(x * x)), []
    for _ in range(depth):
        q = float(np.mean(x * x))
        x = np.maximum(x + branch_scale * math.sqrt(2 * q) * rng.standard_normal(samples), 0.0)
        growth.append(float(np.mean(x * x)) / q0)
    return np.array(growth)


def _streams(context: Context, draws: int) -> dict[str, np.ndarray]:
    """Per network and draw, the stream's mean square after each block over the one entering block 0.

    On 256 MNIST test images, one compiled program per network for all its draws.
    """
    import jax

    from initlab import data
    from initlab.nn.model_specs import build_architecture
    from initlab.training.config import TrainConfig

    images = data.load("mnist").features("test")[:256]
    out = {}
    for name in ("He, no normalization", "Fixup, no normalization"):
        template, kernel = NETWORKS[name]
        spec = template.format(depth=INIT_DEPTH, width=INIT_WIDTH)
        model = build_architecture(spec, (784,), 10)
        rules = TrainConfig(architecture=spec, **({"kernel_initializer": kernel} if kernel else {})).rules()
        rows = []
        for draw in range(draws):
            sown = model.sown(model.initialize(jax.random.key(context.seed + draw), rules)[0], images)
            rms = np.asarray(sown["stream_norm"], np.float64).reshape(INIT_DEPTH, -1)  # per block (and example)
            first = np.asarray(sown["skip_norm"][0], np.float64)
            rows.append(np.mean(rms**2, axis=1) / np.mean(first**2))
        out[name] = np.array(rows)
    return out


def _run(context: Context) -> Outcome:
    from initlab.training.config import TrainConfig

    draws = FULL_DRAWS if context.full else DRAWS
    epochs = FULL_EPOCHS if context.full else EPOCHS
    context.stage("residual streams at initialization", 0, 2)
    streams = _streams(context, draws)
    predicted = mean_field_growth(INIT_DEPTH, seed=context.seed)
    he_logs = np.log(streams["He, no normalization"])  # draws x blocks
    per_block = he_logs[:, -1] / INIT_DEPTH
    measured_rate, rate_se = float(per_block.mean()), float(per_block.std(ddof=1) / math.sqrt(draws))
    predicted_rate = float(math.log(predicted[-1]) / INIT_DEPTH)
    gap = 5 * INIT_DEPTH / (2 * INIT_WIDTH) / INIT_DEPTH  # per block
    fixup_change = float(np.abs(streams["Fixup, no normalization"] - 1).max())
    context.stage("training", 1, 2)
    runs = [(name, context.seed + seed) for name in NETWORKS for seed in SEEDS]
    configs = []
    for name, seed in runs:
        template, kernel = NETWORKS[name]
        configs.append(TrainConfig(
            architecture=template.format(depth=TRAIN_DEPTH, width=TRAIN_WIDTH), loss="categorical_crossentropy",
            optimizer=OPTIMIZER, epochs=epochs, seed=seed, **({"kernel_initializer": kernel} if kernel else {}),
        ))  # fmt: skip
    training = final_accuracies(context, runs, configs)

    def mean_accuracy(name: str) -> float:
        values = np.array(list(training[name].values()), float)
        return float(np.mean(np.nan_to_num(values, nan=0.0)))  # diverged: no accuracy

    he, fixup, batch = (mean_accuracy(name) for name in NETWORKS)
    checks = [
        Check(name=f"He, no normalization: log growth of the stream's mean square per block ({INIT_DEPTH} blocks)",
              claim="with a standard initialization every residual branch adds variance: the stream grows exponentially",
              measured=measured_rate, published=predicted_rate,
              band=(predicted_rate - 2 * gap - SE_BAND * rate_se, predicted_rate + SE_BAND * rate_se),
              basis=f"mean-field recursion (NumPy, 10^6 samples) {predicted_rate:.4f}; {SE_BAND:g} standard errors over "
                    f"{draws} draws, and below it the Jensen gap 5L/(2n) per block, twice"),
        Check(name="Fixup: largest change of the stream's mean square across blocks",
              claim="Fixup's zero-initialized branches make every block the identity at initialization",
              measured=fixup_change, band=(0.0, 1e-6), published=0.0, basis="exact 0; float32 rounding"),
        Check(name=f"Fixup, {TRAIN_DEPTH} blocks, no normalization: validation accuracy",
              claim="Fixup trains a deep residual network without normalization", measured=fixup, band=TRAINS,
              basis="MNIST's usual accuracy for an MLP (a one-hidden-layer net reaches ~0.97)"),
        Check(name=f"He, {TRAIN_DEPTH} blocks, no normalization: validation accuracy (0 if diverged)",
              claim="the standard initialization without normalization fails at this learning rate", measured=he,
              band=FAILS, basis="chance (0.1) with room for a few classes, or divergence"),
        Check(name="Fixup's accuracy minus BatchNorm's", claim="Fixup matches a BatchNorm network",
              measured=fixup - batch, band=(-GAP, GAP), published=-0.0063,
              basis="within 3 points (the paper: ResNet-110 on CIFAR-10, 7.24% against 6.61% error)",
              reason=(f"Fixup ahead of BatchNorm here ({fixup:.3f} against {batch:.3f})" if fixup > batch
                      else f"BatchNorm ahead of Fixup here ({batch:.3f} against {fixup:.3f})")),
    ]  # fmt: skip
    figure = context.folder / "fixup.png"
    _figure(streams, predicted, training, figure)
    caption = (f"Left: the residual stream's mean square after each block over the stream's entering block 0, {INIT_DEPTH} "
               f"blocks of width {INIT_WIDTH} at initialization ({draws} draws, lines), with He kernels (the mean-field "
               f"recursion dashed) and with Fixup. Right: validation accuracy after {epochs} epochs of {OPTIMIZER}, "
               f"{TRAIN_DEPTH} blocks of width {TRAIN_WIDTH}, per seed (0: diverged).")  # fmt: skip
    setup = (f"resmlp on MNIST; at initialization {INIT_DEPTH} blocks x {INIT_WIDTH}, {draws} draws; training "
             f"{TRAIN_DEPTH} blocks x {TRAIN_WIDTH}, softmax cross-entropy, {OPTIMIZER}, batch 128, {epochs} epochs, "
             f"seeds {', '.join(map(str, SEEDS))}")  # fmt: skip
    data = {"mean_field_growth": predicted.tolist(), "streams": {k: v.tolist() for k, v in streams.items()},
            "training": training}  # fmt: skip
    return Outcome(checks=checks, figures=[(figure, caption)], data=data, setup=setup)


def _figure(streams: dict, predicted: np.ndarray, training: dict, path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    colors = {"He, no normalization": "#D55E00", "Fixup, no normalization": "#0072B2", "He, BatchNorm": "#009E73"}
    with style():
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
        blocks = np.arange(1, predicted.size + 1)
        for name, rows in streams.items():
            for index, row in enumerate(rows):
                left.plot(blocks, row, color=colors[name], lw=0.8, alpha=0.6, label=name if index == 0 else None)
        left.plot(blocks, predicted, "--", color="black", lw=1.2, label="mean-field (He)")
        left.set_yscale("log")
        left.set_xlabel("block")
        left.set_ylabel(r"stream mean square $q_l / q_0$")
        left.legend(frameon=False, fontsize=8)
        for position, (name, seeds) in enumerate(training.items()):
            values = np.nan_to_num(np.array(list(seeds.values()), float), nan=0.0)
            right.plot(np.full(values.size, position), values, "o", color=colors[name], ms=6)
        right.set_xticks(range(len(training)), list(training), fontsize=8)
        right.set_ylim(0, 1)
        right.axhline(0.1, color="grey", lw=0.8, ls=":")
        right.set_ylabel("validation accuracy")
        figure.suptitle("Zhang et al. 2019: Fixup keeps a residual network's stream and trains it without normalization",
                        fontsize=10)  # fmt: skip
        save(figure, path)


register(Reproduction(
    name="zhang2019", paper=PAPER,
    claim="With a standard initialization the residual stream of a network without normalization grows exponentially "
          "with depth and training fails; Fixup (zero last layer per branch, L^(-1/(2m-2)) rescaling) starts every "
          "block as the identity and trains as well as BatchNorm.",
    setup=f"resmlp on MNIST: {INIT_DEPTH} blocks x {INIT_WIDTH} at initialization, {TRAIN_DEPTH} blocks x "
          f"{TRAIN_WIDTH} trained for {EPOCHS} epochs",
    why="The stream's growth is a property of the initialization that residual MLPs share with ResNets (the same "
        "blocks with Dense layers); the training comparison keeps the paper's learning rate, where normalization or "
        "Fixup is needed, at a depth that runs in a minute.",
    budget_s=240.0, full_setup=f"{FULL_DRAWS} draws, {FULL_EPOCHS} epochs", run=_run,
))  # fmt: skip
