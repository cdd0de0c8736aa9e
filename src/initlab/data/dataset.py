"""What a labelled data set is: :class:`Dataset`, inputs as stored and one-hot labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled data set: inputs flattened to ``(n, features)``, labels one-hot float32.

    Inputs keep their stored dtype (uint8 pixels for images) so that the trainer moves four
    times fewer bytes; ``features`` gives the float32 values, ``x.astype(float32) / scale``,
    exactly the tutorial's ``x.astype('float32') / 255``.
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    scale: float = 1.0
    source: str = ""
    example_shape: tuple[int, ...] = ()
    """One example's shape before flattening, ``(28, 28)`` for MNIST (``()``: ``(input_dim,)``)."""
    vocabulary: int | None = None
    """For sequences of token ids: how many ids there are (inputs are ids, not numbers)."""

    def features(self, split: str = "train") -> np.ndarray:
        """The float32 inputs of ``split`` ("train" or "test")."""
        x = self.x_train if split == "train" else self.x_test
        return x.astype(np.float32) / np.float32(self.scale)

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        return int(self.y_train.shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: images ``(height, width[, channels])``, sequences ``(length,)``."""
        return tuple(self.example_shape) or (self.input_dim,)


__all__ = ["Dataset"]
