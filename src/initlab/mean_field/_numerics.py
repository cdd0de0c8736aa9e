"""The numerics under :mod:`initlab.mean_field.theory`: Gaussian quadrature, activations compiled in float64, root finding.

Quadrature: Gauss-Legendre in float64, split at 0 (relu's kink; where phi(sqrt(q) z) is steepest
for large q), panels graded towards 0; in 2-D, polar sectors between the rays u1 = 0 and
u2 = 0 (accuracy measured in theory's docstring). An activation becomes a :class:`Phi`: its
Gaussian expectations as jitted float64 functions of q (and c), phi' and phi'' by forward-mode
derivatives. Root finders work on whole arrays of brackets at once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from numpy.polynomial.legendre import leggauss

from initlab._lazy import jax, jnp
from initlab.errors import InitlabError
from initlab.nn import activations as _activations

ActivationLike = Union[str, "_activations.Activation", Callable[[Any], Any]]

_RADIUS = 12.0  # the Gaussian beyond 12 standard deviations weighs < 1e-31
_Q_FLOOR = 1e-200  # q = 0 is evaluated as q -> 0+, so that kinks give one-sided derivatives


# --- quadrature rules ---------------------------------------------------------------------


@functools.cache
def _graded(points: int, panels: int, ratio: float, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, length], panels shrinking by ``ratio`` towards 0."""
    edges = np.concatenate([[0.0], length * ratio ** -np.arange(panels - 1, -1, -1.0)])
    t, w = leggauss(points)
    a, b = edges[:-1, None], edges[1:, None]
    return ((a + b) / 2 + (b - a) / 2 * t).ravel(), ((b - a) / 2 * w).ravel()


