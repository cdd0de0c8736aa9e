"""Running many configurations into a store: locally, or as Ray tasks for clusters.

The driver owns the store (one writer). It records every run as pending, skips the ones already
done, groups the rest into compatible ensembles chunked to a memory budget, and records each
chunk's results in one transaction per run as soon as the chunk finishes. A sweep killed at any
moment keeps every completed run; runs it left ``running`` are redone on the next start.

With ``executor="ray"`` each chunk is a Ray task (``pip install 'initlab[ray]'``); the tasks
return histories and the driver alone writes the store.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initlab.checks import positive_int
from initlab.errors import InitlabError, shown, unknown
from initlab.experiments.store import Store, library_versions
from initlab.training.config import TrainConfig
from initlab.training.ensembles import group_indices, plan_chunks

EXECUTORS = ("local", "ray")

ProgressCallback = Callable[[int, int], None]
"""``progress(runs_finished, runs_total)``."""


@dataclass(frozen=True)
class SweepSummary:
    """What a call of :func:`run_configs` did."""

    store: str
    total: int
    skipped: int
    done: int
    diverged: int
    failed: int
    seconds: float


@dataclass(frozen=True)
class ChunkOutcome:
    """One trained run as a task returns it: plain data, cheap to ship between processes."""

    history: dict[str, list[float]]
    diverged_epoch: int | None
    timings: dict[str, float]
    probe_rows: list[tuple] = ()
    histogram_rows: list[tuple] = ()
    matmul: str = "xla"
    initializers: dict[str, str] = dataclasses.field(default_factory=dict)


def train_chunk(configs: Sequence[TrainConfig]) -> list[ChunkOutcome]:
    """Train ``configs`` (compatible with each other) as one ensemble; no parameters returned."""
    from initlab.training.ensembles import train_ensemble

    return [
        ChunkOutcome(
            result.history, result.diverged_epoch, result.timings, result.probe_rows(), result.histogram_rows(),
            result.matmul, result.initializers,
        )
        for result in train_ensemble(list(configs))
    ]


def _error_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]


def run_configs(
    configs: Sequence[TrainConfig],
    store_path: str | Path,
    *,
    labels: Sequence[str | None] | None = None,
    executor: str = "local",
    address: str | None = None,
    memory_budget: int | None = None,
    max_chunk: int | None = None,
    progress: ProgressCallback | None = None,
) -> SweepSummary:
    """Train every config not yet finished in the store at ``store_path`` and record the results.

    Example:
        >>> run_configs(load_sweep("sweep.toml").expand(), "runs.sqlite")
    """
    if executor not in EXECUTORS:
        raise unknown("executor", executor, EXECUTORS)
    if max_chunk is not None:
        positive_int("the chunk size", max_chunk)
    started = time.perf_counter()
    versions = library_versions()
    # Ray first: an unreachable cluster is reported before the store is created or changed.
    ray_started_here = _start_ray(address) if executor == "ray" else False
    try:
        return _run_into_store(configs, store_path, labels, executor, memory_budget, max_chunk, progress,
                               started, versions)
    finally:
        if ray_started_here:
            import ray

            ray.shutdown()


def _run_into_store(
    configs: Sequence[TrainConfig], store_path: str | Path, labels: Sequence[str | None] | None, executor: str,
    memory_budget: int | None, max_chunk: int | None, progress: ProgressCallback | None, started: float,
    versions: dict[str, Any],
) -> SweepSummary:
    with Store(store_path) as store:
        store.reset_interrupted()
        ids = store.add_runs(configs, labels)
        unique_ids = list(dict.fromkeys(ids))
        todo = store.todo(unique_ids)
        configs_by_id = dict(zip(ids, configs))
        todo_configs = [configs_by_id[i] for i in todo]
        counts = {"done": 0, "diverged": 0, "failed": 0}
        finished = len(unique_ids) - len(todo)
        if progress is not None:
            progress(finished, len(unique_ids))

        def record(chunk_ids: list[int], outcome: list[ChunkOutcome] | BaseException) -> None:
            nonlocal finished
            for position, run_id in enumerate(chunk_ids):
                if isinstance(outcome, BaseException):
                    store.record_failure(run_id, _error_line(outcome))
                    counts["failed"] += 1
                else:
                    result = outcome[position]
                    status = "done" if result.diverged_epoch is None else "diverged"
                    if result.histogram_rows:
                        store.record_histograms(run_id, result.histogram_rows)
                    store.record_result(
                        run_id, result.history, status=status, diverged_epoch=result.diverged_epoch,
                        timings=result.timings,
                        versions={**versions, "matmul": result.matmul, "initializers": result.initializers},
                        metrics_rows=result.probe_rows or None,
                    )
                    counts[status] += 1
            finished += len(chunk_ids)
            if progress is not None:
                progress(finished, len(unique_ids))

        chunks = []
        for indices in group_indices(todo_configs):
            group_ids = [todo[i] for i in indices]
            try:
                planned = plan_chunks([todo_configs[i] for i in indices], memory_budget, max_chunk)
            except InitlabError as error:  # this group cannot fit; the sweep's other runs go on
                record(group_ids, error)
                continue
            chunks += [[group_ids[i] for i in chunk] for chunk in planned]
        if executor == "local":
            for chunk_ids in chunks:
                store.mark_running(chunk_ids)
                try:
                    outcome: list[ChunkOutcome] | BaseException = train_chunk([configs_by_id[i] for i in chunk_ids])
                except Exception as error:  # recorded as failed with its message; the sweep goes on
                    outcome = error
                if isinstance(outcome, BaseException) and len(chunk_ids) > 1:
                    # One infeasible run (too large, say) must not fail the feasible runs it was
                    # chunked with: each is tried alone, and only the ones that fail alone fail.
                    for run_id in chunk_ids:
                        try:
                            outcome = train_chunk([configs_by_id[run_id]])
                        except Exception as error:
                            outcome = error
                        record([run_id], outcome)
                    continue
                record(chunk_ids, outcome)
        else:
            _run_on_ray(chunks, configs_by_id, store, record)
    return SweepSummary(
        store=str(store_path), total=len(unique_ids), skipped=len(unique_ids) - len(todo),
        done=counts["done"], diverged=counts["diverged"], failed=counts["failed"],
        seconds=time.perf_counter() - started,
    )


def _start_ray(address: str | None) -> bool:
    """Connect to (or start) Ray; whether this call started it (and must shut it down)."""
    try:
        import ray
    except ImportError:
        raise InitlabError("the ray executor needs Ray: pip install 'initlab[ray]'") from None
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    except Exception as error:  # an unreachable or malformed address: the user's to fix
        where = f"the Ray cluster at {shown(address)}" if address else "a local Ray"
        raise InitlabError(f"cannot start {where}: {_error_line(error)[:200]} (nothing was run)") from None
    return True


def _run_on_ray(
    chunks: list[list[int]], configs_by_id: dict[int, TrainConfig], store: Store,
    record: Callable[[list[int], Any], None],
) -> None:
    import ray

    task = ray.remote(train_chunk)
    pending = {}
    for chunk_ids in chunks:
        store.mark_running(chunk_ids)
        pending[task.remote([configs_by_id[i] for i in chunk_ids])] = chunk_ids
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        chunk_ids = pending.pop(ready[0])
        try:
            outcome: Any = ray.get(ready[0])
        except Exception as error:  # a task's failure is recorded, the sweep goes on
            outcome = error
        record(chunk_ids, outcome)
