"""Inspecting a ``keras.Model``: a sub-model on every layer's output, each weight against its layer's own initializer.

Keras layers carry their initializers (``kernel_initializer``, ``bias_initializer``,
``embeddings_initializer``, ``gamma_initializer``...): the *declared* law of a weight is that
object's class and configuration, as an initlab spec (initlab's Keras initializers are Keras's),
tested against the weight's values. Activations come from a sub-model whose outputs are every
layer's, in training mode (moving statistics restored); the initial loss is the cross-entropy of the output against random labels (softmax
outputs are probabilities, others logits). On Keras's JAX backend (the one ``initlab inspect`` sets)
the gradient of that loss with respect to every trainable weight comes from ``jax.grad`` over the
model's ``stateless_call``, and ``steps`` SGD updates from it give the update-to-weight ratios;
the model itself is never changed. The gradient with respect to every layer's output comes from
running the model's layer graph (a functional or Sequential model's) with a zero added to each
layer's output, differentiated with respect to those zeros (variables read, and BatchNorm's
updates caught, by a ``StatelessScope``). A subclassed model has no layer graph: it is refused
with a one-line error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from initlab.diagnose.core import SATURATION, Inspection, LayerRecord, ParamRecord
from initlab.diagnose.laws import agreement_with, best_law, fitted_family
from initlab.errors import InitlabError

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


THEORY_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu", "silu": "swish",
                      "swish": "swish", "softplus": "softplus", "softsign": "softsign", "elu": "elu", "selu": "selu",
                      "linear": "linear"}  # fmt: skip
"""Keras activations (by function name) whose mean-field maps initlab computes, as initlab specs."""


def _predict(model: Any, layers_with_outputs: list[Any], x: np.ndarray, records: list[LayerRecord]) -> None:
    """Mean-field predictions of each Dense layer's output mean square, where the model is a plain stack.

    A stack: only ``Dense`` layers on 2-D inputs, each with an elementwise activation of
    :data:`THEORY_ACTIVATIONS` (the last may be softmax, then not predicted). With each layer's
    measured ``sigma_w^2 = fan_in E[W^2]`` and ``sigma_b^2 = E[b^2]``: the pre-activation's
    ``q^1 = sigma_w^2 mean(x^2) + sigma_b^2``, ``q^{l+1} = sigma_w^2 E[phi_l(sqrt(q^l) z)^2] + sigma_b^2``;
    a layer's output (after its activation) has mean square ``E[phi_l(sqrt(q^l) z)^2]``.
    """
    import keras

    from initlab.mean_field._numerics import moments, resolve
    from initlab.mean_field.theory import variance_map

    if x.ndim != 2 or not layers_with_outputs or not all(isinstance(layer, keras.layers.Dense) for layer in layers_with_outputs):
        return
    names = [getattr(layer.activation, "__name__", None) for layer in layers_with_outputs]
    if any(name not in THEORY_ACTIVATIONS for name in names[:-1]) or names[-1] not in (*THEORY_ACTIVATIONS, "softmax"):
        return
    q, previous = float(np.mean(np.square(x, dtype=np.float64))), "linear"  # the inputs, through no activation
    for layer, name, record in zip(layers_with_outputs, names, records):
        kernel = np.asarray(layer.kernel.numpy(), np.float64)
        sigma_w2 = float(np.mean(kernel**2)) * kernel.shape[0]
        sigma_b2 = float(np.mean(np.asarray(layer.bias.numpy(), np.float64) ** 2)) if layer.use_bias else 0.0
        q = float(variance_map(q, sigma_w2, sigma_b2, THEORY_ACTIVATIONS[previous]))
        if name == "softmax":
            return
        record.predicted_second_moment = float(moments(np.array([q]), resolve(THEORY_ACTIVATIONS[name]))[0][0])
        previous = name


def inspect_keras(model: Any, x: Any, *, target: str, inputs: str, seed: int = 0, steps: int = 0,
                  learning_rate: float = 0.01) -> Inspection:  # fmt: skip
    import warnings

    with warnings.catch_warnings():  # Keras warns about its input structure when called on arrays
        warnings.simplefilter("ignore", UserWarning)
        return _inspect(model, x, target=target, inputs=inputs, seed=seed, steps=steps, learning_rate=learning_rate)


def _weight_gradients(model: Any, x: Any, labels: np.ndarray, probabilities: bool, steps: int,
                      learning_rate: float) -> tuple[dict[int, float], dict[int, float]]:  # fmt: skip
    """By ``id`` of each trainable weight: the std of the loss's gradient, and the update ratio after ``steps``.

    JAX backend only (``jax.grad`` over ``stateless_call``); the model's own variables are not touched.
    """
    import jax
    import jax.numpy as jnp

    trainable = [jnp.asarray(v.value) for v in model.trainable_variables]
    fixed = [jnp.asarray(v.value) for v in model.non_trainable_variables]
    x, labels = jnp.asarray(x), jnp.asarray(labels)

    def loss(weights):
        out, _ = model.stateless_call(weights, fixed, x, training=True)
        log_p = jnp.log(jnp.clip(out, 1e-7, 1.0)) if probabilities else jax.nn.log_softmax(out, axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))

    gradient = jax.jit(jax.grad(loss))
    first = gradient(trainable)
    stds = {id(v): float(jnp.std(g)) for v, g in zip(model.trainable_variables, first)}
    ratios: dict[int, float] = {}
    if steps:
        weights, grads = trainable, first
        for step in range(steps):
            weights = [w - learning_rate * g for w, g in zip(weights, grads)]
            if step + 1 < steps:
                grads = gradient(weights)
        for v, w, w0 in zip(model.trainable_variables, weights, trainable):
            norm = float(jnp.linalg.norm(w0))
            ratios[id(v)] = float(jnp.linalg.norm(w - w0)) / norm if norm > 0 else float("nan")
    return stds, ratios


def _layer_graph(model: Any) -> Any:
    """The functional graph a model's layers run through (a Sequential model's functional twin), or ``None``
    for a subclassed model."""
    graph = getattr(model, "_functional", None) or model
    return graph if hasattr(model, "inputs") and hasattr(graph, "_run_through_graph") else None


def _output_gradients(graph: Any, model: Any, x: Any, labels: np.ndarray, probabilities: bool,
                      shapes: dict[str, tuple[int, ...]]) -> dict[str, float] | None:  # fmt: skip
    """By layer name: the std of the loss's gradient with respect to the layer's output, running ``graph``
    (:func:`_layer_graph`; ``None``: this Keras has no graph runner). JAX backend only; the model is not changed."""
    import jax
    import jax.numpy as jnp
    import keras

    try:
        from keras.src.models.functional import operation_fn
    except ImportError:  # a Keras without this module: no graph to run
        return None
    x, labels = jnp.asarray(x), jnp.asarray(labels)
    state = [(v, v.value) for v in model.variables]

    def loss(zeros):
        def run(layer):
            call = operation_fn(layer, training=True)

            def with_zero(*args, **kwargs):
                out = call(*args, **kwargs)
                zero = zeros.get(layer.name)
                return out + zero if zero is not None and getattr(out, "shape", None) == zero.shape else out

            return with_zero

        with keras.StatelessScope(state_mapping=state):  # reads the weights; BatchNorm's updates stay in the scope
            out = graph._run_through_graph(x, operation_fn=run)
        log_p = jnp.log(jnp.clip(out, 1e-7, 1.0)) if probabilities else jax.nn.log_softmax(out, axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))

    grads = jax.jit(jax.grad(loss))({name: jnp.zeros(shape, x.dtype) for name, shape in shapes.items()})
    return {name: float(jnp.std(g)) for name, g in grads.items()}


def _inspect(model: Any, x: Any, *, target: str, inputs: str, seed: int, steps: int = 0,
             learning_rate: float = 0.01) -> Inspection:  # fmt: skip
    import keras

    # Training mode (BatchNormalization on the batch's statistics, as the first step sees it); the
    # moving statistics it updates are put back.
    graph = _layer_graph(model)
    if graph is None:
        raise InitlabError(f"{target}: a subclassed keras.Model has no layer graph to look into; initlab inspects "
                           "functional and Sequential Keras models (build it with keras.Model(inputs, outputs))")  # fmt: skip
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
                                  dead_fraction=dead, saturated_fraction=saturated,
                                  second_moment=float(np.mean(values**2))))  # fmt: skip
    _predict(model, layers_with_outputs, np.asarray(x), layers)
    classes = int(outputs.shape[-1]) if outputs.ndim == 2 and outputs.shape[-1] >= 2 else None
    labels = np.random.default_rng(seed).integers(0, classes, len(outputs)) if classes else None
    probabilities = _activation(model.layers[-1]) == "softmax"
    gradient_stds: dict[int, float] = {}
    ratios: dict[int, float] = {}
    notes = []
    if classes and keras.backend.backend() == "jax":
        gradient_stds, ratios = _weight_gradients(model, x, labels, probabilities, steps, learning_rate)
        shapes = {record.name: tuple(record.output_shape) for record in layers}
        output_stds = _output_gradients(graph, model, x, labels, probabilities, shapes)
        if output_stds is None:
            notes.append("gradients with respect to layer outputs are not measured: this Keras has no graph runner")
        for record in layers:
            record.gradient_std = (output_stds or {}).get(record.name)
    elif steps or classes:
        if steps:
            raise InitlabError(f"--steps for a Keras model needs Keras's JAX backend (KERAS_BACKEND=jax), not "
                               f"{keras.backend.backend()}")  # fmt: skip
        notes.append(f"gradients (of weights and layer outputs) are measured on Keras's JAX backend only (this one: "
                     f"{keras.backend.backend()})")
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
                gradient_std=gradient_stds.get(id(weight)), update_ratio=ratios.get(id(weight)),
            ))  # fmt: skip
    loss = None
    if classes:
        if probabilities:
            log_p = np.log(np.clip(outputs, 1e-7, 1.0))
        else:
            shifted = outputs - outputs.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = float(-log_p[np.arange(len(labels)), labels].mean())
    return Inspection(
        target=target, framework="keras", inputs=inputs, batch=int(len(x)), layers=layers, params=params, loss=loss,
        loss_kind="cross_entropy" if classes else None, classes=classes,
        logit_std=float(outputs.std()) if classes else None, steps=steps, notes=notes,
    )  # fmt: skip


__all__ = ["initializer_spec", "inspect_keras"]
