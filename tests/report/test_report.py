"""The HTML report and the figure library, on a synthetic store whose every number is known."""

from __future__ import annotations

import base64
import json
import math
import re
import sqlite3
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from initlab.analysis.results import Results, configuration_labels
from initlab.analysis.summary import SummaryTable
from initlab.errors import InitlabError
from initlab.experiments.store import Store
from initlab.report import build_report, write_figure
from initlab.training.config import TrainConfig
from initlab.viz.figures import (
    GradientVarianceByDepthDisplay,
    LayerHistogramGridDisplay,
    SaturationOverEpochsDisplay,
    SeedBandCurvesDisplay,
)

EPOCHS = 4
SEEDS = (0, 1, 2)
HIDDEN = (16, 16)
INITIALIZERS = ("glorot_uniform", "random_normal", "he_normal")
# Final val accuracy of (initializer, seed): the ranking is he_normal > glorot_uniform > random_normal.
BASE_ACCURACY = {"glorot_uniform": 0.90, "random_normal": 0.70, "he_normal": 0.93}
PNG = b"\x89PNG\r\n\x1a\n"
XSS = "<script>alert(1)</script>"
EVIL = "_glorot_uniform(scale=1.0) $x^2$ & "  # matplotlib would hide a leading _ and parse $...$


def accuracy(initializer: str, seed: int, epoch: int) -> float:
    return BASE_ACCURACY[initializer] - 0.1 * (EPOCHS - epoch) / EPOCHS + 0.01 * seed


def history(initializer: str, seed: int) -> dict[str, list[float]]:
    epochs = range(1, EPOCHS + 1)
    val = [accuracy(initializer, seed, e) for e in epochs]
    return {
        "loss": [1.05 - a for a in val],
        "accuracy": [a + 0.015 for a in val],
        "val_loss": [1.0 - a for a in val],
        "val_accuracy": val,
    }


def probe_rows(initializer: str, seed: int) -> list[tuple[int, str, str, float]]:
    """Per-layer probes at epochs 0..EPOCHS; dead_fraction is NaN everywhere (sigmoid units)."""
    scale = {"glorot_uniform": 1.0, "random_normal": 4.0, "he_normal": 2.0}[initializer]
    rows = []
    for epoch in range(EPOCHS + 1):
        for layer in range(1, len(HIDDEN) + 2):
            output = layer == len(HIDDEN) + 1
            saturation = math.nan if output else min(0.95, 0.1 * scale * layer * (1 - 0.1 * epoch) + 0.01 * seed)
            rows += [
                (epoch, str(layer), "saturation_fraction", saturation),
                (epoch, str(layer), "dead_fraction", math.nan),
                (epoch, str(layer), "backprop_variance", 1e-6 * scale ** (layer - 1) * (1 + 0.1 * seed)),
                (epoch, str(layer), "weight_grad_variance", 1e-7 * scale**layer * (1 + 0.1 * seed)),
                (epoch, str(layer), "activation_std", 0.2 * scale),
                (epoch, str(layer), "preactivation_std", 0.2 * scale * (1 + 0.1 * layer)),
            ]
    return rows


def histogram_rows(initializer: str, seed: int) -> list[tuple[int, str, str, list[float], list[int]]]:
    rng = np.random.default_rng(seed)
    scale = {"glorot_uniform": 1.0, "random_normal": 4.0, "he_normal": 2.0}[initializer]
    threshold, bins = 1e-9, 30
    u = np.linspace(-9, 9, bins + 1)
    edges = {
        "activation": np.linspace(0, 1, bins + 1),
        "preactivation": np.linspace(-10, 10, bins + 1),
        "backprop": np.sign(u) * threshold * (10 ** np.abs(u) - 1),
    }
    rows = []
    for epoch in range(EPOCHS + 1):
        for layer in range(1, len(HIDDEN) + 2):
            z = rng.normal(0, scale * (1 + 0.2 * epoch), 500)
            values = {"activation": 1 / (1 + np.exp(-z)), "preactivation": z, "backprop": z * 1e-5 * layer}
            for kind, e in edges.items():
                index = np.clip(np.searchsorted(e, values[kind], side="right") - 1, 0, bins - 1)
                rows.append((epoch, str(layer), kind, e.tolist(), np.bincount(index, minlength=bins).tolist()))
    return rows


