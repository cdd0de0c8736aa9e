"""Paper reproductions: their exact references against independent NumPy simulations, and the pipeline.

The measurements each reproduction makes are checked here against computations that share no
code with initlab (NumPy networks, NumPy chi-square sampling); the pipeline (checks, JSON, store,
report, a failing check's visibility, exit status) runs at reduced sizes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from initlab.cli import app
from initlab.experiments.store import Store
from initlab.measure.propagation import squared_norms_over_draws
from initlab.reproduce import (
    PAPERS,
    base,
    glorot2010,
    hanin2018,
    he2015,
    mishkin2016,
    pennington2017,
    saxe2014,
    schoenholz2017,
    wang2022,
    xiao2018,
    yang2022,
    zhang2019,
    zhao2022,
)

HE_GAUSSIAN = hanin2018.HE_GAUSSIAN


def _relu_squares(rng, n, samples):
    xi = rng.standard_normal((samples, n))
    return np.sum(np.maximum(xi, 0.0) ** 2, axis=1)


@pytest.mark.parametrize("width", [16, 32, 128])
def test_the_exact_per_layer_log_variance_matches_sampling(width):
    # v(n) = Var[log sum_i relu(xi_i)^2], xi standard normal: sampled directly, 200k times.
    rng = np.random.default_rng(width)
    squares = _relu_squares(rng, width, 200_000)
    logs = np.log(squares[squares > 0])  # the exact value conditions on a unit being active (fails w.p. 2^-n)
    variance = logs.var(ddof=1)
    se = math.sqrt(np.mean((logs - logs.mean()) ** 4) / len(logs))  # ~ the sample variance's standard error
    assert hanin2018.exact_log_variance(width) == pytest.approx(variance, abs=4 * se)
    # and 5/n is its wide limit
    assert width * hanin2018.exact_log_variance(width) > 5
    assert abs(256 * hanin2018.exact_log_variance(256) - 5) < 0.1


@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_the_exact_mean_log2_ratio_per_relu_layer_matches_sampling(gain):
    rng = np.random.default_rng(3)
    width = 64
    ratios = 2 * gain * _relu_squares(rng, width, 200_000) / width
    logs = np.log2(ratios)
    assert he2015._mean_log2_ratio(width, gain) == pytest.approx(logs.mean(), abs=4 * logs.std() / math.sqrt(len(logs)))


@pytest.mark.parametrize(("width", "depth"), [(16, 1), (16, 3), (8, 6)])
def test_the_exact_fourth_moment_of_gaussian_products_matches_numpy(width, depth):
    rng = np.random.default_rng(width * depth)
    draws = 20_000
    product = np.broadcast_to(np.eye(width), (draws, width, width))
    for _ in range(depth):
        product = rng.standard_normal((draws, width, width)) / math.sqrt(width) @ product
    gram = product @ np.swapaxes(product, 1, 2)
    fourth = np.einsum("nij,nji->n", gram, gram) / width  # (1/n) tr (J J^T)^2 = mean sigma^4
    assert saxe2014.exact_fourth_moment(width, depth) == pytest.approx(fourth.mean(), abs=4 * fourth.std() / math.sqrt(draws))
    assert saxe2014.exact_fourth_moment(width, 1) == pytest.approx(2 + 1 / width)
    assert abs(saxe2014.exact_fourth_moment(100_000, depth) - (depth + 1)) < 1e-3  # free probability's L + 1


def test_the_whitened_tasks_loss_is_half_the_squared_distance_to_its_correlation(tmp_path):
    # Saxe et al.'s identity, checked on the data themselves: with whitened inputs z, the mean squared error
    # of a linear map P is |P - Sigma_31|^2 / 2 plus the least-squares optimum's error (NumPy's lstsq).
    rng = np.random.default_rng(0)
    images = tmp_path / "images.npz"
    np.savez(images, x_train=rng.integers(0, 256, (400, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 400).astype(np.uint8),
             x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), y_test=np.arange(10, dtype=np.uint8))  # fmt: skip
    sigma31 = saxe2014.whitened_correlation(str(images), 12, 300)
    x = (np.load(images)["x_train"][:300].reshape(300, -1).astype(np.float32) / np.float32(255)).astype(np.float64)
    y = np.eye(10)[np.load(images)["y_train"][:300]]
    x, y = x - x.mean(0), y - y.mean(0)
    values, vectors = np.linalg.eigh(np.cov(x.T, bias=True))
    z = x @ vectors[:, -12:] / np.sqrt(values[-12:])
    optimum = np.linalg.lstsq(z, y, rcond=None)[0]
    np.testing.assert_allclose(np.abs(sigma31), np.abs(optimum[::-1]), rtol=1e-6, atol=1e-9)  # components' signs are free
    for _ in range(3):
        p = rng.normal(size=(12, 10))
        error = 0.5 * np.mean(np.sum((z @ p - y) ** 2, axis=1))
        least = 0.5 * np.mean(np.sum((z @ optimum - y) ** 2, axis=1))
        signs = np.sign(sigma31[:, :1] / optimum[::-1][:, :1])
        assert error - least == pytest.approx(0.5 * np.sum((p[::-1] * signs - sigma31) ** 2), rel=1e-9)


def test_deep_linear_gradient_descent_reaches_the_optimum_and_learning_time_is_its_first_crossing():
    sigma31 = np.random.default_rng(1).normal(size=(8, 3))
    curves = saxe2014.learning_curves("orthogonal", 3, sigma31, width=8, seed=0, seeds=2, log2_rates=(-4, -30), steps=400)
    assert curves.shape == (2, 2, 400)
    assert np.all(np.diff(curves[:, 0]) <= 1e-6) and curves[:, 0, -1].max() < 1e-4  # a small rate converges
    np.testing.assert_allclose(curves[:, 1], curves[:, 1, :1] * np.ones(400), rtol=1e-5)  # a rate of 2^-30 stands still
    with pytest.raises(ValueError, match="inputs == width"):
        saxe2014.learning_curves("Gaussian", 3, sigma31, width=4, seed=0, seeds=1, log2_rates=(0,), steps=1)
    made = np.array([[[3.0, 2.0, 0.5, 0.1], [3.0, 0.05, 0.01, 0.0]], [[3.0, 2.0, 1.0, 0.5], [np.nan, np.nan, np.nan, np.nan]]])
    np.testing.assert_array_equal(saxe2014.first_reached(made, 0.1), [[3, 1], [np.inf, np.inf]])
    np.testing.assert_array_equal(saxe2014.learning_times(made, 0.1), [1, np.inf])


def test_identity_initializations_added_units_never_learn_and_zeros_hadamard_mixes_them_in(tmp_path):
    # Zhao et al.'s Theorem 1 on initlab's own training: with partial identities, the units a widening layer
    # adds start at zero and (ReLU'(0) = 0) never receive a gradient, so W - I of the next square layer keeps
    # a rank of at most the input dimension; ZerO's Hadamard transform gives those units weights at once.
    from synthetic_data import write_mnist_like

    from initlab.training.config import TrainConfig
    from initlab.training.run import train_ensemble

    images = str(write_mnist_like(tmp_path / "images.npz", train=256, test=32))
    configs = [TrainConfig(data_file=images, hidden_units=(784, 800, 800), activation="relu", kernel_initializer=spec,
                           output_kernel_initializer=spec, loss="categorical_crossentropy", optimizer="sgd(learning_rate=0.1)",
                           batch_size=16, epochs=1, seed=0) for spec in ("identity", "zero_hadamard")]  # fmt: skip
    identity, zero = (zhao2022._kernels(result.params) for result in train_ensemble(configs))
    assert np.all(identity["Dense_1"][:, 784:] == 0) and np.all(identity["Dense_2"][784:] == np.eye(800)[784:])
    assert np.abs(zero["Dense_1"][:, 784:]).min() > 0
    spectrum = zhao2022.residual_spectrum(identity["Dense_2"])
    assert (spectrum > 1e-4).sum() <= 784 and (zhao2022.residual_spectrum(zero["Dense_2"]) > 1e-4).sum() > 16


def test_the_mean_field_growth_of_one_he_residual_block_is_the_closed_form_integral():
    # x0 = relu(z), q0 = 1/2; one He block: x1 = relu(x0 + z'), z' ~ N(0, 2 q0 = 1). For x0 = a >= 0,
    # E[relu(a + z')^2] = (a^2 + 1) Phi(a) + a phi(a); x0 = 0 with probability 1/2, else |z|.
    from scipy import integrate, stats

    def inner(a):
        return (a * a + 1) * stats.norm.cdf(a) + a * stats.norm.pdf(a)

    second = 0.5 * inner(0.0) + integrate.quad(lambda a: inner(a) * stats.norm.pdf(a), 0, np.inf)[0]
    growth = zhang2019.mean_field_growth(2, samples=2_000_000, seed=1)
    assert growth[0] == pytest.approx(second / 0.5, rel=4e-3)  # 2e6 samples: ~1e-3 relative
    assert growth[1] > growth[0] ** 1.5  # and it keeps growing


def test_the_gaussian_moments_of_the_glorot_prediction():
    q = 0.3
    assert glorot2010._gaussian_moment(lambda z: z**2, q) == pytest.approx(q, rel=1e-12)
    z = np.random.default_rng(0).normal(scale=math.sqrt(q), size=1_000_000)
    for fn in (lambda z: np.tanh(z) ** 2, lambda z: (1 - np.tanh(z) ** 2) ** 2):
        values = fn(z)
        assert glorot2010._gaussian_moment(fn, q) == pytest.approx(values.mean(), abs=4 * values.std() / 1000)


def test_norms_over_draws_match_a_numpy_network():
    # He Gaussian ReLU nets on one input, drawn by NumPy: the distribution of log ||a^l||^2 per layer.
    x = np.random.default_rng(0).normal(size=48)
    widths = [32] * 6
    ours = np.log(squared_norms_over_draws(HE_GAUSSIAN, x, widths, draws=4000, seed=1))
    rng = np.random.default_rng(2)
    a, fan, theirs = np.tile(x, (4000, 1)), 48, []
    for width in widths:
        weights = rng.standard_normal((4000, fan, width)) * math.sqrt(2 / fan)
        a = np.maximum(np.einsum("ni,nij->nj", a, weights), 0.0)
        theirs.append(np.log(np.sum(a**2, axis=1)))
        fan = width
    theirs = np.stack(theirs, axis=1)
    se = np.sqrt(ours.var(axis=0) / 4000 + theirs.var(axis=0) / 4000)
    assert np.all(np.abs(ours.mean(axis=0) - theirs.mean(axis=0)) < 4 * se)
    exact = np.cumsum([hanin2018.exact_log_variance(w) for w in widths])
    np.testing.assert_allclose(ours.var(axis=0), exact, rtol=0.12)  # ~4 standard errors of a variance at 4000


def test_a_draw_is_the_same_whatever_the_number_of_draws():
    x = np.ones(8)
    few = squared_norms_over_draws(HE_GAUSSIAN, x, [16, 16], draws=3, seed=5)
    more = squared_norms_over_draws(HE_GAUSSIAN, x, [16, 16], draws=7, seed=5)
    np.testing.assert_allclose(more[:3], few, rtol=1e-6)
    assert not np.allclose(more[3], more[4])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [(dict(x=np.ones((2, 2))), "one input vector"), (dict(x=np.array([np.nan])), "NaN"),
     (dict(widths=[]), "at least one"), (dict(widths=[0]), "width"), (dict(draws=0), "draws"),
     (dict(initializer="lsuv"), "training data")],
)  # fmt: skip
def test_bad_draw_arguments_are_one_line_errors(kwargs, message):
    from initlab.errors import InitlabError

    arguments = {"initializer": HE_GAUSSIAN, "x": np.ones(4), "widths": [8], "draws": 4} | kwargs
    with pytest.raises(InitlabError, match=message):
        squared_norms_over_draws(arguments.pop("initializer"), arguments.pop("x"), arguments.pop("widths"), **arguments)


@pytest.fixture
def small(monkeypatch, tmp_path_factory):
    """The reproductions at a few seconds' size: the same code, smaller constants, training on 512 images."""
    rng = np.random.default_rng(0)
    images = tmp_path_factory.mktemp("data") / "small_mnist.npz"
    np.savez(images, x_train=rng.integers(0, 256, (512, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 512).astype(np.uint8),
             x_test=rng.integers(0, 256, (128, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 128).astype(np.uint8))  # fmt: skip
    monkeypatch.setattr(base, "DATA_FILE", str(images))
    monkeypatch.setattr(hanin2018, "WIDTHS", (32,))
    monkeypatch.setattr(hanin2018, "DEPTHS", (2, 4))
    monkeypatch.setattr(hanin2018, "MIXED", (32, 64))
    monkeypatch.setattr(hanin2018, "DRAWS", 512)
    monkeypatch.setattr(he2015, "DEPTH", 6)
    monkeypatch.setattr(he2015, "WIDTH", 64)
    monkeypatch.setattr(he2015, "DRAWS", 16)
    monkeypatch.setattr(he2015, "TRAIN_DEPTH", 3)
    monkeypatch.setattr(he2015, "TRAIN_WIDTH", 16)
    monkeypatch.setattr(he2015, "EPOCHS", 1)
    monkeypatch.setattr(glorot2010, "WIDTH", 64)
    monkeypatch.setattr(glorot2010, "BATCH", 64)
    monkeypatch.setattr(glorot2010, "SATURATION_WIDTH", 16)
    monkeypatch.setattr(glorot2010, "SATURATION_EPOCHS", 2)
    monkeypatch.setattr(mishkin2016, "DEPTH", 3)
    monkeypatch.setattr(mishkin2016, "WIDTH", 16)
    monkeypatch.setattr(mishkin2016, "HELD_OUT", 100)
    monkeypatch.setattr(mishkin2016, "EPOCHS", 1)
    monkeypatch.setattr(pennington2017, "WIDTH", 32)
    monkeypatch.setattr(pennington2017, "DEPTH", 3)
    monkeypatch.setattr(pennington2017, "SAMPLES", 2)
    monkeypatch.setattr(schoenholz2017, "WIDTH", 8)
    monkeypatch.setattr(schoenholz2017, "DEPTHS", (3,))
    monkeypatch.setattr(schoenholz2017, "SIGMA_W2", (1.0, 1.75))
    monkeypatch.setattr(saxe2014, "WIDTH", 16)
    monkeypatch.setattr(saxe2014, "DEPTHS", (1, 2))
    monkeypatch.setattr(saxe2014, "SAMPLES", 4)
    monkeypatch.setattr(saxe2014, "LEARNING_DEPTHS", (2, 4, 16))
    monkeypatch.setattr(saxe2014, "LEARNING_WIDTH", 8)
    monkeypatch.setattr(saxe2014, "INPUTS", 8)
    monkeypatch.setattr(saxe2014, "EXAMPLES", 256)
    monkeypatch.setattr(saxe2014, "STEPS", 20)
    monkeypatch.setattr(saxe2014, "LEARNING_SEEDS", 2)
    monkeypatch.setattr(xiao2018, "DEPTH", 6)
    monkeypatch.setattr(xiao2018, "CHANNELS", 4)
    monkeypatch.setattr(xiao2018, "SIDE", 4)
    monkeypatch.setattr(zhang2019, "INIT_DEPTH", 3)
    monkeypatch.setattr(zhang2019, "INIT_WIDTH", 16)
    monkeypatch.setattr(zhang2019, "DRAWS", 2)
    monkeypatch.setattr(zhang2019, "TRAIN_DEPTH", 2)
    monkeypatch.setattr(zhang2019, "TRAIN_WIDTH", 8)
    monkeypatch.setattr(zhang2019, "EPOCHS", 1)
    monkeypatch.setattr(zhang2019, "SEEDS", (0,))
    monkeypatch.setattr(wang2022, "DEPTHS", (1, 2))
    monkeypatch.setattr(wang2022, "STEPS", 2)
    monkeypatch.setattr(wang2022, "SEEDS", (0,))
    monkeypatch.setattr(zhao2022, "WIDTH", 800)
    monkeypatch.setattr(zhao2022, "EPOCHS", 1)
    monkeypatch.setattr(yang2022, "WIDTHS", (16, 32))
    monkeypatch.setattr(yang2022, "LOG2_RATES", (-8, -7))
    monkeypatch.setattr(yang2022, "SEEDS", (0,))
    monkeypatch.setattr(yang2022, "EXAMPLES", 256)


def test_lsuvs_held_out_batch_is_not_its_own(small):
    # LSUV normalizes on the first 1024 of the seed's epoch order; the check measures on the last ones.
    from initlab.data import epoch_order, load
    from initlab.nn.lsuv import lsuv_batch

    data = load("mnist")
    order = epoch_order(0, 1, len(data.x_train))
    np.testing.assert_array_equal(lsuv_batch(data, 0, 1024), data.features("train")[order[:1024]])
    assert not set(order[:1024]) & set(order[-mishkin2016.HELD_OUT:])


def test_a_reproduction_writes_its_result_figure_store_document_and_report(small, tmp_path):
    result = base.run("hanin2018", tmp_path)
    folder = tmp_path / "hanin2018"
    document = json.loads((folder / "result.json").read_text())
    assert {"name", "paper", "budget_s", "elapsed_s", "checks"} <= set(document)
    assert set(document["checks"][0]) >= {"name", "claim", "published", "measured", "band", "passed"}
    assert document["paper"]["year"] == 2018 and document["checks"][-1]["published"] == 1.0
    assert len(result.checks) == 3 + 2  # 3 architectures, the slope, the mean
    assert (folder / "variance_against_beta.png").read_bytes()[:4] == b"\x89PNG"
    with Store(tmp_path / "runs.sqlite", read_only=True) as store:
        assert store.document("reproduction:hanin2018")["checks"] == document["checks"]
    html = (folder / "report.html").read_text()
    assert "How to Start Training" in html and "data:image/png;base64," in html


def test_a_failing_check_is_visible_in_the_terminal_the_json_and_the_report_and_exits_1(tmp_path, monkeypatch):
    def failing(context):
        return base.Outcome(checks=[
            base.Check(name="agrees", claim="c", measured=1.0, band=(0.5, 1.5), published=1.0),
            base.Check(name="disagrees", claim="c", measured=3.0, band=(0.5, 1.5), published=1.0, reason="too small a net"),
        ], figures=[])  # fmt: skip

    reproduction = base.Reproduction(name="fake2000", paper=base.Paper("A. Author", 2000, "A Title"), claim="claim",
                                     setup="setup", why="why", budget_s=1.0, full_setup="full", run=failing)  # fmt: skip
    monkeypatch.setitem(base.REPRODUCTIONS, "fake2000", reproduction)
    runner = CliRunner()
    terminal = runner.invoke(app, ["reproduce", "fake2000", "-o", str(tmp_path)])
    assert terminal.exit_code == 1
    assert "FAILED" in terminal.stdout and "1 check(s) failed" in terminal.stderr
    assert "FAILED disagrees: too small a net" in terminal.stdout  # the reason, in the terminal too
    as_json = runner.invoke(app, ["reproduce", "fake2000", "-o", str(tmp_path), "--json"])
    assert as_json.exit_code == 1
    checks = json.loads(as_json.stdout)["checks"]
    assert [c["passed"] for c in checks] == [True, False] and checks[1]["reason"] == "too small a net"
    html = (tmp_path / "fake2000" / "report.html").read_text()
    assert "1 of 2 checks failed" in html and "too small a net" in html


def test_reproduce_all_and_list(small, tmp_path):
    listed = CliRunner().invoke(app, ["reproduce", "--list", "--json"])
    names = [row["name"] for row in json.loads(listed.stdout)["reproductions"]]
    assert names[0] == "seed" and {"he2015", "hanin2018"} <= set(names)
    result = CliRunner().invoke(app, ["reproduce", "all", "-o", str(tmp_path), "--json"])
    document = json.loads(result.stdout)
    assert [r["name"] for r in document["reproductions"]] == list(PAPERS)
    html = (tmp_path / "report.html").read_text()
    for heading in ("He et al. 2015", "Hanin &amp; Rolnick 2018", "Glorot &amp; Bengio 2010", "Mishkin &amp; Matas 2016",
                    "Saxe et al. 2014", "Yang et al. 2022", "Pennington et al. 2017", "Xiao et al. 2018",
                    "Schoenholz et al. 2017", "Zhang et al. 2019",
                    "Wang et al. 2022", "Zhao et al. 2022"):
        assert heading in html
    with Store(tmp_path / "runs.sqlite", read_only=True) as store:
        # glorot2010's Figure 2, he2015's, mishkin2016's, schoenholz2017's, zhang2019's and zhao2022's runs, beside the documents
        assert len(store.runs()) == 1 + 4 + 8 + 2 + 3 + 3
        assert store.document("reproduction:he2015") is not None
    # the statuses the small sizes give are what they are; the exit status says whether all passed
    assert result.exit_code == (0 if document["passed"] else 1)
