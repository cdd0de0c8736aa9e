"""One self-contained HTML report of a results store, for reading, sharing or a paper's appendix.

The report is a single file: CSS inline, figures inline as base64 PNG, no external resource,
so it opens offline and survives being mailed. It reads the store only (never re-runs), shows
only the sections for which the store holds data, and escapes every text that comes from a
config, a store or the caller. Conclusions are the caller's words (``notes``), or, from
``initlab reproduce``, generated from the report's own numbers and labelled so.

Example:
    >>> build_report("sweep.sqlite", "report/", title="Glorot vs. He on MNIST",
    ...              notes="Glorot uniform trains fastest with sigmoid units.")
    PosixPath('report/report.html')
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from initlab.analysis.results import HISTOGRAM_KINDS, PALETTE, Results, theory_by_label
from initlab.analysis.summary import SummaryTable
from initlab.errors import InitlabError
from initlab.files import read_text, write_text
from initlab.viz.figures import (
    GradientVarianceByDepthDisplay,
    LayerHistogramGridDisplay,
    SaturationOverEpochsDisplay,
    SeedBandCurvesDisplay,
)
from initlab.viz.plots import save
from initlab.viz.style import style

_FRACTIONS = (
    (
        "saturation_fraction",
        "Saturation over training",
        "Fraction of each layer's outputs in the saturated zones of its activation on the fixed probe batch.",
    ),
    (
        "dead_fraction",
        "Dead units over training",
        "Fraction of each layer's units whose output is zero for every sample of the probe batch.",
    ),
)
_VARIANCES = (
    ("preactivation_variance", "pre-activations z (forward pass)"),
    ("backprop_variance", "∂ℓ/∂z, the back-propagated gradient of each example's own loss"),
    ("weight_grad_variance", "∂L/∂W, the weight gradient"),
)
MAX_HISTOGRAM_CONFIGURATIONS = 2
"""Histogram grids shown per kind (the best and the worst configuration); the rest are one click away."""
_KIND_NAMES = {"activation": "activations", "preactivation": "pre-activations", "backprop": "back-propagated gradients"}
_KIND_TEXT = {
    "activation": "activation values (layer outputs)",
    "preactivation": "pre-activation values",
    "backprop": "back-propagated gradients ∂L/∂z (symmetric log axis)",
}


def write_figure(display: Any, path: str | Path, *, dpi: int = 200) -> Path:
    """Write a display's figure (drawn first if needed) to PNG, SVG or PDF, chosen by extension.

    Returns:
        the path written.
    """
    figure = getattr(display, "figure_", None) or display.plot().figure_
    with style():
        return save(figure, path, dpi=dpi, close=False)


def _png(figure: Any, dpi: int) -> tuple[str, int, int]:
    """The figure as base64 PNG with its size in pixels; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    with style():
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05, facecolor="white")
    plt.close(figure)
    data = buffer.getvalue()
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return base64.b64encode(data).decode("ascii"), width, height


def _load_theory(theory: Mapping[Any, Any] | str | Path | None) -> Mapping[Any, Any] | None:
    if theory is None:
        return None
    source = "theory predictions"
    if not isinstance(theory, Mapping):
        source = f"theory file {theory}"
        try:
            theory = json.loads(read_text(theory, what="theory file"))
        except ValueError as error:
            if isinstance(error, InitlabError):
                raise
            raise InitlabError(f"{source} is not valid JSON: {error}") from None
    shape = '{"run id or label": {"statistic": [value per layer] or {"layer": value}}}'
    if not isinstance(theory, Mapping) or not all(isinstance(v, Mapping) for v in theory.values()):
        raise InitlabError(f"{source} must be an object of the form {shape}")
    for statistics in theory.values():
        for values in statistics.values():
            items = values.values() if isinstance(values, Mapping) else values if isinstance(values, list) else None
            if items is None or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) for v in items
            ):
                raise InitlabError(f"{source}: every prediction must be finite numbers in the form {shape}")
    return theory


