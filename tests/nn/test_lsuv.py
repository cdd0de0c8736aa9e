"""Tests of initlab.nn.lsuv: unit variance of each LSUV layer's pre-activation, on data it never saw.

Deep (10 hidden layers) tanh and relu MLPs on MNIST features. The initialization batch is the
first ``INIT_BATCH`` samples of the seed's epoch-1 order (what a trainer passes); the check
batch is the next ``FRESH_BATCH`` samples of that order, disjoint from it.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from initlab.data import load
from initlab.errors import InitlabError
from initlab.initializers import build, initializers
from initlab.nn import losses, optimizers
from initlab.nn.lsuv import LSUVInitializer, init_for_training, initialize, lsuv_batch
from initlab.nn.models import MLP, DenseLayer, layer_params
from initlab.training import loop as training

DEPTH = 10
INIT_BATCH = 512
FRESH_BATCH = 1024
# A variance estimated on one batch of MNIST moves on another: measured at most ~0.01-0.03 off
# for these batch sizes (MNIST's digits differ in how much ink they hold). The bound on a fresh
# batch is tol + SLACK.
SLACK = 0.05


@pytest.fixture(scope="module")
def mnist():
    return load("mnist")


@pytest.fixture(scope="module")
def batches(mnist):
    order = training.epoch_order(0, 1, len(mnist.x_train))
    fresh = mnist.features("train")[order[INIT_BATCH : INIT_BATCH + FRESH_BATCH]]
    return lsuv_batch(mnist, seed=0, size=INIT_BATCH), fresh


def deep_mlp(activation, width=128, kernel="lsuv", bias="zeros", output_kernel="glorot_uniform"):
    hidden = tuple(
        DenseLayer(units=width, activation=activation, kernel_initializer=kernel, bias_initializer=bias) for _ in range(DEPTH)
    )
    return MLP(input_dim=784, layers=(*hidden, DenseLayer(units=10, activation="softmax", kernel_initializer=output_kernel)))


def shallow_mlp(kernel="lsuv", bias="zeros"):
    """For the plumbing tests: two layers are as good as ten there, and quicker."""
    return MLP(
        input_dim=784,
        layers=(
            DenseLayer(units=32, activation="relu", kernel_initializer=kernel, bias_initializer=bias),
            DenseLayer(units=10, activation="softmax"),
        ),
    )


@functools.lru_cache(maxsize=None)
def initialized(activation, width=128, kernel="lsuv", bias="zeros", output_kernel="glorot_uniform", seed=0):
    """``(mlp, params, report)`` of a deep MLP initialized on the module's batch (cached: tests share them)."""
    import jax

    mlp = deep_mlp(activation, width, kernel, bias, output_kernel)
    x = lsuv_batch(load("mnist"), seed=0, size=INIT_BATCH)
    return (mlp, *initialize(mlp, jax.random.key(seed), x))


def preactivations(mlp, params, x):
    _, outputs = mlp.apply_with_intermediates(params, x)
    return [np.asarray(o.preactivation, np.float64) for o in outputs]


# --- the registry --------------------------------------------------------------------------


def test_spec_parses_through_the_registry():
    init = build("lsuv(tol=0.05)")
    assert isinstance(init, LSUVInitializer) and init.data_dependent
    assert (init.spec, init.tol, init.max_iter, init.center) == ("lsuv(tol=0.05)", 0.05, 10, False)
    assert initializers.canonical("LSUV(tol=0.1, center=True)") == "lsuv(center=True)"
    assert init.law((784, 128)) == build("orthogonal").law((784, 128))


@pytest.mark.parametrize("spec", ["lsuv(tol=0)", "lsuv(max_iter=0)", "lsuv(batch_size=1)", "lsuv(tol='a')", "lsuv(gain=2)"])
def test_bad_arguments_raise(spec):
    with pytest.raises(InitlabError):
        build(spec)


