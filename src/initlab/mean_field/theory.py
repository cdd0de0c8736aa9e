"""Mean-field signal propagation in deep random networks (Poole et al. 2016; Schoenholz et al. 2017).

A layer ``h' = W phi(h) + b`` with ``Var W_ij = sigma_w2 / fan_in`` and ``Var b_i = sigma_b2``
maps the pre-activation variance ``q`` and the correlation ``c`` between two inputs to

    q' = sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2                    (variance map)
    c' = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q*               (correlation map)

with ``u1, u2`` Gaussian of variance ``q*`` and correlation ``c``. ``chi1 = sigma_w2
E[phi'(u)^2]`` at the fixed point ``q*`` separates the ordered phase (``chi1 < 1``: inputs
become alike) from the chaotic one (``chi1 > 1``); ``xi_q`` and ``xi_c`` are the depths over
which the variance and the correlation forget the input.

Numerics: Gauss-Legendre quadrature in float64, split at 0 (relu's kink; where phi(sqrt(q) z)
is steepest for large q), panels graded towards 0; in 2-D, polar sectors between the rays
u1 = 0 and u2 = 0. Versus scipy's adaptive quadrature: 1e-15 relative for every registered
activation, q in [1e-3, 1e3]; 2-D versus the relu and erf kernels: 3e-10 (q <= 1), 5e-9
(q = 100). (Gauss-Hermite, 300 nodes: 2e-3 off for E[elu'^2], 1e-2 for tanh at q = 100.)
phi' and phi'' are JAX forward-mode derivatives, jitted, with 64-bit floats enabled locally.

Example:
    >>> analyze("tanh", 2.5, 0.05).phase
    'chaotic'
    >>> round(critical_sigma_w2(0.05, "tanh"), 3)
    1.761
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from initlab import initializers as _initializers
from initlab.errors import InitlabError
from initlab.mean_field._numerics import (
    ActivationLike,
    Phi,
    first_crossing,
    illinois,
    moments,
    newton,
    pair_gaps,
    pair_moments,
    resolve,
)

_Q_LIMIT = 1e30  # where quantities at "q* = inf" are evaluated, as the limit q -> inf
_Q_GRID = np.geomspace(1e-10, 1e14, 97)  # brackets q*
_SIGMA_W2_GRID = np.geomspace(1e-3, 1e5, 81)  # brackets the critical sigma_w2
_CRITICAL_TOL = 1e-8  # |chi1 - 1| below this is "critical"


# --- maps and fixed points ----------------------------------------------------------------


def _check(sigma_w2: float, sigma_b2: float) -> None:
    if not (sigma_w2 >= 0 and sigma_b2 >= 0):
        raise InitlabError(f"sigma_w2 and sigma_b2 are variances, >= 0; got ({sigma_w2}, {sigma_b2})")


def variance_map(q: Any, sigma_w2: float, sigma_b2: float, activation: ActivationLike) -> Any:
    """``sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2``, the next layer's pre-activation variance (q: float or array)."""
    result = sigma_w2 * moments(q, resolve(activation))[0] + sigma_b2
    return float(result) if np.ndim(result) == 0 else result


def variance_trajectory(q0: float, depth: int, sigma_w2: float, sigma_b2: float, activation: ActivationLike) -> np.ndarray:
    """``[q0, q1, ..., q_depth]``: the first layer's pre-activation variance, then each next layer's."""
    if depth < 0:
        raise InitlabError(f"depth must be >= 0, got {depth}")
    q = [float(q0)]
    for _ in range(depth):
        q.append(variance_map(q[-1], sigma_w2, sigma_b2, activation) if math.isfinite(q[-1]) else math.inf)
    return np.array(q)


def _fixed_point_q(sigma_w2: np.ndarray, sigma_b2: np.ndarray, phi: Phi) -> np.ndarray:
    """The smallest q* >= 0 where ``V(q) - q`` turns negative; inf where none is below 1e14.

    That is where the map settles from a small input variance. ``q* = 0`` where 0 is a fixed
    point that attracts (tanh without bias and ``sigma_w2 <= 1``; relu without bias, ``<= 2``).
    """
    sigma_w2, sigma_b2 = (np.array(a, float).ravel() for a in np.broadcast_arrays(sigma_w2, sigma_b2))
    _, d0, curvature0 = moments(0.0, phi)
    stable_zero = (sigma_w2 * phi.at_zero**2 + sigma_b2 == 0) & (sigma_w2 * (d0 + curvature0) <= 1 + _CRITICAL_TOL)
    gap = sigma_w2[:, None] * moments(_Q_GRID, phi)[0] + sigma_b2[:, None] - _Q_GRID
    found, lo, hi, _, _ = first_crossing(_Q_GRID, gap)
    found &= ~stable_zero
    w2, b2 = sigma_w2[found], sigma_b2[found]

    def gap_and_slope(q, index):
        phi2, d1, curvature = moments(q, phi)
        return w2[index] * phi2 + b2[index] - q, w2[index] * (d1 + curvature) - 1

    q_star = np.where(stable_zero, 0.0, math.inf)
    q_star[found] = newton(gap_and_slope, lo[found], hi[found], (lo[found] + hi[found]) / 2, atol=1e-300)
    return q_star


