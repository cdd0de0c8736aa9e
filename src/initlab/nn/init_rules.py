"""Initializers per parameter: rules that match parameter paths or layer roles, applied in order.

A rule is ``PATTERN=SPEC``: every parameter the pattern matches is drawn from the initializer
``SPEC``; when several rules match a parameter, the last one wins. Patterns:

- a parameter path, with ``fnmatch`` wildcards: ``Dense_0/kernel``, ``*/bias``, ``Dense_*/kernel``;
- a parameter name alone: ``kernel``, ``bias`` (every layer's);
- a layer role and a name: ``input/kernel`` (the first layer), ``hidden/kernel`` (every layer but
  the last), ``output/bias`` (the last layer);
- a layer kind and a name (:data:`KINDS`): ``conv/kernel``, ``dense/bias``, ``embed/embedding``,
  ``norm/scale``, ``attention/kernel`` (query, key and value projections), ``attention_out/kernel``.
  A kind is the Flax module that holds the parameter (``nn.Conv``, ``nn.Embed``...); where it is
  not known it is read from Flax's automatic names (``Conv_0``, ``Dense_3``). A kind's name is
  also matched as a path, so a user's layer called ``dense`` is still reached by ``dense/kernel``.

A framework preset (:data:`PRESETS`) is a list of rules that gives every layer the defaults that
framework gives it, layer type by layer type (rules for a type the network lacks do nothing):

======================  ==========================  ==============================  ===========================
layer                   Keras 3                     PyTorch                         Flax
======================  ==========================  ==============================  ===========================
Dense / Linear          glorot_uniform, zeros       kaiming_uniform(a=sqrt 5),      lecun_normal, zeros
                                                    U(+-1/sqrt(fan_in))
Conv2D / Conv2d         glorot_uniform, zeros       the same as Linear's            lecun_normal, zeros
Embedding / Embed       U(+-0.05)                   N(0, 1)                         N(0, 1/features)
attention q, k, v       glorot_uniform of the       xavier_uniform of (3d, d), 0    lecun_normal, fan_in d, 0
                        (d, d) map, zeros
attention output        the same                    Linear's weight, zero bias      lecun_normal, fan_in d, 0
LayerNorm / BatchNorm   ones, zeros                 ones, zeros                     ones, zeros
======================  ==========================  ==============================  ===========================

Example:
    >>> rules = preset("torch") + (parse("output/kernel=zeros"),)
    >>> resolve(["Dense_0/kernel", "Dense_0/bias", "Dense_1/kernel", "Dense_1/bias"], rules)["Dense_1/kernel"]
    'zeros'
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from initlab.errors import InitlabError, unknown
from initlab.initializers import initializers

ROLES = ("input", "hidden", "output")

KINDS = ("dense", "conv", "embed", "norm", "attention", "attention_out")
"""Layer kinds a rule may name: the Flax module that holds a parameter."""

_AUTO_NAMES = {"Dense": "dense", "DenseGeneral": "dense", "Conv": "conv", "ConvTranspose": "conv", "Embed": "embed",
               "LayerNorm": "norm", "BatchNorm": "norm", "GroupNorm": "norm", "RMSNorm": "norm"}

_NORMS = (("norm/scale", "ones"), ("norm/bias", "zeros"))

PRESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "keras": (
        ("dense/kernel", "glorot_uniform"), ("dense/bias", "zeros"),
        ("conv/kernel", "glorot_uniform"), ("conv/bias", "zeros"),
        ("embed/embedding", "random_uniform"),
        ("attention/kernel", "glorot_uniform(input_axes=(0,), output_axes=(1, 2))"), ("attention/bias", "zeros"),
        ("attention_out/kernel", "glorot_uniform(input_axes=(0, 1), output_axes=(2,))"), ("attention_out/bias", "zeros"),
        *_NORMS,
    ),
    "torch": (
        ("dense/kernel", "torch.linear_default"), ("dense/bias", "torch.linear_bias_default"),
        ("conv/kernel", "torch.conv_default"), ("conv/bias", "torch.linear_bias_default"),
        ("embed/embedding", "torch.normal"),
        ("attention/kernel", "torch.attention_in_default"), ("attention/bias", "zeros"),
        ("attention_out/kernel", "torch.linear_default"), ("attention_out/bias", "zeros"),
        *_NORMS,
    ),
    "flax": (
        ("dense/kernel", "flax.lecun_normal"), ("dense/bias", "zeros"),
        ("conv/kernel", "flax.lecun_normal"), ("conv/bias", "zeros"),
        ("embed/embedding", "flax.embed_default"),
        ("attention/kernel", "flax.dense_general_default"), ("attention/bias", "zeros"),
        ("attention_out/kernel", "flax.dense_general_default(in_axes=2)"), ("attention_out/bias", "zeros"),
        *_NORMS,
    ),
}
"""Each framework's defaults per layer kind, as ``(pattern, spec)`` rules (Keras's
``Embedding`` default ``RandomUniform()`` is U(-0.05, 0.05), initlab's ``random_uniform``)."""


