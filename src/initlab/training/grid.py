"""Where the models of an ensemble sit: a (rows, columns) grid of stacked parameters, split across devices.

A row holds the models that share a seed, hence every batch; rows (or columns) are split across
XLA devices when there are several (one per core, :func:`initlab.configure`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from initlab import runtime
from initlab._lazy import jax
from initlab.nn import optimizers
from initlab.training.config import TrainConfig

# Fields in which models of one ensemble may differ.
FREE_FIELDS = (
    "kernel_initializer",
    "bias_initializer",
    "output_kernel_initializer",
    "output_bias_initializer",
    "layer_kernel_initializers",
    "seed",
)


def compatibility_key(config: TrainConfig) -> tuple:
    """Configs with equal keys can be trained in one ensemble (learning rates may differ)."""
    entry, kwargs = optimizers.optimizers.resolve(config.optimizer)
    optimizer_rest = tuple(sorted((k, v) for k, v in kwargs.items() if k != "learning_rate"))
    fixed = tuple(
        (field.name, getattr(config, field.name))
        for field in dataclasses.fields(config)
        if field.name not in FREE_FIELDS and field.name != "optimizer"
    )
    return fixed + (("optimizer", entry.name, optimizer_rest),)


def stack(trees: Sequence[Any]) -> Any:
    """Pytrees of equal structure stacked leaf by leaf along a new first axis, on the host.

    NumPy, not ``jnp.stack``: eager JAX ops compile a small program per leaf shape on first use
    (~0.3 s for one Part B model's parameters and optimizer state), and the trainer's first call
    moves the stacked arrays to the device anyway.
    """
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(leaf) for leaf in leaves]), *trees)


@dataclass(frozen=True)
class Layout:
    """Where each model of an ensemble sits in the (rows, columns) grid that is trained.

    A row holds the models that share a seed, hence every batch: vmapped over a row, their
    layers' matmuls become one wide matmul. Rows (or, with fewer rows than devices, columns) are
    split across devices; short rows and the grid are padded with copies of real models, whose
    results are dropped.

    Attributes:
        slots: ``slots[row][column]`` is the index of a config.
        seeds: each row's seed.
        shard_axis: the grid axis split across ``devices`` devices, or ``None``.
    """

    slots: tuple[tuple[int, ...], ...]
    seeds: tuple[int, ...]
    shard_axis: int | None
    devices: int

    @property
    def flat(self) -> list[int]:
        return [i for row in self.slots for i in row]

    def positions(self, count: int) -> np.ndarray:
        """``(count, 2)``: the (row, column) at which each config is first found."""
        found: dict[int, tuple[int, int]] = {}
        for r, row in enumerate(self.slots):
            for c, index in enumerate(row):
                found.setdefault(index, (r, c))
        return np.array([found[i] for i in range(count)])

    def distribute(self, fn: Any, extra_inputs: int = 0) -> Any:
        """The grid's epoch function ``fn(params, opt_states, orders, *data, *extra)``, jitted, each device
        computing its own block of models (``extra_inputs``: replicated inputs after the data, the probe batch).

        Split with ``shard_map``, not by sharding annotations: the models never exchange anything, and
        XLA's partitioner, left to propagate a split through a vmapped convolution's gradient, inserts
        all-gathers, which XLA:CPU's in-process collectives can deadlock on (two independent ones
        started in opposite orders on the two devices, both pool threads waiting; seen as
        ``rendezvous.cc`` "Termination timeout ... Exiting" and an abort). Without a split: plain ``jit``.
        """
        if self.shard_axis is None:
            return jax.jit(fn, donate_argnums=(0, 1))
        from jax.sharding import Mesh, PartitionSpec

        mesh = Mesh(np.array(jax.devices()[: self.devices]), ("models",))
        split = PartitionSpec(*([None] * self.shard_axis), "models")
        orders = split if self.shard_axis == 0 else PartitionSpec()
        replicated = PartitionSpec()
        specs = {"mesh": mesh, "in_specs": (split, split, orders, *(replicated,) * (4 + extra_inputs)),
                 "out_specs": (split, split, split)}  # fmt: skip
        if hasattr(jax, "shard_map"):  # JAX >= 0.7
            mapped = jax.shard_map(fn, check_vma=False, **specs)
        else:  # older JAX (Python 3.10 stops at 0.6): the experimental spelling
            from jax.experimental.shard_map import shard_map

            mapped = shard_map(fn, check_rep=False, **specs)
        return jax.jit(mapped, donate_argnums=(0, 1))


def layout(configs: Sequence[TrainConfig], devices: int = 1) -> Layout:
    """Arrange ``configs`` in rows of equal seeds and split the grid across ``devices``."""
    rows: dict[int, list[int]] = {}
    for index, config in enumerate(configs):
        rows.setdefault(config.seed, []).append(index)
    width = max(len(row) for row in rows.values())
    slots = [row + [row[-1]] * (width - len(row)) for row in rows.values()]
    seeds = list(rows)
    shard_axis = None
    if devices > 1 and len(configs) > 1:
        # Split the axis that needs the fewer padding slots (rows ties win: no data replication).
        row_padding = (-len(slots) % devices) * width
        column_padding = (-width % devices) * len(slots)
        if len(slots) >= devices and row_padding <= column_padding or width < devices:
            shard_axis = 0
            while len(slots) % devices:
                slots.append(slots[-1])
                seeds.append(seeds[-1])
        else:
            shard_axis = 1
            while len(slots[0]) % devices:
                slots = [row + [row[-1]] for row in slots]
    return Layout(tuple(tuple(row) for row in slots), tuple(seeds), shard_axis, devices)


@functools.cache
def _devices() -> int:
    """Devices to split ensembles across; warns once when JAX started before initlab could ask for more."""
    runtime.ensure_configured()
    count = len(jax.devices())
    wanted = runtime.cpu_devices_wanted()
    if jax.default_backend() == "cpu" and count < wanted and not runtime.device_count_chosen_elsewhere():
        warnings.warn(
            f"initlab: JAX started with {count} CPU device(s) before initlab could ask for {wanted} (one per "
            f"core), so ensembles use {count} core(s). Call initlab.configure() before running any JAX "
            f"computation, or set XLA_FLAGS=--xla_force_host_platform_device_count={wanted} before starting Python.",
            RuntimeWarning,
            stacklevel=3,
        )
    return count


VALIDATION_BATCH = 500
"""Examples per forward pass of a Flax module's validation pass (an MLP's takes the whole set at once)."""


def module_bytes(model: Any, batch_size: int, validation_batch: int) -> int:
    """A generous estimate of the memory one Flax module adds to an ensemble, in bytes.

    Parameters with gradients, updates and up to three optimizer slots; every submodule's output
    for a training batch (kept for the backward pass, twice for its gradient) and for a
    validation batch; from shapes only.
    """
    import jax.numpy as jnp

    params = jax.eval_shape(model.init, jax.random.key(0))
    parameters = sum(leaf.size for leaf in jax.tree.leaves(params))
    x = jax.ShapeDtypeStruct((1, *model.input_shape), jnp.float32)
    def forward(p: Any, x: Any) -> Any:
        return model.module.apply(model._variables(p), x, capture_intermediates=True, mutable=True,
                                  **model._mode(True))[1]["intermediates"]

    per_example = sum(leaf.size for leaf in jax.tree.leaves(jax.eval_shape(forward, params, x))) + int(np.prod(model.input_shape))
    return 4 * (6 * parameters + 3 * batch_size * per_example + validation_batch * per_example)


def model_bytes(config: TrainConfig, input_dim: int, classes: int, validation_size: int) -> int:
    """A generous estimate of the memory one model adds to an ensemble, in bytes.

    Parameters with their gradients, updates and up to three optimizer slots; a training batch's
    inputs and activations (forward and backward); the validation pass's activations.
    """
    sizes = [input_dim, *config.hidden_units, classes]
    parameters = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    batch = config.batch_size * (input_dim + 3 * sum(sizes[1:]))
    validation = validation_size * 2 * sum(sizes[1:])
    return 4 * (6 * parameters + batch + validation)
