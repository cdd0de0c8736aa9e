"""Figures of width scaling: the coordinate check in microsoft/mup's layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from initlab.scaling.coord_check import CoordCheckResult


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