def _percent(value: float) -> str:
    """A fraction as a percentage with two significant digits below 1% (so a small spread is not "0.0%")."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    if 0 < abs(value) < 0.01:
        return f"{100 * value:.2g}%"
    return f"{value:.1%}"


def _layer_count(results: Results) -> int:
    layers = {layer for layer in results.metrics.get("layer", []) if layer}
    return len(layers)


def _curve_groups(results: Results) -> list[tuple[str, list[str], tuple[str, ...]]]:
    """Panels of learning curves a reader can tell apart: (heading, labels, metrics).

    Configurations that share a loss and an optimizer (they differ in initializers) are one
    panel, loss and accuracy; the configurations that stand alone with their loss or optimizer
    (an ablation) are another, accuracy only, so that losses of different kinds never share
    an axis.
    """
    setups: dict[tuple[str, str], list[str]] = {}
    initializer: dict[str, tuple[str, str]] = {}
    for run in results.runs:
        config = run.get("config") or {}
        label = results.labels.get(run["run_id"])
        key = (str(config.get("loss")), str(config.get("optimizer")))
        if label is not None and label not in setups.setdefault(key, []):
            setups[key].append(label)
            initializer[label] = (str(config.get("kernel_initializer")), str(config.get("bias_initializer")))
    groups, alone = [], []
    for (loss, optimizer), labels in setups.items():
        if len(labels) > 1 or len(setups) == 1:
            groups.append((f"{loss}, {optimizer}", labels, ("loss", "accuracy")))
        else:
            alone += labels
    if alone:
        # With its reference: the configuration of a larger panel that has the same initializers.
        kinds = {initializer[label] for label in alone}
        reference = [label for _, labels, _ in groups for label in labels if initializer[label] in kinds]
        groups.append(("the loss and learning rate varied", [*reference[:1], *alone], ("accuracy",)))
    return groups


def _paragraphs(notes: str | Sequence[str] | None) -> list[str]:
    if notes is None:
        return []
    if isinstance(notes, str):
        notes = notes.replace("\r\n", "\n").split("\n\n")
    return [" ".join(str(note).split()) for note in notes if str(note).strip()]


class _Document:
    """Sections and numbered figures of the report, as escaped HTML."""

    def __init__(self, dpi: int) -> None:
        self.dpi = dpi
        self.sections: list[tuple[str, str, list[str]]] = []
        self.figures = 0

    def section(self, anchor: str, title: str, *parts: str) -> list[str]:
        body = list(parts)
        self.sections.append((anchor, title, body))
        return body

    def figure(self, make: Callable[[], Any], caption: str, alt: str) -> str:
        """A numbered figure; a display that cannot be drawn leaves a note, not a broken report."""
        try:
            display = make()
        except InitlabError as error:
            return f'<p class="missing">Not drawn: {escape(str(error))}</p>'
        data, width, height = _png(display.plot().figure_, self.dpi)
        self.figures += 1
        scale = 1.25 * 96 / self.dpi  # CSS pixels per image pixel: a 9 pt label reads as 15 px text
        return (
            f'<figure><img src="data:image/png;base64,{data}" width="{round(width * scale)}" '
            f'height="{round(height * scale)}" alt="{escape(alt)}">'
            f"<figcaption><b>Figure {self.figures}.</b> {caption}</figcaption></figure>"
        )


def _fmt_seconds(timings: Mapping[str, Any] | None) -> str:
    """A run's timings: seconds of the ensemble it was trained in (shared), and per model where it helps."""
    timings = dict(timings or {})
    size = timings.pop("ensemble_size", None)
    items = [
        f"{escape(str(k).removesuffix('_s'))} {v:.2f} s" for k, v in timings.items() if isinstance(v, (int, float))
    ]
    if isinstance(size, (int, float)) and size > 1:
        train = timings.get("train_s")
        per_model = f" ({train / size:.2f} s per model)" if isinstance(train, (int, float)) else ""
        items.insert(0, f"one of {int(size)} models trained together{per_model}")
    return "<br>".join(items) or "—"


def _fmt_versions(versions: Mapping[str, Any] | None) -> str:
    # Library versions and the code path (matmul); the per-parameter initializers follow from the config.
    items = [(k, v) for k, v in (versions or {}).items() if not isinstance(v, Mapping)]
    return ", ".join(f"{escape(str(k))}&nbsp;{escape(str(v))}" for k, v in items) or "—"


