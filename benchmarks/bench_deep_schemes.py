"""The initialization schemes of deep networks, measured: isometry, residual streams, training.

Parts (``--parts``, all by default; each adds its entry to ``results_deep_schemes.json``):

- ``isometry``: a 200-layer tanh CNN (16 channels, 'same' padding, 8x8x16 normal inputs at the
  mean-field fixed point q*) at the edge of chaos (sigma_b^2 = 1e-6, sigma_w^2 critical): the
  singular values of its input-output Jacobian with delta-orthogonal kernels and with Gaussian ones
  of the same variance (Xiao et al. 2018).
- ``residual``: per block, the residual stream's root-mean-square at initialization of a 16-block
  ResNet without normalization (default init, Fixup, SkipInit) on 256 MNIST images; then a 16-block
  residual MLP (width 64) without normalization trained on MNIST with each scheme, 3 seeds, 3 epochs,
  SGD 0.1, cross-entropy (Zhang et al. 2019; De & Smith 2020).
- ``transformer``: an 8-block Transformer (d_model 64, 4 heads, causal) on the generated
  modular-addition task, Adam 1e-3 without warm-up, 10 epochs, 3 seeds: post-LN with the default
  (Flax) initialization, pre-LN, T-Fixup (no LayerNorm) and DeepNorm (post-LN) (Huang et al. 2020;
  Wang et al. 2022).
- ``plain_cnn``: a 32-layer plain tanh CNN (8 channels) on MNIST downsampled to 14x14 (the first
  6000 training images, 2000 validation), SGD 0.01, 2 epochs, 2 seeds: delta-orthogonal at the
  edge of chaos against Glorot-uniform kernels; ``plain_cnn_lr0.1_5_epochs``: the same at SGD 0.1 for
  5 epochs (a second run, added after the first had left both near chance: both are reported).

Usage: ``python benchmarks/bench_deep_schemes.py [--parts isometry,residual,...]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("results_deep_schemes.json")
SIGMA_B2 = 1e-6


def _critical():
    from initlab.mean_field.theory import critical_sigma_w2, fixed_point_q

    sigma_w2 = critical_sigma_w2(SIGMA_B2, "tanh")
    return sigma_w2, fixed_point_q(sigma_w2, SIGMA_B2, "tanh").q_star


def isometry() -> dict:
    from initlab.measure.networks import propagate_network, singular_value_summary

    sigma_w2, q_star = _critical()
    specs = [f"delta_orthogonal(gain={math.sqrt(sigma_w2)!r})", f"variance_scaling(scale={sigma_w2!r}, distribution='untruncated_normal')"]
    started = time.perf_counter()
    result = propagate_network("cnn(depth=200, channels=16, activation='tanh')", specs, inputs="normal", input_shape=(8, 8, 16),
                               input_std=math.sqrt(q_star), batch=16, jacobian=True,
                               bias_initializer=f"random_normal(stddev={math.sqrt(SIGMA_B2)!r})")
    return {"sigma_w2": sigma_w2, "sigma_b2": SIGMA_B2, "q_star": q_star, "seconds": time.perf_counter() - started,
            "runs": {run.initializer: singular_value_summary(run.singular_values) for run in result.runs}}


def _train(configs, label: str) -> dict:
    from initlab.training.ensembles import train_many

    started = time.perf_counter()
    results = train_many(configs)
    return {
        "label": label, "seconds": time.perf_counter() - started, "seeds": [r.config.seed for r in results],
        "final_loss": [r.history["loss"][-1] if r.diverged_epoch is None else None for r in results],
        "final_accuracy": [r.history["accuracy"][-1] if r.diverged_epoch is None else None for r in results],
        "final_val_accuracy": [r.history["val_accuracy"][-1] if r.diverged_epoch is None else None for r in results],
        "first_epoch_loss": [r.history["loss"][0] for r in results],
        "diverged_epoch": [r.diverged_epoch for r in results],
    }


def residual() -> dict:
    import jax

    from initlab.data import load
    from initlab.nn.model_specs import build_architecture, models
    from initlab.training.config import TrainConfig

    data = load("mnist")
    x = data.x_test[:256].astype(np.float32) / 255.0
    streams = {}
    for scheme in ("default", "fixup", "skipinit"):
        model = build_architecture(models.build(f"resnet(depth=16, width=16, norm='none', scheme='{scheme}')").spec, (28, 28, 1), 10)
        params, _ = model.initialize(jax.random.key(0))
        streams[scheme] = [float(v) for v in np.asarray(model.sown(params, x)["stream_norm"])]
    training = {}
    for scheme in ("default", "fixup", "skipinit"):
        configs = [TrainConfig(architecture=f"resmlp(depth=16, width=64, scheme='{scheme}')", loss="categorical_crossentropy",
                               optimizer="sgd(learning_rate=0.1)", batch_size=128, epochs=3, seed=seed) for seed in range(3)]
        training[scheme] = _train(configs, f"resmlp(depth=16, width=64, norm='none', scheme='{scheme}')")
    return {"resnet_stream_rms_per_block": streams, "resmlp_training": training}


def transformer() -> dict:
    from initlab.training.config import TrainConfig

    variants = {"post-LN default": "norm='post'", "pre-LN default": "norm='pre'", "T-Fixup": "scheme='tfixup'",
                "DeepNorm": "scheme='deepnorm'"}
    out = {}
    for label, option in variants.items():
        spec = f"transformer(layers=8, d_model=64, heads=4, {option})"
        configs = [TrainConfig(dataset="modular_addition", architecture=spec, loss="categorical_crossentropy",
                               optimizer="adam(learning_rate=0.001)", batch_size=128, epochs=10, seed=seed) for seed in range(3)]
        out[label] = _train(configs, spec)
    return out


def _mnist_14(folder: Path) -> str:
    from initlab.data import load

    data = load("mnist")

    def shrink(x):
        return x.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).round().astype(np.uint8)

    path = folder / "mnist14.npz"
    np.savez(path, x_train=shrink(data.x_train[:6000].reshape(-1, 28, 28)), y_train=data.y_train[:6000].argmax(1),
             x_test=shrink(data.x_test[:2000].reshape(-1, 28, 28)), y_test=data.y_test[:2000].argmax(1))
    return str(path)


def plain_cnn(learning_rate: float = 0.01, epochs: int = 2) -> dict:
    from initlab.training.config import TrainConfig

    sigma_w2, _ = _critical()
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        data_file = _mnist_14(Path(folder))
        for label, kernel, bias in (
            ("delta_orthogonal", f"delta_orthogonal(gain={math.sqrt(sigma_w2)!r})", f"random_normal(stddev={math.sqrt(SIGMA_B2)!r})"),
            ("glorot_uniform", "glorot_uniform", "zeros"),
        ):
            configs = [TrainConfig(data_file=data_file, architecture="cnn(depth=32, channels=8, activation='tanh')",
                                   kernel_initializer=kernel, bias_initializer=bias, loss="categorical_crossentropy",
                                   optimizer=f"sgd(learning_rate={learning_rate!r})", batch_size=128, epochs=epochs, seed=seed)
                       for seed in range(2)]
            out[label] = _train(configs, f"cnn(depth=32, channels=8, activation='tanh'), kernels {kernel}, biases {bias}")
    return out


PARTS = {"isometry": isometry, "residual": residual, "transformer": transformer, "plain_cnn": plain_cnn,
         "plain_cnn_lr0.1_5_epochs": lambda: plain_cnn(0.1, 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(list(PARTS)[:4]))
    args = parser.parse_args()
    import initlab

    initlab.configure(compilation_cache=True)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results["machine"] = {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    for part in args.parts.split(","):
        started = time.perf_counter()
        results[part] = PARTS[part]() | {"part_seconds": time.perf_counter() - started}
        OUT.write_text(json.dumps(results, indent=2) + "\n")
        print(part, json.dumps(results[part])[:2000], flush=True)


if __name__ == "__main__":
    main()
