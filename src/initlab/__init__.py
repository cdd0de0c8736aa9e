"""initlab: a laboratory for neural-network weight initialization.

The public API is re-exported here lazily, so that ``import initlab`` (and the CLI's
``--help`` and ``list``) do not import JAX. Importing changes nothing in the process: no
environment variable, no JAX setting; :func:`initlab.configure` does that when asked.

Example:
    >>> import initlab
    >>> initlab.saturation("RandomNormal(stddev=1.0)").saturation_fraction
    >>> result = initlab.train(initlab.TrainConfig(kernel_initializer="glorot_uniform"))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "InitlabError": "initlab.errors",
    "configure": "initlab.runtime",
    "Settings": "initlab.runtime",
    "TrainConfig": "initlab.training.config",
    "DenseLayer": "initlab.nn.models",
    "MLP": "initlab.nn.models",
    "FlaxModel": "initlab.nn.flax_model",
    "Dataset": "initlab.data",
    "load_dataset": ("initlab.data", "load"),
    "Initializer": "initlab.initializers",
    "Law": "initlab.initializers",
    "compute_fans": "initlab.initializers",
    "initializer": ("initlab.initializers", "build"),
    "activation": ("initlab.nn.activations", "build"),
    "optimizer": ("initlab.nn.optimizers", "build"),
    "loss": ("initlab.nn.losses", "build"),
    "saturation": ("initlab.measure.saturation", "saturation"),
    "SaturationResult": "initlab.measure.saturation",
    "train": ("initlab.training.run", "train"),
    "TrainResult": "initlab.training.loop",
    "SaturationDisplay": "initlab.viz.plots",
    "LearningCurveDisplay": "initlab.viz.plots",
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
