"""Results of a store for figures and reports: runs grouped by configuration, bands over seeds.

A store holds tidy rows; :class:`Results` reads them once and groups runs into
*configurations*: equal configs but for the seed. A configuration's label names the config
fields that vary across the store (``"glorot_uniform · mse · sgd(lr=0.01)"``) and keeps one
colour (Okabe-Ito, colour-blind safe) in every figure. :class:`Band` is a curve over seeds
(mean ± std at each epoch or depth). Nothing here draws: :mod:`initlab.viz.figures` does.

Example:
    >>> results = Results.from_store("sweep.sqlite")
    >>> results.order  # configuration labels, in the store's order
    >>> Band.over(results.series("val_accuracy").values())
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from initlab.errors import InitlabError, unknown
from initlab.experiments.store import Store

PALETTE = (
    # Okabe & Ito's colour-blind-safe eight first, then distinct darker and lighter tones.
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#999999",
    "#882255", "#117733", "#332288", "#AA4499", "#44AA99", "#999933", "#661100", "#6699CC",
    "#DDCC77", "#88CCEE", "#AA4466", "#4477AA",
)
"""Okabe & Ito's colour-blind-safe colours (yellow left out: it vanishes on white)."""
HISTOGRAM_KINDS = ("activation", "preactivation", "backprop")

_PRIMARY = ("architecture", "kernel_initializer", "activation", "loss", "optimizer", "hidden_units", "dataset")
_SHORT_FIELDS = {
    "hidden_units": "hidden",
    "bias_initializer": "bias",
    "output_activation": "out",
    "output_kernel_initializer": "out_init",
    "output_bias_initializer": "out_bias",
    "layer_kernel_initializers": "layer_inits",
    "batch_size": "batch",
    "data_file": "data",
}
_SHORT_VALUES = (
    ("mean_squared_error", "mse"),
    ("categorical_crossentropy", "cce"),
    ("binary_crossentropy", "bce"),
    ("learning_rate=", "lr="),
)