def build_store(path: Path, *, probes: bool = True, histograms: bool = True) -> Path:
    """Three initializers x three seeds; he_normal seed 2 diverged, one more run pending."""
    configs = [
        TrainConfig(kernel_initializer=init, hidden_units=HIDDEN, epochs=EPOCHS, seed=seed)
        for init in INITIALIZERS
        for seed in SEEDS
    ]
    pending = TrainConfig(kernel_initializer="glorot_uniform", hidden_units=HIDDEN, epochs=EPOCHS, seed=9)
    with Store(path) as store:
        ids = store.add_runs([*configs, pending])
        for run_id, config in zip(ids, configs):
            init, seed = config.kernel_initializer, config.seed
            if histograms:
                store.record_histograms(run_id, histogram_rows(init, seed))
            if init == "he_normal" and seed == 2:
                diverged = {k: v[:2] + [math.nan] for k, v in history(init, seed).items()}
                store.record_result(run_id, diverged, status="diverged", diverged_epoch=3)
                continue
            rows = probe_rows(init, seed) if probes else None
            store.record_result(run_id, history(init, seed), metrics_rows=rows, timings={"train_s": 1.5})
    return path


@pytest.fixture(autouse=True)
def _close_figures() -> object:
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("store") / "sweep.sqlite")


@pytest.fixture(scope="module")
def results(store_path: Path) -> Results:
    return Results.from_store(store_path)


THEORY = {
    "glorot_uniform": {"backprop_variance": [1e-6, 1e-6, 1e-6], "saturation_fraction": {"1": 0.1}},
    "1": {"preactivation_variance": [0.04, 0.05, 0.06]},
}  # a run id stands for its configuration
NOTES = "First paragraph: Glorot <b>wins</b>.\n\nSecond paragraph & more."


@pytest.fixture(scope="module")
def report(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("report")
    path = build_report(
        store_path, out, title="Synthetic sweep", theory=THEORY, notes=NOTES, histogram_epochs=[0, 2, 4]
    )
    assert path == out / "report.html"
    return path.read_text()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if dict(attrs).get("id"):
            self.ids.add(dict(attrs)["id"])


def parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def summary_labels(html: str) -> list[str]:
    table = html[html.index('<table class="summary">') : html.index("</table>")]
    return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<tr><td class=num>\d+</td><td>(.*?)</td>", table)]


# --------------------------------------------------------------------------------------------
# the report


def test_report_is_self_contained(report: str) -> None:
    tags = parse(report)
    images = [attrs for tag, attrs in tags.tags if tag == "img"]
    assert len(images) == 1 + 1 + 9 + 3  # curves, saturation, 3 kinds x 3 configurations, 3 variances
    for tag, attrs in tags.tags:
        for name in ("src", "href", "action", "poster", "data"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "file:")), (tag, name, value)
        assert not (tag == "script" and attrs.get("src")), "no external scripts"
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), "no external style sheets"
    for attrs in images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        data = base64.b64decode(attrs["src"][len(prefix) :], validate=True)
        assert data.startswith(PNG) and data.endswith(b"IEND\xaeB`\x82")
        assert int(attrs["width"]) > 100 and int(attrs["height"]) > 50
        assert attrs["alt"]
    assert "@import" not in report and "url(" not in report


