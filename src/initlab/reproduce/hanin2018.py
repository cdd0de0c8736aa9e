"""Hanin & Rolnick (2018): He-initialized ReLU nets keep the mean squared length, and its log spreads as 5·sum(1/n_j).

For a ReLU net with Gaussian weights of variance 2/fan_in (He et al. 2015) and one input x, let
``M = ||a^L||^2 / ||x||^2 * n_0 / n_L`` be the normalized squared length of the last hidden
layer's activations. Its mean is 1 at every depth; its fluctuations over network draws grow
exponentially in the architecture's ``beta = sum_j 1/n_j``, not in depth or width alone:
``Var[log M] ~ 5 beta`` (the 5 is ``2 E[xi^4] - 1`` for Gaussian weights).

Exact reference: given layer ``l-1``, the pre-activations of layer ``l`` are iid
``N(0, 2 ||a^{l-1}||^2 / n_{l-1})``, so ``||a^l||^2 / ||a^{l-1}||^2 = (2 / n_{l-1}) S_l`` with
``S_l = sum of n_l squared positive parts of standard normals = chi^2_K``, ``K ~ Bin(n_l, 1/2)``,
independent across layers. Hence ``Var[log M] = sum_l v(n_l)`` with
``v(n) = E_K[psi_1(K / 2)] + Var_K[psi(K / 2)]`` (trigamma and digamma): exact at every width,
and ``n v(n) -> 5`` as n grows (5.68 at n = 32, 5.15 at 128).
"""

from __future__ import annotations

import math

import numpy as np

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, register

PAPER = Paper(
    "Boris Hanin and David Rolnick", 2018,
    "How to Start Training: The Effect of Initialization and Architecture", "NeurIPS 2018",
)  # fmt: skip
HE_GAUSSIAN = "variance_scaling(scale=2.0, mode='fan_in', distribution='untruncated_normal')"
INPUT_DIM = 64
WIDTHS, DEPTHS = (32, 64, 128), (4, 8, 16)
MIXED = (32, 128) * 4
"""A net of alternating widths, whose beta (0.156) lies between the uniform nets' ones."""
DRAWS, FULL_DRAWS = 4096, 65536
SE_BAND = 4.0
"""Half-width of the statistical bands, in standard errors: ~11 comparisons at once, so 4 (a
chance failure of ~0.07% over all) rather than 3."""


def exact_log_variance(width: int) -> float:
    """``v(n) = Var[log chi^2_K]``, ``K ~ Bin(n, 1/2)`` (conditioned on K >= 1, which fails with chance 2^-n)."""
    from scipy.special import digamma, gammaln, polygamma

    k = np.arange(1, width + 1)
    log_p = gammaln(width + 1) - gammaln(k + 1) - gammaln(width - k + 1) - width * math.log(2)
    p = np.exp(log_p - np.logaddexp.reduce(log_p))
    psi = digamma(k / 2)
    return float(p @ polygamma(1, k / 2) + p @ psi**2 - (p @ psi) ** 2)


def _variance_se(values: np.ndarray) -> tuple[float, float]:
    """The sample variance and its standard error (from the sample's fourth central moment)."""
    n = len(values)
    centered = values - values.mean()
    variance = float(centered @ centered / (n - 1))
    m4 = float(np.mean(centered**4))
    return variance, math.sqrt(max(m4 - variance**2 * (n - 3) / (n - 1), 0.0) / n)


