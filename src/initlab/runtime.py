"""Process-wide settings, applied only when asked: :func:`configure`.

``import initlab`` changes nothing in the process (no environment variable, no JAX setting).
:func:`configure` sets, once and explicitly, what initlab's speed depends on:

- **CPU devices**: one XLA CPU device per core, so that an ensemble's models split across cores
  (``jax_num_cpu_devices``). It must happen before JAX computes anything; afterwards the device
  count is fixed and a later ``configure`` leaves it (and :func:`initlab.training.ensembles`
  warns once that ensembles use fewer cores).
- **Compilation cache**: compiled XLA programs kept on disk in ``<cache>/xla``, so that a second
  process skips compiling (``jax_compilation_cache_dir``).

The CLI calls ``configure(compilation_cache=True)`` before its first computation. A library user
may call it, or gets the defaults on the first training: devices per core when JAX has not
started yet, and no compilation cache (a library does not write to disk unasked).

Environment variables, read by ``configure`` (never written): ``INITLAB_CPU_DEVICES=N`` chooses
the device count (1 turns the split off), ``INITLAB_COMPILATION_CACHE=0`` turns the cache off,
``INITLAB_CACHE`` moves initlab's cache folder. A count already chosen by the user
(``XLA_FLAGS=--xla_force_host_platform_device_count=N`` or ``jax_num_cpu_devices``) is left alone.

Example:
    >>> import initlab
    >>> initlab.configure()                      # before any JAX computation
    Settings(cpu_devices=2, compilation_cache=None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from initlab.errors import InitlabError


@dataclass(frozen=True)
class Settings:
    """What :func:`configure` applied.

    Attributes:
        cpu_devices: the CPU device count asked of JAX, ``None`` when it was left as it was
            (chosen by the user, or JAX had already started).
        compilation_cache: the folder of the compilation cache, ``None`` when off.
    """

    cpu_devices: int | None
    compilation_cache: str | None


_applied: Settings | None = None


LIGHTLY_OPTIMIZED = {"xla_backend_optimization_level": 1}
"""``jax.jit(..., compiler_options=LIGHTLY_OPTIMIZED)`` for programs that draw parameters: XLA
spends seconds optimizing threefry's random-number kernels at its default level 3 that run as
fast at level 1 (a 3-layer MLP's draws: 0.7 s to compile instead of 1.8 s; 20 layers: ~2.5x)."""


def cache_dir() -> str:
    """initlab's cache folder: ``$INITLAB_CACHE``, else ``$XDG_CACHE_HOME/initlab`` or ``~/.cache/initlab``."""
    if os.environ.get("INITLAB_CACHE"):
        return os.environ["INITLAB_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "initlab")


def cpu_devices_wanted() -> int:
    """CPU devices initlab asks JAX for: ``$INITLAB_CPU_DEVICES``, else one per core."""
    text = os.environ.get("INITLAB_CPU_DEVICES")
    if text is None:
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        raise InitlabError(f"INITLAB_CPU_DEVICES must be a positive integer, got {text!r}") from None
    if not 1 <= count <= 4096:
        raise InitlabError(f"INITLAB_CPU_DEVICES must be an integer in [1, 4096], got {count}")
    return count


def device_count_chosen_elsewhere() -> bool:
    """Whether the user chose a CPU device count themselves (``XLA_FLAGS`` or ``jax_num_cpu_devices``)."""
    import jax

    return "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices not in (
        -1,
        cpu_devices_wanted(),
    )


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # another JAX version: assume the worst, touch nothing
        return True


def configure(*, cpu_devices: int | None = None, compilation_cache: bool | str = False) -> Settings:
    """Apply initlab's process settings; idempotent (a second call changes only what it can).

    Args:
        cpu_devices: CPU devices to ask of JAX (default: ``$INITLAB_CPU_DEVICES`` or one per
            core). Applied only while JAX has not computed anything and when the user has not
            chosen a count already.
        compilation_cache: ``True`` for ``<cache>/xla``, a folder path, or ``False`` (off).
            ``INITLAB_COMPILATION_CACHE=0`` turns it off whatever is asked; a folder that
            cannot be written is skipped; a cache folder set by the user is kept.

    Returns:
        The :class:`Settings` in force after the call.
    """
    global _applied
    import jax

    if cpu_devices is not None and (not isinstance(cpu_devices, int) or isinstance(cpu_devices, bool) or cpu_devices < 1):
        raise InitlabError(f"cpu_devices must be a positive integer, got {cpu_devices!r}")
    count = cpu_devices or cpu_devices_wanted()
    devices = _applied.cpu_devices if _applied else None
    if not _backend_started() and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        if jax.config.jax_num_cpu_devices in (-1, devices) and count > 1:
            jax.config.update("jax_num_cpu_devices", count)
            devices = count

    folder = _applied.compilation_cache if _applied else None
    if compilation_cache and os.environ.get("INITLAB_COMPILATION_CACHE", "1") != "0" and folder is None:
        wanted = os.path.join(cache_dir(), "xla") if compilation_cache is True else str(compilation_cache)
        try:
            os.makedirs(wanted, exist_ok=True)
        except OSError:
            wanted = None
        if wanted is not None and jax.config.jax_compilation_cache_dir is None:
            jax.config.update("jax_compilation_cache_dir", wanted)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
            folder = wanted
    _applied = Settings(devices, folder)
    return _applied


def ensure_configured() -> Settings:
    """The settings in force; on the first call without an earlier :func:`configure`, its defaults."""
    return _applied if _applied is not None else configure()


__all__ = ["LIGHTLY_OPTIMIZED", "Settings", "cache_dir", "configure", "cpu_devices_wanted", "ensure_configured"]