def _runs_section(results: Results) -> str:
    configs = [run["config"] or {} for run in results.runs]
    fields = list(dict.fromkeys(name for config in configs for name in config if name != "seed"))
    common = [name for name in fields if len({json.dumps(c.get(name), sort_keys=True) for c in configs}) == 1]
    parts = []
    if common:
        rows = "".join(
            f"<tr><th>{escape(name)}</th><td><code>{escape(json.dumps(configs[0].get(name)))}</code></td></tr>"
            for name in common
        )
        parts.append("<p>Fields shared by every run:</p>" f'<table class="kv">{rows}</table>')
    epochs = {
        run_id: max((e for s in ("loss", "val_loss") for e in results.series(s).get(run_id, {})), default=None)
        for run_id in results.labels
    }
    body = []
    for run in results.runs:
        config = run["config"] or {}
        status = escape(str(run["status"]))
        if run.get("diverged_epoch") is not None:
            status += f"<br>at epoch {int(run['diverged_epoch'])}"
        if run.get("error"):
            status += f'<br><span class="error">{escape(str(run["error"]))}</span>'
        run_id, last_epoch = run["run_id"], epochs[run["run_id"]]
        body.append(
            f'<tr><td class="num">{int(run_id)}</td><td>{escape(results.labels[run_id])}</td>'
            f'<td class="num">{escape(str(config.get("seed", "—")))}</td><td>{status}</td>'
            f'<td class="num">{"—" if last_epoch is None else int(last_epoch)}</td>'
            f'<td class="num">{_fmt_seconds(run.get("timings"))}</td><td>{_fmt_versions(run.get("versions"))}</td>'
            '</tr><tr class="config"><td></td><td colspan="6">config '
            f"<code>{escape(json.dumps(config, sort_keys=True))}</code></td></tr>"
        )
    parts.append(
        f'<details class="runs"><summary>All {len(results.runs)} runs: full configuration, seed, status, timings and '
        'library versions</summary><div class="scroll"><table class="runs"><thead><tr>'
        '<th class="num">run</th><th>configuration</th><th class="num">seed</th><th>status</th>'
        '<th class="num">epochs</th><th>time (of its ensemble)</th><th>versions and code path</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></details>"
    )
    return "".join(parts)


