"""Wang et al. (2022), DeepNet: DeepNorm bounds the model update of a deep Post-LN Transformer.

Their analysis (Sec. 3-4, Theorem 4.1): a Post-LN Transformer's instability starts with a large
model update ``||F(x, theta_t) - F(x, theta_0)||`` early in training, which grows with depth;
DeepNorm (``x <- LN(alpha x + f(x))``, ``alpha = (2N)^(1/4)``, the value, output and MLP kernels
Xavier-normal with gain ``beta = (8N)^(-1/4)`` for a decoder of N layers) is derived to bound it
independently of depth; their Fig. 4 shows the updates of 6L to 100L models in the first steps.

Set-up (scaled down): decoder-only Transformers (d_model 64, 4 heads, MLP 4x, causal; ``initlab
list models``) of depths ``DEPTHS`` on the generated modular-addition task, Post-LN with Flax's
default initialization (LeCun normal, the variance of the paper's Xavier for square maps) against
DeepNorm, Adam 1e-3 without warm-up, batch 64, ``STEPS`` steps, seeds ``SEEDS``. Measured: the
change of the Transformer ``F`` (everything below the classifier head, which is trained too) after
every step, read through the initial head (a fixed linear map of the last position's features):
the RMS over a fixed batch of 256 held-out sequences of ``head_0(F_t(x)) - head_0(F_0(x))``. (A
first run measured the logits with the trained head; after a few steps the head's own change,
the same at every depth, dominated them: 1 of 3 checks passed.)

Bands, fixed before any run: DeepNet's update after the last step is below Post-LN's at every
depth; its growth from the shallowest to the deepest model is at most a factor 2 (bounded: a
16-fold deeper model may move at most twice as much); Post-LN's grows by at least a factor 2.
"""

from __future__ import annotations

import math

import numpy as np

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, register

PAPER = Paper(
    "Hongyu Wang, Shuming Ma, Li Dong, Shaohan Huang, Dongdong Zhang and Furu Wei", 2022,
    "DeepNet: Scaling Transformers to 1,000 Layers", "arXiv:2203.00555",
)  # fmt: skip
DEPTHS, FULL_DEPTHS = (2, 4, 8, 16, 32), (2, 4, 8, 16, 32, 64, 100)
STEPS, SEEDS, BATCH, PROBE = 10, (0, 1), 64, 256
LEARNING_RATE = 1e-3
SCHEMES = {"Post-LN": "norm='post'", "DeepNet": "scheme='deepnorm'"}
GROWTH_BOUND = 2.0


def spec(scheme: str, depth: int) -> str:
    return f"transformer(layers={depth}, d_model=64, heads=4, {SCHEMES[scheme]}, output_activation='linear')"


def model_updates(scheme: str, depth: int, seeds, steps: int = STEPS) -> np.ndarray:
    """``(seeds, steps)``: the RMS change of the body's output (through the initial head) after each Adam step."""
    import jax
    import jax.numpy as jnp
    import optax

    from initlab import data
    from initlab.nn.model_specs import build_architecture

    dataset = data.load("modular_addition")
    model = build_architecture(spec(scheme, depth), dataset.input_shape, dataset.classes, vocabulary=dataset.vocabulary)
    probe = jnp.asarray(dataset.x_test[:PROBE].astype(np.int32))
    optimizer = optax.adam(LEARNING_RATE)

    @jax.jit
    def step(params, state, x, y):
        gradient = jax.grad(lambda p: optax.softmax_cross_entropy(model.apply(p, x), y).mean())(params)
        updates, state = optimizer.update(gradient, state, params)
        return optax.apply_updates(params, updates), state

    logits = jax.jit(lambda p: model.apply(p, probe))
    rows = []
    for seed in seeds:
        params, _ = model.initialize(jax.random.key(seed))
        state, start, head = optimizer.init(params), logits(params), params["head"]
        order = np.random.default_rng(seed).permutation(len(dataset.x_train))
        row = []
        for t in range(steps):
            batch = order[t * BATCH : (t + 1) * BATCH]
            params, state = step(params, state, jnp.asarray(dataset.x_train[batch].astype(np.int32)),
                                 jnp.asarray(dataset.y_train[batch]))  # fmt: skip
            body = {**params, "head": head}  # the Transformer's change, read through the initial head
            row.append(float(jnp.sqrt(jnp.mean(jnp.sum((logits(body) - start) ** 2, axis=-1)))))
        rows.append(row)
    return np.array(rows)


