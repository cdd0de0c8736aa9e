"""Figures as Display objects (scikit-learn's pattern): hold computed data, ``plot(ax=None)`` draws.

Displays read results only; they never re-run an experiment. matplotlib is imported inside
``plot`` so that importing initlab stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def _axes(ax: Any) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    if ax is None:
        figure, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    return ax.figure, ax


FIGURE_FORMATS = ("png", "svg", "pdf")


def save(figure: Any, path: str | Path, *, dpi: int = 150, close: bool = True) -> Path:
    """Write ``figure`` to ``path``, PNG, SVG or PDF by its extension, and close it unless asked not to.

    The one figure writer of initlab (commands, the report, the main job).

    The file is written atomically (:func:`initlab.files.replacing`): a failed write leaves
    the previous figure intact.

    Raises:
        InitlabError: an extension other than .png, .svg or .pdf, or the file cannot be written.
    """
    import matplotlib.pyplot as plt

    from initlab.files import output_file, replacing

    path = output_file(path, extensions=FIGURE_FORMATS, what="figure")
    try:
        with replacing(path) as temporary:
            extension = path.suffix.lower().lstrip(".")
            figure.savefig(temporary, format=extension, dpi=dpi, bbox_inches="tight", facecolor="white")
    finally:
        if close:
            plt.close(figure)
    return path


@dataclass
class SaturationDisplay:
    """Histogram of one layer's outputs at initialization, saturated zones shaded."""

    edges: Sequence[float]
    counts: Sequence[int]
    low: float
    high: float
    title: str = ""
    saturation_fraction: float | None = None
    predicted_saturation_fraction: float | None = None

    @classmethod
    def from_result(cls, result: Any) -> SaturationDisplay:
        return cls(
            edges=result.histogram["edges"],
            counts=result.histogram["counts"],
            low=result.low,
            high=result.high,
            title=f"{result.initializer} -> {result.activation}",
            saturation_fraction=result.saturation_fraction,
            predicted_saturation_fraction=result.predicted_saturation_fraction,
        )

    def plot(self, ax: Any = None) -> SaturationDisplay:
        self.figure_, self.ax_ = figure, ax = _axes(ax)
        edges = np.asarray(self.edges)
        counts = np.asarray(self.counts, float)
        fractions = counts / max(counts.sum(), 1)
        ax.bar(edges[:-1], fractions, width=np.diff(edges), align="edge", color="#4C72B0", edgecolor="white", linewidth=0.3)
        ax.axvspan(edges[0], self.low, color="#C44E52", alpha=0.12, lw=0)
        ax.axvspan(self.high, edges[-1], color="#C44E52", alpha=0.12, lw=0)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("output of the layer")
        ax.set_ylabel("fraction of outputs")
        label = self.title
        if self.saturation_fraction is not None:
            label += f"\nsaturated: {self.saturation_fraction:.1%} measured"
            if self.predicted_saturation_fraction is not None:
                label += f", {self.predicted_saturation_fraction:.1%} predicted"
        ax.set_title(label, fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        return self


@dataclass
class SaturationPanelDisplay:
    """Saturation histograms of several initializers side by side (one layer, at initialization)."""

    rows: Sequence[Mapping[str, Any]]
    """``SaturationResult.to_dict()`` rows: ``histogram``, ``low``, ``high``, fractions, names."""

    def plot(self) -> SaturationPanelDisplay:
        import matplotlib.pyplot as plt

        count = len(self.rows)
        self.figure_, axes = plt.subplots(
            1, count, figsize=(3.6 * count, 3.3), layout="constrained", sharey=True, squeeze=False
        )
        for ax, row in zip(axes[0], self.rows):
            SaturationDisplay(
                edges=row["histogram"]["edges"], counts=row["histogram"]["counts"], low=row["low"], high=row["high"],
                title=f"{row['initializer']} -> {row['activation']}", saturation_fraction=row["saturation_fraction"],
                predicted_saturation_fraction=row["predicted_saturation_fraction"],
            ).plot(ax)
        for ax in axes[0][1:]:
            ax.set_ylabel("")
        return self


@dataclass
class LearningCurveDisplay:
    """Loss and accuracy per epoch, training and validation, one line per run or a seed band."""

    histories: Mapping[str, Sequence[Mapping[str, Sequence[float]]]]
    """``{label: [history, ...]}``: several histories under one label are drawn as mean +- std."""

    def plot(self, axes: Any = None) -> LearningCurveDisplay:
        import matplotlib.pyplot as plt

        if axes is None:
            figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
        self.figure_, self.axes_ = axes[0].figure, axes
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for index, (label, runs) in enumerate(self.histories.items()):
            color = colors[index % len(colors)]
            for ax, metric in zip(axes, ("loss", "accuracy")):
                for prefix, style in (("", "--"), ("val_", "-")):
                    curves = np.array([run[prefix + metric] for run in runs], float)
                    epochs = np.arange(1, curves.shape[1] + 1)
                    mean = np.nanmean(curves, 0)
                    ax.plot(epochs, mean, style, color=color, label=f"{label} ({'val' if prefix else 'train'})")
                    if len(runs) > 1:
                        std = np.nanstd(curves, 0)
                        ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15, lw=0)
        for ax, metric in zip(axes, ("loss", "accuracy")):
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
            ax.spines[["top", "right"]].set_visible(False)
        axes[1].legend(fontsize=8, frameon=False)
        return self
