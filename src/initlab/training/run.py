"""The one training loop: any number of models in one compiled program; one model is an ensemble of one.

Models of one ensemble share the architecture, loss, optimizer kind, batch size, epoch count and
data; they may differ in initializers (per layer), seeds and learning rate (which lives in each
model's optimizer state). A model sees the data in the order its seed fixes
(:func:`initlab.data.epoch_order`): models with the same seed are a paired comparison.

Each epoch is one XLA program (:func:`initlab.training.loop.make_epoch`), ``jax.vmap``-ed over the
grid of models (:mod:`initlab.training.grid`). A model whose loss becomes NaN or infinite is
recorded as diverged at that epoch (so is one whose validation loss or either accuracy is); the others go on (their computations are independent lanes).
Models trained together get the numbers they get alone up to float rounding (vmapped products
may sum in another order); ``tests/training/test_ensembles.py`` bounds it for shallow networks.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from initlab import data as data_module
from initlab import runtime
from initlab._lazy import jax, jnp
from initlab.accel import sparse_dense
from initlab.checks import require_memory
from initlab.data import epoch_order
from initlab.errors import InitlabError
from initlab.nn import init_rules, losses
from initlab.nn.flax_model import as_model
from initlab.nn.lsuv import batch_size as lsuv_batch_size
from initlab.nn.lsuv import init_for_training, lsuv_batch, normalize_network
from initlab.scaling.parametrizations import init_scales
from initlab.training.config import TrainConfig
from initlab.training.grid import (
    VALIDATION_BATCH,
    _devices,
    compatibility_key,
    layout,
    model_bytes,
    module_bytes,
    stack,
)
from initlab.training.loop import (
    HISTORY_KEYS,
    EpochCallback,
    Probing,
    TrainResult,
    init_key,
    make_epoch,
    make_stepwise_epoch,
    uses_convolutions,
)

EnsembleCallback = Callable[[int, dict[str, np.ndarray]], None]
"""``callback(epoch, metrics)``: each metric is an array with one value per model."""


def train_ensemble(
    configs: Sequence[TrainConfig],
    *,
    dataset: data_module.Dataset | None = None,
    callback: EnsembleCallback | None = None,
    model: Any = None,
) -> list[TrainResult]:
    """Train ``configs`` together in one vmapped program and return one result per config.

    Args:
        configs: the runs (compatible: :func:`~initlab.training.grid.compatibility_key`).
        dataset: already loaded data (else loaded from the first config).
        callback: ``callback(epoch, metrics)``, each metric an array with one value per config.
        model: a Flax module of your own (or a :class:`~initlab.nn.flax_model.FlaxModel`) that
            every config trains instead of its MLP; see :func:`train`.

    Raises:
        InitlabError: the configs cannot share a program.

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
    if model is None and first.architecture is not None:
        model = first.architecture_model(dataset)
    if model is None:
        mlp = first.model(dataset.input_dim, dataset.classes)
        # On mostly-zero inputs the first layer's products skip the zeros (initlab.accel.sparse_dense);
        # the kernels spread each call over every core themselves, so the grid stays on one device:
        # 16 Part B models train 1.5x faster that way than as XLA's wide matmuls split across one
        # device per core (benchmarks/README.md).
        input_matmul, matmul_used = sparse_dense.select(first.matmul, dataset.x_train)
    else:
        if first.matmul == "sparse":
            raise InitlabError("matmul 'sparse' is for initlab's MLP; a Flax module computes its own products (use 'auto')")
        mlp = as_model(model, (dataset.input_dim,))
        input_matmul, matmul_used = None, "xla"
    data_bytes = sum(a.nbytes for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))
    if model is None:
        per_model = model_bytes(first, dataset.input_dim, dataset.classes, len(dataset.x_test))
        sizes = "-".join(str(size) for size in (dataset.input_dim, *first.hidden_units, dataset.classes))
        require_memory(data_bytes + len(configs) * per_model, f"training {len(configs)} model(s) of {sizes}")
    else:
        per_model = module_bytes(mlp, first.batch_size, VALIDATION_BATCH)
        require_memory(data_bytes + len(configs) * per_model, f"training {len(configs)} model(s) of {mlp.name}")
    grid = layout(configs, 1 if input_matmul else _devices())
    inits, origins = {}, {}
    for i in sorted(set(grid.flat)):
        inits[i], origins[i] = _initialize(configs[i], mlp if model is not None else None, dataset, alone=len(configs) == 1)
    params = stack([stack([inits[i] for i in row]) for row in grid.slots])
    # Each model's own optimizer state carries its learning rate; the update rule is shared.
    opt_states = stack(
        [stack([configs[i].build_optimizer().init(inits[i]) for i in row]) for row in grid.slots]
    )
    optimizer = first.build_optimizer()
    loss = losses.build(first.loss)
    arrays = [jnp.asarray(a) for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)]

    def orders(epoch: int) -> np.ndarray:
        unique = {seed: epoch_order(seed, epoch, train_size) for seed in set(grid.seeds)}
        return np.stack([unique[seed] for seed in grid.seeds])

    probing = Probing.create(first, mlp, loss, dataset)

    stepwise = model is not None and uses_convolutions(mlp) and jax.default_backend() == "cpu"

    def program(probed: bool) -> Any:
        extra = probing.batch if probed else ()
        if stepwise:
            return make_stepwise_epoch(
                mlp, loss, optimizer, train_size, first.batch_size, dataset.scale, probing.probe if probed else None,
                VALIDATION_BATCH, lambda fn, shared: _over_grid(fn, grid, shared),
            )
        epoch_fn = make_epoch(
            mlp,
            loss,
            optimizer,
            train_size,
            first.batch_size,
            dataset.scale,
            probing.probe if probed else None,
            input_matmul,
            None if model is None else VALIDATION_BATCH,
        )
        jitted = grid.distribute(_over_grid(epoch_fn, grid, 4 + len(extra)), len(extra))
        return jitted.lower(params, opt_states, orders(1), *arrays, *extra).compile()

    loaded = time.perf_counter()
    programs = {probed: program(probed) for probed in Probing.variants(first)}
    grid_probes = []
    if probing.probe is not None:
        grid_probe = jax.jit(_over_grid(probing.probe, grid, 2, ordered=False))
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
            # Diverged on any metric: a finite training loss with a NaN validation loss is no result.
            if diverged[index] is None and not all(math.isfinite(values[name][index]) for name in HISTORY_KEYS):
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
                model=None if model is None or first.architecture is not None else mlp.name,
                initializers=origins[index],
                probes=[
                    (epoch, {name: value[rows[index], columns[index]] for name, value in stats.items()})
                    for epoch, stats in grid_probes
                    if epoch <= last
                ],
            )
        )
    return results


