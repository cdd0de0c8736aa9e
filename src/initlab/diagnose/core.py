"""What ``initlab inspect`` measures, framework-neutral, and the findings read from it.

An :class:`Inspection` holds, for one model and one batch at initialization: per layer its
output's statistics (mean, std, dead units, two-sided saturation, the std of the gradient of the
loss with respect to it), per parameter its measured mean and std, the law its layer type is
initialized with by default in its framework (*declared*) with a test of agreement, the law that
fits best among the framework's initializers (*identified*), its gradient's std and, after
``steps`` updates, its update-to-weight ratio; and the initial loss against log(classes).

:func:`findings` turns those numbers into plain sentences with a suggested change, each a
``fail`` (a threshold of :class:`Thresholds` crossed: ``initlab check`` exits 1) or an ``info``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from initlab.errors import InitlabError

ACTIVATION_KINDS = ("relu", "tanh", "sigmoid", "softmax", "gelu", "silu", "elu", "leaky_relu")
SATURATION = {"tanh": (-0.99, 0.99), "sigmoid": (0.01, 0.99)}
"""Where an output counts as saturated: beyond these values the derivative is below ~2%."""


@dataclass(frozen=True)
class Thresholds:
    """What ``initlab check`` fails on (every one overridable from the command line).

    Attributes:
        dead: the largest fraction of dead units (never positive on the batch) of a ReLU layer.
        saturated: the largest fraction of saturated outputs of a tanh or sigmoid layer.
        signal_ratio: the activations' std may change across the network by at most this factor
            (down or up) from the first layer that has outputs to the last.
        gradient_ratio: the same for the std of the gradients with respect to the layers' outputs.
        loss_excess: the initial loss may exceed log(classes) (a uniform guess) by at most this.
    """

    dead: float = 0.5
    saturated: float = 0.5
    signal_ratio: float = 1e3
    gradient_ratio: float = 1e3
    loss_excess: float = 1.0

    def __post_init__(self) -> None:
        from initlab.checks import finite_float

        for name in ("dead", "saturated"):
            value = finite_float(name, getattr(self, name))
            if not 0 <= value <= 1:
                raise InitlabError(f"threshold {name} is a fraction in [0, 1], got {value:g}")
        for name in ("signal_ratio", "gradient_ratio"):
            if finite_float(name, getattr(self, name)) < 1:
                raise InitlabError(f"threshold {name} is a factor >= 1, got {getattr(self, name):g}")
        if finite_float("loss_excess", self.loss_excess) < 0:
            raise InitlabError(f"threshold loss_excess must be >= 0, got {self.loss_excess:g}")


@dataclass
class LayerRecord:
    name: str
    kind: str
    activation: str | None
    """The nonlinearity this layer applies (``relu``...), or ``None`` for a linear one."""
    output_shape: list[int]
    mean: float
    std: float
    dead_fraction: float | None = None
    saturated_fraction: float | None = None
    gradient_std: float | None = None
    second_moment: float | None = None
    """Mean square of the output's entries: a pre-activation's variance over networks."""
    predicted_second_moment: float | None = None
    """Mean-field theory's value of it (:mod:`initlab.mean_field`), where the network is a stack the
    theory covers (Dense layers alternating with elementwise activations)."""


@dataclass
class ParamRecord:
    name: str
    layer: str
    kind: str
    shape: list[int]
    mean: float
    std: float
    declared: dict[str, Any] | None = None
    """The layer type's default law in its framework, tested (:class:`initlab.diagnose.laws.Agreement`)."""
    identified: dict[str, Any] | None = None
    """The candidate law that fits best, or ``None`` when none does."""
    family: dict[str, Any] | None = None
    """When no named law fits: normal or uniform with the values' own mean and std, if either fits."""
    gradient_std: float | None = None
    update_ratio: float | None = None
    """``||W_k - W_0|| / ||W_0||`` after ``steps`` updates."""


@dataclass
class Finding:
    severity: str  # "fail" or "info"
    kind: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Inspection:
    target: str
    framework: str
    inputs: str
    batch: int
    layers: list[LayerRecord]
    params: list[ParamRecord]
    loss: float | None = None
    loss_kind: str | None = None
    classes: int | None = None
    logit_std: float | None = None
    steps: int = 0
    notes: list[str] = field(default_factory=list)

    def findings(self, thresholds: Thresholds | None = None) -> list[Finding]:
        return findings(self, thresholds or Thresholds())

    def to_dict(self, thresholds: Thresholds | None = None) -> dict[str, Any]:
        from initlab.files import finite_json

        found = self.findings(thresholds)
        return finite_json({
            "target": self.target, "framework": self.framework, "inputs": self.inputs, "batch": self.batch,
            "loss": self.loss, "loss_kind": self.loss_kind, "classes": self.classes,
            "log_classes": math.log(self.classes) if self.classes else None, "logit_std": self.logit_std,
            "steps": self.steps, "layers": [asdict(layer) for layer in self.layers],
            "params": [asdict(param) for param in self.params], "notes": self.notes,
            "findings": [asdict(f) for f in found], "healthy": not any(f.severity == "fail" for f in found),
        })  # fmt: skip