@functools.cache
def _normal_rule() -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[f(z)], z ~ N(0, 1): 192 on each half-line."""
    r, w = _graded(24, 8, 4.0, _RADIUS)
    w = w * np.exp(-r * r / 2) / math.sqrt(2 * math.pi)
    return np.concatenate([-r[::-1], r]), np.concatenate([w[::-1], w])


def _bivariate_rule(c: Any, angle: Any = None, radii: tuple[int, int] = (16, 7), angles: tuple[int, int] = (8, 3)) -> tuple[Any, Any, Any]:
    """Nodes ``z1, z2`` and weights for E[f(z1, z2)], z iid N(0, 1), for one (traced) correlation c.

    Polar: 4 angular sectors between the rays ``z1 = 0`` and ``c z1 + sqrt(1 - c^2) z2 = 0``,
    each graded towards both ends (48 angles), times 112 radii graded towards 0. ``angle``
    (``arccos(c)``, when the caller has it more accurately than from ``c``) places the rays.
    """
    r, w_r = _graded(*radii, 4.0, _RADIUS)
    w_r = w_r * r * np.exp(-r * r / 2) / (2 * math.pi)
    s, w_s = _graded(*angles, 4.0, 1.0)
    angle = jnp.arccos(jnp.clip(c, -1.0, 1.0)) if angle is None else angle
    rays = angle + math.pi * jnp.array([0.5, 1.5])
    breaks = jnp.sort(jnp.mod(jnp.concatenate([jnp.array([0.5, 1.5]) * math.pi, rays]), 2 * math.pi))
    half = (jnp.diff(jnp.append(breaks, breaks[0] + 2 * math.pi)) / 2)[:, None]
    theta = jnp.concatenate([breaks[:, None] + half * s, breaks[:, None] + 2 * half - half * s], 1).reshape(-1, 1)
    w_theta = jnp.concatenate([half * w_s, half * w_s], 1).reshape(-1, 1)
    return (jnp.cos(theta) * r).ravel(), (jnp.sin(theta) * r).ravel(), (w_theta * w_r).ravel()


# --- the activation, compiled in float64 --------------------------------------------------


def _x64() -> Any:
    enable = getattr(jax, "enable_x64", None)
    if enable is not None:
        return enable(True)
    from jax.experimental import enable_x64  # JAX before 0.7

    return enable_x64()


# The gaps (1 - c in, 1 - c* out) need a finer rule than the moments: near the critical line
# the fixed point's relative error is the integral's divided by 1 - chi_c. These give 2e-11
# relative in 1 - c* for tanh at 5e-5 above critical (sigma_b2 = 0.05), against 7e-5 with
# the moments' rule (measured against a converged 160-point Gauss-Hermite product rule).
GAP_RADII, GAP_ANGLES = (24, 8), (16, 4)


@dataclass(frozen=True)
class Phi:
    """An activation compiled into the Gaussian expectations the theory needs."""

    name: str
    at_zero: float
    single: Callable[[Any], Any]  # q -> E[phi^2], E[phi'^2], E[phi phi''] at phi(sqrt(q) z)
    pair: Callable[[Any, Any], Any]  # (q, c) -> E[phi(u1) phi(u2)], E[phi'(u1) phi'(u2)]
    gaps: Callable[[Any, Any], Any]  # (q, 1 - c) -> E[(phi(u1) - phi(u2))^2] / 2, the same of phi'


@functools.lru_cache(maxsize=64)
def _compile(name: str, fn: Callable[[Any], Any]) -> Phi:
    with _x64():
        probe = jnp.array([0.3, -1.2])
        if not np.allclose(fn(probe), [fn(probe[:1])[0], fn(probe[1:])[0]]):
            raise InitlabError(f"activation {name} is not elementwise; mean-field theory needs one that is")
        at_zero = float(fn(jnp.zeros(1))[0])

    def first(x):
        return jax.jvp(fn, (x,), (jnp.ones_like(x),))

    def single(q):
        z, w = _normal_rule()
        x = jnp.sqrt(jnp.maximum(q, _Q_FLOOR))[:, None] * z
        (value, d1), (_, d2) = jax.jvp(first, (x,), (jnp.ones_like(x),))
        return (value * value) @ w, (d1 * d1) @ w, (value * d2) @ w

    def pair(q, c):
        z1, z2, w = _bivariate_rule(c)
        scale = jnp.sqrt(jnp.maximum(q, _Q_FLOOR))
        (v1, d1), (v2, d2) = first(scale * z1), first(scale * (c * z1 + jnp.sqrt(jnp.maximum(1 - c * c, 0.0)) * z2))
        return (v1 * v2) @ w, (d1 * d2) @ w

    def gaps(q, u):
        # As functions of u = 1 - c, without forming 1 - c: E[phi^2] - E[phi(u1) phi(u2)] is
        # half the mean squared difference, whose terms carry no cancellation as c -> 1.
        angle = 2 * jnp.arcsin(jnp.sqrt(jnp.clip(u, 0.0, 2.0) / 2))
        z1, z2, w = _bivariate_rule(1 - u, angle, GAP_RADII, GAP_ANGLES)
        scale = jnp.sqrt(jnp.maximum(q, _Q_FLOOR))
        second = (1 - u) * z1 + jnp.sqrt(jnp.maximum(u * (2 - u), 0.0)) * z2
        (v1, d1), (v2, d2) = first(scale * z1), first(scale * second)
        return ((v1 - v2) ** 2) @ w / 2, ((d1 - d2) ** 2) @ w / 2

    return Phi(name, at_zero, jax.jit(single), jax.jit(jax.vmap(pair)), jax.jit(jax.vmap(gaps)))


@functools.lru_cache(maxsize=64)
def _from_spec(spec: str) -> Phi:
    built = _activations.build(spec)
    return _compile(built.spec, built.fn)


def resolve(activation: ActivationLike) -> Phi:
    """A spec (``"tanh"``), an :class:`Activation`, or any JAX-traceable elementwise callable."""
    if isinstance(activation, str):
        return _from_spec(activation)
    if isinstance(activation, _activations.Activation):
        return _compile(activation.spec, activation.fn)
    if callable(activation):
        return _compile(getattr(activation, "__name__", repr(activation)), activation)
    raise InitlabError(f"activation must be a spec, an Activation or a callable, got {activation!r}")


def _blocks(function: Callable, size: int, *columns: np.ndarray) -> list[np.ndarray]:
    """``function`` over equal-length ``columns`` in padded blocks of ``size``: one compilation each."""
    length = columns[0].size
    padded = [np.resize(column if length else np.ones(1), -(-max(length, 1) // size) * size) for column in columns]
    with _x64():
        pieces = [function(*(column[i : i + size] for column in padded)) for i in range(0, padded[0].size, size)]
        return [np.concatenate([np.asarray(piece[k]) for piece in pieces])[:length] for k in range(len(pieces[0]))]


def moments(q: Any, phi: Phi) -> tuple[np.ndarray, ...]:
    """E[phi^2], E[phi'^2] and E[phi phi''] at ``phi(sqrt(q) z)``, each shaped like ``q``."""
    q = np.asarray(q, float)
    return tuple(column.reshape(q.shape) for column in _blocks(phi.single, 32, q.ravel()))


def pair_gaps(q: Any, u: Any, phi: Phi) -> tuple[np.ndarray, ...]:
    """E[(phi(u1) - phi(u2))^2] / 2 and the same of phi', u of variance q and correlation ``1 - u``."""
    q, u = np.broadcast_arrays(np.asarray(q, float), np.asarray(u, float))
    return tuple(column.reshape(q.shape) for column in _blocks(phi.gaps, 16, q.ravel(), u.ravel()))


def pair_moments(q: Any, c: Any, phi: Phi) -> tuple[np.ndarray, ...]:
    """E[phi(u1) phi(u2)] and E[phi'(u1) phi'(u2)], u of variance q and correlation c."""
    q, c = np.broadcast_arrays(np.asarray(q, float), np.asarray(c, float))
    return tuple(column.reshape(q.shape) for column in _blocks(phi.pair, 16, q.ravel(), c.ravel()))


# --- root finding, vectorised -------------------------------------------------------------


def first_crossing(grid: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row of ``values`` (on ``grid``), the first bracket ``(lo, hi]`` where it turns <= 0."""
    below = values <= 0
    k, rows = below.argmax(1), np.arange(len(values))
    lo, f_lo = np.where(k > 0, grid[k - 1], 0.0), np.where(k > 0, values[rows, k - 1], math.nan)
    return below.any(1), lo, grid[k], f_lo, values[rows, k]


def newton(fn: Callable, lo: np.ndarray, hi: np.ndarray, x: np.ndarray, atol: float = 0.0) -> np.ndarray:
    """Safeguarded Newton: ``fn(x, index) -> (f, f')`` with f >= 0 at lo, f < 0 at hi.

    A step leaving the bracket becomes a bisection. An entry stops when its step is below
    1e-12 relative, or below 1e-6 and no longer shrinking (round-off in an ill-conditioned f).
    """
    lo, hi, x = (np.array(a, float) for a in np.broadcast_arrays(lo, hi, x))
    last_step, active = np.full(x.shape, math.inf), np.arange(x.size)
    for _ in range(100):
        if active.size == 0:
            break
        f, df = fn(x[active], active)
        old = x[active]
        lo[active], hi[active] = np.where(f >= 0, old, lo[active]), np.where(f < 0, old, hi[active])
        with np.errstate(all="ignore"):
            new = old - f / df
        new = np.where(~np.isfinite(new) | (new < lo[active]) | (new > hi[active]), (lo[active] + hi[active]) / 2, new)
        step, scale = np.abs(new - old), np.abs(new)
        x[active] = new
        stalled = (step >= last_step[active]) & (step < 1e-6 * scale + atol)
        last_step[active] = step
        active = active[(step > 1e-12 * scale + atol) & ~stalled & (f != 0)]
    return x


def illinois(fn: Callable, lo: np.ndarray, hi: np.ndarray, f_lo: np.ndarray, f_hi: np.ndarray) -> np.ndarray:
    """Regula falsi (Illinois) for ``fn(x, index) -> f``, f >= 0 at lo, f < 0 at hi (nan: unknown).

    As in Brent's method, a step is at least the tolerance and the bracket halves every two
    steps (else: bisection). An entry stops when its bracket is below 1e-12 relative.
    """
    lo, hi, f_lo, f_hi = (np.array(a, float) for a in (lo, hi, f_lo, f_hi))
    x, kept, two_ago = (lo + hi) / 2, np.zeros(lo.shape, int), np.full(lo.shape, math.inf)
    active = np.arange(lo.size)
    for _ in range(200):
        if active.size == 0:
            break
        a, b, fa, fb = lo[active], hi[active], f_lo[active], f_hi[active]
        tolerance = 1e-12 * np.abs(a + b) / 2
        with np.errstate(all="ignore"):
            new = np.clip((a * fb - b * fa) / (fb - fa), a + tolerance, b - tolerance)
        new = np.where(np.isfinite(new) & (b - a <= two_ago[active] / 2), new, (a + b) / 2)
        two_ago[active], x[active], f = b - a, new, fn(new, active)
        positive = f >= 0
        f_hi[active] /= np.where(positive & (kept[active] == 1), 2.0, 1.0)  # unstick the end that stays
        f_lo[active] /= np.where(~positive & (kept[active] == -1), 2.0, 1.0)
        kept[active] = np.where(positive, 1, -1)
        lo[active], f_lo[active] = np.where(positive, new, a), np.where(positive, f, f_lo[active])
        hi[active], f_hi[active] = np.where(positive, b, new), np.where(positive, f_hi[active], f)
        active = active[(hi[active] - lo[active] > 2 * tolerance) & (f != 0)]
    return x