def build_report(
    store_path: str | Path,
    out_dir: str | Path,
    *,
    title: str | None = None,
    theory: Mapping[Any, Mapping[str, Any]] | str | Path | None = None,
    notes: str | Sequence[str] | None = None,
    notes_generated: bool = False,
    histogram_kinds: Iterable[str] = HISTOGRAM_KINDS,
    histogram_epochs: Iterable[int] | None = None,
    dpi: int = 150,
) -> Path:
    """Write ``out_dir/report.html``: one self-contained page of a store's results.

    Args:
        store_path: the SQLite results store (read only).
        out_dir: folder of the report (created).
        title: the page title (default: from the store's file name).
        theory: predictions to draw beside measurements (default: those the store keeps, if
            any, as the main job's): ``{run id or configuration label:
            {statistic: {layer: value} or [value per layer from 1]}}``, or a JSON file of it.
            Drawn for ``preactivation_variance``, ``backprop_variance``, ``weight_grad_variance``
            (by depth) and ``saturation_fraction``, ``dead_fraction`` (at epoch 0).
        notes: the conclusions, in the caller's words (a string, blank lines between
            paragraphs, or a list of paragraphs); no section when ``None``.
        notes_generated: the notes were generated from this report's numbers (``initlab
            reproduce``), and the section says so; otherwise it says they are the author's.
        histogram_kinds: histogram kinds to show (one grid per kind and configuration).
        histogram_epochs: epochs of the histogram grids (default: up to 5, spread evenly).
        dpi: resolution of the inline PNG figures.

    Returns:
        the path of ``report.html``.
    """
    store_path = Path(store_path)
    results = Results.from_store(store_path, histogram_kinds=list(histogram_kinds))
    theory = _load_theory(theory if theory is not None else results.documents.get("theory"))
    theory_by_label(theory, results)  # unknown runs or labels fail here, before any drawing
    title = title or f"initlab report: {store_path.name}"
    doc = _Document(dpi)
    labels, shown = results.order, []

    part_a = results.documents.get("part_a")
    if part_a:
        from initlab.viz.plots import SaturationPanelDisplay

        rows = "".join(
            f"<tr><td>{escape(str(row['initializer']))}</td><td>{_percent(row['saturation_fraction'])} ± "
            f"{_percent(row['saturation_fraction_se'])}</td><td>{_percent(row['predicted_saturation_fraction'])}</td>"
            f"<td>{escape(str(row.get('prediction', 'approximate')))}</td><td>{row['preactivation_std']:.3g} / "
            f"{row['predicted_preactivation_std']:.3g}</td></tr>"
            for row in part_a
        )
        first = part_a[0]
        doc.section(
            "saturation-at-initialization",
            "Saturation at initialization",
            doc.figure(
                lambda: SaturationPanelDisplay(part_a),
                f"Outputs of one freshly initialized Dense({first['units']}) {escape(str(first['activation']))} layer "
                f"on {first['input_dim']} {escape(str(first['inputs']))} inputs, {first['draws']} draws of weights and "
                f"input per initializer; shaded: the saturated zones (below {first['low']:g}, above {first['high']:g}).",
                "saturation histograms at initialization",
            ),
            '<div class="scroll"><table><thead><tr><th>initializer</th><th>saturated, measured (± s.e.)</th>'
            "<th>predicted</th><th>prediction</th><th>pre-activation std, measured / predicted</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>",
            '<p class="note">Predicted: the mass of the Gaussian pre-activation where the activation saturates, '
            "given each drawn input; exact for Gaussian weights, approximate (central limit) for others.</p>",
        )
        shown.append("saturation at initialization, measured and predicted")

    if results.runs:
        summary = SummaryTable.from_results(results)
        doc.section(
            "summary",
            "Summary",
            f'<div class="scroll">{summary.to_html()}</div>',
            (
                '<p class="note">Configurations ranked by mean final validation accuracy (then loss); mean ± sample '
                "standard deviation over the seeds that finished without diverging. Diverged runs are counted, not "
                "averaged.</p>"
            ),
        )
        shown.append("the final validation accuracy and loss of each configuration")

    if any(results.has(name, layer_level=False) for name in ("loss", "accuracy", "val_loss", "val_accuracy")):
        body = doc.section("learning-curves", "Learning curves")
        for heading, group, metrics in _curve_groups(results):
            what = "loss and accuracy" if "loss" in metrics else "accuracy (losses of different kinds are not compared on one axis)"
            body.append(
                doc.figure(
                    lambda group=group, metrics=metrics: SeedBandCurvesDisplay.from_results(
                        results, labels=group, metrics=metrics
                    ),
                    f"{escape(heading)}: training (dashed) and validation (solid) {what} per epoch. Lines: mean over "
                    "seeds; bands: ± one standard deviation; <i>n</i>: seeds. Diverged runs are left out.",
                    f"learning curves, {heading}",
                )
            )
        shown.append("learning curves")

    for statistic, heading, meaning in _FRACTIONS:
        if results.has(statistic):
            body = doc.section(statistic.replace("_", "-"), heading)
            for group_heading, group, _ in _curve_groups(results):
                body.append(
                    doc.figure(
                        lambda statistic=statistic, group=group: SaturationOverEpochsDisplay.from_results(
                            results, statistic, theory=theory, labels=group
                        ),
                        f"{escape(group_heading)}: {meaning} One panel per layer; epoch 0 is the network at "
                        "initialization. Lines: mean over seeds; bands: ± one standard deviation; open diamonds: "
                        "theory, when supplied. Layers without finite values (the measure does not apply) are left out.",
                        f"{heading.lower()}, {group_heading}",
                    )
                )
            shown.append(heading.lower())

    kinds = [kind for kind in results.histogram_kinds() if kind in set(histogram_kinds)]
    if kinds:
        body = doc.section("histograms", "Histograms by layer and epoch")
        body.append(
            '<p class="note">Distributions on the fixed probe batch, pooled over each configuration\'s '
            "seeds, as in Glorot &amp; Bengio (2010): a row per layer, a column per epoch.</p>"
        )
        stored = set(zip(results.histograms["kind"], results.histograms["run_id"]))
        ranked = [row["label"] for row in SummaryTable.from_results(results).rows] if results.runs else list(labels)
        # The best and the worst configurations first; the others behind a selector (one per kind).
        chosen = list(dict.fromkeys([*ranked[:1], *ranked[-1:]]))[:MAX_HISTOGRAM_CONFIGURATIONS]
        for kind in kinds:
            drawn = [label for label in labels if any((kind, r) in stored for r in results.run_ids(label))]
            figures = {
                label: doc.figure(
                    lambda kind=kind, label=label: LayerHistogramGridDisplay.from_results(
                        results, label, kind, epochs=histogram_epochs
                    ),
                    f"Histograms of {_KIND_TEXT.get(kind, escape(kind))} for <i>{escape(label)}</i>; "
                    "y: fraction of entries per bin.",
                    f"{kind} histograms of {label}",
                )
                for label in [*[c for c in chosen if c in drawn], *[d for d in drawn if d not in chosen]]
            }
            shown_here = [label for label in figures if label in chosen] or list(figures)[:1]
            body.extend(figures[label] for label in shown_here)
            rest = [label for label in figures if label not in shown_here]
            if rest:
                body.append(
                    f"<details><summary>{_KIND_NAMES.get(kind, escape(kind)).capitalize()} of the other "
                    f"{len(rest)} configuration(s)</summary>{''.join(figures[label] for label in rest)}</details>"
                )
        shown.append("histograms of " + ", ".join(_KIND_NAMES.get(kind, kind) for kind in kinds))

    # A trend needs three layers at least: a one-hidden-layer network (two layers) is not drawn as one.
    variances = [(name, meaning) for name, meaning in _VARIANCES if results.has(name) and _layer_count(results) >= 3]
    if variances:
        body = doc.section("variance-by-depth", "Variance by depth")
        for name, meaning in variances:
            body.append(
                doc.figure(
                    lambda name=name: GradientVarianceByDepthDisplay.from_results(results, name, theory=theory),
                    f"Variance of {meaning}, per layer, at the first probed epoch (0: initialization). Lines: "
                    "geometric mean over seeds; bands: ± one standard deviation of log<sub>10</sub>; dashed with "
                    "open squares: theory, when supplied.",
                    f"{name} by layer",
                )
            )
        shown.append("variance by depth")

    paragraphs = _paragraphs(notes)
    if paragraphs:
        doc.section(
            "conclusions",
            "Conclusions",
            '<p class="note">Generated by initlab from the numbers in this report: every comparison is a paired '
            "difference over seeds (runs with one seed share their batches) with its 95% interval; configurations "
            "whose intervals include 0 are called indistinguishable.</p>"
            if notes_generated
            else '<p class="note">Written by the author of this report; not derived automatically.</p>',
            *(f"<p>{escape(p)}</p>" for p in paragraphs),
        )

    if results.runs:
        doc.section("runs", "Runs and reproducibility", _runs_section(results))

    path = Path(out_dir) / "report.html"
    return write_text(path, _page(title, store_path, results, doc, shown))


