"""LSUV against Glorot/He on deep MLPs (Mishkin & Matas 2015's claim, on MNIST).

Depth-10 MLPs (width 128) with tanh and with relu hidden layers, softmax output, categorical
cross-entropy, SGD (lr 0.05, batch 128), ``--epochs`` epochs, ``--seeds`` seeds each: LSUV
against glorot_uniform (tanh) and he_normal (relu), all trained with initlab's ensembles. Prints
final validation accuracy mean ± std per (activation, initializer) and writes JSON.

Usage:
    python benchmarks/bench_lsuv.py [--epochs 3] [--seeds 0-2] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

BASELINES = {"tanh": "glorot_uniform", "relu": "he_normal"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    low, high = (int(v) for v in args.seeds.split("-"))

    import initlab
    from initlab.ensembles import train_many

    rows = []
    for activation, baseline in BASELINES.items():
        base = initlab.TrainConfig(
            hidden_units=(128,) * 10, activation=activation, loss="categorical_crossentropy",
            optimizer="sgd(learning_rate=0.05)", epochs=args.epochs,
        )
        configs = [dataclasses.replace(base, kernel_initializer=spec, seed=seed)
                   for spec in ("lsuv", baseline) for seed in range(low, high + 1)]
        results = train_many(configs)
        for spec in ("lsuv", baseline):
            finals = np.array([r.history["val_accuracy"][-1] for r in results if r.config.kernel_initializer == spec])
            rows.append({"activation": activation, "initializer": spec, "seeds": len(finals),
                         "val_accuracy_mean": float(finals.mean()), "val_accuracy_std": float(finals.std(ddof=1)),
                         "val_accuracy": finals.tolist()})
    text = json.dumps({"epochs": args.epochs, "depth": 10, "width": 128, "results": rows}, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
