"""Free-probability Jacobian spectra against closed forms and against NumPy networks that share no code with initlab."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.mean_field.spectra import factor_law, jacobian_density, jacobian_moments
from initlab.reproduce.pennington2017 import critical_point, kolmogorov_distance


def test_one_gaussian_layer_is_marchenko_pastur():
    x = np.array([0.05, 0.3, 1.0, 2.0, 3.5, 3.95])
    density = jacobian_density(factor_law("linear", 1.0, 1.0), 1, "gaussian", x)
    exact = np.sqrt(x * (4 - x)) / (2 * math.pi * x)
    np.testing.assert_allclose(density[:-1], exact[:-1], rtol=1e-4)
    # next to the square-root edge at 4, linear interpolation on the solver's grid costs more
    assert density[-1] == pytest.approx(exact[-1], rel=2e-3)


@pytest.mark.parametrize("depth", [2, 5])
def test_products_of_gaussian_layers_have_the_fuss_catalan_moments(depth):
    # Fuss-Catalan: E[lam] = 1, E[lam^2] = L + 1; the mass below 1e-9 is what the grid leaves out.
    x = np.geomspace(1e-9, 4 * (depth + 1) ** 2, 40000)
    density = jacobian_density(factor_law("linear", 1.0, 1.0), depth, "gaussian", x)
    assert np.trapezoid(density * x, x) == pytest.approx(1.0, abs=2e-3)
    assert np.trapezoid(density * x * x, x) == pytest.approx(depth + 1, rel=2e-3)
    assert jacobian_moments(factor_law("linear", 1.0, 1.0), depth, "gaussian") == pytest.approx((1.0, depth))


def test_orthogonal_linear_products_are_isometries_and_relu_has_half_its_mass_at_zero():
    assert jacobian_moments(factor_law("linear", 1.0, 1.0), 30, "orthogonal") == pytest.approx((1.0, 0.0))
    relu = factor_law("relu", 1.0, 2.0)
    assert relu.atom == pytest.approx(0.5) and relu.mean == pytest.approx(1.0) and relu.kappa == pytest.approx(1.0)
    assert jacobian_moments(relu, 10, "orthogonal") == pytest.approx((1.0, 10.0))
    assert jacobian_moments(relu, 10, "gaussian") == pytest.approx((1.0, 20.0))


@pytest.mark.parametrize(("activation", "q_star"), [("tanh", 1 / 64), ("erf", 1 / 64), ("tanh", 1.0)])
def test_critical_points_sit_on_the_critical_line_with_the_asked_fixed_point(activation, q_star):
    from initlab.mean_field.theory import analyze

    sigma_w2, sigma_b2 = critical_point(activation, q_star)
    theory = analyze(activation, sigma_w2, sigma_b2)
    assert theory.chi1 == pytest.approx(1.0, abs=1e-8)
    assert theory.q_star == pytest.approx(q_star, rel=1e-6)


def _numpy_spectrum(activation, q_star, sigma_w2, sigma_b2, weights, width, depth, draws, seed):
    """Squared singular values of D_L W_L ... D_1 W_1 at inputs drawn at q*: NumPy only."""
    rng = np.random.default_rng(seed)
    phi, slope = {
        "tanh": (np.tanh, lambda h: 1 / np.cosh(h) ** 2),
        "relu": (lambda h: np.maximum(h, 0), lambda h: (h > 0).astype(float)),
    }[activation]
    values = []
    for _ in range(draws):
        x = rng.normal(0, math.sqrt((q_star - sigma_b2) / sigma_w2), width)
        jacobian = np.eye(width)
        for _ in range(depth):
            if weights == "orthogonal":
                q, r = np.linalg.qr(rng.standard_normal((width, width)))
                w = math.sqrt(sigma_w2) * q * np.sign(np.diag(r))
            else:
                w = rng.normal(0, math.sqrt(sigma_w2 / width), (width, width))
            h = w @ x + rng.normal(0, math.sqrt(sigma_b2), width)
            jacobian = (slope(h)[:, None] * w) @ jacobian
            x = phi(h)
        values.append(np.linalg.svd(jacobian, compute_uv=False) ** 2)
    return np.array(values)


@pytest.mark.parametrize(("activation", "q_star", "weights"), [
    ("tanh", 1 / 64, "orthogonal"), ("tanh", 1.0, "orthogonal"), ("tanh", 1.0, "gaussian"), ("relu", 1.0, "orthogonal"),
])  # fmt: skip
def test_the_predicted_spectrum_is_what_numpy_networks_measure(activation, q_star, weights):
    width, depth, draws = 256, 8, 12
    sigma_w2, sigma_b2 = critical_point(activation, q_star)
    lam = _numpy_spectrum(activation, q_star, sigma_w2, sigma_b2, weights, width, depth, draws, seed=7)
    law = factor_law(activation, q_star, sigma_w2)
    mean, variance = jacobian_moments(law, depth, weights)
    per_draw = (lam**2).mean(axis=1) - lam.mean(axis=1) ** 2
    se = per_draw.std(ddof=1) / math.sqrt(draws)
    assert abs(per_draw.mean() - variance) <= 4 * se + 2 * depth / width * variance  # the reproduction's band
    grid = np.geomspace(1e-10 * mean, lam.max() * 1.5, 3000)
    density = jacobian_density(law, depth, weights, grid)
    assert np.isfinite(density).all()
    assert kolmogorov_distance(lam.ravel(), grid, density) < 0.05
    # and the check can fail: the other weights' prediction is far from this spectrum
    other = "gaussian" if weights == "orthogonal" else "orthogonal"
    assert kolmogorov_distance(lam.ravel(), grid, jacobian_density(law, depth, other, grid)) > 0.1


def test_kolmogorov_distance_of_samples_from_the_density_itself():
    rng = np.random.default_rng(0)
    samples = rng.exponential(size=20000)
    grid = np.linspace(1e-6, 12, 5000)
    assert kolmogorov_distance(samples, grid, np.exp(-grid)) < 0.015
    assert kolmogorov_distance(samples, grid, 2 * np.exp(-2 * grid)) > 0.2


def test_bad_arguments_are_one_line_errors():
    law = factor_law("tanh", 0.1, 1.2)
    with pytest.raises(InitlabError, match="weights must be one of gaussian, orthogonal"):
        jacobian_moments(law, 3, "haar")
    with pytest.raises(InitlabError, match="depth must be >= 1"):
        jacobian_density(law, 0, "gaussian", np.array([1.0]))
    with pytest.raises(InitlabError, match="positive eigenvalues"):
        jacobian_density(law, 2, "gaussian", np.array([0.0, 1.0]))
    with pytest.raises(InitlabError, match="q > 0"):
        factor_law("tanh", 0.0, 1.0)