def _page(title: str, store_path: Path, results: Results, doc: _Document, shown: list[str]) -> str:
    from initlab import __version__

    finished = sum(status in ("done", "diverged") for status in results.status.values())
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if results.runs:
        intro = (
            f"This report reads the results store <code>{escape(store_path.name)}</code>: {len(results.runs)} runs "
            f"({finished} finished) in {len(results.order)} configuration{'s' if len(results.order) != 1 else ''}, "
            "a configuration being the runs whose settings differ only in the random seed. It shows "
            f"{escape(', '.join(shown[:-1]) + (' and ' if len(shown) > 1 else '') + shown[-1])}. Every number is read "
            "from the store; nothing is re-run. "
            + ("Each configuration keeps one colour throughout; " if len(results.order) <= len(PALETTE) else "")
            + "the last section lists every run's full configuration and library versions, so that any number "
            "can be reproduced."
        )
    else:
        intro = f"The results store <code>{escape(store_path.name)}</code> holds no runs yet."
    toc = "".join(f'<li><a href="#{anchor}">{escape(heading)}</a></li>' for anchor, heading, _ in doc.sections)
    sections = "".join(
        f'<section id="{anchor}"><h2>{number}. {escape(heading)}</h2>{"".join(body)}</section>'
        for number, (anchor, heading, body) in enumerate(doc.sections, start=1)
    )
    body = (
        f'<p class="lead">{intro}</p>\n'
        + (f'<nav class="toc"><ol>{toc}</ol></nav>\n' if len(doc.sections) > 2 else "")
        + sections
    )
    meta = f"initlab {escape(__version__)} · generated {when} · store <code>{escape(str(store_path))}</code>"
    script = """window.addEventListener("beforeprint", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
});"""
    return _html_page(title, meta, body, script)


