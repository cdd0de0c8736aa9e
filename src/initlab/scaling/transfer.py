"""Hyperparameter transfer across width (Yang et al. 2022, Tensor Programs V): does the best learning rate move?

For each parametrization and width, an MLP (input -> width -> ... -> width -> classes) is trained
at every learning rate of a log2 grid and every seed: one width's grid (learning rates x seeds)
is one vmapped ensemble of the training engine (:func:`initlab.training.ensembles.train_many`,
chunked to a memory budget). Each model's **training loss** is measured after its last epoch,
by the engine, on the first ``eval_examples`` examples of the training subset it trained on
(the quantity of the paper's figures; Keras's running mean over an epoch would mix the start
of training into it). The loss is the softmax cross-entropy of a linear output layer's logits
(``categorical_crossentropy(from_logits=True)``), unclipped as in the paper: Keras's clipped
probabilities would cap a failed run's loss at 16.1 and stop its gradients.

What the result answers:

- the optimal learning rate of each width: the grid point of least mean loss over seeds, with
  its spread over seeds (each seed's own optimum, paired: every learning rate of a seed sees the
  same initial draw and data order);
- its shift from the narrowest width to the widest, in grid steps (muP: at most about one;
  SP: several, as the output layer's updates grow with width under Adam);
- whether wider is better at a fixed learning rate (muP: yes, at every learning rate that
  trains; SP: not where the learning rate suits the narrow widths);
- and, drawn by :class:`initlab.viz.scaling.TransferDisplay`, the paper's figure: training loss
  against log2 learning rate, one curve per width, SP beside muP.

A model whose loss became NaN or infinite (a learning rate too large) is recorded as diverged:
its loss is ``inf``, drawn as a missing point, and never an optimum.

Example:
    >>> result = transfer(("sp", "mup"), widths=(128, 256, 512), log2_learning_rates=range(-14, -5))
    >>> result.optimal_log2_lr("mup")   # one value per width
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab import data as data_module
from initlab.checks import MAX_EPOCHS, finite_float, positive_int, seed_int
from initlab.errors import InitlabError
from initlab.scaling.coord_check import _check_widths
from initlab.specs import format_spec, parse_spec

MAX_GRID = 64


@dataclass
class TransferResult:
    """Training losses ``losses[parametrization, width, learning rate, seed]`` (``inf``: diverged)."""

    parametrizations: list[str]
    widths: list[int]
    base_width: int
    log2_learning_rates: list[float]
    seeds: list[int]
    optimizer: str
    hidden_layers: int
    activation: str
    kernel_initializer: str
    train_examples: int
    eval_examples: int
    epochs: int
    batch_size: int
    losses: np.ndarray = field(repr=False)
    seconds: float = 0.0

    @property
    def grid_step(self) -> float:
        """The log2 spacing of the learning-rate grid (its smallest, where uneven)."""
        return float(np.min(np.diff(self.log2_learning_rates)))

    def _index(self, parametrization: str) -> int:
        if parametrization not in self.parametrizations:
            raise InitlabError(f"this result has no {parametrization}: it has {', '.join(self.parametrizations)}")
        return self.parametrizations.index(parametrization)

    def mean_losses(self, parametrization: str) -> np.ndarray:
        """The mean loss over seeds, ``(widths, learning rates)``; ``inf`` where any seed diverged."""
        return self.losses[self._index(parametrization)].mean(axis=-1)

    def standard_errors(self, parametrization: str) -> np.ndarray:
        """The standard error of the mean over seeds, ``(widths, learning rates)`` (0 for one seed)."""
        losses = self.losses[self._index(parametrization)]
        if losses.shape[-1] < 2:
            return np.zeros(losses.shape[:-1])
        with np.errstate(invalid="ignore"):
            return losses.std(axis=-1, ddof=1) / math.sqrt(losses.shape[-1])

    def optimal_log2_lr(self, parametrization: str) -> np.ndarray:
        """Each width's log2 learning rate of least mean loss (NaN where every one diverged)."""
        return self._optima(self.mean_losses(parametrization))

    def seed_optima(self, parametrization: str) -> np.ndarray:
        """Each seed's own optimum, ``(widths, seeds)``: its spread is the optimum's uncertainty."""
        losses = self.losses[self._index(parametrization)]
        return np.stack([self._optima(losses[:, :, s]) for s in range(losses.shape[-1])], axis=-1)

    def _optima(self, losses: np.ndarray) -> np.ndarray:
        grid = np.asarray(self.log2_learning_rates, float)
        finite = np.isfinite(losses)
        best = np.argmin(np.where(finite, losses, np.inf), axis=-1)
        return np.where(finite.any(axis=-1), grid[best], np.nan)

    def shift_steps(self, parametrization: str) -> float:
        """How far the optimum moves from the narrowest width to the widest, in grid steps (signed)."""
        optima = self.optimal_log2_lr(parametrization)
        return float((optima[-1] - optima[0]) / self.grid_step)

    def max_shift_steps(self, parametrization: str) -> float:
        """The largest distance between any two widths' optima, in grid steps."""
        optima = self.optimal_log2_lr(parametrization)
        return float((np.nanmax(optima) - np.nanmin(optima)) / self.grid_step)

    def wider_is_better(self, parametrization: str) -> dict[str, Any]:
        """At each learning rate where every width trained: does the loss fall with every doubling of width?

        ``fraction``: the share of those learning rates at which it does; ``at_optimum``: whether it
        does at the widest width's optimal learning rate.
        """
        means = self.mean_losses(parametrization)
        trained = np.isfinite(means).all(axis=0)
        monotone = np.all(np.diff(means, axis=0) < 0, axis=0)
        optimum = self.optimal_log2_lr(parametrization)[-1]
        at = int(np.argmin(np.abs(np.asarray(self.log2_learning_rates) - optimum))) if np.isfinite(optimum) else None
        return {
            "learning_rates_compared": int(trained.sum()),
            "fraction": float(monotone[trained].mean()) if trained.any() else float("nan"),
            "at_optimum": bool(monotone[at]) if at is not None and trained[at] else None,
        }

    def to_dict(self) -> dict[str, Any]:
        def finite(values: np.ndarray) -> list[Any]:
            return [None if not np.isfinite(v) else float(v) for v in np.ravel(values)]

        per = {}
        for name in self.parametrizations:
            seed_optima = self.seed_optima(name)
            per[name] = {
                "mean_loss": {str(w): finite(row) for w, row in zip(self.widths, self.mean_losses(name))},
                "standard_error": {str(w): finite(row) for w, row in zip(self.widths, self.standard_errors(name))},
                "optimal_log2_lr": dict(zip(map(str, self.widths), finite(self.optimal_log2_lr(name)))),
                "seed_optimal_log2_lr": {str(w): finite(row) for w, row in zip(self.widths, seed_optima)},
                "seed_optimum_std": dict(
                    zip(map(str, self.widths), finite(np.nanstd(seed_optima, axis=-1, ddof=1) if len(self.seeds) > 1
                                                       else np.zeros(len(self.widths))))
                ),
                "shift_steps": self.shift_steps(name),
                "max_shift_steps": self.max_shift_steps(name),
                "wider_is_better": self.wider_is_better(name),
                "diverged_runs": int((~np.isfinite(self.losses[self._index(name)])).sum()),
            }  # fmt: skip
        return {
            "widths": self.widths, "base_width": self.base_width, "log2_learning_rates": self.log2_learning_rates,
            "grid_step": self.grid_step, "seeds": self.seeds, "optimizer": self.optimizer,
            "network": {"hidden_layers": self.hidden_layers, "activation": self.activation,
                        "kernel_initializer": self.kernel_initializer},
            "training": {"examples": self.train_examples, "epochs": self.epochs, "batch_size": self.batch_size},
            "statistic": f"training loss (softmax cross-entropy from the logits, unclipped) after the last epoch, on the first "
                         f"{self.eval_examples} training examples; null where a run diverged",
            "seconds": self.seconds,
            "parametrizations": per,
        }  # fmt: skip


