"""Initializers: one shared suite over the whole registry, closed forms, and Keras itself.

The shared suite iterates ``initializers`` so that a newly registered initializer is covered
without editing this file: shape, dtype, determinism by key, and the empirical mean and
variance against the entry's closed-form :class:`Law` within a few standard errors.
"""

from __future__ import annotations

import inspect
import math
import os

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.initializers import build, compute_fans, initializers

os.environ.setdefault("KERAS_BACKEND", "jax")

# Keras's constant: the standard deviation of a standard normal truncated to [-2, 2].
TRUNCATED_STD = 0.87962566103423978

ENTRY_NAMES = [entry.name for entry in initializers]
SHAPES = [(784, 64), (64, 10), (300, 500), (50,)]
# Structured laws: the entries are not independent draws, so they get their own tests.
STRUCTURED = {"orthogonal", "identity", "hadamard"}
# Kernels read as (d_in, d_out) maps after their first in_axes axes: a vector has no output axis.
PROJECTIONS = {"flax.dense_general_default", "xavier_normal_projection"}
N_SE = 5.0  # tolerance of the statistical checks, in standard errors


def _law_at(name, shape):
    """The law of ``name``'s entries at ``shape``, or ``None`` where it refuses that shape.

    Laws are plain Python (no JAX), so the cases below are computed at collection time from
    the registry: a newly registered initializer joins every test that applies to it.
    """
    try:
        return build(name).law(shape)
    except InitlabError:
        return None


def _cases(keep):
    return [
        pytest.param(name, shape, id=f"{name}-{'x'.join(map(str, shape))}")
        for name in ENTRY_NAMES
        for shape in SHAPES
        if keep(_law_at(name, shape))
    ]


SUPPORTED = _cases(lambda law: law is not None)
REFUSED = _cases(lambda law: law is None)
STATISTICAL = _cases(lambda law: law is not None and law.distribution not in STRUCTURED)
BOUNDED = _cases(lambda law: law is not None and law.low is not None)


def _is_deterministic(law) -> bool:
    return law.std == 0.0 or law.distribution in ("identity", "hadamard")


def assert_mean_and_variance(sample, mean, variance, label=""):
    """The sample's mean and variance agree with ``mean`` and ``variance`` within N_SE standard errors."""
    x = np.asarray(sample, dtype=np.float64).ravel()
    n = x.size
    if variance == 0.0:
        np.testing.assert_array_equal(x, np.full_like(x, mean), err_msg=label)
        return
    se_mean = math.sqrt(variance / n)
    assert abs(x.mean() - mean) <= N_SE * se_mean, f"{label}: mean {x.mean()} vs {mean} (SE {se_mean})"
    squared = (x - mean) ** 2
    se_variance = squared.std() / math.sqrt(n)
    assert abs(squared.mean() - variance) <= N_SE * se_variance, (
        f"{label}: variance {squared.mean()} vs {variance} (SE {se_variance})"
    )


def assert_within(sample, low, high, label=""):
    """Every entry lies in [low, high], allowing float32 rounding of the bounds."""
    x = np.asarray(sample, dtype=np.float64)
    slack = 1e-6 * max(abs(low), abs(high), 1e-30)
    assert x.min() >= low - slack, f"{label}: min {x.min()} below {low}"
    assert x.max() <= high + slack, f"{label}: max {x.max()} above {high}"


# ---------------------------------------------------------------------------------------------
# The shared suite: every registered initializer, several shapes
# ---------------------------------------------------------------------------------------------


def test_registry_is_not_empty_and_names_are_unique():
    assert len(ENTRY_NAMES) >= 15
    assert len(set(ENTRY_NAMES)) == len(ENTRY_NAMES)


@pytest.mark.parametrize("name", ENTRY_NAMES)
def test_every_initializer_applies_to_dense_kernels(name):
    # Keeps the case lists above honest: no entry may drop out of the suite by refusing shapes.
    for shape in [(784, 64), (64, 10), (300, 500)]:
        assert _law_at(name, shape) is not None


@pytest.mark.parametrize(("name", "shape"), REFUSED)
def test_only_structured_laws_refuse_a_shape_and_then_raise(name, shape, getkey):
    assert build(name).law((64, 10)).distribution in STRUCTURED or (name in PROJECTIONS and len(shape) == 1)
    with pytest.raises(InitlabError):
        build(name)(getkey(), shape)


