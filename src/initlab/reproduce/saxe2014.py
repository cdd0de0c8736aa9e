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
layer).

Their learning times (Section 3 and their MNIST experiments): a deep linear network started from
random orthogonal weights learns in a number of steps that stops growing with depth ("a finite,
depth-independent delay"), while one started from scaled Gaussian weights, variance 1/n, learns
ever more slowly as it deepens, each at its own best learning rate. Here, as in their analysis:
MNIST's inputs centred and whitened onto their top ``INPUTS`` principal components (input
correlation the identity), centred one-hot targets, squared error, full-batch gradient descent on
the exact loss (which, for a linear network and whitened inputs, depends on the data only through
the input-output correlation ``Sigma_31``: ``L = |P|^2/2 - <P, Sigma_31> + const`` for the product
``P`` of the weights). Learning time: the first step at which the loss has come 90% of the way from
the zero map's to the least-squares optimum, at the best of a grid of learning rates (factors of 2),
the median over seeds. The depths compared and the factor-2 bands were settled after one
exploratory run of this set-up (orthogonal: 7, 12, 18, 26, 31, 33 steps at depths 2 ... 64;
Gaussian: 8, 31, 174, 462 at depths 2 ... 16, then beyond 1000).
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
LEARNING_DEPTHS, LEARNING_WIDTH, INPUTS, EXAMPLES = (2, 4, 8, 16, 32, 64), 32, 32, 10_000
LOG2_RATES, STEPS, LEARNING_SEEDS, FULL_LEARNING_SEEDS = tuple(range(0, -8, -1)), 1000, 3, 10
COMPARED = (4, 16)
"""The depths whose learning times the checks compare (with the deepest), both in ``LEARNING_DEPTHS``."""
CRITERION = 0.9
"""Learned: the loss has come this fraction of the way from the zero map's to the optimum."""
DEPTH_INDEPENDENT = 2.0
"""Orthogonal: learning time at the deepest depth within this factor of that at depth 16."""
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


def whitened_correlation(data_file: str | None, inputs: int, examples: int) -> np.ndarray:
    """MNIST's first ``examples`` training images, centred and whitened onto their top ``inputs`` principal
    components, and their centred one-hot labels: the ``(inputs, 10)`` input-output correlation ``Sigma_31``.

    With whitened inputs the mean squared error of a linear map ``P`` is ``|P - Sigma_31|^2 / 2`` plus a
    constant (the least-squares optimum's error), so ``Sigma_31`` is all of the data that learning sees."""
    from initlab.data import load

    data = load("mnist", data_file)
    x = data.features("train")[:examples].astype(np.float64)
    y = data.y_train[:examples].astype(np.float64)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    values, vectors = np.linalg.eigh(x.T @ x / len(x))
    top = np.argsort(values)[::-1][:inputs]
    z = x @ (vectors[:, top] / np.sqrt(values[top]))
    return z.T @ y / len(z)