@dataclass(frozen=True)
class VarianceFixedPoint:
    """The fixed point q* of the variance map; ``finite`` is False where the variance diverges."""

    q_star: float
    finite: bool

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def fixed_point_q(sigma_w2: float, sigma_b2: float, activation: ActivationLike) -> VarianceFixedPoint:
    """``q* = variance_map(q*)``; ``inf`` with ``finite=False`` where the variance grows without bound.

    Example: relu with ``sigma_w2 > 2`` (or ``= 2`` with a bias) has no finite fixed point.
    """
    _check(sigma_w2, sigma_b2)
    q_star = float(_fixed_point_q(np.array([sigma_w2]), np.array([sigma_b2]), resolve(activation))[0])
    return VarianceFixedPoint(q_star=q_star, finite=math.isfinite(q_star))


def correlation_map(c: Any, sigma_w2: float, sigma_b2: float, activation: ActivationLike, q_star: float | None = None) -> Any:
    """``(sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q*``, u at variance ``q_star`` (default: the fixed point)."""
    phi = resolve(activation)
    if q_star is None:
        q_star = float(_fixed_point_q(np.array([sigma_w2]), np.array([sigma_b2]), phi)[0])
    if not 0 < q_star < math.inf:
        raise InitlabError(f"the correlation map needs 0 < q* < inf, got q* = {q_star}; pass q_star explicitly")
    c = np.asarray(c, float)
    result = (sigma_w2 * pair_moments(q_star, c, phi)[0] + sigma_b2) / q_star
    return float(result) if result.ndim == 0 else result


def _fixed_point_c(
    q_star: np.ndarray, sigma_w2: np.ndarray, sigma_b2: np.ndarray, phi: Phi
) -> tuple[np.ndarray, np.ndarray]:
    """``1 - c*`` of a chaotic correlation map, and ``chi_c - 1`` there, computed without cancellation.

    In ``u = 1 - c`` the map is ``u' = sigma_w2 E[(phi(u1) - phi(u2))^2] / (2 q*)``, whose
    terms stay accurate as ``u -> 0`` (just above the critical line, where ``c_map(c) - c``
    would cancel to round-off). The map in c is a power series with non-negative coefficients
    (Mehler's formula), so ``u' - u`` is concave in u, zero at 0 with slope ``chi1 - 1 > 0``:
    Newton from ``u = 1`` descends to ``u*`` without overshooting. Its slope,
    ``chi_c - 1 = (chi1 - 1) - sigma_w2 E[(phi'(u1) - phi'(u2))^2] / 2``, keeps its accuracy too.
    """
    d1 = moments(q_star, phi)[1]

    def gap_and_slope(u, index):
        value_gap, slope_gap = pair_gaps(q_star[index], u, phi)
        return sigma_w2[index] * value_gap / q_star[index] - u, sigma_w2[index] * (d1[index] - slope_gap) - 1

    ones = np.ones(q_star.size)
    u_star = newton(gap_and_slope, ones * 0, ones, ones)
    slope_gap = pair_gaps(q_star, u_star, phi)[1]
    return u_star, (sigma_w2 * d1 - 1) - sigma_w2 * slope_gap


def _depth_scale(chi_minus_one: np.ndarray) -> np.ndarray:
    """``-1 / ln(chi)`` from ``chi - 1`` (log1p: no cancellation near 1): inf within the critical tolerance of 1 and above, 0 from chi = 0 down."""
    with np.errstate(all="ignore"):
        scale = -1 / np.log1p(np.clip(chi_minus_one, -1 + 1e-300, 0.0))
        return np.where(chi_minus_one >= -_CRITICAL_TOL, math.inf, np.where(chi_minus_one <= -1, 0.0, scale))


