"""torch.* and flax.* initializers: PyTorch's and Flax's semantics on initlab's (in, out) layout.

PyTorch's Linear weight is (out, in) with fan_in = size(1); initlab kernels are (in, out), so a
torch.* initializer must compute fan_in = shape[0]. Every shape below is asymmetric, so a
swapped fan fails. The formulas are written out in EXPECTED; samples are checked against them
within N_SE standard errors, and, where torch is installed, against ``torch.nn.init`` applied to
a torch tensor of shape (out, in), transposed. Flax's initializers are ``jax.nn.initializers``,
which is installed with initlab, so the flax.* entries are checked against it key for key.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.initializers import build, initializers
from initlab.initializers import flax as flax_initializers
from initlab.initializers import torch as torch_initializers  # noqa: F401 (registers the torch.* and flax.* entries)
from initlab.initializers.table import COLUMNS, compare_table, framework_of
from initlab.initializers.torch import NONLINEARITIES, bind_fan_in, calculate_gain, torch_fans, truncated_normal_moments

SHAPES = [(784, 64), (64, 10), (300, 500)]
N_SE = 5.0
TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]
SQRT3 = math.sqrt(3.0)


def uniform_law(low, high):
    return ("uniform", (low + high) / 2, (high - low) / math.sqrt(12), low, high)


def symmetric_uniform(bound):
    return uniform_law(-bound, bound)


def normal_law(mean, std):
    return ("normal", mean, std, None, None)


def constant_law(value):
    return ("constant", value, 0.0, value, value)


# spec -> (fan_in, fan_out) -> (distribution, mean, std, low, high), as torch.nn.init defines them.
EXPECTED = {
    "torch.uniform": lambda fi, fo: uniform_law(0.0, 1.0),
    "torch.uniform(a=-3.0, b=1.0)": lambda fi, fo: uniform_law(-3.0, 1.0),
    "torch.normal": lambda fi, fo: normal_law(0.0, 1.0),
    "torch.normal(mean=2.0, std=0.5)": lambda fi, fo: normal_law(2.0, 0.5),
    # Default a=-2, b=2 around N(0, 1): the Keras constant 0.8796 is its std.
    "torch.trunc_normal": lambda fi, fo: ("truncated_normal", 0.0, TRUNCATED_STD, -2.0, 2.0),
    # xavier: std = gain * sqrt(2 / (fan_in + fan_out)), uniform bound = sqrt(3) * std.
    "torch.xavier_uniform": lambda fi, fo: symmetric_uniform(math.sqrt(6 / (fi + fo))),
    "torch.xavier_uniform(gain=2.0)": lambda fi, fo: symmetric_uniform(2 * math.sqrt(6 / (fi + fo))),
    "torch.xavier_normal": lambda fi, fo: normal_law(0.0, math.sqrt(2 / (fi + fo))),
    "torch.xavier_normal(gain=0.5)": lambda fi, fo: normal_law(0.0, 0.5 * math.sqrt(2 / (fi + fo))),
    # kaiming: std = gain / sqrt(fan); default leaky_relu with slope a=0 gives gain sqrt(2).
    "torch.kaiming_uniform": lambda fi, fo: symmetric_uniform(math.sqrt(6 / fi)),
    "torch.kaiming_uniform(mode='fan_out', nonlinearity='relu')": lambda fi, fo: symmetric_uniform(math.sqrt(6 / fo)),
    "torch.kaiming_uniform(a=0.2)": lambda fi, fo: symmetric_uniform(SQRT3 * math.sqrt(2 / 1.04) / math.sqrt(fi)),
    "torch.kaiming_normal": lambda fi, fo: normal_law(0.0, math.sqrt(2 / fi)),
    "torch.kaiming_normal(mode='fan_out', nonlinearity='tanh')": lambda fi, fo: normal_law(0.0, 5 / 3 / math.sqrt(fo)),
    # nn.Linear: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)); its bias U(+-1/sqrt(fan_in)).
    "torch.linear_default": lambda fi, fo: symmetric_uniform(1 / math.sqrt(fi)),
    "torch.linear_bias_default": lambda fi, fo: symmetric_uniform(1 / math.sqrt(fi)),
    # sparse: ceil(sparsity * out) of each input's out weights are zero, the rest N(0, std^2).
    "torch.sparse(sparsity=0.25, std=0.5)": lambda fi, fo: (
        "sparse_normal", 0.0, 0.5 * math.sqrt(1 - math.ceil(0.25 * fo) / fo), None, None
    ),
    "torch.zeros": lambda fi, fo: constant_law(0.0),
    "torch.ones": lambda fi, fo: constant_law(1.0),
    "torch.constant(val=-1.5)": lambda fi, fo: constant_law(-1.5),
}
CASES = [pytest.param(spec, shape, id=f"{spec}-{shape[0]}x{shape[1]}") for spec in EXPECTED for shape in SHAPES]
# The bias default is compared with nn.Linear's bias on its own (it samples a vector).
TORCH_CASES = [case for case in CASES if case.values[0] != "torch.linear_bias_default"]


def assert_mean_and_variance(sample, mean, variance, label=""):
    """Empirical mean and variance agree with ``mean``/``variance`` within N_SE standard errors."""
    x = np.asarray(sample, dtype=np.float64).ravel()
    if variance == 0.0:
        np.testing.assert_array_equal(x, np.full_like(x, mean), err_msg=label)
        return
    se_mean = math.sqrt(variance / x.size)
    assert abs(x.mean() - mean) <= N_SE * se_mean, f"{label}: mean {x.mean()} vs {mean}"
    squared = (x - mean) ** 2
    se_variance = squared.std() / math.sqrt(x.size)
    assert abs(squared.mean() - variance) <= N_SE * se_variance, f"{label}: variance {squared.mean()} vs {variance}"


def assert_within(sample, low, high, label=""):
    """Every entry lies in [low, high], allowing float32 rounding of the bounds."""
    x = np.asarray(sample, dtype=np.float64)
    slack = 1e-6 * max(abs(low), abs(high), 1e-30)
    assert x.min() >= low - slack, f"{label}: min {x.min()} below {low}"
    assert x.max() <= high + slack, f"{label}: max {x.max()} above {high}"


def assert_reaches_bounds(sample, low, high, label="", ends=("low", "high")):
    """Every entry in [low, high], and the named ends reached within 1% of the range.

    Only for samples dense enough at those ends (uniforms; large truncated-normal samples).
    """
    assert_within(sample, low, high, label)
    x = np.asarray(sample, dtype=np.float64)
    if "low" in ends:
        assert x.min() <= low + 0.01 * (high - low), f"{label}: min {x.min()} far from {low}"
    if "high" in ends:
        assert x.max() >= high - 0.01 * (high - low), f"{label}: max {x.max()} far from {high}"


def two_sample_close(ours, theirs, label):
    """Two independent samples have means and variances within N_SE standard errors."""
    ours, theirs = np.asarray(ours, np.float64).ravel(), np.asarray(theirs, np.float64).ravel()
    se_mean = math.sqrt((ours.var() + theirs.var()) / ours.size)
    assert abs(ours.mean() - theirs.mean()) <= N_SE * se_mean + 1e-12, f"{label}: means differ"
    ours_sq, theirs_sq = (ours - ours.mean()) ** 2, (theirs - theirs.mean()) ** 2
    se_var = math.sqrt((ours_sq.var() + theirs_sq.var()) / ours.size)
    assert abs(ours_sq.mean() - theirs_sq.mean()) <= N_SE * se_var + 1e-12, f"{label}: variances differ"


# ---------------------------------------------------------------------------------------------
# torch.*: closed forms and samples
# ---------------------------------------------------------------------------------------------


def test_every_torch_function_is_registered():
    names = {
        "uniform", "normal", "trunc_normal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
        "kaiming_normal", "orthogonal", "sparse", "zeros", "ones", "constant", "eye",
        "linear_default", "linear_bias_default", "conv_default", "attention_in_default",
    }  # fmt: skip
    assert {n.removeprefix("torch.") for n in initializers.names if n.startswith("torch.")} == names
    # PyTorch's in-place names, trailing underscore included, find the same entries.
    assert initializers.entry("torch.xavier_uniform_").name == "torch.xavier_uniform"
    assert initializers.entry("torch.kaiming_normal_").name == "torch.kaiming_normal"


@pytest.mark.parametrize(("spec", "shape"), CASES)
def test_torch_law_is_pytorchs_formula(spec, shape):
    fan_in, fan_out = shape  # PyTorch's fans of its (out, in) weight, on initlab's (in, out)
    distribution, mean, std, low, high = EXPECTED[spec](fan_in, fan_out)
    law = build(spec).law(shape)
    assert law.distribution == distribution
    assert law.mean == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert law.std == pytest.approx(std, rel=1e-9)
    if low is None:
        assert law.low is None and law.high is None
    else:
        assert (law.low, law.high) == pytest.approx((low, high), rel=1e-9)


@pytest.mark.parametrize(("spec", "shape"), CASES)
def test_torch_samples_follow_the_formula(spec, shape, getkey):
    distribution, mean, std, low, high = EXPECTED[spec](*shape)
    weights = np.asarray(build(spec)(getkey(), shape), dtype=np.float64)
    assert weights.shape == shape
    assert_mean_and_variance(weights, mean, std**2, f"{spec} {shape}")
    if distribution == "uniform" or (distribution == "truncated_normal" and weights.size >= 10_000):
        assert_reaches_bounds(weights, low, high, f"{spec} {shape}")
    elif low is not None:
        assert_within(weights, low, high, f"{spec} {shape}")


def test_torch_fans_are_in_out_on_initlabs_layout():
    # PyTorch's (out=64, in=784) weight has fan_in 784: initlab's (784, 64) kernel, shape[0].
    assert torch_fans((784, 64)) == (784, 64)
    assert torch_fans((64, 10)) == (64, 10)
    # Conv: PyTorch's (out=32, in=16, 3, 3) is initlab's (3, 3, 16, 32).
    assert torch_fans((3, 3, 16, 32)) == (16 * 9, 32 * 9)
    fan_in_law = build("torch.kaiming_uniform").law((784, 64))
    fan_out_law = build("torch.kaiming_uniform(mode='fan_out')").law((784, 64))
    assert fan_in_law.high == pytest.approx(math.sqrt(6 / 784), rel=1e-12)
    assert fan_out_law.high == pytest.approx(math.sqrt(6 / 64), rel=1e-12)


def test_kaiming_mode_is_case_insensitive_as_in_pytorch():
    assert build("torch.kaiming_normal(mode='FAN_OUT')").law((784, 64)) == build(
        "torch.kaiming_normal(mode='fan_out')"
    ).law((784, 64))


LINEAR_NAMES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
GAINS = [
    *[(name, None, 1.0) for name in (*LINEAR_NAMES, "sigmoid")],
    ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)),
    ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)),
    ("leaky_relu", 0, math.sqrt(2)),
    ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)),
    ("selu", None, 0.75),
    ("relu", 0.2, math.sqrt(2)),  # param only matters for leaky_relu
]  # fmt: skip


@pytest.mark.parametrize(("nonlinearity", "param", "gain"), GAINS)
def test_calculate_gain_table(nonlinearity, param, gain):
    assert calculate_gain(nonlinearity, param) == pytest.approx(gain, rel=1e-12)


def test_calculate_gain_covers_every_torch_nonlinearity():
    assert set(NONLINEARITIES) == {name for name, _, _ in GAINS}


@pytest.mark.parametrize(
    ("nonlinearity", "param", "message"),
    [
        ("leakyrelu", None, "did you mean 'leaky_relu'"),
        ("tanhh", None, "did you mean 'tanh'"),
        ("gelu", None, "unknown nonlinearity 'gelu'"),
        ("leaky_relu", True, "must be a number"),
        ("leaky_relu", "0.1", "must be a number"),
    ],
)
def test_calculate_gain_rejects_unknown_names_and_bad_slopes(nonlinearity, param, message):
    with pytest.raises(InitlabError, match=message):
        calculate_gain(nonlinearity, param)


@pytest.mark.parametrize("shape", SHAPES + [(64, 784)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.9])
def test_sparse_zeroes_ceil_sparsity_out_entries_per_input(sparsity, shape, getkey):
    weights = np.asarray(build(f"torch.sparse(sparsity={sparsity})")(getkey(), shape))
    # PyTorch: ceil(sparsity * rows) zeros in each column of its (out, in) weight, i.e. in each
    # row of initlab's (in, out) kernel. 0.3 * 10 is 3.0000000000000004 in floats: 4, as torch.
    expected = math.ceil(sparsity * shape[1])
    np.testing.assert_array_equal((weights == 0).sum(axis=1), np.full(shape[0], expected))
    assert len({tuple(np.flatnonzero(row == 0)) for row in weights}) > 1  # a new mask per row
    nonzero = weights[weights != 0]
    assert_mean_and_variance(nonzero, 0.0, 0.01**2, "non-zero entries of torch.sparse")


def test_sparse_views_a_vector_as_one_row(getkey):
    weights = np.asarray(build("torch.sparse(sparsity=0.25)")(getkey(), (50,)))
    assert (weights == 0).sum() == math.ceil(0.25 * 50)


def test_trunc_normal_bounds_are_absolute_not_in_standard_deviations(getkey):
    # Bounds +-2 around N(0, 0.1^2) are 20 std away: no truncation. Read in std units they
    # would cut at +-0.2 and shrink the std to 0.088.
    law = build("torch.trunc_normal(std=0.1)").law((300, 500))
    assert law.std == pytest.approx(0.1, rel=1e-9)
    assert (law.low, law.high) == (-2.0, 2.0)
    weights = build("torch.trunc_normal(std=0.1)")(getkey(), (300, 500))
    assert_mean_and_variance(weights, 0.0, 0.01, "trunc_normal std=0.1")
    assert np.abs(np.asarray(weights)).max() > 0.4


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"),
    [(0.0, 1.0, -2.0, 2.0), (0.0, 0.1, -0.05, 0.2), (1.0, 2.0, 0.0, 10.0), (0.0, 1.0, 3.0, 4.0), (0.5, 0.2, -1.0, 0.4)],
)
def test_trunc_normal_moments_and_samples(mean, std, a, b, getkey):
    # The closed form against a numerical integral of the normal density over [a, b].
    x = np.linspace(a, b, 400_001)
    density = np.exp(-0.5 * ((x - mean) / std) ** 2)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    mass = trapezoid(density, x)
    integral_mean = trapezoid(x * density, x) / mass
    integral_std = math.sqrt(trapezoid((x - integral_mean) ** 2 * density, x) / mass)
    closed_mean, closed_std = truncated_normal_moments(mean, std, a, b)
    assert closed_mean == pytest.approx(integral_mean, rel=1e-6, abs=1e-9)
    assert closed_std == pytest.approx(integral_std, rel=1e-6)
    spec = f"torch.trunc_normal(mean={mean}, std={std}, a={a}, b={b})"
    weights = build(spec)(getkey(), (300, 500))
    assert_mean_and_variance(weights, closed_mean, closed_std**2, spec)
    # An end more than 3 std from the mean is too thinly populated to be seen.
    ends = tuple(end for end, bound in (("low", a), ("high", b)) if abs(bound - mean) <= 3 * std)
    assert_reaches_bounds(weights, a, b, spec, ends)


def test_xavier_normal_is_not_truncated(getkey):
    law = build("torch.xavier_normal").law((300, 500))
    assert law.low is None
    weights = np.asarray(build("torch.xavier_normal")(getkey(), (300, 500)), dtype=np.float64)
    beyond = np.abs(weights) > 2 * law.std
    # P(|Z| > 2) = 4.55%: 6825 of 150000 entries, a standard error of 81.
    assert abs(beyond.sum() - 0.0455 * weights.size) < 5 * 81
    assert np.abs(weights).max() > 4 * law.std


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_linear_defaults_bound_weight_and_bias_by_one_over_sqrt_fan_in(shape, getkey):
    fan_in, fan_out = shape
    bound = 1 / math.sqrt(fan_in)
    assert build("torch.linear_default").law(shape).high == pytest.approx(bound, rel=1e-12)
    bias_spec = bind_fan_in("torch.linear_bias_default", fan_in)
    assert bias_spec == f"torch.linear_bias_default(fan_in={fan_in})"
    bias_init = build(bias_spec)
    bias_law = bias_init.law((fan_out,))
    assert (bias_law.low, bias_law.high) == pytest.approx((-bound, bound), rel=1e-12)
    biases = np.asarray(bias_init(getkey(), (4096,)))  # many draws, to see the bounds
    assert_reaches_bounds(biases, -bound, bound, bias_spec)


def test_bind_fan_in_leaves_other_specs_alone(getkey):
    assert bind_fan_in("zeros", 784) == "zeros"
    assert bind_fan_in("torch.linear_bias_default(fan_in=3)", 784) == "torch.linear_bias_default(fan_in=3)"
    assert bind_fan_in("TruncatedNormal(stddev=1.0)", 784) == "TruncatedNormal(stddev=1.0)"
    assert build(bind_fan_in("torch.linear_bias_default", 0))(getkey(), (5,)).tolist() == [0.0] * 5  # as torch


def test_eye_and_orthogonal(getkey):
    np.testing.assert_array_equal(np.asarray(build("torch.eye")(getkey(), (3, 5))), np.eye(3, 5))
    weights = np.asarray(build("torch.orthogonal(gain=2.0)")(getkey(), (200, 64)), dtype=np.float64)
    np.testing.assert_allclose(weights.T @ weights, 4 * np.eye(64), atol=1e-4)
    weights = np.asarray(build("torch.orthogonal")(getkey(), (64, 200)), dtype=np.float64)
    np.testing.assert_allclose(weights @ weights.T, np.eye(64), atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torch.uniform(a=1.0, b=0.0)", "must be <= b"),
        ("torch.normal(std=-1.0)", "std must be >= 0"),
        ("torch.trunc_normal(std=0.0)", "std must be > 0"),
        ("torch.trunc_normal(a=1.0, b=-1.0)", "must be < b"),
        ("torch.trunc_normal(mean=0.0, std=0.01, a=50.0, b=60.0)", "holds no mass"),
        ("torch.kaiming_uniform(mode='fan_avg')", "unknown torch.kaiming_uniform mode 'fan_avg'"),
        ("torch.kaiming_normal(nonlinearity='reLu')", "did you mean 'relu'"),
        ("torch.sparse(sparsity=1.5)", "sparsity must be in"),
        ("torch.linear_bias_default(fan_in=-1)", "fan_in must be >= 0"),
        ("torch.xavier_uniform(gian=2.0)", "did you mean 'gain'"),
    ],
)
def test_bad_torch_hyperparameters_raise(spec, message):
    with pytest.raises(InitlabError, match=message):
        build(spec)


# ---------------------------------------------------------------------------------------------
# flax.*: aliases of Keras where JAX agrees, and jax.nn.initializers itself
# ---------------------------------------------------------------------------------------------

FLAX_ALIASES = [
    ("flax.dense_default", "lecun_normal"),
    ("flax.dense_bias_default", "zeros"),
    ("flax.lecun_normal", "lecun_normal"),
    ("flax.lecun_uniform", "lecun_uniform"),
    ("flax.glorot_normal", "glorot_normal"),
    ("flax.glorot_uniform", "glorot_uniform"),
    ("flax.he_normal", "he_normal"),
    ("flax.he_uniform", "he_uniform"),
    ("flax.xavier_uniform", "glorot_uniform"),
    ("flax.kaiming_normal", "he_normal"),
    ("flax.orthogonal(scale=2.0)", "orthogonal(gain=2.0)"),
]


@pytest.mark.parametrize(("flax_spec", "keras_spec"), FLAX_ALIASES)
def test_flax_aliases_are_the_keras_initializers(flax_spec, keras_spec, getkey):
    flax_init, keras_init = build(flax_spec), build(keras_spec)
    for shape in SHAPES + [(3, 3, 16, 32)]:
        assert flax_init.law(shape) == keras_init.law(shape)
    key = getkey()
    np.testing.assert_array_equal(np.asarray(flax_init(key, (784, 64))), np.asarray(keras_init(key, (784, 64))))


def jax_initializer(spec):
    """The ``jax.nn.initializers`` object (what flax.linen uses) that ``spec`` stands for."""
    import jax

    inits = jax.nn.initializers
    entry, kwargs = initializers.resolve(spec)
    name = entry.name.removeprefix("flax.")
    if name == "dense_default":
        return inits.lecun_normal()
    if name == "dense_bias_default":
        return inits.zeros
    if name == "embed_default":  # flax.linen.Embed's default_embed_init
        return inits.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
    if name == "dense_general_default":  # on a 2-D kernel, DenseGeneral's flattening changes nothing
        return inits.lecun_normal()
    if name == "variance_scaling":
        return inits.variance_scaling(kwargs["scale"], kwargs["mode"], kwargs["distribution"])
    return getattr(inits, name)(**kwargs)


VARIANCE_SCALING_SPECS = [
    f"flax.variance_scaling(scale=2.0, mode='{mode}', distribution='{distribution}')"
    for mode in flax_initializers.FLAX_VARIANCE_SCALING_MODES
    for distribution in flax_initializers.FLAX_VARIANCE_SCALING_DISTRIBUTIONS
]
JAX_SPECS = [n for n in initializers.names if n.startswith("flax.")] + [
    "flax.normal(stddev=0.3)",
    "flax.uniform(scale=2.0)",
    "flax.truncated_normal(stddev=0.5, lower=-1.0, upper=3.0)",
    *VARIANCE_SCALING_SPECS,
]


@pytest.mark.parametrize("spec", JAX_SPECS)
def test_flax_entries_equal_jax_nn_initializers_key_for_key(spec, getkey):
    key, shape = getkey(), (784, 64)
    ours = np.asarray(build(spec)(key, shape), dtype=np.float64)
    theirs = np.asarray(jax_initializer(spec)(key, shape), dtype=np.float64)
    if spec.startswith("flax.orthogonal"):  # Keras's QR sampler: same law, other draws
        np.testing.assert_allclose(ours.T @ ours, theirs.T @ theirs, atol=1e-5)
        return
    # Same draws; only the float32 rounding of the scale may differ.
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * np.abs(theirs).max())
    law = build(spec).law(shape)
    assert_mean_and_variance(ours, law.mean, law.variance, spec)


def test_flax_variance_scaling_normal_is_untruncated_unlike_keras():
    flax_law = build("flax.variance_scaling(distribution='normal')").law((784, 64))
    keras_law = build("variance_scaling(distribution='normal')").law((784, 64))
    assert (flax_law.distribution, flax_law.low) == ("normal", None)
    assert keras_law.distribution == "truncated_normal"
    assert flax_law.std == pytest.approx(keras_law.std, rel=1e-12) == 1 / math.sqrt(784)
    geo = build("flax.variance_scaling(mode='fan_geo_avg', distribution='uniform')").law((784, 64))
    assert geo.std == pytest.approx(1 / math.sqrt(math.sqrt(784 * 64)), rel=1e-12)


def test_flax_defaults_differ_from_keras_where_jax_does():
    assert build("flax.normal").law((5, 5)).std == 0.01 != build("random_normal").law((5, 5)).std
    assert (build("flax.uniform").law((5, 5)).low, build("flax.uniform").law((5, 5)).high) == (0.0, 0.01)
    truncated = build("flax.truncated_normal").law((5, 5))
    assert truncated.std == pytest.approx(0.01 * TRUNCATED_STD, rel=1e-9)  # no correction
    assert (truncated.low, truncated.high) == pytest.approx((-0.02, 0.02))


def test_flax_linen_dense_uses_these_defaults(getkey):
    flax_linen = pytest.importorskip("flax.linen")
    import jax.numpy as jnp

    variables = flax_linen.Dense(features=64).init(getkey(), jnp.ones((1, 784)))
    kernel = np.asarray(variables["params"]["kernel"], dtype=np.float64)
    law = build("flax.dense_default").law(kernel.shape)
    assert_mean_and_variance(kernel, law.mean, law.variance, "flax Dense kernel")
    assert_reaches_bounds(kernel, law.low, law.high, "flax Dense kernel")
    np.testing.assert_array_equal(np.asarray(variables["params"]["bias"]), np.zeros(64))


# ---------------------------------------------------------------------------------------------
# Summaries and the comparison table
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in initializers.names if n.startswith(("torch.", "flax."))])
def test_summary_is_one_line_naming_the_source(name):
    summary = initializers.entry(name).summary
    assert summary and summary.endswith(".")
    assert ("torch" in summary) if name.startswith("torch.") else ("jax" in summary or "flax" in summary)


def test_compare_table_has_one_row_per_registered_initializer():
    rows = compare_table(784, 64)
    assert [row["name"] for row in rows] == initializers.names
    assert all(tuple(row) == COLUMNS for row in rows)
    assert {row["framework"] for row in rows} == {"keras", "torch", "flax", "initlab"}
    json.dumps(rows)  # plain values, ready for a DataFrame or --json
    by_name = {row["name"]: row for row in rows}
    assert by_name["torch.linear_default"]["high"] == pytest.approx(1 / math.sqrt(784), rel=1e-12)
    assert by_name["glorot_uniform"]["high"] == pytest.approx(math.sqrt(6 / (784 + 64)), rel=1e-12)
    assert by_name["torch.xavier_uniform"]["high"] == by_name["glorot_uniform"]["high"]
    assert by_name["flax.dense_default"]["std"] == pytest.approx(1 / math.sqrt(784), rel=1e-12)
    assert by_name["flax.dense_default"]["distribution"] == "truncated_normal"
    assert by_name["torch.xavier_normal"]["low"] is None


def test_framework_of_reads_the_prefix():
    assert [framework_of(n) for n in ("glorot_uniform", "torch.eye", "flax.normal")] == ["keras", "torch", "flax"]


@pytest.mark.parametrize("fans", [(0, 10), (10, -1), (2.5, 3), (True, 3)])
def test_compare_table_rejects_bad_fans(fans):
    with pytest.raises(InitlabError, match="must be a positive integer"):
        compare_table(*fans)


def test_compare_table_does_not_import_jax():
    code = (
        "import sys; from initlab.initializers.table import compare_table; "
        "compare_table(3, 4); print('jax' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# Against PyTorch itself (skipped when torch is not installed)
# ---------------------------------------------------------------------------------------------


def torch_apply(torch, spec, shape, generator):
    """``torch.nn.init`` as ``spec`` says, on a torch tensor (out, in), returned as (in, out)."""
    entry, kwargs = initializers.resolve(spec)
    name = entry.name.removeprefix("torch.")
    fan_in, fan_out = shape
    if name == "linear_default":
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
        return torch.nn.Linear(fan_in, fan_out).weight.T.detach().numpy()
    tensor = torch.empty(fan_out, fan_in)
    init = getattr(torch.nn.init, f"{name}_")
    if name in ("zeros", "ones", "eye"):
        return init(tensor).T.numpy()
    if name == "sparse":  # sparse_ draws its masks from the global generator
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
    if name == "constant":
        return init(tensor, kwargs["val"]).T.numpy()
    return init(tensor, **kwargs, generator=generator).T.numpy()


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


class TestAgainstPyTorch:
    @pytest.mark.parametrize(("spec", "shape"), TORCH_CASES)
    def test_same_distribution_as_torch_nn_init(self, torch, spec, shape, getkey):
        generator = torch.Generator().manual_seed(sum(map(ord, spec)) + shape[0])
        theirs = np.asarray(torch_apply(torch, spec, shape, generator), dtype=np.float64)
        ours = np.asarray(build(spec)(getkey(), shape), dtype=np.float64)
        assert theirs.shape == ours.shape == shape
        law = build(spec).law(shape)
        if law.std == 0:
            np.testing.assert_array_equal(ours, theirs)
            return
        two_sample_close(ours, theirs, spec)
        if law.low is not None:
            ends = ("low", "high") if law.distribution == "uniform" or ours.size >= 10_000 else ()
            for sample in (ours, theirs):
                assert_reaches_bounds(sample, law.low, law.high, spec, ends)

    def test_linear_bias_default_matches_nn_linear(self, torch, getkey):
        torch.manual_seed(0)
        theirs = np.concatenate([torch.nn.Linear(784, 512).bias.detach().numpy() for _ in range(8)])
        ours = np.asarray(build(bind_fan_in("torch.linear_bias_default", 784))(getkey(), theirs.shape))
        two_sample_close(ours, theirs, "nn.Linear bias")
        for sample in (ours, theirs):
            assert_reaches_bounds(sample, -1 / 28, 1 / 28, "nn.Linear bias")

    @pytest.mark.parametrize("shape", [(784, 64), (64, 10), (3, 3, 16, 32), (5, 16, 8)])
    def test_fans_match_torch_on_the_transposed_tensor(self, torch, shape):
        torch_shape = (shape[-1], shape[-2], *shape[:-2])  # (out, in, *receptive_field)
        expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(torch_shape))
        assert torch_fans(shape) == expected

    @pytest.mark.parametrize(("nonlinearity", "param", "gain"), GAINS)
    def test_calculate_gain_matches_torch(self, torch, nonlinearity, param, gain):
        expected = torch.nn.init.calculate_gain(nonlinearity, param)
        assert calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)

    @pytest.mark.parametrize("sparsity", [0.1, 0.3])
    def test_sparse_zero_counts_match_torch(self, torch, sparsity, getkey):
        torch.manual_seed(0)
        theirs = torch.nn.init.sparse_(torch.empty(10, 64), sparsity=sparsity).T.numpy()  # in=64, out=10
        ours = np.asarray(build(f"torch.sparse(sparsity={sparsity})")(getkey(), (64, 10)))
        np.testing.assert_array_equal((ours == 0).sum(axis=1), (theirs == 0).sum(axis=1))

    def test_orthogonal_and_eye_match_torch(self, torch, getkey):
        for fan_in, fan_out in [(200, 64), (64, 200)]:
            theirs = torch.nn.init.orthogonal_(torch.empty(fan_out, fan_in)).T.double().numpy()
            ours = np.asarray(build("torch.orthogonal")(getkey(), (fan_in, fan_out)), dtype=np.float64)
            small = min(fan_in, fan_out)
            gram = (lambda w: w.T @ w) if fan_in >= fan_out else (lambda w: w @ w.T)
            np.testing.assert_allclose(gram(theirs), np.eye(small), atol=1e-5)
            np.testing.assert_allclose(gram(ours), np.eye(small), atol=1e-5)
        eye = torch.nn.init.eye_(torch.empty(10, 64)).T.numpy()
        np.testing.assert_array_equal(np.asarray(build("torch.eye")(getkey(), (64, 10))), eye)
