"""initlab on a GPU: a 1024-model Part B ensemble and a 64-model LeNet-sized CNN ensemble, one epoch each.

Install JAX's CUDA build first (``pip install -e '.[cuda]'``). Nothing in initlab is CPU-only: on a
GPU the first layer's product is XLA's (the sparse-input kernels are CPU code and step aside) and an
ensemble is one vmapped program on the one device. The script refuses to run, and writes nothing,
when JAX sees no GPU, so no CPU number is ever recorded as a GPU one.

Work counted as in ``bench_part_b.py`` (13.3 GFLOP per Part B epoch, dense-equivalent) and
``bench_cnn_ensemble.py`` (107 GFLOP per LeNet epoch with validation).

Usage: ``python benchmarks/bench_gpu.py [--part-b-models 1024] [--cnn-models 64]`` (writes ``results_gpu.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_cnn_ensemble import MODEL_EPOCH_FLOPS, SPEC  # noqa: E402

PART_B_EPOCH_FLOPS = 13.3e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part-b-models", type=int, default=1024)
    parser.add_argument("--cnn-models", type=int, default=64)
    args = parser.parse_args()
    import jax

    import initlab
    from initlab.training.config import TrainConfig
    from initlab.training.ensembles import train_many

    initlab.configure(compilation_cache=True)
    if jax.default_backend() != "gpu":
        raise SystemExit(f"no GPU: JAX's backend is {jax.default_backend()} (install initlab[cuda] on a GPU machine)")
    device = jax.devices()[0]
    results = {"device": device.device_kind, "jax": jax.__version__}
    runs = {
        "part_b": ([TrainConfig(epochs=1, seed=seed) for seed in range(args.part_b_models)], PART_B_EPOCH_FLOPS),
        "cnn": ([TrainConfig(architecture=SPEC, defaults="torch", loss="categorical_crossentropy", optimizer="sgd(learning_rate=0.01)",
                             epochs=1, seed=seed) for seed in range(args.cnn_models)], MODEL_EPOCH_FLOPS),
    }
    for name, (configs, flops) in runs.items():
        started = time.perf_counter()
        trained = train_many(configs)
        wall = time.perf_counter() - started
        train_s = sum({id(r.timings): r.timings["train_s"] for r in trained}.values())
        results[name] = {"models": len(trained), "wall_s": wall, "train_s": train_s,
                         "gflops": len(trained) * flops / train_s / 1e9, "matmul": sorted({r.matmul for r in trained})}
        print(name, results[name], flush=True)
    Path(__file__).with_name("results_gpu.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
