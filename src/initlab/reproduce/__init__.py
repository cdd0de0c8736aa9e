"""``initlab reproduce NAME``: the tutorial's lesson (``seed``) and landmark papers, each with its claim beside ours.

- :mod:`~initlab.reproduce.seed`: the Keras tutorial, the comparison it promised, and a report;
- :mod:`~initlab.reproduce.base`: what a reproduction is (paper, claim, checks with bands fixed
  before the run) and :func:`~initlab.reproduce.base.run`;
- one module per paper: :mod:`~initlab.reproduce.glorot2010`, :mod:`~initlab.reproduce.he2015`,
  :mod:`~initlab.reproduce.hanin2018`, :mod:`~initlab.reproduce.xiao2018` and the others of ``PAPERS``.
"""

from initlab.reproduce.base import (
    PAPERS,
    REPRODUCTIONS,
    Check,
    Paper,
    Reproduction,
    ReproductionResult,
    get,
    listing,
    load_all,
    run,
)  # fmt: skip
from initlab.reproduce.seed import PANEL, STAGES, Plan, conclusions, part_a, plan, reproduce_seed, saturation_theory

__all__ = [
    "Check", "PANEL", "PAPERS", "Paper", "Plan", "REPRODUCTIONS", "Reproduction", "ReproductionResult", "STAGES",
    "conclusions", "get", "listing", "load_all", "part_a", "plan", "reproduce_seed", "run", "saturation_theory",
]  # fmt: skip
