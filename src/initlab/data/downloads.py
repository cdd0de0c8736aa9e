"""Downloaded data sets: a verified fetch into the cache, and parsers for their file formats.

``fetch`` streams a file into a temporary file beside its destination, checks its SHA-256 and
only then renames it into place, so an interrupted, truncated or corrupt transfer never leaves
a file that looks complete. Files live in ``<cache>/datasets/<name>/`` (``initlab.runtime.cache_dir``);
the parsed arrays are kept there as an ``.npz`` so that later loads read one file.

Environment: ``INITLAB_OFFLINE=1`` never touches the network (files already in the cache still
load); ``INITLAB_MIRROR=URL`` fetches every file from ``URL/<file name>`` instead of its origin
(a local mirror, or a test server), with the same checksums.

Example:
    >>> arrays, source = load_arrays("fashion_mnist", progress=lambda done, total: None)
    >>> arrays["x_train"].shape
    (60000, 28, 28)
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from initlab import __version__
from initlab.errors import InitlabError, shown, unknown
from initlab.runtime import cache_dir

OFFLINE_ENV = "INITLAB_OFFLINE"
MIRROR_ENV = "INITLAB_MIRROR"
INSECURE_ENV = "INITLAB_ALLOW_HTTP"
"""Set to 1 to let a mirror be plain ``http://`` (a local test server, say); by default only
``https://`` and ``file://`` are fetched, so a download cannot be tampered with on the way
(the checksum would catch it, but only after the whole file has come)."""
CHUNK_BYTES = 1 << 20
MAX_DOWNLOAD_BYTES = 1 << 30
"""No file is downloaded past this size (CIFAR-10, the largest, is 170 MB)."""

Progress = Callable[[int, "int | None"], None]
"""``progress(bytes_done, bytes_total)``; ``bytes_total`` is ``None`` when the server does not say."""

# The canonical Fashion-MNIST files as Keras serves them. SHA-256 values are those of Keras's
# own loader (keras/src/datasets/fashion_mnist.py, FILE_HASHES); the same digests appear in
# chainer's and TFDS's Fashion-MNIST loaders and match Zalando's published MD5s.
FASHION_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

# The CIFAR-10 python archive (170,498,071 bytes). SHA-256 is the ``file_hash`` of Keras's
# loader (keras/src/datasets/cifar10.py); the site itself publishes only its MD5,
# c58f30108f718f92721af3b95e74349a.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/"
CIFAR10_SHA256 = {
    "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
}


def offline() -> bool:
    """Whether ``INITLAB_OFFLINE`` forbids the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as lower-case hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _by_hand(url: str, destination: Path, sha256: str) -> str:
    return (
        f"to install it by hand, download {url} elsewhere and place it at {destination} "
        f"(SHA-256 {sha256}), or pass --data-file with an .npz of x_train, y_train, x_test, y_test"
    )


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


def check_url(url: str) -> None:
    """``url`` is one initlab fetches: ``https://host/...`` or ``file://...`` (``http://`` if allowed)."""
    parts = urllib.parse.urlsplit(url)
    allowed = ("https", "file") + (("http",) if os.environ.get(INSECURE_ENV, "") in ("1", "true", "yes") else ())
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
        raise InitlabError(f"malformed download URL '{shown(url)}': expected https://host/path or file:///path")
    if parts.scheme not in allowed:
        raise InitlabError(
            f"refusing to download over plain http ('{shown(url)}'): use an https:// or file:// mirror, "
            f"or set {INSECURE_ENV}=1"
        )