def train(
    config: TrainConfig,
    *,
    callback: EpochCallback | None = None,
    dataset: data_module.Dataset | None = None,
    model: Any = None,
) -> TrainResult:
    """Train one model as ``model.fit`` would and return its history.

    Args:
        config: the run; its defaults are the tutorial's Part B.
        callback: called after each epoch with ``(epoch, metrics)``.
        dataset: already loaded data (else loaded from ``config.dataset``/``config.data_file``).
        model: a Flax (linen) module of your own, or a :class:`~initlab.nn.flax_model.FlaxModel`
            (a module with its input shape), trained instead of the config's MLP: the module's
            own initialization from ``config.seed``; the config's data, loss, optimizer, batch
            size, epochs and probes apply, its layer and initializer fields do not.

    Example:
        >>> result = initlab.train(TrainConfig(epochs=2))
        >>> result.history["val_accuracy"]
        >>> result = initlab.train(TrainConfig(epochs=2, probe_every=1), model=MyFlaxModule())
    """
    per_model = None
    if callback is not None:
        per_model = lambda epoch, metrics: callback(epoch, {k: float(v[0]) for k, v in metrics.items()})  # noqa: E731
    (result,) = train_ensemble([config], dataset=dataset, callback=per_model, model=model)
    return result


def _over_grid(fn: Callable, grid: Any, shared: int, *, ordered: bool = True) -> Callable:
    """``fn`` of one model's ``(params, opt_state[, order], *shared inputs)`` over the grid of models.

    Inner vmap: the models of one row share the data, so each layer's matmul is one wide matmul.
    Outer vmap: rows (seeds), each with its own data order. A grid of one model is not vmapped
    (vmap's tracing would cost a process ~0.2 s for nothing): its leading axes are dropped and
    put back inside the compiled program, where they are free reshapes.
    """
    models = 2 if ordered else 1  # leading arguments with one entry per model: params (and optimizer states)
    if len(grid.flat) == 1:

        def one(*args):
            per_model = [jax.tree.map(lambda a: a[0, 0], arg) for arg in args[:models]]
            per_row = [args[models][0]] if ordered else []
            outputs = fn(*per_model, *per_row, *args[models + len(per_row) :])
            return jax.tree.map(lambda a: a[None, None], outputs)

        return one
    row_axes = (0,) * models + ((None,) if ordered else ())
    grid_axes = (0,) * models + ((0,) if ordered else ())
    row = jax.vmap(fn, in_axes=(*row_axes, *(None,) * shared))
    return jax.vmap(row, in_axes=(*grid_axes, *(None,) * shared))


