"""Import heavy modules on first use, so that ``initlab --help`` and ``initlab list`` stay fast."""

from __future__ import annotations

import importlib
import os
import sys
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
            configure_jax()
            self._module = importlib.import_module(self.__name__)
            enable_compilation_cache()
        return getattr(self._module, attribute)


def configure_jax() -> None:
    """Before JAX starts its backend: one CPU device per core, so that ensembles use every core.

    XLA runs a small matmul (a 128-sample batch) on one core; models split across devices run
    side by side. ``INITLAB_CPU_DEVICES=N`` chooses N (1 turns it off); a device count already
    set in ``XLA_FLAGS`` or ``jax_num_cpu_devices`` is left alone. It is in time until JAX runs
    its first computation: JAX may be imported already, but once it has computed anything its
    device count is fixed (:func:`cpu_devices_wanted` tells what was missed).
    """
    count = cpu_devices_wanted()
    if count <= 1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
        return
    real_jax = sys.modules["jax"]
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # another JAX version: leave it as it is
        return
    if not started and getattr(real_jax.config, "jax_num_cpu_devices", 0) == -1:
        real_jax.config.update("jax_num_cpu_devices", count)


def cpu_devices_wanted() -> int:
    """CPU devices initlab asks JAX for: ``$INITLAB_CPU_DEVICES``, else one per core."""
    return int(os.environ.get("INITLAB_CPU_DEVICES", os.cpu_count() or 1))


def cache_dir() -> str:
    """initlab's cache folder: ``$INITLAB_CACHE``, else ``$XDG_CACHE_HOME/initlab`` or ``~/.cache/initlab``."""
    if os.environ.get("INITLAB_CACHE"):
        return os.environ["INITLAB_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "initlab")


_cache_enabled = False


def enable_compilation_cache() -> None:
    """Keep compiled XLA programs on disk, so that a second ``initlab train`` skips compiling.

    ``INITLAB_COMPILATION_CACHE=0`` turns it off; a folder that cannot be written is skipped.
    """
    global _cache_enabled
    if _cache_enabled or os.environ.get("INITLAB_COMPILATION_CACHE", "1") == "0":
        return
    _cache_enabled = True
    import jax as real_jax

    folder = os.path.join(cache_dir(), "xla")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return
    if real_jax.config.jax_compilation_cache_dir is None:
        real_jax.config.update("jax_compilation_cache_dir", folder)
        real_jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
lax = LazyModule("jax.lax")
optax = LazyModule("optax")
