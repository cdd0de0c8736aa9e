"""Losses and optimizers against NumPy implementations of Keras's formulas (and Keras itself)."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.nn.losses import build as build_loss
from initlab.nn.losses import losses
from initlab.nn.optimizers import build as build_optimizer
from initlab.nn.optimizers import learning_rate_of, optimizers

os.environ.setdefault("KERAS_BACKEND", "jax")

KERAS_EPSILON = 1e-7


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------

Y_TRUE = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0.2, 0.5, 0.3]],
    dtype=np.float32,
)
# Softmax-like rows, unnormalised rows (renormalised by Keras), and rows with exact 0 and 1
# (clipped to [1e-7, 1 - 1e-7] by Keras: -log(1e-7) = 16.118 for a confident wrong answer).
Y_PRED = np.array(
    [[0.7, 0.2, 0.1], [2.0, 1.0, 1.0], [0.25, 0.25, 0.5], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.1, 0.3, 0.6]],
    dtype=np.float32,
)


def numpy_mse(y_true, y_pred):
    return np.mean((y_true - y_pred) ** 2, axis=-1)


def numpy_categorical_crossentropy(y_true, y_pred):
    y_pred = y_pred / y_pred.sum(axis=-1, keepdims=True)
    y_pred = np.clip(y_pred, KERAS_EPSILON, 1 - KERAS_EPSILON)
    return -np.sum(y_true * np.log(y_pred), axis=-1)


LOSS_REFERENCES = {
    "mean_squared_error": numpy_mse,
    "categorical_crossentropy": numpy_categorical_crossentropy,
}


def test_every_loss_has_a_reference():
    assert set(losses.names) == set(LOSS_REFERENCES)


@pytest.mark.parametrize("name", losses.names)
def test_loss_matches_numpy(name):
    values = np.asarray(build_loss(name)(Y_TRUE, Y_PRED), dtype=np.float64)
    expected = LOSS_REFERENCES[name](Y_TRUE.astype(np.float64), Y_PRED.astype(np.float64))
    assert values.shape == (len(Y_TRUE),)
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6)


def test_crossentropy_clips_and_renormalises():
    values = np.asarray(build_loss("cce")(Y_TRUE, Y_PRED), dtype=np.float64)
    assert values[3] == pytest.approx(-np.log(KERAS_EPSILON), rel=1e-6)  # wrong and certain
    assert values[4] == pytest.approx(0.0, abs=1e-6)  # right and certain
    assert values[1] == pytest.approx(np.log(4.0), rel=1e-6)  # 1 / (2 + 1 + 1)


@pytest.mark.parametrize(
    ("alias", "name"),
    [("mse", "mean_squared_error"), ("cce", "categorical_crossentropy"), ("crossentropy", "categorical_crossentropy")],
)
def test_loss_aliases(alias, name):
    assert losses.entry(alias).name == name


@pytest.mark.parametrize("name", losses.names)
def test_loss_matches_keras(name, keras):
    values = np.asarray(build_loss(name)(Y_TRUE, Y_PRED))
    expected = np.asarray(getattr(keras.losses, name)(Y_TRUE, Y_PRED))
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Optimizers: registry and defaults
# ---------------------------------------------------------------------------------------------

KERAS_DEFAULTS = {
    "sgd": {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
    "adam": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "rmsprop": {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
}


@pytest.mark.parametrize("name", list(KERAS_DEFAULTS))
def test_optimizer_defaults_are_keras_defaults(name):
    _, kwargs = optimizers.resolve(name)
    assert kwargs == KERAS_DEFAULTS[name]
    assert learning_rate_of(name) == KERAS_DEFAULTS[name]["learning_rate"]


@pytest.mark.parametrize("name", list(KERAS_DEFAULTS))
def test_optimizer_builds_with_the_learning_rate_in_its_state(name):
    optimizer = build_optimizer(f"{name}(learning_rate=0.05)")
    state = optimizer.init({"w": np.zeros(3, np.float32)})
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.05)
    assert learning_rate_of(f"{name.upper()}(learning_rate=0.05)") == 0.05


@pytest.mark.parametrize("name", optimizers.names)
def test_optimizer_defaults_match_keras_signature(name, keras):
    classes = {cls.lower(): cls for cls in dir(keras.optimizers)}
    parameters = inspect.signature(getattr(keras.optimizers, classes[name]).__init__).parameters
    for argument, default in optimizers.entry(name).defaults.items():
        assert argument in parameters, f"Keras {classes[name]} has no argument {argument}"
        assert parameters[argument].default == default, f"{name}.{argument}"


@pytest.mark.parametrize(
    "spec",
    [
        "sgd(learning_rate=0.0)",
        "sgd(learning_rate=-0.01)",
        "adam(learning_rate=0)",
        "rmsprop(learning_rate=-1e-3)",
        "sgd(learning_rate='fast')",
        "adam(learning_rate=True)",
        "sgd(momentum=1.0)",
        "sgd(momentum=-0.5)",
        "sgd(learning_rat=0.1)",
        "adamw",
    ],
)
def test_invalid_optimizer_specs_raise(spec):
    with pytest.raises(InitlabError) as raised:
        build_optimizer(spec)
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------------------------
# Optimizers: three steps against Keras's update formulas, written in NumPy
# ---------------------------------------------------------------------------------------------

PARAMS = {
    "kernel": np.array([[0.5, -0.3], [0.1, 0.2], [-0.7, 0.9]], np.float32),
    "bias": np.array([0.05, -0.02], np.float32),
}
# Gradients of magnitude 0.1 to 1 with mixed signs, a different one at each of the 3 steps.
GRADIENTS = [
    {
        "kernel": np.array([[0.3, -0.5], [0.8, 0.1], [-0.2, 0.6]], np.float32) * (1 + step) * (-1) ** step,
        "bias": np.array([-0.4, 0.25], np.float32) * (1 + 0.5 * step),
    }
    for step in range(3)
]


def keras_sgd(learning_rate=0.01, momentum=0.0, nesterov=False):
    """Keras 3 ``SGD.update_step``, one parameter array at a time."""
    velocity = None

    def step(w, g, t):
        nonlocal velocity
        if momentum == 0:
            return w - learning_rate * g
        velocity = np.zeros_like(w) if velocity is None else velocity
        velocity = momentum * velocity - learning_rate * g
        if nesterov:
            return w + momentum * velocity - learning_rate * g
        return w + velocity

    return step


def keras_rmsprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    """Keras 3 ``RMSprop.update_step`` (keras/src/optimizers/rmsprop.py): epsilon *inside* the root."""
    assert not centered
    velocity = moment = None

    def step(w, g, t):
        nonlocal velocity, moment
        velocity = np.zeros_like(w) if velocity is None else velocity
        velocity = rho * velocity + (1 - rho) * g**2
        increment = learning_rate * g / np.sqrt(velocity + epsilon)
        if momentum > 0:
            moment = np.zeros_like(w) if moment is None else moment
            moment = momentum * moment + increment
            return w - moment
        return w - increment

    return step


def keras_adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras 3 ``Adam.update_step``: epsilon added to sqrt(v) before the bias correction."""
    m = v = None

    def step(w, g, t):
        nonlocal m, v
        m = np.zeros_like(w) if m is None else m
        v = np.zeros_like(w) if v is None else v
        alpha = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        return w - alpha * m / (np.sqrt(v) + epsilon)

    return step