def _lsuv_size(origins: dict[str, str]) -> int:
    """The largest LSUV batch size among the parameters ``lsuv`` drew."""
    from initlab.initializers import build

    return max(build(origin.split(" x ")[0]).batch_size for origin in origins.values() if origin.startswith("lsuv"))


@functools.lru_cache(maxsize=16)
def _compiled_init(mlp: Any) -> Callable[[Any], Any]:
    return jax.jit(mlp.init)


def _initialize(config: TrainConfig, model: Any, dataset: data_module.Dataset, *, alone: bool = False) -> tuple[Any, dict[str, str]]:
    """One run's initial parameters and the initializer of each: the config's MLP (LSUV where it asks),
    or a user's module with what its preset and rules redraw."""
    key = init_key(config.seed)
    if model is None:
        mlp = config.model(dataset.input_dim, dataset.classes)
        rules = config.width_rules()
        if rules is not None:  # the initializers' draws, times the parametrization's init multipliers
            params = init_for_training(mlp, key, dataset, config.seed)[0]
            return jax.tree.map(np.multiply, params, init_scales(rules)), config.parameter_initializers()
        if alone and lsuv_batch_size(mlp) is None and runtime.ensure_configured().compilation_cache is not None:
            # One model with the disk cache on: drawing its parameters is one compiled program, loaded
            # from the cache by later processes (~0.1 s) instead of ~10 small eager ones compiled anew
            # (~0.3 s). Without the cache, and in ensembles (whose models of different initializers
            # would each compile one, while eager ops of one shape are compiled once for all), eager
            # draws are cheaper. The same draws either way.
            return _compiled_init(mlp)(key), config.parameter_initializers()
        return init_for_training(mlp, key, dataset, config.seed)[0], config.parameter_initializers()
    if config.architecture is not None:
        params, origins = model.initialize(key, config.rules())
        if any(origin.startswith("lsuv") for origin in origins.values()):  # LSUV on the run's first batch
            params = normalize_network(model, params, origins, lsuv_batch(dataset, config.seed, _lsuv_size(origins)))[0]
        return params, origins
    rules = (init_rules.preset(config.defaults) if config.defaults else ()) + tuple(
        init_rules.parse(text) for text in config.init_rules
    )
    return model.initialize(key, rules)
