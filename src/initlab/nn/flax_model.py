"""Any Flax (linen) module as an initlab model: initialized, applied, trained and probed.

:class:`FlaxModel` wraps a module written as the Flax documentation writes one (``nn.Dense``,
``nn.Conv``, activations as functions) and gives it what initlab's training loop and probes
need: ``init(key)``, ``apply(params, x)``, and **taps**: for every ``Dense``, ``DenseGeneral``,
``Conv`` and ``ConvTranspose`` layer, its input and its output (the pre-activation), and the
gradient of a loss with respect to that output, from one forward pass and one backward pass.

Taps come from Flax's own mechanisms, on any module, without changing it:
``nn.intercept_methods`` sees every layer's call, ``Module.sow`` keeps the values and
``Module.perturb`` adds a zero perturbation whose gradient is ``dL/dz``.

What initlab cannot know about a user's module, it does not guess: the activation function
between layers is unknown, so the probes' activation-specific statistics (saturation, the mean
derivative) are NaN; a layer's "activation" is what the next tapped layer receives (the model's
output for the last one).

Example:
    >>> class CNN(nn.Module):
    ...     @nn.compact
    ...     def __call__(self, x):
    ...         x = nn.relu(nn.Conv(8, (3, 3))(x))
    ...         return nn.softmax(nn.Dense(10)(x.reshape((x.shape[0], -1))))
    >>> result = initlab.train(TrainConfig(epochs=2, probe_every=1), model=FlaxModel(CNN(), (28, 28, 1)))
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from initlab._lazy import jax, jnp
from initlab.errors import InitlabError
from initlab.initializers import build, compute_fans, initializers
from initlab.initializers.torch import bind_fan_in
from initlab.nn.init_rules import resolve
from initlab.runtime import LIGHTLY_OPTIMIZED

STATE = "batch_stats"
"""The one collection of state initlab trains with: BatchNorm's running statistics, kept in the
parameters' tree under this key and replaced (not optimized) after each step."""

SOWN = ("intermediates", "residual")
"""Collections a module sows values into (statistics for the probes), not state to train with."""


def _linen() -> Any:
    import flax.linen as linen

    return linen


def _tapped_types() -> tuple[type, ...]:
    linen = _linen()
    return (linen.Dense, linen.DenseGeneral, linen.Conv, linen.ConvTranspose)


