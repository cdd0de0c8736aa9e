"""The spec parser (``ast``, literals only) and the registry's name and argument checks."""

from __future__ import annotations

import sys

import pytest

from initlab.errors import InitlabError
from initlab.initializers import initializers
from initlab.registry import Registry
from initlab.specs import Spec, canonical_key, parse_spec

# ---------------------------------------------------------------------------------------------
# parse_spec
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("glorot_uniform", Spec("glorot_uniform")),
        ("HeNormal", Spec("HeNormal")),
        ("  he_normal  ", Spec("he_normal")),
        ("RandomNormal()", Spec("RandomNormal")),
        ("RandomNormal(stddev=1.0)", Spec("RandomNormal", (), (("stddev", 1.0),))),
        ("RandomNormal(0.0, 1.0)", Spec("RandomNormal", (0.0, 1.0))),
        ("RandomUniform(-0.1, maxval=0.1)", Spec("RandomUniform", (-0.1,), (("maxval", 0.1),))),
        ("RandomUniform(minval=-1e-3, maxval=+2)", Spec("RandomUniform", (), (("minval", -0.001), ("maxval", 2)))),
        ("Constant(-3)", Spec("Constant", (-3,))),
        ("VarianceScaling(2.0, mode='fan_avg')", Spec("VarianceScaling", (2.0,), (("mode", "fan_avg"),))),
        ("gelu(approximate=True)", Spec("gelu", (), (("approximate", True),))),
        ("keras.initializers.RandomNormal", Spec("keras.initializers.RandomNormal")),
        ("keras.initializers.HeNormal(seed=None)", Spec("keras.initializers.HeNormal", (), (("seed", None),))),
    ],
)
def test_parse_spec_reads_names_and_literal_arguments(text, expected):
    assert parse_spec(text) == expected


def test_parse_spec_keeps_argument_types():
    spec = parse_spec("f(1, 2.5, 'a', True, None, stddev=-2)")
    assert [type(a) for a in spec.args] == [int, float, str, bool, type(None)]
    assert spec.kwargs == (("stddev", -2),)
    assert type(spec.kwargs[0][1]) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "RandomNormal(",
        "RandomNormal(stddev=)",
        "RandomNormal)(",
        "1.0",
        "'glorot_uniform'",
        "f()()",
        "f[0]",
        "f(1)[0]",
        "lambda: 1",
        "import os",
        "a; b",
        "f(*args)",
        "f(**kwargs)",
        "f(x)",
        "f(stddev=x)",
        "f(-x)",
        "f(1 + 2)",
        "f(stddev=1.0 * 2)",
        "f(open('/etc/passwd'))",
        "RandomNormal(stddev=__import__('os'))",
        "RandomNormal(stddev=__import__('os').system('echo pwned'))",
        "f(lambda: 1)",
        "f([i for i in range(3)])",
        "f(stddev=f'{1}')",
    ],
)
def test_malformed_or_non_literal_specs_raise(text):
    with pytest.raises(InitlabError) as raised:
        parse_spec(text)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("malformed spec")


@pytest.mark.parametrize("value", [None, 3, b"glorot_uniform"])
def test_non_string_spec_raises(value):
    with pytest.raises(InitlabError):
        parse_spec(value)


@pytest.mark.parametrize(
    "text",
    [
        "RandomNormal(stddev=__import__('sys').modules.__setitem__('initlab_evaluated', 1))",
        "RandomNormal(__import__('sys').modules.__setitem__('initlab_evaluated', 1))",
        "RandomNormal(stddev=print('initlab evaluated'))",
    ],
)
def test_non_literal_arguments_are_never_evaluated(text, capsys):
    with pytest.raises(InitlabError):
        parse_spec(text)
    with pytest.raises(InitlabError):
        initializers.resolve(text)
    assert "initlab_evaluated" not in sys.modules
    assert "initlab evaluated" not in capsys.readouterr().out


def test_non_literal_argument_is_named_in_the_message():
    with pytest.raises(InitlabError, match=r"'f\(x\)' is not a literal"):
        parse_spec("RandomNormal(stddev=f(x))")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "f({[]: 1})",
            id="unhashable-dict-key",
        ),
        pytest.param(
            "f(" + "-" * 5000 + "1)",
            id="deeply-nested-unary-minus",
        ),
    ],
)
def test_pathological_literals_raise_initlab_error(text):
    with pytest.raises(InitlabError):
        parse_spec(text)


# ---------------------------------------------------------------------------------------------
# canonical_key
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("HeNormal", "henormal"),
        ("he_normal", "henormal"),
        ("HE_NORMAL", "henormal"),
        ("henormal", "henormal"),
        ("Random_Normal", "randomnormal"),
        ("glorot_uniform", "glorotuniform"),
    ],
)
def test_canonical_key_ignores_case_and_underscores(name, key):
    assert canonical_key(name) == key


def test_canonical_key_keeps_other_characters():
    assert canonical_key("he-normal") != canonical_key("he_normal")


