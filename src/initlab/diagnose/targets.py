"""``TARGET`` -> a model: ``package.module:callable`` or ``path/to/file.py:callable``, its framework detected.

The callable is called without arguments and returns the model: a ``torch.nn.Module``, a
``keras.Model``, or a Flax linen module (optionally with its parameters, as ``(module, params)``).
Inputs are random data of a stated law and per-example shape, or a data set's images.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

from initlab.errors import InitlabError, shown

FRAMEWORKS = ("torch", "keras", "flax")
INPUT_LAWS = ("normal", "uniform", "tokens")
EXTRAS = {"torch": "initlab[torch]", "keras": "initlab[keras]", "flax": "flax (a core dependency)"}


def load_target(target: str) -> Any:
    """Import ``module:callable`` (or ``file.py:callable``) and call it; one-line errors for every way it fails."""
    module_text, sep, attribute = target.rpartition(":")
    if not sep or not module_text or not attribute:
        raise InitlabError(f"TARGET is package.module:callable or path/to/file.py:callable, got '{shown(target)}'")
    try:
        if module_text.endswith(".py"):
            path = Path(module_text).expanduser()
            if not path.is_file():
                raise InitlabError(f"no such file: {path}")
            spec = importlib.util.spec_from_file_location(f"initlab_target_{abs(hash(str(path)))}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_text)
    except InitlabError:
        raise
    except ModuleNotFoundError as error:
        name = (error.name or module_text).split(".")[0]
        hint = f" (install it: pip install {EXTRAS[name]})" if name in EXTRAS else ""
        raise InitlabError(f"cannot import {module_text}: no module named '{error.name}'{hint}") from None
    except Exception as error:  # noqa: BLE001  (the user's code: its failure, in one line)
        raise InitlabError(f"importing {module_text} failed: {type(error).__name__}: {shown(str(error))}") from None
    if not hasattr(module, attribute):
        raise InitlabError(f"{module_text} has no attribute '{attribute}'")
    factory = getattr(module, attribute)
    if not callable(factory):
        return factory
    try:
        return factory()
    except Exception as error:  # noqa: BLE001
        raise InitlabError(f"{target}() failed: {type(error).__name__}: {shown(str(error))}") from None


def framework_of(model: Any) -> str:
    """``torch``, ``keras`` or ``flax``, from the model's type (without importing a framework that is not loaded)."""
    candidate = model[0] if isinstance(model, tuple) and model else model
    for base in type(candidate).__mro__:
        root = base.__module__.split(".")[0]
        if root == "torch" and base.__name__ == "Module":
            return "torch"
        if root == "keras" and base.__name__ in ("Layer", "Model", "Operation"):
            return "keras"
        if root == "flax" and base.__name__ == "Module":
            return "flax"
    raise InitlabError(
        f"the target returned a {type(candidate).__name__}, not a model: expected a torch.nn.Module, a keras.Model "
        "or a Flax linen module (or (module, params))"
    )


def random_inputs(shape: tuple[int, ...], batch: int, law: str, seed: int, vocabulary: int | None = None) -> np.ndarray:
    """A batch of ``shape`` per example: N(0, 1), U[0, 1), or tokens below ``vocabulary``."""
    rng = np.random.default_rng(seed)
    if law == "normal":
        return rng.standard_normal((batch, *shape)).astype(np.float32)
    if law == "uniform":
        return rng.random((batch, *shape), dtype=np.float32)
    if law == "tokens":
        if not vocabulary:
            raise InitlabError("--input-law tokens needs a vocabulary: the model has no embedding layer to take it from")
        return rng.integers(0, vocabulary, (batch, *shape)).astype(np.int64)
    from initlab.errors import unknown

    raise unknown("input law", law, INPUT_LAWS)


def data_inputs(name: str, batch: int, shape: tuple[int, ...] | None) -> np.ndarray:
    """The first ``batch`` training images of a data set (name or ``.npz``), scaled to [0, 1], reshaped to ``shape``."""
    from initlab.data import load

    data = load("mnist", name) if name.endswith(".npz") else load(name)
    x = data.features("train")[:batch]
    if shape is None:
        return x
    if int(np.prod(shape)) != x.shape[1]:
        raise InitlabError(f"--input-shape {','.join(map(str, shape))} has {int(np.prod(shape))} values per example; "
                           f"the data has {x.shape[1]}")  # fmt: skip
    return x.reshape(len(x), *shape)


__all__ = ["FRAMEWORKS", "INPUT_LAWS", "data_inputs", "framework_of", "load_target", "random_inputs"]
