"""Width scaling: parametrizations (SP, NTK, muP) and the coordinate check.

- :mod:`~initlab.scaling.parametrizations`: one rule per layer role for init, forward and learning rate;
- :mod:`~initlab.scaling.coord_check`: do coordinates stay O(1) as width grows? (its figure:
  :class:`initlab.viz.scaling.CoordCheckDisplay`)
"""

from initlab.scaling.coord_check import CoordCheckResult, coord_check
from initlab.scaling.parametrizations import PARAMETRIZATIONS, LayerRule, layer_rules, roles_of

__all__ = ["CoordCheckResult", "LayerRule", "PARAMETRIZATIONS", "coord_check", "layer_rules", "roles_of"]
