"""initlab's coordinate check beside microsoft/mup's, on the same MLP, data and optimizer.

The network: 784 -> n -> n -> 10, ReLU, PyTorch's nn.Linear kernel initialization
(``torch.linear_default`` in initlab) and zero biases, Adam at 0.01, cross-entropy, MNIST batches of 64, widths
64...W, 3 seeds. mup: ``MuReadout`` + ``set_base_shapes`` (base width 64) + ``MuAdam``
(``mup=True``), or plain ``nn.Linear`` + ``torch.optim.Adam`` for SP; its ``get_coord_data``
records each module's mean |output| before each of its ``nsteps`` updates, on one fixed batch.
initlab records the same statistic (``initlab.scaling.coord_check``) before the first update and
after each, on the same fixed batch here (``fixed_batch=True``), so that
mup's t = 1, 2, 3 are initlab's steps 0, 1, 2. Compared: the fitted slope of log2 mean
|coordinate| against log2 width per layer and step, and the wall time of each whole check,
measured side by side in one process.

Usage: ``python benchmarks/bench_mup.py [--max-width 4096]`` (needs ``pip install mup``;
writes ``benchmarks/results_mup.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def mup_check(widths, parametrization, x, y, steps, seeds, lr):
    import torch
    from mup import MuReadout, set_base_shapes
    from mup.coord_check import get_coord_data
    from torch import nn

    def network(width, readout):
        model = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), readout(width, 10))
        for layer in model[::2]:
            nn.init.zeros_(layer.bias)  # zero biases, as initlab's check has
        return model

    def lazy(width):
        def make():
            if parametrization == "sp":
                return network(width, nn.Linear)
            model = network(width, MuReadout)
            set_base_shapes(model, network(widths[0], MuReadout), delta=network(widths[0] * 2, MuReadout))
            return model

        return make

    loader = [(torch.tensor(x), torch.tensor(y))]
    frame = get_coord_data(
        {w: lazy(w) for w in widths}, loader, optimizer="adam", lr=lr, mup=parametrization == "mup", nsteps=steps,
        nseeds=len(seeds), flatten_input=True, cuda=False, lossfn="xent", show_progress=False,
    )  # fmt: skip
    # Modules "1" and "3" are the ReLUs (hidden activations), "4" the readout (logits).
    slopes = {}
    for module, name in (("1", "Dense_0/activation"), ("3", "Dense_1/activation"), ("4", "Dense_2/logits")):
        rows = frame[frame.module == module]
        per_step = []
        for t in range(1, steps + 1):
            means = rows[rows.t == t].groupby("width").l1.mean().reindex(widths).to_numpy()
            per_step.append(float(np.polyfit(np.log2(widths), np.log2(means), 1)[0]))
        slopes[name] = per_step
    return slopes


def initlab_check(widths, parametrization, x, y, steps, seeds, lr, tmp):
    import initlab
    from initlab.scaling import coord_check

    # The batch as a data file (every class present, as initlab's data checks require); every step takes it.
    path = tmp / "fixed_batch.npz"
    images = (x.reshape(-1, 28, 28) * 255).round().astype(np.uint8)
    np.savez(path, x_train=images, y_train=y, x_test=images, y_test=y)
    initlab.configure()
    result = coord_check(
        parametrization, widths=widths, steps=steps, seeds=seeds, optimizer=f"adam(learning_rate={lr})",
        data_file=str(path), batch_size=len(y), fixed_batch=True,
    )  # fmt: skip
    slopes = result.slopes()
    return {name: [float(v) for v in slopes[i, :steps]] for i, name in enumerate(result.layers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-width", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_mup.json"))
    args = parser.parse_args()
    import tempfile

    from initlab.data import load

    widths = [2**k for k in range(6, int(np.log2(args.max_width)) + 1)]
    data = load("mnist")
    rng = np.random.default_rng(0)
    rows = rng.choice(len(data.x_train), 64, replace=False)
    x = (data.x_train[rows] / 255.0).astype(np.float32)
    y = data.y_train[rows].argmax(1).astype(np.int64)
    steps, seeds, lr = 3, (0, 1, 2), 0.01
    report = {"machine": platform.processor() or platform.machine(), "widths": widths, "steps": steps,
              "seeds": len(seeds), "optimizer": f"adam {lr}", "results": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for parametrization in ("sp", "mup"):
            started = time.perf_counter()
            ours = initlab_check(widths, parametrization, x, y, steps, seeds, lr, Path(tmp))
            ours_s = time.perf_counter() - started
            started = time.perf_counter()
            theirs = mup_check(widths, parametrization, x, y, steps, seeds, lr)
            theirs_s = time.perf_counter() - started
            report["results"][parametrization] = {
                "initlab_slopes": ours, "mup_slopes": theirs, "initlab_seconds": ours_s, "mup_seconds": theirs_s,
            }
            print(f"{parametrization}: initlab {ours_s:.1f} s, mup {theirs_s:.1f} s")
            for name in ours:
                print(f"  {name:20s} initlab {np.round(ours[name], 2)}  mup {np.round(theirs[name], 2)}")
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