def _analyze_many(sigma_w2: np.ndarray, sigma_b2: np.ndarray, phi: Phi) -> dict[str, np.ndarray]:
    """Every field of :class:`TheoryResult` but the critical line, one entry per point."""
    sigma_w2, sigma_b2 = (np.array(a, float).ravel() for a in np.broadcast_arrays(sigma_w2, sigma_b2))
    q_star = _fixed_point_q(sigma_w2, sigma_b2, phi)
    finite = np.isfinite(q_star)
    _, d1, curvature = moments(np.where(finite, q_star, _Q_LIMIT), phi)
    chi1 = sigma_w2 * d1
    critical = np.abs(chi1 - 1) <= _CRITICAL_TOL
    chaotic = finite & (chi1 > 1) & ~critical
    u_star, chi_c_minus_one = np.zeros_like(chi1), chi1 - 1
    # q* = 0 (no bias, ordered): the network tends to its linearization at 0, where the
    # normalized correlation map's slope at c = 1 is q E[phi'^2] / E[phi^2] as q -> 0 (1 for
    # relu and tanh: correlations then approach 1 as a power of depth, xi_c infinite).
    vanishing = finite & (q_star == 0)
    if vanishing.any():
        square, slope, _ = moments(np.full(int(vanishing.sum()), 1e-12), phi)
        chi_c_minus_one[vanishing] = np.where(square > 0, 1e-12 * slope / np.maximum(square, 1e-300) - 1, chi1[vanishing] - 1)
    if chaotic.any():
        u_star[chaotic], chi_c_minus_one[chaotic] = _fixed_point_c(
            q_star[chaotic], sigma_w2[chaotic], sigma_b2[chaotic], phi
        )
    nan = np.where(finite, 1.0, math.nan)  # no fixed point, nothing to converge to
    return {
        "q_star": q_star, "c_star": (1 - u_star) * nan, "one_minus_c_star": u_star * nan, "chi1": chi1,
        "chi_c": (1 + chi_c_minus_one) * nan,
        "xi_q": _depth_scale(chi1 - 1 + sigma_w2 * curvature) * nan,  # the variance map's slope at q*
        "xi_c": np.where(critical, math.inf, _depth_scale(chi_c_minus_one)) * nan,
        "phase": np.where(~finite, "unbounded", np.where(critical, "critical", np.where(chaotic, "chaotic", "ordered"))),
    }  # fmt: skip


def fixed_point_c(sigma_w2: float, sigma_b2: float, activation: ActivationLike) -> float:
    """The stable fixed point c* of the correlation map: 1 unless chaotic; nan where q* is infinite."""
    _check(sigma_w2, sigma_b2)
    return float(_analyze_many(np.array([sigma_w2]), np.array([sigma_b2]), resolve(activation))["c_star"][0])


def _chi1(sigma_w2: np.ndarray, sigma_b2: np.ndarray, phi: Phi) -> np.ndarray:
    q_star = _fixed_point_q(sigma_w2, sigma_b2, phi)
    return sigma_w2 * moments(np.where(np.isfinite(q_star), q_star, _Q_LIMIT), phi)[1]


def critical_sigma_w2(sigma_b2: float, activation: ActivationLike) -> float:
    """The ``sigma_w2`` where chi1 crosses 1 (order to chaos) at this ``sigma_b2``; nan if not in [1e-3, 1e5].

    The first crossing on a geometric grid, refined to 1e-12: 1 for tanh without bias, 2 for
    relu at any bias. Where q* jumps instead (gelu and swish with a bias: the finite fixed
    point vanishes and the variance explodes), chi1 jumps past 1 and this is the jump.
    """
    _check(0.0, sigma_b2)
    return _critical_sigma_w2(resolve(activation), float(sigma_b2))


@functools.lru_cache(maxsize=1024)
def _critical_sigma_w2(phi: Phi, sigma_b2: float) -> float:
    def one_minus_chi1(sigma_w2: np.ndarray, *_: Any) -> np.ndarray:
        return 1 - _chi1(sigma_w2, np.full(sigma_w2.shape, sigma_b2), phi)

    found, lo, hi, f_lo, f_hi = first_crossing(_SIGMA_W2_GRID, one_minus_chi1(_SIGMA_W2_GRID)[None, :])
    return float(illinois(one_minus_chi1, lo, hi, f_lo, f_hi)[0]) if found[0] else math.nan


