"""Inspecting a ``torch.nn.Module``: forward hooks on its leaf modules, gradient hooks on their outputs.

One forward and backward pass on the batch in training mode (normalization layers on the batch's
statistics, as the first step sees them; running statistics restored afterwards), with cross-entropy against random labels when the output
is logits ``(batch, classes)`` or ``(batch, tokens, vocabulary)``; else half the mean square of the
output), then, with ``steps``, that many SGD updates on the same batch for the update-to-weight
ratios. Per parameter, PyTorch's default for its layer type (``nn.Linear`` and ``nn.ConvNd``:
``kaiming_uniform_(a=sqrt(5))``, i.e. U(+-1/sqrt(fan_in)), and their biases U(+-1/sqrt(fan_in));
``nn.Embedding``: N(0, 1); normalization layers: ones and zeros; ``nn.MultiheadAttention``:
``xavier_uniform_`` projections and zero biases) is tested against the values, and the best fit
among PyTorch's initializers (and GPT-style N(0, 0.02)) is named.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from initlab.diagnose.core import SATURATION, Inspection, LayerRecord, ParamRecord
from initlab.diagnose.laws import agreement_with, best_law, fitted_family, torch_layout

ACTIVATIONS = {"ReLU": "relu", "ReLU6": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softmax": "softmax",
               "GELU": "gelu", "SiLU": "silu", "ELU": "elu", "LeakyReLU": "leaky_relu"}  # fmt: skip
WEIGHTED = ("Linear", "Conv1d", "Conv2d", "Conv3d", "Bilinear", "LazyLinear", "NonDynamicallyQuantizableLinear")
NORMS = ("LayerNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
         "RMSNorm")  # fmt: skip
WEIGHT_CANDIDATES = [
    "torch.linear_default", "torch.kaiming_normal(mode='fan_out', nonlinearity='relu')",
    "torch.kaiming_normal(nonlinearity='relu')", "torch.kaiming_uniform(nonlinearity='relu')",
    "torch.kaiming_uniform(mode='fan_out', nonlinearity='relu')", "torch.xavier_uniform", "torch.xavier_normal",
    "torch.normal(std=0.02)", "torch.trunc_normal(std=0.02)", "torch.normal", "torch.zeros", "torch.ones",
    "torch.orthogonal",
]  # fmt: skip
VECTOR_CANDIDATES = ["torch.zeros", "torch.ones", "torch.normal(std=0.02)", "torch.normal"]


THEORY_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "GELU": "gelu", "SiLU": "swish",
                      "Softplus": "softplus", "Softsign": "softsign"}  # fmt: skip
"""PyTorch activations whose mean-field variance map initlab computes (their defaults only)."""


def _predict(model: Any, order: list[str], leaves: dict[str, Any], x: Any, layers: list[LayerRecord]) -> None:
    """Mean-field predictions of each Linear output's mean square, where the model is a plain stack:
    Linear, activation, Linear, ... in forward order (a final Softmax aside), on 2-D inputs.

    ``q^1 = sigma_w^2 mean(x^2) + sigma_b^2`` and ``q^{l+1} = sigma_w^2 E[phi(sqrt(q^l) z)^2] + sigma_b^2``
    with each layer's measured ``sigma_w^2 = Var[W] fan_in`` and ``sigma_b^2 = Var[b]``.
    """
    import torch

    from initlab.mean_field.theory import variance_map

    kinds = [type(leaves[name]).__name__ for name in order]
    if kinds and kinds[-1] == "Softmax":
        kinds = kinds[:-1]
    if x.dim() != 2 or not kinds or kinds[0] != "Linear" or kinds[-1] != "Linear":
        return
    if any(kind != ("Linear" if i % 2 == 0 else kind) or (i % 2 == 1 and kind not in THEORY_ACTIVATIONS)
           for i, kind in enumerate(kinds)):  # fmt: skip
        return
    by_name = {layer.name: layer for layer in layers}
    q, activation = float(x.float().pow(2).mean()), None
    for i in range(0, len(kinds), 2):
        linear = leaves[order[i]]
        weight = linear.weight.detach().double()
        sigma_w2 = float(weight.var(unbiased=False) + weight.mean() ** 2) * weight.shape[1]
        bias = linear.bias.detach().double() if linear.bias is not None else torch.zeros(1, dtype=torch.float64)
        sigma_b2 = float(bias.pow(2).mean())
        q = sigma_w2 * q + sigma_b2 if activation is None else variance_map(q, sigma_w2, sigma_b2, activation)
        by_name[order[i]].predicted_second_moment = q
        if i + 1 < len(kinds):
            activation = THEORY_ACTIVATIONS[kinds[i + 1]]


def declared_spec(kind: str, name: str, weight_fan_in: int | None, parent_kind: str | None) -> str | None:
    """PyTorch's default initializer for parameter ``name`` of a module of class ``kind`` (``None``: not known)."""
    if parent_kind == "MultiheadAttention" and name == "bias":
        return "torch.zeros"  # MultiheadAttention zeroes its out_proj's bias
    if kind in WEIGHTED:
        if name == "weight":
            return "torch.linear_default"
        if name == "bias" and weight_fan_in:
            return f"torch.linear_bias_default(fan_in={weight_fan_in})"
    if kind == "Embedding" and name == "weight":
        return "torch.normal"
    if kind in NORMS:
        return {"weight": "torch.ones", "bias": "torch.zeros"}.get(name)
    if kind == "MultiheadAttention":
        return {"in_proj_weight": "torch.xavier_uniform", "in_proj_bias": "torch.zeros"}.get(name)
    return None


