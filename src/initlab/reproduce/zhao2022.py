"""Zhao et al. (2022): ZerO, deterministic initialization from zeros and ones, and the training degeneracy it avoids.

ZerO initializes every Dense kernel with a partial identity, and a layer that widens with a
Hadamard transform (Algorithm 1): no random numbers at all, so every run starts from the same
network. Their Theorem 1 says why the Hadamard transform is needed: with partial identities only
("identity initialization"), the units a widening layer adds beyond its input's dimension start at
exactly zero and, ReLU's derivative at zero being zero, never receive a gradient; so the update of
every later square layer, ``W - I``, keeps a rank at most the input dimension, however wide the
network (their Figure 3, measured as the notebook of their repository does: ``matrix_rank`` with
tolerance 1e-4 on the third layer's ``W - I``). ZerO's Hadamard transform mixes every unit in, so
the rank exceeds the input dimension; and ZerO trains as well as random initialization.

Set-up, as their MNIST example (``jiaweizzhao/ZerO-initialization``, ``example_mnist.ipynb``): an
MLP 784-784-1024-1024-10 with ReLU, SGD 0.1 without momentum, batch 64, softmax cross-entropy;
ZerO, partial identity (Keras's ``Identity``: ``eye(in, out)``) and PyTorch's kaiming_normal
(fan_in, ReLU gain) for every kernel. Scaled down to ``EPOCHS`` epochs of the 20 (their learning
rate schedule steps first at epoch 12); initlab's MLP has biases, started at zero (theirs has none):
a bias of a never-activated unit receives no gradient either, so Theorem 1's bound still holds.
Bands: the bound itself (rank at most 784, Theorem 1); above it for ZerO; ZerO's validation
accuracy within 2 points of the random initialization's ("comparable"). The 3 epochs were chosen
after one exploratory run of 1 epoch (ranks: ZerO 809, identity 500; validation accuracy ZerO
0.932, identity 0.927, Kaiming 0.941), in which every check would already have passed; then
3 epochs gave ZerO 914, identity 537, validation 0.976, 0.973, 0.976.
"""

from __future__ import annotations

import numpy as np

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, register, train_with_parameters

PAPER = Paper(
    "Jiawei Zhao, Florian Schäfer and Anima Anandkumar", 2022,
    "ZerO Initialization: Initializing Neural Networks with only Zeros and Ones", "TMLR 2022",
)  # fmt: skip
INPUTS, WIDTH = 784, 1024
EPOCHS, FULL_EPOCHS = 3, 20
SEED = 1
RANK_TOLERANCE = 1e-4
"""As their notebook's ``compute_rank``: singular values above this count."""
COMPARABLE = 0.02
"""ZerO's validation accuracy within this of the random initialization's."""
SCHEMES = {"ZerO": "zero_hadamard", "partial identity": "identity", "random (Kaiming)": "torch.kaiming_normal"}
SQUARE_LAYER = "Dense_2"
"""Their ``l3``, the first square layer after the widening one."""


def residual_spectrum(kernel: np.ndarray) -> np.ndarray:
    """The singular values of ``W - I`` for a square kernel, largest first (float64)."""
    kernel = np.asarray(kernel, np.float64)
    return np.linalg.svd(kernel - np.eye(len(kernel)), compute_uv=False)


def _kernels(params) -> dict[str, np.ndarray]:
    """Every Dense kernel by layer name (``{"Dense_0": array, ...}``)."""
    from initlab.nn.flax_model import flat_params

    return {path.removesuffix("/kernel"): np.asarray(value) for path, value in flat_params(params).items()
            if path.endswith("/kernel")}  # fmt: skip