def fetch(
    url: str,
    destination: str | Path,
    sha256: str,
    *,
    timeout: float = 60,
    progress: Progress | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Download ``url`` to ``destination`` unless a file with checksum ``sha256`` is already there.

    The bytes stream into a temporary file in the destination's folder, are checked against
    ``sha256``, then renamed into place in one step (``os.replace``). On any failure, an
    interrupt included, the temporary file is removed and ``destination`` is left as it was.

    Args:
        url: where to download from (``http(s)://`` or ``file://``).
        destination: the file to create.
        sha256: the expected SHA-256 of the file, hex.
        timeout: seconds to wait for the server, per connection and per read.
        progress: called as ``progress(bytes_done, bytes_total)`` while downloading.
        max_bytes: the download stops (nothing saved) past this many bytes.

    Returns:
        ``destination``, as a ``Path``.

    Raises:
        InitlabError: offline, a malformed or plain-http URL, unreachable host, HTTP error,
            truncated, oversized or corrupt download.
    """
    check_url(url)
    destination = Path(destination).expanduser()
    expected = sha256.strip().lower()
    if destination.is_file() and file_sha256(destination) == expected:
        return destination
    if offline():
        raise InitlabError(f"{OFFLINE_ENV} is set, so {destination.name} is not downloaded; {_by_hand(url, destination, expected)}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        with os.fdopen(descriptor, "wb") as out:
            got, done, total = _stream(url, out, timeout, progress, destination, expected, max_bytes)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise InitlabError(
                f"download of {url} was cut short: got {done} of {total} bytes (nothing was saved; try again)"
            )
        if got != expected:
            raise InitlabError(
                f"download of {url} failed its checksum: expected SHA-256 {expected}, got {got} "
                f"({done} bytes; nothing was saved; try again, or check the mirror)"
            )
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return destination


def _stream(
    url: str, out: BinaryIO, timeout: float, progress: Progress | None, destination: Path, expected: str,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> tuple[str, int, int | None]:
    """Copy ``url`` into ``out``: (SHA-256 of the bytes, bytes received, Content-Length or None)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"initlab/{__version__}"})
    digest, done = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            too_large = f"download of {url} is larger than {max_bytes} bytes (nothing was saved; check the mirror)"
            if total is not None and total > max_bytes:
                raise InitlabError(too_large)
            if progress is not None:
                progress(0, total)
            while chunk := response.read(CHUNK_BYTES):
                done += len(chunk)
                if done > max_bytes:
                    raise InitlabError(too_large)
                out.write(chunk)
                digest.update(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as error:
        error.close()
        raise InitlabError(
            f"download of {url} failed: HTTP {error.code} {_one_line(error.reason)}; {_by_hand(url, destination, expected)}"
        ) from None
    except urllib.error.URLError as error:
        raise InitlabError(
            f"cannot download {url} (offline or unreachable: {_one_line(error.reason)}); "
            f"{_by_hand(url, destination, expected)}"
        ) from None
    except TimeoutError:
        raise InitlabError(
            f"download of {url} timed out after {timeout:g} s ({done} bytes received; nothing was saved); "
            f"{_by_hand(url, destination, expected)}"
        ) from None
    except (ConnectionError, EOFError, http.client.HTTPException) as error:
        raise InitlabError(
            f"download of {url} was cut short after {done} bytes ({_one_line(error) or type(error).__name__}; "
            "nothing was saved; try again)"
        ) from None
    except ValueError as error:  # a malformed URL or an unknown scheme
        raise InitlabError(f"cannot download {url}: {_one_line(error)}") from None
    return digest.hexdigest(), done, total


# Parsers. Both read files whose checksum was verified, and still check what they read.

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read a gzipped IDX file (LeCun's MNIST format): magic ``00 00 <type> <ndim>``, then sizes.

    ``ndim`` (1 for labels, 3 for images) is checked against the magic number when given.
    """
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise InitlabError(f"{path} is not a readable gzip file ({_one_line(error)})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise InitlabError(f"{path} is not an IDX file (magic number {raw[:4].hex() or 'missing'})")
    code, dims = raw[2], raw[3]
    if ndim is not None and dims != ndim:
        raise InitlabError(f"{path}: IDX magic number says {dims} dimension(s), expected {ndim}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise InitlabError(f"{path}: IDX header is cut short")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=dims, offset=4))
    dtype = np.dtype(IDX_TYPES[code])
    if len(raw) - header != int(np.prod(shape)) * dtype.itemsize:
        raise InitlabError(f"{path}: IDX data holds {len(raw) - header} bytes, its header says shape {shape}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: any other global is refused."""

    _reconstruct = np.zeros(0).__reduce__()[0]
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def read_cifar_batch(file: BinaryIO, name: str = "CIFAR batch") -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled CIFAR-10 batch: images ``(n, 32, 32, 3)`` uint8 (channel-last, as Keras), labels ``(n,)``.

    The batch is a dict with ``data`` (n, 3072) uint8, each row the red, green then blue
    32x32 planes, and ``labels``, n integers 0-9.
    """
    try:
        batch = _ArrayUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise InitlabError(f"{name} is not a CIFAR batch ({_one_line(error)})") from None
    if not isinstance(batch, dict):
        raise InitlabError(f"{name} is not a CIFAR batch (holds a {type(batch).__name__}, not a dict)")
    batch = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise InitlabError(f"{name}: 'data' must be an (n, 3072) uint8 array")
    labels = np.asarray(labels if labels is not None else [])
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise InitlabError(f"{name}: 'labels' must hold {len(data)} integers")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise InitlabError(f"{name}: labels must lie in 0-9")
    images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.uint8)


def read_cifar10_archive(path: str | Path) -> dict[str, np.ndarray]:
    """The four arrays of ``cifar-10-python.tar.gz``, read from the archive without extracting it."""
    wanted = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [name for name in wanted if name not in members]
            if missing:
                raise InitlabError(f"{path} lacks CIFAR-10 batch(es) {', '.join(missing)}")
            parts = {}
            for name in wanted:
                with archive.extractfile(members[name]) as member:
                    parts[name] = read_cifar_batch(io.BytesIO(member.read()), f"{path}:{name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise InitlabError(f"{path} is not a readable CIFAR-10 archive ({_one_line(error)})") from None
    train = [parts[name] for name in wanted[:-1]]
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": parts["test_batch"][0],
        "y_test": parts["test_batch"][1],
    }


def read_fashion_mnist(folder: str | Path) -> dict[str, np.ndarray]:
    """The four arrays of Fashion-MNIST from its IDX files in ``folder`` (Keras's layout)."""
    folder = Path(folder)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", ndim=3)
        y = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", ndim=1)
        if len(x) != len(y) or x.dtype != np.uint8 or y.dtype != np.uint8:
            raise InitlabError(f"{folder}: {prefix} images {x.shape} and labels {y.shape} do not match (uint8 each)")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays


# The registry of downloadable data sets, and their cache.


@dataclass(frozen=True)
class Remote:
    """A downloadable data set: its files (name -> SHA-256) under ``base_url``, and their parser."""

    base_url: str
    sha256: Mapping[str, str]
    parse: Callable[[Path], dict[str, np.ndarray]]


REMOTES = {
    "fashion_mnist": Remote(FASHION_MNIST_URL, FASHION_MNIST_SHA256, read_fashion_mnist),
    "cifar10": Remote(CIFAR10_URL, CIFAR10_SHA256, lambda folder: read_cifar10_archive(folder / "cifar-10-python.tar.gz")),
}


def dataset_folder(name: str) -> Path:
    """Where the files of data set ``name`` are kept: ``<cache>/datasets/<name>``."""
    return Path(cache_dir()).expanduser() / "datasets" / name


def _read_cache(path: Path, stamp: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "sha256" not in archive.files or str(archive["sha256"]) != stamp:
                return None
            return {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, EOFError, zlib.error):
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray], stamp: str) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as out:
            np.savez(out, sha256=np.array(stamp), **arrays)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def load_arrays(
    name: str,
    *,
    base_url: str | None = None,
    sha256: Mapping[str, str] | None = None,
    folder: str | Path | None = None,
    timeout: float = 60,
    progress: Progress | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of a downloadable data set (Keras's layout), downloading its files if needed.

    Args:
        name: a key of ``REMOTES`` ("fashion_mnist", "cifar10").
        base_url: where the files are, instead of ``$INITLAB_MIRROR`` or the canonical origin.
        sha256: file name -> SHA-256, replacing the published checksums (for tests and mirrors
            of other versions).
        folder: where to keep the files, instead of ``dataset_folder(name)``.
        timeout, progress: passed to ``fetch`` for each file.

    Returns:
        ``(arrays, source)``: ``x_train``, ``y_train``, ``x_test``, ``y_test``, and a description of
        where they came from.
    """
    if name not in REMOTES:
        raise unknown("downloadable data set", name, REMOTES)
    remote = REMOTES[name]
    checksums = dict(remote.sha256 if sha256 is None else sha256)
    base = base_url or os.environ.get(MIRROR_ENV) or remote.base_url
    folder = Path(folder).expanduser() if folder is not None else dataset_folder(name)
    cache = folder / f"{name}.npz"
    stamp = " ".join(f"{file}:{digest.lower()}" for file, digest in sorted(checksums.items()))
    source = f"{base.rstrip('/')}/ (cached in {folder})"
    arrays = _read_cache(cache, stamp) if cache.is_file() else None
    if arrays is not None:
        return arrays, source
    missing = [file for file, digest in checksums.items()
               if not ((folder / file).is_file() and file_sha256(folder / file) == digest.lower())]  # fmt: skip
    if missing and offline():
        listed = ", ".join(f"{file} (SHA-256 {checksums[file]})" for file in missing)
        raise InitlabError(
            f"{OFFLINE_ENV} is set, so {name} is not downloaded; to install it by hand, download from "
            f"{base.rstrip('/')}/ and place in {folder}{os.sep}: {listed}; "
            "or pass --data-file with an .npz of x_train, y_train, x_test, y_test"
        )
    for file, digest in checksums.items():
        fetch(f"{base.rstrip('/')}/{file}", folder / file, digest, timeout=timeout, progress=progress)
    arrays = remote.parse(folder)
    with contextlib.suppress(OSError):  # a read-only cache still loads, only more slowly next time
        _write_cache(cache, arrays, stamp)
    return arrays, source