def _value_text(name: str, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    for long, short in _SHORT_VALUES:
        text = text.replace(long, short)
    return text if isinstance(value, str) and name in _PRIMARY else f"{_SHORT_FIELDS.get(name, name)}={text}"


def configuration_labels(runs: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """A readable label per run, equal for runs whose configs differ only in the seed.

    The label joins the values of the fields that vary across ``runs`` (seed excluded); with
    one configuration, its initializer and activation. A stored run label is used instead when
    it names exactly one configuration and each configuration has exactly one.
    """
    configs = {run["run_id"]: {k: v for k, v in (run.get("config") or {}).items() if k != "seed"} for run in runs}
    keys = {run_id: json.dumps(config, sort_keys=True) for run_id, config in configs.items()}
    groups: dict[str, list[int]] = {}
    for run_id, key in keys.items():
        groups.setdefault(key, []).append(run_id)
    fields = list(dict.fromkeys(name for config in configs.values() for name in config))
    varying = [name for name in fields if len({json.dumps(c.get(name), sort_keys=True) for c in configs.values()}) > 1]
    varying.sort(key=lambda name: (_PRIMARY.index(name) if name in _PRIMARY else len(_PRIMARY), fields.index(name)))
    single = ("architecture", "kernel_initializer") if any(c.get("architecture") for c in configs.values()) else (
        "kernel_initializer", "activation")  # a network's own activation is in its spec, not in the MLP's field
    shown = varying or [name for name in single if name in fields]
    derived = {
        key: " · ".join(_value_text(name, configs[ids[0]].get(name)) for name in shown) or "all runs"
        for key, ids in groups.items()
    }
    stored = {run["run_id"]: run.get("label") for run in runs}
    names = {key: {stored[run_id] for run_id in ids} for key, ids in groups.items()}
    if all(len(n) == 1 and None not in n and "" not in n for n in names.values()):
        chosen = {key: next(iter(n)) for key, n in names.items()}
        if len(set(chosen.values())) == len(chosen):
            derived = chosen
    return {run_id: derived[key] for run_id, key in keys.items()}


@contextmanager
def _opened(store: Store | str | Path) -> Iterator[Store]:
    if isinstance(store, Store):
        yield store
        return
    with Store(store, read_only=True) as opened:
        yield opened


@dataclass
class Results:
    """A store's runs, metrics and histograms, read once, with runs grouped by configuration.

    Attributes:
        runs: :meth:`Store.runs` rows. metrics: :meth:`Store.metrics` columns.
        histograms: :meth:`Store.histograms` columns (empty when not loaded).
        labels: configuration label of each run id (:func:`configuration_labels`).
        colors: one colour per configuration label, the same in every figure.
    """

    runs: list[dict[str, Any]]
    metrics: Mapping[str, Sequence[Any]]
    histograms: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    documents: Mapping[str, Any] = field(default_factory=dict)
    """Documents kept beside the runs (``part_a``: the main job's saturation at initialization;
    ``theory``: predictions to draw beside the measurements, as ``build_report``'s ``theory``)."""

    def __post_init__(self) -> None:
        self.labels = configuration_labels(self.runs)
        self.order = list(dict.fromkeys(self.labels[run["run_id"]] for run in self.runs))
        self.colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(self.order)}
        self.status = {run["run_id"]: run["status"] for run in self.runs}
        self._index: dict[tuple[str, str], dict[int, dict[int, float]]] = {}
        m = self.metrics
        for run_id, epoch, layer, statistic, value in zip(
            m["run_id"], m["epoch"], m["layer"], m["statistic"], m["value"]
        ):
            self._index.setdefault((statistic, layer), {}).setdefault(run_id, {})[epoch] = value
        for (statistic, layer), runs in list(self._index.items()):  # variances of the forward pass, from stds
            derived = statistic.replace("_std", "_variance")
            if statistic in ("preactivation_std", "activation_std") and (derived, layer) not in self._index:
                self._index[derived, layer] = {r: {e: v * v for e, v in epochs.items()} for r, epochs in runs.items()}

    @classmethod
    def from_store(
        cls, store: Store | str | Path, *, histogram_kinds: Iterable[str] | None = HISTOGRAM_KINDS
    ) -> Results:
        """Read a store (an open :class:`Store` or a path); ``histogram_kinds=None`` skips histograms."""
        with _opened(store) as opened:
            histograms = {} if histogram_kinds is None else opened.histograms(kinds=histogram_kinds)
            documents = {name: value for name in ("part_a", "theory") if (value := opened.document(name)) is not None}
            return cls(opened.runs(), opened.metrics(), histograms, documents)

    def run_ids(self, label: str, *, include_diverged: bool = False) -> list[int]:
        """The finished runs of a configuration (``done``; also ``diverged`` if asked)."""
        statuses = ("done", "diverged") if include_diverged else ("done",)
        return [run_id for run_id, lab in self.labels.items() if lab == label and self.status[run_id] in statuses]

    def series(self, statistic: str, layer: str = "") -> dict[int, dict[int, float]]:
        """``{run_id: {epoch: value}}`` of one statistic of one layer (``''``: model-level)."""
        return self._index.get((statistic, layer), {})

    def layers(self, statistic: str) -> list[str]:
        """The layers with at least one finite value of a per-layer statistic, in depth order."""
        found = {
            layer
            for (name, layer), runs in self._index.items()
            if name == statistic
            and layer != ""
            and any(math.isfinite(v) for epochs in runs.values() for v in epochs.values())
        }
        return sorted(found, key=layer_sort_key)

    def has(self, statistic: str, *, layer_level: bool = True) -> bool:
        """Whether any finite value of ``statistic`` is stored (per layer, or model-level)."""
        if layer_level:
            return bool(self.layers(statistic))
        return any(math.isfinite(v) for e in self.series(statistic).values() for v in e.values())

    def histogram_kinds(self) -> list[str]:
        present = set(self.histograms.get("kind", ()))
        return [kind for kind in HISTOGRAM_KINDS if kind in present] + sorted(present - set(HISTOGRAM_KINDS))


def layer_sort_key(layer: str) -> tuple[int, Any]:
    return (0, int(layer)) if layer.isdigit() else (1, layer)


def as_results(source: Results | Store | str | Path) -> Results:
    return source if isinstance(source, Results) else Results.from_store(source)


@dataclass(frozen=True)
class Band:
    """A curve over seeds: centre and spread at each ``x``, ``n`` seeds with a finite value there."""

    x: np.ndarray
    center: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray

    @classmethod
    def over(cls, curves: Iterable[Mapping[int, float]], *, geometric: bool = False) -> Band | None:
        """Mean +- std over curves (``geometric``: of log10, for positive quantities on a log axis)."""
        curves = list(curves)
        xs = sorted({x for curve in curves for x in curve})
        if not xs:
            return None
        matrix = np.full((len(curves), len(xs)), np.nan)
        column = {x: i for i, x in enumerate(xs)}
        for row, curve in enumerate(curves):
            for x, value in curve.items():
                matrix[row, column[x]] = np.nan if value is None else value
        matrix[~np.isfinite(matrix)] = np.nan
        if geometric:
            matrix[matrix <= 0] = np.nan
            matrix = np.log10(matrix)
        n = np.sum(np.isfinite(matrix), axis=0)
        keep = n > 0
        if not keep.any():
            return None
        matrix, n = matrix[:, keep], n[keep]
        mean = np.nansum(matrix, axis=0) / n
        squares = np.nansum((matrix - mean) ** 2, axis=0)
        spread = np.sqrt(
            np.divide(squares, n - 1, out=np.zeros_like(squares), where=n > 1)
        )  # sample std; 0 for one seed
        low, high = mean - spread, mean + spread
        if geometric:
            mean, low, high = 10.0**mean, 10.0**low, 10.0**high
        return cls(np.asarray(xs, float)[keep], mean, low, high, n)


def bands_by_label(
    results: Results, labels: Iterable[str], statistic: str, layer: str, include_diverged: bool, geometric: bool = False
) -> dict[str, Band]:
    series = results.series(statistic, layer)
    bands = {}
    for label in labels:
        band = Band.over(
            [series[r] for r in results.run_ids(label, include_diverged=include_diverged) if r in series],
            geometric=geometric,
        )
        if band is not None:
            bands[label] = band
    return bands


def theory_by_label(
    theory: Mapping[Any, Mapping[str, Any]] | None, results: Results
) -> dict[str, dict[str, dict[str, float]]]:
    """Theory predictions keyed by configuration label: ``{label: {statistic: {layer: value}}}``.

    ``theory`` maps a run id (an int or a string of digits) or a configuration label to
    ``{statistic: values}``, values being ``{layer: value}`` or a list from layer 1. Runs of one
    configuration are averaged (a prediction does not depend on the seed).
    """
    collected: dict[str, dict[str, dict[str, list[float]]]] = {}
    for key, statistics in (theory or {}).items():
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit() and key not in results.order):
            if int(key) not in results.labels:
                raise InitlabError(f"theory given for run {key}, which is not in the store")
            label = results.labels[int(key)]
        elif key in results.order:
            label = key
        else:
            raise unknown("configuration label in theory", str(key), results.order)
        for statistic, values in statistics.items():
            pairs = values.items() if isinstance(values, Mapping) else enumerate(values, start=1)
            for layer, value in pairs:
                if value is not None:
                    collected.setdefault(label, {}).setdefault(statistic, {}).setdefault(str(layer), []).append(
                        float(value)
                    )
    return {
        label: {s: {layer: float(np.mean(v)) for layer, v in layers.items()} for s, layers in stats.items()}
        for label, stats in collected.items()
    }
