"""Data: the shipped MNIST (verified on load), other ``.npz`` files, and synthetic input sources.

MNIST ships inside the package (``initlab/data/mnist.npz``, Keras's layout; provenance and
licence in ``initlab/data/README.md``), so nothing is downloaded. Fashion-MNIST and CIFAR-10 are
downloaded once into the cache and verified (``initlab.data.downloads``). Preprocessing is the
tutorial's: images reshaped to 784 and divided by 255 in float32, labels one-hot.
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from initlab.data import sequences
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.registry import Registry

KEYS = ("x_train", "y_train", "x_test", "y_test")

# SHA-256 of each array's raw bytes in the shipped file (see initlab/data/README.md).
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a data file's bytes: its identity in a store (a changed file is new data).

    Cached per (resolved path, size, modification and change times), so a sweep hashes each
    file once (a file rewritten within one tick of the file system's clock, to the same size,
    keeps its hash in this process).
    """
    file = Path(path).expanduser()
    try:
        status = file.stat()
    except OSError as error:
        raise InitlabError(f"data file not found: {file}" if isinstance(error, FileNotFoundError)
                           else f"cannot read data file {file}: {error.strerror or error}") from None  # fmt: skip
    return _sha256(str(file.resolve()), status.st_size, status.st_mtime_ns, status.st_ctime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, ctime_ns: int) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise InitlabError(f"cannot read data file {path}: {error.strerror or error}") from None
    return digest.hexdigest()


