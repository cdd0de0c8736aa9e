"""Figures of signal propagation at initialization: what a network measures, what theory predicts.

Displays in scikit-learn's pattern (``from_*`` computes, ``plot(ax=None)`` draws and keeps
``figure_``; matplotlib is imported in ``plot``): :class:`PropagationDisplay`,
:class:`LayerHistogramsDisplay` and :class:`IsometryDisplay` draw :mod:`initlab.measure.propagation`'s
measurements; :class:`PhaseDiagramDisplay` and :class:`VarianceDepthDisplay` draw
:mod:`initlab.mean_field.theory`'s mean-field predictions.

Example:
    >>> result = propagate(["glorot_uniform", "he_normal"], activation="relu")
    >>> PropagationDisplay.from_result(result).plot().figure_.savefig("propagation.png")
    >>> PhaseDiagramDisplay.from_activation("tanh").plot(points={"glorot": (1.0, 0.0)})
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from initlab.errors import InitlabError
from initlab.mean_field import theory as mean_field
from initlab.measure.propagation import IsometryResult, PropagationResult
from initlab.viz.plots import _axes


@dataclass
class PropagationDisplay:
    """Variance against depth, forward and backward, one line per initializer, log scale.

    Theory curves (``{label: values}`` or one array) are dashed; a label that is also an
    initializer takes its colour. A curve of ``depth + 1`` values starts at layer 0 (the input).
    """

    forward: Mapping[str, Sequence[float]]
    backward: Mapping[str, Sequence[float]]
    theory_forward: Mapping[str, Sequence[float]] | Sequence[float] | None = None
    theory_backward: Mapping[str, Sequence[float]] | Sequence[float] | None = None
    forward_label: str = "pre-activation variance"
    backward_label: str = "variance of dL/dz"
    title: str = ""

    @classmethod
    def from_result(cls, result: PropagationResult, *, backward: str = "gradient_variance", **theory: Any) -> PropagationDisplay:
        labels = {"gradient_variance": "variance of dl/dz (per example)",
                  "weight_gradient_variance": "variance of dL/dW (batch-mean loss)"}
        return cls(
            forward={run.initializer: run.preactivation_variance for run in result.runs},
            backward={run.initializer: getattr(run, backward) for run in result.runs},
            backward_label=labels.get(backward, backward),
            title=f"{result.activation}, depth {result.depth}, width {result.width}, {result.inputs} inputs",
            **theory,
        )

    def plot(self, axes: Any = None) -> PropagationDisplay:
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
        self.figure_, self.axes_ = axes[0].figure, axes
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        color_of = {label: colors[i % len(colors)] for i, label in enumerate(self.forward)}
        depth = max(len(v) for v in self.forward.values())

        def layers(curve):  # a curve of depth + 1 values starts at the input, layer 0
            return np.arange(len(curve)) + (len(curve) != depth + 1)

        for ax, measured, theory, ylabel in ((axes[0], self.forward, self.theory_forward, self.forward_label),
                                             (axes[1], self.backward, self.theory_backward, self.backward_label)):
            for label, values in measured.items():
                ax.plot(layers(values), values, "o-", ms=3, color=color_of[label], label=label)
            if theory is not None:
                curves = theory if isinstance(theory, Mapping) else {"theory": theory}
                for label, values in curves.items():
                    ax.plot(layers(values), values, "--", color=color_of.get(label, "0.3"),
                            label=f"{label} (theory)")
            ax.set(yscale="log", xlabel="layer", ylabel=ylabel)
            ax.spines[["top", "right"]].set_visible(False)
        axes[1].legend(fontsize=7, frameon=False)
        if self.title:
            self.figure_.suptitle(self.title, fontsize=10)
        return self


@dataclass
class LayerHistogramsDisplay:
    """One panel per initializer, the layers' histograms overlaid (Glorot & Bengio, figs. 6-7)."""

    histograms: Mapping[str, Mapping[str, Sequence]]
    xlabel: str = "activation value"

    @classmethod
    def from_result(cls, result: PropagationResult, kind: str = "activation") -> LayerHistogramsDisplay:
        if kind not in ("activation", "gradient"):
            raise InitlabError(f"histogram kind must be 'activation' or 'gradient', got {kind!r}")
        return cls({run.initializer: getattr(run, f"{kind}_histogram") for run in result.runs},
                   "activation value" if kind == "activation" else "back-propagated gradient dL/dz")

    def plot(self, axes: Any = None) -> LayerHistogramsDisplay:
        import matplotlib.pyplot as plt

        panels = len(self.histograms)
        if axes is None:
            columns, rows = min(panels, 3), math.ceil(panels / 3)
            _, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), layout="constrained", squeeze=False)
        axes = np.ravel(axes)
        self.figure_, self.axes_ = axes[0].figure, axes
        for ax, (label, histogram) in zip(axes, self.histograms.items()):
            edges, counts = np.asarray(histogram["edges"]), np.asarray(histogram["counts"], float)
            for layer, row in enumerate(counts):
                ax.stairs(row / max(row.sum(), 1), edges, color=plt.cm.viridis(layer / max(len(counts) - 1, 1)),
                          label=f"layer {layer + 1}")
            ax.set(xlabel=self.xlabel, ylabel="fraction")
            ax.set_title(label, fontsize=8)
            ax.spines[["top", "right"]].set_visible(False)
        for ax in axes[panels:]:
            ax.set_visible(False)
        axes[0].legend(fontsize=6, frameon=False)
        return self