# --- results --------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Plain Python values for ``json``; non-finite floats become None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class TheoryResult:
    """Where ``(sigma_w2, sigma_b2)`` puts a deep network with this activation.

    ``phase``: ``ordered`` (chi1 < 1), ``chaotic`` (chi1 > 1), ``critical`` (|chi1 - 1| <= 1e-8,
    ``xi_c = inf``) or ``unbounded`` (no finite q*: ``c_star``, ``chi_c``, ``xi_q`` and ``xi_c``
    are nan, ``chi1`` is its limit as q -> inf). ``one_minus_c_star`` is ``1 - c*`` computed
    directly (accurate where ``c*`` rounds to 1, just above the critical line). Depth scales are
    ``inf`` where correlations or variances approach their limit slower than exponentially (at
    the critical line; without bias in the ordered phase, where the network tends to its
    linearization). ``to_dict`` writes inf and nan as None (standard JSON).
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float
    one_minus_c_star: float
    chi1: float
    chi_c: float
    xi_q: float
    xi_c: float
    critical_sigma_w2: float
    phase: str

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def analyze(activation: ActivationLike, sigma_w2: float, sigma_b2: float) -> TheoryResult:
    """Fixed points, slopes, depth scales and phase at ``(sigma_w2, sigma_b2)``.

    Example:
        >>> analyze("tanh", *initializer_point("glorot_uniform", 784, 64)).phase
        'chaotic'
    """
    _check(sigma_w2, sigma_b2)
    phi = resolve(activation)
    values = _analyze_many(np.array([sigma_w2]), np.array([sigma_b2]), phi)
    return TheoryResult(
        activation=phi.name, sigma_w2=float(sigma_w2), sigma_b2=float(sigma_b2),
        **{name: (str if name == "phase" else float)(column[0]) for name, column in values.items()},
        critical_sigma_w2=critical_sigma_w2(sigma_b2, activation),
    )  # fmt: skip


@dataclass(frozen=True)
class InitializerPoint:
    """``(sigma_w2, sigma_b2)`` of an initializer in a Dense layer; unpacks as that pair.

    The theory assumes zero-mean weights: a kernel's mean is counted in its second moment.
    """

    kernel: str
    bias: str
    fan_in: int
    fan_out: int
    sigma_w2: float
    sigma_b2: float

    def __iter__(self):
        return iter((self.sigma_w2, self.sigma_b2))

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def initializer_point(spec: str, fan_in: int, fan_out: int, bias_spec: str = "zeros") -> InitializerPoint:
    """``sigma_w2 = fan_in E[W^2]`` for a ``(fan_in, fan_out)`` kernel, ``sigma_b2 = E[b^2]``.

    Example:
        >>> sigma_w2, sigma_b2 = initializer_point("he_normal", 784, 64)  # 2.0, 0.0
    """
    if fan_in <= 0 or fan_out <= 0:
        raise InitlabError(f"fan_in and fan_out must be positive, got ({fan_in}, {fan_out})")
    kernel, bias = _initializers.build(spec), _initializers.build(bias_spec)
    for built in (kernel, bias):
        if built.data_dependent:  # its scale comes from the data, not from a law
            raise InitlabError(f"{built.spec} needs training data: mean-field theory takes plain initializers only")
    return InitializerPoint(
        kernel=kernel.spec, bias=bias.spec, fan_in=fan_in, fan_out=fan_out,
        sigma_w2=fan_in * kernel.law((fan_in, fan_out)).second_moment, sigma_b2=bias.law((fan_out,)).second_moment,
    )  # fmt: skip


def activation_name(activation: ActivationLike) -> str:
    """The name theory gives an activation (a registered spec's canonical name, or the function's)."""
    return resolve(activation).name


def phase_grid(
    activation: ActivationLike, sigma_w2_range: tuple[float, float] = (0.5, 4.0),
    sigma_b2_range: tuple[float, float] = (0.0, 0.3), resolution: int = 30,
) -> dict[str, Any]:  # fmt: skip
    """The phase diagram's grid, ``resolution`` points a side (tanh at 30: about 2 s).

    Returns ``activation`` (its name), the axes ``sigma_w2`` and ``sigma_b2``, and ``xi_c`` and
    ``chi1`` with a row per ``sigma_b2`` and a column per ``sigma_w2``.
    """
    if resolution < 2:
        raise InitlabError(f"resolution must be >= 2, got {resolution}")
    _check(min(sigma_w2_range), min(sigma_b2_range))
    phi = resolve(activation)
    sigma_w2, sigma_b2 = np.linspace(*sigma_w2_range, resolution), np.linspace(*sigma_b2_range, resolution)
    grid_w2, grid_b2 = np.meshgrid(sigma_w2, sigma_b2)
    values = _analyze_many(grid_w2, grid_b2, phi)
    return {
        "activation": phi.name, "sigma_w2": sigma_w2, "sigma_b2": sigma_b2,
        "xi_c": values["xi_c"].reshape(grid_w2.shape), "chi1": values["chi1"].reshape(grid_w2.shape),
    }  # fmt: skip
