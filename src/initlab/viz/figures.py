"""Figures of a results store for a paper's appendix: Display objects over stored results only.

Every display follows scikit-learn's pattern: ``from_store(store, ...)`` (or ``from_results``)
computes what is drawn from the store's tidy rows, ``plot(ax=None)`` draws it and keeps
``figure_``. Nothing here re-runs an experiment, and matplotlib is imported inside ``plot``.

Runs are grouped into *configurations* (equal configs but for the seed) by
:class:`initlab.analysis.results.Results`; a configuration keeps one label and one colour
(Okabe-Ito, colour-blind safe) in every figure.

Example:
    >>> results = Results.from_store("sweep.sqlite")
    >>> SeedBandCurvesDisplay.from_results(results).plot().figure_.savefig("curves.pdf")
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from initlab.analysis.results import (  # noqa: F401  (Results, Band, PALETTE... stay importable from here)
    HISTOGRAM_KINDS,
    PALETTE,
    Band,
    Results,
    as_results,
    bands_by_label,
    configuration_labels,
    layer_sort_key,
    theory_by_label,
)
from initlab.errors import InitlabError, unknown
from initlab.experiments.store import Store
from initlab.viz.style import legend, mpl_text, panels, percent_axis, style

LEARNING_METRICS = ("loss", "accuracy")
_AXIS_LABELS = {
    "loss": "loss (mean over samples)",
    "accuracy": "accuracy (fraction correct)",
    "saturation_fraction": "saturated outputs (%)",
    "saturation_low_fraction": "saturated low (%)",
    "saturation_high_fraction": "saturated high (%)",
    "dead_fraction": "dead units (%)",
    "zero_fraction": "zero outputs (%)",
    "preactivation_variance": r"Var$[z]$ (pre-activations)",
    "activation_variance": r"Var$[\phi(z)]$ (activations)",
    "backprop_variance": r"Var$[\partial \ell_n/\partial z_n]$ (per example)",
    "weight_grad_variance": r"Var$[\partial L/\partial W]$",
    "weight_grad_norm": r"$\|\partial L/\partial W\|_F$",
    "update_ratio": r"$\|\Delta W\|_F\,/\,\|W\|_F$",
}
_HISTOGRAM_AXES = {
    "activation": "activation value",
    "preactivation": "pre-activation value",
    "backprop": r"back-propagated gradient $\partial L/\partial z$ (symmetric log scale)",
}
_HISTOGRAM_TITLES = {
    "activation": "activation",
    "preactivation": "pre-activation",
    "backprop": "back-propagated gradient",
}
_HISTOGRAM_SHORT = {
    "activation": "activation",
    "preactivation": "pre-activation",
    "backprop": r"$\partial L/\partial z$",
}
# --------------------------------------------------------------------------------------------
# Labels of configurations and layers


def _title_layer(layer: str, output_layer: str | None) -> str:
    return f"layer {mpl_text(layer)}" + (" (output)" if layer == output_layer else "")


def _output_layer(results: Results, labels: Iterable[str]) -> str | None:
    layers = {
        str(len(run["config"].get("hidden_units") or []) + 1)
        for run in results.runs
        if results.labels[run["run_id"]] in set(labels) and isinstance(run.get("config"), dict)
    }
    return layers.pop() if len(layers) == 1 else None


def _chosen(results: Results, labels: Iterable[str] | None) -> list[str]:
    if labels is None:
        return list(results.order)
    labels = list(labels)
    for label in labels:
        if label not in results.order:
            raise unknown("configuration label", label, results.order)
    return labels


# --------------------------------------------------------------------------------------------
# Displays


_HOW_TO_PROBE = (
    "; per-layer statistics are recorded by probes: set probe_every = 1 in the sweep file's [base] "
    "(or train with --probe) and run it again"
)


def _how_to_probe(results: Results) -> str:
    """How to record per-layer statistics, for a store that has none (otherwise nothing to add)."""
    return "" if any(results.metrics.get("layer", [])) else _HOW_TO_PROBE


MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<", ">")


@dataclass
class SeedBandCurvesDisplay:
    """Learning curves per configuration: mean over seeds, a band of +-1 std (sample std).

    Attributes:
        bands: ``{label: {statistic: Band}}`` with statistics such as ``loss`` and ``val_loss``.
        metrics: one panel per metric; training dashed, validation (``val_`` prefix) solid.
        colors: colour per label.
    """

    bands: Mapping[str, Mapping[str, Band]]
    metrics: Sequence[str] = LEARNING_METRICS
    colors: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_results(
        cls,
        results: Results | Store | str | Path,
        *,
        metrics: Sequence[str] = LEARNING_METRICS,
        labels: Iterable[str] | None = None,
        include_diverged: bool = False,
    ) -> SeedBandCurvesDisplay:
        """Bands from stored histories; diverged runs are left out unless ``include_diverged``."""
        results = as_results(results)
        labels = _chosen(results, labels)
        bands: dict[str, dict[str, Band]] = {label: {} for label in labels}
        for metric in metrics:
            for name in (metric, f"val_{metric}"):
                for label, band in bands_by_label(results, labels, name, "", include_diverged).items():
                    bands[label][name] = band
        present = [m for m in metrics if any(m in b or f"val_{m}" in b for b in bands.values())]
        if not present:
            raise InitlabError(f"the store holds no finished runs with {' or '.join(metrics)} per epoch")
        return cls({k: v for k, v in bands.items() if v}, tuple(present), {k: results.colors[k] for k in labels})

    from_store = from_results

    def plot(self, ax: Any = None) -> SeedBandCurvesDisplay:
        with style():
            figure, axes, created = panels(ax, len(self.metrics), columns=2, size=(3.5, 2.7))
            for ax_, metric in zip(axes, self.metrics):
                for index, (label, bands) in enumerate(self.bands.items()):
                    color = self.colors.get(label, PALETTE[index % len(PALETTE)])
                    for name, line, alpha in ((metric, "--", 0.10), (f"val_{metric}", "-", 0.20)):
                        if name in bands:
                            band = bands[name]
                            # A marker per configuration: a second cue beside colour when lines are many.
                            ax_.plot(
                                band.x, band.center, line, color=color, marker=MARKERS[index % len(MARKERS)], ms=3.5,
                                markevery=max(1, len(band.x) // 5), mfc="white" if line == "--" else color,
                            )
                            ax_.fill_between(band.x, band.low, band.high, color=color, alpha=alpha, lw=0)
                ax_.set_xlabel("epoch")
                ax_.set_ylabel(_AXIS_LABELS.get(metric) or mpl_text(metric))
                ax_.xaxis.get_major_locator().set_params(integer=True)
            entries = [
                (
                    f"{label} (n={int(max(b.n.max() for b in bands.values()))})",
                    {"color": self.colors.get(label, PALETTE[i % len(PALETTE)]), "marker": MARKERS[i % len(MARKERS)]},
                )
                for i, (label, bands) in enumerate(self.bands.items())
            ]
            key = [("validation", {"color": "0.3", "ls": "-"}), ("training", {"color": "0.3", "ls": "--"})]
            legend(figure, axes, entries, created, key)
        self.figure_, self.axes_, self.ax_ = figure, axes, axes[0]
        return self


@dataclass
class SaturationOverEpochsDisplay:
    """A per-layer fraction (saturated outputs, dead units, ...) against epoch, one line per configuration.

    One panel per layer; epoch 0 is the network at initialization. Lines are means over seeds
    with a +-1 std band; an open diamond at epoch 0 marks a theory prediction when given.
    """

    statistic: str
    bands: Mapping[str, Mapping[str, Band]]
    """``{layer: {label: Band}}``."""
    colors: Mapping[str, str] = field(default_factory=dict)
    theory: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """``{layer: {label: predicted value at initialization}}``."""
    output_layer: str | None = None

    @classmethod
    def from_results(
        cls,
        results: Results | Store | str | Path,
        statistic: str = "saturation_fraction",
        *,
        labels: Iterable[str] | None = None,
        layers: Iterable[str] | None = None,
        theory: Mapping[Any, Mapping[str, Any]] | None = None,
        include_diverged: bool = False,
    ) -> SaturationOverEpochsDisplay:
        results = as_results(results)
        labels = _chosen(results, labels)
        layers = results.layers(statistic) if layers is None else [str(layer) for layer in layers]
        bands = {layer: bands_by_label(results, labels, statistic, layer, include_diverged) for layer in layers}
        bands = {layer: b for layer, b in bands.items() if b}
        if not bands:
            raise InitlabError(f"the store holds no finite per-layer '{statistic}' values{_how_to_probe(results)}")
        predicted: dict[str, dict[str, float]] = {}
        for label, stats in theory_by_label(theory, results).items():
            for layer, value in stats.get(statistic, {}).items():
                if layer in bands and label in labels:
                    predicted.setdefault(layer, {})[label] = value
        return cls(statistic, bands, {k: results.colors[k] for k in labels}, predicted, _output_layer(results, labels))

    from_store = from_results

    def plot(self, ax: Any = None) -> SaturationOverEpochsDisplay:
        fraction = self.statistic.endswith("_fraction")
        labels = list(dict.fromkeys(label for bands in self.bands.values() for label in bands))
        color = {label: self.colors.get(label, PALETTE[i % len(PALETTE)]) for i, label in enumerate(labels)}
        with style():
            figure, axes, created = panels(ax, len(self.bands), columns=3, size=(2.45, 2.2), sharey=True)
            for ax_, (layer, bands) in zip(axes, self.bands.items()):
                for label, band in bands.items():
                    ax_.plot(band.x, band.center, "-", color=color[label], marker="o", ms=2.5)
                    ax_.fill_between(band.x, band.low, band.high, color=color[label], alpha=0.18, lw=0)
                for label, value in self.theory.get(layer, {}).items():
                    ax_.plot([0], [value], "D", mfc="white", mec=color[label], ms=5, mew=1.2, zorder=5)
                ax_.set_title(_title_layer(layer, self.output_layer))
                ax_.set_xlabel("epoch (0 = initialization)")
                ax_.xaxis.get_major_locator().set_params(integer=True)
            axes[0].set_ylabel(_AXIS_LABELS.get(self.statistic) or mpl_text(self.statistic))
            if fraction:
                highs = [h for bands in self.bands.values() for b in bands.values() for h in b.high]
                highs += [v for values in self.theory.values() for v in values.values()]
                for ax_ in axes:
                    percent_axis(ax_, highs)
            entries = [(label, {"color": color[label], "marker": "o", "ms": 3}) for label in labels]
            key = [("theory", {"color": "0.3", "marker": "D", "mfc": "white", "ls": ""})] if self.theory else []
            legend(figure, axes, entries, created, key)
        self.figure_, self.axes_, self.ax_ = figure, axes, axes[0]
        return self


@dataclass
class LayerHistogramGridDisplay:
    """One configuration's histograms as a grid: a row per layer, a column per epoch (Glorot & Bengio).

    Counts are pooled over the configuration's seeds (the probes use fixed bins) and shown as
    the fraction of entries per bin. Back-propagated gradients use a symmetric log axis.
    """

    label: str
    kind: str
    layers: Sequence[str]
    epochs: Sequence[int]
    edges: Mapping[str, np.ndarray]
    fractions: Mapping[tuple[str, int], np.ndarray]
    runs: int = 1
    color: str = PALETTE[0]
    output_layer: str | None = None

    @classmethod
    def from_results(
        cls,
        results: Results | Store | str | Path,
        label: str | None = None,
        kind: str = "activation",
        *,
        epochs: Iterable[int] | None = None,
        layers: Iterable[str] | None = None,
        max_epochs: int = 5,
        include_diverged: bool = False,
    ) -> LayerHistogramGridDisplay:
        """The grid of ``label`` (default: the first configuration with such histograms).

        ``epochs`` default to at most ``max_epochs`` evenly spread stored epochs, first and last included.
        """
        results = results if isinstance(results, Results) else Results.from_store(results, histogram_kinds=[kind])
        h = results.histograms
        rows = [i for i, k in enumerate(h.get("kind", ())) if k == kind]
        if not rows:
            raise InitlabError(
                f"the store holds no '{kind}' histograms (kinds: {', '.join(results.histogram_kinds()) or 'none'})"
                + _how_to_probe(results)
            )
        wanted = set()
        for candidate in [label] if label is not None else results.order:
            if candidate not in results.order:
                raise unknown("configuration label", candidate, results.order)
            wanted = set(results.run_ids(candidate, include_diverged=include_diverged))
            if any(h["run_id"][i] in wanted for i in rows):
                label = candidate
                break
        rows = [i for i in rows if h["run_id"][i] in wanted]
        if not rows:
            raise InitlabError(f"no '{kind}' histograms for configuration {label!r}")
        stored_epochs = sorted({h["epoch"][i] for i in rows})
        if epochs is None:
            picks = np.unique(np.round(np.linspace(0, len(stored_epochs) - 1, min(max_epochs, len(stored_epochs)))))
            epochs = [stored_epochs[int(p)] for p in picks]
        epochs = [int(e) for e in epochs]
        layers = sorted({h["layer"][i] for i in rows}, key=layer_sort_key) if layers is None else [str(x) for x in layers]
        edges: dict[str, np.ndarray] = {}
        totals: dict[tuple[str, int], np.ndarray] = {}
        for i in rows:
            layer, epoch = h["layer"][i], h["epoch"][i]
            if layer not in layers or epoch not in epochs:
                continue
            row_edges = np.asarray(h["edges"][i], float)
            reference = edges.setdefault(layer, row_edges)
            if reference.shape != row_edges.shape or not np.allclose(reference, row_edges):
                continue  # bins differ from the first run's: counts cannot be pooled bin by bin
            totals[layer, epoch] = totals.get((layer, epoch), 0) + np.asarray(h["counts"][i], float)
        fractions = {key: counts / max(counts.sum(), 1.0) for key, counts in totals.items()}
        layers = [layer for layer in layers if layer in edges]
        return cls(
            label,
            kind,
            layers,
            epochs,
            edges,
            fractions,
            len({h["run_id"][i] for i in rows}),
            results.colors[label],
            _output_layer(results, [label]),
        )

    from_store = from_results

    def plot(self, ax: Any = None) -> LayerHistogramGridDisplay:
        rows, columns = len(self.layers), len(self.epochs)
        with style():
            if ax is None:
                figure, grid = panels(
                    None, rows * columns, columns=columns, size=(1.5, 1.15), sharex="row", sharey="row"
                )[:2]
            else:
                figure, grid, _ = panels(ax, rows * columns, columns=columns, size=(1.5, 1.15))
            for r, layer in enumerate(self.layers):
                edges = self.edges[layer]
                used = np.zeros(len(edges) - 1, bool)
                for c, epoch in enumerate(self.epochs):
                    ax_ = grid[r * columns + c]
                    values = self.fractions.get((layer, epoch))
                    if values is not None:
                        ax_.stairs(values, edges, fill=True, facecolor=(self.color, 0.35), edgecolor=self.color, lw=0.9)
                        used |= values > 0
                    else:
                        ax_.text(0.5, 0.5, "no data", transform=ax_.transAxes, ha="center", va="center", color="0.5")
                    ax_.tick_params(labelsize=7)
                    ax_.grid(False)
                    if r == 0:
                        ax_.set_title(f"epoch {epoch}" + (" (init)" if epoch == 0 else ""))
                    if c == 0:
                        ax_.set_ylabel(f"{_title_layer(layer, self.output_layer)}\nfraction", fontsize=8)
                    if r == rows - 1 and ax is not None:
                        ax_.set_xlabel(_HISTOGRAM_SHORT.get(self.kind, mpl_text(self.kind)), fontsize=8)
                self._limits(grid[r * columns : (r + 1) * columns], edges, used)
            if ax is None:
                figure.supxlabel(_HISTOGRAM_AXES.get(self.kind, mpl_text(self.kind)), fontsize=9)
                kind = _HISTOGRAM_TITLES.get(self.kind, mpl_text(self.kind))
                runs = f"{self.runs} run{'s' if self.runs != 1 else ''}"
                figure.suptitle(f"{mpl_text(self.label)}\n{kind} histograms, {runs} pooled", fontsize=9)
        self.figure_, self.axes_, self.ax_ = figure, np.asarray(grid, dtype=object).reshape(rows, columns), grid[0]
        return self

    def _limits(self, row: list[Any], edges: np.ndarray, used: np.ndarray) -> None:
        from matplotlib.ticker import NullLocator

        low, high = edges[0], edges[-1]
        if self.kind != "activation" and used.any():  # zoom on where the mass is
            first, last = np.flatnonzero(used)[[0, -1]]
            low, high = edges[max(first - 1, 0)], edges[min(last + 2, len(edges) - 1)]
        for ax_ in row:
            if self.kind == "backprop":
                positive = np.abs(edges[edges != 0])
                threshold = float(positive.min()) if positive.size else 1e-9
                ax_.set_xscale("symlog", linthresh=threshold, linscale=0.5)
                ticks = [0.0]
                for end, sign in ((low, -1.0), (high, 1.0)):
                    if abs(end) > threshold * 10:
                        ticks.append(sign * 10.0 ** math.floor(math.log10(abs(end))))
                ax_.set_xticks(sorted(ticks))
                ax_.xaxis.set_minor_locator(NullLocator())
            ax_.set_xlim(low, high)


@dataclass
class GradientVarianceByDepthDisplay:
    """Variance of back-propagated gradients against depth, one line per configuration, log scale.

    Lines are geometric means over seeds with a +-1 std band of log10; theory predictions, when
    given, are dashed with open markers in the configuration's colour. Any positive per-layer
    statistic works: ``weight_grad_variance``, or the forward pass's ``preactivation_variance``
    and ``activation_variance`` (squares of the stored ``*_std``).
    """

    statistic: str
    epoch: int
    bands: Mapping[str, Band]
    theory: Mapping[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)
    colors: Mapping[str, str] = field(default_factory=dict)
    output_layer: str | None = None

    @classmethod
    def from_results(
        cls,
        results: Results | Store | str | Path,
        statistic: str = "backprop_variance",
        *,
        epoch: int | None = None,
        labels: Iterable[str] | None = None,
        theory: Mapping[Any, Mapping[str, Any]] | None = None,
        include_diverged: bool = False,
    ) -> GradientVarianceByDepthDisplay:
        """At ``epoch`` (default: the first stored, 0 being initialization)."""
        results = as_results(results)
        labels = _chosen(results, labels)
        layers = results.layers(statistic)
        if not layers:
            raise InitlabError(f"the store holds no finite per-layer '{statistic}' values{_how_to_probe(results)}")
        if epoch is None:
            epoch = min(
                e
                for layer in layers
                for runs in [results.series(statistic, layer)]
                for epochs in runs.values()
                for e, v in epochs.items()
                if math.isfinite(v)
            )
        numeric = [layer for layer in layers if layer.isdigit()]
        bands = {}
        for label in labels:
            ids = results.run_ids(label, include_diverged=include_diverged)
            curves = [
                {int(layer): results.series(statistic, layer).get(r, {}).get(epoch, math.nan) for layer in numeric}
                for r in ids
            ]
            band = Band.over(curves, geometric=True)
            if band is not None:
                bands[label] = band
        if not bands:
            raise InitlabError(f"no positive '{statistic}' values at epoch {epoch}")
        predicted = {}
        for label, stats in theory_by_label(theory, results).items():
            values = {int(k): v for k, v in stats.get(statistic, {}).items() if k.isdigit() and v > 0}
            if values and label in labels:
                predicted[label] = (sorted(values), [values[k] for k in sorted(values)])
        return cls(
            statistic,
            int(epoch),
            bands,
            predicted,
            {k: results.colors[k] for k in labels},
            _output_layer(results, labels),
        )

    from_store = from_results

    def plot(self, ax: Any = None) -> GradientVarianceByDepthDisplay:
        labels = list(dict.fromkeys([*self.bands, *self.theory]))
        color = {label: self.colors.get(label, PALETTE[i % len(PALETTE)]) for i, label in enumerate(labels)}
        with style():
            figure, (ax_,), created = panels(ax, 1, columns=1, size=(4.6, 3.0))
            for label, band in self.bands.items():
                ax_.plot(band.x, band.center, "-o", color=color[label], ms=3.5)
                ax_.fill_between(band.x, band.low, band.high, color=color[label], alpha=0.18, lw=0)
            for label, (x, y) in self.theory.items():
                ax_.plot(x, y, "--", color=color[label], marker="s", mfc="white", ms=4.5, lw=1.1)
            ax_.set_yscale("log")
            values = [v for band in self.bands.values() for v in (*band.low, *band.high) if v > 0]
            values += [v for _, y in self.theory.values() for v in y]
            if values and math.log10(max(values) / min(values)) < 2:  # few decades: label 2 and 5 too
                from matplotlib.ticker import LogFormatterSciNotation, LogLocator

                ax_.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                every = LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(math.inf, math.inf))
                ax_.yaxis.set_major_formatter(every)
            layers = sorted({int(x) for band in self.bands.values() for x in band.x})
            ax_.set_xticks(layers, [f"{x}\n(output)" if str(x) == self.output_layer else str(x) for x in layers])
            ax_.set_xlabel("layer (1 = first hidden layer)")
            ax_.set_ylabel(_AXIS_LABELS.get(self.statistic) or mpl_text(self.statistic))
            ax_.set_title(f"epoch {self.epoch}" + (" (at initialization)" if self.epoch == 0 else ""))
            entries = [(label, {"color": color[label], "marker": "o", "ms": 3.5}) for label in self.bands]
            key = (
                [
                    ("measured", {"color": "0.3", "marker": "o", "ms": 3.5}),
                    ("theory", {"color": "0.3", "ls": "--", "marker": "s", "mfc": "white"}),
                ]
                if self.theory
                else []
            )
            legend(figure, [ax_], entries, created, key)
        self.figure_, self.ax_ = figure, ax_
        return self


# --------------------------------------------------------------------------------------------