def _fan_in(weight: Any) -> int | None:
    if weight is None or weight.dim() < 2:
        return None
    return int(weight.shape[1] * math.prod(weight.shape[2:]))


def _first_tensor(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "logits") and isinstance(value.logits, torch.Tensor):
        return value.logits
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    return None


def _units_axis(shape: tuple[int, ...]) -> int:
    return 1 if len(shape) == 4 else len(shape) - 1


def inspect_torch(model: Any, x: Any, *, target: str, inputs: str, steps: int = 0, learning_rate: float = 0.01,
                  seed: int = 0) -> Inspection:  # fmt: skip
    import torch

    torch.manual_seed(seed)
    # Training mode: normalization uses the batch's statistics, as the first training step sees the
    # model (in eval mode a fresh BatchNorm is the identity, and deep stacks can look dead). Its
    # running statistics, and the mode, are put back afterwards.
    was_training = model.training
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.train(True)
    try:
        return _inspect(model, x, target=target, inputs=inputs, steps=steps, learning_rate=learning_rate, seed=seed)
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])
        model.train(was_training)


def _inspect(model: Any, x: Any, *, target: str, inputs: str, steps: int, learning_rate: float, seed: int) -> Inspection:
    import torch

    modules = dict(model.named_modules())
    leaves = {name: module for name, module in modules.items() if name and not list(module.children())}
    parent_kind = {}
    for name, module in modules.items():
        for child_name, _ in module.named_children():
            parent_kind[f"{name}.{child_name}" if name else child_name] = type(module).__name__
    outputs: dict[str, Any] = {}
    gradients: dict[str, Any] = {}
    order: list[str] = []

    def hook(name):
        def record(module, args, output):
            tensor = _first_tensor(output)
            if tensor is None or not torch.is_floating_point(tensor):
                return
            if name not in outputs:
                order.append(name)
            outputs[name] = tensor.detach()
            if tensor.requires_grad:
                tensor.register_hook(lambda grad: gradients.__setitem__(name, grad.detach()))

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in leaves.items()]
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    try:
        model.zero_grad(set_to_none=True)
        output = _first_tensor(model(x))
        if output is None:
            raise_no_output()
        loss, loss_kind, classes = _loss(output, seed)
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    logit_std = float(output.detach().float().std()) if classes else None
    parameter_gradients = {name: (None if p.grad is None else float(p.grad.detach().float().std()))
                           for name, p in model.named_parameters()}  # fmt: skip
    ratios: dict[str, float] = {}
    if steps:
        optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            step_loss, _, _ = _loss(_first_tensor(model(x)), seed)
            step_loss.backward()
            optimizer.step()
        for name, p in model.named_parameters():
            norm = float(initial[name].float().norm())
            ratios[name] = float((p.detach() - initial[name]).float().norm()) / norm if norm > 0 else math.nan
        with torch.no_grad():  # the model is left as it was given
            for name, p in model.named_parameters():
                p.copy_(initial[name])

    layers = []
    for name in order:
        tensor = outputs[name].float()
        module = leaves[name]
        kind = type(module).__name__
        activation = ACTIVATIONS.get(kind)
        values = tensor.numpy()
        dead = None
        if activation == "relu" and values.ndim >= 2:
            axis = _units_axis(values.shape)
            alive = np.moveaxis(values > 0, axis, -1).reshape(-1, values.shape[axis]).any(axis=0)
            dead = float(1 - alive.mean())
        saturated = None
        if activation in SATURATION:
            low, high = SATURATION[activation]
            saturated = float(np.mean((values < low) | (values > high)))
        grad = gradients.get(name)
        layers.append(LayerRecord(
            name=name, kind=kind, activation=activation, output_shape=list(values.shape), mean=float(values.mean()),
            std=float(values.std()), dead_fraction=dead, saturated_fraction=saturated,
            gradient_std=None if grad is None else float(grad.float().std()),
            second_moment=float(np.mean(np.square(values, dtype=np.float64))),
        ))  # fmt: skip
    _predict(model, order, leaves, x, layers)
    params, notes, first_name = [], [], {}
    for module_name, module in modules.items():
        kind = type(module).__name__
        weight = getattr(module, "weight", None)
        fan_in = _fan_in(weight) if isinstance(weight, torch.Tensor) else None
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if id(param) in first_name:  # a tied parameter (GPT-2's lm_head.weight is its wte.weight): once
                notes.append(f"{full} is the same parameter as {first_name[id(param)]} (tied), reported once")
                continue
            first_name[id(param)] = full
            values = initial[full].float().numpy()
            shape = torch_layout(tuple(values.shape))
            layout_values = np.moveaxis(values, [0, 1], [-1, -2]) if values.ndim >= 2 else values
            declared = declared_spec(kind, param_name, fan_in, parent_kind.get(module_name))
            tested = agreement_with(layout_values, declared, shape) if declared else None
            agreement = None if tested is None else tested.to_dict()
            candidates = WEIGHT_CANDIDATES if values.ndim >= 2 else VECTOR_CANDIDATES + (
                [f"torch.linear_bias_default(fan_in={fan_in})"] if fan_in else [])  # fmt: skip
            # The type's default, where it fits, is what drew it (few entries cannot tell laws apart).
            identified = tested if tested is not None and tested.agrees else best_law(layout_values, shape, candidates)
            params.append(ParamRecord(
                name=full, layer=module_name, kind=kind, shape=list(values.shape), mean=float(values.mean()),
                std=float(values.std()), declared=agreement, identified=None if identified is None else identified.to_dict(),
            family=None if identified is not None else fitted_family(values),
                gradient_std=parameter_gradients.get(full), update_ratio=ratios.get(full),
            ))  # fmt: skip
    return Inspection(
        target=target, framework="torch", inputs=inputs, batch=int(x.shape[0]), layers=layers, params=params,
        loss=float(loss.detach()), loss_kind=loss_kind, classes=classes, logit_std=logit_std, steps=steps, notes=notes,
    )  # fmt: skip


def raise_no_output() -> None:
    from initlab.errors import InitlabError

    raise InitlabError("the model's output holds no floating-point tensor to take a loss of")


def _loss(output: Any, seed: int) -> tuple[Any, str, int | None]:
    """Cross-entropy on random labels for logits, else half the mean square."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if output.dim() in (2, 3) and output.shape[-1] >= 2:
        classes = int(output.shape[-1])
        logits = output.reshape(-1, classes).float()
        labels = torch.randint(0, classes, (logits.shape[0],), generator=generator)
        return torch.nn.functional.cross_entropy(logits, labels), "cross_entropy", classes
    return 0.5 * output.float().pow(2).mean(), "half_mean_square", None


__all__ = ["declared_spec", "inspect_torch"]
