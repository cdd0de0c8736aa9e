"""The seed tutorial's Part B, run by Keras itself, for reference numbers and timing.

Runs the tutorial's exact code (784-64 sigmoid RandomNormal() -> 10 softmax, MSE, SGD lr 0.01,
batch 128, 20 epochs) once per seed and prints one JSON line per seed with the final history
and the wall-clock time of ``model.fit``. Keras picks its backend from ``KERAS_BACKEND``
(tensorflow when installed, else set ``KERAS_BACKEND=jax``).

Usage:
    KERAS_BACKEND=jax python benchmarks/keras_tutorial.py --seeds 0-9 [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "src" / "initlab" / "data" / "mnist.npz"


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def run_seed(seed: int, epochs: int, data_file: Path, initializer: str = "RandomNormal()") -> dict:
    import keras
    from keras import initializers, layers

    keras.utils.set_random_seed(seed)
    with np.load(data_file) as f:
        x_train, y_train, x_test, y_test = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    x_train = x_train.reshape(60000, 784).astype("float32") / 255
    x_test = x_test.reshape(10000, 784).astype("float32") / 255
    y_train = keras.utils.to_categorical(y_train, 10)
    y_test = keras.utils.to_categorical(y_test, 10)
    kernel_init = {
        "RandomNormal()": initializers.RandomNormal(),
        "RandomNormal(stddev=1.0)": initializers.RandomNormal(stddev=1.0),
        "glorot_uniform": "glorot_uniform",
        "glorot_normal": "glorot_normal",
        "he_normal": "he_normal",
        "lecun_normal": "lecun_normal",
        "orthogonal": "orthogonal",
    }[initializer]
    model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            layers.Dense(64, kernel_initializer=kernel_init, bias_initializer=initializers.Zeros()),
            layers.Activation("sigmoid"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="mean_squared_error", optimizer=keras.optimizers.SGD(learning_rate=0.01), metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, batch_size=128, epochs=epochs, verbose=0, validation_data=(x_test, y_test)
    )
    seconds = time.perf_counter() - start
    return {
        "seed": seed,
        "initializer": initializer,
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "fit_seconds": seconds,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--init", default="RandomNormal()")
    parser.add_argument("--data-file", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    for seed in parse_seeds(args.seeds):
        print(json.dumps(run_seed(seed, args.epochs, args.data_file, args.init)), flush=True)


if __name__ == "__main__":
    main()