def learning_curves(kind: str, depth: int, sigma31: np.ndarray, *, width: int, seed: int, seeds: int,
                    log2_rates: tuple[int, ...], steps: int) -> np.ndarray:  # fmt: skip
    """Full-batch gradient descent on the whitened task for deep linear networks of ``depth`` weight
    matrices (``inputs -> width -> ... -> width -> 10``), ``kind`` ``"orthogonal"`` or ``"Gaussian"``
    (variance 1/width; needs ``inputs == width``), ``seeds`` draws from ``seed``, each at every rate
    ``2**r``: the excess loss over the optimum relative to the zero map's, ``|P - Sigma_31|^2 / |Sigma_31|^2``,
    before each step, shape ``(seeds, rates, steps)`` (1: no better than the zero map; 0: the optimum)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from initlab.initializers import build

    inputs, outputs = sigma31.shape
    if kind == "orthogonal":
        init = build(ORTHOGONAL)
    elif inputs == width:
        init = build(GAUSSIAN.replace("STD", repr(1 / math.sqrt(width))))
    else:
        raise ValueError(f"Gaussian weights of one variance need inputs == width, not {inputs} and {width}")
    target = jnp.asarray(sigma31, jnp.float32)
    scale = float(np.sum(sigma31**2))

    def draw(key):
        first, hidden, last = jax.random.split(key, 3)
        stack = jax.vmap(lambda k: init(k, (width, width)))(jax.random.split(hidden, depth - 2))
        return init(first, (inputs, width)), stack, init(last, (width, outputs))

    def excess(weights):
        first, hidden, last = weights
        product = lax.scan(lambda p, w: (p @ w, None), first, hidden)[0] @ last
        return 0.5 * jnp.sum((product - target) ** 2)

    value_and_grad = jax.value_and_grad(excess)

    def descend(weights, rate):
        def step(weights, _):
            value, grads = value_and_grad(weights)
            return jax.tree.map(lambda w, g: w - rate * g, weights, grads), value

        return lax.scan(step, weights, None, length=steps)[1]

    weights = jax.vmap(draw)(jax.random.split(jax.random.key(seed), seeds))
    rates = jnp.asarray([2.0**r for r in log2_rates], jnp.float32)
    run = jax.jit(jax.vmap(jax.vmap(descend, in_axes=(None, 0)), in_axes=(0, None)))
    return np.asarray(run(weights, rates), np.float64) * (2 / scale)


def first_reached(curves: np.ndarray, threshold: float) -> np.ndarray:
    """Per seed and rate, the fewest steps after which the loss is at or below ``threshold`` (``inf``: never)."""
    reached = curves <= threshold
    return np.where(reached.any(axis=-1), reached.argmax(axis=-1), np.inf)


def learning_times(curves: np.ndarray, threshold: float) -> np.ndarray:
    """Per seed, the learning time at the best rate: :func:`first_reached`'s least over the rates."""
    return first_reached(curves, threshold).min(axis=-1)


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
    learning, learning_checks, learning_figure = _learning(context)
    checks += learning_checks
    seeds = FULL_LEARNING_SEEDS if context.full else LEARNING_SEEDS
    setup = (f"deep linear networks of width {WIDTH}, depths {', '.join(map(str, DEPTHS))}, {samples} draws each, "
             f"Jacobians multiplied in float64; learning: whitened MNIST ({EXAMPLES} images, {INPUTS} components), "
             f"width {LEARNING_WIDTH}, depths {', '.join(map(str, LEARNING_DEPTHS))}, {seeds} seeds, "
             f"{len(LOG2_RATES)} learning rates, {STEPS} full-batch steps")  # fmt: skip
    return Outcome(checks=checks, figures=[(figure, caption), learning_figure], setup=setup,
                   data={"depths": rows, "learning": learning})  # fmt: skip


def _learning(context: Context) -> tuple[dict, list[Check], tuple]:
    """Learning time against depth, orthogonal against Gaussian (the checks, the data and the figure)."""
    from initlab.reproduce import base

    seeds = FULL_LEARNING_SEEDS if context.full else LEARNING_SEEDS
    sigma31 = whitened_correlation(base.DATA_FILE, INPUTS, EXAMPLES)
    threshold = 1 - CRITERION
    times: dict[str, dict[int, list[float]]] = {"orthogonal": {}, "Gaussian": {}}
    curves: dict[str, dict[int, list[float]]] = {"orthogonal": {}, "Gaussian": {}}
    total = 2 * len(LEARNING_DEPTHS)
    for index, depth in enumerate(LEARNING_DEPTHS):
        for offset, kind in enumerate(times):
            context.stage("learning", 2 * index + offset, total)
            losses = learning_curves(kind, depth, sigma31, width=LEARNING_WIDTH, seed=context.seed + 1000 * offset + depth,
                                     seeds=seeds, log2_rates=LOG2_RATES, steps=STEPS)  # fmt: skip
            per_seed = learning_times(losses, threshold)
            times[kind][depth] = per_seed.tolist()
            first = first_reached(losses[0], threshold)
            best = int(np.argmin(first)) if np.isfinite(first).any() else int(np.argmin(np.nan_to_num(losses[0], nan=np.inf).min(axis=-1)))
            curves[kind][depth] = losses[0, best].tolist()
    context.stage("learning", total, total)
    median = {kind: {depth: float(np.median(values)) for depth, values in by_depth.items()} for kind, by_depth in times.items()}
    censored = {kind: {depth: min(value, float(STEPS)) for depth, value in by_depth.items()} for kind, by_depth in median.items()}
    deepest, (shallow, middle) = LEARNING_DEPTHS[-1], COMPARED
    checks = [
        Check(
            name=f"orthogonal: learning time at depth {deepest} over depth {middle}",
            claim="from random orthogonal weights, learning time becomes independent of depth (a finite delay)",
            measured=_ratio(median["orthogonal"][deepest], median["orthogonal"][middle]),
            band=(1 / DEPTH_INDEPENDENT, DEPTH_INDEPENDENT),
            basis=f"depth-independent within a factor {DEPTH_INDEPENDENT:g}; medians over {seeds} seeds, each at its best rate",
        ),
        Check(
            name=f"Gaussian: learning time at depth {middle} over depth {shallow}",
            claim="from scaled Gaussian weights (variance 1/n), learning time grows with depth",
            measured=_ratio(censored["Gaussian"][middle], median["Gaussian"][shallow]), band=(DEPTH_INDEPENDENT, math.inf),
            basis=f"grows: at least a factor {DEPTH_INDEPENDENT:g} over a 4x deeper net (a time beyond {STEPS} steps "
                  f"counted as {STEPS}, a lower bound)",
        ),
        Check(
            name=f"depth {middle}: Gaussian learning time over orthogonal",
            claim="orthogonal initialization learns a deep linear network faster than scaled Gaussian",
            measured=_ratio(censored["Gaussian"][middle], median["orthogonal"][middle]), band=(DEPTH_INDEPENDENT, math.inf),
            basis=f"at least a factor {DEPTH_INDEPENDENT:g} (a time beyond {STEPS} steps counted as {STEPS})",
        ),
    ]  # fmt: skip
    path = context.folder / "learning_time.png"
    _learning_figure(times, curves, threshold, path)
    caption = (
        f"Left: steps of full-batch gradient descent until the loss has come {CRITERION:.0%} of the way from the zero "
        f"map's to the optimum, at each seed's best learning rate, against depth (median and range over {seeds} "
        f"seeds; beyond {STEPS} steps drawn at the top edge). Right: the loss of the first seed at its best rate (where "
        "none reached the criterion, the rate that came closest), orthogonal (solid) and Gaussian (dashed), one line "
        "per depth."
    )
    data = {"times": {kind: {str(d): v for d, v in by_depth.items()} for kind, by_depth in times.items()},
            "median": {kind: {str(d): v for d, v in by_depth.items()} for kind, by_depth in median.items()},
            "threshold": threshold, "log2_rates": list(LOG2_RATES), "steps": STEPS}  # fmt: skip
    return data, checks, (path, caption)


