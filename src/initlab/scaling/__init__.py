"""Width scaling: parametrizations (SP, NTK, muP, MF), the coordinate check and learning-rate transfer.

- :mod:`~initlab.scaling.parametrizations`: one rule per layer role for init, forward and learning
  rate (also ``TrainConfig(parametrization=..., base_width=...)`` in the training engine);
- :mod:`~initlab.scaling.coord_check`: do coordinates stay O(1) as width grows? (its figure:
  :class:`initlab.viz.scaling.CoordCheckDisplay`)
- :mod:`~initlab.scaling.transfer`: does the best learning rate stay put as width grows? (its
  figure: :class:`initlab.viz.scaling.TransferDisplay`)
"""

from initlab.scaling.coord_check import CoordCheckResult, coord_check
from initlab.scaling.parametrizations import PARAMETRIZATIONS, LayerRule, layer_rules, roles_of
from initlab.scaling.transfer import TransferResult, transfer

__all__ = [
    "CoordCheckResult", "LayerRule", "PARAMETRIZATIONS", "TransferResult", "coord_check", "layer_rules", "roles_of",
    "transfer",
]  # fmt: skip
