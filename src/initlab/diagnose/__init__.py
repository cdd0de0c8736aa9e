"""Diagnose any model's initialization: ``initlab inspect`` and ``initlab check`` for PyTorch, Keras and Flax.

- :mod:`~initlab.diagnose.core`: what is measured (:class:`Inspection`) and the findings with
  their :class:`Thresholds`;
- :mod:`~initlab.diagnose.laws`: which law drew a parameter (initlab's initializers' laws, tested);
- one backend per framework: :mod:`~initlab.diagnose.torch_backend` (hooks),
  :mod:`~initlab.diagnose.keras_backend` (sub-models, each layer's own initializers),
  :mod:`~initlab.diagnose.flax_backend` (initlab's taps);
- :mod:`~initlab.diagnose.targets`: ``package.module:callable`` or ``file.py:callable``.

Example:
    >>> inspection = inspect_model(torch_model, input_shape=(3, 32, 32), batch_size=8)
    >>> for finding in inspection.findings(): print(finding)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from initlab.checks import positive_int, seed_int
from initlab.diagnose.core import Finding, Inspection, Thresholds, findings
from initlab.diagnose.targets import INPUT_LAWS, data_inputs, framework_of, load_target, random_inputs
from initlab.errors import InitlabError, unknown

MAX_BATCH = 4096


def _vocabulary(model: Any, framework: str) -> int | None:
    if framework == "torch":
        import torch

        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                return int(module.num_embeddings)
    return None


def inspect_model(
    model: Any,
    batch: Any = None,
    *,
    input_shape: Sequence[int] | None = None,
    batch_size: int = 8,
    input_law: str = "normal",
    steps: int = 0,
    learning_rate: float = 0.01,
    seed: int = 0,
    target: str | None = None,
) -> Inspection:
    """Inspect ``model`` (a torch module, a Keras model, a Flax module or ``(module, params)``) at initialization.

    Args:
        batch: the inputs, an array (else random data of ``input_law`` and per-example ``input_shape``).
        steps: SGD updates (PyTorch; Keras on its JAX backend) after which the update-to-weight ratios are measured.

    Raises:
        InitlabError: no inputs, an unknown input law, or a model that fails on them (one line).
    """
    framework = framework_of(model)
    positive_int("batch size", batch_size, maximum=MAX_BATCH)
    seed_int("seed", seed)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 0 <= steps <= 1000:
        raise InitlabError(f"steps must be an integer in [0, 1000], got {steps!r}")
    if input_law not in INPUT_LAWS:
        raise unknown("input law", input_law, INPUT_LAWS)
    if batch is None:
        if input_shape is None:
            raise InitlabError("give the inputs: a batch, or --input-shape (per example, e.g. 3,224,224) or --data")
        for size in input_shape:
            positive_int("an input dimension", size, maximum=2**20)
        batch = random_inputs(tuple(input_shape), batch_size, input_law, seed, _vocabulary(model, framework))
        inputs = f"{input_law} random inputs of shape {tuple(input_shape)}, batch {batch_size}, seed {seed}"
    else:
        batch = np.asarray(batch)
        inputs = f"a given batch of shape {tuple(batch.shape)}"
    name = target or type(model[0] if isinstance(model, tuple) else model).__name__
    try:
        if framework == "torch":
            import torch

            from initlab.diagnose.torch_backend import inspect_torch

            tensor = torch.from_numpy(np.ascontiguousarray(batch))
            return inspect_torch(model, tensor, target=name, inputs=inputs, steps=steps, learning_rate=learning_rate,
                                 seed=seed)  # fmt: skip
        if framework == "keras":
            from initlab.diagnose.keras_backend import inspect_keras

            return inspect_keras(model, batch, target=name, inputs=inputs, seed=seed, steps=steps,
                                 learning_rate=learning_rate)  # fmt: skip
        if steps:
            raise InitlabError(f"--steps is measured for PyTorch and Keras models in this version, not {framework}")
        from initlab.diagnose.flax_backend import inspect_flax

        module, params = model if isinstance(model, tuple) else (model, None)
        return inspect_flax(module, params, batch, target=name, inputs=inputs, seed=seed)
    except InitlabError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        message = " ".join(str(error).split())[:300]
        raise InitlabError(f"the model failed on {inputs}: {type(error).__name__}: {message}") from None


def inspect_target(target: str, *, data: str | None = None, input_shape: Sequence[int] | None = None,
                   **kwargs: Any) -> Inspection:  # fmt: skip
    """:func:`inspect_model` on what ``target`` (``module:callable`` or ``file.py:callable``) returns."""
    os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 on the JAX that initlab brings
    model = load_target(target)
    batch = None
    if data is not None:
        batch = data_inputs(data, kwargs.get("batch_size", 8), None if input_shape is None else tuple(input_shape))
    return inspect_model(model, batch, input_shape=input_shape, target=target, **kwargs)


__all__ = ["Finding", "Inspection", "Thresholds", "findings", "inspect_model", "inspect_target"]