def test_the_plain_sampler_is_the_orthonormal_pre_init(getkey):
    key = getkey()
    np.testing.assert_array_equal(build("lsuv")(key, (256, 128)), build("orthogonal")(key, (256, 128)))


def test_mlp_init_refuses_lsuv_with_a_clear_error(getkey):
    with pytest.raises(InitlabError, match="lsuv"):
        deep_mlp("relu").init(getkey())


# --- the algorithm -------------------------------------------------------------------------


# The tanh net's softmax layer is LSUV too (its logits are normalized); the relu net's is glorot (left alone).
@pytest.mark.parametrize(
    ("activation", "width", "output_kernel", "normalized"),
    [("tanh", 256, "lsuv", DEPTH + 1), ("relu", 128, "glorot_uniform", DEPTH)],
)
def test_every_lsuv_layer_has_unit_variance_on_a_fresh_batch(activation, width, output_kernel, normalized, batches):
    x, fresh = batches
    mlp, params, report = initialized(activation, width, output_kernel=output_kernel)
    tol = build("lsuv").tol
    assert [row["layer"] for row in report["layers"]] == list(range(1, normalized + 1))
    on_batch, on_fresh = preactivations(mlp, params, x), preactivations(mlp, params, fresh)
    for row in report["layers"]:
        layer = row["layer"] - 1
        assert 1 <= row["iterations"] <= 10
        assert abs(row["variance"] - 1) < tol
        assert row["variance"] == pytest.approx(on_batch[layer].var(), rel=1e-4)
        assert abs(on_fresh[layer].var() - 1) < tol + SLACK, f"layer {row['layer']}: {on_fresh[layer].var()}"


@pytest.mark.parametrize("kernel", ["glorot_uniform", "he_uniform"])
def test_the_fresh_batch_check_fails_without_lsuv(kernel, batches, getkey):
    _, fresh = batches
    mlp = deep_mlp("relu", kernel=kernel)
    deviations = [abs(z.var() - 1) for z in preactivations(mlp, mlp.init(getkey()), fresh)[:DEPTH]]
    assert max(deviations) > build("lsuv").tol + SLACK


def test_nonzero_biases_need_several_iterations_and_max_iter_caps_them():
    _, _, report = initialized("relu", bias="random_normal(stddev=0.5)")
    assert max(row["iterations"] for row in report["layers"]) > 1
    assert all(abs(row["variance"] - 1) < 0.1 for row in report["layers"])
    _, _, capped = initialized("relu", kernel="lsuv(tol=0.0001, max_iter=2)", bias="random_normal(stddev=0.5)")
    assert [row["iterations"] for row in capped["layers"]] == [2] * DEPTH


def test_center_sets_biases_so_each_unit_has_mean_zero(batches):
    x, fresh = batches
    mlp, centered, report = initialized("relu", kernel="lsuv(center=True)")
    _, plain, _ = initialized("relu")
    for z in preactivations(mlp, centered, x)[:DEPTH]:
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    for z in preactivations(mlp, centered, fresh)[:DEPTH]:
        assert abs(z.mean()) < 0.05 and np.abs(z.mean(axis=0)).max() < 0.5
    # Without centering, relu's positive outputs give units means far from 0: the check can fail.
    assert max(np.abs(z.mean(axis=0)).max() for z in preactivations(mlp, plain, x)[:DEPTH]) > 1.0
    assert all(abs(row["variance"] - 1) < 0.1 for row in report["layers"])


def test_deterministic_given_key_and_batch(batches):
    import jax

    x, _ = batches
    mlp, first, first_report = initialized("relu")
    second, second_report = initialize(mlp, jax.random.key(0), x)
    assert first_report == second_report
    for a, b in zip(layer_params(first), layer_params(second)):
        np.testing.assert_array_equal(a["kernel"], b["kernel"])
        np.testing.assert_array_equal(a["bias"], b["bias"])
    _, other, _ = initialized("relu", seed=1)
    assert not np.array_equal(first["Dense_0"]["kernel"], other["Dense_0"]["kernel"])