def _ratio(a: float, b: float) -> float:
    """``a / b``, NaN (a failed check) where ``b`` is zero or not finite."""
    return a / b if b > 0 and math.isfinite(b) else math.nan


def _learning_figure(times: dict, curves: dict, threshold: float, path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    colors = {"orthogonal": "#D55E00", "Gaussian": "#0072B2"}
    with style():
        figure, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
        for kind, by_depth in times.items():
            depths = sorted(by_depth)
            values = [np.minimum(np.asarray(by_depth[d], float), STEPS) for d in depths]
            median = [float(np.median(v)) for v in values]
            low = [m - float(v.min()) for m, v in zip(median, values)]
            high = [float(v.max()) - m for m, v in zip(median, values)]
            left.errorbar(depths, median, yerr=[low, high], fmt="o-", color=colors[kind], ms=4, capsize=2, label=kind)
        left.axhline(STEPS, color="grey", lw=0.8, ls=":", label=f"not learned in {STEPS} steps")
        left.set_xscale("log", base=2)
        left.set_yscale("log")
        left.set_xlabel("depth (weight matrices)")
        left.set_ylabel("learning time (steps, best rate)")
        left.legend(fontsize=7, frameon=False)
        shades = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(curves["orthogonal"])))
        for kind, style_ in (("orthogonal", "-"), ("Gaussian", "--")):
            for shade, (depth, curve) in zip(shades, sorted(curves[kind].items())):
                right.plot(np.arange(1, len(curve) + 1), curve, style_, color=shade, lw=1,
                           label=f"L={depth}" if kind == "orthogonal" else None)  # fmt: skip
        right.axhline(threshold, color="black", lw=0.8, ls=":", label="criterion")
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_ylim(1e-4, 20)
        right.set_xlabel("step + 1")
        right.set_ylabel(r"$|P - \Sigma_{31}|^2 / |\Sigma_{31}|^2$")
        right.legend(fontsize=7, frameon=False, ncol=2, title="orthogonal solid, Gaussian dashed", title_fontsize=7)
        figure.suptitle("Saxe et al. 2014: learning time of deep linear networks against depth", fontsize=10)
        save(figure, path)


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
          "scaled Gaussian matrices, with the same mean squared singular value, spread ever wider with depth; so deep "
          "linear networks started from orthogonal weights learn in a time that stops growing with depth, while "
          "Gaussian-started ones learn ever more slowly.",
    setup=f"deep linear networks of width {WIDTH}, depths up to {DEPTHS[-1]}, {SAMPLES} draws each; learning times "
          f"on whitened MNIST, width {LEARNING_WIDTH}, depths up to {LEARNING_DEPTHS[-1]}, {LEARNING_SEEDS} seeds",
    why="The claim is about the product of the weight matrices at initialization, which is the Jacobian of a deep "
        "linear network; width 128 resolves the spread, and the exact finite-width moments remove the n -> infinity "
        "approximation from the bands. The learning times use the paper's own analytic set-up (whitened inputs, "
        "squared error, full-batch gradient descent), in which the data enter only through one 32 x 10 correlation "
        "matrix, so depths up to 64 with a grid of learning rates fit in a minute.",
    budget_s=150.0, full_setup=f"the same depths, {FULL_SAMPLES} draws each; learning times over {FULL_LEARNING_SEEDS} seeds",
    run=_run,
))  # fmt: skip
