"""Benchmark: many Part B models at once (vmapped ensembles) and a 35-run sweep beside Keras.

1. An ensemble of 16 models of the tutorial's Part B (4 initializers x 4 seeds, 20 epochs):
   training seconds per model with initlab's sparse-input kernels and, alternating, with XLA's
   dense matmul, and the fraction of the machine's peak matmul throughput each reaches.
2. A 35-run sweep (7 initializers x 5 seeds) timed end to end (``initlab sweep`` in a fresh
   process, store included) beside Keras running the same 35 models one by one
   (``keras_tutorial.py``), when Keras is installed. ``--keras-runs N`` times only N of the 35
   Keras runs and scales up (said so in the output).

Usage:
    python benchmarks/bench_ensemble.py [--repeats 3] [--skip-sweep] [--keras-backend jax] [--keras-runs 35] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_part_b import emit, peak_matmul_gflops, throughput, xla_dense_first_layer  # noqa: E402

INITIALIZERS = ["RandomNormal()", "RandomNormal(stddev=1.0)", "glorot_uniform", "glorot_normal",
                "he_normal", "lecun_normal", "orthogonal"]


def ensemble_16(repeats: int = 3) -> dict[str, object]:
    """Train the 16-model ensemble ``repeats`` times in this process; compile time is excluded.

    Alternating run by run, the same ensemble is also trained with XLA's dense matmul in the first
    layer instead of initlab's sparse-input kernels (split across one device per core, as
    initlab does then). The first training of a process also pays for first-touch memory and
    thread start-up (it was 20-40% slower here), so each run is reported, with the best and the
    median.
    """
    import statistics

    import initlab

    initlab.configure(compilation_cache=True)  # as the CLI does, before any JAX computation
    from initlab.accel import sparse_dense
    from initlab.training.ensembles import train_ensemble

    configs = [initlab.TrainConfig(kernel_initializer=spec, seed=seed) for spec in INITIALIZERS[:4] for seed in range(4)]
    runs, xla_runs = [], []
    for _ in range(repeats):
        runs.append(train_ensemble(configs))
        with xla_dense_first_layer():
            xla_runs.append(train_ensemble(configs))
    per_model = [run[0].timings["train_s"] / len(configs) for run in runs]
    xla_per_model = [run[0].timings["train_s"] / len(configs) for run in xla_runs]
    best = min(per_model)
    return {
        "models": len(configs),
        "sparse_kernels": sparse_dense.available(),
        "compile_s": runs[0][0].timings["compile_s"],
        "train_s_per_model_runs": per_model,
        "train_s_per_model": best,
        "train_s_per_model_median": statistics.median(per_model),
        "xla_dense_train_s_per_model_runs": xla_per_model,
        "xla_dense_train_s_per_model_median": statistics.median(xla_per_model),
        "final_val_accuracy": [r.history["val_accuracy"][-1] for r in runs[0]],
        "xla_dense_final_val_accuracy": [r.history["val_accuracy"][-1] for r in xla_runs[0]],
    }


def sweep_35(workdir: Path) -> dict[str, float]:
    sweep = workdir / "sweep35.toml"
    sweep.write_text(
        'name = "bench35"\n[grid]\nkernel_initializer = [' + ", ".join(json.dumps(s) for s in INITIALIZERS) + ']\nseed = "0-4"\n'
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "initlab.cli", "sweep", str(sweep), "--store", str(workdir / "s.sqlite"), "--json"],
                   check=True, capture_output=True)
    return {"runs": 35, "initlab_sweep_s": time.perf_counter() - start}


def keras_35(backend: str, runs: int) -> dict[str, float] | None:
    import importlib.util

    if importlib.util.find_spec("keras") is None or importlib.util.find_spec(backend) is None:
        return None
    env = dict(os.environ, KERAS_BACKEND=backend)
    pairs = [(spec, seed) for spec in INITIALIZERS for seed in range(5)][:runs]
    start = time.perf_counter()
    for spec, seed in pairs:
        subprocess.run([sys.executable, str(HERE / "keras_tutorial.py"), "--seeds", str(seed), "--init", spec],
                       check=True, capture_output=True, env=env)
    seconds = time.perf_counter() - start
    return {"keras_backend": backend, "keras_runs_timed": len(pairs), "keras_35_s": seconds * 35 / len(pairs),
            "keras_35_extrapolated": len(pairs) < 35}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-backend", default="jax")
    parser.add_argument("--keras-runs", type=int, default=35)
    parser.add_argument("--repeats", type=int, default=3, help="trainings of the 16-model ensemble")
    parser.add_argument("--skip-sweep", action="store_true", help="only the 16-model ensemble")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, object] = {"peak": peak_matmul_gflops()}
    results["ensemble16"] = ensemble_16(args.repeats)
    ensemble = results["ensemble16"]
    ensemble |= throughput(ensemble["train_s_per_model"], results["peak"])
    ensemble["xla_dense"] = throughput(min(ensemble["xla_dense_train_s_per_model_runs"]), results["peak"])
    if args.skip_sweep:
        emit(results, args.json)
        return
    with tempfile.TemporaryDirectory() as workdir:
        results["sweep35"] = sweep_35(Path(workdir))
    keras = keras_35(args.keras_backend, args.keras_runs) if args.keras_runs > 0 else None
    if keras is not None:
        keras["speedup_of_initlab"] = keras["keras_35_s"] / results["sweep35"]["initlab_sweep_s"]
        results["keras"] = keras
    emit(results, args.json)


if __name__ == "__main__":
    main()