@pytest.mark.parametrize(("name", "shape"), SUPPORTED)
def test_shape_and_default_dtype(name, shape, getkey):
    weights = build(name)(getkey(), shape)
    assert weights.shape == shape
    assert weights.dtype == np.float32
    assert np.isfinite(np.asarray(weights)).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ENTRY_NAMES)
def test_requested_dtype(name, dtype, getkey):
    import jax.numpy as jnp

    shape = (64, 10)
    law = _law_at(name, shape)
    weights = build(name)(getkey(), shape, getattr(jnp, dtype))
    assert weights.shape == shape
    assert weights.dtype == getattr(jnp, dtype)
    as_float = np.asarray(weights.astype(jnp.float32))
    assert np.isfinite(as_float).all()
    if law.low is not None:
        # Low precision rounds the bounds outwards by at most one unit in the last place.
        slack = 1e-2 * max(abs(law.low), abs(law.high))
        assert as_float.min() >= law.low - slack and as_float.max() <= law.high + slack


@pytest.mark.parametrize(("name", "shape"), SUPPORTED)
def test_same_key_same_array_different_key_different_array(name, shape, getkey):
    init, law = build(name), _law_at(name, shape)
    key, other = getkey(), getkey()
    first = np.asarray(init(key, shape))
    np.testing.assert_array_equal(first, np.asarray(init(key, shape)))
    different = np.asarray(init(other, shape))
    if _is_deterministic(law):
        np.testing.assert_array_equal(first, different)
    else:
        assert not np.array_equal(first, different)


@pytest.mark.parametrize(("name", "shape"), STATISTICAL)
def test_empirical_mean_and_variance_match_the_law(name, shape, getkey):
    law = _law_at(name, shape)
    assert law.variance == pytest.approx(law.std**2)
    assert_mean_and_variance(build(name)(getkey(), shape), law.mean, law.variance, f"{name} {shape}")


@pytest.mark.parametrize(("name", "shape"), BOUNDED)
def test_bounds_of_the_law_are_respected(name, shape, getkey):
    law = _law_at(name, shape)
    assert law.low <= law.mean <= law.high
    assert_within(build(name)(getkey(), shape), law.low, law.high, f"{name} {shape}")


@pytest.mark.parametrize("name", ENTRY_NAMES)
def test_non_positive_dimensions_raise(name, getkey):
    init = build(name)
    for shape in [(0, 10), (10, -1)]:
        with pytest.raises(InitlabError):
            init(getkey(), shape)


@pytest.mark.parametrize("name", ENTRY_NAMES)
def test_built_spec_is_the_canonical_name(name):
    assert build(name).spec == name
    assert initializers.canonical(name) == name


# ---------------------------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "fans"),
    [((), (1, 1)), ((5,), (5, 5)), ((3, 4), (3, 4)), ((3, 3, 4, 8), (36, 72)), ((2, 5, 7), (10, 14))],
)
def test_compute_fans_as_keras(shape, fans):
    assert compute_fans(shape) == fans


def test_keras_default_random_normal():
    law = build("random_normal").law((784, 64))
    assert (law.distribution, law.mean, law.std, law.low, law.high) == ("normal", 0.0, 0.05, None, None)
    assert build("RandomNormal(mean=1.0, stddev=2.0)").law((3, 4)).mean == 1.0


def test_keras_default_random_uniform():
    law = build("random_uniform").law((784, 64))
    assert (law.low, law.high, law.mean) == (-0.05, 0.05, 0.0)
    assert law.std == pytest.approx(0.1 / math.sqrt(12), rel=1e-12)


def test_keras_default_truncated_normal(getkey):
    law = build("truncated_normal").law((784, 64))
    assert law.mean == 0.0
    assert law.std == pytest.approx(0.05 * TRUNCATED_STD, rel=1e-12)
    assert (law.low, law.high) == pytest.approx((-0.1, 0.1), rel=1e-12)
    # The entries' std is 0.05 * 0.8796 (no correction), clearly not 0.05.
    weights = build("truncated_normal")(getkey(), (300, 500))
    assert_mean_and_variance(weights, 0.0, (0.05 * TRUNCATED_STD) ** 2, "truncated_normal")
    assert_within(weights, -0.1, 0.1)