def test_summary_table_order_and_numbers(results: Results, report: str) -> None:
    rows = SummaryTable.from_results(results).rows
    assert [row["label"] for row in rows] == ["he_normal", "glorot_uniform", "random_normal"]
    by_label = {row["label"]: row for row in rows}
    for init in INITIALIZERS:
        seeds = [0, 1] if init == "he_normal" else list(SEEDS)
        finals = np.array([accuracy(init, s, EPOCHS) for s in seeds])
        row = by_label[init]
        assert row["seeds"] == len(seeds)
        assert row["diverged"] == (1 if init == "he_normal" else 0)
        assert row["val_accuracy_mean"] == pytest.approx(finals.mean())
        assert row["val_accuracy_std"] == pytest.approx(finals.std(ddof=1))
        assert row["val_loss_mean"] == pytest.approx((1 - finals).mean())
    assert by_label["glorot_uniform"]["unfinished"] == 1  # the pending seed 9
    assert summary_labels(report) == ["he_normal", "glorot_uniform", "random_normal"]
    glorot = np.array([accuracy("glorot_uniform", s, EPOCHS) for s in SEEDS])
    assert f"{glorot.mean():.4f} ± {glorot.std(ddof=1):.4f}" in report
    assert SummaryTable.from_results(results).to_dict()["label"][0] == "he_normal"


def test_sections_appear_with_data_only(report: str, tmp_path: Path) -> None:
    ids = parse(report).ids
    assert {
        "summary",
        "learning-curves",
        "saturation-fraction",
        "histograms",
        "variance-by-depth",
        "conclusions",
        "runs",
    } <= ids
    assert "dead-fraction" not in ids  # every dead_fraction row is NaN: the measure does not apply

    bare = build_store(tmp_path / "bare.sqlite", probes=False, histograms=False)
    html = build_report(bare, tmp_path / "bare").read_text()
    ids = parse(html).ids
    assert {"summary", "learning-curves", "runs"} <= ids
    assert not ids & {"saturation-fraction", "dead-fraction", "histograms", "variance-by-depth", "conclusions"}
    assert html.count("<img") == 1

    empty = tmp_path / "empty.sqlite"
    Store(empty).close()
    html = build_report(empty, tmp_path / "empty").read_text()
    assert "holds no runs" in html and "<img" not in html


def test_conclusions_are_the_callers_words(report: str) -> None:
    assert "<p>First paragraph: Glorot &lt;b&gt;wins&lt;/b&gt;.</p>" in report
    assert "<p>Second paragraph &amp; more.</p>" in report


def test_runs_details_hold_everything_to_reproduce(report: str, results: Results) -> None:
    start = report.index('<details class="runs">')
    details = report[start : report.index("</details>", start)]
    assert details.count("<tr>") == len(results.runs) + 1
    assert "diverged<br>at epoch 3" in details and "pending" in details
    assert "&quot;kernel_initializer&quot;: &quot;he_normal&quot;" in details
    assert "numpy" in details and "python" in details  # library versions
    assert "hidden_units" in report[report.index('id="runs"') : report.index('<details class="runs">')]  # shared fields


def test_every_text_from_the_store_and_the_caller_is_escaped(tmp_path: Path) -> None:
    path = build_store(tmp_path / "evil.sqlite", probes=True, histograms=False)
    with sqlite3.connect(path) as db:
        for run_id, text in db.execute("SELECT run_id, config_json FROM runs WHERE run_id IN (1, 2, 3)").fetchall():
            config = json.loads(text)
            config["kernel_initializer"] = EVIL + XSS
            db.execute("UPDATE runs SET config_json=?, label=NULL WHERE run_id=?", (json.dumps(config), run_id))
        db.execute("UPDATE runs SET status='failed', error=? WHERE run_id=10", (f"boom {XSS}",))
        db.execute("UPDATE runs SET versions_json=? WHERE run_id=4", (json.dumps({"jax": XSS}),))
    html = build_report(
        path,
        tmp_path / "out",
        title=f"title {XSS}",
        notes=[f"note {XSS}"],
        theory={EVIL + XSS: {"backprop_variance": [1e-6] * 3}},
    ).read_text()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # the report's own, inline, one-line script
    assert sum(tag == "script" for tag, _ in parse(html).tags) == 1
    assert any(label.startswith(f"{escape(EVIL)}&lt;script&gt;") for label in summary_labels(html))

    import matplotlib.pyplot as plt

    figure = SeedBandCurvesDisplay.from_store(path).plot().figure_
    texts = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    plt.close(figure)
    assert any(text.startswith(r" _glorot_uniform(scale=1.0) \$x^2\$ & <script>") for text in texts), texts


