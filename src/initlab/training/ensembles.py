"""Ensemble planning: which runs can share one compiled program, and how many fit in memory.

:func:`train_many` groups any configs into compatible ensembles
(:func:`~initlab.training.grid.compatibility_key`), cuts each into chunks that fit a memory budget,
and trains each chunk with the one training loop (:func:`initlab.training.run.train_ensemble`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from initlab import data as data_module
from initlab.checks import available_memory_bytes
from initlab.errors import InitlabError
from initlab.training.config import TrainConfig
from initlab.training.grid import (  # noqa: F401  (planning's vocabulary)
    FREE_FIELDS,
    VALIDATION_BATCH,
    compatibility_key,
    model_bytes,
    module_bytes,
)
from initlab.training.loop import TrainResult
from initlab.training.run import EnsembleCallback, train_ensemble


def default_memory_budget() -> int:
    """Half of the memory available now."""
    return available_memory_bytes() // 2


def chunk_size(config: TrainConfig, dataset: data_module.Dataset, memory_budget: int | None = None) -> int:
    """How many models of ``config``'s shape fit in ``memory_budget`` bytes beside the data."""
    budget = default_memory_budget() if memory_budget is None else memory_budget
    data_bytes = sum(a.nbytes for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))
    if config.architecture is not None:
        per_model = module_bytes(config.architecture_model(dataset), config.batch_size, VALIDATION_BATCH)
    else:
        per_model = model_bytes(config, dataset.input_dim, dataset.classes, len(dataset.x_test))
    if budget < data_bytes + per_model:
        raise InitlabError(
            f"memory budget of {budget / 2**20:.0f} MiB is too small: the data needs {data_bytes / 2**20:.0f} MiB "
            f"and one model {per_model / 2**20:.1f} MiB"
        )
    return max(1, (budget - data_bytes) // per_model)


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