def _run(context: Context) -> Outcome:
    from initlab.training.config import TrainConfig

    epochs = FULL_EPOCHS if context.full else EPOCHS

    def config(spec: str, seed: int, epochs: int) -> TrainConfig:
        return TrainConfig(
            hidden_units=(INPUTS, WIDTH, WIDTH), activation="relu", kernel_initializer=spec, output_kernel_initializer=spec,
            loss="categorical_crossentropy", optimizer="sgd(learning_rate=0.1)", batch_size=64, epochs=epochs, seed=seed,
        )  # fmt: skip

    # Deterministic: ZerO's network is the same for every seed (checked on the initial parameters).
    from initlab.training.loop import init_key

    mlp = config(SCHEMES["ZerO"], 0, 1).model(INPUTS, 10)
    first, second = (_kernels(mlp.init(init_key(seed))) for seed in (context.seed, context.seed + 1))
    seed_difference = max(float(np.abs(first[name] - second[name]).max()) for name in first)
    names = list(SCHEMES)
    results = train_with_parameters(context, names, [config(SCHEMES[name], SEED + context.seed, epochs) for name in names])
    by_name = dict(zip(names, results))
    spectra = {name: residual_spectrum(_kernels(by_name[name].params)[SQUARE_LAYER]) for name in names}
    ranks = {name: int((spectra[name] > RANK_TOLERANCE).sum()) for name in names}
    accuracy = {name: float(by_name[name].history["val_accuracy"][-1]) for name in names}
    checks = [
        Check(
            name="ZerO: largest difference between the initial kernels of two seeds",
            claim="ZerO is deterministic: every run starts from the same network", measured=seed_difference,
            band=(0.0, 0.0), published=0.0, basis="exact: no random numbers are drawn",
        ),
        Check(
            name=f"partial identity: rank of {SQUARE_LAYER}'s W - I after {epochs} epoch(s)",
            claim=f"identity initialization's training degeneracy: the rank of W - I stays at most the input "
                  f"dimension ({INPUTS}) however wide the layer ({WIDTH})",
            measured=float(ranks["partial identity"]), band=(0.0, float(INPUTS)), published=float(INPUTS),
            basis=f"Theorem 1's bound; rank counts singular values above {RANK_TOLERANCE:g}, as their notebook",
        ),
        Check(
            name=f"ZerO: rank of {SQUARE_LAYER}'s W - I after {epochs} epoch(s)",
            claim="ZerO's Hadamard transform breaks the degeneracy: the rank exceeds the input dimension",
            measured=float(ranks["ZerO"]), band=(float(INPUTS + 1), float(WIDTH)),
            basis=f"above Theorem 1's bound for identity initialization ({INPUTS}), at most the width",
        ),
        Check(
            name=f"ZerO's validation accuracy minus random initialization's, after {epochs} epoch(s)",
            claim="ZerO trains as well as random initialization", measured=accuracy["ZerO"] - accuracy["random (Kaiming)"],
            band=(-COMPARABLE, COMPARABLE), basis=f"comparable: within {COMPARABLE * 100:g} points (set before the run)",
        ),
    ]  # fmt: skip
    path = context.folder / "training_degeneracy.png"
    _figure(spectra, {name: by_name[name].history for name in names}, path)
    caption = (
        f"Left: the singular values of {SQUARE_LAYER}'s W - I (their l3) after {epochs} epoch(s), largest first: "
        f"identity initialization's fall to zero after {INPUTS} (the input dimension, Theorem 1), ZerO's go on "
        f"(the rank counts values above {RANK_TOLERANCE:g}, dotted). Right: validation accuracy per epoch."
    )
    data = {"ranks": ranks, "val_accuracy": accuracy, "seed_difference": seed_difference,
            "history": {name: by_name[name].history for name in names}, "epochs": epochs}  # fmt: skip
    setup = (f"MLP {INPUTS}-{INPUTS}-{WIDTH}-{WIDTH}-10, ReLU, SGD 0.1, batch 64, {epochs} epoch(s), seed "
             f"{SEED + context.seed}; ZerO, partial identity and kaiming_normal for every kernel")  # fmt: skip
    return Outcome(checks=checks, figures=[(path, caption)], data=data, setup=setup)


def _figure(spectra: dict, histories: dict, path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    colors = {"ZerO": "#D55E00", "partial identity": "#0072B2", "random (Kaiming)": "#777777"}
    with style():
        figure, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
        for name in ("ZerO", "partial identity"):
            values = np.maximum(spectra[name], 1e-12)
            left.plot(np.arange(1, len(values) + 1), values, color=colors[name], lw=1.5, label=name)
        left.axvline(INPUTS, color="black", lw=0.8, ls="--", label=f"input dimension {INPUTS}")
        left.axhline(RANK_TOLERANCE, color="grey", lw=0.8, ls=":", label=f"rank tolerance {RANK_TOLERANCE:g}")
        left.set_yscale("log")
        left.set_ylim(1e-9, None)
        left.set_xlabel("index")
        left.set_ylabel(rf"singular value of $W - I$ ({SQUARE_LAYER})")
        left.legend(fontsize=7, frameon=False)
        for name, history in histories.items():
            values = history["val_accuracy"]
            right.plot(np.arange(1, len(values) + 1), values, "o-", color=colors[name], ms=4, label=name)
        right.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        right.set_xlabel("epoch")
        right.set_ylabel("validation accuracy")
        right.legend(fontsize=7, frameon=False)
        figure.suptitle("Zhao et al. 2022: ZerO avoids identity initialization's training degeneracy", fontsize=10)
        save(figure, path)


register(Reproduction(
    name="zhao2022", paper=PAPER,
    claim="ZerO initializes deterministically with zeros, ones and Hadamard transforms; identity initialization "
          "alone leaves a wide network's updates of rank at most its input dimension (a training degeneracy), "
          "which ZerO's Hadamard transform breaks, and ZerO trains as well as random initialization.",
    setup=f"MLP {INPUTS}-{INPUTS}-{WIDTH}-{WIDTH}-10 on MNIST, ReLU, SGD 0.1, batch 64, {EPOCHS} epochs",
    why="Their own MNIST example of Theorem 1, at their width and learning rate, for fewer epochs: the bound is "
        "exact at every step (the added units never receive a gradient), so a short run tests it as well as a "
        "long one, and ZerO's rank already rises above it.",
    budget_s=180.0, full_setup=f"the same network for their {FULL_EPOCHS} epochs",
    run=_run,
))  # fmt: skip