def test_truncated_normal_with_mean_and_stddev(getkey):
    weights = build("TruncatedNormal(mean=1.0, stddev=0.5)")(getkey(), (300, 500))
    assert_mean_and_variance(weights, 1.0, (0.5 * TRUNCATED_STD) ** 2, "truncated_normal")
    assert_within(weights, 0.0, 2.0)


def _fan(shape, mode):
    fan_in, fan_out = compute_fans(shape)
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


VS_MODES = ["fan_in", "fan_out", "fan_avg"]
VS_DISTRIBUTIONS = ["truncated_normal", "untruncated_normal", "uniform"]


@pytest.mark.parametrize("shape", [(300, 500), (50,), (3, 3, 16, 32)], ids=["300x500", "50", "conv"])
@pytest.mark.parametrize("distribution", VS_DISTRIBUTIONS)
@pytest.mark.parametrize("mode", VS_MODES)
def test_variance_scaling_closed_form(mode, distribution, shape, getkey):
    scale = 2.0
    fan = _fan(shape, mode)
    variance = scale / fan
    init = build(f"VarianceScaling(scale={scale}, mode='{mode}', distribution='{distribution}')")
    law = init.law(shape)
    assert law.mean == 0.0
    assert law.variance == pytest.approx(variance, rel=1e-12)
    if distribution == "uniform":
        limit = math.sqrt(3 * scale / fan)
        assert (law.low, law.high) == pytest.approx((-limit, limit), rel=1e-12)
    elif distribution == "truncated_normal":
        stddev = math.sqrt(scale / fan) / TRUNCATED_STD
        assert (law.low, law.high) == pytest.approx((-2 * stddev, 2 * stddev), rel=1e-12)
    else:
        assert law.low is None and law.high is None
    if shape in SHAPES:  # sampling a new shape costs a compilation; its law is checked above
        weights = init(getkey(), shape)
        assert_mean_and_variance(weights, 0.0, variance, f"{mode} {distribution}")
        if law.low is not None:
            assert_within(weights, law.low, law.high)


@pytest.mark.parametrize(
    ("name", "scale", "mode", "distribution", "variance"),
    [
        ("glorot_uniform", 1.0, "fan_avg", "uniform", lambda fi, fo: 2 / (fi + fo)),
        ("glorot_normal", 1.0, "fan_avg", "truncated_normal", lambda fi, fo: 2 / (fi + fo)),
        ("he_uniform", 2.0, "fan_in", "uniform", lambda fi, fo: 2 / fi),
        ("he_normal", 2.0, "fan_in", "truncated_normal", lambda fi, fo: 2 / fi),
        ("lecun_uniform", 1.0, "fan_in", "uniform", lambda fi, fo: 1 / fi),
        ("lecun_normal", 1.0, "fan_in", "truncated_normal", lambda fi, fo: 1 / fi),
    ],
)
def test_glorot_he_lecun_are_variance_scaling_specialised(name, scale, mode, distribution, variance, getkey):
    special = build(name)
    general = build(f"variance_scaling(scale={scale}, mode='{mode}', distribution='{distribution}')")
    for shape in [(784, 64), (64, 10), (3, 3, 4, 8)]:
        fan_in, fan_out = compute_fans(shape)
        law = special.law(shape)
        assert law == general.law(shape)
        assert law.variance == pytest.approx(variance(fan_in, fan_out), rel=1e-12)
        if distribution == "uniform":
            limit = math.sqrt(3 * variance(fan_in, fan_out))
            assert law.high == pytest.approx(limit, rel=1e-12)  # e.g. sqrt(6 / (fan_in + fan_out))
    key = getkey()
    shape = (784, 64)
    np.testing.assert_array_equal(np.asarray(special(key, shape)), np.asarray(general(key, shape)))


def test_glorot_uniform_limit_for_a_dense_kernel():
    assert build("glorot_uniform").law((784, 64)).high == pytest.approx(math.sqrt(6 / (784 + 64)), rel=1e-12)
    assert build("he_uniform").law((784, 64)).high == pytest.approx(math.sqrt(6 / 784), rel=1e-12)
    assert build("lecun_uniform").law((784, 64)).high == pytest.approx(math.sqrt(3 / 784), rel=1e-12)


