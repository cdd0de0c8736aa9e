"""Tests of initlab.data: the shipped MNIST, ``.npz`` files of Keras's layout, and their errors.

Loading is cached on ``(name, path)``, so every test writes its file to its own ``tmp_path``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from initlab import data
from initlab.errors import InitlabError

MNIST_TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def raw_mnist() -> dict[str, np.ndarray]:
    with np.load(data.shipped_mnist_path(), allow_pickle=False) as archive:
        return {key: archive[key] for key in data.KEYS}


@pytest.fixture(scope="module")
def mnist() -> data.Dataset:
    return data.load("mnist")


def synthetic_arrays(train: int = 300, test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """A small stand-in for Keras's mnist.npz: 28x28 uint8 images, uint8 labels 0-9."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(train) % 10).astype(np.uint8)[rng.permutation(train)],
        "x_test": rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(test) % 10).astype(np.uint8)[rng.permutation(test)],
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


def test_shipped_mnist_has_keras_layout(raw_mnist):
    assert raw_mnist["x_train"].shape == (60000, 28, 28)
    assert raw_mnist["x_test"].shape == (10000, 28, 28)
    assert raw_mnist["y_train"].shape == (60000,)
    assert raw_mnist["y_test"].shape == (10000,)
    assert raw_mnist["x_train"].dtype == np.uint8
    assert np.bincount(raw_mnist["y_train"]).tolist() == MNIST_TRAIN_LABEL_COUNTS
    assert np.bincount(raw_mnist["y_test"]).tolist() == MNIST_TEST_LABEL_COUNTS


def test_shipped_mnist_gets_the_tutorial_preprocessing(mnist, raw_mnist):
    assert (mnist.input_dim, mnist.classes) == (784, 10)
    assert mnist.x_train.shape == (60000, 784)
    assert mnist.x_test.shape == (10000, 784)

    # The tutorial: x_train.reshape(60000, 784).astype('float32') / 255, bit for bit.
    expected_train = raw_mnist["x_train"].reshape(60000, 784).astype("float32") / 255
    expected_test = raw_mnist["x_test"].reshape(10000, 784).astype("float32") / 255
    features = mnist.features("train")
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, expected_train)
    np.testing.assert_array_equal(mnist.features("test"), expected_test)
    assert features.min() == 0.0 and features.max() == 1.0


def test_shipped_mnist_labels_are_one_hot(mnist, raw_mnist):
    for split, counts in (("train", MNIST_TRAIN_LABEL_COUNTS), ("test", MNIST_TEST_LABEL_COUNTS)):
        labels = getattr(mnist, f"y_{split}")
        assert labels.dtype == np.float32
        assert labels.shape == (len(raw_mnist[f"y_{split}"]), 10)
        assert set(np.unique(labels).tolist()) == {0.0, 1.0}
        np.testing.assert_array_equal(labels.sum(axis=1), 1.0)
        np.testing.assert_array_equal(labels.argmax(axis=1), raw_mnist[f"y_{split}"])
        assert labels.sum(axis=0).astype(int).tolist() == counts


def test_load_data_file(tmp_path):
    arrays = synthetic_arrays()
    path = write_npz(tmp_path / "small_mnist.npz", arrays)
    dataset = data.load("mnist", data_file=path)

    assert dataset.x_train.shape == (300, 784) and dataset.x_test.shape == (100, 784)
    assert (dataset.input_dim, dataset.classes) == (784, 10)
    assert Path(dataset.source) == path
    np.testing.assert_array_equal(dataset.features("train"), arrays["x_train"].reshape(300, 784).astype("float32") / 255)
    np.testing.assert_array_equal(dataset.features("test"), arrays["x_test"].reshape(100, 784).astype("float32") / 255)
    np.testing.assert_array_equal(dataset.y_train, np.eye(10, dtype=np.float32)[arrays["y_train"]])
    np.testing.assert_array_equal(dataset.y_test, np.eye(10, dtype=np.float32)[arrays["y_test"]])


def test_load_data_file_given_as_text(tmp_path):
    arrays = synthetic_arrays(train=50, test=20, seed=1)
    path = write_npz(tmp_path / "as_text.npz", arrays)
    dataset = data.load("mnist", data_file=str(path))
    np.testing.assert_array_equal(dataset.y_train.argmax(axis=1), arrays["y_train"])


