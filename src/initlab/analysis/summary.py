"""The summary table of a results store: final validation numbers per configuration, best first.

Reads stored results only (:class:`initlab.analysis.results.Results`), as the figures do; the report
(:mod:`initlab.report`) shows it above them, and ``to_dict`` gives columns for pandas.

Example:
    >>> table = SummaryTable.from_results(Results.from_store("sweep.sqlite"))
    >>> table.rows[0]["label"]  # the best configuration
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from initlab.analysis.results import Results, as_results
from initlab.experiments.store import Store


def mean_std(values: Any) -> tuple[float | None, float | None]:
    """Mean and sample std (``ddof=1``) of the finite ``values``; ``None`` without one (std: two)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return (float(values.mean()) if values.size else None, float(values.std(ddof=1)) if values.size > 1 else None)


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over the seeds both have (runs with one seed share their batches: a paired comparison).

    ``low`` and ``high`` bound a ``confidence`` interval of the mean difference (Student's t over
    the ``n`` seed pairs); ``None`` with fewer than two pairs. ``distinguishable`` when the
    interval excludes 0.
    """

    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95

    @property
    def distinguishable(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)

    def text(self, scale: float = 100.0, unit: str = " points") -> str:
        """``+1.2 points (95% CI -0.4 to +2.8, 3 seeds)``."""
        if self.low is None:
            return f"{scale * self.mean:+.1f}{unit} (1 seed: no interval)"
        return (
            f"{scale * self.mean:+.1f}{unit} ({self.confidence:.0%} CI {scale * self.low:+.1f} to "
            f"{scale * self.high:+.1f}, {self.n} seeds)"
        )


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95
) -> PairedDifference | None:
    """The paired difference ``a[seed] - b[seed]`` over the seeds where both are finite; ``None`` if none."""
    from scipy.stats import t

    seeds = [seed for seed in a if seed in b and math.isfinite(a[seed]) and math.isfinite(b[seed])]
    if not seeds:
        return None
    differences = np.array([a[seed] - b[seed] for seed in seeds])
    mean = float(differences.mean())
    if len(seeds) < 2:
        return PairedDifference(mean, None, None, 1, confidence)
    half = float(t.ppf(0.5 + confidence / 2, len(seeds) - 1) * differences.std(ddof=1) / math.sqrt(len(seeds)))
    return PairedDifference(mean, mean - half, mean + half, len(seeds), confidence)


def summarize(results: Sequence[Any]) -> list[dict[str, Any]]:
    """Final metrics of trained runs (:class:`~initlab.training.loop.TrainResult`) per initializer, best first.

    Rows: ``initializer, runs, diverged, val_accuracy_mean, val_accuracy_std, val_loss_mean``,
    mean and std over the seeds that did not diverge (see :func:`mean_std`).
    """
    groups: dict[str, list[Any]] = {}
    for result in results:
        groups.setdefault(result.config.kernel_initializer, []).append(result)
    rows = []
    for spec, members in groups.items():
        finished = [m for m in members if m.diverged_epoch is None]
        accuracy_mean, accuracy_std = mean_std([m.history["val_accuracy"][-1] for m in finished])
        rows.append(
            {
                "initializer": spec,
                "runs": len(members),
                "diverged": len(members) - len(finished),
                "val_accuracy_mean": accuracy_mean,
                "val_accuracy_std": accuracy_std,
                "val_loss_mean": mean_std([m.history["val_loss"][-1] for m in finished])[0],
            }
        )
    return sorted(rows, key=lambda r: -(r["val_accuracy_mean"] if r["val_accuracy_mean"] is not None else -1))


def training_seconds(results: Sequence[Any]) -> float:
    """Seconds spent training ``results``, each ensemble (chunk) counted once.

    Every result of an ensemble carries the ensemble's ``train_s`` and its ``ensemble_size``.
    """
    return sum(r.timings["train_s"] / r.timings.get("ensemble_size", 1) for r in results)


def _final(epochs: Mapping[int, float]) -> float:
    return epochs[max(epochs)] if epochs else math.nan


@dataclass
class SummaryTable:
    """Final validation accuracy and loss per configuration, mean +- std over seeds, best first.

    ``rows`` are dicts with ``label, seeds, diverged, unfinished, val_accuracy_mean,
    val_accuracy_std, val_loss_mean, val_loss_std, color``; statistics are ``None`` when no
    finished seed has a finite value (std: fewer than two). Diverged runs are counted, not averaged.
    """

    rows: list[dict[str, Any]]

    @classmethod
    def from_results(cls, results: Results | Store | str | Path) -> SummaryTable:
        results = as_results(results)
        accuracy, loss = results.series("val_accuracy"), results.series("val_loss")
        rows = []
        for label in results.order:
            members = [r for r, lab in results.labels.items() if lab == label]
            finals, diverged = {}, 0
            for run_id in members:
                status = results.status[run_id]
                diverged += status == "diverged"
                if status != "done":
                    continue
                pair = (_final(accuracy.get(run_id, {})), _final(loss.get(run_id, {})))
                stored = [v for v, series in zip(pair, (accuracy, loss)) if run_id in series]
                if not all(math.isfinite(v) for v in stored):  # "done" yet non-finite: diverged at the end
                    diverged += 1
                    continue
                finals[run_id] = pair
            row: dict[str, Any] = {
                "label": label,
                "seeds": len(finals),
                "diverged": diverged,
                "unfinished": sum(results.status[r] not in ("done", "diverged") for r in members),
                "color": results.colors[label],
            }
            for index, name in enumerate(("val_accuracy", "val_loss")):
                row[f"{name}_mean"], row[f"{name}_std"] = mean_std([pair[index] for pair in finals.values()])
            rows.append(row)

        def rank(row: dict[str, Any]) -> tuple[float, float]:
            acc, lss = row["val_accuracy_mean"], row["val_loss_mean"]
            return (-acc if acc is not None else math.inf, lss if lss is not None else math.inf)

        return cls(sorted(rows, key=rank))

    from_store = from_results

    def to_dict(self) -> dict[str, list[Any]]:
        """Columns for ``pandas.DataFrame``."""
        keys = list(dict.fromkeys(key for row in self.rows for key in row))
        return {key: [row.get(key) for row in self.rows] for key in keys}

    def to_html(self) -> str:
        """An HTML ``<table>``, every label escaped."""
        from html import escape

        def cell(mean: float | None, std: float | None) -> str:
            if mean is None:
                return "—"
            return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")

        unfinished = any(row["unfinished"] for row in self.rows)
        head = ["#", "configuration", "seeds", "diverged"] + (["unfinished"] if unfinished else [])
        head += ["final val. accuracy", "final val. loss"]
        lines = [
            '<table class="summary">',
            "<thead><tr>"
            + "".join(f'<th{" class=num" if i != 1 else ""}>{h}</th>' for i, h in enumerate(head))
            + "</tr></thead>",
            "<tbody>",
        ]
        for rank, row in enumerate(self.rows, start=1):
            swatch = f'<span class="swatch" style="background:{escape(row["color"])}"></span>'
            cells = [str(rank), swatch + escape(row["label"]), str(row["seeds"]), str(row["diverged"])]
            cells += [str(row["unfinished"])] if unfinished else []
            cells += [
                cell(row["val_accuracy_mean"], row["val_accuracy_std"]),
                cell(row["val_loss_mean"], row["val_loss_std"]),
            ]
            lines.append(
                "<tr>" + "".join(f'<td{" class=num" if i != 1 else ""}>{c}</td>' for i, c in enumerate(cells)) + "</tr>"
            )
        lines += ["</tbody>", "</table>"]
        return "\n".join(lines)