def test_a_missing_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    with pytest.raises(InitlabError, match="store not found"):
        build_report(tmp_path / "typo.sqlite", tmp_path / "out")
    assert not (tmp_path / "typo.sqlite").exists()


def test_bad_theory_is_rejected_before_drawing(store_path: Path, tmp_path: Path) -> None:
    with pytest.raises(InitlabError, match="glorot_uniform"):
        build_report(store_path, tmp_path, theory={"glorot_unform": {"backprop_variance": [1.0]}})
    with pytest.raises(InitlabError, match="run 99"):
        build_report(store_path, tmp_path, theory={99: {"backprop_variance": [1.0]}})
    assert not (tmp_path / "report.html").exists()


# --------------------------------------------------------------------------------------------
# figures


def test_configuration_labels_name_what_varies_and_ignore_the_seed(results: Results) -> None:
    assert set(results.labels.values()) == set(INITIALIZERS)
    runs = [
        {
            "run_id": i,
            "label": None,
            "config": {
                "kernel_initializer": init,
                "loss": loss,
                "optimizer": "sgd(learning_rate=0.01)",
                "batch_size": batch,
                "seed": seed,
            },
        }
        for i, (init, loss, batch, seed) in enumerate(
            [
                ("glorot_uniform", "mean_squared_error", 128, 0),
                ("glorot_uniform", "mean_squared_error", 128, 1),
                ("he_normal", "categorical_crossentropy", 32, 0),
            ]
        )
    ]
    labels = configuration_labels(runs)
    assert labels == {
        0: "glorot_uniform · mse · batch=128",
        1: "glorot_uniform · mse · batch=128",
        2: "he_normal · cce · batch=32",
    }
    for run, name in zip(runs, ("A", "A", "B")):
        run["label"] = name
    assert configuration_labels(runs) == {0: "A", 1: "A", 2: "B"}


def _displays(results: Results) -> dict[str, object]:
    return {
        "curves": SeedBandCurvesDisplay.from_results(results),
        "saturation": SaturationOverEpochsDisplay.from_results(results, theory=THEORY),
        "histograms": LayerHistogramGridDisplay.from_results(results, "glorot_uniform", "backprop", epochs=[0, 4]),
        "gradients": GradientVarianceByDepthDisplay.from_results(results, theory=THEORY),
    }


@pytest.mark.parametrize("name", ["curves", "saturation", "histograms", "gradients"])
def test_each_display_draws_into_the_callers_axes(results: Results, name: str) -> None:
    import matplotlib.pyplot as plt

    display = _displays(results)[name]
    panels = {"curves": (1, 2), "saturation": (1, 2), "histograms": (3, 2), "gradients": (1, 1)}[name]
    figure, axes = plt.subplots(*panels, squeeze=False)
    try:
        given = axes[0, 0] if panels == (1, 1) else axes
        assert display.plot(ax=given) is display
        assert display.figure_ is figure
        assert all(ax.lines or ax.patches or ax.collections for ax in axes.flat)
        with pytest.raises(InitlabError, match="panel"):
            display.plot(ax=list(axes.flat) + [axes[0, 0]])
    finally:
        plt.close(figure)