def _interceptor(order: list[str]) -> Any:
    """Flax's method interceptor that taps every Dense and Conv layer, noting their call order in ``order``.

    (Flax keeps a collection's entries sorted by name, not by call; ``order`` keeps the calls.)
    """

    def intercept(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        output = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and isinstance(context.module, _tapped_types()):
            module = context.module
            order.append("/".join(module.scope.path))
            module.sow("taps", "input", args[0])
            output = module.perturb("preactivation", output)
            module.sow("taps", "preactivation", output)
        return output

    return intercept


class LayerOutputs(NamedTuple):
    """What one layer computed: pre-activation ``z`` (the layer's output) and activation ``a = f(z)``."""

    preactivation: Any
    activation: Any


def _flatten(tree: Any) -> dict[str, Any]:
    from flax.traverse_util import flatten_dict

    return flatten_dict(dict(tree), sep="/")


@dataclass(frozen=True, eq=False)
class FlaxModel:
    """A Flax linen module on inputs of one example's shape ``input_shape``.

    Attributes:
        module: the ``flax.linen.Module``; its output is what the loss compares with the labels
            (probabilities, for Keras's losses).
        input_shape: one example's shape, e.g. ``(784,)`` or ``(28, 28, 1)``; a batch of flat
            inputs is reshaped to it.
    """

    module: Any
    input_shape: tuple[int, ...]
    _layers: list[str] = field(default_factory=list, init=False, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.module, _linen().Module):
            raise InitlabError(f"model must be a flax.linen.Module, got {type(self.module).__name__}")
        shape = tuple(self.input_shape)
        if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in shape):
            raise InitlabError(f"input_shape must be positive integers such as (784,) or (28, 28, 1), got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)

    @property
    def name(self) -> str:
        """The module's class name, recorded with a run."""
        return type(self.module).__name__

    @property
    def activation_functions(self) -> tuple[Any, ...]:
        """Each tapped layer's activation function, ``None`` where initlab cannot know it (here: all)."""
        return (None,) * len(self.layer_paths())

    def _batch(self, x: Any) -> Any:
        return x.reshape((x.shape[0], *self.input_shape))

    def init(self, key: Any) -> Any:
        """The module's own initialization (its ``kernel_init`` and ``bias_init``) from ``key``."""
        variables = self.module.init(key, jnp.zeros((1, *self.input_shape), jnp.float32), **self._mode(False))
        others = sorted(set(variables) - {"params", *SOWN})
        if others == [STATE] and _switchable(self.module):
            return {**variables["params"], STATE: variables[STATE]}
        if others:
            raise InitlabError(
                f"{self.name} keeps state beside its parameters ({', '.join(others)}): initlab trains a module with "
                f"{STATE} only when it has a 'train' attribute or a 'train' argument of __call__ (use_running_average=not "
                "train), as initlab's resnet"
            )
        return variables["params"]

    @property
    def stateful(self) -> bool:
        """Whether the module keeps BatchNorm statistics (``params[STATE]``), updated by training steps."""
        if "stateful" not in self._cache:
            x = jnp.zeros((1, *self.input_shape), jnp.float32)
            shapes = jax.eval_shape(lambda key: self.module.init(key, x, **self._mode(False)), jax.random.key(0))
            self._cache["stateful"] = STATE in shapes and _switchable(self.module)
        return self._cache["stateful"]

    def _mode(self, train: bool) -> dict[str, Any]:
        """``{"train": train}`` for a module whose ``__call__`` takes ``train`` (as many Flax models do), else ``{}``."""
        return {"train": train} if _call_takes_train(self.module) else {}

    def _variables(self, params: Any) -> dict[str, Any]:
        """Flax's variables from initlab's parameters (the statistics kept under ``STATE``)."""
        if isinstance(params, dict) and STATE in params:
            return {"params": {k: v for k, v in params.items() if k != STATE}, STATE: params[STATE]}
        return {"params": params}

    def apply_training(self, params: Any, x: Any, *, input_matmul: Any = None) -> tuple[Any, Any]:
        """The output in training mode and the parameters with the statistics that batch updated.

        Normalization uses the batch's statistics and moves the running ones (BatchNorm's
        momentum); without state this is :meth:`apply` and the parameters come back unchanged.
        """
        if not self.stateful:
            return self.apply(params, x, input_matmul=input_matmul), params
        output, updated = self.module.apply(self._variables(params), self._batch(x), mutable=[STATE], **self._mode(True))
        return output, {**params, STATE: updated[STATE]}

    def initialize(self, key: Any, rules: Sequence[Any] = ()) -> tuple[Any, dict[str, str]]:
        """Parameters from ``key``, the parameters that ``rules`` match redrawn by initlab; and each one's origin.

        ``rules`` are :class:`~initlab.nn.init_rules.InitRule` (a preset's, or ``--init-rule``'s),
        matched against parameter paths and the roles of the tapped layers. A matched parameter is
        drawn from its spec with ``fold_in(key, i)`` (``i``: its place among the parameters), a
        bias with its layer's fan-in where the spec needs one (PyTorch's ``nn.Linear`` bias).

        Returns:
            ``(params, origins)``: ``origins[path]`` is the canonical spec that drew it, or
            ``"module"`` where the module's own initializer did.
        """
        return self._initialize(key, tuple(rules), ())

    def _initialize(self, key: Any, rules: tuple[Any, ...], scales: tuple[tuple[str, float], ...]) -> tuple[Any, dict[str, str]]:
        """:meth:`initialize`, then ``scales`` (``(path pattern, factor)``) applied to what matched."""
        import fnmatch

        shapes = _flatten(jax.eval_shape(self.init, jax.random.key(0)))
        specs = resolve(list(shapes), list(rules), self.layer_paths(), self.layer_kinds()) if rules else dict.fromkeys(shapes)
        plan, origins = [], {}
        for index, (path, value) in enumerate(shapes.items()):
            spec = specs[path]
            if spec is None:
                origins[path] = "module"
                continue
            kernel = shapes.get(f"{path.rpartition('/')[0]}/kernel")
            if kernel is not None and path.endswith("/bias"):
                spec = bind_fan_in(spec, compute_fans(kernel.shape)[0])
            plan.append((index, path, spec))
            origins[path] = initializers.canonical(specs[path])
        factors = []
        for pattern, factor in scales:
            hits = [path for path in shapes if fnmatch.fnmatchcase(path, pattern)]
            if not hits:  # a bug of the model's, not of the user's
                raise InitlabError(f"{self.name}: a scale of '{pattern}' matches no parameter")
            for path in hits:
                factors.append((path, factor))
                origins[path] = f"{origins[path]} x {factor:.4g}"
        from flax.traverse_util import unflatten_dict

        # Redraws are compiled pieces, not eager ops (a 2-block Transformer's first draw: 8.9 s
        # eagerly) nor one program for the whole network (whose compile time grows faster than its
        # depth: minutes for 200 delta-orthogonal layers): one small program per (spec, shape),
        # shared by every layer, model and seed that has them.
        # (the module's own draw, eager as always, only where a parameter keeps it)
        flat = dict(shapes) if len(plan) == len(shapes) else _flatten(self.init(key))
        for index, path, spec in plan:
            value = flat[path]
            flat[path] = _draw_program(spec, tuple(value.shape), str(value.dtype))(jax.random.fold_in(key, index))
        for path, factor in factors:
            flat[path] = flat[path] * factor
        return unflatten_dict(flat, sep="/"), origins

    def apply(self, params: Any, x: Any, *, input_matmul: Any = None) -> Any:
        """The module's output for a batch ``x`` (``input_matmul`` is for initlab's MLP and is ignored).

        A module with state is applied in inference mode (``train=False``: running statistics).
        """
        if self.stateful and not _call_takes_train(self.module):
            return self.module.clone(train=False).apply(self._variables(params), self._batch(x))
        return self.module.apply(self._variables(params), self._batch(x), **self._mode(False))

    def tapped(self, params: Any, x: Any, perturbations: Any = None) -> tuple[Any, dict[str, tuple[Any, Any]]]:
        """The output and, per tapped layer (by path, in call order), its ``(input, pre-activation)``.

        ``perturbations`` (from :meth:`zero_perturbations`) are added to the pre-activations: the
        gradient of a loss with respect to them is the gradient with respect to the pre-activations.
        """
        variables = self._variables(params) | ({"perturbations": perturbations} if perturbations is not None else {})
        mutable = ["taps"] if perturbations is not None else ["taps", "perturbations"]
        if self.stateful:  # at the batch's statistics, as training sees the layers; the moved statistics are dropped
            mutable.append(STATE)
        order: list[str] = []
        with _linen().intercept_methods(_interceptor(order)):
            output, state = self.module.apply(variables, self._batch(x), mutable=mutable, **self._mode(True))
        taps = _flatten(state["taps"])
        # A layer called twice (shared weights) is tapped at its first call.
        return output, {path: (taps[f"{path}/input"][0], taps[f"{path}/preactivation"][0]) for path in dict.fromkeys(order)}

    def sown(self, params: Any, x: Any) -> dict[str, Any]:
        """What the module sows about its blocks on batch ``x``, in training mode (initlab's networks).

        ``stream_norm`` (per block), ``branch_norm`` and ``skip_norm`` (per residual branch):
        root-mean-square values of the residual stream after a block, a branch's output and the
        input it is added to; ``attention_weights``: each attention layer's probabilities
        ``(batch, heads, queries, keys)``, in block order. Empty for a module that sows nothing.
        """
        if "sown" not in self._cache:  # compiled once (inside a probe's program it is traced as part of it)
            mutable = ["residual", "intermediates", *([STATE] if self.stateful else [])]
            self._cache["sown"] = jax.jit(
                lambda p, x: self.module.apply(self._variables(p), self._batch(x), mutable=mutable, **self._mode(True))[1]
            )
        state = self._cache["sown"](params, x)
        found: dict[str, Any] = {}
        for name in ("stream_norm", "branch_norm", "skip_norm"):
            values = state.get("residual", {}).get(name)
            if values:
                found[name] = jnp.stack(values)
        weights = [(path, value[0]) for path, value in _flatten(state.get("intermediates", {})).items()
                   if path.endswith("attention_weights")]
        if weights:
            found["attention_weights"] = [value for _, value in sorted(weights, key=lambda item: _block_number(item[0]))]
        return found

    def apply_with_intermediates(self, params: Any, x: Any, perturbations: Any = None) -> tuple[Any, list[LayerOutputs]]:
        """The output and, per tapped layer in call order, its pre-activation and activation.

        A layer's activation is what the next tapped layer receives (the output, for the last).
        """
        output, layers = self.tapped(params, x, perturbations)
        paths = self.layer_paths()
        activations = [layers[path][0] for path in paths[1:]] + [output]
        return output, [LayerOutputs(layers[path][1], a) for path, a in zip(paths, activations)]

    def zero_perturbations(self, params: Any, batch_size: int) -> Any:
        """Zeros shaped like every tapped layer's pre-activation for a batch of ``batch_size``."""
        x = jnp.zeros((batch_size, *self.input_shape), jnp.float32)
        with _linen().intercept_methods(_interceptor([])):
            shapes = jax.eval_shape(
                lambda p: self.module.apply(self._variables(p), x, mutable=["taps", "perturbations", STATE],
                                            **self._mode(True))[1]["perturbations"],
                params,
            )
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def layer_kinds(self) -> dict[str, str]:
        """The kind (:data:`~initlab.nn.init_rules.KINDS`) of every module that holds parameters, by path.

        ``nn.Dense``/``nn.DenseGeneral``: dense, ``nn.Conv``: conv, ``nn.Embed``: embed, the
        normalizations: norm; the projections of ``nn.MultiHeadDotProductAttention``: attention
        (query, key, value) and attention_out (out). From shapes only, once.
        """
        if "kinds" not in self._cache:
            linen = _linen()
            kinds: dict[str, str] = {}
            norms = tuple(getattr(linen, name) for name in ("LayerNorm", "BatchNorm", "GroupNorm", "RMSNorm") if hasattr(linen, name))
            types = ((linen.Embed, "embed"), ((linen.Conv, linen.ConvTranspose), "conv"), (norms, "norm"),
                     ((linen.Dense, linen.DenseGeneral), "dense"))

            def intercept(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
                module = context.module
                if context.method_name == "__call__" and module.scope is not None:
                    path = "/".join(module.scope.path)
                    kind = next((name for classes, name in types if isinstance(module, classes)), None)
                    if kind == "dense" and isinstance(module.parent, linen.MultiHeadDotProductAttention):
                        kind = "attention_out" if module.name == "out" else "attention"
                    if kind is not None:
                        kinds.setdefault(path, kind)
                return next_fun(*args, **kwargs)

            with linen.intercept_methods(intercept):
                jax.eval_shape(self.init, jax.random.key(0))
            self._cache["kinds"] = kinds
        return dict(self._cache["kinds"])

    def layer_paths(self) -> list[str]:
        """The tapped layers' paths, in the order they are called (``["Dense_0", "Dense_1"]``); from shapes only."""
        if not self._layers:
            x = jnp.zeros((1, *self.input_shape), jnp.float32)
            params = jax.eval_shape(self.init, jax.random.key(0))
            layers: list[str] = []

            def trace(p: Any) -> int:
                layers.extend(self.tapped(p, x)[1])  # a list, not a returned dict: JAX sorts dict keys
                return 0

            jax.eval_shape(trace, params)
            if not layers:
                raise InitlabError(f"{self.name} has no Dense or Conv layer for initlab to look into")
            self._layers.extend(layers)
        return list(self._layers)


@functools.lru_cache(maxsize=1024)
def _draw_program(spec: str, shape: tuple[int, ...], dtype: str) -> Any:
    """``build(spec)(key, shape, dtype)`` compiled once per process (XLA's level 1: threefry compiles slowly at 3)."""
    initializer = build(spec)
    return jax.jit(lambda key: initializer(key, shape, jnp.dtype(dtype)), compiler_options=LIGHTLY_OPTIMIZED)


def _block_number(path: str) -> tuple[int, str]:
    """``block_12_attention/attention_weights`` -> ``(12, path)``: blocks in call order, not by name."""
    import re

    match = re.search(r"block_(\d+)", path)
    return (int(match.group(1)) if match else -1, path)


def _has_train_flag(module: Any) -> bool:
    import dataclasses

    return any(f.name == "train" for f in dataclasses.fields(module))


def _call_takes_train(module: Any) -> bool:
    """Whether ``module.__call__`` has a ``train`` argument (and no ``train`` attribute, which initlab's modules use)."""
    return _class_call_takes_train(type(module))


@functools.lru_cache(maxsize=256)
def _class_call_takes_train(cls: type) -> bool:
    import dataclasses
    import inspect

    try:
        parameters = inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):
        return False
    return "train" in parameters and not any(f.name == "train" for f in dataclasses.fields(cls))


def _switchable(module: Any) -> bool:
    """Whether initlab can apply ``module`` in training and in inference mode (BatchNorm's two behaviours)."""
    return _has_train_flag(module) or _call_takes_train(module)


def as_model(model: Any, input_shape: tuple[int, ...]) -> FlaxModel:
    """``model`` as a :class:`FlaxModel`: a module is wrapped with ``input_shape``; a FlaxModel is kept."""
    if isinstance(model, FlaxModel):
        return model
    return FlaxModel(model, tuple(input_shape))


def flat_params(params: Any) -> dict[str, Any]:
    """A module's parameters flattened to ``{"Dense_0/kernel": array, ...}``."""
    return _flatten(params)


__all__ = ["FlaxModel", "LayerOutputs", "as_model", "flat_params"]
