"""Benchmark: what per-layer probes (one per epoch, 1000-sample probe batch) add to training time.

Trains the tutorial's Part B for 20 epochs with and without ``probe_every=1``, alone and as an
ensemble of 16 models (4 initializers x 4 seeds), alternating the two variants ``--repeats``
times in one process so that the ratio compares like with like. Compilation is excluded
(both variants' programs are compiled before timing; the probes at initialization count as
compilation-side work).

Usage:
    python benchmarks/bench_probes.py [--repeats 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

INITIALIZERS = ["RandomNormal()", "glorot_uniform", "he_normal", "lecun_normal"]


def measure(repeats: int) -> dict[str, float]:
    import initlab

    initlab.configure(compilation_cache=True)  # as the CLI does, before any JAX computation
    from initlab.training.ensembles import train_ensemble

    dataset = initlab.load_dataset("mnist")
    base = initlab.TrainConfig()
    ensemble = [dataclasses.replace(base, kernel_initializer=k, seed=s) for k in INITIALIZERS for s in range(4)]
    times: dict[str, list[float]] = {"single": [], "single_probed": [], "ensemble16": [], "ensemble16_probed": []}
    for _ in range(repeats):
        for probed in (False, True):
            suffix = "_probed" if probed else ""
            config = dataclasses.replace(base, probe_every=1 if probed else 0)
            times["single" + suffix].append(initlab.train(config, dataset=dataset).timings["train_s"])
            configs = [dataclasses.replace(c, probe_every=1 if probed else 0) for c in ensemble]
            times["ensemble16" + suffix].append(train_ensemble(configs, dataset=dataset)[0].timings["train_s"])
    best = {name: float(np.min(values)) for name, values in times.items()}
    best["single_overhead"] = best["single_probed"] / best["single"] - 1
    best["ensemble16_overhead"] = best["ensemble16_probed"] / best["ensemble16"] - 1
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    text = json.dumps(measure(args.repeats), indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
