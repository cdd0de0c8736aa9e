"""Benchmark: this checkout's engine against an older initlab, alternating in one run.

Each measurement runs in a fresh process, old and new taking turns, so that a busy hour of this
shared machine weighs on both alike:

- ``part_b``: the tutorial's Part B (784-64-10, 20 epochs), training time of a process's second
  and third training (the first pays for first-touch memory and thread start-up);
- ``process``: the whole ``initlab train`` process, wall time (import, data, compile from the
  warm cache, training, output);
- ``ensemble``: 16 Part B models (4 initializers x 4 seeds) as one ensemble, training seconds per
  model, of a process's second ensemble.

Usage:
    git worktree add /tmp/initlab-old <commit>      # or: git archive <commit> | tar x -C /tmp/initlab-old
    python benchmarks/bench_engine.py --old /tmp/initlab-old/src [--rounds 4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEW_SRC = HERE.parent / "src"

MEASURE = r"""
import json, sys, time
import initlab
if hasattr(initlab, "configure"):
    initlab.configure(compilation_cache=True)
try:
    from initlab.training.run import train_ensemble
except ImportError:  # an initlab from before the layered package
    from initlab.ensembles import train_ensemble
kind = sys.argv[1]
data = initlab.load_dataset("mnist")
if kind == "part_b":
    times = [initlab.train(initlab.TrainConfig(), dataset=data).timings["train_s"] for _ in range(3)][1:]
    result = initlab.train(initlab.TrainConfig(), dataset=data)
    print(json.dumps({"seconds": times, "val_accuracy": result.history["val_accuracy"][-1]}))
else:
    specs = ["RandomNormal()", "glorot_uniform", "he_normal", "lecun_normal"]
    configs = [initlab.TrainConfig(kernel_initializer=s, seed=seed) for s in specs for seed in range(4)]
    runs = [train_ensemble(configs, dataset=data) for _ in range(2)]
    print(json.dumps({"seconds": [runs[-1][0].timings["train_s"] / len(configs)],
                      "val_accuracy": [r.history["val_accuracy"][-1] for r in runs[-1]]}))
"""


def _env(src: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": src}


def measure(kind: str, src: str) -> dict:
    if kind == "process":
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from initlab.cli import main; main()", "train"],
            env=_env(src), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return {"seconds": [time.perf_counter() - started]}
    out = subprocess.run([sys.executable, "-c", MEASURE, kind], env=_env(src), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the src/ folder of the older initlab")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--kinds", default="part_b,process,ensemble")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, dict[str, list]] = {}
    for kind in args.kinds.split(","):
        results[kind] = {"old": [], "new": [], "old_accuracy": None, "new_accuracy": None}
        measure(kind, args.old), measure(kind, str(NEW_SRC))  # warm both caches (compiled programs, kernels)
        for _ in range(args.rounds):
            for side, src in (("old", args.old), ("new", str(NEW_SRC))):
                measured = measure(kind, src)
                results[kind][side] += measured["seconds"]
                results[kind][f"{side}_accuracy"] = measured.get("val_accuracy")
        for side in ("old", "new"):
            values = results[kind][side]
            print(f"{kind:8s} {side}: best {min(values):.3f} s, median {statistics.median(values):.3f} s  "
                  f"({', '.join(f'{v:.2f}' for v in values)})")
        ratio = statistics.median(results[kind]["new"]) / statistics.median(results[kind]["old"])
        print(f"{kind:8s} new/old median: {ratio:.3f}; same val_accuracy: "
              f"{results[kind]['old_accuracy'] == results[kind]['new_accuracy']}")
    if args.json:
        payload = {"machine": _cpu_name(), "cpus": os.cpu_count(), "results": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
