"""16 LeNet-sized CNNs on MNIST: one initlab ensemble against PyTorch training the same models one by one.

The network (both sides): Conv 5x5 (6) -> ReLU -> max-pool 2 -> Conv 5x5 (16) -> ReLU -> max-pool 2
-> Dense 120 -> ReLU -> Dense 84 -> ReLU -> Dense 10 -> softmax; 'valid' padding; cross-entropy,
SGD 0.01, batch 128, one epoch over the first ``--train-size`` training images (12800 by default:
100 steps; each model its own shuffle and initialization), then the 10000 validation images. initlab: ``cnn(channels=[6, 16], kernel_size=5,
padding='valid', dense=[120, 84])`` with ``--defaults torch`` (PyTorch's initialization), 16 seeds
as one vmapped program. PyTorch: the same model, plain tensors (no DataLoader), its threads at the
machine's cores, trained 16 times.

Work: 0.563 MFLOP per image forward (conv 172,800 + conv 307,200 + dense 83,280), training counted
as 3x forward: 21.6 GFLOP per model for 12800 images, plus 5.6 GFLOP of validation.

Usage: ``python benchmarks/bench_cnn_ensemble.py [--models 16]`` (writes ``results_cnn_ensemble.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_part_b import emit, peak_matmul_gflops  # noqa: E402

FORWARD_FLOPS = 2 * (24 * 24 * 6 * 25 + 8 * 8 * 16 * 25 * 6 + 256 * 120 + 120 * 84 + 84 * 10)
MODEL_EPOCH_FLOPS = 3 * 60000 * FORWARD_FLOPS + 10000 * FORWARD_FLOPS
"""A full MNIST epoch's work for one model (what ``bench_gpu.py`` counts)."""


def model_flops(train_size: int) -> int:
    return 3 * train_size * FORWARD_FLOPS + 10000 * FORWARD_FLOPS
SPEC = "cnn(channels=[6, 16], kernel_size=5, padding='valid', dense=[120, 84])"


def _subset(train_size: int, folder: str) -> str:
    """The first ``train_size`` training images and the 10000 validation ones, as an .npz of Keras's layout."""
    from initlab.data import load

    data = load("mnist")
    path = Path(folder) / "mnist_subset.npz"
    np.savez(path, x_train=data.x_train[:train_size].reshape(-1, 28, 28), y_train=data.y_train[:train_size].argmax(1),
             x_test=data.x_test.reshape(-1, 28, 28), y_test=data.y_test.argmax(1))
    return str(path)


def initlab_ensemble(models: int, data_file: str) -> dict:
    from initlab.training.config import TrainConfig
    from initlab.training.run import train_ensemble

    configs = [TrainConfig(data_file=data_file, architecture=SPEC, defaults="torch", loss="categorical_crossentropy",
                           optimizer="sgd(learning_rate=0.01)", batch_size=128, epochs=1, seed=seed) for seed in range(models)]
    started = time.perf_counter()
    results = train_ensemble(configs)
    wall = time.perf_counter() - started
    timings = results[0].timings
    return {"models": models, "train_s": timings["train_s"], "compile_s": timings["compile_s"], "wall_s": wall,
            "val_accuracy": [r.history["val_accuracy"][-1] for r in results]}


def torch_one_by_one(models: int, train_size: int) -> dict:
    import torch
    from torch import nn

    from initlab.data import load

    torch.set_num_threads(os.cpu_count() or 1)
    data = load("mnist")
    x = torch.from_numpy(data.x_train[:train_size].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    y = torch.from_numpy(data.y_train[:train_size].argmax(1))
    x_val = torch.from_numpy(data.x_test.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    y_val = torch.from_numpy(data.y_test.argmax(1))
    seconds, accuracies = [], []
    for seed in range(models):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loss_fn = nn.CrossEntropyLoss()
        started = time.perf_counter()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 128):
            index = order[start : start + 128]
            optimizer.zero_grad()
            loss_fn(model(x[index]), y[index]).backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = float((model(x_val).argmax(1) == y_val).float().mean())
        seconds.append(time.perf_counter() - started)
        accuracies.append(accuracy)
    return {"models": models, "train_s": sum(seconds), "train_s_per_model": seconds, "val_accuracy": accuracies,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--train-size", type=int, default=12800)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_cnn_ensemble.json"))
    args = parser.parse_args()
    results: dict = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "peak": peak_matmul_gflops()}
    results["train_size"] = args.train_size
    with tempfile.TemporaryDirectory() as folder:
        results["initlab"] = initlab_ensemble(args.models, _subset(args.train_size, folder))
    print("initlab", results["initlab"], flush=True)
    results["torch"] = torch_one_by_one(args.models, args.train_size)
    per_model = {side: results[side]["train_s"] / args.models for side in ("initlab", "torch")}
    results["speedup_per_model"] = per_model["torch"] / per_model["initlab"]
    results["speedup_per_model_with_compile"] = per_model["torch"] / (
        (results["initlab"]["train_s"] + results["initlab"]["compile_s"]) / args.models)
    best = max(results["peak"].values())
    for side in ("initlab", "torch"):
        gflops = model_flops(args.train_size) / per_model[side] / 1e9
        results[side] |= {"gflops": gflops, "fraction_of_peak": gflops / best}
    emit(results, args.out)


if __name__ == "__main__":
    main()
