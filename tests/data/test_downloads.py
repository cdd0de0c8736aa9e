"""Tests of initlab.data.downloads: verified fetch, IDX and CIFAR parsers, and the downloaded data sets.

A local HTTP server (127.0.0.1, port 0) stands in for the data sets' hosts: it serves good,
truncated, slow and failing files and counts requests, so that reuse without the network can
be checked. The cache folder is ``tmp_path`` (``INITLAB_CACHE``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from initlab import data
from initlab.data import downloads
from initlab.errors import InitlabError


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class Server:
    """Serves ``routes``: path -> (status, body, declared Content-Length or None, seconds to stall)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None, float]] = {}
        self.requests: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests[self.path] += 1
                status, body, declared, stall = server.routes.get(self.path, (404, b"", None, 0.0))
                if status != 200:
                    self.send_error(status)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) if declared is None else declared))
                self.end_headers()
                half = len(body) // 2
                self.wfile.write(body[:half])
                self.wfile.flush()
                time.sleep(stall)
                self.wfile.write(body[half:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, status: int = 200, declared: int | None = None, stall: float = 0.0) -> str:
        self.routes[path] = (status, body, declared, stall)
        return self.url + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.close()


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path / "cache"))
    for name in (downloads.OFFLINE_ENV, downloads.MIRROR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(downloads.INSECURE_ENV, "1")  # the test server is plain http on localhost
    data._load_downloaded.cache_clear()
    yield
    data._load_downloaded.cache_clear()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BODY = bytes(range(256)) * 40


# fetch


def test_fetch_downloads_verifies_and_reuses_without_network(server, tmp_path, monkeypatch):
    url = server.add("/good.bin", BODY)
    destination = tmp_path / "files" / "good.bin"
    calls = []
    path = downloads.fetch(url, destination, sha256(BODY), progress=lambda done, total: calls.append((done, total)))
    assert path == destination and destination.read_bytes() == BODY
    assert os.listdir(destination.parent) == ["good.bin"]
    assert calls[0] == (0, len(BODY)) and calls[-1] == (len(BODY), len(BODY))
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    assert downloads.fetch(url, destination, sha256(BODY).upper()) == destination
    assert server.requests["/good.bin"] == 1


def test_fetch_replaces_a_file_with_the_wrong_checksum(server, tmp_path):
    url = server.add("/good.bin", BODY)
    destination = tmp_path / "good.bin"
    destination.write_bytes(BODY[:-1] + b"x")
    downloads.fetch(url, destination, sha256(BODY))
    assert destination.read_bytes() == BODY
    assert server.requests["/good.bin"] == 1
    assert os.listdir(tmp_path) == ["good.bin"]


def check_failure(url: str, folder: Path, *fragments: str, **options) -> str:
    """Fetch ``url`` expecting an InitlabError of one line naming ``fragments``; nothing is left."""
    with pytest.raises(InitlabError) as caught:
        downloads.fetch(url, folder / "file.bin", sha256(BODY), **options)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert os.listdir(folder) == []
    return message


def test_truncated_download_leaves_nothing(server, tmp_path):
    url = server.add("/short.bin", BODY, declared=len(BODY) + 1000)
    check_failure(url, tmp_path, "cut short", str(len(BODY) + 1000), url)


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    url = server.add("/bad.bin", BODY[::-1])
    check_failure(url, tmp_path, "checksum", f"expected SHA-256 {sha256(BODY)}", f"got {sha256(BODY[::-1])}")


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_names_status_and_url(server, tmp_path, status):
    url = server.add("/missing.bin", b"", status=status)
    check_failure(url, tmp_path, f"HTTP {status}", url)


def test_unreachable_host_says_how_to_place_the_file_by_hand(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/file.bin"
    message = check_failure(url, tmp_path, "unreachable", str(tmp_path / "file.bin"), sha256(BODY), "--data-file")
    assert message.startswith("cannot download")


def test_stalled_server_times_out(server, tmp_path):
    url = server.add("/slow.bin", BODY, stall=2.0)
    check_failure(url, tmp_path, "timed out", str(tmp_path / "file.bin"), timeout=0.3)


def test_offline_never_touches_the_network(server, tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    url = server.add("/good.bin", BODY)
    check_failure(url, tmp_path, downloads.OFFLINE_ENV, str(tmp_path / "file.bin"), sha256(BODY), "--data-file")
    assert server.requests["/good.bin"] == 0


def test_interrupt_removes_the_temporary_file(server, tmp_path):
    url = server.add("/good.bin", BODY)

    def interrupt(done: int, total: int | None) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        downloads.fetch(url, tmp_path / "file.bin", sha256(BODY), progress=interrupt)
    assert os.listdir(tmp_path) == []


# parsers


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes())


def test_read_idx_round_trips(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    (tmp_path / "images.gz").write_bytes(idx_bytes(images))
    np.testing.assert_array_equal(downloads.read_idx(tmp_path / "images.gz", ndim=3), images)
    wide = np.arange(6, dtype=">i4").reshape(2, 3)
    (tmp_path / "wide.gz").write_bytes(idx_bytes(wide))
    read = downloads.read_idx(tmp_path / "wide.gz")
    assert read.dtype == np.int32 and read.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize(
    "content, match",
    [
        (gzip.compress(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00"), "not an IDX file"),
        (gzip.compress(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00"), "not an IDX file"),
        (gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 1, 2, 2) + b"\x00" * 4), "expected 1"),
        (gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00" * 4), "header says shape"),
        (gzip.compress(b"\x00\x00\x08\x01\x00"), "cut short"),
        (b"not gzip at all", "gzip"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path, content, match):
    (tmp_path / "bad.gz").write_bytes(content)
    with pytest.raises(InitlabError, match=match):
        downloads.read_idx(tmp_path / "bad.gz", ndim=1)


def cifar_batch(count: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 3072), dtype=np.uint8), [int(i % 10) for i in range(seed, seed + count)]


def pickled_batch(rows: np.ndarray, labels: list[int]) -> bytes:
    # The real batches are Python 2 pickles read with encoding="bytes": their keys are bytes.
    content = {b"batch_label": b"testing batch", b"labels": labels, b"data": rows, b"filenames": [b"a.png"] * len(labels)}
    return pickle.dumps(content, protocol=3)


def test_read_cifar_batch_is_channel_last():
    rows, labels = cifar_batch(4, seed=1)
    images, read_labels = downloads.read_cifar_batch(io.BytesIO(pickled_batch(rows, labels)))
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert read_labels.tolist() == labels and read_labels.dtype == np.uint8
    for channel in range(3):  # row = red plane, green plane, blue plane, each row-major 32x32
        np.testing.assert_array_equal(images[:, :, :, channel], rows[:, channel * 1024 : (channel + 1) * 1024].reshape(4, 32, 32))
    assert images.reshape(4, -1)[0, :3].tolist() == [rows[0, 0], rows[0, 1024], rows[0, 2048]]


class Planted:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize(
    "content, match",
    [
        (pickle.dumps({b"data": Planted(), b"labels": []}), "refusing to load"),
        (pickle.dumps([1, 2]), "not a dict"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "uint8"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "2 integers"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "0-9"),
        (b"\x80\x03", "not a CIFAR batch"),
    ],
)
def test_read_cifar_batch_rejects_bad_batches(content, match):
    with pytest.raises(InitlabError, match=match):
        downloads.read_cifar_batch(io.BytesIO(content))


def cifar_archive(per_batch: int = 20) -> tuple[bytes, dict[str, np.ndarray]]:
    """A small cifar-10-python.tar.gz and the arrays it holds (images still (n, 3072) rows)."""
    buffer, rows_seen, labels_seen = io.BytesIO(), [], []
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for seed, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]):
            rows, labels = cifar_batch(per_batch, seed)
            content = pickled_batch(rows, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
            rows_seen.append(rows)
            labels_seen.append(labels)
    expected = {
        "x_train": np.concatenate(rows_seen[:5]),
        "y_train": np.concatenate(labels_seen[:5]),
        "x_test": rows_seen[5],
        "y_test": np.asarray(labels_seen[5]),
    }
    return buffer.getvalue(), expected


def test_read_cifar10_archive(tmp_path):
    content, expected = cifar_archive()
    (tmp_path / "cifar.tar.gz").write_bytes(content)
    arrays = downloads.read_cifar10_archive(tmp_path / "cifar.tar.gz")
    assert arrays["x_train"].shape == (100, 32, 32, 3) and arrays["x_test"].shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(arrays["x_train"].transpose(0, 3, 1, 2).reshape(100, 3072), expected["x_train"])
    np.testing.assert_array_equal(arrays["y_test"], expected["y_test"])


def test_read_cifar10_archive_needs_every_batch(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        archive.addfile(info, io.BytesIO(b""))
    (tmp_path / "cifar.tar.gz").write_bytes(buffer.getvalue())
    with pytest.raises(InitlabError, match="lacks CIFAR-10 batch"):
        downloads.read_cifar10_archive(tmp_path / "cifar.tar.gz")
    (tmp_path / "cifar.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(InitlabError, match="not a readable CIFAR-10 archive"):
        downloads.read_cifar10_archive(tmp_path / "cifar.tar.gz")


# the data sets, end to end through the local server


def serve_fashion_mnist(server: Server, train: int = 30, test: int = 20) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    arrays = {
        "x_train": rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(test) % 10).astype(np.uint8),
    }
    checksums = {}
    for prefix, split in (("train", "train"), ("t10k", "test")):
        for kind, key in (("images-idx3", "x"), ("labels-idx1", "y")):
            name = f"{prefix}-{kind}-ubyte.gz"
            content = idx_bytes(arrays[f"{key}_{split}"])
            server.add(f"/fashion/{name}", content)
            checksums[name] = sha256(content)
    return checksums, arrays


def test_published_checksums_cover_the_canonical_files():
    assert set(downloads.FASHION_MNIST_SHA256) == {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
    }
    assert set(downloads.CIFAR10_SHA256) == {"cifar-10-python.tar.gz"}
    for digest in [*downloads.FASHION_MNIST_SHA256.values(), *downloads.CIFAR10_SHA256.values()]:
        assert len(digest) == 64 and int(digest, 16) >= 0
    assert set(downloads.REMOTES) <= set(data.datasets.names)


def test_load_arrays_with_base_url_then_from_the_npz_cache(server, tmp_path, monkeypatch):
    checksums, expected = serve_fashion_mnist(server)
    arrays, source = downloads.load_arrays("fashion_mnist", base_url=server.url + "/fashion/", sha256=checksums)
    for key, value in expected.items():
        np.testing.assert_array_equal(arrays[key], value)
    folder = downloads.dataset_folder("fashion_mnist")
    assert folder == tmp_path / "cache" / "datasets" / "fashion_mnist" and str(folder) in source
    assert sorted(os.listdir(folder)) == sorted([*checksums, "fashion_mnist.npz"])
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    for name in checksums:  # the .npz alone suffices
        (folder / name).unlink()
    again, _ = downloads.load_arrays("fashion_mnist", base_url=server.url + "/fashion/", sha256=checksums)
    np.testing.assert_array_equal(again["x_test"], expected["x_test"])
    assert set(server.requests.values()) == {1}
    with pytest.raises(InitlabError, match=downloads.OFFLINE_ENV):  # other checksums: the .npz is stale
        downloads.load_arrays("fashion_mnist", base_url=server.url + "/fashion/", sha256={**checksums, "x": "0" * 64})


def test_fashion_mnist_dataset_through_a_mirror(server, monkeypatch):
    checksums, expected = serve_fashion_mnist(server)
    for name, digest in checksums.items():
        monkeypatch.setitem(downloads.FASHION_MNIST_SHA256, name, digest)
    monkeypatch.setenv(downloads.MIRROR_ENV, server.url + "/fashion")
    dataset = data.load("fashion_mnist")
    assert (dataset.name, dataset.input_dim, dataset.classes, dataset.scale) == ("fashion_mnist", 784, 10, 255.0)
    assert dataset.x_train.shape == (30, 784) and dataset.x_train.dtype == np.uint8
    assert dataset.y_test.shape == (20, 10) and dataset.y_test.dtype == np.float32
    np.testing.assert_array_equal(dataset.y_train.argmax(1), expected["y_train"])
    np.testing.assert_array_equal(dataset.y_train.sum(1), 1.0)
    np.testing.assert_array_equal(dataset.x_test, expected["x_test"].reshape(20, 784))
    assert data.datasets.build("FashionMNIST") is dataset  # cached


def test_cifar10_dataset_through_a_mirror(server, monkeypatch):
    content, expected = cifar_archive()
    server.add("/cifar/cifar-10-python.tar.gz", content)
    monkeypatch.setitem(downloads.CIFAR10_SHA256, "cifar-10-python.tar.gz", sha256(content))
    monkeypatch.setenv(downloads.MIRROR_ENV, server.url + "/cifar/")
    dataset = data.load("cifar10")
    assert (dataset.input_dim, dataset.classes, dataset.scale) == (3072, 10, 255.0)
    assert dataset.x_train.shape == (100, 3072) and dataset.x_test.shape == (20, 3072)
    assert dataset.y_train.shape == (100, 10) and dataset.y_train.dtype == np.float32
    np.testing.assert_array_equal(dataset.y_test.argmax(1), expected["y_test"])
    keras_layout = expected["x_train"].reshape(100, 3, 32, 32).transpose(0, 2, 3, 1).reshape(100, 3072)
    np.testing.assert_array_equal(dataset.x_train, keras_layout)
    data._load_downloaded.cache_clear()
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    np.testing.assert_array_equal(data.load("cifar10").x_test, dataset.x_test)
    assert server.requests["/cifar/cifar-10-python.tar.gz"] == 1


def test_downloaded_dataset_offline_error_names_the_cache_path(monkeypatch, tmp_path):
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    folder = tmp_path / "cache" / "datasets" / "cifar10"
    with pytest.raises(InitlabError) as caught:
        data.load("cifar10")
    message = str(caught.value)
    assert f"place in {folder}{os.sep}: cifar-10-python.tar.gz" in message
    assert downloads.CIFAR10_SHA256["cifar-10-python.tar.gz"] in message
    assert "--data-file" in message and "\n" not in message


def test_data_file_accepts_keras_cifar10_labels(tmp_path):
    rng = np.random.default_rng(5)
    np.savez(
        tmp_path / "cifar.npz",
        x_train=rng.integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8),
        y_train=(np.arange(30) % 10).astype(np.uint8).reshape(30, 1),
        x_test=rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8),
        y_test=(np.arange(10) % 10).astype(np.uint8).reshape(10, 1),
    )
    dataset = data.load("cifar10", tmp_path / "cifar.npz")
    assert dataset.x_train.shape == (30, 3072) and dataset.y_train.shape == (30, 10)
    assert dataset.source == str(tmp_path / "cifar.npz")


def test_unknown_downloadable_name_suggests():
    with pytest.raises(InitlabError, match="did you mean 'cifar10'"):
        downloads.load_arrays("cifar01")


def test_plain_http_is_refused_unless_allowed(server, tmp_path, monkeypatch):
    monkeypatch.delenv(downloads.INSECURE_ENV)
    content = b"x" * 100
    url = server.add("/file.bin", content)
    with pytest.raises(InitlabError, match=f"refusing to download over plain http.*{downloads.INSECURE_ENV}=1"):
        downloads.fetch(url, tmp_path / "file.bin", sha256(content))
    assert server.requests["/file.bin"] == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["example.com/file.bin", "ftp://example.com/file.bin", "https:///file.bin", "https//x"])
def test_malformed_mirror_urls_are_one_line_errors(url, tmp_path):
    with pytest.raises(InitlabError, match="malformed download URL"):
        downloads.fetch(url, tmp_path / "file.bin", "0" * 64)


def test_a_download_larger_than_the_cap_is_stopped_and_nothing_saved(server, tmp_path):
    content = b"y" * 5000
    url = server.add("/big.bin", content)
    with pytest.raises(InitlabError, match="larger than 1000 bytes"):
        downloads.fetch(url, tmp_path / "big.bin", sha256(content), max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


def test_offline_lists_every_file_to_place_by_hand(tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    with pytest.raises(InitlabError) as raised:
        downloads.load_arrays("fashion_mnist", folder=tmp_path)
    message = str(raised.value)
    for file, digest in downloads.FASHION_MNIST_SHA256.items():
        assert file in message and digest in message