def kind_of(layer: str) -> str | None:
    """A layer's kind read from Flax's automatic name (``Conv_2`` -> ``conv``), or ``None``."""
    head, _, number = layer.rpartition("/")[2].rpartition("_")
    return _AUTO_NAMES.get(head) if number.isdigit() else None


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class InitRule:
    """``pattern=spec``: the parameters ``pattern`` matches are drawn from ``spec``."""

    pattern: str
    spec: str
    required: bool = True
    """Whether matching no parameter is an error (a preset's rules for absent layer types are not)."""

    def __post_init__(self) -> None:
        if not self.pattern or not self.pattern.strip():
            raise InitlabError(f"init rule '{_short(self.text)}': the pattern before '=' is empty")
        head, _, tail = self.pattern.partition("/")
        if not tail and head in ROLES + KINDS:
            raise InitlabError(
                f"init rule '{_short(self.text)}': a role names a layer; say which parameter, e.g. '{head}/kernel'"
            )
        initializers.resolve(self.spec)

    @property
    def text(self) -> str:
        return f"{self.pattern}={self.spec}"

    def matches(self, path: str, roles: frozenset[str], kind: str | None = None) -> bool:
        """Whether the rule applies to the parameter at ``path`` of a layer with ``roles`` and ``kind``."""
        if "/" not in self.pattern:
            return fnmatch.fnmatchcase(path.rpartition("/")[2], self.pattern)
        head, _, rest = self.pattern.partition("/")
        if head in ROLES:
            return head in roles and fnmatch.fnmatchcase(path.rpartition("/")[2], rest)
        if head in KINDS and head == kind and fnmatch.fnmatchcase(path.rpartition("/")[2], rest):
            return True
        return fnmatch.fnmatchcase(path, self.pattern)


def parse(text: str) -> InitRule:
    """``"Dense_0/kernel=RandomNormal()"`` -> ``InitRule("Dense_0/kernel", "RandomNormal()")``."""
    if not isinstance(text, str):
        raise InitlabError(f"an init rule is a string PATTERN=SPEC, got {text!r}")
    pattern, sep, spec = text.partition("=")
    if not sep or not spec.strip():
        raise InitlabError(f"init rule '{_short(text)}' must read PATTERN=SPEC, e.g. 'Dense_0/kernel=he_normal'")
    return InitRule(pattern.strip(), spec.strip())


def preset(name: str) -> tuple[InitRule, ...]:
    """The rules of framework ``name`` (``keras``, ``torch`` or ``flax``)."""
    if name not in PRESETS:
        raise unknown("defaults preset", name, PRESETS)
    return tuple(InitRule(pattern, spec, required=False) for pattern, spec in PRESETS[name])


def layer_roles(layers: Sequence[str]) -> dict[str, frozenset[str]]:
    """The roles of each layer of a stack, first to last: input, hidden (all but the last), output."""
    roles = {}
    for index, layer in enumerate(layers):
        mine = set()
        if index == 0:
            mine.add("input")
        if index < len(layers) - 1:
            mine.add("hidden")
        if index == len(layers) - 1:
            mine.add("output")
        roles[layer] = frozenset(mine)
    return roles


def resolve(
    paths: Sequence[str],
    rules: Sequence[InitRule],
    layers: Sequence[str] | None = None,
    kinds: dict[str, str] | None = None,
) -> dict[str, str | None]:
    """The spec each parameter gets (``None``: no rule matches it), the last matching rule winning.

    Args:
        paths: parameter paths, ``layer/name`` (``Dense_0/kernel``).
        rules: the rules, in order.
        layers: the layers in call order, for roles (default: the paths' layers in order).
        kinds: each layer's kind (:data:`KINDS`) by layer path; a layer missing here has the
            kind of its Flax automatic name (:func:`kind_of`).

    Raises:
        InitlabError: a required rule matches no parameter (it would silently do nothing).
    """
    order = list(layers) if layers is not None else list(dict.fromkeys(p.rpartition("/")[0] for p in paths))
    roles = layer_roles(order)
    kinds = kinds or {}
    layer_kinds = {p: kinds.get(p.rpartition("/")[0]) or kind_of(p.rpartition("/")[0]) for p in paths}
    resolved: dict[str, str | None] = dict.fromkeys(paths)
    for rule in rules:
        hits = [p for p in paths if rule.matches(p, roles.get(p.rpartition("/")[0], frozenset()), layer_kinds[p])]
        if not hits and not rule.required:
            continue
        if not hits:
            listed = ", ".join(paths[:8]) + (", ..." if len(paths) > 8 else "")
            raise InitlabError(f"init rule '{_short(rule.text)}' matches no parameter (parameters: {listed})")
        for path in hits:
            resolved[path] = rule.spec
    return resolved


__all__ = ["KINDS", "InitRule", "PRESETS", "ROLES", "kind_of", "layer_roles", "parse", "preset", "resolve"]