@dataclass
class IsometryDisplay:
    """Histograms of Jacobian singular values, one per initializer, on log-spaced shared bins."""

    singular_values: Mapping[str, Sequence[float]]
    bins: int = 50

    @classmethod
    def from_results(cls, *results: IsometryResult, bins: int = 50) -> IsometryDisplay:
        return cls({r.initializer: np.ravel(r.singular_values).tolist() for r in results}, bins)

    def plot(self, ax: Any = None) -> IsometryDisplay:
        self.figure_, self.ax_ = _axes(ax)
        values = np.concatenate([np.asarray(v, float) for v in self.singular_values.values()])
        # Bins reach at least [0.5, 2], so that an isometry's spike at 1 stays visible.
        edges = np.geomspace(min(max(values.min(), 1e-12), 0.5), max(values.max(), 2.0), self.bins + 1)
        for label, sv in self.singular_values.items():
            self.ax_.hist(sv, bins=edges, histtype="step", linewidth=1.5, label=label)
        ax = self.ax_
        ax.set(xscale="log", xlabel="singular value of the input-output Jacobian", ylabel="count")
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        return self


@dataclass
class PhaseDiagramDisplay:
    """The correlation depth xi_c over ``(sigma_w2, sigma_b2)`` and the critical line chi1 = 1.

    ``xi_c`` and ``chi1`` have a row per ``sigma_b2`` and a column per ``sigma_w2``.
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    xi_c: np.ndarray
    chi1: np.ndarray

    @classmethod
    def from_activation(
        cls, activation: mean_field.ActivationLike, sigma_w2_range: tuple[float, float] = (0.5, 4.0),
        sigma_b2_range: tuple[float, float] = (0.0, 0.3), resolution: int = 30,
    ) -> PhaseDiagramDisplay:  # fmt: skip
        """Compute the grid, ``resolution`` points a side (tanh at 30: about 2 s)."""
        return cls(**mean_field.phase_grid(activation, sigma_w2_range, sigma_b2_range, resolution))

    def plot(self, ax: Any = None, points: Mapping[str, tuple[float, float]] | None = None, max_depth: float = 50.0) -> PhaseDiagramDisplay:
        """Filled contours of xi_c (capped at ``max_depth``), the line chi1 = 1, and ``points`` by label."""
        self.figure_, self.ax_ = figure, ax = _axes(ax)
        depth = np.ma.masked_invalid(np.minimum(self.xi_c, max_depth))
        self.contours_ = ax.contourf(self.sigma_w2, self.sigma_b2, depth, levels=np.linspace(0, max_depth, 11), cmap="viridis")
        figure.colorbar(self.contours_, ax=ax, label=r"correlation depth $\xi_c$ (layers)")
        self.critical_line_ = None
        if np.nanmin(self.chi1) < 1 < np.nanmax(self.chi1):
            self.critical_line_ = ax.contour(self.sigma_w2, self.sigma_b2, self.chi1, levels=[1.0], colors="white", linewidths=2)
        for label, (x, y) in (points or {}).items():
            ax.plot(x, y, "o", color="#C44E52", markeredgecolor="white", clip_on=False)
            ax.annotate(label, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=9, bbox={"fc": "white", "alpha": 0.7, "lw": 0})
        ax.set_facecolor("0.85")  # shows through where there is no finite q* (variance explodes)
        ax.set(xlabel=r"$\sigma_w^2$", ylabel=r"$\sigma_b^2$")
        unbounded = ", grey: variance explodes" if np.isnan(self.xi_c).any() else ""
        ax.set_title(f"{self.activation}: ordered left of the line $\\chi_1 = 1$, chaotic right{unbounded}", fontsize=10)
        return self

    def to_dict(self) -> dict[str, Any]:
        return mean_field.jsonable({name: getattr(self, name) for name in ("activation", "sigma_w2", "sigma_b2", "xi_c", "chi1")})


@dataclass
class VarianceDepthDisplay:
    """Pre-activation variance per layer: the mean-field q(l), and measured values if given."""

    theory: np.ndarray
    measured: Sequence[float] | None = None
    label: str = ""

    @classmethod
    def from_theory(
        cls, activation: mean_field.ActivationLike, sigma_w2: float, sigma_b2: float, q0: float, depth: int,
        measured: Sequence[float] | None = None,
    ) -> VarianceDepthDisplay:  # fmt: skip
        """``theory[l]``: layer l's variance from ``q0`` (layer 0); ``measured[l]`` lines up with it."""
        label = f"{mean_field.activation_name(activation)}, $\\sigma_w^2$={sigma_w2:g}, $\\sigma_b^2$={sigma_b2:g}"
        return cls(mean_field.variance_trajectory(q0, depth, sigma_w2, sigma_b2, activation), measured, label)

    def plot(self, ax: Any = None) -> VarianceDepthDisplay:
        self.figure_, self.ax_ = _, ax = _axes(ax)
        ax.plot(np.arange(len(self.theory)), self.theory, "-", color="#4C72B0", label="mean-field theory")
        if self.measured is not None:
            ax.plot(np.arange(len(self.measured)), self.measured, "o", color="#C44E52", label="measured")
        if np.all(np.asarray(self.theory) > 0):
            ax.set_yscale("log")
        ax.set(xlabel="layer", ylabel="pre-activation variance q")
        ax.set_title(self.label, fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        return self

    def to_dict(self) -> dict[str, Any]:
        return mean_field.jsonable({"label": self.label, "theory": self.theory, "measured": self.measured})