def _run(context: Context) -> Outcome:
    depths = FULL_DEPTHS if context.full else DEPTHS
    seeds = tuple(context.seed + s for s in SEEDS)
    updates, total = {}, len(SCHEMES) * len(depths)
    for index, (scheme, depth) in enumerate((s, d) for s in SCHEMES for d in depths):
        context.stage("model updates", index, total)
        updates[(scheme, depth)] = model_updates(scheme, depth, seeds)
    context.stage("model updates", total, total)
    last = {key: float(value[:, -1].mean()) for key, value in updates.items()}
    smaller = [last[("DeepNet", d)] < last[("Post-LN", d)] for d in depths]
    growth = {scheme: last[(scheme, depths[-1])] / last[(scheme, depths[0])] for scheme in SCHEMES}
    checks = [
        Check(name=f"depths where DeepNet's update after {STEPS} steps is below Post-LN's", claim="DeepNorm makes the "
              "early model update smaller than Post-LN's", measured=float(np.mean(smaller)), band=(1.0, 1.0),
              basis="every depth (fixed before the run)"),
        Check(name=f"DeepNet: update at depth {depths[-1]} over depth {depths[0]}", claim="DeepNorm bounds the model "
              "update independently of depth (Theorem 4.1)", measured=growth["DeepNet"], band=(0.0, GROWTH_BOUND),
              published=1.0, basis="at most twice as much for a 16-fold deeper model (fixed before the run)"),
        Check(name=f"Post-LN: update at depth {depths[-1]} over depth {depths[0]}", claim="a Post-LN Transformer's early "
              "update grows with depth", measured=growth["Post-LN"], band=(GROWTH_BOUND, math.inf),
              basis="at least twice as much for a 16-fold deeper model (fixed before the run)",
              reason=f"after {STEPS} steps every Post-LN model's change is about the size of its LayerNorm'd output "
                     "itself (the curves meet); the depth dependence is in the first steps (the figure)"),
    ]  # fmt: skip
    figure = context.folder / "model_update.png"
    _figure(updates, depths, figure)
    caption = (f"The RMS change of the Transformer's output (read through the initial head) on 256 held-out sequences over the first {STEPS} Adam steps (lr "
               f"{LEARNING_RATE:g}, no warm-up), Post-LN (left) and DeepNet (right), one line per depth (mean over "
               f"{len(seeds)} seeds), decoder-only Transformers of d_model 64 on modular addition.")  # fmt: skip
    setup = (f"transformer(d_model=64, heads=4) depths {', '.join(map(str, depths))}, Post-LN and DeepNorm, modular "
             f"addition, Adam {LEARNING_RATE:g} without warm-up, batch {BATCH}, {STEPS} steps, seeds "
             f"{', '.join(map(str, seeds))}")  # fmt: skip
    data = {"updates": {f"{s} {d}": updates[(s, d)].tolist() for s, d in updates}, "last": {f"{s} {d}": v for (s, d), v in last.items()}}
    return Outcome(checks=checks, figures=[(figure, caption)], data=data, setup=setup)


def _figure(updates: dict, depths, path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    with style():
        figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained", sharey=True)
        colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(depths)))
        for axis, scheme in zip(axes, SCHEMES):
            for depth, color in zip(depths, colors):
                values = updates[(scheme, depth)].mean(axis=0)
                axis.plot(np.arange(1, values.size + 1), values, color=color, lw=1.4, label=f"{depth} layers")
            axis.set_title(scheme, fontsize=10)
            axis.set_xlabel("Adam step")
            axis.set_yscale("log")
        axes[0].set_ylabel(r"$\|F(x, \theta_t) - F(x, \theta_0)\|$ (RMS over the batch)")
        axes[1].legend(frameon=False, fontsize=8)
        figure.suptitle("Wang et al. 2022: the early model update of Post-LN and DeepNet Transformers by depth",
                        fontsize=10)  # fmt: skip
        save(figure, path)


register(Reproduction(
    name="wang2022", paper=PAPER,
    claim="A deep Post-LN Transformer's early model update grows with depth; DeepNorm's residual scaling and "
          "initialization bound it independently of depth.",
    setup=f"decoder-only Transformers (d_model 64) of depths {DEPTHS}, Post-LN and DeepNorm, {STEPS} Adam steps",
    why="The claim is about the first updates from initialization, which a few steps of small models measure; depth "
        "2 to 32 spans the 16-fold range over which a depth-independent bound and a growing update separate.",
    budget_s=240.0, full_setup=f"depths {FULL_DEPTHS}", run=_run,
))  # fmt: skip
