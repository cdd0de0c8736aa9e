"""Inspecting a ``keras.Model``: a sub-model on every layer's output, each weight against its layer's own initializer.

Keras layers carry their initializers (``kernel_initializer``, ``bias_initializer``,
``embeddings_initializer``, ``gamma_initializer``...): the *declared* law of a weight is that
object's class and configuration, as an initlab spec (initlab's Keras initializers are Keras's),
tested against the weight's values. Activations come from a sub-model whose outputs are every
layer's, in training mode (moving statistics restored); the initial loss is the cross-entropy of the output against random labels (softmax
outputs are probabilities, others logits). Gradients are not measured for Keras models yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from initlab.diagnose.core import SATURATION, Inspection, LayerRecord, ParamRecord
from initlab.diagnose.laws import agreement_with, best_law, fitted_family

CANDIDATES = ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform",
              "zeros", "ones", "random_uniform(minval=-0.05, maxval=0.05)", "orthogonal"]  # fmt: skip
INITIALIZER_ATTRIBUTES = {"kernel": "kernel_initializer", "bias": "bias_initializer",
                          "embeddings": "embeddings_initializer", "gamma": "gamma_initializer",
                          "beta": "beta_initializer", "moving_mean": "moving_mean_initializer",
                          "moving_variance": "moving_variance_initializer",
                          "depthwise_kernel": "depthwise_initializer", "pointwise_kernel": "pointwise_initializer"}  # fmt: skip


def initializer_spec(initializer: Any) -> str | None:
    """A Keras initializer object as an initlab spec (``GlorotUniform()``, ``RandomNormal(stddev=0.05)``)."""
    from initlab.initializers import initializers

    try:
        # (seed: not part of the law; None-valued keys such as Keras 3.1x's input_axes are defaults)
        config = {k: v for k, v in initializer.get_config().items() if k != "seed" and v is not None}
        spec = type(initializer).__name__ + "(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"
        return initializers.canonical(spec)
    except Exception:  # noqa: BLE001  (an initializer initlab does not know: no declared law)
        return None


def _activation(layer: Any) -> str | None:
    function = getattr(layer, "activation", None)
    name = getattr(function, "__name__", None)
    return name if name in ("relu", "tanh", "sigmoid", "softmax", "gelu", "silu", "elu") else None


def inspect_keras(model: Any, x: Any, *, target: str, inputs: str, seed: int = 0) -> Inspection:
    import warnings

    with warnings.catch_warnings():  # Keras warns about its input structure when called on arrays
        warnings.simplefilter("ignore", UserWarning)
        return _inspect(model, x, target=target, inputs=inputs, seed=seed)


def _inspect(model: Any, x: Any, *, target: str, inputs: str, seed: int) -> Inspection:
    import keras

    # Training mode (BatchNormalization on the batch's statistics, as the first step sees it); the
    # moving statistics it updates are put back.
    saved = model.get_weights()
    try:
        outputs = np.asarray(model(x, training=True))
        layers_with_outputs = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        probe = keras.Model(inputs=model.inputs, outputs=[layer.output for layer in layers_with_outputs])
        values_by_layer = probe(x, training=True)
    finally:
        model.set_weights(saved)
    if not isinstance(values_by_layer, (list, tuple)):
        values_by_layer = [values_by_layer]
    layers = []
    for layer, values in zip(layers_with_outputs, values_by_layer):
        values = np.asarray(values, np.float64)
        activation = _activation(layer)
        dead = saturated = None
        if activation == "relu" and values.ndim >= 2:
            dead = float(1 - (values.reshape(-1, values.shape[-1]) > 0).any(axis=0).mean())
        if activation in SATURATION:
            low, high = SATURATION[activation]
            saturated = float(np.mean((values < low) | (values > high)))
        layers.append(LayerRecord(name=layer.name, kind=type(layer).__name__, activation=activation,
                                  output_shape=list(values.shape), mean=float(values.mean()), std=float(values.std()),
                                  dead_fraction=dead, saturated_fraction=saturated))  # fmt: skip
    params = []
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.path.rsplit("/", 1)[-1] if hasattr(weight, "path") else weight.name
            values = np.asarray(weight.numpy(), np.float64)
            attribute = INITIALIZER_ATTRIBUTES.get(short)
            if short == "kernel" and hasattr(layer, "depthwise_initializer") and not hasattr(layer, "kernel_initializer"):
                attribute = "depthwise_initializer"  # DepthwiseConv2D's weight is named kernel
            declared = initializer_spec(getattr(layer, attribute)) if attribute and hasattr(layer, attribute) else None
            shape = tuple(values.shape)
            tested = agreement_with(values, declared, shape) if declared else None
            agreement = None if tested is None else tested.to_dict()
            # The type's default, where it fits, is what drew it (few entries cannot tell laws apart).
            identified = tested if tested is not None and tested.agrees else best_law(values, shape, CANDIDATES)
            params.append(ParamRecord(
                name=f"{layer.name}/{short}", layer=layer.name, kind=type(layer).__name__, shape=list(shape),
                mean=float(values.mean()), std=float(values.std()), declared=agreement,
                identified=None if identified is None else identified.to_dict(),
                family=None if identified is not None else fitted_family(values),
            ))  # fmt: skip
    classes = int(outputs.shape[-1]) if outputs.ndim == 2 and outputs.shape[-1] >= 2 else None
    loss = None
    if classes:
        labels = np.random.default_rng(seed).integers(0, classes, len(outputs))
        if _activation(model.layers[-1]) == "softmax":
            log_p = np.log(np.clip(outputs, 1e-7, 1.0))
        else:
            shifted = outputs - outputs.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = float(-log_p[np.arange(len(labels)), labels].mean())
    return Inspection(
        target=target, framework="keras", inputs=inputs, batch=int(len(x)), layers=layers, params=params, loss=loss,
        loss_kind="cross_entropy" if classes else None, classes=classes,
        logit_std=float(outputs.std()) if classes else None,
        notes=["gradients are not measured for Keras models in this version"],
    )  # fmt: skip


__all__ = ["initializer_spec", "inspect_keras"]