def test_displays_compute_what_they_draw(results: Results, store_path: Path) -> None:
    curves = SeedBandCurvesDisplay.from_store(store_path)
    band = curves.bands["glorot_uniform"]["val_accuracy"]
    expected = [np.mean([accuracy("glorot_uniform", s, e) for s in SEEDS]) for e in range(1, EPOCHS + 1)]
    assert band.center == pytest.approx(expected) and list(band.n) == [3] * EPOCHS
    assert curves.bands["he_normal"]["val_accuracy"].n.max() == 2  # the diverged seed is left out

    saturation = SaturationOverEpochsDisplay.from_results(results)
    assert list(saturation.bands) == ["1", "2"]  # the softmax output has no saturation
    assert saturation.bands["1"]["glorot_uniform"].x[0] == 0  # epoch 0: initialization

    gradients = GradientVarianceByDepthDisplay.from_results(results, theory=THEORY).plot()
    assert gradients.epoch == 0
    center = gradients.bands["random_normal"].center
    assert center == pytest.approx(1e-6 * 4.0 ** np.arange(3) * np.exp(np.mean(np.log([1.0, 1.1, 1.2]))))
    dashed = [line for line in gradients.ax_.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [1e-6] * 3
    assert gradients.ax_.get_yscale() == "log"

    forward = GradientVarianceByDepthDisplay.from_results(results, "preactivation_variance", theory=THEORY).plot()
    assert forward.bands["glorot_uniform"].center == pytest.approx([(0.2 * (1 + 0.1 * k)) ** 2 for k in (1, 2, 3)])
    assert forward.theory == {"glorot_uniform": ([1, 2, 3], [0.04, 0.05, 0.06])}  # run 1 is a glorot_uniform seed

    grid = LayerHistogramGridDisplay.from_results(results, kind="activation")
    assert grid.label == "glorot_uniform" and grid.runs == 3
    assert grid.epochs == [0, 1, 2, 3, 4] and grid.layers == ["1", "2", "3"]
    assert sum(grid.fractions["1", 0]) == pytest.approx(1.0)
    with pytest.raises(InitlabError, match="no 'gradient' histograms"):
        LayerHistogramGridDisplay.from_results(results, kind="gradient")
    with pytest.raises(InitlabError, match="no finite per-layer 'dead_fraction'"):
        SaturationOverEpochsDisplay.from_results(results, "dead_fraction")


@pytest.mark.parametrize("extension, magic", [("png", PNG), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_write_figure_by_extension(results: Results, tmp_path: Path, extension: str, magic: bytes) -> None:
    display = GradientVarianceByDepthDisplay.from_results(results)
    path = write_figure(display, tmp_path / "sub" / f"gradients.{extension}")
    assert path.read_bytes().startswith(magic) and path.stat().st_size > 1000


def test_write_figure_rejects_unknown_formats(results: Results, tmp_path: Path) -> None:
    with pytest.raises(InitlabError, match=r"\.png, \.svg, \.pdf"):
        write_figure(SeedBandCurvesDisplay.from_results(results), tmp_path / "curves.jpg")


# --------------------------------------------------------------------------------------------
# store


def test_store_histograms_round_trip_and_are_dropped_with_their_run(tmp_path: Path) -> None:
    with Store(tmp_path / "h.sqlite") as store:
        (run_id,) = store.add_runs([TrainConfig(epochs=1)])
        store.record_histograms(
            run_id,
            [
                (0, "1", "activation", [0.0, 0.5, 1.0], [3, 4]),
                {"epoch": 0, "layer": "1", "kind": "backprop", "edges": [-1, 0, 1], "counts": [1, 1]},
            ],
        )
        store.record_histograms(run_id, [(0, "1", "activation", [0.0, 0.5, 1.0], [5, 6])])  # replaces
        rows = store.histograms()
        assert rows["kind"] == ["activation", "backprop"] and rows["counts"] == [[5, 6], [1, 1]]
        assert store.histograms(kinds=["backprop"])["edges"] == [[-1.0, 0.0, 1.0]]
        assert store.histograms([run_id + 1])["run_id"] == []
        with pytest.raises(InitlabError, match="one more edge"):
            store.record_histograms(run_id, [(1, "1", "activation", [0.0, 1.0], [1, 2])])
        assert len(store.histograms()["run_id"]) == 2  # the failed call wrote nothing
        with pytest.raises(InitlabError, match="no run"):
            store.record_histograms(run_id + 1, [])
        store.mark_running([run_id])
        store.reset_interrupted()
        assert store.histograms()["run_id"] == []