def _html_page(title: str, meta: str, body: str, script: str = "") -> str:
    """A self-contained report page: the house CSS, a header with ``meta`` (HTML), then ``body`` (HTML)."""
    from initlab import __version__

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="initlab {escape(__version__)}">
<title>{escape(title)}</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style>
</head>
<body>
<main>
<header>
<h1>{escape(title)}</h1>
<p class="meta">{meta}</p>
</header>
{body}
</main>
""" + (f"<script>\n{script}\n</script>\n" if script else "") + """</body>
</html>
"""



def _number(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float) and not math.isfinite(value):
        return escape(str(value))
    return f"{value:.4g}" if isinstance(value, float) else escape(str(value))


def reproduction_section(document: Mapping[str, Any]) -> tuple[str, str, str]:
    """One reproduction's section: ``(anchor, heading, body HTML)`` from its result document.

    The paper, the claim, the set-up and why it still tests the claim, the checks as a table (a
    failed one marked and explained), and every figure the reproduction drew, embedded.
    """
    paper = document["paper"]
    checks = document["checks"]
    passed = sum(check["passed"] for check in checks)
    mark = {True: "&#10003;", False: '<span class="error">&#10007; failed</span>'}
    rows = "".join(
        f'<tr><td>{mark[bool(check["passed"])]}</td>'
        f'<td>{escape(check["name"])}<br><span class="muted">{escape(check["claim"])}</span></td>'
        f'<td class="num">{_number(check["published"])}</td><td class="num"><b>{_number(check["measured"])}</b></td>'
        f'<td class="num">[{_number(check["band"][0])}, {_number(check["band"][1])}]</td>'
        f'<td><span class="muted">{escape(check.get("basis", ""))}'
        + (f'<br><span class="error">{escape(check["reason"])}</span>' if check.get("reason") else "")
        + "</span></td></tr>"
        for check in checks
    )
    figures = []
    for number, figure in enumerate(document.get("figures", []), start=1):
        path = Path(figure["path"])
        try:
            data = path.read_bytes()
        except OSError:
            figures.append(f'<p class="missing">Figure not found: {escape(str(path))}</p>')
            continue
        width, height = struct.unpack(">II", data[16:24])
        scale = 1.25 * 96 / 200
        figures.append(
            f'<figure><img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" '
            f'width="{round(width * scale)}" height="{round(height * scale)}" alt="{escape(figure["caption"][:120])}">'
            f"<figcaption><b>{escape(document['name'])}, figure {number}.</b> {escape(figure['caption'])}</figcaption></figure>"
        )
    verdict = "every check passed" if passed == len(checks) else f"{len(checks) - passed} of {len(checks)} checks failed"
    budget = (
        f"{document['elapsed_s']:.0f} s against a budget of {document['budget_s']:.0f} s on 2 cores"
        + ("" if document["elapsed_s"] <= document["budget_s"] else ' <span class="error">(over budget)</span>')
    )
    body = (
        f'<p class="meta">{escape(paper["authors"])} ({paper["year"]}). <i>{escape(paper["title"])}</i>.'
        f' {escape(paper.get("venue", ""))}</p>'
        f"<p><b>Claim.</b> {escape(document['claim'])}</p>"
        f"<p><b>Set-up{' (--full)' if document.get('full') else ''}.</b> {escape(document['setup'])}. "
        f"<b>Why it still tests the claim.</b> {escape(document['why'])}</p>"
        f"<p><b>Result: {verdict}</b> ({passed}/{len(checks)}); {budget}.</p>"
        '<div class="scroll"><table class="summary"><thead><tr><th></th><th>check</th><th class="num">published</th>'
        '<th class="num">measured</th><th class="num">band</th><th>band from</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>" + "".join(figures)
    )
    return document["name"], f"{_short_authors(paper['authors'])} {paper['year']}: {paper['title']}", body


def _short_authors(authors: str) -> str:
    """``"Boris Hanin and David Rolnick"`` -> ``"Hanin & Rolnick"``; three or more: ``"He et al."``."""
    names = [name.strip().split()[-1] for name in authors.replace(", and ", ", ").replace(" and ", ", ").split(",") if name.strip()]
    if len(names) == 1:
        return names[0]
    return " & ".join(names) if len(names) == 2 else f"{names[0]} et al."


def reproduction_report(documents: Sequence[Mapping[str, Any]], path: str | Path, *, title: str) -> Path:
    """An HTML report of reproductions, one section per paper (written atomically); returns its path."""
    from initlab import __version__

    sections = [reproduction_section(document) for document in documents]
    failed = sum(not check["passed"] for document in documents for check in document["checks"])
    total = sum(len(document["checks"]) for document in documents)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    toc = "".join(f'<li><a href="#{anchor}">{escape(heading)}</a></li>' for anchor, heading, _ in sections)
    body = "".join(
        f'<section id="{anchor}"><h2>{number}. {escape(heading)}</h2>{html}</section>'
        for number, (anchor, heading, html) in enumerate(sections, start=1)
    )
    lead = (
        f"{len(documents)} reproduction{'s' if len(documents) != 1 else ''}, {total} checks: "
        + ("every one passed." if not failed else f'<span class="error">{failed} failed</span> (marked below, with the reason where known).')
        + " Each check sets initlab's measured number beside the paper's and a band fixed before the run, from the "
        "paper, from theory or from the sample's standard errors."
    )
    page = _html_page(
        title, f"initlab {escape(__version__)} · generated {when}",
        f'<p class="lead">{lead}</p>\n' + (f'<nav class="toc"><ol>{toc}</ol></nav>\n' if len(sections) > 1 else "") + body,
    )
    return write_text(path, page)



def _fraction(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _law_name(param: Mapping[str, Any]) -> str:
    if param["identified"]:
        return escape(param["identified"]["spec"])
    return escape(param["family"]["family"]) + " (fitted)" if param.get("family") else "none"


def inspection_section(document: Mapping[str, Any]) -> str:
    """An ``initlab inspect`` result (its JSON document) as an HTML section: findings, layers, parameters."""
    findings = document["findings"]
    items = "".join(
        f'<li class="{"error" if f["severity"] == "fail" else ""}">{escape(f["where"])}: {escape(f["message"])}</li>'
        for f in findings
    ) or "<li>No problem found at the thresholds of <code>initlab check</code>.</li>"
    layer_rows = "".join(
        f"<tr><td>{escape(layer['name'])}</td><td>{escape(layer['kind'])}</td><td class=num>{_number(layer['mean'])}</td>"
        f"<td class=num>{_number(layer['std'])}</td>"
        f"<td class=num>{_fraction(layer['dead_fraction'])}</td><td class=num>{_fraction(layer['saturated_fraction'])}</td>"
        f"<td class=num>{_number(layer['gradient_std'])}</td></tr>"
        for layer in document["layers"]
    )
    param_rows = "".join(
        f"<tr><td>{escape(p['name'])}</td><td>{'x'.join(map(str, p['shape']))}</td><td class=num>{_number(p['std'])}</td>"
        f"<td>{escape(p['declared']['spec']) if p['declared'] else '?'}</td>"
        f"<td class=num>{_number(p['declared']['p_value']) if p['declared'] else ''}</td>"
        f"<td>{_law_name(p)}</td></tr>"
        for p in document["params"]
    )
    loss = ""
    if document.get("loss") is not None:
        loss = f"<p>Initial loss ({escape(str(document['loss_kind']))}) {_number(document['loss'])}"
        if document.get("classes"):
            loss += f" against log({document['classes']}) = {_number(document['log_classes'])}"
        loss += ".</p>"
    return (
        f"<p>{escape(document['target'])} ({escape(document['framework'])}) on {escape(document['inputs'])}.</p>{loss}"
        f"<h3>Findings</h3><ul>{items}</ul>"
        '<h3>Layer outputs</h3><div class="scroll"><table class="summary"><thead><tr><th>layer</th><th>type</th>'
        '<th class=num>mean</th><th class=num>std</th><th class=num>dead</th><th class=num>saturated</th>'
        f"<th class=num>std dL/d(out)</th></tr></thead><tbody>{layer_rows}</tbody></table></div>"
        '<h3>Parameters</h3><div class="scroll"><table class="summary"><thead><tr><th>parameter</th><th>shape</th>'
        "<th class=num>std</th><th>type's default</th><th class=num>KS p</th><th>law that fits</th></tr></thead>"
        f"<tbody>{param_rows}</tbody></table></div>"
    )


def inspection_report(document: Mapping[str, Any], path: str | Path) -> Path:
    """A self-contained HTML page of one inspection (written atomically)."""
    from initlab import __version__

    title = f"Initialization of {document['target']}"
    page = _html_page(title, f"initlab {escape(__version__)} inspect", f"<section>{inspection_section(document)}</section>")
    return write_text(path, page)

_CSS = """
:root{--ink:#1b1b1b;--muted:#5c6166;--rule:#d5d7da;--accent:#0072B2;--sans:system-ui,-apple-system,"Segoe UI",
"Helvetica Neue","DejaVu Sans",Arial,sans-serif;--mono:ui-monospace,"SFMono-Regular",Menlo,"DejaVu Sans Mono",monospace}
*{box-sizing:border-box}
html{background:#fff}
body{margin:0;color:var(--ink);
font:16px/1.6 Charter,"Bitstream Charter","Source Serif Pro",Georgia,"DejaVu Serif",serif}
main{max-width:940px;margin:0 auto;padding:48px 32px 96px}
h1{font:650 28px/1.25 var(--sans);letter-spacing:-.01em;margin:0 0 6px}
h2{font:600 19px/1.3 var(--sans);margin:52px 0 14px;padding-bottom:6px;border-bottom:1px solid var(--rule)}
.meta{font:13px/1.5 var(--sans);color:var(--muted);margin:0 0 24px}
.lead{margin:0 0 18px}
code{font:0.86em var(--mono);background:#f3f4f6;padding:1px 4px;border-radius:3px;word-break:break-all}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
nav.toc{font:14px/1.7 var(--sans);border-left:3px solid var(--rule);padding:2px 0 2px 16px;margin:22px 0 8px}
nav.toc ol{margin:0;padding-left:20px;columns:2}
figure{margin:22px 0 34px}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font:14px/1.5 var(--sans);color:#333;max-width:760px;margin:10px auto 0}
p.note{font:14px/1.5 var(--sans);color:var(--muted)}
p.missing{font:14px/1.5 var(--sans);color:#8a4b00;background:#fff6e5;padding:6px 10px;border-radius:4px}
table{border-collapse:collapse;font:14px/1.45 var(--sans);font-variant-numeric:tabular-nums}
th,td{padding:5px 12px;text-align:left;vertical-align:top}
th.num,td.num{text-align:right;white-space:nowrap}
table.summary{border-top:2px solid #222;border-bottom:2px solid #222;margin:6px 0 4px}
table.summary thead th{border-bottom:1px solid #222;font-weight:600}
table.summary tbody tr:nth-child(odd){background:#fafafa}
table.kv{font-size:13px;margin:6px 0 18px}table.kv th{font-weight:500;color:var(--muted)}
table.kv td,table.kv th{padding:2px 12px 2px 0}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:8px;vertical-align:-1px}
details{border:1px solid var(--rule);border-radius:6px;padding:10px 14px;margin:12px 0}
summary{cursor:pointer;font:600 14px/1.5 var(--sans)}
details[open] summary{margin-bottom:10px}
.scroll{overflow-x:auto}
table.runs{font-size:12.5px}
table.runs thead th{border-bottom:1px solid #222;position:sticky;top:0;background:#fff}
table.runs tbody tr.config{border-bottom:1px solid #eceef0}
table.runs tr.config td{padding-top:0;color:var(--muted);font-size:11.5px}
table.runs tr.config code{font-size:11px;background:none;padding:0;word-break:break-word;color:var(--ink)}
.error{color:#b00020}
.muted{color:var(--muted);font-size:12.5px}
@media print{main{max-width:none;padding:0}h2{break-after:avoid}figure,tr{break-inside:avoid}
details{border:none;padding:0}}
"""