def test_data_file_of_float_images_is_not_rescaled(tmp_path):
    arrays = synthetic_arrays(train=40, test=10, seed=2)
    arrays["x_train"] = arrays["x_train"].astype(np.float32) / 255
    arrays["x_test"] = arrays["x_test"].astype(np.float32) / 255
    dataset = data.load("mnist", data_file=write_npz(tmp_path / "floats.npz", arrays))
    np.testing.assert_array_equal(dataset.features("train"), arrays["x_train"].reshape(40, 784))
    np.testing.assert_array_equal(dataset.features("test"), arrays["x_test"].reshape(10, 784))


def test_unknown_dataset_name_suggests_closest():
    with pytest.raises(InitlabError, match="did you mean 'mnist'"):
        data.load("mnits")


def assert_error_names_file(path: Path, *fragments: str) -> InitlabError:
    with pytest.raises(InitlabError) as raised:
        data.load("mnist", data_file=path)
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return raised.value


def test_missing_file(tmp_path):
    assert_error_names_file(tmp_path / "nowhere.npz", "not found")


def test_directory_is_not_a_data_file(tmp_path):
    assert_error_names_file(tmp_path, "not found")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    assert_error_names_file(path, "corrupt")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    assert_error_names_file(path, "corrupt")


def test_truncated_zip(tmp_path):
    path = write_npz(tmp_path / "truncated.npz", synthetic_arrays())
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    assert_error_names_file(path, "corrupt")


def test_zip_with_damaged_array_bytes(tmp_path):
    path = write_npz(tmp_path / "damaged.npz", synthetic_arrays())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("x_train.npy")
    content = bytearray(path.read_bytes())
    # Past the local header and the .npy header: pixels, which the CRC-32 check must catch.
    start = info.header_offset + 30 + len(info.filename) + 200
    content[start : start + 64] = bytes(255 - b for b in content[start : start + 64])
    path.write_bytes(bytes(content))
    assert_error_names_file(path, "corrupt")


def test_npy_file_instead_of_npz(tmp_path):
    path = tmp_path / "x_train.npy"
    np.save(path, synthetic_arrays()["x_train"])
    assert_error_names_file(path)


def test_npz_of_pickled_objects(tmp_path):
    arrays = synthetic_arrays()
    arrays["y_train"] = np.array([{"label": int(y)} for y in arrays["y_train"]], dtype=object)
    assert_error_names_file(write_npz(tmp_path / "objects.npz", arrays), "corrupt")


def test_npz_lacking_keys(tmp_path):
    arrays = synthetic_arrays()
    path = write_npz(tmp_path / "no_test.npz", {"x_train": arrays["x_train"], "y_train": arrays["y_train"]})
    error = assert_error_names_file(path, "x_test", "y_test")
    assert "lacks" in str(error)


def test_npz_with_other_names(tmp_path):
    arrays = synthetic_arrays()
    path = write_npz(tmp_path / "other_names.npz", {"images": arrays["x_train"], "labels": arrays["y_train"]})
    assert_error_names_file(path, "x_train", "y_train", "x_test", "y_test")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda a: {**a, "y_train": np.eye(10, dtype=np.uint8)[a["y_train"]]}, id="one-hot-labels"),
        pytest.param(lambda a: {**a, "y_test": a["y_test"][:, None]}, id="column-labels"),
        pytest.param(lambda a: {**a, "y_train": a["y_train"][:-1]}, id="one-label-short"),
        pytest.param(lambda a: {**a, "x_test": a["x_test"][:0], "y_test": a["y_test"][:0]}, id="empty-test-set"),
        pytest.param(lambda a: {**a, "x_train": a["x_train"].reshape(-1)[:300]}, id="flat-x"),
    ],
)
def test_labels_and_images_of_wrong_shape(tmp_path, change):
    path = write_npz(tmp_path / "bad_shape.npz", change(synthetic_arrays()))
    assert_error_names_file(path)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda a: {**a, "y_train": a["y_train"].astype(np.float32)}, id="float-labels"),
        pytest.param(lambda a: {**a, "y_test": a["y_test"].astype(np.int64) - 1}, id="negative-labels"),
    ],
)
def test_labels_that_are_not_class_numbers(tmp_path, change):
    path = write_npz(tmp_path / "bad_labels.npz", change(synthetic_arrays()))
    assert_error_names_file(path, "integer class labels")


def test_train_and_test_images_of_different_shapes(tmp_path):
    arrays = synthetic_arrays()
    arrays["x_test"] = arrays["x_test"][:, :27, :27]
    assert_error_names_file(write_npz(tmp_path / "mixed_sizes.npz", arrays), "differ in shape")
