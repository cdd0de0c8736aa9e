"""LSUV against Glorot/He on deep MLPs (Mishkin & Matas 2015's claim, on MNIST).

Depth-10 MLPs (width 128) with tanh and with relu hidden layers, softmax output, categorical
cross-entropy, SGD (batch 128), ``--epochs`` epochs, ``--seeds`` seeds each: LSUV against
glorot_uniform (tanh) and he_normal (relu), over a grid of learning rates, all trained with
initlab's ensembles. An initializer changes the scale of every layer, and with it the learning
rate that suits the network, so the comparison is made both at each learning rate and at each
initializer's best learning rate of the grid (the usual protocol when comparing initializations).
Prints final validation accuracy mean ± std (and its standard error) per (activation,
initializer, learning rate) and writes JSON.

Usage:
    python benchmarks/bench_lsuv.py [--epochs 5] [--seeds 0-5] [--learning-rates 0.01,0.05,0.1,0.2,0.4] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

BASELINES = {"tanh": "glorot_uniform", "relu": "he_normal"}


def summary(finals: np.ndarray) -> dict:
    std = float(finals.std(ddof=1))
    return {"seeds": len(finals), "val_accuracy_mean": float(finals.mean()), "val_accuracy_std": std,
            "val_accuracy_se": std / np.sqrt(len(finals)), "val_accuracy": finals.tolist()}


def best_rows(rows: list[dict]) -> list[dict]:
    """For each (activation, initializer): the row of its best learning rate (highest mean)."""
    best: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["activation"], row["initializer"])
        if key not in best or row["val_accuracy_mean"] > best[key]["val_accuracy_mean"]:
            best[key] = row
    return list(best.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="0-5")
    parser.add_argument("--learning-rates", default="0.01,0.05,0.1,0.2,0.4")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    low, high = (int(v) for v in args.seeds.split("-"))
    learning_rates = [float(v) for v in args.learning_rates.split(",")]

    import initlab

    initlab.configure(compilation_cache=True)  # as the CLI does, before any JAX computation
    from initlab.training.ensembles import train_many

    rows = []
    started = time.perf_counter()
    for activation, baseline in BASELINES.items():
        base = initlab.TrainConfig(
            hidden_units=(128,) * 10, activation=activation, loss="categorical_crossentropy", epochs=args.epochs,
        )
        configs = [dataclasses.replace(base, kernel_initializer=spec, seed=seed, optimizer=f"sgd(learning_rate={lr})")
                   for lr in learning_rates for spec in ("lsuv", baseline) for seed in range(low, high + 1)]
        results = train_many(configs)
        for lr in learning_rates:
            for spec in ("lsuv", baseline):
                finals = np.array([r.history["val_accuracy"][-1] for r in results
                                   if r.config.kernel_initializer == spec
                                   and r.config.optimizer == f"sgd(learning_rate={lr})"])
                row = {"activation": activation, "initializer": spec, "learning_rate": lr, **summary(finals)}
                rows.append(row)
                print(f"{activation:5s} lr {lr:<5g} {spec:15s} {100 * row['val_accuracy_mean']:.2f}% "
                      f"± {100 * row['val_accuracy_std']:.2f} (se {100 * row['val_accuracy_se']:.2f})", flush=True)
    best = best_rows(rows)
    for row in best:
        print(f"best: {row['activation']:5s} {row['initializer']:15s} lr {row['learning_rate']:<5g} "
              f"{100 * row['val_accuracy_mean']:.2f}% ± {100 * row['val_accuracy_std']:.2f}")
    document = {"epochs": args.epochs, "depth": 10, "width": 128, "seeds": f"{low}-{high}",
                "learning_rates": learning_rates, "seconds": time.perf_counter() - started,
                "results": rows, "best_learning_rate": best}
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