def shipped_mnist_path() -> Path:
    """Where the package's own copy of MNIST lies."""
    return Path(str(resources.files("initlab") / "data" / "mnist.npz"))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InitlabError(f"data file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InitlabError(f"data file {path} is a single .npy array, not an .npz archive with {', '.join(KEYS)}")
        with loaded as archive:
            missing = [k for k in KEYS if k not in archive.files]
            if missing:
                raise InitlabError(
                    f"data file {path} lacks array(s) {', '.join(missing)} (needs {', '.join(KEYS)}, as Keras's mnist.npz)"
                )
            return {k: archive[k] for k in KEYS}
    except InitlabError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        detail = "" if "pickle" in str(error) else f" ({type(error).__name__}: {error})"
        raise InitlabError(f"data file {path} is corrupt or not an .npz archive{detail}") from None


MAX_CLASSES = 100_000
"""The most classes a data file may have (a label of 10**9 is a mistake, not a 10**9-unit layer)."""


def _check_layout(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Shapes, dtypes and values of a user's data file, checked before anything is allocated from them.

    Labels must be the integers ``0..K-1`` with every class present in ``y_train`` (a label
    far above the others would silently build a layer of that many classes); images must be
    real numbers (integers or finite floats).
    """
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise InitlabError(
                f"data file {path}: x_{split} {x.shape} and y_{split} {y.shape} must be (n, ...) images and (n,) labels"
            )
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise InitlabError(f"data file {path}: x_{split} holds {x.dtype} values; images must be real numbers")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise InitlabError(f"data file {path}: x_{split} holds {bad} non-finite value(s) (NaN or inf)")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise InitlabError(f"data file {path}: y_{split} must hold non-negative integer class labels")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise InitlabError(f"data file {path}: x_train and x_test images differ in shape")
    top = int(max(arrays["y_train"].max(), arrays["y_test"].max()))
    if top >= MAX_CLASSES:
        raise InitlabError(f"data file {path}: a label of {top}; labels must be classes 0..K-1 with K <= {MAX_CLASSES}")
    present = np.zeros(top + 1, bool)
    present[arrays["y_train"]] = True
    if not present.all():
        missing = np.flatnonzero(~present)
        listed = ", ".join(str(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InitlabError(
            f"data file {path}: labels must be classes 0..{top} with each one in y_train; "
            f"{len(missing)} class(es) have no training example ({listed})"
        )


def _verify_shipped(arrays: dict[str, np.ndarray], path: Path) -> None:
    for key, expected in MNIST_SHA256.items():
        if hashlib.sha256(np.ascontiguousarray(arrays[key]).data).hexdigest() != expected:  # no copy
            raise InitlabError(
                f"the shipped MNIST ({path}) fails its SHA-256 check on {key}: reinstall initlab (pip install -e .)"
            )


def preprocess(name: str, arrays: dict[str, np.ndarray], source: str = "") -> Dataset:
    """The tutorial's preprocessing: flatten, divide 8-bit pixels by 255, one-hot labels."""
    classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    pixels = arrays["x_train"].dtype == np.uint8
    example_shape = tuple(int(s) for s in arrays["x_train"].shape[1:])
    out = []
    for split in ("train", "test"):
        x = arrays[f"x_{split}"]
        x = x.reshape(len(x), -1)
        out.append(x if pixels else x.astype(np.float32))
        out.append(np.eye(classes, dtype=np.float32)[arrays[f"y_{split}"].astype(np.int64)])
    return Dataset(name, *out, scale=255.0 if pixels else 1.0, source=source, example_shape=example_shape)


@functools.lru_cache(maxsize=4)
def _load_labelled(name: str, path: str | None) -> Dataset:
    shipped = path is None
    file = shipped_mnist_path() if shipped else Path(path).expanduser()
    arrays = _read_npz(file)
    _check_layout(arrays, file)
    if shipped:
        _verify_shipped(arrays, file)
    return preprocess(name, arrays, source=str(file))


datasets: Registry[Dataset] = Registry("dataset")


@datasets.register("mnist")
def mnist(data_file: str | None = None) -> Dataset:
    """MNIST digits, 60k train / 10k test, 784 inputs, 10 classes (shipped; or any .npz of Keras's layout)."""
    return _load_labelled("mnist", data_file)


@datasets.register("fashion_mnist")
def fashion_mnist(data_file: str | None = None) -> Dataset:
    """Zalando's Fashion-MNIST, 60k train / 10k test, 784 inputs, 10 classes (downloaded once; or an .npz)."""
    return _load_downloaded("fashion_mnist", data_file)


@datasets.register("cifar10")
def cifar10(data_file: str | None = None) -> Dataset:
    """CIFAR-10 colour images, 50k train / 10k test, 3072 inputs (32x32x3), 10 classes (downloaded once; or an .npz)."""
    return _load_downloaded("cifar10", data_file)


@functools.lru_cache(maxsize=2)
def _load_downloaded(name: str, path: str | None) -> Dataset:
    """A data set of ``initlab.data.downloads`` (fetched into the cache when needed), or the .npz ``path``."""
    if path is None:
        from initlab.data import downloads  # urllib and tarfile only when a download may be needed

        arrays, source = downloads.load_arrays(name)
        return preprocess(name, arrays, source=source)
    file = Path(path).expanduser()
    arrays = _read_npz(file)
    for key in ("y_train", "y_test"):  # Keras's cifar10.load_data gives labels of shape (n, 1)
        if arrays[key].ndim == 2 and arrays[key].shape[1] == 1:
            arrays[key] = arrays[key][:, 0]
    _check_layout(arrays, file)
    return preprocess(name, arrays, source=str(file))


datasets.register("modular_addition", aliases=("modular_arithmetic",))(sequences.modular_addition)
datasets.register("characters", aliases=("stdlib_characters", "chars"))(sequences.characters)


def load(name: str = "mnist", data_file: str | Path | None = None) -> Dataset:
    """Load the labelled data set ``name``, from ``data_file`` when given (same keys as Keras's mnist.npz)."""
    entry = datasets.entry(name)
    return entry.builder(data_file=None if data_file is None else str(data_file))


# Input sources: where the inputs of an untrained layer come from (the saturation experiment).
InputSource = Any
"""``source(rng: np.random.Generator, draws: int, dim: int) -> float32 array (draws, dim)``."""

inputs: Registry[InputSource] = Registry("input source")


@inputs.register("uniform")
def uniform(low: float = 0.0, high: float = 1.0) -> InputSource:
    """Independent U[low, high) inputs (the tutorial's ``np.random.random``: U[0, 1))."""
    if not low < high:
        raise InitlabError(f"uniform inputs: low ({low}) must be < high ({high})")
    return lambda rng, draws, dim: rng.uniform(low, high, size=(draws, dim)).astype(np.float32)


@inputs.register("normal", aliases=("gaussian",))
def normal(mean: float = 0.0, std: float = 1.0) -> InputSource:
    """Independent N(mean, std^2) inputs."""
    if not std > 0:
        raise InitlabError(f"normal inputs: std must be > 0, got {std}")
    return lambda rng, draws, dim: rng.normal(mean, std, size=(draws, dim)).astype(np.float32)


@inputs.register("mnist_images", aliases=("mnist",))
def mnist_images(data_file: str | None = None) -> InputSource:
    """Training images of MNIST drawn at random (784 inputs)."""

    def draw(rng: np.random.Generator, draws: int, dim: int) -> np.ndarray:
        data = _load_labelled("mnist", data_file)
        if dim != data.input_dim:
            raise InitlabError(f"mnist inputs have {data.input_dim} features, the layer asks for {dim}")
        return data.features("train")[rng.integers(0, len(data.x_train), size=draws)]

    return draw


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the training set: a permutation fixed by the seed.

    Drawn on the host (NumPy's PCG64 seeded by ``(seed, epoch)``), where it costs well under a
    millisecond and overlaps with the previous epoch's compiled work.
    """
    return np.random.default_rng([seed, epoch]).permutation(size).astype(np.int32)
