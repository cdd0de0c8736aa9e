"""initlab's own networks beyond the MLP: a Flax module, its input shape and its initialization, stated.

An :class:`Architecture` is a :class:`~initlab.nn.flax_model.FlaxModel` (trained, tapped and
probed as any Flax module) that also carries what a reader of a paper needs to see:

- ``rules``: the network's own initialization, as :mod:`initlab.nn.init_rules` rules: Flax's
  defaults (the ``flax`` preset, named in every parameter's origin), then the scheme's; applied
  before a framework preset and a user's rules (``conv/kernel=he_normal``, ...), so that
  ``--defaults torch`` or ``--init-rule`` replace them where they say;
- ``multipliers``: a scheme's rescalings, ``(pattern, factor)`` applied after every rule to the
  parameters the pattern matches, whatever drew them: Fixup's ``L^(-1/2)`` and its zeroed last
  layers (factor 0), GPT-2's ``1/sqrt(2L)``, DeepNorm's ``beta``, T-Fixup's ``(9N)^(-1/4)``.

So ``origins`` (recorded with every run) names each parameter's initializer and the factor the
scheme applied, e.g. ``he_normal x 0.3536 (fixup)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from initlab._lazy import jax
from initlab.errors import InitlabError
from initlab.nn.flax_model import STATE, FlaxModel
from initlab.nn.init_rules import InitRule, preset


@dataclass(frozen=True, eq=False)
class Architecture(FlaxModel):
    """A Flax module of initlab's with its spec, its own initializer rules and its scheme's multipliers.

    Attributes:
        spec: the canonical model spec it was built from (``initlab list models``).
        rules: its own initialization, applied first.
        multipliers: ``(parameter path pattern, factor)``, applied last.
        scheme: the name of the initialization scheme (``default``, ``fixup``, ...).
    """

    spec: str = ""
    rules: tuple[InitRule, ...] = ()
    multipliers: tuple[tuple[str, float], ...] = ()
    scheme: str = "default"

    @property
    def name(self) -> str:
        return self.spec.partition("(")[0] or super().name

    def initialize(self, key: Any, rules: Sequence[Any] = ()) -> tuple[Any, dict[str, str]]:
        """Its own rules, then ``rules``; then the scheme's multipliers (see the module docstring)."""
        params, origins = self._initialize(key, (*preset("flax"), *self.rules, *rules), self.multipliers)
        return params, {path: origin + (f" ({self.scheme})" if " x " in origin else "") for path, origin in origins.items()}

    def parameter_count(self) -> int:
        """How many numbers its trained parameters hold (BatchNorm's statistics are state, not counted; from shapes only)."""
        shapes = dict(jax.eval_shape(self.init, jax.random.key(0)))
        shapes.pop(STATE, None)
        return int(sum(leaf.size for leaf in jax.tree.leaves(shapes)))


def rms(x: Any) -> Any:
    """The root-mean-square of a batch of activations (per example, then averaged): what a block sows."""
    flat = x.reshape((x.shape[0], -1))
    return (flat**2).mean(axis=1).mean() ** 0.5


def rules(*pairs: tuple[str, str]) -> tuple[InitRule, ...]:
    """``("conv/kernel", "he_normal"), ...`` as rules that may match nothing (a variant lacks a layer)."""
    return tuple(InitRule(pattern, spec, required=False) for pattern, spec in pairs)


@dataclass
class SpatialTrace:
    """The image size layer by layer, so that an impossible shape fails before any work, in one line."""

    model: str
    height: int
    width: int
    steps: list[str] = field(default_factory=list)

    def conv(self, kernel: int, padding: str, what: str) -> None:
        if padding == "valid":
            if kernel > min(self.height, self.width):
                raise InitlabError(
                    f"{self.model}: {what}'s {kernel}x{kernel} kernel is larger than its {self.height}x{self.width} "
                    "input (padding 'valid'); use padding='same', a smaller kernel_size or fewer layers"
                )
            self.height, self.width = self.height - kernel + 1, self.width - kernel + 1

    def pool(self, size: int, what: str) -> None:
        if size > min(self.height, self.width):
            raise InitlabError(
                f"{self.model}: {what}'s {size}x{size} pooling is larger than its {self.height}x{self.width} input; "
                "use fewer pooled layers or pooling='none'"
            )
        self.height, self.width = self.height // size, self.width // size


def image_shape(model: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``input_shape`` as ``(height, width, channels)``, channels last as Keras; else a one-line error."""
    if len(input_shape) == 2:
        return (*input_shape, 1)
    if len(input_shape) != 3:
        shown = "x".join(map(str, input_shape))
        raise InitlabError(f"{model} takes images (height, width[, channels]); this data set's examples are {shown}")
    return input_shape  # type: ignore[return-value]


__all__ = ["Architecture", "SpatialTrace", "image_shape", "rms", "rules"]
