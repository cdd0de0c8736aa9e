"""Free probability for the input-output Jacobian at the fixed point (Pennington, Schoenholz & Ganguli 2017).

A deep network at the variance fixed point ``q*`` has the Jacobian ``J = D_L W_L ... D_1 W_1``
with ``D_l = diag(phi'(h_l))``, ``h_l ~ N(0, q*)``. At large width the factors are asymptotically
free, and the S-transform of ``J J^T`` multiplies (the paper's Eq. 8-10):

    S_{JJ^T}(z) = S_A(z)^L S_W(z)^L,

with ``A = sigma_w^2 D^2`` (the law of ``sigma_w^2 phi'(h)^2``) and ``W`` normalized so that
``W^T W`` has mean 1: ``S_W = 1 / (1 + z)`` for Gaussian weights (Marchenko-Pastur of ratio 1),
``S_W = 1`` for orthogonal ones. Conventions here: ``psi(u) = sum_k m_k u^k = E[u lam / (1 - u lam)]``
and ``S(z) = (1 + z) / z * psi^{-1}(z)``.

Two consequences, both exact at infinite width:

- the moments: ``E[lam] = m_A^L`` (``chi_1^L``: 1 at criticality) and the normalized variance
  ``Var[lam] / E[lam]^2 = L (kappa_A + kappa_W)`` with ``kappa = Var / mean^2`` of each factor
  (1 for Gaussian ``W^T W``, 0 for orthogonal): the first-order term of ``log S``
  (the paper's Eq. 17 in this notation);
- the density: at ``u = 1 / (x + i eta)``, with ``z = psi_A(w)``, the Jacobian's ``psi_{JJ^T}(u) = z``
  solves ``u (1 + z) = z^(1 - L) w^L`` (Gaussian) or ``u = z^(1 - L) w^L (1 + z)^(L - 1)``
  (orthogonal), a single complex equation in ``w``, continued by Newton's method from large ``x``
  (``u -> 0``, ``w ~ u / m_A``) down through the support; then ``G(x) = (1 + z) / x`` and
  ``rho(x) = -Im G / pi``.

``A``'s law is a 200-point Gauss-Hermite rule in float64 (exact for ReLU's two values, since no
node falls on the kink at 0); an atom of ``A`` at 0 (ReLU: mass 1/2) gives ``J J^T`` an atom of
the same mass at 0, outside the continuous density returned here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from initlab.errors import InitlabError

WEIGHTS = ("gaussian", "orthogonal")
_NODES = 200
_ATOM = 1e-12  # a factor's values below this (relative to its mean) are its atom at 0


@dataclass(frozen=True)
class FactorLaw:
    """The law of ``a = sigma_w^2 phi'(h)^2``, ``h ~ N(0, q)``: values and their probabilities."""

    values: np.ndarray
    weights: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.weights @ self.values)

    @property
    def kappa(self) -> float:
        """``Var[a] / E[a]^2``."""
        return float(self.weights @ self.values**2) / self.mean**2 - 1

    @property
    def atom(self) -> float:
        """The probability that ``a = 0`` (ReLU: 1/2)."""
        return float(self.weights[self.values <= _ATOM * self.mean].sum())


