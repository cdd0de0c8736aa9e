"""``initlab reproduce seed``: the tutorial's whole lesson, the comparison it promised, and a report.

1. Part A: one 784 -> 256 sigmoid layer on U[0, 1) inputs, with ``RandomNormal(stddev=1.0)``
   (the tutorial), ``glorot_uniform`` and ``glorot_normal``: histograms, measured and predicted
   saturation.
2. Part B: the tutorial's network and training (784-64 sigmoid - 10 softmax, MSE, SGD 0.01,
   batch 128, 20 epochs) for a panel of first-layer initializers, several seeds each, with
   per-layer probes every epoch.
3. An ablation of what moves the tutorial's number: loss (MSE vs categorical cross-entropy)
   and learning rate, with the tutorial's initializer, several seeds each.

Everything lands in one folder: the store, Part A's figure and numbers, and ``report.html``,
whose conclusions are written from the measured numbers (:func:`conclusions`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from initlab.training.config import TrainConfig

TUTORIAL_INIT = "RandomNormal()"
PART_A_INITIALIZERS = ("RandomNormal(stddev=1.0)", "glorot_uniform", "glorot_normal")
PANEL = (
    TUTORIAL_INIT,
    "RandomNormal(stddev=1.0)",
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "lecun_normal",
    "orthogonal",
    "lsuv",
    "torch.linear_default",
)
ABLATION_LOSSES = ("mean_squared_error", "categorical_crossentropy")
ABLATION_RATES = (0.01, 0.1, 0.5)
LOSS_NAMES = {"mean_squared_error": "MSE", "categorical_crossentropy": "cross-entropy"}

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""


@dataclass(frozen=True)
class Plan:
    """The runs of the main job, each with the label the report shows."""

    configs: tuple[TrainConfig, ...]
    labels: tuple[str, ...]


def plan(seeds: Sequence[int] = (0, 1, 2), epochs: int = 20) -> Plan:
    """The Part B panel and the ablation, as configs and labels (shared runs appear once)."""
    base = TrainConfig(epochs=epochs, probe_every=1, kernel_initializer=TUTORIAL_INIT)
    configs: list[TrainConfig] = []
    labels: list[str] = []

    def add(config: TrainConfig, label: str) -> None:
        if config not in configs:
            configs.append(config)
            labels.append(label)

    for seed in seeds:
        for spec in PANEL:
            bias = "torch.linear_bias_default" if spec == "torch.linear_default" else "zeros"
            name = "PyTorch nn.Linear default" if spec == "torch.linear_default" else spec
            tag = " (the tutorial)" if spec == TUTORIAL_INIT else ""
            add(dataclasses.replace(base, kernel_initializer=spec, bias_initializer=bias, seed=seed), f"{name}{tag}")
        for loss in ABLATION_LOSSES:
            for rate in ABLATION_RATES:
                config = dataclasses.replace(base, loss=loss, optimizer=f"sgd(learning_rate={rate})", seed=seed)
                tutorial = loss == "mean_squared_error" and rate == 0.01
                add(config, f"{TUTORIAL_INIT} (the tutorial)" if tutorial else f"{TUTORIAL_INIT} · {LOSS_NAMES[loss]} · lr {rate}")
    return Plan(tuple(configs), tuple(labels))


def part_a(out: Path, draws: int = 200) -> list[dict[str, Any]]:
    """Part A for each of :data:`PART_A_INITIALIZERS`; writes ``part_a.png`` and returns the numbers."""
    import matplotlib.pyplot as plt

    from initlab.measure.saturation import saturation
    from initlab.viz.plots import SaturationDisplay, save

    results = [saturation(spec, draws=draws) for spec in PART_A_INITIALIZERS]
    figure, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), layout="constrained", sharey=True)
    for ax, result in zip(axes, results):
        SaturationDisplay.from_result(result).plot(ax)
    save(figure, out / "part_a.png")
    rows = [result.to_dict() for result in results]
    (out / "part_a.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _final_accuracies(store_path: Path, labels: dict[str, str]) -> dict[str, np.ndarray]:
    """Final val_accuracy of every finished run, grouped by its plan label (NaN when diverged)."""
    from initlab.experiments.store import Store

    groups: dict[str, list[float]] = {}
    with Store(store_path) as store:
        for run in store.runs():
            label = labels.get(TrainConfig.from_dict(run["config"]).config_hash())
            if label is None:
                continue
            history = store.history(run["run_id"]) if run["status"] == "done" else {}
            groups.setdefault(label, []).append((history.get("val_accuracy") or [math.nan])[-1])
    return {label: np.array(values, float) for label, values in groups.items()}


def _describe(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "diverged in every run"
    spread = f" ± {finite.std(ddof=1):.1%}" if finite.size > 1 else ""
    return f"{finite.mean():.1%}{spread}"


def conclusions(part_a_rows: Sequence[dict[str, Any]], accuracies: dict[str, np.ndarray]) -> list[str]:
    """The report's conclusions, written from the measured numbers (nothing here is fixed in advance)."""
    means = {label: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for label, v in accuracies.items()}
    tutorial = f"{TUTORIAL_INIT} (the tutorial)"
    notes = []
    wide = next(r for r in part_a_rows if r["initializer"] == "random_normal(stddev=1.0)")
    glorot = next(r for r in part_a_rows if r["initializer"] == "glorot_uniform")
    notes.append(
        f"Part A: with RandomNormal(stddev=1.0), {wide['saturation_fraction']:.1%} of the 256 sigmoid outputs are "
        f"saturated (below {wide['low']:g} or above {wide['high']:g}) at initialization; the Gaussian prediction is "
        f"{wide['predicted_saturation_fraction']:.1%}. With glorot_uniform it is {glorot['saturation_fraction']:.1%} "
        f"(predicted {glorot['predicted_saturation_fraction']:.1%})."
    )
    panel = {label: m for label, m in means.items() if "·" not in label}
    ranked = sorted(panel, key=lambda label: -panel[label] if math.isfinite(panel[label]) else math.inf)
    wide_label = "RandomNormal(stddev=1.0)"
    if wide_label in panel and ranked:
        place = ranked.index(wide_label) + 1
        notes.append(
            f"Part B: RandomNormal(stddev=1.0) reaches {_describe(accuracies[wide_label])} final validation accuracy, "
            f"rank {place} of {len(ranked)} initializers on the tutorial's setup; the best is {ranked[0]} with "
            f"{_describe(accuracies[ranked[0]])}."
        )
    if tutorial in accuracies:
        from initlab.initializers import build

        glorot_std = build("glorot_uniform").law((784, 64)).std
        notes.append(
            f"The tutorial's RandomNormal(stddev=0.05) reaches {_describe(accuracies[tutorial])} "
            f"(the tutorial reports about 42% for one run). For its 784 -> 64 layer, a standard deviation of 0.05 "
            f"is close to glorot_uniform's {glorot_std:.3f}."
        )
    sane = [label for label in panel if label not in (wide_label,) and math.isfinite(panel[label])]
    ablation = {label: m for label, m in means.items() if "·" in label and math.isfinite(m)}
    if sane and ablation and tutorial in means:
        spread_init = max(panel[label] for label in sane) - min(panel[label] for label in sane)
        best_change = max(ablation, key=ablation.get)
        gain = ablation[best_change] - means[tutorial]
        notes.append(
            f"What moves the number: among the initializers other than RandomNormal(stddev=1.0), final accuracy spans "
            f"{100 * spread_init:.1f} percentage points (min to max of the means); changing the loss or learning rate "
            f"with the tutorial's initializer moves it by up to {100 * gain:+.1f} points ({best_change}: "
            f"{_describe(accuracies[best_change])})."
        )
        if gain > 2 * spread_init:
            notes.append(
                "So the tutorial's low accuracy comes mostly from the training setup (MSE on a softmax output with "
                "SGD at learning rate 0.01, 20 epochs), not from the initializer."
            )
        elif spread_init > 2 * abs(gain):
            notes.append("Here the initializer moves the number more than the loss and learning rate do.")
        else:
            notes.append("Initializer and training setup move the number by comparable amounts here.")
    return notes


