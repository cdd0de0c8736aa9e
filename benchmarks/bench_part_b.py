"""Benchmark: the tutorial's Part B (784-64-10, MSE, SGD, batch 128, 20 epochs) on this machine.

Measures, in one run so that the ratios compare like with like:
- peak float32 matmul throughput of the machine (a 2048^3 matmul, NumPy and JAX, best of 10);
- initlab's training time for 20 epochs (compile excluded), with its sparse-input kernels and,
  alternating, with XLA's dense matmul, and the fraction of peak each reaches (dense-equivalent,
  and counting only the work done);
- the wall time of the whole ``initlab train`` process (import, data, compile included);
- Keras running the tutorial's code (``keras_tutorial.py``) for the same network, when Keras is
  installed, and the ratio of the two.

Usage:
    python benchmarks/bench_part_b.py [--repeats 3] [--keras-backend tensorflow|jax] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# FLOPs of one Part B epoch: per training sample, forward 2*784*64 + 2*64*10, backward
# dW1 2*784*64, dz1 2*64*10, dW2 2*64*10 (no gradient w.r.t. the inputs); plus the forward
# pass over the 10k validation samples.
TRAIN_FLOPS_PER_SAMPLE = 4 * 784 * 64 + 3 * 2 * 64 * 10
VAL_FLOPS_PER_SAMPLE = 2 * 784 * 64 + 2 * 64 * 10
EPOCH_FLOPS = 60000 * TRAIN_FLOPS_PER_SAMPLE + 10000 * VAL_FLOPS_PER_SAMPLE


def performed_epoch_flops() -> int:
    """FLOPs of one Part B epoch when the first layer's products skip MNIST's zero pixels.

    Counted from the shipped MNIST: per training sample, 4 * nonzeros * 64 (forward and weight
    gradient) plus the dense output layer; per validation sample, 2 * nonzeros * 64 plus it.
    """
    from initlab import data

    mnist = data.load("mnist")
    train_nonzeros = int(np.count_nonzero(mnist.x_train))
    test_nonzeros = int(np.count_nonzero(mnist.x_test))
    return 4 * 64 * train_nonzeros + 60000 * 3 * 2 * 64 * 10 + 2 * 64 * test_nonzeros + 10000 * 2 * 64 * 10


def throughput(seconds: float, peak: dict[str, float], epochs: int = 20) -> dict[str, float]:
    """GFLOP/s and fractions of peak of ``epochs`` Part B epochs in ``seconds``, two ways.

    Dense-equivalent counts every multiply-add of the dense products (the work XLA or Keras
    does; it exceeds peak when the zeros are skipped); performed counts only the work done.
    """
    dense = epochs * EPOCH_FLOPS / seconds / 1e9
    performed = epochs * performed_epoch_flops() / seconds / 1e9
    best = max(peak.values())
    return {
        "dense_equivalent_gflops": dense,
        "dense_equivalent_fraction_of_peak": dense / best,
        "performed_gflops": performed,
        "performed_fraction_of_peak": performed / best,
    }


def peak_matmul_gflops(size: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Best observed float32 matmul throughput, NumPy (BLAS) and JAX (XLA), in GFLOP/s."""
    import jax
    import jax.numpy as jnp

    import initlab

    initlab.configure(compilation_cache=True)  # as the CLI does, before any JAX computation

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    flops = 2 * size**3
    best_numpy = min(_timed(lambda: a @ a) for _ in range(repeats))
    matmul = jax.jit(lambda x: x @ x)
    device_a = jnp.asarray(a)
    matmul(device_a).block_until_ready()
    best_jax = min(_timed(lambda: matmul(device_a).block_until_ready()) for _ in range(repeats))
    return {"numpy_gflops": flops / best_numpy / 1e9, "jax_gflops": flops / best_jax / 1e9}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextmanager
def xla_dense_first_layer() -> Iterator[None]:
    """Inside: initlab trains the first layer with XLA's dense matmul, not its sparse-input kernels."""
    from initlab.accel import sparse_dense

    use_kernels = sparse_dense.input_matmul
    sparse_dense.input_matmul = lambda x_train: None
    try:
        yield
    finally:
        sparse_dense.input_matmul = use_kernels


def initlab_training(repeats: int) -> dict[str, float]:
    """Training time with initlab's sparse-input kernels and, alternating run by run, with XLA's dense matmul."""
    import initlab
    from initlab.accel import sparse_dense

    runs, xla_runs = [], []
    for seed in range(repeats):
        runs.append(initlab.train(initlab.TrainConfig(seed=seed)))
        with xla_dense_first_layer():
            xla_runs.append(initlab.train(initlab.TrainConfig(seed=seed)))
    train_seconds = [run.timings["train_s"] for run in runs]
    xla_seconds = [run.timings["train_s"] for run in xla_runs]
    return {
        "sparse_kernels": sparse_dense.available(),
        "train_s_best": min(train_seconds),
        "train_s_median": float(np.median(train_seconds)),
        "train_s_runs": train_seconds,
        "xla_dense_train_s_best": min(xla_seconds),
        "xla_dense_train_s_median": float(np.median(xla_seconds)),
        "xla_dense_train_s_runs": xla_seconds,
        "compile_s_median": float(np.median([run.timings["compile_s"] for run in runs])),
        "final_val_accuracy": [run.history["val_accuracy"][-1] for run in runs],
        "xla_dense_final_val_accuracy": [run.history["val_accuracy"][-1] for run in xla_runs],
    }


def initlab_process(repeats: int) -> dict[str, float]:
    """Wall time of ``initlab train --json`` as a user runs it, best and median."""
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "initlab.cli", "train", "--json", "--seed", str(seed)],
            check=True, capture_output=True,
        )
        times.append(time.perf_counter() - start)
    return {"process_s_best": min(times), "process_s_median": float(np.median(times))}


def keras_training(backend: str) -> dict[str, float] | None:
    import importlib.util

    if importlib.util.find_spec("keras") is None or importlib.util.find_spec(backend) is None:
        return None
    env = dict(os.environ, KERAS_BACKEND=backend)
    output = subprocess.run(
        [sys.executable, str(HERE / "keras_tutorial.py"), "--seeds", "0"],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    row = json.loads(output.strip().splitlines()[-1])
    return {"keras_backend": row["backend"], "keras_version": row["keras_version"], "keras_fit_s": row["fit_seconds"],
            "keras_final_val_accuracy": row["history"]["val_accuracy"][-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keras-backend", nargs="*", default=["tensorflow", "jax"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
    }
    peak = peak_matmul_gflops()
    results["peak"] = peak
    training = initlab_training(args.repeats)
    results["initlab"] = training | initlab_process(args.repeats)
    results["initlab"] |= throughput(training["train_s_best"], peak)
    results["initlab"]["xla_dense"] = throughput(training["xla_dense_train_s_best"], peak)
    for backend in args.keras_backend:
        keras_result = keras_training(backend)
        if keras_result is not None:
            # Keras's fit time includes its own compilation, so compare it with compile + train.
            initlab_seconds = training["train_s_median"] + training["compile_s_median"]
            keras_result["speedup_of_initlab"] = keras_result["keras_fit_s"] / initlab_seconds
            results[f"keras_{backend}"] = keras_result
    emit(results, args.json)


def emit(results: dict, path: Path | None) -> None:
    """Print the results as JSON and, with ``path``, write them there too."""
    text = json.dumps(results, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")


if __name__ == "__main__":
    main()
