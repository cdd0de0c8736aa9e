"""Small synthetic data sets in Keras's mnist layout, for tests that need a data file."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mnist_like(path: Path, train: int = 256, test: int = 64, seed: int = 0) -> Path:
    """An .npz with x_train/x_test uint8 (n, 28, 28) noise and labels cycling through 0-9."""
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x_train=rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        y_train=(np.arange(train) % 10).astype(np.uint8),
        x_test=rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        y_test=(np.arange(test) % 10).astype(np.uint8),
    )
    return path
