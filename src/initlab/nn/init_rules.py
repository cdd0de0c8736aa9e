"""Initializers per parameter: rules that match parameter paths or layer roles, applied in order.

A rule is ``PATTERN=SPEC``: every parameter the pattern matches is drawn from the initializer
``SPEC``; when several rules match a parameter, the last one wins. Patterns:

- a parameter path, with ``fnmatch`` wildcards: ``Dense_0/kernel``, ``*/bias``, ``Dense_*/kernel``;
- a parameter name alone: ``kernel``, ``bias`` (every layer's);
- a layer role and a name: ``input/kernel`` (the first layer), ``hidden/kernel`` (every layer but
  the last), ``output/bias`` (the last layer).

A framework preset (:data:`PRESETS`) is a list of rules that gives every layer the defaults that
framework gives it: Keras's ``Dense`` draws ``glorot_uniform`` kernels and zero biases; PyTorch's
``nn.Linear`` ``kaiming_uniform(a=sqrt 5)`` kernels and ``U(+-1/sqrt(fan_in))`` biases; Flax's
``nn.Dense`` ``lecun_normal`` kernels and zero biases.

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

PRESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "keras": (("kernel", "glorot_uniform"), ("bias", "zeros")),
    "torch": (("kernel", "torch.linear_default"), ("bias", "torch.linear_bias_default")),
    "flax": (("kernel", "flax.lecun_normal"), ("bias", "zeros")),
}
"""Each framework's defaults for a Dense layer, as ``(pattern, spec)`` rules."""


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class InitRule:
    """``pattern=spec``: the parameters ``pattern`` matches are drawn from ``spec``."""

    pattern: str
    spec: str

    def __post_init__(self) -> None:
        if not self.pattern or not self.pattern.strip():
            raise InitlabError(f"init rule '{_short(self.text)}': the pattern before '=' is empty")
        head, _, tail = self.pattern.partition("/")
        if not tail and head in ROLES:
            raise InitlabError(
                f"init rule '{_short(self.text)}': a role names a layer; say which parameter, e.g. '{head}/kernel'"
            )
        initializers.resolve(self.spec)

    @property
    def text(self) -> str:
        return f"{self.pattern}={self.spec}"

    def matches(self, path: str, roles: frozenset[str]) -> bool:
        """Whether the rule applies to the parameter at ``path`` of a layer with ``roles``."""
        if "/" not in self.pattern:
            return fnmatch.fnmatchcase(path.rpartition("/")[2], self.pattern)
        head, _, rest = self.pattern.partition("/")
        if head in ROLES:
            return head in roles and fnmatch.fnmatchcase(path.rpartition("/")[2], rest)
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
    return tuple(InitRule(pattern, spec) for pattern, spec in PRESETS[name])


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


def resolve(paths: Sequence[str], rules: Sequence[InitRule], layers: Sequence[str] | None = None) -> dict[str, str | None]:
    """The spec each parameter gets (``None``: no rule matches it), the last matching rule winning.

    Args:
        paths: parameter paths, ``layer/name`` (``Dense_0/kernel``).
        rules: the rules, in order.
        layers: the layers in call order, for roles (default: the paths' layers in order).

    Raises:
        InitlabError: a rule matches no parameter (it would silently do nothing).
    """
    order = list(layers) if layers is not None else list(dict.fromkeys(p.rpartition("/")[0] for p in paths))
    roles = layer_roles(order)
    resolved: dict[str, str | None] = dict.fromkeys(paths)
    for rule in rules:
        hits = [p for p in paths if rule.matches(p, roles.get(p.rpartition("/")[0], frozenset()))]
        if not hits:
            listed = ", ".join(paths[:8]) + (", ..." if len(paths) > 8 else "")
            raise InitlabError(f"init rule '{_short(rule.text)}' matches no parameter (parameters: {listed})")
        for path in hits:
            resolved[path] = rule.spec
    return resolved


__all__ = ["InitRule", "PRESETS", "ROLES", "layer_roles", "parse", "preset", "resolve"]
