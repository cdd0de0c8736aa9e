"""Figures of width scaling: the coordinate check in microsoft/mup's layout, and learning-rate transfer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from initlab.scaling.coord_check import CoordCheckResult
from initlab.scaling.transfer import TransferResult


@dataclass
class CoordCheckDisplay:
    """microsoft/mup's layout: a row per parametrization, a panel per step, a line per layer, against width."""

    results: Sequence[CoordCheckResult]

    def plot(self) -> CoordCheckDisplay:
        import matplotlib.pyplot as plt

        from initlab.viz.style import style

        rows, columns = len(self.results), self.results[0].steps + 1
        with style():
            self.figure_, axes = plt.subplots(
                rows, columns, figsize=(2.6 * columns, 2.4 * rows + 0.4), layout="constrained", squeeze=False,
                sharey="row",
            )
            for row, result in zip(axes, self.results):
                means, slopes = result.means(), result.slopes()
                for step, ax in enumerate(row):
                    for index, name in enumerate(result.layers):
                        ax.plot(result.widths, means[index, step], marker="o", ms=3,
                                label=f"{name} (slope {slopes[index, step]:+.2f})")  # fmt: skip
                    ax.set_xscale("log", base=2)
                    ax.set_yscale("log")
                    ax.set_title(f"{result.parametrization}, step {step}", fontsize=9)
                    ax.set_xlabel("width")
                    ax.legend(fontsize=6, frameon=False)
                row[0].set_ylabel("mean |coordinate|")
            self.figure_.suptitle(
                f"coordinate check: {self.results[0].optimizer}, {self.results[0].activation}, "
                f"{len(self.results[0].seeds)} seed(s)", fontsize=10,
            )
        return self


@dataclass
class TransferDisplay:
    """The muP paper's figure (Yang et al. 2022, Figure 1/3): training loss against log2 learning rate,
    one curve per width (darker: wider), one panel per parametrization side by side, bands of
    +-1 standard error over seeds, each width's optimum marked; diverged runs are left out."""

    result: TransferResult

    def plot(self) -> TransferDisplay:
        import matplotlib.pyplot as plt
        import numpy as np

        from initlab.viz.style import style

        result = self.result
        grid = np.asarray(result.log2_learning_rates)
        names = {"sp": "SP", "ntk": "NTK", "mup": "μP", "mf": "MF"}
        colors = plt.get_cmap("viridis")(np.linspace(0.9, 0.1, len(result.widths)))
        with style():
            self.figure_, axes = plt.subplots(
                1, len(result.parametrizations), figsize=(4.2 * len(result.parametrizations), 3.6),
                layout="constrained", squeeze=False, sharey=True,
            )  # fmt: skip
            finite = result.losses[np.isfinite(result.losses)]
            for ax, name in zip(axes[0], result.parametrizations):
                means, errors = result.mean_losses(name), result.standard_errors(name)
                optima = result.optimal_log2_lr(name)
                for w, width in enumerate(result.widths):
                    shown = np.isfinite(means[w])
                    ax.plot(grid[shown], means[w][shown], color=colors[w], marker="o", ms=2.5, lw=1.2, label=str(width))
                    ax.fill_between(grid[shown], (means[w] - errors[w])[shown], (means[w] + errors[w])[shown],
                                    color=colors[w], alpha=0.2, lw=0)  # fmt: skip
                    if np.isfinite(optima[w]):
                        at = int(np.argmin(np.abs(grid - optima[w])))
                        ax.plot([optima[w]], [means[w][at]], marker="*", ms=9, color=colors[w], mec="black", mew=0.5)
                ax.set_title(f"{names.get(name, name)}: optimum moves {result.max_shift_steps(name):.0f} grid step(s)",
                             fontsize=9)  # fmt: skip
                ax.set_xlabel("log2 learning rate")
                if finite.size:
                    low, high = float(finite.min()), float(np.percentile(finite, 90))
                    ax.set_ylim(max(low * 0.8, 1e-4), high * 1.1)
                ax.set_yscale("log")
            axes[0][0].set_ylabel("training loss")
            axes[0][-1].legend(title="width", fontsize=7, title_fontsize=7, frameon=False, loc="upper right")
            self.figure_.suptitle(
                f"learning-rate transfer: {result.hidden_layers} hidden layers ({result.activation}), "
                f"{result.optimizer}, {result.train_examples} examples x {result.epochs} epoch(s), "
                f"{len(result.seeds)} seed(s), base width {result.base_width}", fontsize=9,
            )  # fmt: skip
        return self