def factor_law(activation: str, q: float, sigma_w2: float) -> FactorLaw:
    """The law of ``sigma_w^2 phi'(sqrt(q) z)^2``, ``z ~ N(0, 1)``, on a Gauss-Hermite rule (float64)."""
    import jax

    from initlab.mean_field._numerics import _x64
    from initlab.nn import activations

    if not (q > 0 and sigma_w2 > 0 and math.isfinite(q) and math.isfinite(sigma_w2)):
        raise InitlabError(f"the factor law needs q > 0 and sigma_w2 > 0, got q={q}, sigma_w2={sigma_w2}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(_NODES)
    weights = weights / weights.sum()
    fn = activations.build(activation).fn
    with _x64():
        slope = np.asarray(jax.vmap(jax.grad(lambda t: fn(t)))(jax.numpy.asarray(math.sqrt(q) * nodes)), np.float64)
    return FactorLaw(sigma_w2 * slope**2, weights)


def _check_weights(weights: str) -> None:
    if weights not in WEIGHTS:
        raise InitlabError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")


def jacobian_moments(law: FactorLaw, depth: int, weights: str) -> tuple[float, float]:
    """``E[lam]`` and ``Var[lam]`` of the eigenvalues of ``J J^T`` (squared singular values), ``depth`` layers."""
    _check_weights(weights)
    mean = law.mean**depth
    kappa_w = 1.0 if weights == "gaussian" else 0.0
    return mean, mean**2 * depth * (law.kappa + kappa_w)


def _psi(law: FactorLaw, w: complex) -> tuple[complex, complex, complex]:
    """``psi_A(w)``, ``1 + psi_A(w)`` summed as ``E[1 / (1 - w a)]`` (no cancellation as psi -> -1), and ``psi_A'(w)``."""
    a, p = law.values, law.weights
    inverse = 1 / (1 - w * a)
    one_plus = complex(inverse @ p)
    return one_plus - 1, one_plus, complex((a * inverse**2) @ p)


def jacobian_density(law: FactorLaw, depth: int, weights: str, x: np.ndarray, eta: float = 1e-7) -> np.ndarray:
    """The continuous density of the eigenvalues of ``J J^T`` at ``x`` (positive, any order).

    Solved on a fine geometric grid from far above the support down to ``min(x)`` and read at ``x``
    (nan where Newton's method did not converge). Integrates to ``1 - atom`` of ``A``.
    """
    _check_weights(weights)
    if depth < 1:
        raise InitlabError(f"depth must be >= 1, got {depth}")
    x = np.asarray(x, float)
    if (x <= 0).any():
        raise InitlabError("the density is computed at positive eigenvalues only")
    mean, variance = jacobian_moments(law, depth, weights)
    top = 20 * (mean + variance) * (1 + depth)
    grid = np.geomspace(top, x.min(), max(4000, int(400 * math.log10(top / x.min()))))
    density = np.full(grid.shape, math.nan)
    u0 = 1 / grid[0]
    w = complex(u0 * mean / law.mean)  # psi_X(u) ~ u E[lam], psi_A(w) ~ w E[a]
    gaussian = weights == "gaussian"

    def newton(w: complex, u: complex) -> complex | None:
        for _ in range(80):
            z, one_plus, dz = _psi(law, w)
            g = z ** (1 - depth) * w**depth
            dg = g * (depth / w + (1 - depth) * dz / z)
            if gaussian:
                f, df = g - u * one_plus, dg - u * dz
            else:
                scale = one_plus ** (depth - 1)
                f, df = g * scale - u, scale * (dg + g * (depth - 1) * dz / one_plus)
            if abs(f) <= 1e-13 * abs(u):
                return w
            step = f / df
            w -= step
            if not math.isfinite(abs(w)):
                return None
            if abs(step) <= 1e-13 * abs(w):
                return w
        return None

    for index, point in enumerate(grid):
        spectral = complex(point, eta * point)
        # From the last solution; where the real root splits into a conjugate pair at an edge of
        # the support, from starts nudged off the axis, keeping the root of positive density.
        for start in (w, w * (1 + 0.05j), w * (1 - 0.05j), w * (1 + 0.3j), w * (1 - 0.3j)):
            solved = newton(start, 1 / spectral)
            if solved is None:
                continue
            one_plus = _psi(law, solved)[1]
            value = -(one_plus / spectral).imag / math.pi
            if value >= -1e-9 * abs(one_plus) / point:
                w, density[index] = solved, max(value, 0.0)
                break
    order = np.argsort(grid)
    return np.interp(x, grid[order], density[order])
