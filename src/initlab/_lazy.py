"""Import heavy modules on first use, so that ``initlab --help`` and ``initlab list`` stay fast.

A :class:`LazyModule` only imports; it configures nothing (see :mod:`initlab.runtime`).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """A stand-in for a module that is imported the first time one of its attributes is read."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "_module":
            raise AttributeError(attribute)
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return getattr(self._module, attribute)


jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
lax = LazyModule("jax.lax")
optax = LazyModule("optax")
