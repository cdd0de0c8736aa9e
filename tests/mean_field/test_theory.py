"""Mean-field theory against closed forms, high-precision quadrature and Monte Carlo.

Closed forms: linear (q' = sw2 q + sb2, chi1 = sw2), relu (E[relu(sqrt(q) z)^2] = q/2, the
arc-cosine kernel of Cho & Saul 2009), erf (the arcsine kernel of Williams 1997). Published
values: tanh's order-to-chaos line starts at sigma_w2 = 1 for sigma_b2 = 0 and passes near
sigma_w2 = 1.76 at sigma_b2 = 0.05 (Poole et al. 2016, phase diagram; Schoenholz et al. 2017,
Fig. 1).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.mean_field.theory import (
    TheoryResult,
    analyze,
    correlation_map,
    critical_sigma_w2,
    fixed_point_c,
    fixed_point_q,
    initializer_point,
    variance_map,
    variance_trajectory,
)
from initlab.nn.activations import activations
from initlab.viz.signal import PhaseDiagramDisplay, VarianceDepthDisplay

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _erf(x):
    return np.vectorize(math.erf)(x)


def _jax_erf():
    import jax.scipy.special

    return jax.scipy.special.erf


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(x / 2))


# float64 NumPy references (value, derivative): independent of JAX and of the module's quadrature.
REFERENCES = {
    "linear": (lambda x: x, lambda x: np.ones_like(x)),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    "tanh": (np.tanh, lambda x: 1 / np.cosh(np.minimum(np.abs(x), 350)) ** 2),
    "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "leaky_relu": (lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1.0, 0.2)),
    "elu": (lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0)))),
    "selu": (
        lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
        lambda x: SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0))),
    ),
    "gelu": (
        lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
        lambda x: 0.5 * (1 + _erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi),
    ),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
    "erf": (_erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x)),
    "softplus": (lambda x: np.logaddexp(0, x), _sigmoid),
    "swish": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
}
ELEMENTWISE = [name for name in activations.names if name != "softmax"]


def _quad_expectation(f, q):
    """E[f(sqrt(q) z)] by adaptive quadrature, split at 0 and where sqrt(q) z is of order 0.1 and 1."""
    integrate = pytest.importorskip("scipy.integrate")

    def density(z):
        return f(np.array(math.sqrt(q) * z)) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    edges = sorted({0.0, 0.1 / math.sqrt(q), 1 / math.sqrt(q), 1.0, 4.0, 40.0})
    edges = [e for e in edges if e <= 40.0]
    total = 0.0
    for a, b in zip(edges, edges[1:]):
        total += integrate.quad(density, a, b, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
        total += integrate.quad(density, -b, -a, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
    return total


def test_every_elementwise_activation_has_a_reference():
    assert set(ELEMENTWISE) == set(REFERENCES)


# --- closed forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("sigma_w2, sigma_b2", [(0.5, 0.1), (0.9, 0.0), (1.7, 0.3)])
def test_linear_closed_forms(sigma_w2, sigma_b2):
    q = np.array([0.0, 0.3, 1.0, 25.0])
    np.testing.assert_allclose(variance_map(q, sigma_w2, sigma_b2, "linear"), sigma_w2 * q + sigma_b2, rtol=1e-12, atol=1e-15)
    result = analyze("linear", sigma_w2, sigma_b2)
    assert result.chi1 == pytest.approx(sigma_w2, rel=1e-12)
    assert result.critical_sigma_w2 == pytest.approx(1.0, rel=1e-9)
    if sigma_w2 < 1:
        assert result.q_star == pytest.approx(sigma_b2 / (1 - sigma_w2), rel=1e-10, abs=1e-300)
        assert result.phase == "ordered"
    else:
        assert not fixed_point_q(sigma_w2, sigma_b2, "linear").finite
        assert result.phase == "unbounded" and result.q_star == math.inf


@pytest.mark.parametrize("sigma_w2", [0.5, 1.0, 1.9])
@pytest.mark.parametrize("sigma_b2", [0.0, 0.05, 1.0])
def test_relu_closed_forms(sigma_w2, sigma_b2):
    q = np.array([1e-3, 0.5, 2.0, 1e3])
    np.testing.assert_allclose(variance_map(q, sigma_w2, sigma_b2, "relu"), sigma_w2 * q / 2 + sigma_b2, rtol=1e-12)
    result = analyze("relu", sigma_w2, sigma_b2)
    assert result.chi1 == pytest.approx(sigma_w2 / 2, rel=1e-12)
    assert result.q_star == pytest.approx(sigma_b2 / (1 - sigma_w2 / 2), rel=1e-10, abs=1e-300)
    assert result.xi_q == pytest.approx(-1 / math.log(sigma_w2 / 2), rel=1e-9)
    assert result.critical_sigma_w2 == pytest.approx(2.0, rel=1e-9)
    assert result.phase == "ordered"


def test_relu_beyond_two_has_no_finite_fixed_point():
    assert fixed_point_q(2.5, 0.0, "relu") == fixed_point_q(2.5, 0.0, "relu")  # frozen, comparable
    for sigma_w2, sigma_b2 in [(2.5, 0.0), (2.0, 0.1), (3.0, 1.0)]:
        point = fixed_point_q(sigma_w2, sigma_b2, "relu")
        assert point.q_star == math.inf and not point.finite
        result = analyze("relu", sigma_w2, sigma_b2)
        assert result.phase == "unbounded" and math.isnan(result.xi_c)
        assert result.chi1 == pytest.approx(sigma_w2 / 2, rel=1e-12)


def test_he_normal_puts_relu_at_the_critical_point():
    sigma_w2, sigma_b2 = initializer_point("he_normal", 784, 64)
    result = analyze("relu", sigma_w2, sigma_b2)
    assert result.phase == "critical" and result.chi1 == pytest.approx(1.0, abs=1e-12)
    assert result.xi_c == math.inf and result.q_star == 0.0


def test_relu_correlation_map_is_the_arc_cosine_kernel():
    c, q = np.linspace(-0.99, 1.0, 12), 0.8
    theta = np.arccos(c)
    kernel = q / (2 * math.pi) * (np.sin(theta) + (math.pi - theta) * c)  # Cho & Saul 2009
    np.testing.assert_allclose(correlation_map(c, 1.5, 0.1, "relu", q_star=q), (1.5 * kernel + 0.1) / q, rtol=1e-9)


@pytest.mark.parametrize("q", [0.01, 0.5, 3.0, 40.0])
def test_erf_variance_map_closed_form(q):
    expected = 2 / math.pi * math.asin(2 * q / (1 + 2 * q))
    assert variance_map(q, 1.0, 0.0, _jax_erf()) == pytest.approx(expected, rel=1e-12)


def test_erf_correlation_map_and_chi1_closed_forms():
    erf, sigma_w2, sigma_b2 = _jax_erf(), 2.5, 0.1
    result = analyze(erf, sigma_w2, sigma_b2)
    q = result.q_star
    assert q == pytest.approx(sigma_w2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sigma_b2, rel=1e-12)
    assert result.chi1 == pytest.approx(sigma_w2 * 4 / (math.pi * math.sqrt(1 + 4 * q)), rel=1e-10)  # E[erf'(u)^2]
    c = np.linspace(-0.95, 1.0, 9)
    kernel = 2 / math.pi * np.arcsin(2 * q * c / (1 + 2 * q))  # Williams 1997
    np.testing.assert_allclose(correlation_map(c, sigma_w2, sigma_b2, erf), (sigma_w2 * kernel + sigma_b2) / q, rtol=1e-8)
    assert result.phase == "chaotic"
    kernel_star = 2 / math.pi * math.asin(2 * q * result.c_star / (1 + 2 * q))
    assert result.c_star == pytest.approx((sigma_w2 * kernel_star + sigma_b2) / q, abs=1e-9)


# --- tanh: known results ----------------------------------------------------------------------


def test_tanh_critical_point_without_bias():
    assert critical_sigma_w2(0.0, "tanh") == pytest.approx(1.0, abs=1e-9)
    result = analyze("tanh", 1.0, 0.0)
    assert result.q_star == 0.0 and result.chi1 == pytest.approx(1.0, abs=1e-12)
    assert result.phase == "critical" and result.xi_c == math.inf


def test_tanh_critical_line_at_small_bias():
    sigma_w2 = critical_sigma_w2(0.05, "tanh")
    assert 1.6 < sigma_w2 < 1.9  # about 1.76 (Poole et al. 2016)
    assert analyze("tanh", sigma_w2, 0.05).chi1 == pytest.approx(1.0, abs=1e-9)
    assert critical_sigma_w2(0.0, "tanh") < sigma_w2 < critical_sigma_w2(0.1, "tanh")


def test_tanh_phases_and_fixed_points():
    ordered, chaotic = analyze("tanh", 1.2, 0.05), analyze("tanh", 2.5, 0.05)
    assert ordered.phase == "ordered" and ordered.c_star == 1.0 and ordered.chi_c == ordered.chi1 < 1
    assert chaotic.phase == "chaotic" and 0 < chaotic.c_star < 1 and chaotic.chi1 > 1 > chaotic.chi_c
    assert correlation_map(chaotic.c_star, 2.5, 0.05, "tanh") == pytest.approx(chaotic.c_star, abs=1e-10)
    assert fixed_point_c(2.5, 0.05, "tanh") == chaotic.c_star
    assert fixed_point_c(2.5, 0.0, "tanh") == pytest.approx(0.0, abs=1e-12)  # odd phi, no bias


def test_slopes_are_derivatives_of_the_maps():
    result, h = analyze("tanh", 2.5, 0.05), 1e-5
    q, c = result.q_star, result.c_star
    slope_q = (variance_map(q + h, 2.5, 0.05, "tanh") - variance_map(q - h, 2.5, 0.05, "tanh")) / (2 * h)
    assert result.xi_q == pytest.approx(-1 / math.log(slope_q), rel=1e-6)
    slope_c = (correlation_map(c + h, 2.5, 0.05, "tanh") - correlation_map(c - h, 2.5, 0.05, "tanh")) / (2 * h)
    assert result.chi_c == pytest.approx(slope_c, rel=1e-6)
    assert result.xi_c == pytest.approx(-1 / math.log(slope_c), rel=1e-5)


def test_variance_trajectory_converges_to_the_fixed_point():
    trajectory = variance_trajectory(3.0, 40, 1.5, 0.05, "tanh")
    assert trajectory.shape == (41,) and trajectory[0] == 3.0
    assert trajectory[1] == pytest.approx(variance_map(3.0, 1.5, 0.05, "tanh"), rel=1e-14)
    assert trajectory[-1] == pytest.approx(fixed_point_q(1.5, 0.05, "tanh").q_star, rel=1e-9)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_activation_has_a_consistent_critical_point(name):
    sigma_w2 = critical_sigma_w2(0.1, name)
    assert 0.1 < sigma_w2 < 1000
    below, above = analyze(name, sigma_w2 * (1 - 1e-6), 0.1), analyze(name, sigma_w2 * (1 + 1e-6), 0.1)
    assert below.chi1 < 1 < above.chi1 and below.critical_sigma_w2 == sigma_w2
    assert below.phase == "ordered" and below.c_star == 1.0 and 0 < below.xi_c < math.inf
    if name in ("gelu", "swish"):  # q* jumps to inf (saddle-node): no chi1 = 1 on the way
        assert above.phase == "unbounded" and below.chi1 < 0.9
    else:
        assert analyze(name, sigma_w2, 0.1).chi1 == pytest.approx(1.0, abs=1e-9 if name != "softplus" else 1e-4)
    json.dumps(below.to_dict(), allow_nan=False)


# --- accuracy against scipy and Monte Carlo -------------------------------------------------


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("q", [0.05, 1.0, 30.0])
def test_variance_map_matches_adaptive_quadrature(name, q):
    value, _ = REFERENCES[name]
    expected = 1.3 * _quad_expectation(lambda x: value(x) ** 2, q) + 0.1
    assert variance_map(q, 1.3, 0.1, name) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "elu", "gelu", "softsign", "swish", "softplus", "selu"])
def test_chi1_matches_adaptive_quadrature(name):
    _, derivative = REFERENCES[name]
    result = analyze(name, 1.8, 0.2)
    expected = 1.8 * _quad_expectation(lambda x: derivative(x) ** 2, result.q_star)
    assert result.chi1 == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name, sigma_w2, sigma_b2", [("tanh", 1.5, 0.05), ("tanh", 3.0, 0.2), ("sigmoid", 4.0, 0.1)])
def test_monte_carlo(name, sigma_w2, sigma_b2):
    value, derivative = REFERENCES[name]
    z = np.random.default_rng(20170101).standard_normal(1_000_000)
    for q in (0.3, 2.0):
        samples = sigma_w2 * value(math.sqrt(q) * z) ** 2 + sigma_b2
        standard_error = samples.std() / math.sqrt(z.size)
        assert abs(variance_map(q, sigma_w2, sigma_b2, name) - samples.mean()) < 4 * standard_error
    result = analyze(name, sigma_w2, sigma_b2)
    samples = sigma_w2 * derivative(math.sqrt(result.q_star) * z) ** 2
    assert abs(result.chi1 - samples.mean()) < 4 * samples.std() / math.sqrt(z.size)


# --- initializers, results, errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, sigma_w2",
    [("glorot_uniform", 2 * 784 / (784 + 64)), ("he_normal", 2.0), ("lecun_normal", 1.0), ("RandomNormal(stddev=0.05)", 784 * 0.0025)],
)
def test_initializer_point(spec, sigma_w2):
    point = initializer_point(spec, 784, 64)
    assert tuple(point) == (pytest.approx(sigma_w2, rel=1e-12), 0.0)
    assert initializer_point(spec, 784, 64, bias_spec="RandomNormal(stddev=0.1)").sigma_b2 == pytest.approx(0.01)
    assert json.loads(json.dumps(point.to_dict()))["fan_in"] == 784


def test_results_are_frozen_and_strict_json():
    result = analyze("tanh", 1.0, 0.0)
    assert isinstance(result, TheoryResult)
    with pytest.raises(AttributeError):
        result.chi1 = 2.0  # type: ignore[misc]
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["xi_c"] is None and data["phase"] == "critical" and data["activation"] == "tanh"
    json.dumps(fixed_point_q(3.0, 0.0, "relu").to_dict(), allow_nan=False)


def test_bad_input():
    with pytest.raises(InitlabError, match="elementwise"):
        analyze("softmax", 1.0, 0.0)
    with pytest.raises(InitlabError, match="activation"):
        analyze("tanhh", 1.0, 0.0)
    with pytest.raises(InitlabError, match="q\\*"):
        correlation_map(0.5, 0.5, 0.0, "tanh")  # q* = 0: no correlation to speak of
    with pytest.raises(InitlabError):
        initializer_point("he_normal", 0, 64)


# --- displays ---------------------------------------------------------------------------------


def test_phase_diagram_display():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.contour import ContourSet

    display = PhaseDiagramDisplay.from_activation("tanh", (0.5, 4.0), (0.0, 0.3), resolution=10)
    assert display.xi_c.shape == display.chi1.shape == (10, 10)
    assert (display.chi1[:, 0] < 1).all() and (display.chi1[:, -1] > 1).all()
    point = tuple(initializer_point("glorot_uniform", 784, 64))
    display.plot(points={"glorot_uniform": point})
    assert isinstance(display.figure_, matplotlib.figure.Figure)
    assert isinstance(display.contours_, ContourSet) and isinstance(display.critical_line_, ContourSet)
    assert "glorot_uniform" in [text.get_text() for text in display.ax_.texts]
    assert json.loads(json.dumps(display.to_dict(), allow_nan=False))["activation"] == "tanh"
    plt.close(display.figure_)


def test_variance_depth_display():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [3.0, 2.1, 1.4]
    display = VarianceDepthDisplay.from_theory("tanh", 1.5, 0.05, q0=3.0, depth=10, measured=measured).plot()
    np.testing.assert_allclose(display.theory, variance_trajectory(3.0, 10, 1.5, 0.05, "tanh"))
    assert len(display.ax_.lines) == 2
    np.testing.assert_allclose(display.ax_.lines[1].get_ydata(), measured)
    assert display.to_dict()["measured"] == measured
    plt.close(display.figure_)


# Near the critical line: 1 - c* computed directly (an independent Gauss-Hermite reference)


def _hermite_reference(activation, sigma_w2: float, sigma_b2: float) -> tuple[float, float, float]:
    """(q*, 1 - c*, chi_c - 1) by a 160 x 160 Gauss-Hermite product rule, in 1 - c throughout."""
    from scipy.optimize import brentq

    nodes, weights = np.polynomial.hermite_e.hermegauss(160)
    weights = weights / weights.sum()
    phi = {"tanh": np.tanh}[activation]

    def dphi(x):
        return 1 - np.tanh(x) ** 2

    q = 1.0
    for _ in range(2000):  # the variance map contracts towards q*
        q = sigma_w2 * weights @ phi(math.sqrt(q) * nodes) ** 2 + sigma_b2
    z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
    w2 = np.outer(weights, weights)

    def gaps(u):
        second = (1 - u) * z1 + math.sqrt(u * (2 - u)) * z2
        a, b = math.sqrt(q) * z1, math.sqrt(q) * second
        return np.sum(w2 * (phi(a) - phi(b)) ** 2) / 2, np.sum(w2 * (dphi(a) - dphi(b)) ** 2) / 2

    u_star = brentq(lambda u: sigma_w2 * gaps(u)[0] / q - u, 1e-12, 1.0, xtol=1e-18, rtol=1e-14)
    chi1 = sigma_w2 * weights @ dphi(math.sqrt(q) * nodes) ** 2
    return q, u_star, (chi1 - 1) - sigma_w2 * gaps(u_star)[1]


@pytest.mark.parametrize("above", [5e-5, 1e-3, 1e-1])
def test_correlation_depth_just_above_the_critical_line_matches_a_reference(above):
    # tanh at sigma_b2 = 0.05: the old c_map(c) - c cancelled to round-off here (xi_c was 17% off at 5e-5).
    critical = critical_sigma_w2(0.05, "tanh")
    result = analyze("tanh", critical + above, 0.05)
    q_star, u_star, chi_c_minus_one = _hermite_reference("tanh", critical + above, 0.05)
    assert result.phase == "chaotic"
    assert result.q_star == pytest.approx(q_star, rel=1e-9)
    assert result.one_minus_c_star == pytest.approx(u_star, rel=1e-5)
    assert result.xi_c == pytest.approx(-1 / math.log1p(chi_c_minus_one), rel=1e-4)


@pytest.mark.parametrize(
    ("activation", "sigma_w2"), [("relu", 1.5), ("relu", 2.0), ("tanh", 0.5), ("tanh", 1.0)]
)
def test_depth_scales_are_infinite_where_they_are(activation, sigma_w2):
    # Without bias, at or below the critical line, the network tends to its linearization at 0
    # (relu: exactly), whose correlation map has slope 1 at c = 1: no exponential scale.
    result = analyze(activation, sigma_w2, 0.0)
    assert result.xi_c == math.inf
    if sigma_w2 == {"relu": 2.0, "tanh": 1.0}[activation]:
        assert result.phase == "critical" and result.xi_q == math.inf  # not 4.5e15 from log(1 - 2e-16)
