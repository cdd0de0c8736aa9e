"""Many models trained at once: one compiled program, ``jax.vmap`` over parameters and optimizer states.

Models of one ensemble share the architecture, loss, optimizer kind, batch size, epoch count and
data; they may differ in initializers (per layer), seeds and learning rate (which lives in each
model's optimizer state). A model sees the data in the order its seed fixes
(:func:`initlab.data.epoch_order`): models with the same seed are a paired comparison.

Each model's numbers equal, to float tolerance, what training it alone gives. A model whose
loss becomes NaN or infinite is recorded as diverged at that epoch; the others go on, unaffected
(their computations are independent lanes of the same program).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from initlab import data as data_module
from initlab.nn import losses
from initlab.nn import optimizers
from initlab.accel import sparse_dense
from initlab import runtime
from initlab._lazy import jax, jnp
from initlab.training.config import TrainConfig
from initlab.errors import InitlabError
from initlab.nn.lsuv import init_for_training
from initlab.training.loop import HISTORY_KEYS, Probing, TrainResult, epoch_order, init_key, make_epoch

EnsembleCallback = Callable[[int, dict[str, np.ndarray]], None]
"""``callback(epoch, metrics)``: each metric is an array with one value per model."""

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


def available_memory_bytes() -> int:
    """Memory available to this process now (MemAvailable on Linux; 4 GiB where unknown)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def default_memory_budget() -> int:
    """Half of the memory available now."""
    return available_memory_bytes() // 2


def chunk_size(config: TrainConfig, dataset: data_module.Dataset, memory_budget: int | None = None) -> int:
    """How many models of ``config``'s shape fit in ``memory_budget`` bytes beside the data."""
    budget = default_memory_budget() if memory_budget is None else memory_budget
    data_bytes = sum(a.nbytes for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))
    per_model = model_bytes(config, dataset.input_dim, dataset.classes, len(dataset.x_test))
    if budget < data_bytes + per_model:
        raise InitlabError(
            f"memory budget of {budget / 2**20:.0f} MiB is too small: the data needs {data_bytes / 2**20:.0f} MiB "
            f"and one model {per_model / 2**20:.1f} MiB"
        )
    return max(1, (budget - data_bytes) // per_model)


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


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

    def shardings(self, extra_inputs: int = 0) -> dict[str, Any]:
        """``in_shardings``/``out_shardings`` for the grid's epoch function (empty: no split).

        ``extra_inputs``: replicated inputs after the data (the probe batch).
        """
        if self.shard_axis is None:
            return {}
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.array(jax.devices()[: self.devices]), ("models",))
        split = NamedSharding(mesh, PartitionSpec(*([None] * self.shard_axis), "models"))
        orders = split if self.shard_axis == 0 else NamedSharding(mesh, PartitionSpec())
        replicated = NamedSharding(mesh, PartitionSpec())
        return {
            "in_shardings": (split, split, orders, *(replicated,) * (4 + extra_inputs)),
            "out_shardings": (split, split, split),
        }


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


