"""The native first-layer kernels: the same products as ``x @ w`` (skipping zeros), under grad and vmap.

References are NumPy products in float64; the kernels sum in float32 in another order, so the
tolerance is a few float32 ulps of the sums' magnitude. Where the kernels cannot be built or
used (no AVX-512, no compiler), the kernel tests are skipped and only the fallback is checked.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from same_training import assert_same_history, assert_same_params

import initlab
from initlab.accel import sparse_dense
from initlab.data import Dataset
from initlab.training.config import TrainConfig
from initlab.training.ensembles import train_ensemble

jax = pytest.importorskip("jax")
jnp = jax.numpy

needs_kernels = pytest.mark.skipif(not sparse_dense.available(), reason="native kernels unavailable here")


def sparse(rng: np.random.Generator, shape: tuple[int, ...], density: float) -> np.ndarray:
    x = rng.random(shape).astype(np.float32)
    x[rng.random(shape) >= density] = 0.0
    return x


def assert_close(actual, expected) -> None:
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=0, atol=2e-6 * scale)


@needs_kernels
@pytest.mark.parametrize("batch, inputs, units", [(128, 784, 64), (1, 5, 1), (33, 40, 17), (70, 100, 100), (5, 16, 64), (3, 130, 200)])
@pytest.mark.parametrize("density", [0.0, 0.2, 1.0])
def test_matmul_equals_the_dense_product(batch, inputs, units, density):
    rng = np.random.default_rng(batch * inputs + units)
    x, w = sparse(rng, (batch, inputs), density), rng.normal(size=(inputs, units)).astype(np.float32)
    y = sparse_dense.matmul(x, w)
    assert y.shape == (batch, units) and y.dtype == jnp.float32
    assert_close(y, x.astype(np.float64) @ w)


@needs_kernels
def test_matmul_is_deterministic_and_handles_an_empty_batch():
    rng = np.random.default_rng(0)
    x, w = sparse(rng, (128, 784), 0.2), rng.normal(size=(784, 64)).astype(np.float32)
    first, second = np.asarray(sparse_dense.matmul(x, w)), np.asarray(sparse_dense.matmul(x, w))
    np.testing.assert_array_equal(first, second)
    assert sparse_dense.matmul(np.zeros((0, 7), np.float32), w[:7]).shape == (0, 64)


@needs_kernels
@pytest.mark.parametrize("units", [64, 10])  # 64: the kernel's fast path; 10: its general one
def test_gradients_equal_the_dense_products(units):
    rng = np.random.default_rng(1)
    x, w = sparse(rng, (96, 50), 0.3), rng.normal(size=(50, units)).astype(np.float32)

    def loss(product, w, x):
        return jnp.sum(jnp.sin(product(x, w)))

    dense = lambda x, w: x @ w  # noqa: E731
    for argnum in (0, 1):
        expected = jax.grad(loss, argnums=argnum + 1)(dense, w, x)
        actual = jax.grad(loss, argnums=argnum + 1)(sparse_dense.matmul, w, x)
        assert_close(actual, expected)


@needs_kernels
def test_vmap_over_models_over_rows_and_over_inputs():
    rng = np.random.default_rng(2)
    rows, models = 3, 4
    x = np.stack([sparse(rng, (40, 60), 0.25) for _ in range(rows)])
    w = rng.normal(size=(rows, models, 60, 20)).astype(np.float32)
    # Models share the inputs (the ensemble's inner vmap), rows have their own (outer vmap).
    grid = jax.jit(jax.vmap(jax.vmap(sparse_dense.matmul, (None, 0)), (0, 0)))(x, w)
    assert_close(grid, np.einsum("rbn,rmnu->rmbu", x.astype(np.float64), w))
    # Inputs batched, one kernel.
    assert_close(jax.vmap(sparse_dense.matmul, (0, None))(x, w[0, 0]), x.astype(np.float64) @ w[0, 0])

    def loss(w, x):
        return jnp.sum(jax.nn.sigmoid(sparse_dense.matmul(x, w)) ** 2)

    def dense_loss(w, x):
        return jnp.sum(jax.nn.sigmoid(x @ w) ** 2)

    grads = jax.jit(jax.vmap(jax.vmap(jax.grad(loss), (0, None)), (0, 0)))(w, x)
    assert_close(grads, jax.vmap(jax.vmap(jax.grad(dense_loss), (0, None)), (0, 0))(w, x))


def test_dense_inputs_use_xla_and_sparse_ones_the_kernels():
    rng = np.random.default_rng(3)
    dense_pixels = rng.integers(1, 256, size=(500, 784), dtype=np.uint8)
    assert sparse_dense.density(dense_pixels) == 1.0
    assert sparse_dense.input_matmul(dense_pixels) is None
    mnist = initlab.data.load("mnist").x_train
    assert 0.15 < sparse_dense.density(mnist) < 0.25
    expected = sparse_dense.matmul if sparse_dense.available() else None
    assert sparse_dense.input_matmul(mnist) is expected


def test_the_kernels_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("INITLAB_SPARSE_KERNELS", "0")
    assert sparse_dense.available.__wrapped__() is False


def test_a_failed_build_warns_once_and_falls_back(monkeypatch, tmp_path):
    if not sparse_dense._cpu_has_avx512():
        pytest.skip("the kernels are never built without AVX-512")
    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with pytest.warns(RuntimeWarning, match="could not build the sparse-input kernels.*false failed"):
        assert sparse_dense.available.__wrapped__() is False


def test_a_cached_library_is_loaded_only_with_its_recorded_digest(tmp_path):
    import hashlib

    library = tmp_path / "sparse_dense-x.so"
    library.write_bytes(b"\x7fELF built by initlab")
    assert not sparse_dense._trusted(str(library))  # no digest: an interrupted build, or not ours
    (tmp_path / "sparse_dense-x.so.sha256").write_text(hashlib.sha256(library.read_bytes()).hexdigest())
    assert sparse_dense._trusted(str(library))
    library.write_bytes(b"\x7fELF changed by someone else")
    assert not sparse_dense._trusted(str(library))


def test_a_tampered_library_is_rebuilt_not_loaded(monkeypatch, tmp_path):
    if not sparse_dense._cpu_has_avx512() or shutil.which("g++") is None:
        pytest.skip("the kernels are built only with AVX-512 and a C++ compiler")
    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path))
    built = Path(sparse_dense._build())
    good = built.read_bytes()
    built.write_bytes(b"not the library initlab built")
    assert Path(sparse_dense._build()) == built and built.read_bytes() == good
    assert sorted(p.name for p in built.parent.iterdir()) == sorted([built.name, built.name + ".sha256"])


def sparse_dataset(train_size: int, density: float, seed: int = 0) -> Dataset:
    """MNIST-shaped uint8 pixels, a fraction ``density`` of them nonzero, random labels."""
    rng = np.random.default_rng(seed)
    pixels = lambda n: np.where(rng.random((n, 784)) < density, rng.integers(1, 256, (n, 784)), 0).astype(np.uint8)  # noqa: E731
    eye = np.eye(10, dtype=np.float32)
    return Dataset(
        "mnist", pixels(train_size), eye[rng.integers(0, 10, train_size)], pixels(64), eye[rng.integers(0, 10, 64)],
        scale=255.0,
    )  # fmt: skip


BASE = TrainConfig(
    hidden_units=(16,), batch_size=64, epochs=3, activation="relu", loss="categorical_crossentropy",
    optimizer="sgd(learning_rate=0.1)",
)  # fmt: skip


@needs_kernels
def test_training_with_the_kernels_matches_training_with_xla_within_the_stated_tolerance():
    data = sparse_dataset(200, 0.2)  # 3 x 64 + 8: a partial last batch too
    with_kernels = initlab.train(dataclasses.replace(BASE, matmul="sparse"), dataset=data)
    with_xla = initlab.train(dataclasses.replace(BASE, matmul="xla"), dataset=data)
    assert (with_kernels.matmul, with_xla.matmul) == ("sparse", "xla")
    for key in with_xla.history:
        np.testing.assert_allclose(with_kernels.history[key], with_xla.history[key], **sparse_dense.TOLERANCE)
    for got, want in zip(jax.tree.leaves(with_kernels.params), jax.tree.leaves(with_xla.params)):
        np.testing.assert_allclose(got, want, **sparse_dense.TOLERANCE)


@needs_kernels
def test_auto_records_the_path_it_took():
    sparse, dense = sparse_dataset(130, 0.2), sparse_dataset(130, 0.9, seed=4)
    assert initlab.train(dataclasses.replace(BASE, epochs=1), dataset=sparse).matmul == "sparse"
    assert initlab.train(dataclasses.replace(BASE, epochs=1), dataset=dense).matmul == "xla"
    (result,) = train_ensemble([dataclasses.replace(BASE, epochs=1, matmul="xla")], dataset=sparse)
    assert result.matmul == "xla" and result.to_dict()["matmul"] == "xla"


def test_matmul_is_validated_and_sparse_is_refused_where_the_kernels_cannot_run(monkeypatch):
    with pytest.raises(initlab.InitlabError, match="unknown matmul 'dense'"):
        TrainConfig(matmul="dense")
    monkeypatch.setattr(sparse_dense, "available", lambda: False)
    with pytest.raises(initlab.InitlabError, match="matmul 'sparse' needs initlab's native kernels.*use 'auto' or 'xla'"):
        sparse_dense.select("sparse", np.zeros((4, 4)))
    assert sparse_dense.select("auto", np.zeros((4, 4))) == (None, "xla")


def test_the_new_field_at_its_default_keeps_old_config_hashes():
    # A store written before the fields existed holds configs without them: their hashes must not move.
    new_fields = ("matmul", "defaults", "init_rules", "parametrization", "base_width", "architecture")
    legacy = {k: v for k, v in BASE.to_dict().items() if k not in new_fields}
    import hashlib
    import json

    assert BASE.config_hash() == hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:16]
    assert dataclasses.replace(BASE, matmul="xla").config_hash() != BASE.config_hash()


@needs_kernels
def test_an_ensemble_on_sparse_inputs_equals_its_models_trained_alone():
    data = sparse_dataset(200, 0.2, seed=1)
    configs = [
        dataclasses.replace(BASE, kernel_initializer=init, seed=seed, optimizer=optimizer)
        for init, seed, optimizer in [
            ("glorot_uniform", 0, "sgd(learning_rate=0.1)"),
            ("he_normal", 0, "sgd(learning_rate=0.05)"),
            ("RandomNormal()", 1, "sgd(learning_rate=0.1)"),
        ]
    ]
    for result, config in zip(train_ensemble(configs, dataset=data), configs):
        alone = initlab.train(config, dataset=data)
        assert_same_history(result.history, alone.history)
        assert_same_params(result.params, alone.params)


@needs_kernels
def test_a_diverging_model_in_a_kernel_ensemble_leaves_the_others_unaffected():
    data = sparse_dataset(256, 0.2, seed=2)
    linear = dataclasses.replace(
        BASE, activation="linear", output_activation="linear", loss="mean_squared_error", epochs=4
    )
    calm = [
        dataclasses.replace(linear, kernel_initializer="glorot_uniform", optimizer="sgd(learning_rate=0.001)", seed=s)
        for s in (0, 1)
    ]
    wild = dataclasses.replace(linear, kernel_initializer="RandomNormal(stddev=1.0)", optimizer="sgd(learning_rate=1.0)")
    together = train_ensemble([calm[0], wild, calm[1]], dataset=data)
    assert together[1].diverged_epoch is not None  # inf or NaN flowed through the kernels of one model
    for beside, config in zip((together[0], together[2]), calm):
        alone = initlab.train(config, dataset=data)
        assert beside.diverged_epoch is None and alone.diverged_epoch is None
        assert_same_history(beside.history, alone.history)