def _run(context: Context) -> Outcome:
    from initlab.measure.propagation import squared_norms_over_draws

    draws = FULL_DRAWS if context.full else DRAWS
    x = np.random.default_rng(context.seed).normal(size=INPUT_DIM)
    architectures = [(w,) * d for w in WIDTHS for d in DEPTHS] + [MIXED]
    rows = []
    for index, widths in enumerate(architectures):
        context.stage("network draws", index, len(architectures))
        norms = squared_norms_over_draws(HE_GAUSSIAN, x, widths, draws=draws, seed=context.seed + index)
        m = norms[:, -1] / float(x @ x) * INPUT_DIM / widths[-1]
        log_m = np.log(m)
        variance, variance_se = _variance_se(log_m)
        rows.append({
            "widths": list(widths), "beta": float(sum(1 / n for n in widths)), "draws": draws,
            "var_log_m": variance, "var_log_m_se": variance_se,
            "exact_var_log_m": float(sum(exact_log_variance(n) for n in widths)),
            "mean_m": float(m.mean()), "mean_m_se": float(m.std(ddof=1) / math.sqrt(draws)),
        })  # fmt: skip
    context.stage("network draws", len(architectures), len(architectures))

    checks = []
    for row in rows:
        label = f"{len(row['widths'])} x {row['widths'][0]}" if len(set(row["widths"])) == 1 else "alternating 32/128 x 8"
        half = SE_BAND * row["var_log_m_se"]
        checks.append(Check(
            name=f"Var[log M], {label} (beta {row['beta']:.3f})",
            claim="Var[log M] is 5 beta to first order; exactly sum_l v(n_l)",
            measured=row["var_log_m"], band=(row["exact_var_log_m"] - half, row["exact_var_log_m"] + half),
            published=5 * row["beta"],
            basis=f"exact closed form {row['exact_var_log_m']:.4f} +- {SE_BAND:g} standard errors of the sample variance",
        ))  # fmt: skip
    beta = np.array([r["beta"] for r in rows])
    measured = np.array([r["var_log_m"] for r in rows])
    errors = np.array([r["var_log_m_se"] for r in rows])
    slope = float(beta @ measured / (beta @ beta))  # least squares through the origin
    slope_se = float(math.sqrt(np.sum((beta * errors) ** 2)) / (beta @ beta))
    ratios = [r["exact_var_log_m"] / r["beta"] for r in rows]
    checks.append(Check(
        name="Var[log M] / beta over every architecture (slope through 0)",
        claim="the spread of log M is set by beta = sum 1/n_j alone, with constant 5 (Gaussian weights)",
        measured=slope, band=(min(ratios) - SE_BAND * slope_se, max(ratios) + SE_BAND * slope_se), published=5.0,
        basis=f"the exact constants of these widths ({min(ratios):.2f}-{max(ratios):.2f}; 5 is their wide limit) "
              f"+- {SE_BAND:g} standard errors of the slope",
    ))  # fmt: skip
    deepest = max(rows, key=lambda r: r["beta"])
    checks.append(Check(
        name=f"E[M] at the largest beta ({deepest['beta']:.2f})",
        claim="He initialization keeps the mean squared length: E[M] = 1 at every depth",
        measured=deepest["mean_m"], band=(1 - SE_BAND * deepest["mean_m_se"], 1 + SE_BAND * deepest["mean_m_se"]),
        published=1.0, basis=f"exact: 1 +- {SE_BAND:g} standard errors of the sample mean",
    ))  # fmt: skip
    figure = context.folder / "variance_against_beta.png"
    _figure(rows, figure)
    caption = (
        "Left: the variance over network draws of log M (the normalized squared length of the last hidden layer's "
        "activations, one input) against beta = sum 1/n_j, for He-initialized (Gaussian) ReLU nets of widths 32, 64 "
        "and 128 (depths 4, 8, 16) and one of alternating widths; bars: 2 standard errors; line: the paper's 5 beta; "
        "crosses: the exact value at these widths. Right: the mean of M stays 1 while its log spreads."
    )
    setup = (f"{len(architectures)} ReLU architectures on one {INPUT_DIM}-dimensional Gaussian input, He Gaussian "
             f"weights, zero biases, {draws} network draws each (vmapped over keys)")  # fmt: skip
    return Outcome(checks=checks, figures=[(figure, caption)], data={"architectures": rows}, setup=setup)


def _figure(rows: list[dict], path) -> None:
    import matplotlib.pyplot as plt

    from initlab.viz.plots import save
    from initlab.viz.style import style

    with style():
        figure, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
        colors = {32: "#0072B2", 64: "#009E73", 128: "#D55E00"}
        for row in rows:
            uniform = len(set(row["widths"])) == 1
            color = colors.get(row["widths"][0], "black") if uniform else "black"
            marker = "o" if uniform else "s"
            left.errorbar(row["beta"], row["var_log_m"], yerr=2 * row["var_log_m_se"], fmt=marker, color=color, ms=4,
                          capsize=2)  # fmt: skip
            left.plot(row["beta"], row["exact_var_log_m"], "x", color="grey", ms=6)
            right.errorbar(row["beta"], row["mean_m"], yerr=2 * row["mean_m_se"], fmt=marker, color=color, ms=4,
                           capsize=2)  # fmt: skip
        top = max(r["beta"] for r in rows) * 1.08
        left.plot([0, top], [0, 5 * top], color="black", lw=1, label=r"$5\beta$ (paper)")
        for width, color in colors.items():
            left.plot([], [], "o", color=color, label=f"width {width}")
        left.plot([], [], "s", color="black", label="widths 32/128 alternating")
        left.plot([], [], "x", color="grey", label="exact at these widths")
        left.set_xlabel(r"$\beta = \sum_j 1/n_j$")
        left.set_ylabel(r"Var$[\log M]$ over network draws")
        left.legend(fontsize=7, frameon=False)
        right.axhline(1.0, color="black", lw=1)
        right.set_xlabel(r"$\beta = \sum_j 1/n_j$")
        right.set_ylabel(r"E$[M]$, $M = \|a^L\|^2 n_0 / (\|x\|^2 n_L)$")
        figure.suptitle(r"He-initialized ReLU nets: the mean length is kept, its log spreads as $5\beta$", fontsize=10)
        save(figure, path)


register(Reproduction(
    name="hanin2018", paper=PAPER,
    claim="In He-initialized ReLU nets the mean squared activation length is preserved at every depth, while the "
          "variance of its log over network draws is about 5 beta, beta = sum_j 1/n_j: depth hurts only relative to width.",
    setup=f"ReLU nets of widths {WIDTHS} and depths {DEPTHS}, and one of alternating widths 32/128, on one input; "
          f"{DRAWS} network draws each",
    why="The claim is about the distribution over network draws at one input, which many vmapped draws sample "
        "directly; widths 32-128 keep beta between 0.03 and 0.5, the regime of the first-order law, and the exact "
        "finite-width value shows how close 5 beta is at each width.",
    budget_s=120.0, full_setup=f"the same architectures, {FULL_DRAWS} network draws each",
    run=_run,
))  # fmt: skip