def test_constant_zeros_ones(getkey):
    np.testing.assert_array_equal(np.asarray(build("zeros")(getkey(), (3, 4))), np.zeros((3, 4)))
    np.testing.assert_array_equal(np.asarray(build("one")(getkey(), (3, 4))), np.ones((3, 4)))
    np.testing.assert_array_equal(np.asarray(build("Constant(-2.5)")(getkey(), (5,))), np.full(5, -2.5))


# ---------------------------------------------------------------------------------------------
# Structured laws
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gain", [1.0, 2.0])
@pytest.mark.parametrize("shape", [(784, 64), (64, 10), (10, 64), (300, 500), (3, 3, 4, 8)])
def test_orthogonal_columns_or_rows_are_orthonormal_times_gain(shape, gain, getkey):
    init = build(f"orthogonal(gain={gain})")
    weights = np.asarray(init(getkey(), shape), dtype=np.float64)
    matrix = weights.reshape(-1, shape[-1])
    rows, columns = matrix.shape
    gram = matrix.T @ matrix if rows >= columns else matrix @ matrix.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, columns)), rtol=0, atol=1e-5 * gain**2)
    # Entry-level law: mean 0 and mean square gain^2 / max(rows, columns).
    law = init.law(shape)
    assert law.std == pytest.approx(gain / math.sqrt(max(rows, columns)), rel=1e-12)
    assert np.mean(matrix**2) == pytest.approx(law.second_moment, rel=1e-4)
    assert_within(weights, -gain, gain)


def test_orthogonal_is_not_always_the_same_matrix_up_to_sign(getkey):
    first = np.asarray(build("orthogonal")(getkey(), (64, 10)))
    second = np.asarray(build("orthogonal")(getkey(), (64, 10)))
    assert not np.allclose(np.abs(first), np.abs(second))


@pytest.mark.parametrize("gain", [1.0, 0.5, -2.0])
@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (64, 10)])
def test_identity_is_gain_times_eye(shape, gain, getkey):
    init = build(f"identity(gain={gain})")
    expected = gain * np.eye(*shape)
    np.testing.assert_array_equal(np.asarray(init(getkey(), shape)), expected.astype(np.float32))
    law = init.law(shape)
    assert law.mean == pytest.approx(expected.mean(), rel=1e-12)
    assert law.std == pytest.approx(expected.std(), rel=1e-9)
    assert (law.low, law.high) == (min(0.0, gain), max(0.0, gain))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_identity_needs_a_matrix_shape(shape, getkey):
    with pytest.raises(InitlabError, match="identity"):
        build("identity")(getkey(), shape)


def test_orthogonal_needs_two_dimensions(getkey):
    with pytest.raises(InitlabError, match="orthogonal"):
        build("orthogonal")(getkey(), (5,))


# ---------------------------------------------------------------------------------------------
# Bad hyperparameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("RandomNormal(stddev=-1.0)", "stddev must be >= 0"),
        ("TruncatedNormal(stddev=-0.1)", "stddev must be >= 0"),
        ("RandomUniform(minval=1.0, maxval=-1.0)", "must be <="),
        ("VarianceScaling(scale=0.0)", "scale must be > 0"),
        ("VarianceScaling(scale=-2)", "scale must be > 0"),
        ("VarianceScaling(mode='fan_inn')", "did you mean 'fan_in'"),
        ("VarianceScaling(mode='avg')", "unknown variance_scaling mode 'avg'"),
        ("VarianceScaling(distribution='uniformm')", "did you mean 'uniform'"),
        ("VarianceScaling(distribution='truncated')", "unknown variance_scaling distribution"),
        ("RandomNormal(stdev=1.0)", "did you mean 'stddev'"),
        ("RandomNormal(stddev='wide')", "must be float"),
    ],
)
def test_bad_hyperparameters_raise(spec, message):
    with pytest.raises(InitlabError, match=message.replace("(", r"\(")) as raised:
        build(spec)
    assert "\n" not in str(raised.value)


def test_variance_scaling_accepts_keras_normal_alias():
    normal = build("VarianceScaling(distribution='normal')").law((784, 64))
    assert normal == build("VarianceScaling(distribution='truncated_normal')").law((784, 64))


# ---------------------------------------------------------------------------------------------
# Against Keras itself
# ---------------------------------------------------------------------------------------------