KERAS_FORMULAS = {"sgd": keras_sgd, "rmsprop": keras_rmsprop, "adam": keras_adam}


def numpy_trajectory(spec, gradients):
    """Parameters after each step, in float64, following Keras's formula for ``spec``."""
    entry, kwargs = optimizers.resolve(spec)
    steppers = {name: KERAS_FORMULAS[entry.name](**kwargs) for name in PARAMS}
    params = {name: value.astype(np.float64) for name, value in PARAMS.items()}
    trajectory = []
    for t, grads in enumerate(gradients, start=1):
        params = {name: steppers[name](params[name], grads[name].astype(np.float64), t) for name in params}
        trajectory.append(params)
    return trajectory


def initlab_trajectory(spec, gradients):
    import optax

    optimizer = build_optimizer(spec)
    params = {name: np.asarray(value) for name, value in PARAMS.items()}
    state = optimizer.init(params)
    trajectory = []
    for grads in gradients:
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append({name: np.asarray(value, dtype=np.float64) for name, value in params.items()})
    return trajectory


def small(gradients, factor=1e-3):
    return [{name: value * factor for name, value in grads.items()} for grads in gradients]



# Displacements from the initial parameters are compared; float32 parameters of size <= 1 carry
# a rounding error of about 1e-7 each, hence the absolute tolerance.
ATOL = 2.5e-7

