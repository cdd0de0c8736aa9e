"""One epoch with Keras's semantics, compiled: one XLA program per epoch, no Python per step.

What matches ``model.fit``:
- the training set is reshuffled every epoch (:func:`initlab.data.epoch_order`); batches of
  ``batch_size`` include the last, partial one (60000 = 468 x 128 + 96: 469 steps);
- the loss of a batch is the mean of the per-sample loss; ``loss`` and ``accuracy`` in the
  history are averaged over the epoch's samples, each batch measured on its forward pass
  before its update (Keras weights each batch by its size);
- ``val_loss`` and ``val_accuracy`` are measured on the whole validation set after the epoch.

The loop over epochs, for one model or many, is :mod:`initlab.training.run`. Randomness: a run's
``seed`` becomes the key of its parameters (:func:`init_key`) and seeds every epoch's order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab import data as data_module
from initlab._lazy import jax, jnp, lax, optax
from initlab.data import epoch_order  # noqa: F401  (the epoch's order, beside the epoch)
from initlab.nn.flax_model import STATE, FlaxModel
from initlab.nn.models import MLP, Params
from initlab.training.config import TrainConfig

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")

EpochCallback = Callable[[int, dict[str, float]], None]
"""``callback(epoch, metrics)``: called after each epoch (1-based) with that epoch's metrics."""


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        config: the configuration that was run.
        history: Keras's keys, one value per completed epoch.
        params: final parameters (NumPy arrays).
        timings: seconds spent loading data, compiling and training.
        diverged_epoch: the first epoch where any metric (loss, accuracy, val_loss, val_accuracy)
            was NaN or infinite, if any (training stops there).
        probes: ``(epoch, statistics)`` per probed epoch (0: at initialization), when the config asks.
        matmul: the first layer's product actually used, ``sparse`` (initlab's kernels) or ``xla``.
        model: the class name of the Flax module trained instead of the config's MLP, if any.
        initializers: the initializer of every parameter, ``{"Dense_0/kernel": "random_normal", ...}``
            (``"module"``: a user's module drew it with its own initializer).
    """

    config: TrainConfig
    history: dict[str, list[float]]
    params: Params = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    diverged_epoch: int | None = None
    probes: list[tuple[int, dict[str, np.ndarray]]] = field(default_factory=list, repr=False)
    matmul: str = "xla"
    model: str | None = None
    initializers: dict[str, str] = field(default_factory=dict)

    def probe_rows(self) -> list[tuple[int, str, str, float]]:
        """The probes as tidy rows ``(epoch, layer, statistic, value)``."""
        from initlab.measure.probes import tidy_rows

        return [row for epoch, stats in self.probes for row in tidy_rows(stats, epoch)]

    def histogram_rows(self) -> list[tuple]:
        """The probes' histograms as rows ``(epoch, layer, kind, edges, counts)``."""
        from initlab.measure.probes import histogram_rows

        return [row for epoch, stats in self.probes for row in histogram_rows(stats, epoch)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "history": self.history,
            "timings": self.timings,
            "diverged_epoch": self.diverged_epoch,
            "matmul": self.matmul,
            **({"model": self.model} if self.model else {}),
            "initializers": self.initializers,
        }


def init_key(seed: int) -> Any:
    """The key from which a run's parameters are drawn."""
    return jax.random.key(seed)


def make_step(mlp: MLP, loss: Callable, optimizer: Any, input_matmul: Callable | None = None) -> Callable:
    """One Keras training step: ``(params, opt_state, x, y) -> (params, opt_state, loss_sum, correct)``.

    ``loss_sum`` is the batch's mean loss times its size, ``correct`` its count of right answers,
    both measured on the forward pass before the update. ``input_matmul``: see :meth:`MLP.apply`.
    """

    stateful = getattr(mlp, "stateful", False)

    def objective(params, x, y):
        if stateful:  # BatchNorm: the batch's statistics, and the running ones moved
            probabilities, moved = mlp.apply_training(params, x)
            return jnp.mean(loss(y, probabilities)), (probabilities, moved[STATE])
        probabilities = mlp.apply(params, x, input_matmul=input_matmul)
        return jnp.mean(loss(y, probabilities)), (probabilities, None)

    def step(params, opt_state, x, y):
        (batch_loss, (probabilities, statistics)), grads = jax.value_and_grad(objective, has_aux=True)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if stateful:  # statistics are not optimized: their gradient is zero, and whatever the optimizer did is replaced
            params = {**params, STATE: statistics}
        correct = jnp.sum(jnp.argmax(probabilities, -1) == jnp.argmax(y, -1))
        return params, opt_state, batch_loss * x.shape[0], correct

    return step


def _epoch_end(mlp: Any, loss: Callable, step: Callable, features: Callable, train_size: int, remainder: int,
               probe: Callable | None, validation_batch: int | None, input_matmul: Callable | None = None) -> Callable:
    """The end of an epoch, shared by :func:`make_epoch` and :func:`make_stepwise_epoch`: the last,
    partial batch, the validation pass and the probes.

    ``end(params, opt_state, loss_total, correct_total, rest, x, y, x_val, y_val, previous_params,
    *probe_batch) -> (params, opt_state, metrics)``.
    """

    def end(params, opt_state, loss_total, correct_total, rest, x, y, x_val, y_val, previous_params, *probe_batch):
        if remainder:
            params, opt_state, loss_sum, correct = step(params, opt_state, features(x[rest]), y[rest])
            loss_total, correct_total = loss_total + loss_sum, correct_total + correct
        if validation_batch is None or len(x_val) <= validation_batch:
            val_probabilities = mlp.apply(params, features(x_val), input_matmul=input_matmul)
            val_losses = loss(y_val, val_probabilities)
            val_correct = jnp.argmax(val_probabilities, -1) == jnp.argmax(y_val, -1)
        else:
            val_losses, val_correct = _batched_validation(mlp, loss, params, features, x_val, y_val, validation_batch)
        metrics = {
            "loss": loss_total / train_size,
            "accuracy": correct_total / train_size,
            "val_loss": jnp.mean(val_losses),
            "val_accuracy": jnp.mean(val_correct),
        }
        if probe is not None:
            metrics["probe"] = probe(params, *probe_batch, previous_params)
        return params, opt_state, metrics

    return end


def make_epoch(
    mlp: MLP,
    loss: Callable,
    optimizer: Any,
    train_size: int,
    batch_size: int,
    scale: float = 1.0,
    probe: Callable | None = None,
    input_matmul: Callable | None = None,
    validation_batch: int | None = None,
) -> Callable:
    """One epoch: ``(params, opt_state, order, x, y, x_val, y_val[, x_probe, y_probe]) -> (params, opt_state, metrics)``.

    ``order`` is the epoch's permutation of the training set; inputs are stored as they came
    (uint8 pixels) and turned into float32 / ``scale`` batch by batch. With ``probe``
    (:func:`initlab.measure.probes.make_probe`), the per-layer statistics after the epoch, computed in
    the same compiled program on ``(x_probe, y_probe)``, come back as ``metrics["probe"]``.
    ``input_matmul`` computes the first layer's product (:func:`initlab.accel.sparse_dense.input_matmul`).
    ``validation_batch``: the validation pass in batches of that many examples (the memory of a
    convolutional network's activations), else in one pass.
    """
    step = make_step(mlp, loss, optimizer, input_matmul)
    full_batches, remainder = divmod(train_size, batch_size)

    def features(x):
        return x.astype(jnp.float32) / jnp.float32(scale)

    end = _epoch_end(mlp, loss, step, features, train_size, remainder, probe, validation_batch, input_matmul)

    def epoch(params, opt_state, order, x, y, x_val, y_val, *probe_batch):
        previous_params = params

        def body(carry, indices):
            params, opt_state, loss_sum, correct = step(*carry, features(x[indices]), y[indices])
            return (params, opt_state), (loss_sum, correct)

        (params, opt_state), (loss_sums, corrects) = lax.scan(
            body, (params, opt_state), order[: full_batches * batch_size].reshape(full_batches, batch_size)
        )
        return end(params, opt_state, jnp.sum(loss_sums), jnp.sum(corrects), order[full_batches * batch_size :], x, y,
                   x_val, y_val, previous_params, *probe_batch)

    return epoch


def make_stepwise_epoch(
    mlp: Any,
    loss: Callable,
    optimizer: Any,
    train_size: int,
    batch_size: int,
    scale: float,
    probe: Callable | None,
    validation_batch: int | None,
    over_grid: Callable[[Callable, int], Callable],
) -> Callable:
    """An epoch of :func:`make_epoch`'s semantics run as one compiled program per *step*, for networks with convolutions.

    XLA:CPU runs a convolution inside a loop (the ``lax.scan`` over an epoch's steps) several
    times slower than the same convolution in straight-line code (a LeNet ensemble's step: 2.1 s
    in a scan, 0.45 s alone; ``benchmarks/README.md``), so here Python loops over the steps and
    each step is one compiled program, the epoch's end (the last, partial batch, validation,
    probes) another. The numbers are the epoch program's: the same batches, the same updates.

    ``over_grid(fn, shared)`` maps a per-model function over the ensemble's grid (``shared``:
    how many trailing arguments all models share). Returns ``epoch(params, opt_state, order, x, y,
    x_val, y_val, *probe_batch) -> (params, opt_state, metrics)`` at the grid's level.
    """
    step = make_step(mlp, loss, optimizer)
    full_batches, remainder = divmod(train_size, batch_size)

    def features(x):
        return x.astype(jnp.float32) / jnp.float32(scale)

    def one_step(params, state, indices, x, y):
        opt_state, loss_total, correct_total = state
        params, opt_state, loss_sum, correct = step(params, opt_state, features(x[indices]), y[indices])
        return params, (opt_state, loss_total + loss_sum, correct_total + correct)

    end = _epoch_end(mlp, loss, step, features, train_size, remainder, probe, validation_batch)

    def finish(params, state, rest, x, y, x_val, y_val, *probe_batch):
        opt_state, loss_total, correct_total, previous_params = state
        return end(params, opt_state, loss_total, correct_total, rest, x, y, x_val, y_val, previous_params, *probe_batch)

    step_program = jax.jit(over_grid(one_step, 2), donate_argnums=(0, 1))
    finish_program = None

    def epoch(params, opt_state, order, x, y, x_val, y_val, *probe_batch):
        nonlocal finish_program
        order = np.asarray(order)
        previous = jax.tree.map(jnp.copy, params) if probe is not None else None
        totals = jnp.zeros(jax.tree.leaves(params)[0].shape[:2], jnp.float32)
        state = (opt_state, totals, jnp.zeros(totals.shape, jnp.int32))
        for index in range(full_batches):
            params, state = step_program(params, state, order[:, index * batch_size : (index + 1) * batch_size], x, y)
        if finish_program is None:
            finish_program = jax.jit(over_grid(finish, 4 + len(probe_batch)))
        opt_state, loss_total, correct_total = state
        return finish_program(params, (opt_state, loss_total, correct_total, previous), order[:, full_batches * batch_size :],
                              x, y, x_val, y_val, *probe_batch)

    return epoch


def uses_convolutions(model: Any) -> bool:
    """Whether a model has convolution layers (which :func:`make_stepwise_epoch` trains faster on CPU)."""
    return "conv" in model.layer_kinds().values()


def _batched_validation(model: Any, loss: Callable, params: Any, features: Callable, x_val: Any, y_val: Any,
                        batch: int) -> tuple[Any, Any]:
    """Per-example validation losses and hits, ``batch`` examples per forward pass (``lax.map``)."""
    count = len(x_val)
    padded = -count % batch  # the last batch is padded with the first examples, whose results are dropped
    indices = jnp.concatenate([jnp.arange(count), jnp.arange(padded)]).reshape(-1, batch)

    def one(rows):
        probabilities = model.apply(params, features(x_val[rows]))
        return loss(y_val[rows], probabilities), jnp.argmax(probabilities, -1) == jnp.argmax(y_val[rows], -1)

    losses, hits = lax.map(one, indices)
    return losses.reshape(-1)[:count], hits.reshape(-1)[:count]


@dataclass
class Probing:
    """The per-layer probes of a run: the probe function and batch, or nothing when off."""

    probe: Callable | None = None
    batch: tuple[Any, ...] = ()

    @classmethod
    def create(cls, config: TrainConfig, mlp: FlaxModel, loss: Callable, dataset: data_module.Dataset) -> Probing:
        if not config.probe_every:
            return cls()
        from initlab.measure.probes import make_probe, probe_batch

        x_probe, y_probe = probe_batch(dataset, min(config.probe_size, len(dataset.x_test)))
        return cls(make_probe(mlp, loss), (jnp.asarray(x_probe), jnp.asarray(y_probe)))

    @staticmethod
    def variants(config: TrainConfig) -> list[bool]:
        """Which epoch programs are needed: with probes, without, or both."""
        return sorted({config.probes_at(epoch) for epoch in range(1, config.epochs + 1)})

    def initial(self, params: Any) -> list[tuple[int, dict[str, np.ndarray]]]:
        """The probes at initialization (epoch 0), or an empty list when off."""
        if self.probe is None:
            return []
        return [(0, jax.tree.map(np.asarray, jax.jit(self.probe)(params, *self.batch)))]