KERAS_SHAPE = (784, 64)
# Keras's own names only: the torch.* and flax.* families and initlab's own entries (lsuv,
# standard_uniform) have no Keras class and are checked in their own test files.
KERAS_SPECS = (
    [
        name for name in ENTRY_NAMES
        if "." not in name and name not in ("lsuv", "standard_uniform")
        and not initializers.entry(name).builder.__module__.endswith(".deep")  # tests/initializers/test_deep.py
    ]
    + [
        "random_normal(mean=0.5, stddev=2.0)",
        "random_uniform(minval=-1.0, maxval=3.0)",
        "truncated_normal(mean=1.0, stddev=0.5)",
        "constant(value=3.0)",
        "orthogonal(gain=2.0)",
        "identity(gain=0.5)",
    ]
    + [f"variance_scaling(scale=2.0, mode='{m}', distribution='{d}')" for m in VS_MODES for d in VS_DISTRIBUTIONS]
)


def _keras_initializer(keras, spec, seed):
    """The Keras initializer class named like the entry (random_normal -> RandomNormal).

    Only the arguments that the spec changes from initlab's defaults are passed, so Keras's own
    defaults meet initlab's: that checks the defaults as well as the semantics.
    """
    entry, kwargs = initializers.resolve(spec)
    kwargs = {k: v for k, v in kwargs.items() if v != entry.defaults.get(k)}
    class_name = "".join(part.capitalize() for part in entry.name.split("_"))
    cls = getattr(keras.initializers, class_name, None)
    if cls is None:
        pytest.skip(f"keras.initializers has no {class_name} to compare with")
    if "seed" in inspect.signature(cls).parameters:
        kwargs = {**kwargs, "seed": seed}
    return cls(**kwargs)


def _two_sample_close(ours, theirs, label):
    """Means and variances of two independent samples agree within N_SE standard errors."""
    n = ours.size
    se_mean = math.sqrt((ours.var() + theirs.var()) / n)
    assert abs(ours.mean() - theirs.mean()) <= N_SE * se_mean + 1e-12, f"{label}: means differ"
    ours_sq, theirs_sq = (ours - ours.mean()) ** 2, (theirs - theirs.mean()) ** 2
    se_var = math.sqrt((ours_sq.var() + theirs_sq.var()) / n)
    assert abs(ours_sq.mean() - theirs_sq.mean()) <= N_SE * se_var + 1e-12, f"{label}: variances differ"


@pytest.mark.parametrize("spec", KERAS_SPECS)
def test_matches_keras(spec, keras, getkey):
    ours_init = build(spec)
    law = ours_init.law(KERAS_SHAPE)
    theirs = np.asarray(_keras_initializer(keras, spec, seed=1234)(shape=KERAS_SHAPE), dtype=np.float64)
    ours = np.asarray(ours_init(getkey(), KERAS_SHAPE), dtype=np.float64)
    assert theirs.shape == ours.shape == KERAS_SHAPE
    if _is_deterministic(law):
        np.testing.assert_array_equal(ours, theirs)
        return
    _two_sample_close(ours, theirs, spec)
    std = ours.std()
    if law.distribution == "orthogonal":
        gain = law.high
        np.testing.assert_allclose(theirs.T @ theirs, gain**2 * np.eye(KERAS_SHAPE[1]), atol=1e-5 * gain**2)
        np.testing.assert_allclose(ours.T @ ours, gain**2 * np.eye(KERAS_SHAPE[1]), atol=1e-5 * gain**2)
    elif law.low is not None:
        # Bounded laws: both reach (nearly) the same bounds, which are the law's.
        tolerance = 0.01 * std
        for sample in (ours, theirs):
            assert_within(sample, law.low, law.high, spec)
            assert sample.min() - law.low <= tolerance, f"{spec}: min {sample.min()} far from {law.low}"
            assert law.high - sample.max() <= tolerance, f"{spec}: max {sample.max()} far from {law.high}"
    else:
        # Normal laws: extremes of 50k draws have a spread of about 0.3 std each.
        assert abs(ours.min() - theirs.min()) <= 2 * std, f"{spec}: minima differ"
        assert abs(ours.max() - theirs.max()) <= 2 * std, f"{spec}: maxima differ"
