"""One LeNet training step (batch 128) in XLA:CPU, four ways, beside PyTorch: why CNN ensembles are slow on CPU.

Times, per step: one model; 16 models vmapped (the second convolution becomes a grouped one); the
16 inside a ``lax.scan`` of 10 steps (as one epoch program would run them); the same 10 steps
unrolled; and PyTorch's own step for one model. Max-pooling by reshape (its gradient is cheaper
in XLA than ``reduce_window``'s select-and-scatter). Gradient of a sum of squares of the logits.

Usage: ``python benchmarks/bench_conv_step.py`` (prints JSON; ``results_conv_step.json``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

BATCH, MODELS, STEPS, REPEATS = 128, 16, 10, 5


def main() -> None:
    import jax
    import jax.numpy as jnp
    from jax import lax

    import initlab

    initlab.configure(compilation_cache=True)

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def pool(h):
        b, height, width, c = h.shape
        return h.reshape(b, height // 2, 2, width // 2, 2, c).max(axis=(2, 4))

    def loss(p, x):
        h = pool(jax.nn.relu(conv(x, p["w1"])))
        h = pool(jax.nn.relu(conv(h, p["w2"]))).reshape(x.shape[0], -1)
        h = jax.nn.relu(jax.nn.relu(h @ p["d1"]) @ p["d2"])
        return jnp.sum((h @ p["d3"]) ** 2)

    rng = np.random.default_rng(0)
    shapes = {"w1": (5, 5, 1, 6), "w2": (5, 5, 6, 16), "d1": (256, 120), "d2": (120, 84), "d3": (84, 10)}
    p = {k: jnp.asarray(rng.normal(0, 0.1, s).astype(np.float32)) for k, s in shapes.items()}
    x = jnp.asarray(rng.random((BATCH, 28, 28, 1)).astype(np.float32))
    stacked = jax.tree.map(lambda a: jnp.stack([a] * MODELS), p)
    xs = jnp.stack([x] * STEPS)
    grad = jax.grad(loss)
    vgrad = jax.vmap(grad, in_axes=(0, None))

    def update(ps, batch):
        return jax.tree.map(lambda a, b: a - 0.01 * b, ps, vgrad(ps, batch))

    def scanned(ps, xs):
        return lax.scan(lambda ps, batch: (update(ps, batch), 0), ps, xs)[0]

    def unrolled(ps, xs):
        for index in range(STEPS):
            ps = update(ps, xs[index])
        return ps

    cases = {
        "one model": (jax.jit(grad), (p, x), 1),
        f"{MODELS} vmapped": (jax.jit(vgrad), (stacked, x), 1),
        f"{MODELS} vmapped, {STEPS} steps in a lax.scan": (jax.jit(scanned), (stacked, xs), STEPS),
        f"{MODELS} vmapped, {STEPS} steps unrolled": (jax.jit(unrolled), (stacked, xs), STEPS),
    }
    results = {}
    for name, (fn, args, steps) in cases.items():
        jax.block_until_ready(fn(*args))
        started = time.perf_counter()
        for _ in range(REPEATS):
            jax.block_until_ready(fn(*args))
        results[name] = (time.perf_counter() - started) / REPEATS / steps * 1000
    import torch

    torch.set_num_threads(2)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(256, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84),
        torch.nn.ReLU(), torch.nn.Linear(84, 10),
    )
    images = torch.rand(BATCH, 1, 28, 28)
    for _ in range(3):
        model.zero_grad()
        (model(images) ** 2).sum().backward()
    started = time.perf_counter()
    for _ in range(20):
        model.zero_grad()
        (model(images) ** 2).sum().backward()
    results["PyTorch, one model"] = (time.perf_counter() - started) / 20 * 1000
    document = {"ms_per_step": results, "torch": torch.__version__, "jax": jax.__version__}
    text = json.dumps(document, indent=2)
    print(text)
    Path(__file__).with_name("results_conv_step.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