# (spec, gradients, relative tolerance on the displacement from the initial parameters)
UPDATE_CASES = [
    pytest.param("sgd", GRADIENTS, 1e-5, id="sgd"),
    pytest.param("sgd(learning_rate=0.1)", GRADIENTS, 1e-5, id="sgd-lr0.1"),
    pytest.param("sgd(momentum=0.9)", GRADIENTS, 1e-5, id="sgd-momentum"),
    pytest.param("sgd(momentum=0.9, nesterov=True)", GRADIENTS, 1e-5, id="sgd-nesterov"),
    # With a negligible epsilon (it must be > 0) the two epsilon placements agree: this checks rho, the rate and the velocity.
    pytest.param("rmsprop(epsilon=1e-30)", GRADIENTS, 1e-5, id="rmsprop-tiny-eps"),
    pytest.param("rmsprop(momentum=0.9, epsilon=1e-30)", GRADIENTS, 1e-5, id="rmsprop-momentum-tiny-eps"),
    pytest.param("rmsprop", small(GRADIENTS), 1e-5, id="rmsprop-small-gradients"),
    # optax adds epsilon after the bias correction, Keras before: at step 1 that is an
    # effective epsilon of 1e-7 / sqrt(1 - 0.999) = 3.2e-6, i.e. up to 3e-5 relative for |g| >= 0.1.
    pytest.param("adam", GRADIENTS, 2e-4, id="adam"),
    pytest.param("adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99)", GRADIENTS, 2e-4, id="adam-custom"),
]


@pytest.mark.parametrize(("spec", "gradients", "rtol"), UPDATE_CASES)
def test_three_updates_match_keras_formula(spec, gradients, rtol):
    ours = initlab_trajectory(spec, gradients)
    expected = numpy_trajectory(spec, gradients)
    for step, (got, want) in enumerate(zip(ours, expected, strict=True), start=1):
        for name in PARAMS:
            np.testing.assert_allclose(
                got[name] - PARAMS[name],
                want[name] - PARAMS[name],
                rtol=rtol,
                atol=ATOL,
                err_msg=f"{spec} step {step} {name}",
            )


def test_adam_epsilon_placement_is_the_only_difference():
    # With a negligible epsilon (it must be > 0) the two placements agree, so Adam must then match Keras's formula tightly.
    ours = initlab_trajectory("adam(epsilon=1e-30)", GRADIENTS)
    expected = numpy_trajectory("adam(epsilon=1e-30)", GRADIENTS)
    for got, want in zip(ours, expected, strict=True):
        for name in PARAMS:
            np.testing.assert_allclose(got[name] - PARAMS[name], want[name] - PARAMS[name], rtol=2e-6, atol=ATOL)


def test_the_numpy_formulas_can_tell_optimizers_apart():
    sgd = numpy_trajectory("sgd(momentum=0.9)", GRADIENTS)[-1]["kernel"]
    nesterov = numpy_trajectory("sgd(momentum=0.9, nesterov=True)", GRADIENTS)[-1]["kernel"]
    assert not np.allclose(sgd - PARAMS["kernel"], nesterov - PARAMS["kernel"], rtol=1e-3)


def keras_trajectory(keras, spec, gradients):
    entry, kwargs = optimizers.resolve(spec)
    classes = {cls.lower(): cls for cls in dir(keras.optimizers)}
    optimizer = getattr(keras.optimizers, classes[entry.name])(**kwargs)
    variables = {name: keras.Variable(value.copy()) for name, value in PARAMS.items()}
    trajectory = []
    for grads in gradients:
        optimizer.apply_gradients([(grads[name], variables[name]) for name in PARAMS])
        trajectory.append({name: np.asarray(variables[name].value, dtype=np.float64) for name in PARAMS})
    return trajectory


@pytest.mark.parametrize(
    ("spec", "gradients"),
    [
        pytest.param("sgd(momentum=0.9, nesterov=True)", GRADIENTS, id="sgd-nesterov"),
        pytest.param("rmsprop", small(GRADIENTS), id="rmsprop-small-gradients"),
        pytest.param("adam", GRADIENTS, id="adam"),
    ],
)
def test_numpy_formulas_are_keras(spec, gradients, keras):
    """The reference formulas above are Keras's: run Keras's own optimizers on the same steps."""
    for got, want in zip(keras_trajectory(keras, spec, gradients), numpy_trajectory(spec, gradients), strict=True):
        for name in PARAMS:
            np.testing.assert_allclose(got[name] - PARAMS[name], want[name] - PARAMS[name], rtol=1e-4, atol=ATOL)