def _ratio(first: float, last: float) -> float:
    if first <= 0 or not math.isfinite(first):
        return math.nan
    return last / first


def findings(inspection: Inspection, thresholds: Thresholds) -> list[Finding]:
    """Plain-language findings, the failing ones first."""
    out: list[Finding] = []
    for layer in inspection.layers:
        if layer.dead_fraction is not None and layer.dead_fraction > thresholds.dead:
            out.append(Finding("fail", "dead", layer.name,
                               f"{layer.dead_fraction:.0%} of units are dead at initialization (never positive on "
                               f"this batch): a negative bias or a too small input scale; use zero biases, or an "
                               f"initialization made for ReLU (He)"))  # fmt: skip
        if layer.saturated_fraction is not None and layer.saturated_fraction > thresholds.saturated:
            low, high = SATURATION[layer.activation]
            out.append(Finding("fail", "saturated", layer.name,
                               f"{layer.saturated_fraction:.0%} of its {layer.activation} outputs are saturated "
                               f"(beyond {low:g} / {high:g}), where its gradient vanishes: the weights are too large; "
                               f"use variance 1/fan_in (LeCun) or Glorot's"))  # fmt: skip
    signal = [layer for layer in inspection.layers if layer.std > 0 and math.isfinite(layer.std)]
    # Probabilities are not a signal whose scale should be kept: softmax outputs are left out.
    measured = [layer for layer in inspection.layers if layer.kind != "Softmax" and layer.activation != "softmax"]
    if len(measured) >= 3:
        first, last = measured[0], measured[-1]
        ratio = _ratio(first.std, last.std)
        if math.isfinite(ratio) and (ratio < 1 / thresholds.signal_ratio or ratio > thresholds.signal_ratio):
            word = "vanishes" if ratio < 1 else "explodes"
            out.append(Finding("fail", "vanishing" if ratio < 1 else "exploding", f"{first.name} -> {last.name}",
                               f"the signal {word}: the outputs' std goes from {first.std:.3g} to {last.std:.3g} "
                               f"(x{ratio:.2g}) across the network; scale each layer's weights to variance "
                               f"gain^2/fan_in (He for ReLU, LeCun/Glorot for tanh)"))  # fmt: skip
        elif not signal:
            out.append(Finding("fail", "vanishing", "every layer", "every layer's output is constant"))
    with_gradients = [layer for layer in measured if layer.gradient_std is not None and layer.gradient_std > 0]
    if len(with_gradients) >= 3:
        first, last = with_gradients[0], with_gradients[-1]
        ratio = _ratio(last.gradient_std, first.gradient_std)  # going back toward the input
        if math.isfinite(ratio) and (ratio < 1 / thresholds.gradient_ratio or ratio > thresholds.gradient_ratio):
            word = "vanish" if ratio < 1 else "explode"
            out.append(Finding("fail", "vanishing_gradients" if ratio < 1 else "exploding_gradients",
                               f"{last.name} -> {first.name}",
                               f"gradients {word} toward the input: the std of dL/d(output) goes from "
                               f"{last.gradient_std:.3g} at {last.name} to {first.gradient_std:.3g} at {first.name} "
                               f"(x{ratio:.2g})"))  # fmt: skip
    if inspection.loss is not None and inspection.classes and inspection.loss_kind == "cross_entropy":
        expected = math.log(inspection.classes)
        if inspection.loss > expected + thresholds.loss_excess:
            out.append(Finding("fail", "loss", "output",
                               f"the initial loss {inspection.loss:.3g} is far above log({inspection.classes}) = "
                               f"{expected:.3g}, a uniform guess: the logits are too large (std "
                               f"{inspection.logit_std:.3g}); scale the last layer down (or zero it)"))  # fmt: skip
    for param in inspection.params:
        declared, identified = param.declared, param.identified
        if declared is not None and not declared["agrees"]:
            if identified:
                fit = f"; it fits {identified['spec']}"
            elif param.family:
                fit = f"; it looks {param.family['family']} with std {param.family['std']:.3g} (no named initializer fits)"
            else:
                fit = "; no candidate law fits it"
            out.append(Finding("info", "not_default", param.name,
                               f"not {param.kind}'s default {declared['spec']} (measured std {param.std:.3g}, "
                               f"default {declared['law_std']:.3g}){fit}"))  # fmt: skip
    return sorted(out, key=lambda f: f.severity != "fail")


__all__ = ["ACTIVATION_KINDS", "Finding", "Inspection", "LayerRecord", "ParamRecord", "SATURATION", "Thresholds",
           "findings"]  # fmt: skip
