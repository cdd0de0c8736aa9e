"""Assertions that two trainings gave the same numbers, to float tolerance (shared by the tests)."""

from __future__ import annotations

import numpy as np

ATOL = 1e-5


def assert_same_history(actual: dict, expected: dict, atol: float = ATOL) -> None:
    """Same metrics, same number of epochs, values within ``atol``."""
    assert set(actual) == set(expected)
    for key in expected:
        assert len(actual[key]) == len(expected[key]), key
        np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=atol, err_msg=key)


def assert_same_params(actual, expected, atol: float = ATOL) -> None:
    """Same parameter tree and shapes, values within ``atol`` (plus 1e-5 relative)."""
    import jax

    actual_leaves, actual_tree = jax.tree.flatten(actual)
    expected_leaves, expected_tree = jax.tree.flatten(expected)
    assert actual_tree == expected_tree
    for a, e in zip(actual_leaves, expected_leaves):
        assert np.shape(a) == np.shape(e)
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=atol)
