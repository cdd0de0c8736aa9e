"""Which law drew a parameter: its values tested against initializers' laws (initlab.initializers).

Every registered initializer knows the law of one entry for a shape (``Initializer.law``):
``normal``, ``truncated_normal``, ``uniform``, ``constant`` or a structured one (``orthogonal``,
...). A parameter's values are tested against a law by the Kolmogorov-Smirnov statistic for the
continuous families (on at most :data:`MAX_SAMPLES` entries, drawn without replacement with a
fixed seed), by equality for constants, by its structure for orthogonal and identity
initializers (orthonormal columns times the gain, to 1e-4), and by the z-score of the standard
deviation for other structured laws (whose entries are not independent). A law *agrees* when the test's p-value is at
least :data:`P_AGREE` (for a parameter truly drawn from the law, the test fails with that chance).

Shapes are initlab's layout (Keras's and Flax's): a Dense kernel ``(in, out)``, a convolution
kernel ``(*receptive_field, in, out)``; :func:`torch_layout` converts PyTorch's ``(out, in, *rf)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from initlab.initializers import build as build_initializer
from initlab.initializers.base import Law

MAX_SAMPLES = 50_000
P_AGREE = 1e-3


@dataclass(frozen=True)
class Agreement:
    """How well a parameter's values fit one law."""

    spec: str
    law: Law
    test: str
    """``ks`` (Kolmogorov-Smirnov), ``constant``, ``structure`` (orthonormality or the identity, to
    1e-4) or ``std`` (a z-test of the standard deviation, for other structured laws)."""
    statistic: float
    p_value: float

    @property
    def agrees(self) -> bool:
        return self.p_value >= P_AGREE

    def to_dict(self) -> dict:
        return {"spec": self.spec, "distribution": self.law.distribution, "law_mean": self.law.mean,
                "law_std": self.law.std, "test": self.test, "statistic": self.statistic, "p_value": self.p_value,
                "agrees": self.agrees}  # fmt: skip


def torch_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    """PyTorch's ``(out, in, *receptive_field)`` as initlab's ``(*receptive_field, in, out)``; vectors unchanged."""
    if len(shape) < 2:
        return tuple(shape)
    return (*shape[2:], shape[1], shape[0])


def _truncated_scale(law: Law) -> float:
    """The underlying normal's sigma whose truncation to ``[low, high]`` (centered) has the law's std."""
    from scipy.optimize import brentq
    from scipy.stats import truncnorm

    def gap(sigma: float) -> float:
        return truncnorm.std((law.low - law.mean) / sigma, (law.high - law.mean) / sigma, scale=sigma) - law.std

    return float(brentq(gap, law.std * 0.5, law.std * 50))


def agreement_with(values: np.ndarray, spec: str, shape: tuple[int, ...]) -> Agreement:
    """``values`` (an array of ``shape``, initlab layout) tested against ``spec``'s law for that shape."""
    from scipy import stats

    law = build_initializer(spec).law(tuple(shape))
    flat = np.asarray(values, np.float64).ravel()
    if law.distribution == "constant":
        tolerance = 1e-6 * max(1.0, abs(law.mean))
        equal = bool(np.all(np.abs(flat - law.mean) <= tolerance))
        return Agreement(spec, law, "constant", float(np.max(np.abs(flat - law.mean))) if flat.size else 0.0,
                         1.0 if equal else 0.0)  # fmt: skip
    if law.distribution in ("orthogonal", "identity") and len(shape) >= 2:
        # Structure, not a distribution: the flattened (fan_in x out) matrix has orthonormal columns
        # (or rows, whichever are fewer) times the gain; the identity is the gain times I.
        matrix = np.asarray(values, np.float64).reshape(-1, shape[-1])
        rows, columns = matrix.shape
        gain2 = law.std**2 * max(rows, columns) if law.distribution == "orthogonal" else None
        if law.distribution == "identity":
            expected = np.eye(rows, columns) * (law.high if (law.high or 0) > 0 else law.low)
            deviation = float(np.max(np.abs(matrix - expected)))
        else:
            gram = matrix.T @ matrix if rows >= columns else matrix @ matrix.T
            deviation = float(np.max(np.abs(gram / gain2 - np.eye(len(gram))))) if gain2 > 0 else math.inf
        return Agreement(spec, law, "structure", deviation, 1.0 if deviation <= 1e-4 else 0.0)
    if flat.size > MAX_SAMPLES:
        flat = np.random.default_rng(0).choice(flat, MAX_SAMPLES, replace=False)
    if law.distribution == "normal" and law.std > 0:
        result = stats.kstest(flat, stats.norm(loc=law.mean, scale=law.std).cdf)
    elif law.distribution == "uniform" and law.high is not None and law.high > law.low:
        result = stats.kstest(flat, stats.uniform(loc=law.low, scale=law.high - law.low).cdf)
    elif law.distribution == "truncated_normal" and law.low is not None and law.std > 0:
        sigma = _truncated_scale(law)
        dist = stats.truncnorm((law.low - law.mean) / sigma, (law.high - law.mean) / sigma, loc=law.mean, scale=sigma)
        result = stats.kstest(flat, dist.cdf)
    else:  # structured laws (orthogonal, identity...): the standard deviation, as a z-test
        n = max(flat.size, 2)
        std = float(flat.std())
        se = law.std / math.sqrt(2 * n) if law.std > 0 else 1e-12
        z = (std - law.std) / se
        return Agreement(spec, law, "std", float(z), float(2 * stats.norm.sf(abs(z))))
    return Agreement(spec, law, "ks", float(result.statistic), float(result.pvalue))


def best_law(values: np.ndarray, shape: tuple[int, ...], candidates: list[str]) -> Agreement | None:
    """The candidate law that fits ``values`` best (the highest p-value among those that agree).

    When none does: a constant array is identified as ``constant(value=...)``; otherwise ``None``.
    """
    flat = np.asarray(values, np.float64).ravel()
    if flat.size and np.all(flat == flat[0]):
        return agreement_with(flat, f"constant(value={float(flat[0])!r})", shape)
    tested = []
    for spec in candidates:
        try:
            tested.append(agreement_with(values, spec, shape))
        except Exception:  # noqa: BLE001  (a candidate undefined for this shape is simply not a candidate)
            continue
    agreeing = [a for a in tested if a.agrees]
    return max(agreeing, key=lambda a: a.p_value) if agreeing else None


def fitted_family(values: np.ndarray) -> dict | None:
    """Whether ``values`` look normal or uniform with their own mean and spread (no named initializer
    needed): ``{"family", "mean", "std", "p_value"}`` of the better fit, or ``None`` when neither fits.
    The parameters are estimated from the same values, so the p-value is conservative (Lilliefors)."""
    from scipy import stats

    flat = np.asarray(values, np.float64).ravel()
    if flat.size < 8 or flat.std() == 0:
        return None
    if flat.size > MAX_SAMPLES:
        flat = np.random.default_rng(0).choice(flat, MAX_SAMPLES, replace=False)
    mean, std = float(flat.mean()), float(flat.std())
    fits = {
        "normal": stats.kstest(flat, stats.norm(loc=mean, scale=std).cdf).pvalue,
        "uniform": stats.kstest(flat, stats.uniform(loc=flat.min(), scale=flat.max() - flat.min()).cdf).pvalue,
    }
    family = max(fits, key=fits.get)
    return {"family": family, "mean": mean, "std": std, "p_value": float(fits[family])} if fits[family] >= P_AGREE else None


__all__ = ["Agreement", "MAX_SAMPLES", "P_AGREE", "best_law", "fitted_family", "agreement_with", "torch_layout"]
