"""initlab: a laboratory for neural-network weight initialization.

The public API is re-exported here lazily, so that ``import initlab`` (and the CLI's
``--help`` and ``list``) do not import JAX.

Example:
    >>> import initlab
    >>> initlab.saturation("RandomNormal(stddev=1.0)").saturation_fraction
    >>> result = initlab.train(initlab.TrainConfig(kernel_initializer="glorot_uniform"))
"""

from __future__ import annotations

import importlib
from typing import Any

from initlab._lazy import configure_jax as _configure_jax

__version__ = "0.1.0"

# One CPU device per core for ensembles, asked for before JAX computes anything (imports nothing).
_configure_jax()

_EXPORTS = {
    "InitlabError": "initlab.errors",
    "TrainConfig": "initlab.config",
    "DenseLayer": "initlab.models",
    "MLP": "initlab.models",
    "Dataset": "initlab.data",
    "load_dataset": ("initlab.data", "load"),
    "Initializer": "initlab.initializers",
    "Law": "initlab.initializers",
    "compute_fans": "initlab.initializers",
    "initializer": ("initlab.initializers", "build"),
    "activation": ("initlab.activations", "build"),
    "optimizer": ("initlab.optimizers", "build"),
    "loss": ("initlab.losses", "build"),
    "saturation": ("initlab.layer_saturation", "saturation"),
    "SaturationResult": "initlab.layer_saturation",
    "train": ("initlab.training", "train"),
    "TrainResult": "initlab.training",
    "SaturationDisplay": "initlab.plots",
    "LearningCurveDisplay": "initlab.plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'initlab' has no attribute '{name}'")
    target = _EXPORTS[name]
    module_name, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