def reproduce_seed(
    out: str | Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 20,
    progress: Progress | None = None,
    memory_budget: int | None = None,
) -> dict[str, Any]:
    """Run the main job into ``out`` and return where everything went."""
    from initlab.experiments.executors import run_configs
    from initlab.report import build_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if progress:
        progress("Part A", 0, 1)
    part_a_rows = part_a(out)
    runs = plan(seeds, epochs)
    store_path = out / "runs.sqlite"
    summary = run_configs(
        list(runs.configs), store_path, labels=list(runs.labels), memory_budget=memory_budget,
        progress=(lambda done, total: progress("Part B and ablation", done, total)) if progress else None,
    )
    labels = {config.config_hash(): label for config, label in zip(runs.configs, runs.labels)}
    notes = conclusions(part_a_rows, _final_accuracies(store_path, labels))
    (out / "conclusions.txt").write_text("\n\n".join(notes) + "\n")
    if progress:
        progress("report", 0, 1)
    report = build_report(
        store_path, out,
        title="Weight initialization, from the Keras tutorial's seed to the comparison it promised",
        notes=notes,
    )
    return {"out": str(out), "store": str(store_path), "report": str(report), "part_a": str(out / "part_a.png"),
            "runs": summary.total, "seconds": summary.seconds, "conclusions": notes}