def check_arguments(
    parametrizations: Sequence[str], *, widths: Sequence[int], base_width: int | None,
    log2_learning_rates: Sequence[float], seeds: Sequence[int], optimizer: str, hidden_layers: int,
    activation: str, kernel_initializer: str, train_examples: int, eval_examples: int, epochs: int, batch_size: int,
) -> tuple[list[str], list[int], int, list[float], list[int]]:
    """Every argument of :func:`transfer` checked before any work: (parametrizations, widths, base, grid, seeds)."""
    names = list(dict.fromkeys(parametrizations))
    if not names:
        raise InitlabError("give at least one parametrization, such as sp,mup")
    widths, base = _check_widths(widths, base_width)
    grid = [finite_float("a log2 learning rate", v) for v in log2_learning_rates]
    if len(grid) < 2:
        raise InitlabError(f"a transfer experiment needs at least two learning rates, got {len(grid)}")
    if len(grid) > MAX_GRID:
        raise InitlabError(f"at most {MAX_GRID} learning rates, got {len(grid)}")
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise InitlabError("log2 learning rates must increase, such as -14:-4")
    if not all(-40 <= v <= 10 for v in grid):
        raise InitlabError(f"log2 learning rates must lie in [-40, 10], got {grid[0]:g} to {grid[-1]:g}")
    seeds = list(dict.fromkeys(seeds))
    if not seeds:
        raise InitlabError("give at least one seed")
    for seed in seeds:
        seed_int("seed", seed)
    positive_int("training examples", train_examples)
    positive_int("evaluation examples", eval_examples)
    positive_int("epochs", epochs, maximum=MAX_EPOCHS)
    positive_int("hidden layers", hidden_layers, maximum=64)
    parsed = parse_spec(optimizer)
    if parsed.args or any(key == "learning_rate" for key, _ in parsed.kwargs):
        raise InitlabError(
            f"the learning-rate grid sets the learning rate: give the optimizer without one (such as "
            f"{parsed.name}), not '{optimizer[:60]}'"
        )
    for name in names:
        # The engine's own checks, on the narrowest and widest networks: names, optimizer kind, mf's depth.
        for width in (widths[0], widths[-1]):
            _config(name, width, base, 2.0 ** grid[0], 0, optimizer, hidden_layers, activation, kernel_initializer,
                    epochs, batch_size)  # fmt: skip
    return names, widths, base, grid, seeds