def test_data_free_layers_get_exactly_what_mlp_init_draws(batches, getkey):
    x, _ = batches
    key = getkey()
    plain = shallow_mlp(kernel="he_normal", bias="random_normal(stddev=0.1)")
    params, report = initialize(plain, key, x)
    assert report == {"layers": []}
    for a, b in zip(layer_params(params), layer_params(plain.init(key))):
        np.testing.assert_array_equal(a["kernel"], b["kernel"])
        np.testing.assert_array_equal(a["bias"], b["bias"])
    mixed, _ = initialize(shallow_mlp(bias="random_normal(stddev=0.1)"), key, x)
    mixed, params = layer_params(mixed), layer_params(params)
    np.testing.assert_array_equal(mixed[-1]["kernel"], params[-1]["kernel"])  # the glorot output layer
    np.testing.assert_array_equal(mixed[0]["bias"], params[0]["bias"])  # drawn as MLP.init draws it


def test_a_batch_of_the_wrong_shape_raises(getkey):
    with pytest.raises(InitlabError, match="batch"):
        initialize(shallow_mlp(), getkey(), np.zeros((8, 10), np.float32))


def test_lsuv_batch_is_the_start_of_epoch_one_and_init_for_training_uses_it(mnist, getkey):
    order = training.epoch_order(3, 1, len(mnist.x_train))
    batch = lsuv_batch(mnist, seed=3, size=64)
    assert batch.shape == (64, 784) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, mnist.features("train")[order[:64]])
    key, mlp = getkey(), shallow_mlp(kernel="lsuv(batch_size=64)")
    params, report = init_for_training(mlp, key, mnist, seed=3)
    expected, expected_report = initialize(mlp, key, batch)
    assert report == expected_report
    np.testing.assert_array_equal(params["Dense_0"]["kernel"], expected["Dense_0"]["kernel"])
    plain = shallow_mlp(kernel="he_normal")
    np.testing.assert_array_equal(init_for_training(plain, key, mnist, 3)[0]["Dense_0"]["kernel"], plain.init(key)["Dense_0"]["kernel"])


def test_a_deep_relu_net_trains_a_few_steps_with_finite_loss(batches, mnist):
    import jax

    x, _ = batches
    y = mnist.y_train[training.epoch_order(0, 1, len(mnist.x_train))[:INIT_BATCH]]
    mlp, params, _ = initialized("relu")
    optimizer = optimizers.build("sgd(learning_rate=0.01)")
    step = jax.jit(training.make_step(mlp, losses.build("categorical_crossentropy"), optimizer))
    opt_state, history = optimizer.init(params), []
    for _ in range(5):
        params, opt_state, loss_sum, _ = step(params, opt_state, x[:128], y[:128])
        history.append(float(loss_sum) / 128)
    assert np.isfinite(history).all()
    assert history[-1] < history[0]


def test_lsuv_normalizes_every_layer_of_a_residual_cnn_in_call_order(getkey):
    """LSUV for convolutional and residual networks: each LSUV kernel's output has unit variance on the batch."""
    import jax.numpy as jnp

    from initlab.nn.init_rules import InitRule
    from initlab.nn.lsuv import normalize_network
    from initlab.nn.model_specs import build_architecture, models

    model = build_architecture(models.build("resnet(depth=2, width=4, norm='none')").spec, (10, 10, 1), 3)
    params, origins = model.initialize(getkey(), (InitRule("conv/kernel", "lsuv(tol=0.01)"),))
    x = np.random.default_rng(0).random((64, 100)).astype(np.float32)
    normalized, report = normalize_network(model, params, origins, x)
    assert [row["layer"] for row in report["layers"]] == [p for p in model.layer_paths() if p != "head"]
    _, taps = model.tapped(normalized, jnp.asarray(x))
    for path in report["layers"]:
        assert abs(float(jnp.var(taps[path["layer"]][1])) - 1.0) < 0.01
    assert np.asarray(normalized["head"]["kernel"]).tolist() == np.asarray(params["head"]["kernel"]).tolist()
