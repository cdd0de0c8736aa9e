"""Width parametrizations: how a layer's initialization, forward pass and learning rate scale with width.

One declarative rule per layer role, in terms of the width multiplier ``m = width / base_width``
(at ``m = 1`` every parametrization is the standard one, so a base model is unchanged). The
initializer gives a parameter's law; the parametrization multiplies its draw (``init``), the
layer's input in the forward pass (``forward``), and its updates (``lr``, per optimizer kind,
through optax: the optimizer's own update times a constant, exact for SGD and Adam).

Roles: ``input`` (fan-in fixed, fan-out the width), ``hidden`` (both the width), ``output``
(fan-in the width, fan-out the classes). Rules:

========  =====================================  ===========================================
name      kernels                                 biases
========  =====================================  ===========================================
``sp``    everything 1                             everything 1
``ntk``   hidden, output: init x sqrt(m),          1
          forward x 1/sqrt(m) (W = w / sqrt(n))
``mup``   input: SGD lr x m;                       input, hidden: SGD lr x m;
          hidden: Adam lr x 1/m;                   output: init x sqrt(m)
          output: init x sqrt(m), forward x 1/m,
          SGD lr x m
``mf``    one hidden layer only (the mean-field        as ``mup``
          limit, f = (1/n) sum_i a_i s(w_i . x)):
          as ``mup``
========  =====================================  ===========================================

``mup`` is microsoft/mup's: ``MuReadout`` (its ``1/width_mult`` output multiplier and the
``sqrt(width_mult)`` rescaling of the readout's initial weights by ``set_base_shapes``), with
``MuSGD`` (vector-like parameters, one infinite dimension: lr x ``width_mult``) or ``MuAdam``
(matrix-like parameters, two infinite dimensions: lr / ``width_mult``); Yang et al. 2022, Tensor
Programs V, Table 8.

``mf`` is the mean-field parametrization of a network with one hidden layer (Mei, Montanari &
Nguyen 2018; Chizat & Bach 2018; Rotskoff & Vanden-Eijnden 2018): the readout averages its
O(1) weights, ``(1/n) sum_i a_i sigma(w_i . x)``, and SGD's learning rate grows as ``n`` so that
each unit moves O(1). In initlab's relative form that is the readout's ``forward x 1/m`` with
``init x sqrt(m)`` (its weights O(1) at every width) and SGD ``lr x m`` for every layer: exactly
``mup``'s rules, as Yang & Hu (2021, Tensor Programs IV, section 5) show that μP is the
mean-field limit's extension to depth. Deeper networks have no mean-field parametrization that
both learns features and is non-degenerate at initialization (ibid.), so ``mf`` refuses them:
use ``mup``.

Example:
    >>> rules = layer_rules("mup", ["input", "hidden", "output"], width=512, base_width=64)
    >>> rules[2].forward  # the readout's multiplier 1/m
    0.125
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from initlab._lazy import jax, jnp, optax
from initlab.checks import positive_int
from initlab.errors import InitlabError, unknown
from initlab.nn.models import layer_name

PARAMETRIZATIONS = ("sp", "ntk", "mup", "mf")
ROLES = ("input", "hidden", "output")
OPTIMIZER_KINDS = ("sgd", "adam")


@dataclass(frozen=True)
class LayerRule:
    """What a parametrization does to one Dense layer at one width (multipliers; 1 is standard)."""

    role: str
    init: float = 1.0
    forward: float = 1.0
    lr_sgd: float = 1.0
    lr_adam: float = 1.0
    bias_init: float = 1.0
    bias_lr_sgd: float = 1.0
    bias_lr_adam: float = 1.0

    def lr(self, optimizer: str, *, bias: bool = False) -> float:
        """The learning-rate multiplier of the kernel (or bias) under optimizer kind ``sgd`` or ``adam``."""
        if optimizer not in OPTIMIZER_KINDS:
            raise unknown("optimizer kind for a width parametrization", optimizer, OPTIMIZER_KINDS)
        return getattr(self, f"{'bias_' if bias else ''}lr_{optimizer}")


def _rule(name: str, role: str, m: float) -> LayerRule:
    if name == "sp":
        return LayerRule(role)
    if name == "ntk":
        if role == "input":
            return LayerRule(role)
        return LayerRule(role, init=math.sqrt(m), forward=1 / math.sqrt(m))
    # mup, and mf (its one-hidden-layer case)
    if role == "input":
        return LayerRule(role, lr_sgd=m, bias_lr_sgd=m)
    if role == "hidden":
        return LayerRule(role, lr_adam=1 / m, bias_lr_sgd=m)
    return LayerRule(role, init=math.sqrt(m), forward=1 / m, lr_sgd=m, bias_init=math.sqrt(m))


def layer_rules(name: str, roles: Sequence[str], *, width: int, base_width: int) -> tuple[LayerRule, ...]:
    """The rule of each layer (by role) of a network of ``width`` against one of ``base_width``.

    Raises:
        InitlabError: an unknown parametrization or role, or a non-positive width.
    """
    if name not in PARAMETRIZATIONS:
        raise unknown("parametrization", name, PARAMETRIZATIONS)
    positive_int("width", width)
    positive_int("base width", base_width)
    for role in roles:
        if role not in ROLES:
            raise unknown("layer role", role, ROLES)
    if not roles or roles[-1] != "output":
        raise InitlabError("a parametrized network ends with its output layer")
    if name == "mf" and tuple(roles) != ("input", "output"):
        raise InitlabError(
            f"the mean-field parametrization (mf) is for networks of one hidden layer, this one has {len(roles) - 1}: "
            "use mup, its extension to depth"
        )
    m = width / base_width
    return tuple(_rule(name, role, m) for role in roles)


def init_scales(rules: Sequence[LayerRule]) -> dict[str, dict[str, float]]:
    """Each Dense layer's ``{"kernel", "bias"}`` multipliers of its initial draw, by layer name."""
    return {layer_name(i): {"kernel": rule.init, "bias": rule.bias_init} for i, rule in enumerate(rules)}


def scaled_optimizer(optimizer: Any, rules: Sequence[LayerRule], kind: str) -> Any:
    """``optimizer`` (an optax transformation of kind ``sgd`` or ``adam``) with every parameter's
    update times its rule's learning-rate multiplier: optax's own update, then a constant per
    parameter (exact for SGD and Adam, whose updates are linear in the learning rate)."""
    scales = {layer_name(i): {"kernel": rule.lr(kind), "bias": rule.lr(kind, bias=True)} for i, rule in enumerate(rules)}
    return optax.chain(optimizer, optax.stateless(lambda updates, params: jax.tree.map(jnp.multiply, updates, scales)))


def roles_of(layer_count: int) -> tuple[str, ...]:
    """The roles of an MLP's Dense layers: input, hidden..., output (one layer: the output)."""
    positive_int("layer count", layer_count)
    if layer_count == 1:
        return ("output",)
    return ("input",) + ("hidden",) * (layer_count - 2) + ("output",)


__all__ = [
    "LayerRule", "OPTIMIZER_KINDS", "PARAMETRIZATIONS", "ROLES", "init_scales", "layer_rules", "roles_of", "scaled_optimizer",
]