def _config(name, width, base, learning_rate, seed, optimizer, hidden_layers, activation, kernel_initializer,
            epochs, batch_size) -> Any:  # fmt: skip
    from initlab.nn import optimizers
    from initlab.training.config import TrainConfig  # (here: the engine imports initlab.scaling's rules)

    entry, kwargs = optimizers.optimizers.resolve(optimizer)
    spec = format_spec(entry.name, {**kwargs, "learning_rate": learning_rate})
    return TrainConfig(
        hidden_units=(width,) * hidden_layers, activation=activation, kernel_initializer=kernel_initializer,
        output_kernel_initializer=kernel_initializer, output_activation="linear",
        loss="categorical_crossentropy(from_logits=True)",
        optimizer=spec, batch_size=batch_size, epochs=epochs, seed=seed,
        parametrization=name, base_width=None if name == "sp" else base,
    )  # fmt: skip


def transfer(
    parametrizations: Sequence[str] = ("sp", "mup"),
    *,
    widths: Sequence[int] = (128, 256, 512, 1024, 2048),
    base_width: int | None = None,
    log2_learning_rates: Sequence[float] = tuple(range(-14, -3)),
    seeds: Sequence[int] = (0, 1, 2),
    optimizer: str = "adam",
    hidden_layers: int = 2,
    activation: str = "relu",
    kernel_initializer: str = "torch.linear_default",
    train_examples: int = 4096,
    eval_examples: int = 2048,
    epochs: int = 1,
    batch_size: int = 64,
    dataset: str = "mnist",
    data_file: str | None = None,
    memory_budget: int | None = None,
    on_width: Callable[[str, int, int], None] | None = None,
) -> TransferResult:
    """Train every (parametrization, width, learning rate, seed) and measure each model's final training loss.

    Args:
        parametrizations: names from :data:`~initlab.scaling.parametrizations.PARAMETRIZATIONS`.
        widths: increasing hidden widths; ``base_width`` (default: the first) is where every
            parametrization equals SP.
        log2_learning_rates: the grid, increasing (``range(-14, -3)``: 2^-14 ... 2^-4).
        seeds: each seed fixes a model's draw and data order, shared by all its learning rates.
        optimizer: ``sgd`` or ``adam`` (with any of its arguments but the learning rate).
        train_examples: the first examples of the training set, trained on for ``epochs``.
        eval_examples: how many of them measure the final loss.
        memory_budget: bytes for one ensemble chunk (default: half the free memory).
        on_width: ``on_width(parametrization, width, models)`` after each width's grid is trained.

    Raises:
        InitlabError: a bad argument (an unknown parametrization, widths that do not increase,
            a base width above every width, a grid that does not increase, ...), or data too small.
    """
    import time

    from initlab.training.ensembles import train_many

    names, widths, base, grid, seeds = check_arguments(
        parametrizations, widths=widths, base_width=base_width, log2_learning_rates=log2_learning_rates,
        seeds=seeds, optimizer=optimizer, hidden_layers=hidden_layers, activation=activation,
        kernel_initializer=kernel_initializer, train_examples=train_examples, eval_examples=eval_examples,
        epochs=epochs, batch_size=batch_size,
    )  # fmt: skip
    data = data_module.load(dataset, data_file)
    if train_examples > len(data.x_train):
        raise InitlabError(f"{train_examples} training examples asked for; the data set has {len(data.x_train)}")
    if eval_examples > train_examples:
        raise InitlabError(f"the loss is measured on training examples: {eval_examples} > {train_examples} trained on")
    subset = data_module.Dataset(
        name=f"{data.name} (first {train_examples} training examples)",
        x_train=data.x_train[:train_examples], y_train=data.y_train[:train_examples],
        x_test=data.x_train[:eval_examples], y_test=data.y_train[:eval_examples], scale=data.scale, source=data.source,
    )  # fmt: skip
    if not subset.y_train.any(axis=0).all():
        raise InitlabError(f"the first {train_examples} training examples miss a class: train on more of them")
    started = time.perf_counter()
    losses = np.full((len(names), len(widths), len(grid), len(seeds)), np.inf)
    for p, name in enumerate(names):
        for w, width in enumerate(widths):
            configs = [
                _config(name, width, base, 2.0**lr, seed, optimizer, hidden_layers, activation, kernel_initializer,
                        epochs, batch_size)
                for lr in grid for seed in seeds
            ]  # fmt: skip
            results = train_many(configs, dataset=subset, memory_budget=memory_budget)
            for index, result in enumerate(results):
                final = result.history["val_loss"][-1] if result.diverged_epoch is None else math.inf
                losses[p, w, index // len(seeds), index % len(seeds)] = final if math.isfinite(final) else math.inf
            if on_width is not None:
                on_width(name, width, len(configs))
    first = _config(names[0], widths[0], base, 2.0 ** grid[0], 0, optimizer, hidden_layers, activation,
                    kernel_initializer, epochs, batch_size)  # fmt: skip
    optimizer_text = first.optimizer.replace(f"learning_rate={2.0 ** grid[0]!r}", "learning_rate=2^x")
    return TransferResult(
        parametrizations=names, widths=widths, base_width=base, log2_learning_rates=grid, seeds=seeds,
        optimizer=optimizer_text, hidden_layers=hidden_layers, activation=first.activation,
        kernel_initializer=first.kernel_initializer, train_examples=train_examples, eval_examples=eval_examples,
        epochs=epochs, batch_size=batch_size, losses=losses, seconds=time.perf_counter() - started,
    )  # fmt: skip


def log2_grid_text(text: str) -> list[float]:
    """``"-14:-4"`` -> -14, -13, ..., -4; ``"-14:-4:0.5"`` in steps of 0.5; ``"-12,-10,-8"`` as listed."""
    bad = InitlabError(
        f"--lrs expects log2 learning rates LOW:HIGH[:STEP] (such as -14:-4) or a list (-12,-10,-8), got '{text[:60]}'"
    )
    try:
        parts = [float(part) for part in text.split(":" if ":" in text else ",")]
    except ValueError:
        raise bad from None
    if ":" not in text:
        return parts
    if len(parts) not in (2, 3):
        raise bad
    low, high, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1.0
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(step)) or step <= 0 or high < low:
        raise bad
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    if count > MAX_GRID:
        raise InitlabError(f"--lrs {text} has {count} learning rates; at most {MAX_GRID}")
    return [low + i * step for i in range(count)]


__all__ = ["TransferResult", "check_arguments", "log2_grid_text", "transfer"]
