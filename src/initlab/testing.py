"""Helpers for a project's own test suite: keep a model's initialization sane in CI.

Example (pytest)::

    from initlab.testing import assert_healthy_init

    def test_my_model_starts_well():
        assert_healthy_init(MyModel(), batch=torch.randn(16, 3, 32, 32))
"""

from __future__ import annotations

from typing import Any


def assert_healthy_init(model: Any, batch: Any = None, *, thresholds: Any = None, **kwargs: Any) -> Any:
    """Inspect ``model`` on ``batch`` and fail (``AssertionError``, every finding listed) when a threshold is crossed.

    ``thresholds``: an :class:`initlab.diagnose.Thresholds` (documented defaults otherwise); other
    keyword arguments go to :func:`initlab.diagnose.inspect_model`. Returns the inspection.
    """
    from initlab.diagnose import Thresholds, inspect_model

    inspection = inspect_model(model, batch, **kwargs)
    failing = [finding for finding in inspection.findings(thresholds or Thresholds()) if finding.severity == "fail"]
    if failing:
        raise AssertionError("unhealthy initialization:\n" + "\n".join(f"- {finding}" for finding in failing))
    return inspection


__all__ = ["assert_healthy_init"]