# ---------------------------------------------------------------------------------------------
# Registry: names and aliases
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("RandomNormal", "random_normal"),
        ("random_normal", "random_normal"),
        ("RANDOM_NORMAL", "random_normal"),
        ("normal", "random_normal"),
        ("RandomUniform", "random_uniform"),
        ("uniform", "random_uniform"),
        ("HeNormal", "he_normal"),
        ("he_normal", "he_normal"),
        ("henormal", "he_normal"),
        ("GlorotUniform", "glorot_uniform"),
        ("one", "ones"),
        ("Ones", "ones"),
        ("zero", "zeros"),
        ("Zeros", "zeros"),
        ("OrthogonalInitializer", "orthogonal"),
        ("TruncatedNormal", "truncated_normal"),
    ],
)
def test_names_aliases_and_case_resolve_to_the_registered_entry(written, name):
    entry, _ = initializers.resolve(written)
    assert entry.name == name
    assert written in initializers
    assert initializers.canonical(written) == name


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("RandomNormal(stddev=1.0)", "random_normal(stddev=1.0)"),
        ("normal(0.5)", "random_normal(mean=0.5)"),
        ("random_normal(mean=0.0, stddev=0.05)", "random_normal"),
        ("RandomUniform(-1, 1)", "random_uniform(minval=-1.0, maxval=1.0)"),
        ("VarianceScaling(2, mode='fan_avg')", "variance_scaling(scale=2.0, mode='fan_avg')"),
        ("Constant(value=0)", "constant"),
    ],
)
def test_canonical_keeps_only_non_default_arguments(spec, canonical):
    assert initializers.canonical(spec) == canonical


def test_resolve_binds_positional_keyword_and_default_arguments():
    entry, kwargs = initializers.resolve("VarianceScaling(2.0, distribution='uniform')")
    assert entry.name == "variance_scaling"
    assert kwargs == {"scale": 2.0, "mode": "fan_in", "distribution": "uniform", "input_axes": None, "output_axes": None}


def test_int_is_coerced_to_float():
    _, kwargs = initializers.resolve("RandomNormal(mean=1, stddev=2)")
    assert kwargs == {"mean": 1.0, "stddev": 2.0}
    assert type(kwargs["mean"]) is float and type(kwargs["stddev"]) is float


def test_unknown_name_suggests_the_closest_name():
    with pytest.raises(InitlabError) as raised:
        initializers.resolve("glorot_unifrom")
    message = str(raised.value)
    assert "did you mean 'glorot_uniform'?" in message
    assert "\n" not in message


def test_unknown_camel_case_name_suggests_the_closest_name():
    with pytest.raises(InitlabError, match="did you mean 'he_normal'"):
        initializers.resolve("HeNormall(seed=1)")


def test_unknown_name_far_from_everything_lists_the_valid_names():
    with pytest.raises(InitlabError) as raised:
        initializers.resolve("qqqqqqqq")
    message = str(raised.value)
    assert "did you mean" not in message
    assert all(name in message for name in initializers.names)


def test_unknown_argument_suggests_the_closest_argument():
    with pytest.raises(InitlabError) as raised:
        initializers.resolve("RandomNormal(stdev=1.0)")
    message = str(raised.value)
    assert "unknown argument 'stdev'" in message
    assert "did you mean 'stddev'?" in message
    assert "\n" not in message


def test_argument_given_twice_raises():
    with pytest.raises(InitlabError, match="given twice"):
        initializers.resolve("RandomNormal(0.0, mean=1.0)")
    with pytest.raises(InitlabError, match="given twice"):
        initializers.resolve("RandomNormal(stddev=1.0, stddev=2.0)")


def test_too_many_positional_arguments_raise():
    with pytest.raises(InitlabError, match="at most 2 positional"):
        initializers.resolve("RandomNormal(0.0, 1.0, 2.0)")


@pytest.mark.parametrize(
    "spec",
    [
        "RandomNormal(stddev='big')",
        "RandomNormal(stddev='1.0')",
        "RandomNormal(stddev=True)",
        "RandomNormal(stddev=None)",
        "RandomNormal(stddev=(1.0, 2.0))",
        "VarianceScaling(mode=1)",
    ],
)
def test_ill_typed_arguments_raise_one_line_errors(spec):
    with pytest.raises(InitlabError) as raised:
        initializers.resolve(spec)
    message = str(raised.value)
    assert "must be" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "spec", ["RandomNormal(stddev=1e400)", "RandomNormal(stddev=-1e400)", "RandomNormal(stddev=1j)",
             "RandomNormal(1e309)", "pick(values=(1.0, 1e400))"],
)
def test_non_finite_literals_are_rejected_where_they_are_parsed(spec):
    with pytest.raises(InitlabError, match="is not a finite real number") as raised:
        parse_spec(spec)
    assert "inf" not in str(raised.value).split(":")[0]  # the literal as written, not Python's inf


def _toy_registry() -> Registry:
    """A registry with an ``int`` hyperparameter (no built-in initializer has one)."""
    registry: Registry = Registry("toy")

    @registry.register("pick")
    def pick(count: int = 1, rate: float = 0.5, flag: bool = False) -> tuple:
        return count, rate, flag

    return registry


@pytest.mark.parametrize("spec", ["pick(count=1.0)", "pick(count=2.5)", "pick(count=True)", "pick(count='3')"])
def test_int_arguments_reject_floats_bools_and_strings(spec):
    with pytest.raises(InitlabError, match="argument 'count' of pick must be int"):
        _toy_registry().resolve(spec)


@pytest.mark.parametrize("spec", ["pick(flag=1)", "pick(flag=0)", "pick(flag='yes')"])
def test_bool_arguments_reject_ints_and_strings(spec):
    with pytest.raises(InitlabError, match="argument 'flag' of pick must be bool"):
        _toy_registry().resolve(spec)


def test_registry_builds_with_bound_arguments():
    assert _toy_registry().build("Pick(3, rate=1)") == (3, 1.0, False)


def test_registry_rejects_a_name_registered_twice():
    registry = _toy_registry()
    with pytest.raises(RuntimeError):
        registry.add("PICK", lambda: None)