def train_ensemble(
    configs: Sequence[TrainConfig],
    *,
    dataset: data_module.Dataset | None = None,
    callback: EnsembleCallback | None = None,
) -> list[TrainResult]:
    """Train ``configs`` together in one vmapped program and return one result per config.

    Raises:
        InitlabError: the configs cannot share a program (see :func:`compatibility_key`).

    Example:
        >>> configs = [TrainConfig(kernel_initializer=k, seed=s) for k in ("glorot_uniform", "he_normal")
        ...            for s in range(4)]
        >>> results = train_ensemble(configs)
    """
    if not configs:
        return []
    first = configs[0]
    key = compatibility_key(first)
    for config in configs[1:]:
        if compatibility_key(config) != key:
            raise InitlabError(
                "these runs cannot be trained in one ensemble: they differ in more than initializers, "
                "seeds and learning rate"
            )
    runtime.ensure_configured()
    started = time.perf_counter()
    dataset = dataset or data_module.load(first.dataset, first.data_file)
    train_size = len(dataset.x_train)
    mlp = first.model(dataset.input_dim, dataset.classes)
    # On mostly-zero inputs the first layer's products skip the zeros (initlab.accel.sparse_dense); the
    # kernels spread each call over every core themselves, so the grid stays on one device:
    # 16 Part B models train 1.5x faster that way than as XLA's wide matmuls split across one
    # device per core (benchmarks/README.md).
    input_matmul, matmul_used = sparse_dense.select(first.matmul, dataset.x_train)
    grid = layout(configs, 1 if input_matmul else _devices())
    inits = {
        i: init_for_training(
            configs[i].model(dataset.input_dim, dataset.classes), init_key(configs[i].seed), dataset, configs[i].seed
        )[0]
        for i in set(grid.flat)
    }
    params = _stack([_stack([inits[i] for i in row]) for row in grid.slots])
    # Each model's own optimizer state carries its learning rate; the update rule is shared.
    opt_states = _stack(
        [_stack([optimizers.build(configs[i].optimizer).init(inits[i]) for i in row]) for row in grid.slots]
    )
    optimizer = optimizers.build(first.optimizer)
    loss = losses.build(first.loss)
    arrays = [jnp.asarray(a) for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)]

    def orders(epoch: int) -> np.ndarray:
        unique = {seed: epoch_order(seed, epoch, train_size) for seed in set(grid.seeds)}
        return np.stack([unique[seed] for seed in grid.seeds])

    probing = Probing.create(first, mlp, loss, dataset)

    def program(probed: bool) -> Any:
        extra = probing.batch if probed else ()
        epoch_fn = make_epoch(
            mlp,
            loss,
            optimizer,
            train_size,
            first.batch_size,
            dataset.scale,
            probing.probe if probed else None,
            input_matmul,
        )
        shared = (None,) * (4 + len(extra))
        # Inner vmap: models of one row share the data, so each layer's matmul is one wide matmul.
        # Outer vmap: rows (seeds) with their own data order.
        row_epoch = jax.vmap(epoch_fn, in_axes=(0, 0, None, *shared))
        grid_epoch = jax.vmap(row_epoch, in_axes=(0, 0, 0, *shared))
        jitted = jax.jit(grid_epoch, donate_argnums=(0, 1), **grid.shardings(len(extra)))
        return jitted.lower(params, opt_states, orders(1), *arrays, *extra).compile()

    loaded = time.perf_counter()
    programs = {probed: program(probed) for probed in Probing.variants(first)}
    grid_probes = []
    if probing.probe is not None:
        grid_probe = jax.jit(jax.vmap(jax.vmap(probing.probe, in_axes=(0, None, None)), in_axes=(0, None, None)))
        grid_probes.append((0, jax.tree.map(np.asarray, grid_probe(params, *probing.batch))))
    ready = time.perf_counter()

    count = len(configs)
    positions = grid.positions(count)
    rows, columns = positions[:, 0], positions[:, 1]
    history = {k: np.full((count, first.epochs), np.nan) for k in HISTORY_KEYS}
    diverged: list[int | None] = [None] * count
    for epoch in range(1, first.epochs + 1):
        probed = first.probes_at(epoch)
        params, opt_states, metrics = programs[probed](
            params, opt_states, orders(epoch), *arrays, *(probing.batch if probed else ())
        )
        if probed:
            grid_probes.append((epoch, jax.tree.map(np.asarray, metrics.pop("probe"))))
        values = {k: np.asarray(v, np.float64)[rows, columns] for k, v in metrics.items()}
        for k in HISTORY_KEYS:
            history[k][:, epoch - 1] = values[k]
        for index in range(count):
            if diverged[index] is None and not math.isfinite(values["loss"][index]):
                diverged[index] = epoch
        if callback is not None:
            callback(epoch, values)
        if all(d is not None for d in diverged):
            break
    finished = time.perf_counter()

    host_params = jax.tree.map(np.asarray, params)
    timings = {
        "load_s": loaded - started,
        "compile_s": ready - loaded,
        "train_s": finished - ready,
        "ensemble_size": count,
    }
    results = []
    for index, config in enumerate(configs):
        last = diverged[index] or first.epochs
        results.append(
            TrainResult(
                config=config,
                history={k: [float(v) for v in history[k][index, :last]] for k in HISTORY_KEYS},
                params=jax.tree.map(lambda p, r=rows[index], c=columns[index]: p[r, c], host_params),
                timings=dict(timings),
                diverged_epoch=diverged[index],
                matmul=matmul_used,
                initializers=config.parameter_initializers(),
                probes=[
                    (epoch, {name: value[rows[index], columns[index]] for name, value in stats.items()})
                    for epoch, stats in grid_probes
                    if epoch <= last
                ],
            )
        )
    return results


def train_many(
    configs: Sequence[TrainConfig],
    *,
    dataset: data_module.Dataset | None = None,
    memory_budget: int | None = None,
    on_chunk: Callable[[list[TrainResult]], None] | None = None,
    callback: EnsembleCallback | None = None,
) -> list[TrainResult]:
    """Train any configs: grouped into compatible ensembles, each split into chunks that fit memory.

    Results come back in the order of ``configs``; ``on_chunk`` is called as each chunk finishes.
    """
    results: list[TrainResult | None] = [None] * len(configs)
    for chunk in plan_chunks(configs, memory_budget, dataset=dataset):
        first = configs[chunk[0]]
        chunk_data = dataset or data_module.load(first.dataset, first.data_file)
        chunk_results = train_ensemble([configs[i] for i in chunk], dataset=chunk_data, callback=callback)
        for i, result in zip(chunk, chunk_results):
            results[i] = result
        if on_chunk is not None:
            on_chunk(chunk_results)
    return [r for r in results if r is not None]


def group_indices(configs: Sequence[TrainConfig]) -> list[list[int]]:
    """Indices of the configs that can share one compiled program, groups in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(compatibility_key(config), []).append(index)
    return list(groups.values())


def plan_chunks(
    configs: Sequence[TrainConfig],
    memory_budget: int | None = None,
    max_chunk: int | None = None,
    *,
    dataset: data_module.Dataset | None = None,
) -> list[list[int]]:
    """Indices of ``configs`` split into compatible ensembles that fit ``memory_budget`` bytes."""
    chunks = []
    for indices in group_indices(configs):
        first = configs[indices[0]]
        size = chunk_size(first, dataset or data_module.load(first.dataset, first.data_file), memory_budget)
        if max_chunk is not None:
            size = min(size, max_chunk)
        chunks += [indices[start : start + size] for start in range(0, len(indices), size)]
    return chunks
