"""Shared fixtures."""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def getkey(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """Hands out fresh JAX PRNG keys, one per call: ``key = getkey()`` (as in equinox).

    The keys derive from the test's id, so every test draws its own numbers and a failure
    reproduces on the next run. JAX is imported here, not at module level, so that collecting
    the tests does not import it (the CLI's tests check that ``import initlab`` stays light).
    """
    import jax

    base = jax.random.key(zlib.crc32(request.node.nodeid.encode()))
    counter = itertools.count()

    def _getkey() -> Any:
        return jax.random.fold_in(base, next(counter))

    return _getkey


@pytest.fixture(scope="session")
def keras() -> Any:
    """Keras 3 on its JAX backend, the reference for Keras semantics (skips when not installed)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"keras runs on {keras.backend.backend()}, these checks need the JAX backend")
    return keras


def pytest_configure(config: pytest.Config) -> None:
    """The process settings the CLI uses (one CPU device per core, compiled programs cached),
    applied before any test computes, so that ensembles split across devices as for users."""
    import initlab

    initlab.configure(compilation_cache=True)
