"""The coordinate check (Yang et al. 2022; microsoft/mup's ``coord_check``): do coordinates stay O(1) in width?

For each width, an MLP (input -> width -> ... -> width -> classes) is parametrized
(:mod:`initlab.scaling.parametrizations`), then trained for ``steps`` updates on MNIST batches;
before the first update and after each one, every layer's mean absolute coordinate is recorded
on the step's batch: the hidden layers' activations and the output layer's logits (its
pre-activations). Under the standard parametrization with Adam these grow with width after a few
steps; under muP they stay put. ``slopes`` fits log2(coordinate) against log2(width) by least
squares: near 0 is width-independent.

Every seed of one width trains in one ``jax.vmap``-ed program (its steps one ``lax.scan``); the
widths' programs compile side by side on a thread pool while the first ones run.

Example:
    >>> result = coord_check("mup", widths=(64, 128, 256, 512), steps=3)
    >>> result.slopes()[-1]   # the logits' slope at each step, near 0 under muP
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab import data as data_module
from initlab._lazy import jax, jnp, optax
from initlab.checks import MAX_UNITS, positive_int, require_memory, seed_int
from initlab.errors import InitlabError
from initlab.initializers import build as build_initializer
from initlab.nn import optimizers
from initlab.nn.models import MLP, DenseLayer, layer_name
from initlab.runtime import LIGHTLY_OPTIMIZED
from initlab.scaling.parametrizations import OPTIMIZER_KINDS, init_scales, layer_rules, roles_of, scaled_optimizer

MAX_STEPS = 1000


@dataclass
class CoordCheckResult:
    """Mean absolute coordinates, ``values[layer, step, width, seed]`` (step 0: at initialization).

    ``layers`` names what is measured: ``Dense_i/activation`` for hidden layers and
    ``Dense_L/logits`` for the output layer.
    """

    parametrization: str
    widths: list[int]
    base_width: int
    steps: int
    seeds: list[int]
    optimizer: str
    activation: str
    layers: list[str]
    values: np.ndarray = field(repr=False)
    updates: np.ndarray | None = field(default=None, repr=False)
    """``updates[layer, step, width, seed]``: mean |m x_in @ (W_t - W_0)|, the change of the layer's
    pre-activation caused by its own kernel's updates (0 at step 0). muP keeps it O(1) in width for
    every layer; a layer whose update grows or shrinks with width is the one that breaks transfer."""

    def means(self) -> np.ndarray:
        """The mean over seeds, ``(layers, steps + 1, widths)``."""
        return self.values.mean(axis=-1)

    def slopes(self) -> np.ndarray:
        """The least-squares slope of log2(mean coordinate) against log2(width), ``(layers, steps + 1)``."""
        return _slopes(self.widths, self.means())

    def update_slopes(self) -> np.ndarray:
        """The slope of log2(mean own-update effect) against log2(width), ``(layers, steps)`` (steps 1..T)."""
        return _slopes(self.widths, self.updates.mean(axis=-1)[:, 1:])

    def worst_layer(self) -> tuple[str, float, int]:
        """The layer whose own update scales most with width, its slope and the step (1..T) where it is largest."""
        slopes = self.update_slopes()
        layer, step = np.unravel_index(int(np.argmax(np.abs(slopes))), slopes.shape)
        return self.layers[layer].split("/")[0], float(slopes[layer, step]), int(step) + 1

    def to_dict(self) -> dict[str, Any]:
        means, slopes, update_slopes = self.means(), self.slopes(), self.update_slopes()
        kernels = [name.split("/")[0] + "/kernel" for name in self.layers]
        return {
            "parametrization": self.parametrization, "widths": self.widths, "base_width": self.base_width,
            "steps": self.steps, "seeds": self.seeds, "optimizer": self.optimizer, "activation": self.activation,
            "statistic": "mean absolute coordinate over the step's batch and the layer's units, mean over seeds",
            "layers": {
                name: {
                    f"step {step}": {"values": means[i, step].tolist(), "slope": float(slopes[i, step])}
                    for step in range(self.steps + 1)
                }
                for i, name in enumerate(self.layers)
            },
            "update_statistic": "mean |m x_in @ (W_t - W_0)|: the change of the layer's pre-activation by its own "
                                "kernel's updates, mean over seeds",
            "updates": {
                kernel: {f"step {step + 1}": {"slope": float(update_slopes[i, step])} for step in range(self.steps)}
                for i, kernel in enumerate(kernels)
            },
            "worst_layer": dict(zip(("layer", "slope", "step"), self.worst_layer())),
        }  # fmt: skip


def _slopes(widths: Sequence[int], means: np.ndarray) -> np.ndarray:
    x = np.log2(np.asarray(widths, float))
    y = np.log2(np.maximum(means, 1e-300))
    x_centered = x - x.mean()
    return (y - y.mean(axis=-1, keepdims=True)) @ x_centered / (x_centered @ x_centered)


def _check_widths(widths: Sequence[int], base_width: int | None) -> tuple[list[int], int]:
    widths = list(widths)
    if len(widths) < 2:
        raise InitlabError(f"a coordinate check needs at least two widths, got {widths}")
    for width in widths:
        positive_int("a width", width, maximum=MAX_UNITS)
    if any(b <= a for a, b in zip(widths, widths[1:])):
        raise InitlabError(f"widths must increase, such as 64,128,256; got {','.join(map(str, widths))}")
    base = widths[0] if base_width is None else base_width
    positive_int("the base width", base, maximum=MAX_UNITS)
    if base > widths[-1]:
        raise InitlabError(f"the base width {base} is larger than every width (the largest is {widths[-1]})")
    return widths, base


def check_arguments(
    parametrization: str, *, widths: Sequence[int], base_width: int | None, steps: int, seeds: Sequence[int],
    optimizer: str, hidden_layers: int, activation: str, kernel_initializer: str, batch_size: int,
) -> tuple[list[int], int, list[int], str]:
    """Every argument of :func:`coord_check` checked, cheaply, before any work: (widths, base, seeds, optimizer kind)."""
    from initlab.nn import activations

    widths, base = _check_widths(widths, base_width)
    positive_int("steps", steps, maximum=MAX_STEPS)
    positive_int("hidden layers", hidden_layers, maximum=64)
    positive_int("batch size", batch_size, maximum=2**16)
    seeds = list(dict.fromkeys(seeds))
    if not seeds:
        raise InitlabError("give at least one seed")
    for seed in seeds:
        seed_int("seed", seed)
    entry, _ = optimizers.optimizers.resolve(optimizer)
    if entry.name not in OPTIMIZER_KINDS:
        raise InitlabError(f"width parametrizations scale the learning rate of sgd or adam, not {entry.name}")
    optimizers.optimizers.build(optimizer)
    layer_rules(parametrization, roles_of(hidden_layers + 1), width=widths[0], base_width=base)  # validates the name
    activations.activations.resolve(activation)
    build_initializer(kernel_initializer)
    return widths, base, seeds, entry.name


def coord_check(
    parametrization: str = "mup",
    *,
    widths: Sequence[int] = (64, 128, 256, 512, 1024, 2048, 4096),
    base_width: int | None = None,
    steps: int = 3,
    seeds: Sequence[int] = (0, 1, 2),
    optimizer: str = "adam(learning_rate=0.01)",
    hidden_layers: int = 2,
    activation: str = "relu",
    kernel_initializer: str = "torch.linear_default",
    batch_size: int = 64,
    dataset: str = "mnist",
    data_file: str | None = None,
    fixed_batch: bool = False,
) -> CoordCheckResult:
    """Run the coordinate check of one parametrization over ``widths`` (base width: the first).

    The network is ``hidden_layers`` hidden layers of each width (``activation``, kernels from
    ``kernel_initializer``, zero biases) and a linear output trained with softmax cross-entropy on
    its logits (optax's, unclipped: as microsoft/mup's coordinate check trains). Each
    seed takes its own batches (the order its seed fixes), or, with ``fixed_batch``, every step
    takes the training set's first ``batch_size`` examples (microsoft/mup's ``fix_data``).

    Raises:
        InitlabError: fewer than two widths, widths that do not increase, a base width above
            every width, an optimizer other than SGD or Adam, or sizes out of bounds.
    """
    widths, base, seeds, kind = check_arguments(
        parametrization, widths=widths, base_width=base_width, steps=steps, seeds=seeds, optimizer=optimizer,
        hidden_layers=hidden_layers, activation=activation, kernel_initializer=kernel_initializer,
        batch_size=batch_size,
    )  # fmt: skip
    data = data_module.load(dataset, data_file)
    if len(data.x_train) < batch_size * (1 if fixed_batch else steps):
        needed = batch_size * (1 if fixed_batch else steps)
        raise InitlabError(f"{steps} step(s) of {batch_size} examples need {needed} training examples")
    widest = widths[-1]
    require_memory(
        4 * len(seeds) * 8 * (data.input_dim * widest + (hidden_layers - 1) * widest**2 + widest * data.classes),
        f"a coordinate check at width {widest}",
    )
    values = np.zeros((hidden_layers + 1, steps + 1, len(widths), len(seeds)))
    updates = np.zeros_like(values)
    if fixed_batch:
        order = np.tile(np.arange(batch_size), (len(seeds), steps))
    else:
        order = np.stack([data_module.epoch_order(seed, 1, len(data.x_train))[: batch_size * steps] for seed in seeds])
    features = data.features("train")
    x_all = jnp.asarray(features[order]).reshape(len(seeds), steps, batch_size, -1)  # (seeds, steps, batch, inputs)
    y_all = jnp.asarray(data.y_train[order]).reshape(len(seeds), steps, batch_size, -1)
    keys = jnp.stack([jax.random.key(seed) for seed in seeds])
    # XLA compiles in C++ without the GIL: each width's programs are compiled on a thread pool as
    # soon as they are traced, while the next widths are traced and the first ones run (compiling
    # and tracing are most of a check's time below width ~2048).
    with ThreadPoolExecutor(max(1, min(len(widths), os.cpu_count() or 1))) as pool:
        compiled = []
        for width in widths:
            rules = layer_rules(parametrization, roles_of(hidden_layers + 1), width=width, base_width=base)
            init_program, run_program = _programs(
                rules, width, hidden_layers, activation, kernel_initializer, optimizer, kind, data, keys, x_all, y_all
            )
            compiled.append(pool.submit(lambda i=init_program, r=run_program: (i.compile(), r.compile())))
        for column, (width, future) in enumerate(zip(widths, compiled)):
            init, run = future.result()
            records, own_updates = run(init(keys), x_all, y_all)
            out = np.stack([np.asarray(records), np.asarray(own_updates)]).transpose(0, 3, 2, 1)
            if not np.isfinite(out).all():  # (the updates at step 0 are exactly 0)
                raise InitlabError(f"the coordinates diverged at width {width} (NaN or inf): lower the learning rate")
            values[:, :, column, :], updates[:, :, column, :] = out  # each (layers, steps + 1, seeds)
    layers = [f"{layer_name(i)}/activation" for i in range(hidden_layers)] + [f"{layer_name(hidden_layers)}/logits"]
    return CoordCheckResult(
        parametrization=parametrization, widths=widths, base_width=base, steps=steps, seeds=seeds,
        optimizer=optimizers.optimizers.canonical(optimizer, always=("learning_rate",)), activation=activation,
        layers=layers, values=values, updates=updates,
    )  # fmt: skip


def _programs(
    rules, width, hidden_layers, activation, kernel_initializer, optimizer, kind, data, keys, x_all, y_all,
) -> tuple[Any, Any]:
    """One width's two programs, lowered, not compiled: the seeds' draws ``init(keys)``, and
    ``run(params, x_all, y_all)`` -> mean |coordinates| and mean |own-update effects|, each
    ``(seeds, steps + 1, layers)``."""
    layers = tuple(
        DenseLayer(units=width, activation=activation, kernel_initializer=kernel_initializer,
                   input_multiplier=rules[i].forward)
        for i in range(hidden_layers)
    ) + (DenseLayer(units=data.classes, activation="linear", kernel_initializer=kernel_initializer,
                    input_multiplier=rules[-1].forward),)  # fmt: skip
    mlp = MLP(input_dim=data.input_dim, layers=layers)

    init_scale = init_scales(rules)
    transform = scaled_optimizer(optimizers.build(optimizer), rules, kind)

    def init(key):
        params = mlp.init(key)
        return jax.tree.map(jnp.multiply, params, init_scale)

    def loss_and_coordinates(params, initial, x, y):
        """The batch's loss, with each layer's mean |coordinate| and mean |own-update effect| from the same forward pass."""
        logits, outputs = mlp.apply_with_intermediates(params, x)
        hidden = [jnp.mean(jnp.abs(layer.activation)) for layer in outputs[:-1]]
        inputs = [x, *[layer.activation for layer in outputs[:-1]]]
        updates = [
            jnp.mean(jnp.abs(rule.forward * inputs[i] @ (params[layer_name(i)]["kernel"] - initial[layer_name(i)]["kernel"])))
            for i, rule in enumerate(rules)
        ]
        # On the logits, unclipped (Keras's clipping would stop confident gradients).
        loss = jnp.mean(optax.softmax_cross_entropy(logits, y))
        return loss, (jnp.stack([*hidden, jnp.mean(jnp.abs(outputs[-1].preactivation))]), jnp.stack(updates))

    def run(params, x_all, y_all):
        # One seed: every step in one scan (the body compiled once). Step t's record is on step t's
        # batch, from the forward pass of that step's gradient; the record after the last update
        # reuses the last batch.
        initial = params

        def one_step(carry, batch):
            params, state = carry
            grads, record = jax.grad(loss_and_coordinates, has_aux=True)(params, initial, *batch)
            updates, state = transform.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), record

        (params, _), (records, updates) = jax.lax.scan(one_step, (params, transform.init(params)), (x_all, y_all))
        last_record, last_update = loss_and_coordinates(params, initial, x_all[-1], y_all[-1])[1]
        return jnp.concatenate([records, last_record[None]]), jnp.concatenate([updates, last_update[None]])

    # The draws are their own program, compiled with little of LLVM's optimization: XLA spends
    # seconds optimizing random-number kernels that run as fast without it (0.7 s against 1.8 s).
    init_program = jax.jit(jax.vmap(init), compiler_options=LIGHTLY_OPTIMIZED).lower(keys)
    run_program = jax.jit(jax.vmap(run)).lower(jax.eval_shape(jax.vmap(init), keys), x_all, y_all)
    return init_program, run_program


def widths_text(text: str) -> list[int]:
    """``"64,128,256"`` -> [64, 128, 256]; ``"64-4096"`` -> the powers of two from 64 to 4096."""
    from initlab.checks import parse_sizes

    if "-" in text and "," not in text:
        low, _, high = text.partition("-")
        try:
            low_value, high_value = int(low), int(high)
        except ValueError:
            raise InitlabError(f"--widths expects sizes such as 64,128,256 or a range 64-4096, got '{text[:60]}'") from None
        if low_value <= 0 or high_value < low_value or math.log2(low_value) % 1 or math.log2(high_value) % 1:
            raise InitlabError(f"--widths range must run between powers of two, low to high, such as 64-4096; got '{text}'")
        return [2**k for k in range(int(math.log2(low_value)), int(math.log2(high_value)) + 1)]
    return list(parse_sizes(text, name="--widths"))


__all__ = ["CoordCheckResult", "check_arguments", "coord_check", "widths_text"]
